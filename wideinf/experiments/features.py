"""Perfect vs random features under minimum-norm regression (the essay's toy model).

The second text ("Infinite-width MLPs as an ensemble prior") models the readout of an infinitely
wide network as linear regression on M fixed features. Of the M features a fraction p are
*perfect* (each equal to the label vector ``y``, labels +-1) and the rest are *random* (fair
coin flips +-1 on every input). Gradient descent from zero finds the minimum-L2-norm weights

    w = F^T (F F^T)^+ y,     F = [y 1^T | Rnd]  (N, M),  n_p = pM perfect and m = M - n_p
                                                           random columns,

computed here exactly at finite M through the N x N Gram matrix
``G = F F^T = n_p y y^T + K``, ``K = Rnd Rnd^T`` (never the M x M one). With ``a = G^+ y``:

- perfect part of the fit on the training set ``v_P = n_p (y . a) y``, parallel to y;
- random part ``v_R = K a``; because ``G a = y``, ``v_P + v_R = y`` exactly, so ``v_R`` is
  parallel to y as well;
- *perfect share* ``s = (v_P . y) / |y|^2 = n_p (y . a)``, the component of the perfect part
  along the labels. The essay's contributions are the lengths of the two weighted sums,
  ``P = |v_P| = s sqrt(N)`` and ``R = |v_R| = (1 - s) sqrt(N)``, so ``s = P / (P + R)`` as
  well: both definitions are one number, and it is the number the theory below predicts.

Theory (M -> infinity). ``K / m -> I_N``, so y is an eigenvector of G with eigenvalue
``M (pN + 1 - p)`` and ``a = y / (M (pN + 1 - p))``; then

    s = pN / (pN + 1 - p),    P / R = pN / (1 - p),

and the perfect part dominates (s > 1/2) iff ``pN > 1 - p``, i.e. ``N > N* = (1 - p) / p``. With
the complexity ``C = log2(1/p)`` bits, ``N* = 2^C - 1``: exponential in C. A Bayesian learner
with prior p on the perfect feature and 1 - p spread over coin-flip features has posterior odds
``p / ((1 - p) 2^-N)`` after N labels, so it needs only ``N > log2((1 - p) / p) ~ C`` points.
Since ``a^T G a = y^T a``, the sums of squared weights are ``|w_P|^2 = s^2 / n_p`` and
``|w_R|^2 = a^T K a = s (1 - s) / n_p`` at any M, so their ratio is exactly ``P / R`` (the
essay's remark), ``pN / (1 - p)`` in the limit.

At finite M the random Gram matrix fluctuates. For Gaussian features ``y^T K^-1 y =
N / chi^2_(m-N+1)`` exactly (Muirhead 1982, Thm 3.2.12), which suggests the finite-M
approximation ``s_M = n_p N / (n_p N + m - N + 1)``, reported beside the limit.

Fresh inputs: a perfect feature equals the new input's label y*, a random one is a fresh coin
``xi_j``. The margin is ``y* f* = s + y* xi . w_R`` (``y* xi`` are again fair coins); the noise
has sd ``|w_R| -> sqrt((1 - p) N / M) / (pN + 1 - p)``, so the test accuracy is about
``Phi(s / |w_R|) = Phi(p sqrt(N M / (1 - p)))`` (Gaussian approximation of the coin sum). It
depends on M: as M -> infinity the fresh coins average out and only the margin ``s`` is left.

Simulation. One repetition draws ``max(N)`` items and M columns; the training set of size N is
the first N items (so one Cholesky factor of G serves every N: its leading N x N block is the
factor of the leading block of G), and the configurations of the different p use nested random
columns. The +-1 Gram matrices are sums of integers below 2^24, accumulated exactly in float32
BLAS and solved in float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from warnings import catch_warnings, simplefilter

import numpy as np
import scipy.linalg
from scipy.linalg.blas import sgemm, ssyrk
from scipy.special import ndtr

from ..config import ExperimentConfig, setting
from ..errors import ConfigError, NumericalError
from ..progress import progress
from ..stats import z_score
from . import Result

__all__ = [
    "Config",
    "run",
    "report",
    "theory_share",
    "theory_share_finite_m",
    "perfect_counts",
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

    def validate(self, where: str = "config"):
        if any(b <= a for a, b in zip(self.n_train, self.n_train[1:])):
            raise ConfigError(f"{where}.n_train: must be strictly increasing, got {self.n_train}")
        if len(set(self.p)) != len(self.p):
            raise ConfigError(f"{where}.p: contains a repeated value")
        m = self.n_features
        if min(self.p) * m < 1:
            need = math.ceil(1 / min(self.p))
            raise ConfigError(
                f"{where}.n_features: p M < 1 for p = {min(self.p):g} (no perfect feature); "
                f"raise n_features to at least {need}"
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
    p = np.asarray(p, dtype=float)
    n = np.asarray(n, dtype=float)
    return p * n / (p * n + 1.0 - p)


def theory_share_finite_m(n_perfect, n_random, n):
    """Finite-M approximation ``n_p N / (n_p N + m - N + 1)`` (Gaussian features, E chi^2)."""
    n_perfect = np.asarray(n_perfect, dtype=float)
    n = np.asarray(n, dtype=float)
    return n_perfect * n / (n_perfect * n + np.asarray(n_random, dtype=float) - n + 1.0)


def perfect_counts(ps, n_features: int) -> np.ndarray:
    """Numbers of perfect columns ``round(p M)``, at least 1. Shape (B,)."""
    counts = np.rint(np.asarray(ps, dtype=float) * n_features)
    return np.maximum(1, counts).astype(np.int64)


def _coins(rng, shape, dtype=np.float32) -> np.ndarray:
    """Fair +-1 coins."""
    return (2 * rng.integers(0, 2, size=shape, dtype=np.int8) - 1).astype(dtype)


def gram_snapshots(rng, n_items: int, n_test: int, stops):
    """Draw random +-1 columns block by block; yield the Gram matrices at each column count.

    Draw order (part of the contract, for reproducibility): per block of c columns, the
    training coins as a (c, N_max) array, then the test coins as a (c, T) array. Blocks end at
    every stop. Sums of at most 2^24 products of +-1 are exact in float32.

    Parameters
    ----------
    rng : numpy.random.Generator
    n_items : int
        Training items (rows) N_max.
    n_test : int
        Fresh test inputs T.
    stops : sequence of int
        Increasing column counts m at which to report.

    Yields
    ------
    m : int
    gram : ndarray, shape (N_max, N_max)
        ``K = Rnd[:, :m] Rnd[:, :m]^T`` (exact integers, float64).
    cross : ndarray, shape (T, N_max)
        ``Xi[:, :m] Rnd[:, :m]^T``, the test coins against the training coins.
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
            gram = ssyrk(1.0, rnd.T, beta=1.0, c=gram, trans=0, overwrite_c=1)
            cross = sgemm(1.0, xi.T, rnd.T, beta=1.0, c=cross, trans_b=1, overwrite_c=1)
        start = stop
        full = gram + gram.T  # the lower triangle of ``gram`` is zero, so this doubles the diagonal
        full[np.diag_indices(n_items)] = stop  # K_ii = sum of m squares of +-1
        yield stop, full.astype(np.float64), cross.astype(np.float64)


def fit_min_norm(y, gram, cross, n_perfect: int, ns) -> dict:
    """The minimum-norm fit on the first N items, for every N in ``ns``, and its test margins.

    Parameters
    ----------
    y : ndarray, shape (N_max,)
        Labels +-1.
    gram : ndarray, shape (N_max, N_max)
        ``K = Rnd Rnd^T`` of the m random columns.
    cross : ndarray, shape (T, N_max)
        ``Xi Rnd^T``: fresh test coins (already multiplied by the test label) against ``Rnd``.
    n_perfect : int
        Perfect columns n_p (copies of y).
    ns : sequence of int, length A
        Training sizes, each at most N_max.

    Returns
    -------
    dict of ndarray, each shape (A,)
        ``share`` s = n_p (y . a); ``P`` = |v_P| and ``R`` = |v_R| (the lengths of the weighted
        sums of perfect and random features on the training set); ``random_along_y`` =
        (v_R . y) / |y|^2; ``weight_sq_perfect`` = s^2 / n_p and ``weight_sq_random`` =
        a^T K a (sums of squared weights); ``accuracy``, the fraction of test margins
        ``s + xi . w_R = s + cross a`` above zero (ties count half); ``residual`` =
        |G a - y| / |y|, where a = G^+ y and G = n_p y y^T + K.
    """
    g = gram + n_perfect * np.outer(y, y)  # (N_max, N_max)
    try:
        factor = scipy.linalg.cholesky(g, lower=True)  # leading blocks factor leading blocks
    except scipy.linalg.LinAlgError:
        factor = None
    keys = ("share", "P", "R", "random_along_y", "weight_sq_perfect", "weight_sq_random")
    out = {k: np.empty(len(ns)) for k in keys + ("accuracy", "residual")}
    for i, n in enumerate(ns):
        yn, gn, kn = y[:n], g[:n, :n], gram[:n, :n]
        if factor is not None:
            a = scipy.linalg.cho_solve((factor[:n, :n], True), yn)  # (n,)
        else:
            a = _pinv_solve(gn, yn)
        s = float(n_perfect * (yn @ a))
        v_r = kn @ a  # (n,)
        norm_y = math.sqrt(n)  # |y| for labels +-1
        margin = s + cross[:, :n] @ a  # (T,)
        out["share"][i] = s
        out["P"][i] = abs(s) * norm_y
        out["R"][i] = float(np.linalg.norm(v_r))
        out["random_along_y"][i] = float(v_r @ yn) / n
        out["weight_sq_perfect"][i] = s * s / n_perfect
        out["weight_sq_random"][i] = float(a @ v_r)
        out["accuracy"][i] = np.mean((margin > 0) + 0.5 * (margin == 0))
        out["residual"][i] = float(np.linalg.norm(gn @ a - yn)) / norm_y
    return out


def _pinv_solve(g, y):
    """``G^+ y`` by least squares, for a Gram matrix that is not positive definite."""
    a, *_ = scipy.linalg.lstsq(g, y, cond=1e-12)
    if not np.all(np.isfinite(a)):
        raise NumericalError("the feature Gram matrix could not be solved; raise n_features")
    return a


def crossing(n, share, level: float = 0.5) -> float:
    """N at which ``share`` first reaches ``level``, interpolating logit(share) in log N.

    logit(s) is exactly linear in log N for the theory (``logit s = log N - log N*``), so the
    interpolation is exact there. ``nan`` when the crossing lies outside the grid.

    Parameters
    ----------
    n : ndarray, shape (A,)
        Increasing training sizes.
    share : ndarray, shape (A,)
        Perfect share at each size.
    """
    n = np.asarray(n, dtype=float)
    share = np.asarray(share, dtype=float)
    above = np.flatnonzero(share >= level - 1e-12)
    if above.size == 0:
        return math.nan
    i = int(above[0])
    if i == 0:
        return float(n[0]) if abs(share[0] - level) <= 1e-9 else math.nan
    eps = 1e-12
    lo, hi = np.clip(share[[i - 1, i]], eps, 1 - eps)
    target = math.log(level / (1 - level))
    l0, l1 = math.log(lo / (1 - lo)), math.log(hi / (1 - hi))
    t = (target - l0) / (l1 - l0)
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
    ``n_star_theory_fine`` (F,), ``n_star_bayes_fine`` (F,).
    """
    ps = np.asarray(config.p, dtype=float)  # (B,)
    ns = np.asarray(config.n_train, dtype=np.int64)  # (A,)
    m_total = config.n_features
    b_len, s_len = len(ps), config.n_seeds
    counts = perfect_counts(ps, m_total)  # (B,)
    m_random = m_total - counts  # (B,) nested: configuration b uses the first m_random[b]
    stops = sorted(set(m_random.tolist()))
    per_seed: dict[str, np.ndarray] = {}
    for s in progress(range(s_len), total=s_len, desc="features"):
        y = _coins(rng, int(ns[-1]), np.float64)  # (N_max,)
        for m, gram, cross in gram_snapshots(rng, int(ns[-1]), config.n_test, stops):
            for b in np.flatnonzero(m_random == m):
                out = fit_min_norm(y, gram, cross, int(counts[b]), ns)
                for k, v in out.items():
                    per_seed.setdefault(k, np.empty((s_len, b_len, len(ns))))[s, b] = v

    mean = {k: v.mean(axis=0) for k, v in per_seed.items()}  # each (B, A)
    sd = {k: v.std(axis=0, ddof=1) for k, v in per_seed.items()}
    share = per_seed["share"]  # (S, B, A)
    n_star_seeds = np.array(
        [[crossing(ns, share[s, b]) for b in range(b_len)] for s in range(s_len)]
    )
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
        "P": mean["P"],
        "R": mean["R"],
        "n_star": np.array([crossing(ns, mean["share"][b]) for b in range(b_len)]),
        "n_star_sd": _nan_sd(n_star_seeds),
        "n_star_theory": n_star_theory,
        "n_star_bayes": n_star_bayes,
        "complexity": c,
        "n_perfect": counts.astype(float),
        "random_along_y": mean["random_along_y"],
        "weight_sq_perfect": mean["weight_sq_perfect"],
        "weight_sq_random": mean["weight_sq_random"],
        "test_accuracy": mean["accuracy"],
        "test_accuracy_sd": sd["accuracy"],
        "test_accuracy_theory": ndtr(theory / noise_sd),
        "n_fine": n_fine,
        "theory_share_fine": theory_share(ps[:, None], n_fine[None, :]),
        "c_fine": c_fine,
        "n_star_theory_fine": nst_fine,
        "n_star_bayes_fine": bayes_fine,
    }
    summary, warnings = _summarise(config, arrays, per_seed)
    return Result(arrays=arrays, summary=summary, warnings=warnings)


def _nan_sd(x) -> np.ndarray:
    """Sd over axis 0 ignoring nan (nan where fewer than two values). Shape x.shape[1:]."""
    with catch_warnings():  # "degrees of freedom <= 0" where fewer than two
        simplefilter("ignore", RuntimeWarning)
        return np.nanstd(x, axis=0, ddof=1)


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
    warnings = []
    for b, p in enumerate(ps):
        if not math.isfinite(arrays["n_star"][b]):
            warnings.append(
                f"p = {p:g}: the perfect share does not cross 1/2 inside N = {ns[0]:g}..{ns[-1]:g}"
                f" (theory N* = {(1 - p) / p:.3g}); widen n_train"
            )
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
    return lines
