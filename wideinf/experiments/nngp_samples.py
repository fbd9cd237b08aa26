"""Random output functions at finite and infinite width (blog Figure 1).

As every hidden width n grows, the law of a network's output function tends to a centred
Gaussian process with the NNGP kernel K as covariance (Neal 1996; Lee et al. 2018,
arXiv:1711.00165; Matthews et al. 2018, arXiv:1804.11271). For each width this experiment draws
S functions on a grid of 1-D inputs and at two fixed inputs (the *pair*, x = 1 and x = -1 in the
blog): S initialised networks at finite n, S exact draws from ``N(0, K)`` at n = inf
(:func:`gp_draws`). How Gaussian the pair's outputs are, per width: the excess kurtosis of each
coordinate (:func:`excess_kurtosis`) and the sample covariance against ``K(pair, pair)``
(:func:`sample_covariance`), each with its standard error (docs/theory.md, "Standard errors").
A finite network's covariance differs from K by O(1/n), far below the Monte Carlo error at
n = 500 and S = 1000.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..architecture import Architecture
from ..config import ArchitectureConfig, ExperimentConfig, Width, setting
from ..errors import ConfigError, NumericalError
from ..progress import progress
from ..stats import standard_error, z_score
from . import Result
from .ensemble import BLOG_ARCHITECTURE, check_widths, parameter_count

__all__ = [
    "Config",
    "run",
    "report",
    "width_label",
    "gp_draws",
    "excess_kurtosis",
    "sample_covariance",
    "sigma_ellipses",
]

# Memory of one batch of finite networks (parameters plus activations), in bytes.
_BATCH_BYTES = 128 * 2**20
# Largest single network we agree to build (its parameters alone), in bytes.
_NETWORK_BYTES = 2**30
# The distinct entries of a 2 x 2 covariance.
_ENTRIES = ((0, 0), (0, 1), (1, 1))


@dataclass(frozen=True)
class Config(ExperimentConfig):
    """Settings of ``wideinf nngp-samples`` (YAML keys of the same names)."""

    architecture: ArchitectureConfig = BLOG_ARCHITECTURE
    widths: tuple[Width, ...] = setting(
        (4.0, 500.0, math.inf),
        min_len=1,
        max_len=8,
        help="hidden widths, one figure column each; inf is the exact Gaussian process",
    )
    n_samples: int = setting(
        1000, ge=10, le=20_000, help="sampled functions (networks or GP draws) per width"
    )
    x_min: float = setting(-3.0, ge=-1e6, le=1e6, help="left end of the input grid")
    x_max: float = setting(3.0, ge=-1e6, le=1e6, help="right end of the input grid")
    n_grid: int = setting(150, ge=2, le=2000, help="points of the input grid")
    pair_inputs: tuple[float, ...] = setting(
        (1.0, -1.0), min_len=2, max_len=2, help="the two fixed inputs of the bottom row"
    )
    pair_limit: float | None = setting(
        None, gt=0.0, le=1e6, help="bottom-row axes span +-pair_limit; null: about 5 NNGP sd"
    )
    n_lines: int = setting(30, ge=0, le=1000, help="sampled functions drawn in each top panel")
    density_points: int = setting(
        100, ge=10, le=400, help="grid points per axis of the bottom row's density"
    )

    def validate(self, where: str = "config"):
        if not self.x_min < self.x_max:
            raise ConfigError(
                f"{where}.x_min: must be below x_max, got {self.x_min:g} >= {self.x_max:g}"
            )
        if self.pair_inputs[0] == self.pair_inputs[1]:
            raise ConfigError(
                f"{where}.pair_inputs: need two different inputs, got {list(self.pair_inputs)}"
            )
        check_widths(
            self.architecture, 1, self.widths, where, _NETWORK_BYTES, finite=False, increasing=False
        )


def width_label(width: float) -> str:
    """Array-name label of a width: 4 -> ``"w4"``, inf -> ``"winf"``."""
    return "winf" if math.isinf(width) else f"w{int(width)}"


# ----------------------------------------------------------------------------- sampling


def gp_draws(kernel: np.ndarray, n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """S = ``n_samples`` exact draws from ``N(0, kernel)``, kernel (M, M) PSD; shape (S, M).

    Rows ``U z`` with ``kernel = V diag(lam) V^T``, ``U = V diag(sqrt(lam))`` and
    ``z ~ N(0, I)``, so ``Cov = kernel`` exactly, singular kernels (repeated or very close
    inputs) included. Eigenvalues below zero by rounding are set to zero; a clearly negative
    one is a NumericalError.
    """
    lam, vecs = np.linalg.eigh(kernel)  # (M,), (M, M)
    scale = max(float(lam[-1]), np.finfo(float).tiny)
    if lam[0] < -1e-8 * scale:
        raise NumericalError(
            f"the NNGP kernel is not positive semi-definite (eigenvalue {lam[0]:.3g}, "
            f"largest {scale:.3g}); check the architecture"
        )
    root = vecs * np.sqrt(np.clip(lam, 0.0, None))  # (M, M)
    return rng.standard_normal((n_samples, kernel.shape[0])) @ root.T  # (S, M)


def network_draws(
    arch: Architecture, x: np.ndarray, width: int, n_samples: int, rng: np.random.Generator
) -> np.ndarray:
    """Outputs (S, N) at x (N, d) of S = ``n_samples`` independently initialised networks of
    hidden width ``width``, built in batches of about 128 MB (parameters and activations)."""
    from ..networks import forward, init_params

    per_network = 8 * (parameter_count(arch, 1, width) + 2 * x.shape[0] * width * len(arch.layers))
    batch = max(1, _BATCH_BYTES // per_network)
    starts = range(0, n_samples, batch)
    out = np.empty((n_samples, x.shape[0]))  # (S, N)
    for start in progress(starts, total=len(starts), desc=f"width {width}"):
        m = min(batch, n_samples - start)
        params = init_params(arch, x.shape[1], width, m, rng)
        out[start : start + m] = forward(arch, params, x)  # (m, N)
    return out


# ----------------------------------------------------------------------------- statistics


def excess_kurtosis(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Excess kurtosis g2 (k,) of each column of ``samples`` (S, k) and its standard error (k,).

    ``g2 = m4 / m2^2 - 3`` with central sample moments ``m_r = mean(d^r)``, ``d = x - mean(x)``;
    by the delta method ``se = sd(psi) / sqrt(S)`` with the influence function
    ``psi = (d^4 - m4 - 4 m3 d) / m2^2 - 2 m4 (d^2 - m2) / m2^3`` (``sqrt(24 / S)`` for a
    Gaussian). NaN for a column with zero variance.
    """
    d = samples - samples.mean(axis=0)  # (S, k)
    m2, m3, m4 = ((d**r).mean(axis=0) for r in (2, 3, 4))  # (k,) each
    with np.errstate(divide="ignore", invalid="ignore"):
        g2 = m4 / m2**2 - 3.0  # (k,)
        psi = (d**4 - m4 - 4.0 * m3 * d) / m2**2 - 2.0 * m4 * (d**2 - m2) / m2**3  # (S, k)
        se = standard_error(psi)  # (k,)
    return g2, se


def sample_covariance(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sample covariance (k, k) of ``samples`` (S, k) and the standard error of each entry.

    ``cov_ij = sum_s d_si d_sj / (S - 1)`` with ``d = x - mean(x)``; ``se_ij = sd(d_i d_j) /
    sqrt(S)``, the Monte Carlo error of the entry, from the same samples.
    """
    d = samples - samples.mean(axis=0)  # (S, k)
    prod = d[:, :, None] * d[:, None, :]  # (S, k, k)
    return prod.sum(axis=0) / (samples.shape[0] - 1), standard_error(prod)


def sigma_ellipses(cov: np.ndarray, radii=(1.0, 2.0), n_points: int = 181):
    """Outlines ``{u : u^T cov^-1 u = r^2}`` of a centred 2-D Gaussian.

    Returns an array of shape (len(radii), n_points, 2): ``r V diag(sqrt(lam)) (cos t, sin t)``
    with ``cov = V diag(lam) V^T``; a singular ``cov`` gives a flat ellipse (a segment).
    """
    lam, vecs = np.linalg.eigh(cov)  # (2,), (2, 2)
    t = np.linspace(0.0, 2.0 * np.pi, n_points)  # (E,)
    circle = np.stack([np.cos(t), np.sin(t)], axis=1)  # (E, 2)
    outline = circle @ (vecs * np.sqrt(np.clip(lam, 0.0, None))).T  # (E, 2)
    return np.stack([r * outline for r in radii])  # (R, E, 2)


def _density(axis: np.ndarray, pairs=None, cov=None) -> np.ndarray:
    """A density on axis x axis: the Gaussian kernel density estimate (Scott's bandwidth) of
    (S, 2) ``pairs``, or the density of ``N(0, cov)``.

    ``density[i, j]`` is at ``(axis[j], axis[i])``, as matplotlib's ``contour`` expects; all NaN
    when the samples are degenerate (e.g. every output equal).
    """
    from scipy.stats import gaussian_kde, multivariate_normal

    xx, yy = np.meshgrid(axis, axis)  # (D, D) each
    try:
        if cov is not None:
            return multivariate_normal(np.zeros(2), cov).pdf(np.stack([xx, yy], axis=-1))
        return gaussian_kde(pairs.T)(np.vstack([xx.ravel(), yy.ravel()])).reshape(xx.shape)
    except (np.linalg.LinAlgError, ValueError):
        return np.full(xx.shape, np.nan)


def _nice_ceiling(value: float) -> float:
    """The smallest of 1, 1.5, 2, 2.5, 3, 4, 5, 6, 8 times a power of ten that is >= value."""
    if not value > 0 or not math.isfinite(value):
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    steps = (1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0)
    return next(s * power for s in steps if s * power >= value * (1 - 1e-12))


# ----------------------------------------------------------------------------- experiment


def run(config: Config, rng: np.random.Generator) -> Result:
    """Sample output functions at each width and measure the pair's Gaussianity.

    Arrays (G grid points, S samples, W widths, D density points):

    - ``x_grid`` (G,), ``pair_inputs`` (2,), ``widths`` (W,) (float, ``inf`` for the GP);
    - ``nngp_pair_cov`` (2, 2): ``K`` at the pair; ``nngp_sd`` (G,): ``sqrt(K(x, x))``;
    - ``functions_<label>`` (S, G) and ``pair_<label>`` (S, 2) for each label ``w4``,
      ``w500``, ``winf``, ... (:func:`width_label`);
    - ``density_axis`` (D,) and ``density_<label>`` (D, D): kernel density estimate of the
      pair outputs (the exact Gaussian density at infinite width);
    - ``nngp_ellipses`` (2, E, 2): the NNGP's 1- and 2-sigma ellipses at the pair;
    - ``excess_kurtosis``, ``excess_kurtosis_se`` (W, 2); ``pair_cov``, ``pair_cov_se``
      (W, 2, 2).

    Every width draws from its own stream, ``default_rng([base, n])`` (``n = 0`` for inf) with
    ``base`` drawn once from ``rng``: a column does not change when other widths are added.
    """
    arch = Architecture.from_config(config.architecture)
    x_grid = np.linspace(config.x_min, config.x_max, config.n_grid)  # (G,)
    pair_inputs = np.asarray(config.pair_inputs, dtype=float)  # (2,)
    x_all = np.concatenate([x_grid, pair_inputs])[:, None]  # (G + 2, 1)
    n_grid = x_grid.size
    kernel = arch.kernel(x_all).nngp  # (G + 2, G + 2)
    pair_cov_exact = kernel[n_grid:, n_grid:].copy()  # (2, 2)

    auto = _nice_ceiling(5.0 * math.sqrt(float(np.max(np.diag(pair_cov_exact)))))  # about 5 sd
    limit = config.pair_limit or auto
    density_axis = np.linspace(-limit, limit, config.density_points)  # (D,)

    widths = np.asarray(config.widths, dtype=float)  # (W,)
    arrays = {
        "x_grid": x_grid,
        "pair_inputs": pair_inputs,
        "nngp_pair_cov": pair_cov_exact,
        "widths": widths,
        "nngp_sd": np.sqrt(np.clip(np.diag(kernel)[:n_grid], 0.0, None)),  # (G,)
        "density_axis": density_axis,
        "nngp_ellipses": sigma_ellipses(pair_cov_exact),  # (2, E, 2)
    }
    summary = {
        "architecture": arch.describe(),
        "n_samples": config.n_samples,
        **{f"nngp_K{i + 1}{j + 1}": float(pair_cov_exact[i, j]) for i, j in _ENTRIES},
    }
    warnings, per_width = [], []
    base = int(rng.integers(2**63))
    for width in widths:
        label = width_label(width)
        stream = np.random.default_rng([base, 0 if math.isinf(width) else int(width)])
        if math.isinf(width):
            draws = gp_draws(kernel, config.n_samples, stream)  # (S, G + 2)
        else:
            draws = network_draws(arch, x_all, int(width), config.n_samples, stream)
        if not np.all(np.isfinite(draws)):
            raise NumericalError(f"width {label[1:]}: the network outputs overflowed (NaN/inf)")
        pairs = draws[:, n_grid:]  # (S, 2)
        arrays[f"functions_{label}"] = draws[:, :n_grid]  # (S, G)
        arrays[f"pair_{label}"] = pairs
        exact = pair_cov_exact if math.isinf(width) else None
        arrays[f"density_{label}"] = _density(density_axis, pairs, exact)  # (D, D)
        if np.isnan(arrays[f"density_{label}"]).all():
            warnings.append(f"width {label[1:]}: the pair outputs are degenerate; no density")

        g2, g2_se = excess_kurtosis(pairs)  # (2,), (2,)
        cov, cov_se = sample_covariance(pairs)  # (2, 2), (2, 2)
        per_width.append((g2, g2_se, cov, cov_se))
        z = np.abs(z_score(cov, pair_cov_exact, cov_se))  # (2, 2)
        for i in range(2):
            summary[f"excess_kurtosis_{label}_{i + 1}"] = float(g2[i])
            summary[f"excess_kurtosis_se_{label}_{i + 1}"] = float(g2_se[i])
        for i, j in _ENTRIES:
            summary[f"cov_{label}_{i + 1}{j + 1}"] = float(cov[i, j])
        summary[f"cov_max_z_{label}"] = float(np.nanmax(z)) if np.isfinite(z).any() else math.nan
        summary[f"outside_fraction_{label}"] = float(np.mean(np.any(np.abs(pairs) > limit, axis=1)))

    keys = ("excess_kurtosis", "excess_kurtosis_se", "pair_cov", "pair_cov_se")
    arrays.update({key: np.array(v) for key, v in zip(keys, zip(*per_width))})  # (W, 2 [, 2])
    return Result(arrays=arrays, summary=summary, warnings=warnings)


def report(result: Result) -> list[str]:
    """The NNGP covariance at the pair, then one line of Gaussianity measures per width."""
    a, s = result.arrays, result.summary
    p1, p2 = (f"{v:g}" for v in a["pair_inputs"])
    k = a["nngp_pair_cov"]
    n_samples = a[f"pair_{width_label(a['widths'][0])}"].shape[0]
    lines = [
        f"NNGP covariance at x = {p1}, {p2}: K11 {k[0, 0]:.5f}  K12 {k[0, 1]:.5f}  "
        f"K22 {k[1, 1]:.5f}; {n_samples} samples per width, so a Gaussian has excess "
        f"kurtosis 0 ± {math.sqrt(24 / n_samples):.3f}",
        f"{'width':>6}  {'excess kurtosis x=' + p1:>20}  {'excess kurtosis x=' + p2:>20}  "
        f"{'C11/K11':>7}  {'C22/K22':>7}  {'C12 - K12':>10}  {'max|C-K|/se':>11}",
    ]
    notes = []
    for w, g2, g2_se, cov in zip(
        a["widths"], a["excess_kurtosis"], a["excess_kurtosis_se"], a["pair_cov"]
    ):
        label = width_label(w)
        with np.errstate(divide="ignore", invalid="ignore"):
            r11, r22 = cov[0, 0] / k[0, 0], cov[1, 1] / k[1, 1]
        lines.append(
            f"{label[1:]:>6}  {g2[0]:>+11.3f} ± {g2_se[0]:<6.3f}  {g2[1]:>+11.3f} ± {g2_se[1]:<6.3f}  "
            f"{r11:>7.3f}  {r22:>7.3f}  {cov[0, 1] - k[0, 1]:>+10.4f}  "
            f"{s.get(f'cov_max_z_{label}', math.nan):>11.2f}"
        )
        outside = s.get(f"outside_fraction_{label}", 0.0)
        if outside > 0:
            lim = a["density_axis"][-1]
            notes.append(f"width {label[1:]}: {outside:.1%} of the pairs lie outside ±{lim:g}")
    return lines + notes
