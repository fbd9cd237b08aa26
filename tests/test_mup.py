"""The maximal-update parameterization (wideinf.mup) and its sweep in ``wideinf generalize``.

Layers of tests: the per-layer learning-rate mechanism against a naive second implementation
(explicit gradients and Jacobian); muP's table; the exact identity muP = standard at the base
width; and the claim, at reduced size: the last hidden layer's features move O(1) in muP and
O(n^-1/2) in NTK parameterization. Slope tolerances come from the bootstrap standard error
over seeds (wideinf.stats), with the factor 1.2 by which test_generalize found the bootstrap
to underestimate the run-to-run sd of such slopes, and 4 of those errors.
"""

import numpy as np
import pytest
from click.testing import CliRunner

from wideinf import mup
from wideinf import networks as nets
from wideinf.architecture import Architecture
from wideinf.cli import main
from wideinf.config import build
from wideinf.errors import ConfigError
from wideinf.experiments import generalize as gen
from wideinf.stats import bootstrap_slope_se, loglog_fit, median_over_networks
from wideinf.training import train

Z, BOOTSTRAP_UNDERESTIMATE = 4.0, 1.2
TWO_LAYERS = {"layers": ["dense", "relu", "dense", "erf", "dense"], "W_std": 1.3, "b_std": 0.4}


def _config(**raw):
    return build(gen.Config, {"experiment": "generalize", "name": "t", **raw}, "test")


def _standard_nets(width, seeds=3, arch_raw=TWO_LAYERS, seed=0):
    arch = Architecture.from_dict({**arch_raw, "parameterization": "standard"})
    return arch, nets.init_params(arch, 2, width, seeds, np.random.default_rng(seed))


# ----------------------------------------------------------------------------- mechanism


def test_multiplied_descent_step_is_theta_minus_eta_m_times_the_gradient():
    arch, params = _standard_nets(7)
    x = np.random.default_rng(1).normal(size=(5, 2))
    cot = np.random.default_rng(2).normal(size=(3, 5))
    rates = ((2.0, 3.0), (0.5, 1.5), (0.25, 4.0))
    grads = nets.gradients(arch, params, x, cot)
    stepped = params.copy()
    nets.descent_step(arch, stepped, nets.forward_cache(arch, stepped, x), cot, 0.1,
                      multipliers=rates)  # fmt: skip
    for k, (mw, mb) in enumerate(rates):
        np.testing.assert_allclose(stepped.weights[k], params.weights[k] - 0.1 * mw * grads.weights[k],
                                   rtol=0, atol=1e-14)  # fmt: skip
        np.testing.assert_allclose(stepped.biases[k], params.biases[k] - 0.1 * mb * grads.biases[k],
                                   rtol=0, atol=1e-14)  # fmt: skip


def test_multiplied_ntk_is_j_m_jt_from_the_explicit_jacobian():
    arch, params = _standard_nets(6)
    x = np.random.default_rng(3).normal(size=(4, 2))
    rates = mup.mup_multipliers(params.dims, 2)
    jac = nets.jacobian(arch, params, x)  # (S, N, P)
    diag = nets.ravel_params(
        nets.Params(
            tuple(np.full_like(w, r[0]) for w, r in zip(params.weights, rates)),
            tuple(np.full_like(b, r[1]) for b, r in zip(params.biases, rates)),
        )
    )  # (S, P)
    expected = np.einsum("snp,sp,smp->snm", jac, diag, jac)
    got = mup.mup_tangent_kernel(arch, params, x, 2)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("bad", [((1.0, 1.0),), ((1.0, 1.0), (0.0, 1.0)), ((1.0, np.nan),) * 2])
def test_bad_multipliers_fail_in_one_line(bad):
    arch, params = _standard_nets(4, arch_raw={"layers": ["dense", "relu", "dense"]})
    with pytest.raises(ConfigError, match="multipliers"):
        train(arch, params, np.zeros((2, 2)), np.zeros(2), 0.1, 1, multipliers=bad)


# ----------------------------------------------------------------------------- the table


def test_mup_table_against_the_width_multiplier():
    m = 4096 / 64
    one = mup.mup_multipliers((2, 4096, 1), 64)
    np.testing.assert_allclose(one, [(m, m), (1 / m, 1.0)], rtol=1e-15)
    two = mup.mup_multipliers((3, 4096, 4096, 1), 64)
    np.testing.assert_allclose(two, [(m, m), (1.0, m), (1 / m, 1.0)], rtol=1e-15)
    assert mup.readout_scale((2, 4096, 1), 64) == pytest.approx(m**-0.5, rel=1e-15)
    assert mup.mup_multipliers((2, 64, 1), 64) == ((1.0, 1.0), (1.0, 1.0))
    for bad in (0, -3, float("inf"), True):
        with pytest.raises(ConfigError, match="base_width"):
            mup.mup_multipliers((2, 8, 1), bad)


def test_mup_readout_variance_is_w_std_squared_over_n_times_base_over_n():
    """Table 3: the readout's initial variance 1/fan_in^2, here W_std^2 n_0 / n^2."""
    n, base, seeds = 512, 32, 40
    arch, params = _standard_nets(n, seeds, {"layers": ["dense", "relu", "dense"], "W_std": 1.5})
    readout = mup.to_mup(params, base).weights[-1]  # (S, n, 1)
    expected = 1.5**2 * base / n**2
    var = np.mean(readout**2)  # mean-zero Gaussian: E[w^2] = variance
    se = expected * np.sqrt(2.0 / readout.size)  # sd of a chi-square mean
    assert abs(var - expected) < 4 * se
    assert mup.to_mup(params, base).weights[0] is params.weights[0]  # only the readout changes


def test_mup_tangent_kernel_stays_of_order_one_while_the_standard_one_grows():
    """muP's rates make J M J^T width-independent; standard's raw J J^T grows like n."""
    x = np.random.default_rng(5).normal(size=(4, 2))
    raw = {"layers": ["dense", "relu", "dense"], "W_std": 1.5, "b_std": 0.5}
    top = {}
    for n in (256, 4096):
        arch, params = _standard_nets(n, 6, raw, seed=n)
        theta = mup.mup_tangent_kernel(arch, mup.to_mup(params, 8), x, 8)
        top[n] = np.linalg.eigvalsh(theta)[:, -1]  # (S,)
        top[f"sp{n}"] = np.linalg.eigvalsh(nets.empirical_ntk(arch, params, x) * n)[:, -1]
    ratio = top[4096].mean() / top[256].mean()
    assert 0.8 < ratio < 1.25, ratio  # fluctuations O(256^-1/2) = 6%
    assert top["sp4096"].mean() / top["sp256"].mean() > 10  # 16 at large width


# ----------------------------------------------------------------------------- the sweep


def test_mup_at_its_base_width_is_the_standard_network_exactly():
    config = _config(widths=[16, 64], seeds=3, grid={"points": 9},
                     parameterizations=["ntk", "standard", "mup"], mup={"base_width": 16})  # fmt: skip
    a = gen.run(config, np.random.default_rng(0)).arrays
    assert list(a["parameterizations"]) == ["ntk", "standard", "mup"]
    for key in ("predictions", "feature_movement", "train_loss", "steps", "learning_rate"):
        np.testing.assert_array_equal(a[f"{key}_mup"][0], a[f"{key}_standard"][0], err_msg=key)
    assert np.max(np.abs(a["predictions_mup"][1] - a["predictions_standard"][1])) > 1e-3
    np.testing.assert_array_equal(a["predictions"], a["predictions_ntk"])


@pytest.fixture(scope="module")
def movement_sweep():
    """Widths 256 .. 4096, NTK parameterization and muP (base width 8): about 2 s."""
    widths = [256, 512, 1024, 2048, 4096]
    config = _config(widths=widths, seeds=6, grid={"points": 9}, parameterizations=["ntk", "mup"])
    return np.array(widths), gen.run(config, np.random.default_rng(2))


def _movement_slope(widths, movement, seed=0):
    slope, _ = loglog_fit(widths, median_over_networks(movement))
    se = bootstrap_slope_se(widths, movement, median_over_networks, np.random.default_rng(seed))
    return slope, se


def test_mup_features_move_order_one_while_ntk_features_freeze_like_n_to_the_minus_half(
    movement_sweep,
):
    widths, result = movement_sweep
    a = result.arrays
    assert np.all(a["train_loss_mup"] <= 1e-6) and np.all(a["train_loss_ntk"] <= 1e-6)
    # Measured: muP -0.02 +- 0.01, NTK -0.52 +- 0.006 (bootstrap standard errors).
    slope, se = _movement_slope(widths, a["feature_movement_mup"])
    assert -0.15 <= slope <= 0.15, f"muP movement slope {slope:+.3f} +- {se:.3f}"
    assert np.median(a["feature_movement_mup"]) > 0.05  # of order one, not merely flat
    slope, se = _movement_slope(widths, a["feature_movement_ntk"])
    tol = Z * BOOTSTRAP_UNDERESTIMATE * se
    assert abs(slope + 0.5) < tol, f"NTK movement slope {slope:+.3f}, allowed -0.5 +- {tol:.3f}"


# ----------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    "raw, key",
    [
        ({"parameterizations": ["ntk", "mu"]}, "parameterizations"),
        ({"parameterizations": ["ntk", "mup", "mup"]}, "parameterizations"),
        ({"parameterizations": ["mup"]}, "must include"),
        ({"mup": {"base_width": 0}}, "base_width"),
        ({"mup": {"base_width": -8}}, "base_width"),
        ({"mup": {"width": 8}}, "width"),
        ({"architecture": {"layers": ["dense", "relu", "dense"], "parameterization": "mup"}},
         "parameterization"),
    ],
)  # fmt: skip
def test_bad_parameterization_configs_fail_naming_the_key(raw, key):
    with pytest.raises(ConfigError, match=key):
        _config(**raw)


def test_a_single_name_is_a_list_of_one():
    assert _config(parameterizations="ntk").sweeps == ("ntk",)
    assert _config().sweeps == ("ntk",)
    assert _config(parameterizations=["mup", "ntk"]).sweeps == ("ntk", "mup")


@pytest.mark.parametrize("setting", ["parameterizations=[ntk, mvp]", "mup.base_width=0"])
def test_cli_bad_parameterization_is_one_line_and_exit_code_2(tmp_path, setting):
    result = CliRunner().invoke(
        main, ["generalize", "--quick", "--set", setting, "--out", str(tmp_path), "--quiet"]
    )
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert "Traceback" not in result.output


# ----------------------------------------------------------------------------- arrays, figure


def test_contract_and_figure_c(tmp_path):
    from wideinf.plotting import generalize as genplot
    from wideinf.plotting import plt

    config = _config(widths=[8, 32, 128], seeds=3, grid={"points": 9},
                     parameterizations=["ntk", "mup"])  # fmt: skip
    result = gen.run(config, np.random.default_rng(0))
    a = result.arrays
    w, s, g = 3, 3, 81
    for name in ("ntk", "mup"):
        assert a[f"predictions_{name}"].shape == (w, s, g)
        assert a[f"feature_movement_{name}"].shape == (w, s)
        assert np.all(a[f"feature_movement_{name}"] > 0)
    figures = genplot.plot(result, config)
    assert set(figures) == {"", "scaling", "parameterizations"}
    fig = figures["parameterizations"]
    movement = fig.axes[0]
    assert movement.get_xscale() == "log" and movement.get_yscale() == "log"
    labels = [t.get_text() for t in movement.get_legend().get_texts()]
    assert any("muP" in t and "slope" in t for t in labels), labels
    assert len(fig.axes) == 3 + 2 * 2 + 1  # 3 panels, 2 functions, the limit, 2 differences
    for f in figures.values():
        plt.close(f)
    single = gen.run(_config(widths=[8, 16], seeds=2, grid={"points": 5}),
                     np.random.default_rng(0))  # fmt: skip
    assert "parameterizations" not in genplot.plot(single, config)
    plt.close("all")
