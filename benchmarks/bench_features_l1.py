"""Speed of the features toy model's L1 fit: the closed form against the general LP.

``wideinf features`` computes the minimum-L1-norm fit of the toy model from the closed form
n_p / (n_p + k) (``features_l1.agreement_lengths`` + ``copies_per_size`` + ``fit_min_l1``) and
re-solves only N <= ``l1_lp_check`` as a general LP with the least-L2 tie-break
(``features_solvers.min_l1_interpolation``, scipy's HiGHS). This script times both on the same
instances (labels and coin columns from seed 0, n_p = M / 16 perfect columns), in one run, so
the ratio is measured on one machine under one load, and checks that they agree.

The LP itself takes milliseconds; the tie-break's cost grows with the number of distinct
columns on the face read off HiGHS's dual. That dual is often a vertex +-e_i, whose face holds
every column; merged, that is up to 2^(N-1) distinct patterns, so the general solver is meant
for N up to about 10 (N = 16, M = 2048 took 48 s in one trial) and the sweep uses the closed form.

Usage::

    python benchmarks/bench_features_l1.py          # N up to 12, M up to 16384
    python benchmarks/bench_features_l1.py --quick  # two small cases, to check the script

Last results (2 shared cores under heavy load from other jobs, so absolute times are inflated;
the ratios come from one run)::

    |  N |     M | closed form (ms) | LP + tie-break (ms) | ratio | |share diff| |
    |---:|------:|-----------------:|--------------------:|------:|-------------:|
    |  4 |  2048 |            0.089 |                31.2 |   350 |      2.2e-16 |
    |  8 |  2048 |            0.103 |                43.4 |   422 |      8.9e-16 |
    |  8 | 16384 |            0.803 |               373.4 |   465 |      1.1e-15 |
    | 10 | 16384 |            1.039 |               460.0 |   443 |      1.2e-15 |
    | 12 | 16384 |            0.971 |             13427.4 | 13829 |      2.0e-15 |
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from wideinf.experiments import features_l1 as L1
from wideinf.experiments.features_solvers import min_l1_interpolation


def _instance(n, m_total, rng):
    n_perfect = m_total // 16
    y = rng.choice([-1.0, 1.0], n)
    rnd = rng.choice([-1.0, 1.0], (m_total - n_perfect, n))  # one column per row
    return y, rnd, n_perfect


def _closed_form(y, rnd, n_perfect):
    hist = np.bincount(L1.agreement_lengths(rnd, y), minlength=len(y) + 1)
    return L1.fit_min_l1(n_perfect, L1.copies_per_size(hist, [len(y)]))["share"][0]


def _lp(y, rnd, n_perfect):
    f = np.hstack([np.repeat(y[:, None], n_perfect, axis=1), rnd.T])  # (N, M)
    return min_l1_interpolation(f, y).w[:n_perfect].sum()


def _best_of(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    cases = [(4, 2048), (8, 2048)] if args.quick else [
        (4, 2048), (8, 2048), (8, 16384), (10, 16384), (12, 16384),
    ]  # fmt: skip
    rng = np.random.default_rng(0)
    print("|  N |     M | closed form (ms) | LP + tie-break (ms) | ratio | |share diff| |")
    print("|---:|------:|-----------------:|--------------------:|------:|-------------:|")
    for n, m_total in cases:
        y, rnd, n_perfect = _instance(n, m_total, rng)
        t_closed, s_closed = _best_of(lambda: _closed_form(y, rnd, n_perfect), 5)  # noqa: B023
        t_lp, s_lp = _best_of(lambda: _lp(y, rnd, n_perfect), 1 if n > 16 else 2)  # noqa: B023
        print(
            f"| {n:2d} | {m_total:5d} | {1e3 * t_closed:16.3f} | {1e3 * t_lp:19.1f} |"
            f" {t_lp / t_closed:5.0f} | {abs(s_lp - s_closed):12.1e} |"
        )


if __name__ == "__main__":
    main()
