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

The series runs compiled (numba) when numba is importable; ``--series``
chooses: ``compiled``, ``numpy`` (the fallback), or ``both`` (each smooth activation timed both
ways, alternating with erf in every round). Times are CPU seconds of the process (both tile
threads), the steadier measure on a shared machine; the wall time is printed beside them.

Usage::

    python benchmarks/bench_smooth.py              # N = 4000
    python benchmarks/bench_smooth.py --series both --repeats 3
    python benchmarks/bench_smooth.py --n 1000 --repeats 1
"""

from __future__ import annotations

import argparse
import math
import os
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
from wideinf.kernels import smooth  # noqa: E402

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


def _network(name: str):
    return Architecture.from_dict(
        {"layers": ["dense", name, "dense", name, "dense"], "W_std": 1.5, "b_std": 0.05}
    )


def _series(path: str) -> None:
    """Select the smooth activations' series: "compiled" (numba) or "numpy"."""
    smooth.USE_COMPILED = path == "compiled"


def time_kernel(name: str, n: int, repeats: int, seed: int = 0, equal_norms: bool = False):
    """Median seconds of ``repeats`` calls, and the first call's (which builds any tables)."""
    arch = _network(name)
    rng = np.random.default_rng(seed)
    arch.kernel(rng.standard_normal((20, 16)))  # warm-up: lazy imports, rules
    times = []
    for _ in range(repeats):
        x = _points(rng, n, equal_norms)
        start = time.perf_counter()
        arch.kernel(x)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2], times[0]


def cpu_rounds(runs, n: int, repeats: int, seed: int = 0):
    """CPU and wall seconds of each (name, series) in ``runs``, alternating: every round calls
    each once, on fresh points. Returns {(name, series): (median cpu, median wall)}."""
    rng = np.random.default_rng(seed)
    nets = {}
    for name, path in runs:  # warm-up: lazy imports, numba's cached code, rules
        _series(path)
        nets[name] = _network(name)
        nets[name].kernel(rng.standard_normal((20, 16)))
    times = {run: [] for run in runs}
    for _ in range(repeats):
        for name, path in runs:
            _series(path)
            x = _points(rng, n, False)
            cpu, wall = time.process_time(), time.perf_counter()
            nets[name].kernel(x)
            times[(name, path)].append((time.process_time() - cpu, time.perf_counter() - wall))
    return {run: tuple(float(np.median(c)) for c in zip(*t)) for run, t in times.items()}


def first_compile_seconds() -> float:
    """Seconds of the first smooth series in a fresh process: importing numba and compiling
    (or loading numba's cache) beside the numpy path's own first call."""
    code = (
        "import time, numpy as np; from wideinf import Architecture; "
        "from wideinf.kernels import smooth; smooth.USE_COMPILED = {flag}; "
        "a = Architecture.from_dict({{'layers': ['dense', 'tanh', 'dense']}}); "
        "t = time.perf_counter(); a.kernel(np.ones((4, 2))); print(time.perf_counter() - t)"
    )
    import subprocess

    def run(flag):
        out = subprocess.run(
            [sys.executable, "-c", code.format(flag=flag)],
            capture_output=True, text=True, check=True, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        return float(out.stdout.split()[-1])

    return run(True) - run(False)


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
    parser.add_argument(
        "--series",
        choices=("compiled", "numpy", "both"),
        default="compiled" if smooth._compiled() else "numpy",
    )
    parser.add_argument("--no-equal-norms", action="store_true", help="skip the second table")
    args = parser.parse_args(argv)
    paths = ("compiled", "numpy") if args.series == "both" else (args.series,)
    runs = [(name, "closed") for name in CLOSED] + [(s, p) for s in SMOOTH for p in paths]
    load = os.getloadavg()
    print(f"load average at start: {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}", file=sys.stderr)
    times = cpu_rounds(runs, args.n, args.repeats)
    erf = times[("erf", "closed")]
    end = os.getloadavg()
    print(f"N = {args.n}, d = 16, 2 hidden layers, NNGP + NTK, median of {args.repeats} rounds")
    print(f"load average: start {load[0]:.2f}, end {end[0]:.2f} (1 min), {os.cpu_count()} cores")
    if "compiled" in paths:
        print(f"first compiled series in a fresh process: +{first_compile_seconds():.2f} s\n")
    print("| activation | series | CPU (s) | / erf | wall (s) | target | max rel. error |")
    print("|---|---|---|---|---|---|---|")
    for (name, path), (cpu, wall) in times.items():
        target = "" if name in CLOSED else f"<= {TARGET.get(name, 5.0):g}"
        if path != "closed":
            _series(path)
        err_s = f"{max_error(name):.1e}"
        print(
            f"| {name} | {path} | {cpu:.2f} | {cpu / erf[0]:.1f} | {wall:.2f} | {target} | {err_s} |"
        )
    if args.no_equal_norms:
        return
    print("\nEqual norms (|x|^2 / d = 1, one variance per layer: the smooth duals' tables):\n")
    print("| activation | time (s) | / erf | first call (s), builds the tables |")
    print("|---|---|---|---|")
    _series(paths[0])
    rows = [
        (name, *time_kernel(name, args.n, args.repeats, equal_norms=True))
        for name in CLOSED + SMOOTH
    ]
    erf_equal = dict((r[0], r[1]) for r in rows)["erf"]
    for name, equal, first in rows:
        print(f"| {name} | {equal:.2f} | {equal / erf_equal:.1f} | {first:.2f} |")


if __name__ == "__main__":
    main()
