"""Predictions: limits, closed forms, a naive solve-based implementation, and the blog's numbers."""

import math
from pathlib import Path

import numpy as np
import pytest
from scipy.linalg import expm

from wideinf.architecture import Architecture
from wideinf.errors import NumericalError
from wideinf.predict import gp_posterior, ntk_ensemble, ntk_train_loss, regularizer

BLOG_ARCH = {"layers": ["dense", "gabor", "dense", "relu", "dense"], "W_std": 1.5, "b_std": 0.05}
POINTS = Path(__file__).resolve().parents[1] / "experiments/data/wide_neural_nets_fig2_points.csv"


def _problem(rng, n=7, m=5, arch=None):
    """Kernels of a small, well-conditioned regression problem: train (n, 1), test (m, 1)."""
    arch = Architecture.from_dict(
        arch or {"layers": ["dense", "erf", "dense"], "W_std": 1.3, "b_std": 0.2}
    )
    x = np.sort(rng.uniform(-2, 2, n))[:, None]
    xs = rng.uniform(-2.5, 2.5, m)[:, None]
    k = arch.kernel(np.vstack([x, xs]))
    y = np.sin(2 * x[:, 0]) + 0.1 * rng.standard_normal(n)
    tr, te = slice(0, n), slice(n, n + m)
    return {
        "K": k.nngp[tr, tr], "Ks": k.nngp[te, tr], "Kss": k.nngp[te, te],
        "T": k.ntk[tr, tr], "Ts": k.ntk[te, tr], "Tss": k.ntk[te, te], "y": y,
    }  # fmt: skip


def _naive_ntk(p, t, lam=0.0):
    """Lee et al. 2019, Eq. 16, written out with expm and np.linalg.solve."""
    n = p["y"].size
    theta = p["T"] + lam * np.eye(n)
    if math.isinf(t):
        a = np.linalg.solve(theta, p["Ts"].T).T
    else:
        a = p["Ts"] @ np.linalg.solve(theta, np.eye(n) - expm(-theta * t / n))
    mean = a @ p["y"]
    cov = p["Kss"] + a @ p["K"] @ a.T - (a @ p["Ks"].T + p["Ks"] @ a.T)
    return mean, cov


def test_gp_posterior_matches_naive_solve(rng):
    p = _problem(rng)
    lam = regularizer(p["K"], 1e-3, True)
    pred = gp_posterior(p["K"], p["Ks"], p["Kss"], p["y"], diag_reg=1e-3)
    reg = p["K"] + lam * np.eye(len(p["y"]))
    mean = p["Ks"] @ np.linalg.solve(reg, p["y"])
    cov = p["Kss"] - p["Ks"] @ np.linalg.solve(reg, p["Ks"].T)
    np.testing.assert_allclose(pred.mean, mean, atol=1e-10, rtol=0)
    np.testing.assert_allclose(pred.cov, cov, atol=1e-10, rtol=0)
    diag = gp_posterior(p["K"], p["Ks"], np.diag(p["Kss"]), p["y"], diag_reg=1e-3)
    np.testing.assert_allclose(diag.cov, np.diag(cov), atol=1e-10, rtol=0)
    np.testing.assert_allclose(diag.std, np.sqrt(np.diag(cov)), atol=1e-8)


def test_mean_alone_is_the_posterior_mean(rng):
    p = _problem(rng)
    for diag_reg in (0.0, 1e-3):
        pred = gp_posterior(p["K"], p["Ks"], p["Kss"], p["y"], diag_reg=diag_reg)
        alone = gp_posterior(p["K"], p["Ks"], None, p["y"], diag_reg=diag_reg)
        np.testing.assert_array_equal(alone.mean, pred.mean)
        assert alone.cov is None
    with pytest.raises(ValueError, match="mean only"):
        _ = alone.std
    with pytest.raises(NumericalError, match="move the points"):
        gp_posterior(np.ones((2, 2)), np.ones((3, 2)), None, p["y"][:2], advice="move the points")


@pytest.mark.parametrize("diag_reg", [0.0, 1e-3])
def test_ntk_ensemble_matches_naive_solve(rng, diag_reg):
    p = _problem(rng)
    times = [0.0, 0.5, 7.0, 100.0, math.inf]
    pred = ntk_ensemble(
        p["T"], p["Ts"], p["K"], p["Ks"], p["Kss"], p["y"], times, diag_reg=diag_reg
    )
    lam = regularizer(p["T"], diag_reg, True)
    assert pred.mean.shape == (5, 5) and pred.cov.shape == (5, 5, 5)
    for i, t in enumerate(times):
        mean, cov = _naive_ntk(p, t, lam)
        np.testing.assert_allclose(pred.mean[i], mean, atol=1e-10, rtol=0)
        np.testing.assert_allclose(pred.cov[i], cov, atol=1e-10, rtol=0)
    diag = ntk_ensemble(
        p["T"], p["Ts"], p["K"], p["Ks"], np.diag(p["Kss"]), p["y"], times, diag_reg=diag_reg
    )
    np.testing.assert_allclose(diag.var, np.diagonal(pred.cov, axis1=1, axis2=2), atol=1e-10)


def test_t_zero_gives_the_prior(rng):
    p = _problem(rng)
    pred = ntk_ensemble(p["T"], p["Ts"], p["K"], p["Ks"], p["Kss"], p["y"], [0.0])
    np.testing.assert_array_equal(pred.mean[0], 0.0)
    np.testing.assert_allclose(pred.cov[0], p["Kss"], atol=1e-15)


def test_large_t_meets_the_closed_form(rng):
    """The eigh path at a late time equals the Cholesky closed form at t = inf."""
    p = _problem(rng)
    w_min = np.linalg.eigvalsh(p["T"])[0]
    late = 60 * len(p["y"]) / w_min  # exp(-60): below rounding
    pred = ntk_ensemble(p["T"], p["Ts"], p["K"], p["Ks"], p["Kss"], p["y"], [late, math.inf])
    np.testing.assert_allclose(pred.mean[0], pred.mean[1], atol=1e-10)
    np.testing.assert_allclose(pred.cov[0], pred.cov[1], atol=1e-10)
    # and the closed form itself: A = Theta*X Theta^-1
    a = p["Ts"] @ np.linalg.inv(p["T"])
    np.testing.assert_allclose(pred.mean[1], a @ p["y"], atol=1e-10)


def test_time_follows_gradient_flow_on_the_train_points(rng):
    """At the train inputs, mean_t = (I - exp(-Theta t / N)) y: the residual decays as e^{-Theta t/N}."""
    p = _problem(rng)
    n = len(p["y"])
    t = 3.0
    pred = ntk_ensemble(p["T"], p["T"], p["K"], p["K"], p["K"], p["y"], [t])
    expected = (np.eye(n) - expm(-p["T"] * t / n)) @ p["y"]
    np.testing.assert_allclose(pred.mean[0], expected, atol=1e-10)


def test_ntk_mean_interpolates_without_regularizer(rng):
    p = _problem(rng)
    pred = ntk_ensemble(p["T"], p["T"], p["K"], p["K"], p["K"], p["y"], [math.inf], diag_reg=0.0)
    np.testing.assert_allclose(pred.mean[0], p["y"], atol=1e-9)
    np.testing.assert_allclose(pred.std[0], 0.0, atol=1e-6)
    # with a regularizer it no longer interpolates
    reg = ntk_ensemble(p["T"], p["T"], p["K"], p["K"], p["K"], p["y"], [math.inf], diag_reg=0.1)
    assert np.max(np.abs(reg.mean[0] - p["y"])) > 1e-3


def test_ntk_gp_is_a_gp_with_the_ntk(rng):
    """He et al. 2020: same mean as the NTK ensemble at t = inf; cov Theta** - Theta*X Theta^-1 ThetaX*."""
    p = _problem(rng)
    gp = gp_posterior(p["T"], p["Ts"], p["Tss"], p["y"], name="NTK")
    ens = ntk_ensemble(p["T"], p["Ts"], p["K"], p["Ks"], p["Kss"], p["y"])
    np.testing.assert_allclose(gp.mean, ens.mean[0], atol=1e-10)
    np.testing.assert_allclose(
        gp.cov, p["Tss"] - p["Ts"] @ np.linalg.solve(p["T"], p["Ts"].T), atol=1e-10
    )


def test_regularizer_conventions():
    m = np.diag([1.0, 3.0])
    assert regularizer(m, 0.1, relative=True) == pytest.approx(0.2)
    assert regularizer(m, 0.1, relative=False) == pytest.approx(0.1)


def test_ill_conditioned_kernel_names_diag_reg():
    x = np.array([[0.3], [0.3], [1.0]])  # a repeated input: singular kernels
    arch = Architecture.from_dict(
        {"layers": ["dense", "relu", "dense"], "W_std": 1.4, "b_std": 0.1}
    )
    k = arch.kernel(x)
    y = np.array([0.1, 0.2, 0.3])
    with pytest.raises(NumericalError, match="diag_reg"):
        gp_posterior(k.nngp, k.nngp, k.nngp, y, diag_reg=0.0)
    with pytest.raises(NumericalError, match="diag_reg"):
        ntk_ensemble(k.ntk, k.ntk, k.nngp, k.nngp, k.nngp, y, [math.inf], diag_reg=0.0)
    # finite times need no inverse; a regularizer repairs t = inf
    ntk_ensemble(k.ntk, k.ntk, k.nngp, k.nngp, k.nngp, y, [1.0, 10.0], diag_reg=0.0)
    ok = ntk_ensemble(k.ntk, k.ntk, k.nngp, k.nngp, k.nngp, y, [math.inf], diag_reg=1e-4)
    assert np.all(np.isfinite(ok.mean))


def test_not_psd_is_an_error():
    bad = np.array([[1.0, 2.0], [2.0, 1.0]])  # eigenvalues 3, -1
    with pytest.raises(NumericalError, match="diag_reg"):
        ntk_ensemble(bad, bad, np.eye(2), np.eye(2), np.eye(2), np.ones(2), [1.0])


def test_train_loss_limits(rng):
    p = _problem(rng)
    n = len(p["y"])
    loss = ntk_train_loss(p["T"], p["K"], p["y"], [0.0, 5.0, math.inf])
    assert loss[0] == pytest.approx((np.trace(p["K"]) + p["y"] @ p["y"]) / (2 * n))
    assert loss[2] == 0.0
    e = expm(-p["T"] * 5.0 / n)
    assert loss[1] == pytest.approx(
        (np.trace(e @ p["K"] @ e) + np.sum((e @ p["y"]) ** 2)) / (2 * n)
    )


def test_blog_figure_2_numbers():
    """The faithful data: NNGP mean 0.0643, 0.9697, 0.8960 and NTK mean 0.0108, 0.4131, 0.8370
    at x = 0, 1, 2 (read off the original, float32; tolerance 3e-3); diag_reg 1e-4 relative."""
    data = np.loadtxt(POINTS, delimiter=",", skiprows=1)
    train = data[data[:, 0] == 0]
    x, y = train[:, 1:2], train[:, 2]
    xs = np.array([[0.0], [1.0], [2.0]])
    arch = Architecture.from_dict(BLOG_ARCH)
    k = arch.kernel(np.vstack([x, xs]))
    tr, te = slice(0, 10), slice(10, 13)
    nngp = gp_posterior(k.nngp[tr, tr], k.nngp[te, tr], np.diag(k.nngp)[te], y, diag_reg=1e-4)
    ntk = ntk_ensemble(
        k.ntk[tr, tr], k.ntk[te, tr], k.nngp[tr, tr], k.nngp[te, tr], np.diag(k.nngp)[te], y,
        diag_reg=1e-4,
    )  # fmt: skip
    np.testing.assert_allclose(nngp.mean, [0.0643, 0.9697, 0.8960], atol=3e-3)
    np.testing.assert_allclose(ntk.mean[0], [0.0108, 0.4131, 0.8370], atol=3e-3)
    # the prior sd of Figure 1 comes back at t = 0
    prior = ntk_ensemble(
        k.ntk[tr, tr], k.ntk[te, tr], k.nngp[tr, tr], k.nngp[te, tr], np.diag(k.nngp)[te], y, [0.0]
    )
    np.testing.assert_allclose(prior.std[0][:2], [0.1074, 0.3877], atol=1e-4)
