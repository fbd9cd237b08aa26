"""Log marginal likelihood, its gradient, and fitting W_std, b_std and the noise to data."""

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from wideinf.architecture import Architecture
from wideinf.errors import ConfigError, NumericalError
from wideinf.evidence import evidence, fit_hyperparameters, log_marginal_likelihood
from wideinf.kernels.gradients import with_hyperparameters

ERF = ["dense", "erf", "dense"]
TRUTH = {"W_std": 1.5, "b_std": 0.5, "noise": 0.05}


def test_log_marginal_likelihood_is_the_gaussian_density(rng):
    a = rng.standard_normal((8, 8))
    k = a @ a.T
    y = rng.standard_normal((8, 3))
    for relative in (True, False):
        ev = log_marginal_likelihood(k, y, diag_reg=0.1, diag_reg_relative=relative)
        lam = 0.1 * np.trace(k) / 8 if relative else 0.1
        dist = multivariate_normal(np.zeros(8), k + lam * np.eye(8))
        assert ev.value == pytest.approx(sum(dist.logpdf(y[:, c]) for c in range(3)), abs=1e-10)
        np.testing.assert_allclose(ev.alpha, np.linalg.solve(k + lam * np.eye(8), y), atol=1e-10)


@pytest.mark.parametrize("relative", [True, False])
def test_log_marginal_likelihood_gradient_matches_central_differences(rng, relative):
    """R&W Eq. 5.9 against central differences (step 1e-6: error ~1e-9 relative)."""
    a = rng.standard_normal((7, 7))
    k = a @ a.T + np.eye(7)
    dk = rng.standard_normal((2, 7, 7))
    dk = dk + np.swapaxes(dk, 1, 2)
    y = rng.standard_normal(7)
    reg = {"diag_reg": 0.2, "diag_reg_relative": relative}
    ev = log_marginal_likelihood(k, y, dk, **reg)
    h = 1e-6
    for p in range(2):
        up = log_marginal_likelihood(k + h * dk[p], y, **reg).value
        down = log_marginal_likelihood(k - h * dk[p], y, **reg).value
        assert ev.grad[p] == pytest.approx((up - down) / (2 * h), rel=1e-6)
    if not relative:
        up = log_marginal_likelihood(k, y, diag_reg=0.2 * np.exp(h), diag_reg_relative=False)
        down = log_marginal_likelihood(k, y, diag_reg=0.2 * np.exp(-h), diag_reg_relative=False)
        assert ev.grad[2] == pytest.approx((up.value - down.value) / (2 * h), rel=1e-6)


@pytest.mark.parametrize("kernel", ["nngp", "ntk"])
def test_evidence_gradient_in_the_hyperparameters(rng, kernel):
    arch = Architecture.from_dict({"layers": ["dense", "gabor", "dense", "relu", "dense"]})
    arch = with_hyperparameters(arch, 1.3, 0.2)
    x, y = rng.standard_normal((20, 2)), rng.standard_normal(20)
    reg = {"diag_reg": 0.05, "diag_reg_relative": False, "kernel": kernel}
    value, grad = evidence(arch, x, y, **reg)
    h = 1e-5
    for p, (w, b) in enumerate([(1.3 * np.exp(h), 0.2), (1.3, 0.2 * np.exp(h))]):
        wm, bm = (1.3 * np.exp(-h), 0.2) if p == 0 else (1.3, 0.2 * np.exp(-h))
        up = evidence(with_hyperparameters(arch, w, b), x, y, **reg)[0]
        down = evidence(with_hyperparameters(arch, wm, bm), x, y, **reg)[0]
        assert grad[p] == pytest.approx((up - down) / (2 * h), rel=1e-6, abs=1e-8)


def _recovery(rng, n, repeats):
    """Fit W_std, b_std, noise to draws from the NNGP prior with known values."""
    truth_arch = Architecture.from_dict(
        {"layers": ERF, **{k: TRUTH[k] for k in ("W_std", "b_std")}}
    )
    start = Architecture.from_dict({"layers": ERF, "W_std": 1.0, "b_std": 0.1})
    fitted, gaps = [], []
    for _ in range(repeats):
        x = rng.standard_normal((n, 3))
        k = truth_arch.kernel(x).nngp + TRUTH["noise"] * np.eye(n)
        y = np.linalg.cholesky(k) @ rng.standard_normal(n)
        fit = fit_hyperparameters(start, x, y, ("W_std", "b_std", "noise"))
        truth_lml = evidence(truth_arch, x, y, diag_reg=TRUTH["noise"], diag_reg_relative=False)
        fitted.append([fit.values[k] for k in ("W_std", "b_std", "noise")])
        gaps.append(fit.log_marginal_likelihood - truth_lml[0])
    return np.array(fitted), np.array(gaps)


def _assert_recovered(fitted, gaps):
    mean = fitted.mean(axis=0)
    se = fitted.std(axis=0, ddof=1) / np.sqrt(len(fitted))
    truth = np.array([TRUTH["W_std"], TRUTH["b_std"], TRUTH["noise"]])
    assert np.all(np.abs(mean - truth) <= 3 * se), (mean, se)
    # the maximiser's evidence is at least the truth's (up to the optimiser's tolerance)
    assert np.all(gaps >= -1e-6), gaps


@pytest.mark.slow
def test_fitting_recovers_the_truth():
    """N = 500, 20 fresh draws: each mean fitted value within 3 standard errors of the truth."""
    _assert_recovered(*_recovery(np.random.default_rng(2026), 500, 20))


def test_fitting_recovers_the_truth_quick():
    """The same check, smaller: N = 150, 6 draws."""
    _assert_recovered(*_recovery(np.random.default_rng(7), 150, 6))


def test_fit_keeps_fixed_hyperparameters_and_checks_names(rng):
    arch = Architecture.from_dict({"layers": ERF, "W_std": 1.2, "b_std": 0.3})
    x, y = rng.standard_normal((30, 2)), rng.standard_normal(30)
    fit = fit_hyperparameters(arch, x, y, ("W_std",), diag_reg=0.1, diag_reg_relative=False)
    assert fit.values["b_std"] == 0.3 and fit.values["noise"] is None
    assert fit.log_marginal_likelihood >= fit.initial_log_marginal_likelihood
    with pytest.raises(ConfigError, match="cannot fit 'depth'"):
        fit_hyperparameters(arch, x, y, ("depth",))


def test_singular_start_names_diag_reg(rng):
    arch = Architecture.from_dict({"layers": ERF})
    x = np.repeat(rng.standard_normal((5, 2)), 2, axis=0)
    with pytest.raises(NumericalError, match="diag_reg"):
        fit_hyperparameters(arch, x, rng.standard_normal(10), ("W_std",))
