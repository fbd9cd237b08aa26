"""wideinf.stats: power-law fits with bootstrap errors, relative errors, z-scores, MC limits.

Exact identities on exact power laws; the bootstrap standard error of a slope against the
spread of slopes over many independent data sets (Monte Carlo, tolerance from the number of
repetitions); the degenerate resamples that have no logarithm.
"""

import math

import numpy as np
import pytest

from wideinf import stats


def test_widest_half():
    assert stats.widest_half(10) == slice(5, 10)
    assert stats.widest_half(11) == slice(5, 11)
    assert stats.widest_half(3) == slice(1, 3)
    assert stats.widest_half(2) == slice(0, 2)


def test_exact_power_law_has_exact_fit_and_zero_error():
    widths = np.array([16.0, 64.0, 256.0, 1024.0])
    values = 3.0 * widths[:, None] ** -0.5 * np.ones((1, 5))  # (W, S), identical networks
    slope, intercept = stats.loglog_fit(widths, np.median(values, axis=1))
    assert slope == pytest.approx(-0.5, abs=1e-12)
    assert intercept == pytest.approx(math.log(3.0), abs=1e-12)
    fit = stats.fit_power_law(widths, values, np.random.default_rng(0))
    assert fit.slope == pytest.approx(-0.5, abs=1e-12) and fit.se == pytest.approx(0, abs=1e-12)
    # Scatter across networks gives a positive standard error.
    noisy = values * np.exp(0.3 * np.random.default_rng(1).standard_normal(values.shape))
    assert (
        stats.bootstrap_slope_se(
            widths, noisy, stats.median_over_networks, np.random.default_rng(0)
        )
        > 0.01
    )


def test_bootstrap_error_matches_the_spread_of_slopes_over_repetitions():
    """Medians of S = 15 log-normal networks at 4 widths, 300 repetitions.

    The sd of the fitted slopes over the repetitions is the truth the bootstrap estimates; the
    bootstrap of a median is biased by O(S^-1/2) (Efron & Tibshirani 1993, ch. 11), and the sd
    of 300 slopes is known to about 4%; we allow 25%.
    """
    rng = np.random.default_rng(2)
    widths = np.array([64.0, 128.0, 256.0, 512.0])
    slopes, errors = [], []
    for _ in range(300):
        values = widths[:, None] ** -0.5 * np.exp(0.4 * rng.standard_normal((4, 15)))
        slopes.append(stats.loglog_fit(widths, np.median(values, axis=1))[0])
        errors.append(stats.bootstrap_slope_se(widths, values, stats.median_over_networks, rng))
    assert np.mean(errors) == pytest.approx(np.std(slopes, ddof=1), rel=0.25)


def test_smooth_statistic_with_trailing_axes_and_chunks(monkeypatch):
    """A spread over seeds and a grid axis, resampled in chunks of one: the same errors."""
    monkeypatch.setattr(stats, "_CHUNK_ENTRIES", 1)
    rng = np.random.default_rng(3)
    widths = np.array([8.0, 32.0, 128.0])
    f = rng.standard_normal((3, 6, 5)) * widths[:, None, None] ** -0.5  # (W, S, G)

    def spread(sample):  # (..., W, S, G) -> (..., W)
        return np.sqrt(np.mean(np.var(sample, axis=-2, ddof=1), axis=-1))

    chunked = stats.bootstrap_slope_se(widths, f, spread, np.random.default_rng(4), 50)
    monkeypatch.setattr(stats, "_CHUNK_ENTRIES", 10**9)
    whole = stats.bootstrap_slope_se(widths, f, spread, np.random.default_rng(4), 50)
    assert chunked == pytest.approx(whole, rel=1e-12) and chunked > 0


def test_resamples_without_a_logarithm_are_left_out():
    """Two seeds: half the resamples at a width repeat one network and have zero spread."""
    widths = np.array([8.0, 32.0])
    f = np.array([[0.0, 1.0], [0.0, 0.5]])  # (W, S)

    def spread(sample):
        return np.std(sample, axis=-1)

    se = stats.bootstrap_slope_se(widths, f, spread, np.random.default_rng(0), 400)
    assert se == pytest.approx(0.0, abs=1e-12)  # every usable resample has the same slope
    assert math.isnan(stats.bootstrap_slope_se(widths, f, spread, np.random.default_rng(0), 1))


def test_relative_error():
    ref = np.array([[2.0, 0.0], [0.0, 2.0]])
    est = np.stack([ref, ref + np.array([[0.0, 1.0], [1.0, 0.0]])])  # (2, 2, 2)
    np.testing.assert_allclose(stats.relative_error(est, ref), [0.0, 0.5])


def test_z_score_and_mc_limits():
    np.testing.assert_allclose(stats.z_score([1.0, 3.0], [0.0, 1.0], [0.5, 1.0]), [2.0, 2.0])
    z = stats.z_score([0.0, 1.0], [0.0, 0.0], [0.0, 0.0])
    assert math.isnan(z[0]) and z[1] == math.inf
    samples = np.array([[1.0, 0.0], [3.0, 0.0], [2.0, 0.0]])  # (S, 2)
    low, high = stats.mc_limits(samples, k=2.0)
    se = 1.0 / math.sqrt(3)
    np.testing.assert_allclose(low, [2.0 - 2 * se, 0.0])
    np.testing.assert_allclose(high, [2.0 + 2 * se, 0.0])
    np.testing.assert_allclose(stats.standard_error(samples), [se, 0.0])


def test_mc_limits_cover_the_mean_at_the_stated_rate():
    """k = 2 covers a known mean in about 95.4% of 2000 repetitions (sd of the rate 0.5%)."""
    rng = np.random.default_rng(5)
    low, high = stats.mc_limits(rng.exponential(size=(200, 2000)), k=2.0)
    assert np.mean((low < 1.0) & (1.0 < high)) == pytest.approx(0.954, abs=0.02)
