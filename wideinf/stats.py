"""Statistics shared by the experiments: power-law fits, relative errors, z-scores, limits.

A log-log slope is fitted over the widest half of the widths and its standard error is a
bootstrap over the networks of each width (docs/theory.md, "Statistics": why not the jackknife).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = [
    "widest_half",
    "loglog_fit",
    "bootstrap_slope_se",
    "fit_power_law",
    "median_over_networks",
    "relative_error",
    "standard_error",
    "z_score",
    "mc_limits",
]

BOOTSTRAP_RESAMPLES = 400  # the standard error is then known to 1 / sqrt(2 B) = 3.5%
_CHUNK_ENTRIES = 4_000_000  # resampled entries held at once (32 MB)


@dataclass(frozen=True)
class PowerLaw:
    """A fitted power law ``v ~ exp(intercept) n^slope`` with the slope's standard error."""

    slope: float
    intercept: float
    se: float


def widest_half(n_widths: int) -> slice:
    """The last ``max(2, ceil(W / 2))`` of W increasing widths: where slopes are fitted."""
    return slice(n_widths - max(2, math.ceil(n_widths / 2)), n_widths)


def loglog_fit(widths, values) -> tuple[float, float]:
    """(slope, intercept) of the least-squares line through ``(log widths, log values)``, (W,)."""
    log_values = np.log(values)
    slope = float(_slopes(widths, log_values))
    return slope, float(np.mean(log_values) - slope * np.mean(np.log(widths)))


def _slopes(widths, log_values: np.ndarray) -> np.ndarray:
    """Least-squares slopes against log widths (W,) of the rows of ``log_values`` (..., W)."""
    logn = np.log(widths) - np.mean(np.log(widths))  # (W,) centred
    return log_values @ logn / (logn @ logn)


def median_over_networks(values: np.ndarray) -> np.ndarray:
    """The median over the last axis (the networks): (..., W, S) -> (..., W)."""
    return np.median(values, axis=-1)


def bootstrap_slope_se(
    widths,
    samples: np.ndarray,
    statistic: Callable[[np.ndarray], np.ndarray],
    rng: np.random.Generator,
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> float:
    """Bootstrap standard error of the log-log slope of ``statistic(samples)`` against width.

    ``samples`` (W, S, ...) holds S networks per width; ``statistic`` maps (..., W, S, ...) to
    (..., W). Returns ``sd(slope_b, ddof=1)`` over the B = ``resamples`` resamples (drawn from
    ``rng`` as one (B, W, S) array of indices) with a positive statistic, NaN if fewer than two.
    """
    samples = np.asarray(samples)
    w, s = samples.shape[:2]
    idx = rng.integers(0, s, size=(resamples, w, s))  # (B, W, S)
    rows = np.arange(w)[None, :, None]
    step = max(1, _CHUNK_ENTRIES // max(1, samples.size))  # resamples per chunk
    stats = np.concatenate(
        [statistic(samples[rows, idx[a : a + step]]) for a in range(0, resamples, step)]
    )  # (B, W)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_stats = np.log(stats)  # (B, W)
    log_stats = log_stats[np.all(np.isfinite(log_stats), axis=1)]
    if log_stats.shape[0] < 2:
        return math.nan
    return float(np.std(_slopes(widths, log_stats), ddof=1))  # over the B' resamples


def fit_power_law(
    widths,
    samples: np.ndarray,
    rng: np.random.Generator,
    statistic: Callable[[np.ndarray], np.ndarray] = median_over_networks,
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> PowerLaw:
    """``statistic(samples) ~ exp(intercept) n^slope`` fitted over :func:`widest_half` of the
    increasing ``widths`` (W,), with the slope's :func:`bootstrap_slope_se`; samples (W, S, ...)."""
    part = widest_half(len(widths))
    widths, samples = np.asarray(widths)[part], np.asarray(samples)[part]
    slope, intercept = loglog_fit(widths, statistic(samples))
    se = bootstrap_slope_se(widths, samples, statistic, rng, resamples)
    return PowerLaw(slope, intercept, se)


def relative_error(estimate, reference) -> np.ndarray:
    """``||estimate - reference||_F / ||reference||_F`` over the last two axes: (..., M1, M2)
    against (M1, M2) or (..., M1, M2) -> (...)."""
    diff = np.linalg.norm(estimate - reference, axis=(-2, -1))
    return diff / np.linalg.norm(reference, axis=(-2, -1))


def standard_error(samples, axis: int = 0) -> np.ndarray:
    """Standard error of the mean, ``sd(samples, ddof=1) / sqrt(S)`` along ``axis``."""
    samples = np.asarray(samples)
    return samples.std(axis=axis, ddof=1) / math.sqrt(samples.shape[axis])


def z_score(estimate, expected, se) -> np.ndarray:
    """``(estimate - expected) / se`` (NaN where both are 0, +-inf where only ``se`` is 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return (np.asarray(estimate) - np.asarray(expected)) / np.asarray(se)


def mc_limits(samples, k: float = 3.0, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Monte Carlo limits ``mean -+ k se`` along ``axis``: probability ``2 Phi(k) - 1`` (CLT)."""
    samples = np.asarray(samples)
    mean, se = samples.mean(axis=axis), standard_error(samples, axis)
    return mean - k * se, mean + k * se
