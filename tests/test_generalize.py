"""`wideinf generalize` (the essay's 4-point 2-D sweeps): arrays, claims, figures, command.

The claim under test: the learned function of each network tends to its matching limit with
spread and distance falling like n^-1/2. Slopes are fitted over the widest half of the sweep;
their tolerance comes from the bootstrap standard error over seeds that ``run`` reports
(:mod:`wideinf.stats`). Over 12 independent runs of the configuration below the slopes'
run-to-run sd was 0.034 (all layers) and 0.065-0.068 (readout only) while the mean bootstrap
error was 0.041 and 0.057-0.059: the bootstrap underestimates by at most a factor 1.2 (within
the 21% uncertainty of a sd from 12 runs); we allow 4 x 1.2 bootstrap errors (about 4 sd).
"""

import numpy as np
import pytest
from click.testing import CliRunner

from wideinf.architecture import Architecture
from wideinf.cli import main
from wideinf.config import build
from wideinf.errors import ConfigError
from wideinf.experiments import generalize as gen
from wideinf.experiments import generalize_sweep as gsweep
from wideinf.plotting import generalize as genplot
from wideinf.plotting import plt

CONTRACT = {
    "grid_x": lambda w, s, g, n: (g, 2),
    "x_train": lambda w, s, g, n: (n, 2),
    "y_train": lambda w, s, g, n: (n,),
    "widths": lambda w, s, g, n: (w,),
    "predictions": lambda w, s, g, n: (w, s, g),
    "ntk_limit": lambda w, s, g, n: (g,),
    "nngp_limit": lambda w, s, g, n: (g,),
    "train_loss": lambda w, s, g, n: (w, s),
}
BOOTSTRAP_UNDERESTIMATE = 1.2
Z = 4.0


def _config(**raw):
    return build(gen.Config, {"experiment": "generalize", "name": "t", **raw}, "test")


SWEEP = {"widths": [32, 64, 128, 256, 512, 1024, 2048, 4096], "seeds": 16, "grid": {"points": 9}}


@pytest.fixture(scope="module")
def sweep():
    """All-layer training, NTK parameterization, centered: about 3 s."""
    config = _config(**SWEEP)
    return config, gen.run(config, np.random.default_rng(1))


@pytest.fixture(scope="module")
def small():
    config = _config(widths=[8, 32, 128], seeds=3, grid={"points": 13})
    return config, gen.run(config, np.random.default_rng(0))


def _assert_slope_near_half(summary, key):
    slope, se = summary[f"slope_{key}"], summary[f"slope_{key}_sd"]
    tol = Z * BOOTSTRAP_UNDERESTIMATE * se
    assert abs(slope + 0.5) < tol, f"{key}: slope {slope:+.3f}, allowed -0.5 +- {tol:.3f}"


# ----------------------------------------------------------------------------- arrays


def test_contract_names_shapes_and_grid_order(small):
    config, result = small
    a = result.arrays
    w, s, g, n = 3, 3, 13 * 13, 4
    for key, shape in CONTRACT.items():
        assert a[key].shape == shape(w, s, g, n), key
        assert np.all(np.isfinite(a[key])), key
    np.testing.assert_array_equal(a["widths"], [8, 32, 128])
    axis = a["grid_axis"]
    assert axis[0] == -2.0 and axis[-1] == 2.0
    i, j = 4, 9  # point i * g + j is (axis[j], axis[i])
    np.testing.assert_array_equal(a["grid_x"][i * 13 + j], [axis[j], axis[i]])
    np.testing.assert_array_equal(a["y_train"], np.sign(a["x_train"][:, 0] * a["x_train"][:, 1]))


def test_limits_interpolate_and_respect_the_xor_symmetry():
    arch = Architecture.from_config(gen.Config().architecture)
    x, y = gen.make_data(gen.DataConfig())
    at_train = gen.limit_predictors(arch, x, y, x)
    for name, f in at_train.items():
        np.testing.assert_allclose(f, y, atol=1e-10, err_msg=name)
    axis, grid = gen.make_grid(gen.GridConfig(points=11))
    limits = gen.limit_predictors(arch, x, y, grid)
    mirrored = grid * np.array([-1.0, 1.0])  # x1 -> -x1 flips every xor label
    limits_m = gen.limit_predictors(arch, x, y, mirrored)
    for name in limits:
        np.testing.assert_allclose(limits_m[name], -limits[name], atol=1e-12, err_msg=name)
    assert np.max(np.abs(limits["ntk"] - limits["nngp"])) > 0.05  # two different limits


def test_every_network_reaches_the_tolerance_and_fits_the_points(sweep):
    config, result = sweep
    a = result.arrays
    tol = config.training.loss_tol
    assert np.all(a["train_loss"] <= tol)
    assert result.summary["networks_missing_tol"] == 0 and not result.warnings
    # The training points lie on the grid; centered networks there equal y up to the loss.
    idx = [np.flatnonzero(np.all(a["grid_x"] == p, axis=1))[0] for p in a["x_train"]]
    resid = a["predictions"][:, :, idx] - a["y_train"]  # (W, S, N)
    assert np.max(np.abs(resid)) <= np.sqrt(2 * len(idx) * tol) + 1e-12


def test_spread_and_ntk_distance_fall_like_n_to_the_minus_half(sweep):
    _, result = sweep
    s = result.summary
    assert s["matching_limit"] == "ntk"
    _assert_slope_near_half(s, "spread")
    _assert_slope_near_half(s, "dist_ntk")
    # The NNGP limit is not where all-layer training goes: its distance levels off.
    assert s["slope_dist_nngp"] > -0.5 + Z * BOOTSTRAP_UNDERESTIMATE * s["slope_dist_nngp_sd"]


def test_readout_only_training_tends_to_the_nngp_limit_like_n_to_the_minus_half():
    config = _config(**SWEEP, training={"layers": "readout"})
    s = gen.run(config, np.random.default_rng(2)).summary
    assert s["matching_limit"] == "nngp"
    _assert_slope_near_half(s, "spread")
    _assert_slope_near_half(s, "dist_nngp")


def test_without_centering_single_networks_do_not_converge():
    """The initial function is O(1) at every width: the same check fails, as it should."""
    config = _config(**{**SWEEP, "seeds": 8}, training={"init_output": "standard"})
    result = gen.run(config, np.random.default_rng(3))
    s = result.summary
    tol = Z * BOOTSTRAP_UNDERESTIMATE * s["slope_spread_sd"]
    assert abs(s["slope_spread"] + 0.5) > tol
    assert result.arrays["spread"][-1] > 0.2  # still O(1) at width 4096


def test_wider_networks_are_smoother_towards_the_limit(sweep):
    _, result = sweep
    a = result.arrays
    gap = np.abs(a["gradient_norm"].mean(axis=1) - a["limit_gradient_norm"][0])  # (W,)
    assert gap[-1] < 0.25 * gap[0]


def test_gradient_norm_of_a_plane_is_its_slope():
    axis, grid = gen.make_grid(gen.GridConfig(points=7))
    f = 3.0 * grid[:, 0] - 4.0 * grid[:, 1]  # (G,)
    np.testing.assert_allclose(gsweep.gradient_norm(f, 7, axis[1] - axis[0]), 5.0)


@pytest.mark.parametrize(
    "param, layers, init, expected",
    [
        ("ntk", "all", "centered", "ntk"),
        ("ntk", "readout", "centered", "nngp"),
        ("ntk", "all", "zero_readout", "nngp"),
        ("standard", "all", "standard", "ntk"),
        ("standard", "readout", "centered", "features"),
    ],
)
def test_matching_limit(param, layers, init, expected):
    arch = {"layers": ["dense", "relu", "dense"], "parameterization": param}
    config = _config(architecture=arch, training={"layers": layers, "init_output": init})
    assert gen.matching_limit(config) == expected


def test_standard_limit_kernel_is_the_empirical_ntk_over_width():
    """Standard parameterization, two hidden layers: J J^T / n against the kernel at width n.

    ``arch.kernel(x, width=n)`` is the finite-width mean with the first layer's (d/n) and the
    biases' (1/n) terms; they vanish at n = inf (the limit that ``run`` uses). Tolerance: 4
    standard errors of the mean over networks plus an O(1/n) allowance for finite-width bias.
    """
    from wideinf import networks as nets

    arch = Architecture.from_dict(
        {"layers": ["dense", "relu", "dense", "relu", "dense"], "W_std": 1.5, "b_std": 0.5,
         "parameterization": "standard"}
    )  # fmt: skip
    x, _ = gen.make_data(gen.DataConfig())
    n, s = 2048, 6
    emp = nets.empirical_ntk(arch, nets.init_params(arch, 2, n, s, np.random.default_rng(5)), x)
    mean, se = emp.mean(axis=0), emp.std(axis=0, ddof=1) / np.sqrt(s)
    finite, limit = arch.kernel(x, width=n).ntk, arch.kernel(x).ntk
    bound = Z * se + 2.0 * np.abs(finite).max() / n
    assert np.all(np.abs(mean - finite) < bound)
    assert np.all(np.abs(finite - limit) <= 3.0 * np.abs(limit).max() / n)


def test_a_missed_tolerance_is_reported_by_network():
    config = _config(widths=[8, 16], seeds=2, grid={"points": 5}, training={"max_steps": 2})
    result = gen.run(config, np.random.default_rng(0))
    assert result.summary["networks_missing_tol"] == 4
    assert len(result.warnings) == 1
    assert "width 8 seed 1" in result.warnings[0] and "width 16 seed 2" in result.warnings[0]


def test_each_width_and_seed_has_its_own_stream():
    """Adding a width leaves every other width's networks as they were (one stream per
    (width, seed)). The seeds of one width share its learning rate (N / largest eigenvalue
    over them), so adding a seed keeps the initial networks but not the training."""
    base = gen.run(_config(widths=[8, 16], seeds=2, grid={"points": 5}), np.random.default_rng(7))
    more = gen.run(
        _config(widths=[8, 12, 16], seeds=2, grid={"points": 5}), np.random.default_rng(7)
    )
    for i, j in ((0, 0), (1, 2)):  # widths 8 and 16 in both runs
        for key in ("predictions", "steps", "train_loss"):
            np.testing.assert_array_equal(more.arrays[key][j], base.arrays[key][i], err_msg=key)
    assert not np.allclose(more.arrays["predictions"][1], base.arrays["predictions"][0])


def test_same_seed_same_arrays():
    config = _config(widths=[8, 16], seeds=2, grid={"points": 5})
    a = gen.run(config, np.random.default_rng(7)).arrays
    b = gen.run(config, np.random.default_rng(7)).arrays
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_singular_limit_kernel_says_what_to_change():
    """No bias and a point at the origin: its kernel row is zero (predict's solver refuses)."""
    from wideinf.errors import NumericalError

    arch = Architecture.from_dict({"layers": ["dense", "relu", "dense"], "b_std": 0.0})
    x, y = np.array([[0.0, 0.0], [1.0, 1.0]]), np.array([1.0, -1.0])
    with pytest.raises(NumericalError, match="b_std > 0"):
        gen.limit_predictors(arch, x, y, x)


# ----------------------------------------------------------------------------- data and config


def test_layouts():
    x, y = gen.make_data(gen.DataConfig(layout="random", data_seed=4, scale=1.5))
    assert x.shape == (4, 2) and np.all(np.abs(x) <= 1.5)
    assert sorted(y) == [-1.0, -1.0, 1.0, 1.0]
    x2, _ = gen.make_data(gen.DataConfig(layout="random", data_seed=4, scale=1.5))
    x3, _ = gen.make_data(gen.DataConfig(layout="random", data_seed=5, scale=1.5))
    np.testing.assert_array_equal(x, x2)
    assert not np.allclose(x, x3)
    x, y = gen.make_data(gen.DataConfig(layout="separable"))
    np.testing.assert_array_equal(y, np.sign(x[:, 0]))
    x, y = gen.make_data(
        gen.DataConfig(layout="points", points=((0.0, 1.0), (1.0, 0.0)), labels=(1.0, -1.0))
    )
    np.testing.assert_array_equal(x, [[0.0, 1.0], [1.0, 0.0]])


@pytest.mark.parametrize(
    "raw, key",
    [
        ({"widths": [8, "inf"]}, "widths"),
        ({"widths": [8, 8]}, "widths"),
        ({"widths": [8, 2_000_000]}, "widths"),
        ({"widths": [8, 1024], "seeds": 64, "architecture": {"layers": [
            "dense", "relu", "dense", "relu", "dense"]}, "grid": {"points": 5}}, "widths"),
        ({"seeds": 1}, "seeds"),
        ({"training": {"lr_factor": 2.5}}, "lr_factor"),
        ({"training": {"init_output": "centred"}}, "init_output"),
        ({"data": {"layout": "points", "points": [[0, 1]], "labels": [1, 2]}}, "labels"),
        ({"data": {"layout": "points", "points": [[0, 1, 2]], "labels": [1]}}, "points"),
        ({"data": {"points": [[0, 1]], "labels": [1]}}, "points"),
        ({"grid": {"points": 1000}}, "points"),
    ],
)  # fmt: skip
def test_impossible_configs_fail_naming_the_key(raw, key):
    with pytest.raises(ConfigError, match=key):
        _config(**raw)


# ----------------------------------------------------------------------------- figures


def test_figure_structure(small):
    config, result = small
    figs = genplot.plot(result, config)
    try:
        assert set(figs) == {"", "scaling"}
        heat = figs[""]
        images = [im for ax in heat.axes for im in ax.get_images()]
        assert len(images) == 3 * 3 + 2  # widths x seeds, then the NTK and NNGP limits
        assert len({im.get_clim() for im in images}) == 1  # one shared colour scale
        lo, hi = images[0].get_clim()
        assert lo == -hi and hi >= 1.0
        labels = [ax.get_ylabel() for ax in heat.axes]
        assert {"n = 8", "n = 128", "NTK limit", "NNGP limit"} <= set(labels)
        assert "seed 3" in [ax.get_title() for ax in heat.axes]
        assert "infinite-width" in heat._suptitle.get_text()
        assert any("centered" in t.get_text() for t in heat.texts)

        scaling = figs["scaling"]
        ax1, ax2, ax3 = scaling.axes[:3]
        assert ax1.get_xscale() == ax1.get_yscale() == "log"
        assert ax1.get_xlabel() == "hidden width n"
        legend = [t.get_text() for t in ax1.get_legend().get_texts()]
        assert any("spread across seeds (slope" in t for t in legend)
        assert any("NTK limit" in t and "[matching]" in t for t in legend)
        assert any("NNGP limit" in t for t in legend)
        assert any("n^{-1/2}" in t for t in legend)
        assert "gradient" in ax2.get_ylabel() or "nabla" in ax2.get_ylabel()
        assert ax3.get_ylabel() == "final training loss"
    finally:
        for fig in figs.values():
            plt.close(fig)


def test_standard_feature_limit_row_is_drawn_when_it_is_the_target():
    config = _config(
        widths=[8, 16], seeds=2, grid={"points": 7},
        architecture={"layers": ["dense", "relu", "dense"], "b_std": 0.5,
                      "parameterization": "standard"},
        training={"layers": "readout"},
    )  # fmt: skip
    result = gen.run(config, np.random.default_rng(0))
    figs = genplot.plot(result, config)
    try:
        labels = [ax.get_ylabel() for ax in figs[""].axes]
        assert "feature limit" in labels
    finally:
        for fig in figs.values():
            plt.close(fig)


# ----------------------------------------------------------------------------- command


def test_cli_quick_end_to_end_then_redraw(tmp_path):
    runner = CliRunner()
    out = tmp_path / "out"
    result = runner.invoke(main, ["generalize", "--quick", "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "slope over the widest half" in result.output
    name = "ensemble_prior_4point"
    for stem in (name, f"{name}_scaling"):
        for suffix in ("png", "svg"):
            assert (out / f"{stem}.{suffix}").is_file()
    with np.load(out / f"{name}.npz") as saved:
        w, s = saved["train_loss"].shape
        g, n = saved["grid_x"].shape[0], saved["x_train"].shape[0]
        for key, shape in CONTRACT.items():
            assert saved[key].shape == shape(w, s, g, n), key
    assert "run_seconds" in (out / f"{name}.yaml").read_text()
    redraw = runner.invoke(
        main, ["plot", str(out / f"{name}.npz"), "--out", str(tmp_path / "r"), "--format", "png"]
    )
    assert redraw.exit_code == 0, redraw.output
    assert (tmp_path / "r" / f"{name}_scaling.png").is_file()


def test_cli_widths_option_sets_the_widths_and_a_bad_width_fails_in_one_line(tmp_path):
    from wideinf.runner import load_config

    _, config = load_config("ensemble_prior_4point", quick=True, sets=["widths=[8, 32]"])
    assert config.widths == (8.0, 32.0)
    runner = CliRunner()
    bad = runner.invoke(
        main, ["generalize", "--quick", "--widths", "8", "inf", "--out", str(tmp_path)]
    )
    assert bad.exit_code == 2
    assert "widths" in bad.output and "Traceback" not in bad.output
