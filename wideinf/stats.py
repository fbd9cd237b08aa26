"""Statistics shared by the experiments: power-law fits, relative errors, z-scores, limits.

Power laws. A claim such as "the error falls as n^-1/2" is checked by fitting a line to
``(log n, log v)``, where ``v`` (one value per width) is a statistic of S networks (a median, a
spread across seeds, ...). :func:`fit_power_law` fits it over the widest half of the widths
(:func:`widest_half`), by ordinary least squares (:func:`loglog_fit`), and gives the slope one
uncertainty, the **bootstrap** standard error of :func:`bootstrap_slope_se`: the networks of
each width are resampled with replacement, the statistic and the slope recomputed, and the
standard deviation of the resampled slopes reported (Efron & Tibshirani 1993, ch. 6).

Why the bootstrap and not the jackknife: the statistics are not all smooth. The median of the
networks' errors is the main one, and the delete-one jackknife's variance of a sample median
is inconsistent (Efron 1982, sec. 3.4; Efron & Tibshirani 1993, sec. 11.6): its leave-one-out
medians take only two distinct values. The bootstrap is consistent for medians and for smooth
statistics (spreads, root-mean-square distances) alike, so one method serves every experiment.
A resample whose statistic is not positive at some width (e.g. every draw the same network, so
zero spread) has no logarithm; such resamples are left out of the standard deviation.

The widths are independent samples, so the networks are resampled within each width; the
resampling is seeded (an explicit ``numpy.random.Generator``), so the same seed gives the
same standard error.
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

# Resamples of the bootstrap: the standard error of a standard error from B resamples is about
# 1 / sqrt(2 B) relative, 3.5% here.
BOOTSTRAP_RESAMPLES = 400
# Bootstrap samples held at once (float64 entries), 32 MB.
_CHUNK_ENTRIES = 4_000_000


@dataclass(frozen=True)
class PowerLaw:
    """A fitted power law ``v ~ exp(intercept) n^slope`` with the slope's standard error."""

    slope: float
    intercept: float
    se: float


def widest_half(n_widths: int) -> slice:
    """The widest half of ``n_widths`` sorted widths (at least two): where slopes are fitted.

    ``ceil(W / 2)`` widths, and at least 2: 10 -> the last 5, 3 -> the last 2, 2 -> both.
    """
    return slice(n_widths - max(2, math.ceil(n_widths / 2)), n_widths)


def loglog_fit(widths, values) -> tuple[float, float]:
    """Least-squares line through ``(log widths, log values)``; both shape (W,).

    Returns (slope, intercept), so that ``values ~ exp(intercept) widths^slope``.
    """
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

    Parameters
    ----------
    widths : ndarray, shape (W,)
    samples : ndarray, shape (W, S, ...)
        S networks (or seeds) per width on axis 1, any further axes after it.
    statistic : callable
        Maps an array (..., W, S, ...) to (..., W): reduces the networks' axis (and the axes
        after it), keeping any leading batch axes, e.g. :func:`median_over_networks`.
    rng : numpy.random.Generator
        Draws the resampled indices, one (B, W, S) array of integers in [0, S).
    resamples : int, default 400
        B.

    Returns
    -------
    float
        ``sd(slope_b, ddof=1)`` over the resamples b whose statistic is positive at every
        width; NaN if fewer than two are.
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
    """Fit ``statistic(samples) ~ n^slope`` over the widest half, with a bootstrap error.

    Parameters
    ----------
    widths : ndarray, shape (W,)
        Increasing widths.
    samples : ndarray, shape (W, S, ...)
        Networks on axis 1 (see :func:`bootstrap_slope_se`).
    rng : numpy.random.Generator
        For the bootstrap.
    statistic : callable, default :func:`median_over_networks`
    resamples : int, default 400

    Returns
    -------
    PowerLaw
        Slope and intercept of :func:`loglog_fit` over :func:`widest_half`, and the slope's
        bootstrap standard error.
    """
    part = widest_half(len(widths))
    widths, samples = np.asarray(widths)[part], np.asarray(samples)[part]
    slope, intercept = loglog_fit(widths, statistic(samples))
    return PowerLaw(
        slope, intercept, bootstrap_slope_se(widths, samples, statistic, rng, resamples)
    )


def relative_error(estimate, reference) -> np.ndarray:
    """``||estimate - reference||_F / ||reference||_F`` over the last two axes.

    Parameters
    ----------
    estimate : ndarray, shape (..., M1, M2)
    reference : ndarray, shape (M1, M2) or (..., M1, M2)

    Returns
    -------
    ndarray, shape (...)
    """
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
    """Monte Carlo limits ``mean +- k se`` of the mean of ``samples`` along ``axis``.

    A value the samples estimate lies inside with probability about ``2 Phi(k) - 1`` (99.7% for
    k = 3) when the sample mean is near Gaussian (central limit theorem).

    Returns
    -------
    (low, high) : ndarrays, the shape of ``samples`` without ``axis``
    """
    samples = np.asarray(samples)
    mean, se = samples.mean(axis=axis), standard_error(samples, axis)
    return mean - k * se, mean + k * se
