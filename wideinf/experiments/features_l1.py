"""The minimum-L1-norm fit in the perfect-vs-random features toy model.

The L1 counterpart of the minimum-L2-norm fit of :mod:`wideinf.experiments.features`:
``w = argmin ||w||_1`` s.t. ``F w = y``, ties broken by least L2 norm
(:func:`wideinf.experiments.features_solvers.min_l1_interpolation`, where the tie-break is
justified). In this model the LP has a closed-form solution, used for the sweep and checked
against the LP in every run (:func:`lp_check`):

The toy model. Features are +-1 on the training items and the labels are +-1, so for any
weights ``|(F w)_i| <= ||w||_1``: interpolating needs ``||w||_1 >= 1``, and ``lam = y / N``
certifies that the value is exactly 1 (a perfect column alone costs 1). Equality forces every
used column, times the sign of its weight, to equal y on all N items. So the L1 minimisers are
exactly the non-negative (signed) weights summing to 1 on the n_p perfect columns and the k
random columns equal to +-y on the training items; the least-L2 one weights each 1 / (n_p + k),
and the perfect share is ``n_p / (n_p + k)``. As a whole it is unique only when k = 0: with
k > 0 every share in [0, 1] is attained by some minimiser. With the random columns fair coins,
``k ~ Binomial(m, 2^(1-N))``, which is :func:`theory_share_l1_finite_m`; its M -> infinity limit
``p / (p + (1 - p) 2^(1-N))`` crosses 1/2 at ``N* = 1 + log2((1 - p) / p)``, linear in the
complexity C = log2(1/p) like the Bayesian learner's, not exponential like the L2 fit's.
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln, xlog1py, xlogy

from .features_solvers import min_l1_interpolation

__all__ = [
    "L1Tally",
    "agreement_lengths",
    "copies_per_size",
    "fit_min_l1",
    "theory_share_l1",
    "theory_share_l1_finite_m",
    "n_star_l1_theory",
    "lp_check",
    "report_lines",
]


def agreement_lengths(rnd, y) -> np.ndarray:
    """For each +-1 column, how many leading items it agrees on with +y or with -y.

    Column j equals +-y on the first N items iff its length is >= N (every column agrees with
    one of the two on the first item).

    Parameters
    ----------
    rnd : ndarray, shape (c, N_max)
        c columns (one per row), entries +-1.
    y : ndarray, shape (N_max,)
        Labels +-1.

    Returns
    -------
    ndarray of int64, shape (c,), values in 1 .. N_max
    """
    n_max = rnd.shape[1]
    agree = (rnd * y[None, :]) * (rnd[:, :1] * y[0]) > 0  # (c, N_max): sign-matched agreement
    first_miss = np.argmin(agree, axis=1)  # first False, 0 if there is none
    return np.where(agree.all(axis=1), n_max, first_miss).astype(np.int64)


def copies_per_size(histogram, ns) -> np.ndarray:
    """Numbers of columns equal to +-y on the first N items, for every N in ``ns``.

    Parameters
    ----------
    histogram : ndarray, shape (N_max + 1,)
        ``histogram[L]`` columns have agreement length L (:func:`agreement_lengths`).
    ns : sequence of int, length A

    Returns
    -------
    ndarray of int64, shape (A,)
    """
    at_least = np.cumsum(histogram[::-1])[::-1]  # at_least[L] = #columns with length >= L
    return at_least[np.asarray(ns, dtype=np.int64)]


def fit_min_l1(n_perfect: int, copies) -> dict:
    """The least-L2 minimum-L1 fit of the toy model, from the numbers of accidental copies.

    Parameters
    ----------
    n_perfect : int
        Perfect columns n_p.
    copies : ndarray of int, shape (A,)
        Random columns equal to +-y on the training items, k, for each training size.

    Returns
    -------
    dict of ndarray, each shape (A,)
        ``share`` = n_p / (n_p + k), the perfect share of the least-L2 minimiser;
        ``share_min`` and ``share_max``, the smallest and largest perfect share of any
        minimiser: 0 (all weight on the copies) unless k = 0, and 1 (perfect columns alone).
    """
    k = np.asarray(copies, dtype=float)
    return {
        "share": n_perfect / (n_perfect + k),
        "share_min": np.where(k > 0, 0.0, 1.0),
        "share_max": np.ones_like(k),
    }


def theory_share_l1(p, n):
    """Infinite-M perfect share of the L1 fit, ``p / (p + (1 - p) 2^(1-N))``; broadcasts."""
    p = np.asarray(p, dtype=float)
    q = 2.0 ** (1.0 - np.asarray(n, dtype=float))  # chance a coin column is +-y on N items
    return p / (p + (1.0 - p) * q)


def theory_share_l1_finite_m(n_perfect, n_random, n):
    """Exact mean and sd of ``n_p / (n_p + k)``, ``k ~ Binomial(m, 2^(1-N))``, at finite M.

    Parameters
    ----------
    n_perfect, n_random : ndarray of int, shape (B,)
        n_p and m = M - n_p for each configuration.
    n : ndarray, shape (A,)
        Training sizes.

    Returns
    -------
    mean, sd : ndarray, each shape (B, A)
    """
    n_perfect = np.asarray(n_perfect, dtype=np.int64)
    n_random = np.asarray(n_random, dtype=np.int64)
    q = 2.0 ** (1.0 - np.asarray(n, dtype=float))  # (A,)
    mean = np.empty((len(n_perfect), len(q)))
    sd = np.empty_like(mean)
    for b, (n_p, m) in enumerate(zip(n_perfect, n_random)):
        k = np.arange(m + 1)  # (m + 1,)
        share = n_p / (n_p + k)
        pmf = _binomial_pmf(m, q)  # (A, m + 1)
        mean[b] = pmf @ share
        sd[b] = np.sqrt(np.sum(pmf * (share[None, :] - mean[b][:, None]) ** 2, axis=1))
    return mean, sd


def _binomial_pmf(m: int, q) -> np.ndarray:
    """``P(k) = C(m, k) q^k (1 - q)^(m - k)`` for k = 0 .. m, through logs (q may be 2^-1000).

    Shape (len(q), m + 1).
    """
    k = np.arange(m + 1, dtype=float)
    log_choose = gammaln(m + 1) - gammaln(k + 1) - gammaln(m - k + 1)  # (m + 1,)
    q = np.asarray(q, dtype=float)[:, None]
    return np.exp(log_choose + xlogy(k, q) + xlog1py(m - k, -q))  # 0 log 0 = 0 (q = 1, k = m)


def n_star_l1_theory(p):
    """Where the infinite-M L1 share crosses 1/2: ``N* = 1 + log2((1 - p) / p)``."""
    p = np.asarray(p, dtype=float)
    return 1.0 + np.log2((1.0 - p) / p)


def lp_check(y, columns, n_perfect, copies, ns) -> dict:
    """Solve the toy model's L1 fit as a general LP and compare with :func:`fit_min_l1`.

    Parameters
    ----------
    y : ndarray, shape (N_max,)
    columns : ndarray, shape (m, n_max)
        The m random columns on the first n_max items (one per row).
    n_perfect : int
    copies : ndarray of int, shape (A,)
        k for every N in ``ns`` (all N <= n_max).
    ns : sequence of int, length A

    Returns
    -------
    dict of ndarray, each shape (A,)
        ``share_lp``, the perfect share of the least-L2 LP minimiser; ``share_vertex``, that of
        the LP solver's vertex; ``value``, the minimum L1 norm; ``share_closed``,
        :func:`fit_min_l1`'s share n_p / (n_p + k) for comparison.
    """
    out = {k: np.empty(len(ns)) for k in ("share_lp", "share_vertex", "value")}
    for i, n in enumerate(ns):
        f = np.hstack([np.repeat(y[:n, None], n_perfect, axis=1), columns[:, :n].T])  # (n, M)
        sol = min_l1_interpolation(f, y[:n])
        out["share_lp"][i] = sol.w[:n_perfect].sum()
        out["share_vertex"][i] = sol.vertex[:n_perfect].sum()
        out["value"][i] = sol.value
    out["share_closed"] = fit_min_l1(n_perfect, copies)["share"]
    return out


class L1Tally:
    """The L1 fits of :func:`wideinf.experiments.features.run`, accumulated seed by seed.

    The random columns are not stored: each block of them, as it is drawn, only adds to a
    histogram of agreement lengths with +-y, from which the number k of copies of +-y among
    the first m columns follows for every N. The first seed's columns on the first
    ``n_check`` items are kept for :func:`lp_check`.

    Parameters
    ----------
    ns : ndarray of int, shape (A,)
        Training sizes.
    n_seeds, n_configs : int
        S repetitions and B fractions p.
    n_check : int
        Largest N solved as a general LP on the first seed (0: none).
    """

    def __init__(self, ns, n_seeds: int, n_configs: int, n_check: int):
        self.ns = np.asarray(ns, dtype=np.int64)
        shape = (n_seeds, n_configs, len(self.ns))
        self.share = np.empty(shape)  # (S, B, A)
        self.share_min = np.empty(shape)
        self.check_ns = self.ns[self.ns <= n_check]
        self.check = {}  # key -> (B, A_check), first seed only
        self._y = self._hist = self._kept = None
        self._first = True

    def start_seed(self, y):
        """Begin a repetition with labels ``y`` (N_max,); returns the per-block observer."""
        self._y = y
        self._hist = np.zeros(len(y) + 1, dtype=np.int64)
        self._kept = [] if self._first and len(self.check_ns) else None  # first seed only
        return self._observe

    def _observe(self, rnd):
        """Add a block of random columns (c, N_max) to the histogram."""
        self._hist += np.bincount(agreement_lengths(rnd, self._y), minlength=len(self._hist))
        if self._kept is not None:
            self._kept.append(rnd[:, : self.check_ns[-1]].astype(np.int8))

    def record(self, s: int, b: int, n_perfect: int):
        """Fit configuration b (n_p perfect columns and every random column drawn so far)."""
        copies = copies_per_size(self._hist, self.ns)  # (A,)
        out = fit_min_l1(n_perfect, copies)
        self.share[s, b], self.share_min[s, b] = out["share"], out["share_min"]
        if self._kept is not None:
            columns = np.vstack(self._kept).astype(float)  # (m, n_check)
            a_check = len(self.check_ns)
            got = lp_check(self._y, columns, n_perfect, copies[:a_check], self.check_ns)
            for key, v in got.items():
                self.check.setdefault(key, np.full((self.share.shape[1], a_check), np.nan))[b] = v

    def finish_seed(self):
        """End a repetition (the columns are kept on the first one only)."""
        self._kept = None
        self._first = False

    def arrays(self, ps, counts, m_random, n_fine, c_fine) -> dict:
        """Saved arrays of the L1 fit (``n_star_l1`` is added by the caller), each (B, A)
        unless stated: ``perfect_share_l1`` and ``perfect_share_l1_sd`` (mean and sd over
        seeds of n_p / (n_p + k)); ``perfect_share_l1_min`` (mean of the smallest share any
        L1 minimiser has; the largest is always 1); ``theory_share_l1`` (M -> infinity),
        ``theory_share_l1_finite_m`` and ``theory_share_l1_finite_m_sd`` (exact at this M);
        ``n_star_l1_theory`` (B,) 1 + log2((1 - p) / p); ``theory_share_l1_fine`` (B, F);
        ``n_star_l1_theory_fine`` (F,) 1 + log2(2^C - 1) on the grid ``c_fine`` (nan if <= 0).
        """
        ps = np.asarray(ps, dtype=float)
        mean_m, sd_m = theory_share_l1_finite_m(counts, m_random, self.ns)
        nst_fine = n_star_l1_theory(2.0 ** -np.asarray(c_fine))  # (F,) nan where not positive
        return {
            "perfect_share_l1": self.share.mean(axis=0),
            "perfect_share_l1_sd": self.share.std(axis=0, ddof=1),
            "perfect_share_l1_min": self.share_min.mean(axis=0),
            "theory_share_l1": theory_share_l1(ps[:, None], self.ns[None, :]),
            "theory_share_l1_finite_m": mean_m,
            "theory_share_l1_finite_m_sd": sd_m,
            "n_star_l1_theory": n_star_l1_theory(ps),
            "theory_share_l1_fine": theory_share_l1(ps[:, None], np.asarray(n_fine)[None, :]),
            "n_star_l1_theory_fine": np.where(nst_fine > 0, nst_fine, np.nan),
        }

    def summary(self, arrays, n_seeds: int) -> dict:
        """Measured vs exact finite-M theory, and the in-run LP check (first seed, N <= n_check).

        The standard error of the mean share is the sample sd / sqrt(S), but never below the
        exact sd / sqrt(S): a share that is 1 in every seed still has a chance of falling below.
        """
        dev = arrays["perfect_share_l1"] - arrays["theory_share_l1_finite_m"]  # (B, A)
        se = np.maximum(arrays["perfect_share_l1_sd"], arrays["theory_share_l1_finite_m_sd"])
        se = se / np.sqrt(n_seeds)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(se > 0, np.abs(dev) / se, np.where(np.abs(dev) < 1e-12, 0.0, np.inf))
        out = {"l1_share_max_abs_dev": float(np.max(np.abs(dev))), "l1_share_max_z": float(z.max())}
        if self.check:
            lp_dev = np.abs(self.check["share_lp"] - self.check["share_closed"])
            out["l1_lp_check_max_dev"] = float(np.max(lp_dev))
            out["l1_lp_value_max_dev"] = float(np.max(np.abs(self.check["value"] - 1.0)))
            out["l1_vertex_share_mean"] = float(np.mean(self.check["share_vertex"]))
        return out


def report_lines(arrays, summary) -> list[str]:
    """Measured vs theory L1 N* per p, the share's deviation, and the in-run LP check."""
    a, s = arrays, summary
    lines = ["L1 fit:  p  N* measured (+- sd)  N* = 1 + log2((1-p)/p)"]
    for b, p in enumerate(a["p"]):
        meas, sd = a["n_star_l1"][b], a["n_star_l1_sd"][b]
        text = f"{meas:11.4g} +- {sd:<6.2g}" if np.isfinite(meas) else f"{'off grid':>21}"
        lines.append(f"{p:11.4g} {text}{a['n_star_l1_theory'][b]:14.4g}")
    lines.append(
        f"L1 share vs exact finite-M theory: max |dev| {s['l1_share_max_abs_dev']:.4f} "
        f"({s['l1_share_max_z']:.1f} SE)"
    )
    if "l1_lp_check_max_dev" in s:
        lines.append(
            f"L1 closed form vs HiGHS LP (first seed): max |dev| {s['l1_lp_check_max_dev']:.1e}; "
            f"the LP's own vertex gives the perfect features {s['l1_vertex_share_mean']:.2f} "
            "of the fit on average"
        )
    return lines
