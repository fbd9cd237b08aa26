"""``wideinf ntk-circle``: the NTK of finite networks on the unit circle (Jacot et al. 2018, Fig. 1).

Layers: the analytic limit is the mean of empirical kernels (within 3 standard errors); a run's
arrays, the wider networks' smaller spread and motion; config errors; the figure's structure;
the command line end to end.
"""

import math

import numpy as np
import pytest
from click.testing import CliRunner

from wideinf import networks as nw
from wideinf.architecture import Architecture
from wideinf.cli import main
from wideinf.config import build
from wideinf.errors import ConfigError
from wideinf.experiments import ntk_circle as nc
from wideinf.stats import mc_limits

JACOT = {"layers": ["dense", "relu"] * 3 + ["dense"], "W_std": 1.0, "b_std": 0.1}


def test_circle_limit_is_the_mean_of_finite_kernels():
    """Jacot et al.'s architecture at n = 500: the mean of 100 empirical Theta(x0, x0) is the
    analytic value within 3 standard errors (a single network scatters by about 14%)."""
    arch = Architecture.from_dict(JACOT)
    x0 = np.array([[1.0, 0.0]])
    params = nw.init_params(arch, 2, 500, 100, np.random.default_rng(0))
    theta = nw.empirical_ntk(arch, params, x0)[:, 0, 0]  # (S,)
    low, high = mc_limits(theta, k=3.0)
    assert low < arch.kernel(x0).ntk[0, 0] < high
    assert 0.08 < theta.std(ddof=1) / theta.mean() < 0.25


def test_run_and_figure():
    from wideinf.plotting import ntk_circle as P
    from wideinf.plotting import plt

    config = build(
        nc.Config,
        {
            "experiment": "ntk-circle",
            "architecture": JACOT,
            "widths": [32, 1024],
            "angles": 25,
            "n_networks": [2, 3],
            "train": {"points": 6, "learning_rate": 4.0, "steps": 20},
        },
    )
    result = nc.run(config, np.random.default_rng(0))
    a = result.arrays
    assert a["ntk_init"].shape == a["ntk_trained"].shape == (2 + 3, 25)  # one row per network
    np.testing.assert_array_equal(a["network_width"], [32, 32, 1024, 1024, 1024])
    assert a["ntk_limit"].shape == a["gamma"].shape == (25,)
    assert a["x_train"].shape == (6, 2)
    # Narrower spread around the limit, and less motion in training, at the larger width.
    small, large = a["network_width"] == 32, a["network_width"] == 1024
    assert np.max(a["ntk_rel_err"][large]) < np.min(a["ntk_rel_err"][small])
    assert np.max(a["ntk_change"][large]) < np.min(a["ntk_change"][small])
    # The empirical kernels at x = x0 scatter around the analytic limit (sd about 5% at 1024).
    mid = 12  # gamma = 0
    assert a["gamma"][mid] == pytest.approx(0.0, abs=1e-12)
    assert np.mean(a["ntk_init"][large, mid]) == pytest.approx(a["ntk_limit"][mid], rel=0.15)
    assert any("width 1024" in line for line in nc.report(result))
    fig = P.plot(result, config)[""]
    try:
        assert [ax.get_title() for ax in fig.axes] == list(P.TITLES)
        labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
        assert "n = ∞ (analytic)" in labels and "n = 1024, t = 0" in labels
        assert "n = 1024, t = 80" in labels
    finally:
        plt.close(fig)


def test_one_count_serves_every_width():
    config = build(nc.Config, {"widths": [8, 16, 32], "n_networks": [2]})
    assert config.counts() == (2, 2, 2)


@pytest.mark.parametrize(
    "raw, key",
    [
        ({"widths": [8, 16, 32], "n_networks": [3, 4]}, "n_networks"),
        ({"widths": [64, 32]}, "widths"),
        ({"widths": [16, "inf"]}, "widths[1]"),
        ({"angles": 2}, "angles"),
        ({"train": {"record_every": 5}}, "record_every"),  # a key of `convergence` only
        ({"mode": "circle"}, "mode"),
    ],
)
def test_config_errors_name_the_key(raw, key):
    with pytest.raises(ConfigError) as err:
        build(nc.Config, {"experiment": "ntk-circle", **raw}, "c.yaml")
    message = str(err.value)
    assert key in message and "\n" not in message


def test_cli_quick_end_to_end(tmp_path):
    runner = CliRunner()
    result = runner.invoke(
        main, ["ntk-circle", "--quick", "--out", str(tmp_path), "--quiet", "--format", "png"]
    )
    assert result.exit_code == 0, result.output
    with np.load(tmp_path / "ntk_circle.npz") as saved:
        rows, g = saved["ntk_init"].shape
        assert saved["ntk_trained"].shape == (rows, g) and saved["gamma"].shape == (g,)
        assert saved["network_width"].shape == (rows,)
        assert set(saved["network_width"]) == set(saved["widths"])
    # `wideinf run` dispatches on the config's `experiment:` key.
    again = runner.invoke(
        main, ["run", "ntk_circle", "--quick", "--out", str(tmp_path / "r"), "--quiet",
               "--format", "png"],
    )  # fmt: skip
    assert again.exit_code == 0, again.output
    assert (tmp_path / "r" / "ntk_circle.png").is_file()
    assert math.isfinite(float(np.load(tmp_path / "r" / "ntk_circle.npz")["ntk_limit"][0]))
