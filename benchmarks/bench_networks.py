"""Speed and memory of finite-network gradient descent: ``training.train`` and ``lazy.descend``.

The setting is the lazy-training part of ``experiments/kernel_convergence.yaml`` at its two
widest widths: the network Dense-Gabor-Dense-ReLU-Dense (W_std 1.5, b_std 0.05, NTK
parameterization), N = 8 training points (the cell centres of [-3, 3], y = sin x), outputs
recorded at the M = 21 grid points every 5 steps, 40 steps of learning rate 1, one network
(the experiment trains one network per block at these widths). Each call runs in a fresh
Python process (its peak memory is its own), after initialisation; times are medians of
``--repeats`` calls. The outputs of every call are compared with those of ``train`` in this
checkout.

With ``--baseline DIR`` (another checkout of wideinf, e.g. ``git worktree add /tmp/old v0.1.0``)
the same calls also run on that code, interleaved with this checkout's, so the ratios come from
one run on one machine state.

Usage::

    python benchmarks/bench_networks.py [--baseline DIR] [--repeats 3] [--widths 2048 8192]
                                        [--threads 1]

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
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CHECKOUT = HERE.parent

ARCHITECTURE = {
    "layers": ["dense", "gabor", "dense", "relu", "dense"],
    "W_std": 1.5,
    "b_std": 0.05,
    "parameterization": "ntk",
}
N_TRAIN, N_GRID, STEPS, RECORD_EVERY, LEARNING_RATE = 8, 21, 40, 5, 1.0
METHODS = ("train", "descend")

# Runs in the child process, with the checkout under test first on sys.path.
WORKER = r"""
import json, resource, sys, time
import numpy as np
from wideinf.architecture import Architecture
from wideinf.networks import init_params
from wideinf.training import train
from wideinf.experiments.lazy import descend

cfg = json.loads(sys.argv[1])
arch = Architecture.from_dict(cfg["architecture"])
cell = 6.0 / cfg["n_train"]
x = (-3.0 + cell * (np.arange(cfg["n_train"]) + 0.5))[:, None]  # (N, 1)
xg = np.linspace(-3.0, 3.0, cfg["n_grid"])[:, None]  # (M, 1)
y = np.sin(x[:, 0])
params = init_params(arch, 1, cfg["width"], 1, np.random.default_rng(0))
times = []
for _ in range(cfg["repeats"]):
    start = time.perf_counter()
    if cfg["method"] == "train":
        f_path = train(arch, params, x, y, cfg["lr"], cfg["steps"], x_eval=xg,
                       record_every=cfg["record_every"], record_outputs=True,
                       quiet=True).f_eval_path
    else:
        f_path = descend(arch, params, x, y, cfg["lr"], cfg["steps"], x_record=xg,
                         record_every=cfg["record_every"]).f_path
    times.append(time.perf_counter() - start)
np.save(cfg["out"], f_path)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": sorted(times)[len(times) // 2], "peak_mb": peak}))
"""


def run_one(checkout: Path, method: str, width: int, repeats: int, out: Path) -> dict:
    cfg = {
        "architecture": ARCHITECTURE,
        "n_train": N_TRAIN,
        "n_grid": N_GRID,
        "steps": STEPS,
        "record_every": RECORD_EVERY,
        "lr": LEARNING_RATE,
        "width": width,
        "method": method,
        "repeats": repeats,
        "out": str(out),
    }
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    proc = subprocess.run(
        [sys.executable, "-c", WORKER, json.dumps(cfg)],
        env=env,
        cwd=checkout,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{checkout} {method} width {width} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, help="another wideinf checkout to compare with")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--widths", type=int, nargs="+", default=[2048, 8192])
    parser.add_argument("--threads", type=int, help="BLAS threads per call (default: unset)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(args.threads)

    checkouts = [("this checkout", CHECKOUT)]
    if args.baseline is not None:
        checkouts.append(("baseline", args.baseline.resolve()))
    print(f"- CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print(f"- Python {platform.python_version()}, numpy {np.__version__}")
    threads = os.environ.get("OPENBLAS_NUM_THREADS", "unset")
    print(f"- BLAS threads (OPENBLAS_NUM_THREADS): {threads}")
    print(f"- load average at start: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"- {STEPS} steps, N = {N_TRAIN}, M = {N_GRID}, record every {RECORD_EVERY}, 1 network")
    print()
    print("| width | code | call | time (s) | per step (ms) | vs baseline train | peak (MB) |"
          " max abs diff of outputs vs this train |")  # fmt: skip
    print("|---:|---|---|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for width in args.widths:
            rows = []
            for label, checkout in checkouts:
                for method in METHODS:
                    out = Path(tmp) / f"{label.replace(' ', '_')}_{method}_{width}.npy"
                    res = run_one(checkout, method, width, args.repeats, out)
                    rows.append((label, method, res, np.load(out)))
            ref = next(r[3] for r in rows if r[0] == "this checkout" and r[1] == "train")
            base = [r[2]["seconds"] for r in rows if r[0] == "baseline" and r[1] == "train"]
            for label, method, res, f_path in rows:
                ratio = f"{base[0] / res['seconds']:.2f}x" if base else ""
                diff = float(np.max(np.abs(f_path - ref)))
                print(
                    f"| {width} | {label} | {method} | {res['seconds']:.2f} | "
                    f"{1e3 * res['seconds'] / STEPS:.0f} | {ratio} | {res['peak_mb']:.0f} | "
                    f"{diff:.1e} |"
                )
    print()
    print(f"- load average at end: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
