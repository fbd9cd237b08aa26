"""`wideinf nngp-samples` (blog Figure 1): the arrays behind the figure, the figure, the command.

Tolerances are Monte Carlo standard errors estimated from the same samples (see
:func:`wideinf.experiments.nngp_samples.sample_covariance` and ``excess_kurtosis``); each claim is
checked at 4 standard errors, so a seeded run fails only if the claim is wrong.
"""

import dataclasses
import math
import subprocess
import sys

import numpy as np
import pytest

from wideinf.config import build
from wideinf.errors import ConfigError, NumericalError
from wideinf.experiments import nngp_samples as ns
from wideinf.plotting import nngp_samples as nsplot
from wideinf.plotting import plt
from wideinf.runner import load_config

Z = 4.0  # standard errors allowed for a claim that should hold


def _config(**overrides):
    raw = {"experiment": "nngp-samples", "name": "t", **overrides}
    return build(ns.Config, raw, "test")


@pytest.fixture(scope="module")
def blog():
    """The blog's network at widths 4, 500 and inf, 400 samples each, on a small grid.

    Sampling 400 networks of width 500 draws 100 million weights (about a second); the full
    1000 are in the slow test below.
    """
    config = _config(n_grid=8, n_samples=400, density_points=30)
    return config, ns.run(config, np.random.default_rng(0))


# ----------------------------------------------------------------------------- arrays


def test_contract_names_shapes_and_widths(blog):
    config, result = blog
    a = result.arrays
    s, g = config.n_samples, config.n_grid
    assert a["x_grid"].shape == (g,)
    assert a["x_grid"][0] == -3.0 and a["x_grid"][-1] == 3.0
    np.testing.assert_array_equal(a["pair_inputs"], [1.0, -1.0])
    assert a["nngp_pair_cov"].shape == (2, 2)
    assert a["widths"].dtype == float
    np.testing.assert_array_equal(a["widths"], [4.0, 500.0, np.inf])
    for label in ("w4", "w500", "winf"):
        assert a[f"functions_{label}"].shape == (s, g)
        assert a[f"pair_{label}"].shape == (s, 2)
        assert a[f"density_{label}"].shape == (30, 30)
        assert np.all(np.isfinite(a[f"functions_{label}"]))
    assert a["excess_kurtosis"].shape == a["excess_kurtosis_se"].shape == (3, 2)
    assert a["pair_cov"].shape == a["pair_cov_se"].shape == (3, 2, 2)
    assert a["nngp_ellipses"].shape[0] == 2 and a["nngp_ellipses"].shape[2] == 2


def test_nngp_pair_covariance_is_the_blogs(blog):
    # K(1, 1) = 0.15028 and K(1, -1) = 0.00309, read off the blog's published Figure 1 (README).
    k = blog[1].arrays["nngp_pair_cov"]
    np.testing.assert_allclose(k, [[0.15028, 0.00309], [0.00309, 0.15028]], atol=5e-6)
    # sd 0.3877 at x = 1 and 0.1074 at x = 0 (the band of the infinite column).
    grid = {"x_min": -1.0, "x_max": 1.0, "n_grid": 3, "widths": ["inf"], "n_samples": 10}
    sd = ns.run(_config(**grid), np.random.default_rng(0)).arrays["nngp_sd"]
    np.testing.assert_allclose(sd, [0.3877, 0.1074, 0.3877], atol=1e-4)


def _cov_z(result, label):
    a = result.arrays
    i = [ns.width_label(w) for w in a["widths"]].index(label)
    return np.abs(a["pair_cov"][i] - a["nngp_pair_cov"]) / a["pair_cov_se"][i]


def test_width_500_covariance_matches_the_nngp_within_monte_carlo_error(blog):
    z = _cov_z(blog[1], "w500")
    assert np.all(z < Z), z
    # The standard error is about sqrt(2 / S) K11 on the diagonal: a 7% test at S = 400.
    se = blog[1].arrays["pair_cov_se"][1]
    assert 0.05 < se[0, 0] / 0.15028 < 0.09


@pytest.mark.slow
def test_width_500_with_1000_networks_matches_the_nngp_and_is_gaussian():
    config = _config(widths=[500], n_grid=4, density_points=10)
    result = ns.run(config, np.random.default_rng(7))
    assert np.all(_cov_z(result, "w500") < Z)
    g2, se = result.arrays["excess_kurtosis"][0], result.arrays["excess_kurtosis_se"][0]
    assert np.all(np.abs(g2) < Z * se)
    assert np.all(se < 0.2)


def test_infinite_width_draws_have_the_nngp_covariance(blog):
    z = _cov_z(blog[1], "winf")
    assert np.all(z < Z), z
    # The whole grid too: each entry of the sample covariance within 4 standard errors.
    a = blog[1].arrays
    draws = np.concatenate([a["functions_winf"], a["pair_winf"]], axis=1)  # (S, G + 2)
    cov, se = ns.sample_covariance(draws)
    config = blog[0]
    from wideinf.architecture import Architecture

    x = np.concatenate([a["x_grid"], a["pair_inputs"]])[:, None]
    k = Architecture.from_config(config.architecture).kernel(x).nngp
    assert np.all(np.abs(cov - k) < Z * se + 1e-12)


def test_wide_networks_and_the_gp_have_no_excess_kurtosis(blog):
    a = blog[1].arrays
    g2, se = a["excess_kurtosis"][1:], a["excess_kurtosis_se"][1:]  # (2, 2): 500 and inf
    assert np.all(np.abs(g2) < Z * se), (g2, se)
    # For a Gaussian the standard error is sqrt(24 / S) on average (each estimate is noisy).
    np.testing.assert_allclose(se.mean(), math.sqrt(24 / 400), rtol=0.25)


def test_width_4_is_clearly_not_gaussian():
    # Against the Gaussian null, whose standard error is sqrt(24 / S), and against the
    # estimate's own (delta-method) standard error, for 1000 networks as in the figure.
    config = _config(widths=[4], n_grid=2, n_samples=1000, density_points=10)
    result = ns.run(config, np.random.default_rng(0))
    g2, se = result.arrays["excess_kurtosis"][0], result.arrays["excess_kurtosis_se"][0]
    assert np.all(g2 > 10 * math.sqrt(24 / 1000)), g2
    assert np.all(g2 > Z * se), (g2, se)


def test_excess_kurtosis_shrinks_like_one_over_width():
    # Width 50 still has a measurable excess kurtosis, about 18 / n for this network (about
    # 5 at width 4), so it is positive but far below the width-4 value: 20000 small networks.
    config = _config(widths=[50], n_grid=2, n_samples=20_000, density_points=10)
    result = ns.run(config, np.random.default_rng(0))
    g2, se = result.arrays["excess_kurtosis"][0], result.arrays["excess_kurtosis_se"][0]
    assert np.all(g2 > Z * math.sqrt(24 / 20_000)), g2
    assert np.all(np.abs(g2 - 18 / 50) < Z * se + 0.05), (g2, se)


def test_summary_holds_the_gaussianity_measures(blog):
    s = blog[1].summary
    a = blog[1].arrays
    assert s["excess_kurtosis_w4_1"] == pytest.approx(a["excess_kurtosis"][0, 0])
    assert s["excess_kurtosis_se_w500_2"] == pytest.approx(a["excess_kurtosis_se"][1, 1])
    assert s["cov_winf_12"] == pytest.approx(a["pair_cov"][2, 0, 1])
    assert s["nngp_K12"] == pytest.approx(a["nngp_pair_cov"][0, 1])
    lines = ns.report(blog[1])
    assert lines[0].startswith("NNGP covariance at x = 1, -1")
    assert [line.split()[0] for line in lines[2:5]] == ["4", "500", "inf"]


def test_each_width_has_its_own_stream_and_the_seed_repeats():
    small = {"n_grid": 5, "n_samples": 50, "density_points": 10}
    both = ns.run(_config(widths=[4, "inf"], **small), np.random.default_rng(3))
    alone = ns.run(_config(widths=["inf"], **small), np.random.default_rng(3))
    again = ns.run(_config(widths=[4, "inf"], **small), np.random.default_rng(3))
    np.testing.assert_array_equal(both.arrays["functions_winf"], alone.arrays["functions_winf"])
    for key, value in both.arrays.items():
        np.testing.assert_array_equal(value, again.arrays[key], err_msg=key)


# ----------------------------------------------------------------------------- statistics


def test_kurtosis_and_its_standard_error_on_known_laws():
    rng = np.random.default_rng(1)
    # Excess kurtosis 0 (normal), -1.2 (uniform), 1.2 (logistic): 400 replicates of 2000.
    x = np.stack(
        [
            rng.standard_normal((400, 2000)),
            rng.uniform(size=(400, 2000)),
            rng.logistic(size=(400, 2000)),
        ],
        axis=-1,
    )
    g2, se = zip(*(ns.excess_kurtosis(rep) for rep in x))
    g2, se = np.array(g2), np.array(se)  # (400, 3)
    np.testing.assert_allclose(g2.mean(0), [0.0, -1.2, 1.2], atol=0.05)
    # The delta-method standard error matches the spread over replicates (light tails; with
    # heavier tails it converges slowly and runs low, hence the Gaussian null in the claims).
    np.testing.assert_allclose(se.mean(0)[:2], g2.std(0)[:2], rtol=0.15)
    np.testing.assert_allclose(se.mean(0)[2], g2.std(0)[2], rtol=0.25)
    np.testing.assert_allclose(se.mean(0)[0], math.sqrt(24 / 2000), rtol=0.05)


def test_covariance_standard_error_matches_the_spread():
    rng = np.random.default_rng(2)
    k = np.array([[1.0, 0.6], [0.6, 2.0]])
    reps = [rng.multivariate_normal([0, 0], k, size=300) for _ in range(400)]
    cov, se = zip(*(ns.sample_covariance(r) for r in reps))
    cov, se = np.array(cov), np.array(se)  # (400, 2, 2)
    np.testing.assert_allclose(cov.mean(0), k, atol=0.03)
    np.testing.assert_allclose(se.mean(0), cov.std(0), rtol=0.15)
    # Gaussian: Var(d_i d_j) = K_ii K_jj + K_ij^2.
    expected = np.sqrt((np.outer(np.diag(k), np.diag(k)) + k**2) / 300)
    np.testing.assert_allclose(se.mean(0), expected, rtol=0.05)


def test_gp_draws_handle_repeated_points_and_reject_an_indefinite_kernel():
    x = np.array([0.0, 0.5, 0.5, 1.0])
    k = np.exp(-(np.subtract.outer(x, x) ** 2))  # rank-deficient: points 1 and 2 repeat
    f = ns.gp_draws(k, 20000, np.random.default_rng(0))
    np.testing.assert_allclose(f[:, 1], f[:, 2], atol=1e-7)
    cov, se = ns.sample_covariance(f)
    assert np.all(np.abs(cov - k) < Z * se)
    with pytest.raises(NumericalError, match="positive semi-definite"):
        ns.gp_draws(np.array([[1.0, 2.0], [2.0, 1.0]]), 5, np.random.default_rng(0))


def test_sigma_ellipses_lie_at_mahalanobis_distance_1_and_2():
    k = np.array([[0.5, 0.2], [0.2, 0.3]])
    outlines = ns.sigma_ellipses(k)  # (2, E, 2)
    m = np.einsum("rei,ij,rej->re", outlines, np.linalg.inv(k), outlines)
    np.testing.assert_allclose(m[0], 1.0, rtol=1e-12)
    np.testing.assert_allclose(m[1], 4.0, rtol=1e-12)


# ----------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    "overrides, key",
    [
        ({"x_min": 3.0, "x_max": -3.0}, "x_min"),
        ({"pair_inputs": [1.0, 1.0]}, "pair_inputs"),
        ({"pair_inputs": [1.0]}, "pair_inputs"),
        ({"widths": [4, 4.0]}, "widths[1]"),
        ({"widths": [200_000]}, "widths[0]"),
        ({"widths": [0]}, "widths[0]"),
        ({"n_samples": 10**7}, "n_samples"),
        ({"pair_limit": -1.0}, "pair_limit"),
    ],
)
def test_bad_settings_fail_up_front_naming_the_key(overrides, key):
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        _config(**overrides)


def test_shipped_config_is_the_blogs_and_quick_is_small():
    _, config = load_config("fig1_gabor_relu")
    assert config.widths == (4.0, 500.0, math.inf)
    assert config.pair_inputs == (1.0, -1.0)
    assert (config.x_min, config.x_max, config.pair_limit) == (-3.0, 3.0, 2.0)
    assert 500 <= config.n_samples <= 1000
    assert config.architecture == ns.Config().architecture
    arch = config.architecture
    assert [layer.kind for layer in arch.layers] == ["dense", "gabor", "dense", "relu", "dense"]
    assert (arch.W_std, arch.b_std, arch.parameterization) == (1.5, 0.05, "ntk")
    _, quick = load_config("fig1_gabor_relu", quick=True)
    assert quick.n_samples * quick.n_grid < config.n_samples * config.n_grid / 10
    _, three = load_config("fig1_gabor_relu", sets=["widths=[8, 16, 32, inf]"])
    assert three.widths == (8.0, 16.0, 32.0, math.inf)


# ----------------------------------------------------------------------------- figure


def test_figure_has_the_originals_titles_and_labels(blog):
    config, result = blog
    fig = nsplot.plot(result, config)[""]
    try:
        axes = np.array(fig.axes[:6]).reshape(2, 3)
        assert len(fig.axes) == 6
        assert [ax.get_title() for ax in axes[0]] == [
            "Sampled output functions @ 4 hidden units",
            "Sampled output functions @ 500 hidden units",
            # The original's "... at @ inf hidden units", without the stray "at".
            "Distribution of output functions @ inf hidden units",
        ]
        assert [ax.get_title() for ax in axes[1]] == [
            "Output density @ 4 hidden units",
            "Output density @ 500 hidden units",
            "Output density @ inf hidden units",
        ]
        for ax in axes[0]:
            assert (ax.get_xlabel(), ax.get_ylabel()) == ("x", "f(x)")
            assert ax.get_xlim() == (-3.0, 3.0)
            assert len(ax.get_lines()) >= config.n_lines
        for ax in axes[1]:
            assert (ax.get_xlabel(), ax.get_ylabel()) == ("Output at x = 1", "Output at x = -1")
            assert ax.get_xlim() == ax.get_ylim() == (-2.0, 2.0)
            # The two NNGP ellipses on every panel, the scatter of all the samples.
            ellipses = [line for line in ax.get_lines() if line.get_color() == "black"]
            assert len(ellipses) == 2
            assert ax.collections[0].get_offsets().shape == (config.n_samples, 2)
        # The band of the infinite column: mean +- 1.96 sd.
        band = axes[0, 2].collections[0].get_paths()[0].vertices
        assert band[:, 1].max() == pytest.approx(1.96 * result.arrays["nngp_sd"].max())
    finally:
        plt.close(fig)


def test_any_number_of_columns():
    config = _config(widths=[2, 8, 32, "inf"], n_grid=5, n_samples=40, density_points=10)
    fig = nsplot.plot(ns.run(config, np.random.default_rng(0)), config)[""]
    try:
        assert len(fig.axes) == 8
        assert fig.axes[3].get_title() == "Distribution of output functions @ inf hidden units"
    finally:
        plt.close(fig)


# ----------------------------------------------------------------------------- command


def test_cli_quick_from_another_directory_then_redraw(tmp_path):
    out = tmp_path / "figs"
    proc = subprocess.run(
        [sys.executable, "-m", "wideinf.cli", "nngp-samples", "--widths", "4", "500", "inf"]
        + ["--quick", "--quiet", "--out", str(out)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "excess kurtosis" in proc.stdout
    names = {p.name for p in out.iterdir()}
    stem = "fig1_gabor_relu"
    assert {f"{stem}.{ext}" for ext in ("png", "svg", "npz", "yaml")} <= names
    with np.load(out / f"{stem}.npz") as saved:
        for key in ("x_grid", "pair_inputs", "nngp_pair_cov", "widths"):
            assert key in saved.files
        np.testing.assert_array_equal(saved["widths"], [4.0, 500.0, np.inf])
        s = saved["pair_w500"].shape[0]
        assert saved["functions_winf"].shape == (s, saved["x_grid"].size)

    from wideinf.runner import redraw

    (out / f"{stem}.png").unlink()
    files = redraw(out / f"{stem}.npz", formats=("png",))
    assert [f.name for f in files] == [f"{stem}.png"]


def test_cli_rejects_a_bad_width_in_one_line(tmp_path):
    from click.testing import CliRunner

    from wideinf.cli import main

    result = CliRunner().invoke(main, ["nngp-samples", "--widths", "4", "-2", "--out", tmp_path])
    assert result.exit_code == 2
    assert "widths[1]" in result.output
    assert "Traceback" not in result.output


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        ns.Config().n_samples = 3
