"""Speed and accuracy of the smooth activations beside the closed forms relu and erf.

For each activation: a 2-hidden-layer network (dense, act, dense, act, dense; W_std 1.5,
b_std 0.05, NTK parameterization) on N points of dimension 16 (standard normal), NNGP and NTK
together, timed as users call it, ``Architecture.from_dict({...}).kernel(x)``, float64; the
median of ``--repeats`` calls, each on fresh points (so no call reuses another's per-point
terms), after a warm-up call on 20 points. All in one run, one after the other, so the ratios
to erf share the machine's load.

The error column is the largest error of the NNGP dual and the NTK factor against nested
adaptive quadrature (``tests/smooth_reference.py``) over variances (1e-4, 3), (0.5, 0.5),
(3, 3), (100, 100) and correlations -1, -0.3, 0.5, 0.95, 1, relative to max(|value|, 1e-3).

A second table times the same networks on points of equal norm (``|x|^2 / d = 1``), where
every point has one variance at every layer and the smooth activations' duals come from
tables in the correlation (``wideinf/kernels/smooth_table.py``); its first-call column
includes building them.

Usage::

    python benchmarks/bench_smooth.py              # N = 4000
    python benchmarks/bench_smooth.py --n 1000 --repeats 1
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from smooth_reference import FUNCTIONS, expectation  # noqa: E402

from wideinf import Architecture  # noqa: E402
from wideinf.activations import make_activation  # noqa: E402

CLOSED = ("relu", "erf")
SMOOTH = ("tanh", "sigmoid", "softplus", "swish", "mish", "elu", "selu", "softsign")
PAIRS = ((1e-4, 3.0), (0.5, 0.5), (3.0, 3.0), (100.0, 100.0))
CORRELATIONS = (-1.0, -0.3, 0.5, 0.95, 1.0)
TARGET = {"tanh": 3.0}  # time / erf's; every other smooth activation: 5


def _points(rng, n: int, equal_norms: bool):
    x = rng.standard_normal((n, 16))
    if equal_norms:  # |x|^2 / d = 1: every point has one variance at every layer (the tables)
        x /= np.sqrt(np.einsum("ij,ij->i", x, x) / 16)[:, None]
    return x


def time_kernel(name: str, n: int, repeats: int, seed: int = 0, equal_norms: bool = False):
    """Median seconds of ``repeats`` calls, and the first call's (which builds any tables)."""
    arch = Architecture.from_dict(
        {"layers": ["dense", name, "dense", name, "dense"], "W_std": 1.5, "b_std": 0.05}
    )
    rng = np.random.default_rng(seed)
    arch.kernel(rng.standard_normal((20, 16)))  # warm-up: lazy imports, rules
    times = []
    for _ in range(repeats):
        x = _points(rng, n, equal_norms)
        start = time.perf_counter()
        arch.kernel(x)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2], times[0]


def max_error(name: str) -> float:
    act = make_activation(name)
    f, df = FUNCTIONS[name]
    worst = 0.0
    for q1, q2 in PAIRS:
        for rho in CORRELATIONS:
            q12 = rho * math.sqrt(q1 * q2)
            for got, g in ((act.nngp(q1, q2, q12), f), (act.factor(q1, q2, q12), df)):
                ref = expectation(g, q1, q2, rho)[0]
                worst = max(worst, abs(float(got) - ref) / max(abs(ref), 1e-3))
    return worst


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    rows = []
    for name in CLOSED + SMOOTH:
        seconds, _ = time_kernel(name, args.n, args.repeats)
        equal, first = time_kernel(name, args.n, args.repeats, equal_norms=True)
        rows.append((name, seconds, equal, first, max_error(name)))
        print(f"  {name}: {seconds:.2f} s, equal norms {equal:.2f} s", file=sys.stderr, flush=True)
    erf = dict((r[0], r[1:4]) for r in rows)["erf"]
    print(f"N = {args.n}, d = 16, 2 hidden layers, NNGP + NTK, median of {args.repeats}\n")
    print("Standard normal points (each its own variance):\n")
    print("| activation | time (s) | / erf | target | max rel. error |")
    print("|---|---|---|---|---|")
    for name, seconds, _, _, err in rows:
        target = "" if name in CLOSED else f"<= {TARGET.get(name, 5.0):g}"
        print(f"| {name} | {seconds:.2f} | {seconds / erf[0]:.1f} | {target} | {err:.1e} |")
    print("\nEqual norms (|x|^2 / d = 1, one variance per layer: the smooth duals' tables):\n")
    print("| activation | time (s) | / erf | first call (s), builds the tables |")
    print("|---|---|---|---|")
    for name, _, equal, first, _ in rows:
        print(f"| {name} | {equal:.2f} | {equal / erf[1]:.1f} | {first:.2f} |")


if __name__ == "__main__":
    main()
