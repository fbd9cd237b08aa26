"""Speed and memory of the infinite-width kernels: the tiled path against the plain reference.

Every measurement runs in a fresh Python process, so its peak memory (the process's maximum
resident set size, from ``os.wait4``) is its own. For each network and N the tiled kernel
(``Architecture.kernel``, the default) and the whole-matrix reference recursion
(``method="reference"``) run one after the other in the same run, on the same points
(N x 16, standard normal, seed 0), NNGP and NTK together, float64; times are medians of up to
``--repeats`` calls after a warm-up call on a few points. Then ``wideinf kernel`` is timed end
to end (process start to file written), and the float32 mode's error against float64 measured.

Usage::

    python benchmarks/bench_kernels.py            # full run, writes benchmarks/RESULTS.md
    python benchmarks/bench_kernels.py --quick    # N = 1000 only, to check the script

The machine should be otherwise idle: every number is a wall-clock time.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

NETWORKS = {
    "relu": ["dense", "relu", "dense", "relu", "dense"],
    "erf": ["dense", "erf", "dense", "erf", "dense"],
    "gelu": ["dense", "gelu", "dense", "gelu", "dense"],
    "gabor-relu": ["dense", "gabor", "dense", "relu", "dense"],
    "tanh (series)": ["dense", "tanh", "dense", "tanh", "dense"],
}
W_STD, B_STD, DIM = 1.5, 0.05, 16

SIZES = (1000, 2000, 4000, 8000)
# The reference is skipped above these sizes: at N = 8000 it holds about 4 GB of N x N
# temporaries.
REFERENCE_MAX = {}
REFERENCE_MAX_DEFAULT = 4000

ACCEPTANCE = (
    ("relu", 4000, 0.25, 10.0),
    ("gabor-relu", 4000, 0.5, None),
    ("relu", 8000, 1.2, None),
)
COMMAND_MAX_SECONDS, COMMAND_MAX_MB = 1.5, 650


def _architecture(network: str) -> dict:
    return {"layers": NETWORKS[network], "W_std": W_STD, "b_std": B_STD}


# ----------------------------------------------------------------------------- child side


def _maxrss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def worker(network: str, n: int, method: str, repeats: int, budget: float) -> None:
    """Time ``repeats`` kernel calls (fewer if they exceed ``budget`` seconds); print JSON."""
    import numpy as np

    from wideinf import Architecture

    arch = Architecture.from_dict(_architecture(network))
    x = np.random.default_rng(0).standard_normal((n, DIM))
    arch.kernel(x[:20], method=method)  # warm-up: lazy imports, coefficient rules
    baseline = _maxrss_mb()
    times, cpu = [], []
    while len(times) < repeats:
        start, start_cpu = time.perf_counter(), time.process_time()
        k = arch.kernel(x, method=method)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
        del k
        if sum(times) > budget:
            break
    print(json.dumps({"times": times, "cpu": cpu, "baseline_mb": baseline}))


# ----------------------------------------------------------------------------- parent side


def _run_child(args: list[str], env: dict | None = None) -> tuple[str, float, float]:
    """Run a child process; return (stdout, wall seconds, peak RSS in MB)."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    out, err = proc.stdout.read(), proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{err}")
    return out, wall, usage.ru_maxrss / 1024


def measure(
    network: str, n: int, method: str, repeats: int, budget: float, source: Path = ROOT
) -> dict:
    """One fresh process timing ``repeats`` kernel calls of the wideinf found in ``source``."""
    args = [sys.executable, __file__, "--worker", network, str(n), method, str(repeats)]
    args += ["--budget", str(budget)]
    out, _, peak = _run_child(args, {**os.environ, "PYTHONPATH": str(source)})
    data = json.loads(out.strip().splitlines()[-1])
    times = sorted(data["times"])
    return {
        "median": times[len(times) // 2],
        "cpu": min(data["cpu"]),
        "calls": len(times),
        "peak_mb": peak,
        "baseline_mb": data["baseline_mb"],
        "extra_mb": peak - data["baseline_mb"],
    }


def measure_command(n: int, repeats: int, float32: bool = False) -> dict:
    """``wideinf kernel`` end to end: process start to file written."""
    import numpy as np

    walls, peaks = [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        np.save(tmp / "x.npy", np.random.default_rng(0).standard_normal((n, DIM)))
        (tmp / "arch.yaml").write_text(
            "architecture:\n"
            f"  layers: [{', '.join(NETWORKS['relu'])}]\n"
            f"  W_std: {W_STD}\n  b_std: {B_STD}\n"
        )
        exe = Path(sys.executable).with_name("wideinf")
        cmd = [str(exe) if exe.exists() else "wideinf", "kernel", str(tmp / "arch.yaml")]
        cmd += ["--x1", str(tmp / "x.npy"), "--out", str(tmp / "K.npz")]
        if float32:
            cmd.append("--float32")
        for _ in range(repeats):
            _, wall, peak = _run_child(cmd)
            walls.append(wall)
            peaks.append(peak)
            size = (tmp / "K.npz").stat().st_size
    walls.sort()
    return {"median": walls[len(walls) // 2], "peak_mb": max(peaks), "file_mb": size / 2**20}


def float32_errors(n: int) -> list[tuple[str, str, float, float]]:
    """Largest |float32 - float64| relative to the largest entry, NNGP and NTK."""
    import numpy as np

    from wideinf import Architecture

    rows = []
    sets = {
        f"{n} Gaussian points, d = {DIM}": np.random.default_rng(0).standard_normal((n, DIM)),
        "1-D grid of 2001 points on [-3, 3]": np.linspace(-3, 3, 2001)[:, None],
    }
    for label, x in sets.items():
        for network in NETWORKS:
            xx = x
            arch = Architecture.from_dict(_architecture(network))
            k64, k32 = arch.kernel(xx), arch.kernel(xx, dtype=np.float32)
            err = [
                float(
                    np.abs(getattr(k32, m) - getattr(k64, m)).max() / np.abs(getattr(k64, m)).max()
                )
                for m in ("nngp", "ntk")
            ]
            rows.append((label, network, *err))
    return rows


def compare_revisions(
    rev: str, n: int, repeats: int, budget: float, rounds: int, networks=None
) -> list[str]:
    """The tiled kernel of git revision ``rev`` against this tree's, every network at N.

    Before and after alternate, one fresh process each, ``rounds`` times; each keeps its best
    median wall time and its least CPU time per call (the CPU time is the steadier measure on
    a shared machine: it counts what the kernel computes, not the time spent waiting).
    """
    lines = [
        f"| network | N | {rev} wall (s) | this tree wall (s) | ratio | {rev} CPU (s) "
        "| this tree CPU (s) | ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    print(lines[0])
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", rev, "wideinf"], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        for network in networks or NETWORKS:
            size = n
            best = {}
            for _ in range(rounds):
                for label, source in (("before", Path(tmp)), ("after", ROOT)):
                    m = measure(network, size, "tiled", repeats, budget, source)
                    old = best.get(label, {"median": math.inf, "cpu": math.inf})
                    best[label] = {k: min(old[k], m[k]) for k in ("median", "cpu")}
            b, a = best["before"], best["after"]
            cells = [network, str(size), f"{b['median']:.3f}", f"{a['median']:.3f}"]
            cells += [f"{b['median'] / a['median']:.2f}x", f"{b['cpu']:.3f}", f"{a['cpu']:.3f}"]
            cells.append(f"{b['cpu'] / a['cpu']:.2f}x")
            lines.append("| " + " | ".join(cells) + " |")
            print(lines[-1], flush=True)
    return lines


def _environment() -> list[str]:
    import numpy as np

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    blas = {k: v for k, v in os.environ.items() if k.startswith(("OPENBLAS", "OMP_", "MKL_"))}
    return [
        f"- CPU: {cpu}, {len(os.sched_getaffinity(0))} cores available",
        f"- Python {platform.python_version()}, numpy {np.__version__}",
        f"- BLAS environment: {', '.join(f'{k}={v}' for k, v in sorted(blas.items())) or 'none set'}",
        f"- load average at start: {', '.join(f'{v:.2f}' for v in os.getloadavg())}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", nargs=4, metavar=("NETWORK", "N", "METHOD", "REPEATS"))
    parser.add_argument("--budget", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="N = 1000 only")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument(
        "--against", metavar="REV", help="also time git revision REV's tiled kernel against this"
    )
    parser.add_argument("--rounds", type=int, default=3, help="alternations for --against")
    parser.add_argument(
        "--networks", nargs="+", choices=list(NETWORKS), help="only these networks (default all)"
    )
    parser.add_argument(
        "--against-only",
        action="store_true",
        help="run only the --against comparison and replace its section in --out",
    )
    args = parser.parse_args()
    if args.worker:
        network, n, method, repeats = args.worker
        worker(network, int(n), method, int(repeats), args.budget)
        return

    start_load = os.getloadavg()
    env = _environment()
    print("\n".join(env))
    against = []
    if args.against:
        n_against = 1000 if args.quick else 4000
        table = compare_revisions(
            args.against, n_against, args.repeats, args.budget, args.rounds, args.networks
        )
        end = ", ".join(f"{v:.2f}" for v in os.getloadavg())
        against = [
            "## Before and after",
            "",
            f"Written by `python benchmarks/bench_kernels.py --against {args.against}` on "
            f"{time.strftime('%Y-%m-%d')}. The tiled kernel (the default path) of revision "
            f"`{args.against}` and of this tree, NNGP and NTK, float64, on the networks above, "
            f"alternating fresh processes {args.rounds} times; best of the median wall times "
            "and least CPU time per call; a ratio above 1 means this tree is faster. Load "
            f"average {', '.join(f'{v:.2f}' for v in start_load)} at start, {end} at end.",
            "",
            *table,
            "",
        ]
        if args.against_only:
            _replace_section(args.out, against)
            print(f"updated {args.out}")
            return
    sizes = SIZES[:1] if args.quick else SIZES
    header = (
        "| network | N | tiled (s) | reference (s) | speed-up | tiled peak (MB) "
        "| reference peak (MB) | outputs (MB) |"
    )
    lines = [header, "|---|---:|---:|---:|---:|---:|---:|---:|"]
    print(header)
    results = {}
    for network in args.networks or NETWORKS:
        for n in sizes:
            tiled = measure(network, n, "tiled", args.repeats, args.budget)
            limit = REFERENCE_MAX.get(network, REFERENCE_MAX_DEFAULT)
            ref = (
                measure(network, n, "reference", args.repeats, args.budget) if n <= limit else None
            )
            results[network, n] = (tiled, ref)
            outputs = 2 * n * n * 8 / 2**20
            cells = [
                network,
                str(n),
                f"{tiled['median']:.3f}",
                f"{ref['median']:.3f}" if ref else "skipped",
                f"{ref['median'] / tiled['median']:.1f}x" if ref else "",
                f"{tiled['peak_mb']:.0f}",
                f"{ref['peak_mb']:.0f}" if ref else "",
                f"{outputs:.0f}",
            ]
            line = "| " + " | ".join(cells) + " |"
            lines.append(line)
            print(line, flush=True)

    n_cmd = 1000 if args.quick else 4000
    command = measure_command(n_cmd, 3)
    command32 = measure_command(n_cmd, 3, float32=True)
    cmd_lines = [
        f"`wideinf kernel` (Dense-ReLU-Dense-ReLU-Dense, N = {n_cmd}, d = {DIM}), process start "
        "to file written, median of 3:",
        "",
        "| mode | wall (s) | peak RSS (MB) | file (MB) |",
        "|---|---:|---:|---:|",
        f"| float64 | {command['median']:.2f} | {command['peak_mb']:.0f} | {command['file_mb']:.0f} |",
        f"| --float32 | {command32['median']:.2f} | {command32['peak_mb']:.0f} "
        f"| {command32['file_mb']:.0f} |",
    ]
    print("\n".join(cmd_lines))

    errors = float32_errors(1000 if args.quick else 2000)
    err_lines = [
        "| points | network | NNGP error | NTK error |",
        "|---|---|---:|---:|",
        *(f"| {label} | {net} | {a:.1e} | {b:.1e} |" for label, net, a, b in errors),
    ]
    print("\n".join(err_lines))

    checks = []
    for network, n, seconds, speedup in ACCEPTANCE:
        if (network, n) not in results:
            continue
        tiled, ref = results[network, n]
        ok = tiled["median"] <= seconds
        text = f"{network}, N = {n}: {tiled['median']:.3f} s (target <= {seconds} s)"
        if speedup and ref:
            ratio = ref["median"] / tiled["median"]
            ok = ok and ratio >= speedup
            text += f", {ratio:.1f}x the reference (target >= {speedup:.0f}x)"
        checks.append(f"- [{'x' if ok else ' '}] {text}")
    if not args.quick:
        ok = command["median"] <= COMMAND_MAX_SECONDS and command["peak_mb"] <= COMMAND_MAX_MB
        checks.append(
            f"- [{'x' if ok else ' '}] `wideinf kernel`, N = {n_cmd}: {command['median']:.2f} s, "
            f"{command['peak_mb']:.0f} MB (targets <= {COMMAND_MAX_SECONDS} s, "
            f"<= {COMMAND_MAX_MB} MB)"
        )
    print("\n".join(checks))

    end_load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    cores = len(os.sched_getaffinity(0))
    busy = max(start_load[0], os.getloadavg()[0]) > 0.5 * cores
    warning = (
        [
            f"**The machine was busy during this run (load average up to "
            f"{max(start_load[0], os.getloadavg()[0]):.1f} on {cores} cores): every time below "
            "is inflated, the tiled path's threads most of all. Rerun on an idle machine.**",
            "",
        ]
        if busy
        else []
    )
    doc = [
        "# Kernel benchmarks",
        "",
        "Written by `python benchmarks/bench_kernels.py`"
        + (" --quick" if args.quick else "")
        + f" on {time.strftime('%Y-%m-%d')}.",
        "",
        f"Networks: Dense-act-Dense-act-Dense with W_std = {W_STD}, b_std = {B_STD} "
        "(gabor-relu: Dense-Gabor-Dense-ReLU-Dense, the blog's network), NTK parameterization, "
        f"N standard normal points of dimension {DIM}, NNGP and NTK together, float64. "
        "`tiled` is `Architecture.kernel` (the default path); `reference` is the plain "
        'whole-matrix recursion (`method="reference"`), run in the same session. Each '
        "measurement is a fresh process; times are medians of up to "
        f"{args.repeats} calls (fewer for calls that take long); peak is the process's maximum "
        "resident set size (a process that has imported wideinf and made its points holds "
        f"about {min(r['baseline_mb'] for pair in results.values() for r in pair if r):.0f} MB "
        "before the first call). The tanh network's duals are a Mehler series "
        "(docs/smooth-activations.md); the reference is "
        f"skipped above N = {REFERENCE_MAX_DEFAULT} (at 8000 it would hold about 4 GB).",
        "",
        *env,
        f"- load average at end: {end_load}",
        "",
        *warning,
        "## Kernel in process",
        "",
        *lines,
        "",
        "## The command",
        "",
        *cmd_lines,
        "",
        "## float32 against float64",
        "",
        "Largest absolute difference relative to the largest entry. Nearly parallel inputs "
        "(a dense 1-D grid) are the hard case for the NTK: the angle between two points "
        "comes from `q11 q22 - q12^2`, which float32 resolves only to about its square root.",
        "",
        *err_lines,
        "",
        *against,
        "## Acceptance",
        "",
        *checks,
        "",
    ]
    # The other benchmark scripts keep their sections below OTHERS in the same file.
    old = args.out.read_text().splitlines() if args.out.exists() else []
    kept = old[old.index(OTHERS) :] if OTHERS in old else ["", OTHERS]
    args.out.write_text("\n".join(doc + kept) + "\n")
    print(f"wrote {args.out}")


OTHERS = "<!-- Sections below are written by the other benchmark scripts. -->"


def _replace_section(path: Path, section: list[str]) -> None:
    """Put ``section`` (starting with its "## " title) in place of its namesake, or before
    "## Acceptance"."""
    lines = path.read_text().splitlines() if path.exists() else []
    title = section[0]
    if title in lines:
        start = lines.index(title)
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
    else:
        start = end = lines.index("## Acceptance") if "## Acceptance" in lines else len(lines)
    path.write_text("\n".join(lines[:start] + section + lines[end:]) + "\n")


if __name__ == "__main__":
    main()
