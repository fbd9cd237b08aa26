"""``wideinf depth``: signal propagation, the order-to-chaos phase diagram, deep kernels.

Layers: the 1-D expectations against adaptive quadrature; exact identities (q* solves its
equation, chi_q is the variance map's derivative, chi_1 the correlation map's derivative at
c = 1, the known critical points); the layer-by-layer kernels against Architecture.kernel; the
claims (measured xi_c within 2% of -1/log chi in both phases, finite networks within 4 standard
errors of the exact correlation); the arrays' contract, the figure's structure, the command line.
"""

import math

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.integrate import quad

from wideinf.activations import make_activation
from wideinf.architecture import Architecture, Dense, Nonlinearity
from wideinf.cli import main
from wideinf.errors import ConfigError
from wideinf.experiments import depth as D
from wideinf.experiments import propagation as P

TINY = dict(
    n_sigma_w2=5, n_sigma_b2=3, depths=(1, 6), n_train=40, n_test=40, max_depth=40,
    fit_depths=(10, 30), finite_width=64, n_networks=4, finite_depths=(1, 2),
)  # fmt: skip
CONTRACT = {
    "sigma_w2": "W",
    "sigma_b2": "B",
    "chi1": "BW",
    "critical_sigma_w2": "B",
    "xi_c": "W",
    "xi_c_measured": "W",
    "xi_q": "W",
    "depths": "D",
    "accuracy_nngp": "DW",
    "accuracy_ntk": "DW",
}


@pytest.fixture(scope="module")
def tiny():
    config = D.Config(**TINY)
    return config, D.run(config, np.random.default_rng(3))


def _gauss_quad(f, q):
    g = lambda z: f(math.sqrt(q) * z, z) * math.exp(-z * z / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    return quad(g, -40, 40, points=[0.0], epsabs=1e-15, epsrel=1e-13, limit=800)[0]


# ----------------------------------------------------------------------------- expectations


@pytest.mark.parametrize("name", ["tanh", "erf", "relu", "softplus", "gabor"])
@pytest.mark.parametrize("q", [1e-3, 0.3, 1.0, 4.0, 30.0])
def test_midpoint_rule_matches_adaptive_quadrature(name, q):
    act = make_activation(name)
    cases = {
        "phi^2": lambda u, z: act.phi(u) ** 2,
        "phi'^2": lambda u, z: act.dphi(u) ** 2,
        "stein": lambda u, z: act.phi(u) * act.dphi(u) * z,
    }
    for label, f in cases.items():
        want = _gauss_quad(lambda u, z, f=f: float(f(np.array([u]), np.array([z]))[0]), q)
        got = float(P.gauss_expectation(f, np.array(q)))
        assert got == pytest.approx(want, rel=1e-11, abs=1e-14), (label, got - want)


# ----------------------------------------------------------------------------- exact identities


@pytest.mark.parametrize("name", ["tanh", "erf", "relu", "gelu"])
def test_fixed_point_satisfies_its_equation(name):
    act = make_activation(name)
    w2 = np.linspace(0.3, 4.0, 12)[None, :]
    b2 = np.array([0.0, 0.01, 0.05, 0.3])[:, None]
    fp = P.fixed_point(act, w2, b2)
    assert fp.converged.all()
    ok = ~fp.diverged
    assert ok.any()
    resid = np.abs(P.variance_map(act, w2, b2, fp.q_finite) - fp.q_finite) / np.maximum(
        1, fp.q_finite
    )
    assert resid[ok].max() <= 1e-12
    # Stable: the variance map's slope at q* is at most 1.
    assert (P.variance_slope(act, w2, fp.q_finite)[ok] <= 1 + 1e-9).all()
    if name == "relu":  # V(q) = sigma_w^2 q / 2 + sigma_b^2 diverges exactly when sigma_w^2 > 2
        assert np.array_equal(fp.diverged, np.broadcast_to(w2 > 2, fp.q.shape))


@pytest.mark.parametrize("name", ["tanh", "erf", "softplus"])
def test_chi_q_is_the_derivative_of_the_variance_map(name):
    act = make_activation(name)
    w2, b2 = np.array([0.8, 1.5, 2.5, 3.5]), 0.1
    fp = P.fixed_point(act, w2, b2)
    w2, q = w2[~fp.diverged], fp.q[~fp.diverged]  # softplus's variance diverges past ~2
    assert w2.size >= 2
    h = 1e-5 * q
    fd = (P.variance_map(act, w2, b2, q + h) - P.variance_map(act, w2, b2, q - h)) / (2 * h)
    np.testing.assert_allclose(P.variance_slope(act, w2, q), fd, rtol=0, atol=1e-8)


def _derivative_at_one(corr_map, h0=1e-2, levels=6):
    """C'(1) from the left by Richardson extrapolation of (C(1) - C(1 - h)) / h.

    The difference quotient expands in powers of sqrt(h) (the ReLU family's correlation map
    has a (1 - c)^(3/2) term), so each level removes the next power of sqrt(h) = 2^-k.
    """
    table = []
    for k in range(levels):
        h = h0 / 4**k
        row = [(corr_map(1.0) - corr_map(1.0 - h)) / h]
        for j in range(1, k + 1):
            row.append((2.0**j * row[j - 1] - table[k - 1][j - 1]) / (2.0**j - 1))
        table.append(row)
    return table[-1][-1]


@pytest.mark.parametrize(
    "name, w2, b2",
    [
        ("erf", 0.6, 0.01), ("erf", 1.2, 0.0), ("erf", 3.0, 0.3),
        ("relu", 1.5, 0.1), ("relu", 2.0, 0.0), ("gelu", 1.8, 0.05),
        ("tanh", 1.5, 0.05), ("tanh", 0.5, 0.2), ("tanh", 3.0, 0.2), ("tanh", 2.2, 0.05),
    ],
)  # fmt: skip
def test_chi_1_is_the_slope_of_the_correlation_map_at_one(name, w2, b2):
    act = make_activation(name)
    q = float(P.fixed_point(act, np.array(w2), np.array(b2)).q)
    chi = float(P.chi_1(act, w2, q))

    def corr(c):
        return float(P.correlation_map(act, w2, b2, q, np.array(c)))

    assert corr(1.0) == pytest.approx(1.0, abs=1e-11)  # c = 1 is a fixed point
    assert chi == pytest.approx(_derivative_at_one(corr), abs=1e-8)


def test_critical_points_at_zero_bias():
    relu, tanh, erf = (make_activation(n) for n in ("relu", "tanh", "erf"))
    assert P.critical_sigma_w2(relu, 0.0, 1.0, 3.0) == pytest.approx(2.0, abs=1e-12)
    # Odd activations at sigma_b^2 = 0: chi_1 = sigma_w^2 phi'(0)^2 below the critical point
    # but 1 + O((sigma_w^2 - crit)^2) above it (q* grows from 0), so chi_1 - 1 has the sign
    # of its rounding within ~sqrt(eps) of the root: the root is good to ~1e-7 only.
    assert P.critical_sigma_w2(tanh, 0.0, 0.5, 1.5) == pytest.approx(1.0, abs=1e-7)
    assert P.critical_sigma_w2(erf, 0.0, 0.5, 1.5) == pytest.approx(math.pi / 4, abs=1e-7)


@pytest.mark.parametrize("name, b2", [("tanh", 0.05), ("tanh", 0.3), ("erf", 0.1)])
def test_critical_line_solves_chi_1_equal_one(name, b2):
    act = make_activation(name)
    root = P.critical_sigma_w2(act, b2, 1.0, 4.0)
    chi = P.chi_1(act, root, P.fixed_point(act, np.array(root), np.array(b2)).q)
    assert abs(float(chi) - 1.0) <= 1e-10
    for w2, sign in ((root - 1e-3, -1), (root + 1e-3, 1)):  # a crossing, not a touch
        q = P.fixed_point(act, np.array(w2), np.array(b2)).q
        assert np.sign(float(P.chi_1(act, w2, q)) - 1) == sign


def test_chaotic_fixed_point_of_an_odd_activation_without_bias_is_zero():
    act = make_activation("tanh")
    w2 = np.array([1.5, 2.5, 4.0])
    fp = P.fixed_point(act, w2, 0.0)
    xi, c_star, chi_c = P.correlation_depth_scale(act, w2, 0.0, fp, P.chi_1(act, w2, fp.q))
    np.testing.assert_allclose(c_star, 0.0, atol=1e-12)
    # chi_c at c* = 0 is sigma_w^2 E[phi'(u)]^2 (u and v independent there).
    mean_dphi = P.gauss_expectation(lambda u, z: act.dphi(u), fp.q)
    np.testing.assert_allclose(chi_c, w2 * mean_dphi**2, rtol=1e-7)


# ----------------------------------------------------------------------------- kernels


@pytest.mark.parametrize("name", ["erf", "tanh", "relu"])
def test_layer_by_layer_kernels_equal_architecture_kernel(name, rng):
    act = make_activation(name)
    w2, b2 = 1.7, 0.1
    x = rng.standard_normal((7, 3))  # the first 4 are the "columns"
    d = x.shape[1]
    k0 = w2 * x @ x[:4].T / d + b2
    v0 = w2 * np.einsum("ij,ij->i", x, x) / d + b2
    for depth, k, v, ntk, ntk_d in P.deep_kernels(act, w2, b2, k0, v0, [1, 3]):
        layers = [Dense(math.sqrt(w2), math.sqrt(b2)), Nonlinearity(act)] * depth
        want = Architecture(layers + [Dense(math.sqrt(w2), math.sqrt(b2))]).kernel(x)
        np.testing.assert_allclose(k, want.nngp[:, :4], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(ntk, want.ntk[:, :4], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(v, np.diag(want.nngp), rtol=1e-12)
        np.testing.assert_allclose(ntk_d, np.diag(want.ntk), rtol=1e-12)


def test_ntk_predictor_is_the_ntk_ensemble_mean_at_infinite_time(rng):
    from wideinf.predict import gp_posterior, ntk_ensemble

    a = rng.standard_normal((12, 12))
    theta = a @ a.T + np.eye(12)  # (train + test) NTK
    k = 0.5 * theta + np.eye(12)
    y = rng.standard_normal(8)
    want = ntk_ensemble(theta[:8, :8], theta[8:, :8], k[:8, :8], k[8:, :8], np.diag(k)[8:], y)
    got = gp_posterior(theta[:8, :8], theta[8:, :8], np.diag(theta)[8:], y)
    np.testing.assert_allclose(got.mean, want.mean[0], rtol=1e-10)


# ----------------------------------------------------------------------------- the claims


@pytest.mark.parametrize("name", ["tanh", "erf"])
def test_measured_correlation_decay_gives_xi_c_in_both_phases(name):
    act = make_activation(name)
    b2 = 0.05
    ordered, chaotic = {"tanh": ([0.75, 1.0, 1.25], [2.5, 3.0, 3.5]),
                        "erf": ([0.6, 0.8, 1.0], [2.0, 2.75, 3.5])}[name]  # fmt: skip
    w2 = np.array(ordered + chaotic)
    fp = P.fixed_point(act, w2, b2)
    chi1 = P.chi_1(act, w2, fp.q)
    assert (chi1[:3] < 1).all() and (chi1[3:] > 1).all()
    xi, _, _ = P.correlation_depth_scale(act, w2, b2, fp, chi1)
    corr = P.correlations_through_depth(act, w2, np.full(6, b2), fp.q, 0.5, 120)
    measured = P.measured_depth_scale(corr, 20, 100)
    np.testing.assert_allclose(measured, xi, rtol=0.02)


def test_finite_networks_reproduce_the_exact_correlation(rng):
    act = make_activation("erf")
    for depth in (1, 4, 12):
        c, exact = D.finite_correlations(act, 3.0, 0.05, depth, 512, 32, 0.5, rng)
        se = c.std(ddof=1) / math.sqrt(c.size)
        assert se > 0
        assert abs(c.mean() - exact) <= 4 * se, (depth, c.mean(), exact, se)


# ----------------------------------------------------------------------------- run, figure, CLI


def test_run_arrays_follow_the_contract(tiny):
    config, result = tiny
    a = result.arrays
    sizes = {"W": config.n_sigma_w2, "B": config.n_sigma_b2, "D": len(config.depths)}
    for key, dims in CONTRACT.items():
        assert a[key].shape == tuple(sizes[c] for c in dims), key
    assert np.all((a["accuracy_nngp"] >= 0) & (a["accuracy_nngp"] <= 1))
    crit = a["critical_sigma_w2"]
    assert np.all(np.diff(crit[np.isfinite(crit)]) > 0)  # more bias, larger critical sigma_w^2
    assert result.summary["fixed_point_all_converged"]
    assert result.summary["finite_exact_vs_recursion_max_diff"] < 1e-12


def test_figure_structure(tiny):
    from wideinf.plotting import depth as plot_depth

    config, result = tiny
    fig = plot_depth.plot(result, config)[""]
    titles = [ax.get_title() or ax.get_title(loc="left") for ax in fig.axes]
    for letter in "abcd":
        assert any(t.startswith(f"({letter})") for t in titles), letter
    assert len(fig.axes) == 7  # a, b, c (NNGP, NTK), d, and the colour bars of a and c


def test_bad_config_is_one_line_exit_2(tmp_path):
    for key, value in [("activation", "tanhh"), ("fit_depths", "[50, 40]"), ("n_train", 1700)]:
        result = CliRunner().invoke(main, ["depth", "--quick", "--set", f"{key}={value}",
                                           "--out", str(tmp_path)])  # fmt: skip
        assert result.exit_code == 2, result.output
        assert key in result.output and "Traceback" not in result.output
    with pytest.raises(ConfigError, match="sigma_w2_min"):
        D.Config(sigma_w2_min=2.0, sigma_w2_max=1.0).validate()


def test_help_has_an_example():
    result = CliRunner().invoke(main, ["depth", "--help"])
    assert result.exit_code == 0
    assert "wideinf depth experiments/depth_phase.yaml --quick" in result.output
