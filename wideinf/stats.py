"""Statistics shared by the experiments: power-law fits, relative errors, z-scores, limits.

A claim such as "the error falls as n^-1/2" is checked by a least-squares line through
``(log n, log v)`` over the widest half of the widths, ``v`` a statistic of the S networks of
each width (a median, a spread across seeds). Its one uncertainty is the **bootstrap**
standard error (Efron & Tibshirani 1993, ch. 6): the networks of each width (independent
samples) are resampled with replacement, the statistic and the slope recomputed, and the sd of
the resampled slopes reported. Not the jackknife: the main statistic is a median, and the
delete-one jackknife variance of a median is inconsistent (its leave-one-out medians take two
values; Efron & Tibshirani 1993, sec. 11.6); the bootstrap suits medians and smooth statistics
alike. A resample with a statistic that is not positive at some width (one network drawn S
times: zero spread) has no logarithm and is left out.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "PowerLaw",
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
    slope, intercept = np.polyfit(np.log(widths), np.log(values), 1)
    return float(slope), float(intercept)


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

    ``samples`` (W, S, ...) holds S networks per width on axis 1; ``statistic`` maps
    (..., W, S, ...) to (..., W), keeping leading batch axes (e.g. :func:`median_over_networks`);
    ``rng`` draws one (B, W, S) array of indices. Returns ``sd(slope_b, ddof=1)`` over the
    B = ``resamples`` resamples with a positive statistic (NaN if fewer than two).
    """
    samples = np.asarray(samples)
    w, s = samples.shape[:2]
    idx = rng.integers(0, s, size=(resamples, w, s))  # (B, W, S)
    rows = np.arange(w)[None, :, None]
    per_resample = max(1, samples.size)
    step = max(1, _CHUNK_ENTRIES // per_resample)
    stats = np.concatenate(
        [statistic(samples[rows, idx[a : a + step]]) for a in range(0, resamples, step)]
    )  # (B, W)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_stats = np.log(stats)  # (B, W)
    log_stats = log_stats[np.all(np.isfinite(log_stats), axis=1)]
    if log_stats.shape[0] < 2:
        return math.nan
    logn = np.log(widths) - np.mean(np.log(widths))  # (W,) centred
    slopes = log_stats @ logn / (logn @ logn)  # (B',): least-squares slope of each resample
    return float(np.std(slopes, ddof=1))


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
    return PowerLaw(
        slope, intercept, bootstrap_slope_se(widths, samples, statistic, rng, resamples)
    )


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
    """``(estimate - expected) / se``: about N(0, 1) when ``se`` is the estimate's error.

    NaN where ``se`` is 0 and the difference is too, +-inf where only ``se`` is 0.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        return (np.asarray(estimate) - np.asarray(expected)) / np.asarray(se)


def mc_limits(samples, k: float = 3.0, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Monte Carlo limits ``(mean - k se, mean + k se)`` of the samples' mean along ``axis``.

    They hold the value estimated with probability ``2 Phi(k) - 1`` (99.7% for k = 3) when the
    mean is near Gaussian (central limit theorem).
    """
    samples = np.asarray(samples)
    mean, se = samples.mean(axis=axis), standard_error(samples, axis)
    return mean - k * se, mean + k * se
