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
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

NETWORKS = {
    "relu": ["dense", "relu", "dense", "relu", "dense"],
    "erf": ["dense", "erf", "dense", "erf", "dense"],
    "gelu": ["dense", "gelu", "dense", "gelu", "dense"],
    "gabor-relu": ["dense", "gabor", "dense", "relu", "dense"],
    "tanh (quadrature)": ["dense", "tanh", "dense", "tanh", "dense"],
}
W_STD, B_STD, DIM = 1.5, 0.05, 16

SIZES = (1000, 2000, 4000, 8000)
QUADRATURE_SIZES = (250, 500, 1000)
# The reference is skipped above these sizes: at N = 8000 it holds about 4 GB of N x N
# temporaries; the quadrature reference takes about a minute at N = 1000.
REFERENCE_MAX = {"tanh (quadrature)": 500}
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
    arch.kernel(x[:20], method=method)  # warm-up: lazy imports, quadrature nodes
    baseline = _maxrss_mb()
    times = []
    while len(times) < repeats:
        start = time.perf_counter()
        k = arch.kernel(x, method=method)
        times.append(time.perf_counter() - start)
        del k
        if sum(times) > budget:
            break
    print(json.dumps({"times": times, "baseline_mb": baseline}))


# ----------------------------------------------------------------------------- parent side


def _run_child(args: list[str]) -> tuple[str, float, float]:
    """Run a child process; return (stdout, wall seconds, peak RSS in MB)."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.stdout.read(), proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{err}")
    return out, wall, usage.ru_maxrss / 1024


def measure(network: str, n: int, method: str, repeats: int, budget: float) -> dict:
    args = [sys.executable, __file__, "--worker", network, str(n), method, str(repeats)]
    args += ["--budget", str(budget)]
    out, _, peak = _run_child(args)
    data = json.loads(out.strip().splitlines()[-1])
    times = sorted(data["times"])
    return {
        "median": times[len(times) // 2],
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
            xx = x[:300] if "quadrature" in network else x
            arch = Architecture.from_dict(_architecture(network))
            k64, k32 = arch.kernel(xx), arch.kernel(xx, dtype=np.float32)
            err = [
                float(
                    np.abs(getattr(k32, m) - getattr(k64, m)).max() / np.abs(getattr(k64, m)).max()
                )
                for m in ("nngp", "ntk")
            ]
            rows.append(
                (label if "quadrature" not in network else label + " (first 300)", network, *err)
            )
    return rows


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
    parser.add_argument("--quick", action="store_true", help="N = 1000 (quadrature 250) only")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args()
    if args.worker:
        network, n, method, repeats = args.worker
        worker(network, int(n), method, int(repeats), args.budget)
        return

    start_load = os.getloadavg()
    env = _environment()
    print("\n".join(env))
    sizes = SIZES[:1] if args.quick else SIZES
    qsizes = QUADRATURE_SIZES[:1] if args.quick else QUADRATURE_SIZES
    header = (
        "| network | N | tiled (s) | reference (s) | speed-up | tiled peak (MB) "
        "| reference peak (MB) | outputs (MB) |"
    )
    lines = [header, "|---|---:|---:|---:|---:|---:|---:|---:|"]
    print(header)
    results = {}
    for network in NETWORKS:
        for n in qsizes if "quadrature" in network else sizes:
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
        "before the first call). The tanh network "
        "integrates by 64-node Gauss-Hermite quadrature, hence the smaller N; the reference is "
        f"skipped above N = {REFERENCE_MAX_DEFAULT} (at 8000 it would hold about 4 GB) and, for "
        f"tanh, above N = {REFERENCE_MAX['tanh (quadrature)']} (about a minute per call).",
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
        "## Acceptance",
        "",
        *checks,
        "",
    ]
    args.out.write_text("\n".join(doc))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
