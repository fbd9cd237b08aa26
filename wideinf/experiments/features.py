"""Perfect vs random features under minimum-norm regression (the essay's toy model).

Linear regression on M fixed features, a fraction p *perfect* (equal to the labels y = +-1) and
the rest fair +-1 coins, by the minimum-L2-norm weights ``w = F^T (F F^T)^+ y``, computed through
the N x N Gram matrix ``G = n_p y y^T + Rnd Rnd^T``. The perfect share ``s = n_p (y . G^+ y)``
tends to ``pN / (pN + 1 - p)`` as M -> infinity, so the perfect features dominate iff
``N > N* = (1 - p) / p = 2^C - 1`` with ``C = log2(1/p)`` bits, where a Bayesian learner needs
only about C points. Derivation, finite-M approximation, test accuracy and the simulation
scheme: docs/theory.md, "Perfect and random features".

With ``regularization: [l2, l1]`` the minimum-L1-norm fit is measured beside this one, from the
same coins (:mod:`wideinf.experiments.features_l1`, docs/features-l1.md); the solvers of both
fits are in :mod:`wideinf.experiments.features_solvers`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal
from warnings import catch_warnings, simplefilter

import numpy as np
from scipy.linalg.blas import sgemm, ssyrk
from scipy.special import ndtr

from ..config import ExperimentConfig, setting
from ..errors import ConfigError
from ..progress import progress
from ..stats import z_score
from . import Result
from . import features_l1 as l1
from .features_solvers import fit_min_norm

__all__ = [
    "Config",
    "run",
    "report",
    "theory_share",
    "theory_share_finite_m",
    "gram_snapshots",
    "fit_min_norm",
    "crossing",
]

# float32 entries of one block of +-1 columns (train and test rows), 16 MB.
_BLOCK_ENTRIES = 4_000_000
# Integers up to 2^24 are exact in float32, so M may not exceed it.
_MAX_FEATURES = 2**24
# Points of the fine grids of theory curves stored for the figure.
_FINE = 200
# Where the acceptance claim is made: M >= 16 N.
CLAIM_RATIO = 16

_DEFAULT_P = tuple(2.0**-c for c in range(1, 9))  # C = 1 .. 8 bits
_DEFAULT_N = tuple(sorted({round(2 ** (k / 2)) for k in range(21)}))  # 1 .. 1024, x sqrt 2


@dataclass(frozen=True)
class Config(ExperimentConfig):
    """``wideinf features``: see the module docstring and experiments/ensemble_prior_features.yaml."""

    p: tuple[float, ...] = setting(
        _DEFAULT_P, gt=0.0, lt=1.0, min_len=1, max_len=16, help="fractions of perfect features"
    )
    n_train: tuple[int, ...] = setting(
        _DEFAULT_N, ge=1, le=4096, min_len=2, max_len=64, help="training set sizes N (increasing)"
    )
    n_features: int = setting(
        16384, ge=2, le=_MAX_FEATURES, help="M, the number of features (perfect + random)"
    )
    n_seeds: int = setting(20, ge=2, le=1000, help="independent repetitions (for the sd)")
    n_test: int = setting(200, ge=1, le=4096, help="fresh test inputs per repetition")
    regularization: tuple[Literal["l2", "l1"], ...] = setting(
        ("l2", "l1"), min_len=1, max_len=2, scalar_ok=True, help="fits: l2, or [l2, l1]"
    )
    l1_lp_check: int = setting(8, ge=0, le=16, help="largest N whose L1 fit is re-solved as an LP")

    def validate(self, where: str = "config"):
        if any(b <= a for a, b in zip(self.n_train, self.n_train[1:])):
            raise ConfigError(f"{where}.n_train: must be strictly increasing, got {self.n_train}")
        if len(set(self.p)) != len(self.p):
            raise ConfigError(f"{where}.p: contains a repeated value")
        reg = self.regularization
        if "l2" not in reg or len(set(reg)) < len(reg):
            raise ConfigError(
                f"{where}.regularization: the L2 fit is the reference the L1 one is shown "
                f"beside; give l2 or [l2, l1], got {list(self.regularization)}"
            )
        m = self.n_features
        if min(self.p) * m < 1:
            raise ConfigError(
                f"{where}.n_features: p M < 1 for p = {min(self.p):g} (no perfect feature); "
                f"raise n_features to at least {math.ceil(1 / min(self.p))}"
            )
        n_max = max(self.n_train)
        if m - int(perfect_counts([max(self.p)], m)[0]) < n_max:
            raise ConfigError(
                f"{where}.n_features: the {(1 - max(self.p)):.3g} M random features must "
                f"number at least max(n_train) = {n_max}; raise n_features or lower n_train"
            )


# ----------------------------------------------------------------------------- the model


def theory_share(p, n):
    """Infinite-M perfect share ``pN / (pN + 1 - p)``; arrays broadcast (shape of ``p * n``)."""
    pn = np.asarray(p, dtype=float) * np.asarray(n, dtype=float)
    return pn / (pn + 1.0 - np.asarray(p, dtype=float))


def theory_share_finite_m(n_perfect, n_random, n):
    """Finite-M approximation ``n_p N / (n_p N + m - N + 1)`` (Gaussian features, E chi^2)."""
    pn = np.asarray(n_perfect, dtype=float) * np.asarray(n, dtype=float)
    return pn / (pn + np.asarray(n_random, dtype=float) - np.asarray(n, dtype=float) + 1.0)


def perfect_counts(ps, n_features: int) -> np.ndarray:
    """Numbers of perfect columns ``round(p M)``, at least 1. Shape (B,)."""
    counts = np.rint(np.asarray(ps, dtype=float) * n_features)
    return np.maximum(1, counts).astype(np.int64)


def _coins(rng, shape, dtype=np.float32) -> np.ndarray:
    """Fair +-1 coins."""
    return (2 * rng.integers(0, 2, size=shape, dtype=np.int8) - 1).astype(dtype)


def gram_snapshots(rng, n_items: int, n_test: int, stops, observe=None):
    """Draw random +-1 columns block by block; yield the Gram matrices at each column count.

    Draw order (part of the contract, for reproducibility): per block of c columns, the
    training coins as a (c, N_max) array, then the test coins as a (c, T) array. Blocks end at
    every stop. Sums of at most 2^24 products of +-1 are exact in float32.

    Yields ``(m, gram, cross)`` at each of the increasing column counts m in ``stops``, for
    ``n_items`` = N_max training items and ``n_test`` = T fresh test inputs: ``gram`` (N_max,
    N_max) is ``K = Rnd[:, :m] Rnd[:, :m]^T`` (exact integers, float64), ``cross`` (T, N_max) is
    ``Xi[:, :m] Rnd[:, :m]^T``, the test coins against the training coins. ``observe``, if
    given, is called with every block of training coins (c, N_max) as it is drawn.
    """
    block = max(64, _BLOCK_ENTRIES // (n_items + n_test))
    gram = np.zeros((n_items, n_items), dtype=np.float32, order="F")  # upper triangle
    cross = np.zeros((n_test, n_items), dtype=np.float32, order="F")
    start = 0
    for stop in stops:
        for lo in range(start, stop, block):
            c = min(block, stop - lo)
            rnd = _coins(rng, (c, n_items))  # (c, N_max): Rnd[:, lo:lo+c]^T, Fortran-ready
            xi = _coins(rng, (c, n_test))  # (c, T)
            if observe is not None:
                observe(rnd)
            gram = ssyrk(1.0, rnd.T, beta=1.0, c=gram, trans=0, overwrite_c=1)
            cross = sgemm(1.0, xi.T, rnd.T, beta=1.0, c=cross, trans_b=1, overwrite_c=1)
        start = stop
        full = gram + gram.T  # the lower triangle of ``gram`` is zero, so this doubles the diagonal
        full[np.diag_indices(n_items)] = stop  # K_ii = sum of m squares of +-1
        yield stop, full.astype(np.float64), cross.astype(np.float64)


def crossing(n, share, log_n: bool = True) -> float:
    """N at which ``share`` (A,) first reaches 1/2 over increasing sizes ``n`` (A,).

    logit(share) is interpolated in log N, exact for the theory (``logit s = log N - log N*``),
    or with ``log_n=False`` in N, exact for the L1 theory (``logit s = (N - N*) log 2``).
    ``nan`` when the crossing lies outside the grid.
    """
    n = np.asarray(n, dtype=float)
    share = np.asarray(share, dtype=float)
    above = np.flatnonzero(share >= 0.5 - 1e-12)
    if above.size == 0:
        return math.nan
    i = int(above[0])
    if i == 0:
        return float(n[0]) if abs(share[0] - 0.5) <= 1e-9 else math.nan
    lo, hi = np.clip(share[[i - 1, i]], 1e-12, 1 - 1e-12)
    l0, l1 = math.log(lo / (1 - lo)), math.log(hi / (1 - hi))
    t = -l0 / (l1 - l0)  # where logit(share) = 0
    if not log_n:
        return float(n[i - 1] + t * (n[i] - n[i - 1]))
    return float(math.exp(math.log(n[i - 1]) + t * (math.log(n[i]) - math.log(n[i - 1]))))


# ----------------------------------------------------------------------------- the experiment


def run(config: Config, rng: np.random.Generator) -> Result:
    """Simulate every (p, N) over ``n_seeds`` repetitions; see the module docstring.

    Returns arrays (A = len(n_train), B = len(p), S = n_seeds): ``N`` (A,), ``p`` (B,),
    ``perfect_share`` (B, A) mean over seeds, ``perfect_share_sd`` (B, A) sd over seeds,
    ``theory_share`` (B, A) pN / (pN + 1 - p), ``theory_share_finite_m`` (B, A), ``P`` and
    ``R`` (B, A) means, ``n_star`` (B,) where the mean share crosses 1/2, ``n_star_sd`` (B,) sd
    of the per-seed crossings, ``n_star_theory`` (B,) (1 - p) / p, ``n_star_bayes`` (B,)
    log2((1 - p) / p), ``complexity`` (B,) log2(1/p), ``n_perfect`` (B,) pM,
    ``random_along_y``, ``weight_sq_perfect``, ``weight_sq_random``, ``test_accuracy``,
    ``test_accuracy_sd`` and ``test_accuracy_theory`` (each (B, A)); theory curves on fine
    grids: ``n_fine`` (F,), ``theory_share_fine`` (B, F), ``c_fine`` (F,),
    ``n_star_theory_fine`` (F,), ``n_star_bayes_fine`` (F,). ``regularizations`` lists the
    fits; with L1 also the arrays of :meth:`features_l1.L1Tally.arrays` and ``n_star_l1``,
    ``n_star_l1_sd`` (B,), where the mean and the per-seed L1 shares cross 1/2.
    """
    ps = np.asarray(config.p, dtype=float)  # (B,)
    ns = np.asarray(config.n_train, dtype=np.int64)  # (A,)
    m_total = config.n_features
    b_len, s_len = len(ps), config.n_seeds
    counts = perfect_counts(ps, m_total)  # (B,)
    m_random = m_total - counts  # (B,) nested: configuration b uses the first m_random[b]
    stops = sorted(set(m_random.tolist()))
    per_seed: dict[str, np.ndarray] = {}
    tally = (
        l1.L1Tally(ns, s_len, b_len, config.l1_lp_check) if "l1" in config.regularization else None
    )
    for s in progress(range(s_len), total=s_len, desc="features"):
        y = _coins(rng, int(ns[-1]), np.float64)  # (N_max,)
        observe = tally.start_seed(y) if tally else None
        for m, gram, cross in gram_snapshots(rng, int(ns[-1]), config.n_test, stops, observe):
            for b in np.flatnonzero(m_random == m):
                out = fit_min_norm(y, gram, cross, int(counts[b]), ns)
                for k, v in out.items():
                    per_seed.setdefault(k, np.empty((s_len, b_len, len(ns))))[s, b] = v
                if tally:
                    tally.record(s, b, int(counts[b]))
        if tally:
            tally.finish_seed()

    mean = {k: v.mean(axis=0) for k, v in per_seed.items()}  # each (B, A)
    sd = {k: v.std(axis=0, ddof=1) for k, v in per_seed.items()}
    theory = theory_share(ps[:, None], ns[None, :])  # (B, A)
    noise_sd = np.sqrt((1 - ps[:, None]) * ns / m_total) / (ps[:, None] * ns + 1 - ps[:, None])
    n_star_theory = (1 - ps) / ps  # (B,)
    c = np.log2(1 / ps)  # (B,)
    n_fine = np.geomspace(ns[0], ns[-1], _FINE)  # (F,)
    c_fine = np.linspace(max(c.min() - 0.25, 0.05), c.max() + 0.25, _FINE)  # (F,)
    nst_fine = 2.0**c_fine - 1  # (F,)
    with np.errstate(divide="ignore", invalid="ignore"):
        n_star_bayes = np.log2(n_star_theory)  # (B,), 0 at p = 1/2
        bayes_fine = np.where(nst_fine > 1, np.log2(nst_fine), np.nan)  # (F,)

    arrays = {
        "N": ns.astype(float),
        "p": ps,
        "perfect_share": mean["share"],
        "perfect_share_sd": sd["share"],
        "theory_share": theory,
        "theory_share_finite_m": theory_share_finite_m(counts[:, None], m_random[:, None], ns),
        **{
            k: mean[k]
            for k in ("P", "R", "random_along_y", "weight_sq_perfect", "weight_sq_random")
        },
        "n_star_theory": n_star_theory,
        "n_star_bayes": n_star_bayes,
        "complexity": c,
        "n_perfect": counts.astype(float),
        "test_accuracy": mean["accuracy"],
        "test_accuracy_sd": sd["accuracy"],
        "test_accuracy_theory": ndtr(theory / noise_sd),
        "n_fine": n_fine,
        "theory_share_fine": theory_share(ps[:, None], n_fine[None, :]),
        "c_fine": c_fine,
        "n_star_theory_fine": nst_fine,
        "n_star_bayes_fine": bayes_fine,
        "regularizations": np.array(config.regularization),
    }
    arrays["n_star"], arrays["n_star_sd"] = _crossings(ns, mean["share"], per_seed["share"])
    summary, warnings = _summarise(config, arrays, per_seed)
    if tally:
        arrays.update(tally.arrays(ps, counts, m_random, n_fine, c_fine))
        arrays["n_star_l1"], arrays["n_star_l1_sd"] = _crossings(
            ns, arrays["perfect_share_l1"], tally.share, log_n=False
        )
        summary.update(tally.summary(arrays, s_len))
    return Result(arrays=arrays, summary=summary, warnings=warnings)


def _crossings(ns, share, per_seed, log_n: bool = True):
    """:func:`crossing` of the mean share (B, A), and the sd over seeds of the crossings of the
    per-seed shares (S, B, A), ignoring seeds that do not cross; (B,) each."""
    n_star = np.array([crossing(ns, row, log_n=log_n) for row in share])
    seeds = np.array([[crossing(ns, row, log_n=log_n) for row in seed] for seed in per_seed])
    with catch_warnings():  # "degrees of freedom <= 0" where fewer than two
        simplefilter("ignore", RuntimeWarning)
        return n_star, np.nanstd(seeds, axis=0, ddof=1)


def _summarise(config, arrays, per_seed):
    ns, ps = arrays["N"], arrays["p"]
    dev = arrays["perfect_share"] - arrays["theory_share"]  # (B, A)
    se = arrays["perfect_share_sd"] / math.sqrt(config.n_seeds)
    claim = np.broadcast_to(config.n_features >= CLAIM_RATIO * ns[None, :], dev.shape)
    z = np.nan_to_num(np.abs(z_score(dev, 0.0, se)), nan=0.0, posinf=np.inf)  # 0 / 0 -> 0
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.abs(arrays["n_star"] / arrays["n_star_theory"] - 1)
    dev_m = arrays["perfect_share"] - arrays["theory_share_finite_m"]
    p_eff = arrays["n_perfect"] / config.n_features
    summary = {
        "n_features": config.n_features,
        "share_max_abs_dev": float(np.max(np.abs(dev[claim]), initial=0.0)),
        "share_max_z": float(np.max(z[claim], initial=0.0)),
        "share_within_tolerance": bool(np.all((np.abs(dev) <= np.maximum(3 * se, 0.02))[claim])),
        "share_max_abs_dev_finite_m": float(np.max(np.abs(dev_m))),
        "n_star_max_rel_error": float(np.nanmax(rel)) if np.isfinite(rel).any() else math.nan,
        "interpolation_residual_max": float(per_seed["residual"].max()),
    }
    warnings = [
        f"p = {p:g}: the perfect share does not cross 1/2 inside N = {ns[0]:g}..{ns[-1]:g}"
        f" (theory N* = {(1 - p) / p:.3g}); widen n_train"
        for p, n_star in zip(ps, arrays["n_star"])
        if not math.isfinite(n_star)
    ]
    if np.any(np.abs(p_eff / ps - 1) > 1e-3):
        warnings.append(
            f"p M is not an integer: the realised fractions n_p / M differ from p by up to "
            f"{np.max(np.abs(p_eff / ps - 1)):.2%} (the theory uses p); choose M a multiple of 1/p"
        )
    if not claim.all():
        warnings.append(
            f"M < {CLAIM_RATIO} N for N > {config.n_features / CLAIM_RATIO:g}: the finite-M "
            "deviation from the theory may exceed 0.02 there"
        )
    if summary["interpolation_residual_max"] > 1e-6:
        warnings.append(
            f"the fit misses the labels by up to {summary['interpolation_residual_max']:.2g} "
            "(relative); raise n_features"
        )
    return summary, warnings


def report(result: Result) -> list[str]:
    """Measured vs theory N* per p, and the share's worst deviation from pN / (pN + 1 - p)."""
    a, s = result.arrays, result.summary
    lines = ["       p  C (bits)  N* measured (+- sd)  N* = (1-p)/p  Bayes log2((1-p)/p)"]
    for b, p in enumerate(a["p"]):
        meas, sd = a["n_star"][b], a["n_star_sd"][b]
        text = f"{meas:11.4g} +- {sd:<6.2g}" if math.isfinite(meas) else f"{'off grid':>21}"
        lines.append(
            f"{p:8.4g} {a['complexity'][b]:9.3g}  {text}{a['n_star_theory'][b]:13.4g}"
            f"{a['n_star_bayes'][b]:21.3g}"
        )
    lines.append(
        f"share vs pN/(pN+1-p) where M >= {CLAIM_RATIO}N: max |dev| {s['share_max_abs_dev']:.4f}"
        f" ({s['share_max_z']:.1f} SE); within max(3 SE, 0.02): {s['share_within_tolerance']}"
    )
    lines.append(
        f"share vs finite-M approximation: max |dev| {s['share_max_abs_dev_finite_m']:.4f}; "
        f"N* max relative error {s['n_star_max_rel_error']:.1%}"
    )
    if "n_star_l1" in a:
        lines += l1.report_lines(a, s)
    return lines
