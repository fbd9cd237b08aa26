"""Speed of `wideinf predict` against `wideinf kernel`, and of fitting W_std and b_std.

1. `wideinf predict` on N = 4000 training and 1000 test rows of dimension 40 (CSV files), and
   `wideinf kernel` on the same 5000 rows (one .npy), each timed end to end: process start to
   files written. The two commands alternate, ``--repeats`` times each, and the medians are
   compared: the same machine state for both.
2. Fitting W_std and b_std by marginal likelihood (L-BFGS-B, forward-mode gradients) on the
   first 1000 training rows, in a fresh process per network: seconds, evaluations, result.

Usage::

    python benchmarks/bench_predict.py            # writes its section of benchmarks/RESULTS.md
    python benchmarks/bench_predict.py --quick    # smaller, to check the script (prints only)

The machine should be otherwise idle: every number is a wall-clock time.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
NETWORKS = {
    "relu": ["dense", "relu", "dense", "relu", "dense"],
    "erf": ["dense", "erf", "dense"],
    "gabor-relu": ["dense", "gabor", "dense", "relu", "dense"],
}
ARCH = "architecture:\n  layers: [dense, relu, dense, relu, dense]\n  W_std: 1.5\n  b_std: 0.05\n"
START, END = "<!-- bench_predict: start -->", "<!-- bench_predict: end -->"


def make_data(folder: Path, n_train: int, n_test: int, dim: int) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.standard_normal((n_train + n_test, dim))
    y = np.sin(x[:, 0]) + 0.5 * x[:, 1] + 0.1 * rng.standard_normal(len(x))
    header = [f"x{i}" for i in range(dim)] + ["y"]
    for name, rows in (("train.csv", slice(0, n_train)), ("test.csv", slice(n_train, None))):
        with open(folder / name, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            writer.writerows(np.column_stack([x[rows], y[rows]]).tolist())
    np.save(folder / "all.npy", x)
    (folder / "arch.yaml").write_text(ARCH)


def _timed(args, folder) -> float:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t0 = time.perf_counter()
    subprocess.run(args, cwd=folder, env=env, check=True, capture_output=True)
    return time.perf_counter() - t0


def commands(folder: Path, repeats: int) -> dict:
    cli = [sys.executable, "-m", "wideinf.cli"]
    runs = {
        "wideinf kernel (5000 rows)": cli + ["kernel", "arch.yaml", "--x1", "all.npy", "--out", "K.npz"],
        "wideinf predict (nngp)": cli + ["predict", "arch.yaml", "--train", "train.csv", "--test",
                                         "test.csv", "--target", "y", "--out", "pred.csv",
                                         "--diag-reg", "1e-4"],
        "wideinf predict (ntk, t = inf)": cli + ["predict", "arch.yaml", "--train", "train.csv",
                                                 "--test", "test.csv", "--target", "y", "--out",
                                                 "pred.csv", "--diag-reg", "1e-4", "--kernel", "ntk"],
        "wideinf predict (nngp, --float32)": cli + ["predict", "arch.yaml", "--train", "train.csv",
                                                    "--test", "test.csv", "--target", "y", "--out",
                                                    "pred.csv", "--diag-reg", "1e-4", "--float32"],
    }  # fmt: skip
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, args in runs.items():  # alternate, so both see the same machine state
            times[name].append(_timed(args, folder))
    return {name: statistics.median(t) for name, t in times.items()}


def fit_worker(folder: str, network: str, n: int) -> None:
    import numpy as np

    from wideinf.architecture import Architecture
    from wideinf.evidence import fit_hyperparameters

    x = np.load(Path(folder) / "all.npy")[:n]
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    rng = np.random.default_rng(1)
    y = np.sin(x[:, 0]) + 0.5 * x[:, 1] + 0.1 * rng.standard_normal(n)
    y = (y - y.mean()) / y.std()
    arch = Architecture.from_dict({"layers": NETWORKS[network], "W_std": 1.5, "b_std": 0.05})
    fit = fit_hyperparameters(
        arch, x, y, ("W_std", "b_std"), diag_reg=0.01, diag_reg_relative=False
    )
    print(json.dumps({"seconds": fit.seconds, "evaluations": fit.evaluations,
                      "W_std": fit.values["W_std"], "b_std": fit.values["b_std"],
                      "lml": fit.log_marginal_likelihood, "converged": fit.converged}))  # fmt: skip


def fits(folder: Path, n: int) -> dict:
    out = {}
    for network in NETWORKS:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        args = [sys.executable, __file__, "--fit-worker", str(folder), network, str(n)]
        result = subprocess.run(args, env=env, check=True, capture_output=True, text=True)
        out[network] = json.loads(result.stdout.strip().splitlines()[-1])
    return out


def _environment() -> list[str]:
    import numpy as np

    return [
        f"- CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores available",
        f"- Python {platform.python_version()}, numpy {np.__version__}",
        "- BLAS environment: "
        + (
            ", ".join(
                f"{k}={os.environ[k]}"
                for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")
                if k in os.environ
            )
            or "none set"
        ),  # fmt: skip
    ]


def report(cmd: dict, fitted: dict, loads: tuple, n: int, sizes: tuple) -> str:
    kernel = cmd["wideinf kernel (5000 rows)"]
    lines = [
        START,
        "## Predictions on your own data",
        "",
        f"Written by `python benchmarks/bench_predict.py` on {time.strftime('%Y-%m-%d')}.",
        "",
        *_environment(),
        f"- load average at start: {loads[0]}",
        f"- load average at end: {loads[1]}",
        "",
        f"`wideinf predict` on {sizes[0]} training and {sizes[1]} test rows of dimension "
        f"{sizes[2]} (CSV, Dense-ReLU-Dense-ReLU-Dense, `--diag-reg 1e-4`) against `wideinf "
        f"kernel` on the same {sizes[0] + sizes[1]} rows (.npy), process start to files written, "
        "median of runs that alternate between the commands:",
        "",
        "| command | wall (s) | / kernel |",
        "|---|---:|---:|",
        *[f"| {name} | {t:.2f} | {t / kernel:.2f}x |" for name, t in cmd.items()],
        "",
        f"Fitting W_std and b_std (L-BFGS-B on the NNGP log marginal likelihood, forward-mode "
        f"gradients, noise variance 0.01) on N = {n} standardised rows of dimension {sizes[2]}, "
        "from W_std = 1.5, b_std = 0.05, in a fresh process:",
        "",
        "| network | seconds | evaluations | W_std | b_std | log marginal likelihood |",
        "|---|---:|---:|---:|---:|---:|",
        *[
            f"| {net} | {r['seconds']:.2f} | {r['evaluations']} | {r['W_std']:.4g} | "
            f"{r['b_std']:.4g} | {r['lml']:.2f} |"
            for net, r in fitted.items()
        ],  # fmt: skip
        END,
    ]
    return "\n".join(lines) + "\n"


def write_section(path: Path, text: str) -> None:
    old = path.read_text() if path.exists() else ""
    if START in old and END in old:
        head, rest = old.split(START, 1)
        new = head + text.rstrip("\n") + rest.split(END, 1)[1]
    else:
        new = old.rstrip("\n") + "\n\n" + text
    path.write_text(new)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--fit-worker":
        fit_worker(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes; print only")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args()
    sizes = (400, 100, 40) if args.quick else (4000, 1000, 40)
    n_fit = 200 if args.quick else 1000
    loads = [", ".join(f"{v:.2f}" for v in os.getloadavg())]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_data(folder, *sizes)
        cmd = commands(folder, 1 if args.quick else args.repeats)
        fitted = fits(folder, n_fit)
    loads.append(", ".join(f"{v:.2f}" for v in os.getloadavg()))
    text = report(cmd, fitted, tuple(loads), n_fit, sizes)
    print(text)
    if not args.quick:
        write_section(args.out, text)


if __name__ == "__main__":
    main()
