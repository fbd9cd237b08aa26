"""compare-ntk (blog Figure 2): the arrays, the blog's numbers, trained networks vs the NTK
ensemble within Monte Carlo error, the figure's structure, and the command end to end."""

import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_rgba

from wideinf.architecture import Architecture
from wideinf.cli import main
from wideinf.config import ConfigError
from wideinf.experiments import compare_ntk as cn
from wideinf.experiments import trained_ensemble as te
from wideinf.experiments.ensemble import step_size
from wideinf.plotting.compare_ntk import TITLE, plot
from wideinf.predict import ntk_ensemble
from wideinf.runner import load_config, redraw

ROOT = Path(__file__).resolve().parents[1]
FAITHFUL = ROOT / "experiments/fig2_nngp_vs_ntk.yaml"
GENERATED = ROOT / "experiments/fig2_generated.yaml"


def _run(path=FAITHFUL, *sets, quick=True):
    _, config = load_config(path, quick=quick, sets=list(sets))
    return config, cn.run(config, np.random.default_rng(config.seed))


def test_faithful_numbers_at_0_1_2():
    """NNGP mean 0.0643, 0.9697, 0.8960 and NTK mean 0.0108, 0.4131, 0.8370 (original: float32)."""
    _, res = _run(FAITHFUL, "grid_range=[0, 2]", "grid_points=3", "ensemble.size=0")
    a = res.arrays
    np.testing.assert_array_equal(a["x_grid"][:, 0], [0.0, 1.0, 2.0])
    np.testing.assert_allclose(a["nngp_mean"], [0.0643, 0.9697, 0.8960], atol=3e-3)
    np.testing.assert_allclose(a["ntk_mean"], [0.0108, 0.4131, 0.8370], atol=3e-3)


def test_contract_arrays_and_claims():
    config, res = _run(FAITHFUL, "ensemble.size=0")
    a = res.arrays
    g, t = config.grid_points, len(config.times)
    shapes = {
        "x_train": (10, 1), "y_train": (10,), "x_test": (100, 1), "y_test": (100,),
        "x_grid": (g, 1), "nngp_mean": (g,), "nngp_std": (g,), "ntk_mean": (g,),
        "ntk_std": (g,), "times": (t,), "ntk_mean_t": (t, g), "ntk_std_t": (t, g),
    }  # fmt: skip
    for name, shape in shapes.items():
        assert a[name].shape == shape, name
    assert "ensemble_mean" not in a
    # t = 0 is the prior: mean 0 and sd sqrt(K(x, x)); the NTK sd is not the NNGP sd
    assert a["times"][0] == 0
    np.testing.assert_array_equal(a["ntk_mean_t"][0], 0.0)
    prior = Architecture.from_config(config.architecture).kernel(a["x_grid"]).var1
    np.testing.assert_allclose(a["ntk_std_t"][0], np.sqrt(prior), rtol=1e-12)
    assert np.max(np.abs(a["ntk_std"] - a["nngp_std"])) > 0.05
    # the later the time, the closer to t = inf
    gaps = [np.max(np.abs(m - a["ntk_mean"])) for m in a["ntk_mean_t"]]
    assert gaps == sorted(gaps, reverse=True)
    # metrics: RMSE and coverage in [0, 1], from the test points
    s = res.summary
    for k in ("nngp", "ntk"):
        assert 0 < s[f"rmse_{k}"] < 1 and 0 <= s[f"coverage_{k}"] <= 1


def test_coverage_counts_the_band_with_noise():
    rmse, cov = cn.band_metrics([0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.1, 0.2, 0.3], noise=0.1)
    assert rmse == pytest.approx(math.sqrt((0.01 + 0.04 + 0.09) / 3))
    assert cov == pytest.approx(1 / 3)  # only 0.1 is inside +- 0.196


def test_ntk_band_nngp_reproduces_the_original():
    config, res = _run(FAITHFUL, "ensemble.size=0", "ntk_band=nngp")
    fig = plot(res, config)[""]
    bands = [c for c in fig.axes[0].collections if isinstance(c, PolyCollection)]
    a = res.arrays
    ntk_band = bands[1].get_paths()[0].vertices[:, 1]
    top = np.max(ntk_band)
    assert top == pytest.approx(np.max(a["ntk_mean"] + 1.96 * a["nngp_std"]))
    assert top != pytest.approx(np.max(a["ntk_mean"] + 1.96 * a["ntk_std"]))
    # the summary's NTK coverage is that of the band drawn
    _, correct = _run(FAITHFUL, "ensemble.size=0")
    assert res.summary["rmse_ntk"] == correct.summary["rmse_ntk"]


def test_figure_structure():
    config, res = _run(FAITHFUL)
    figs = plot(res, config)
    assert set(figs) == {"", "time"}
    ax = figs[""].axes[0]
    assert ax.get_title() == TITLE
    assert ax.get_xlabel() == "x" and ax.get_ylabel() == "f(x)"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    for name in ("Mean predictions, NNGP", "Mean predictions, NTK", "Train points", "Test points"):
        assert name in labels
    assert any(lab.startswith("Trained networks") for lab in labels)
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert to_rgba(lines["Mean predictions, NNGP"].get_color()) == to_rgba("C0")
    assert to_rgba(lines["Mean predictions, NTK"].get_color()) == to_rgba("C2")
    dashed = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert len(dashed) == 3  # ensemble mean and its two band edges
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert [b.get_alpha() for b in bands] == [0.3, 0.3]
    test_pts = next(c for c in ax.collections if c.get_label() == "Test points")
    assert np.allclose(test_pts.get_facecolor()[0], to_rgba("C1"))
    assert np.allclose(test_pts.get_edgecolor()[0], to_rgba("k"))
    time_axes = figs["time"].axes
    assert len(time_axes) == 3 and "during training" in time_axes[0].get_title()


def test_ensemble_matches_ntk_within_monte_carlo_error():
    """Width 2048, 64 networks, one hidden layer (cheap): the trained networks' mean and sd at a
    few inputs agree with the NTK ensemble at t = steps * eta within 4 standard errors; against
    the wrong time they do not (the test can fail)."""
    arch = Architecture.from_dict({"layers": ["dense", "erf", "dense"], "W_std": 1.5, "b_std": 0.3})
    rng = np.random.default_rng(3)
    x = np.linspace(-2, 2, 6)[:, None]
    y = np.sin(2 * x[:, 0])
    xe = np.array([[-2.5], [-1.0], [0.1], [0.9], [2.6]])
    blocks = cn.kernel_blocks(arch, x, xe)
    eta = step_size(blocks.ntk_train)
    steps, size = 40, 64
    f, loss, _ = te.train_ensemble(
        arch, x, y, xe, size=size, width=2048, learning_rate=eta, steps=steps, rng=rng
    )
    e_mean, e_std = f.mean(axis=0), f.std(axis=0, ddof=1)
    t = steps * eta
    pred = ntk_ensemble(
        blocks.ntk_train, blocks.ntk_cross, blocks.nngp_train, blocks.nngp_cross,
        blocks.nngp_diag, y, [t, t / 4],
    )  # fmt: skip
    z_mean, z_std = te.ensemble_z_scores(e_mean, e_std, pred.mean[0], pred.std[0], size)
    assert np.max(np.abs(z_mean)) < 4 and np.max(np.abs(z_std)) < 4
    wrong, _ = te.ensemble_z_scores(e_mean, e_std, pred.mean[1], pred.std[1], size)
    assert np.max(np.abs(wrong)) > 4
    assert loss[:, -1].mean() < loss[:, 0].mean() / 10


@pytest.mark.slow
def test_blog_network_ensemble_matches_ntk_at_width_1024():
    """The blog's Gabor-ReLU network at width 1024, 32 networks, 25 steps (the shipped run)."""
    _, res = _run(
        FAITHFUL, "ensemble={size: 32, width: 1024, steps: 25}", "grid_points=41", quick=False
    )
    s = res.summary
    assert s["ensemble_z_points"] > 10
    assert s["ensemble_mean_z_rms"] < s["ensemble_mean_z_rms_q99"]
    assert s["ensemble_std_z_rms"] < s["ensemble_std_z_rms_q99"]
    assert not res.warnings


def test_rms_z_quantile(rng):
    """Independent points: rms z of G = 400 is close to 1; fully correlated: |z|'s quantile."""
    q_ind = te.rms_z_quantile(np.eye(400), 0.99, rng)
    assert 1.0 < q_ind < 1 + 2.33 * math.sqrt(2 / 400) / 2 + 0.02
    q_one = te.rms_z_quantile(np.ones((50, 50)), 0.99, rng)
    assert q_one == pytest.approx(2.576, abs=0.06)


@pytest.mark.parametrize(
    "setting, message",
    [
        ("ntk_band=ntkk", "did you mean 'ntk'"),
        ("grid_range=[2, 1]", "grid_range"),
        ("ensemble={size: 4096, width: 65536}", "ensemble"),
        ("ensemble.size=1", "at least 2"),
        ("times=[-1]", "times"),
        ("diag_reg=-1", "diag_reg"),
    ],
)
def test_config_errors(setting, message):
    with pytest.raises(ConfigError, match=message):
        load_config(FAITHFUL, quick=True, sets=[setting])


def test_multi_dimensional_csv(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (12, 2))
    rows = ["is_test,x0,x1,y"] + [
        f"{int(i >= 6)},{a},{b},{np.sin(a + b)}" for i, (a, b) in enumerate(x)
    ]
    (tmp_path / "pts.csv").write_text("\n".join(rows) + "\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "experiment: compare-ntk\ndata: {file: pts.csv, noise: 0.0}\nensemble: {size: 0}\n"
    )
    config, res = _run(cfg, quick=False)
    assert res.arrays["x_grid"].shape == (6, 2)
    fig = plot(res, config)[""]
    assert fig.axes[0].get_title() == TITLE


def test_cli_end_to_end(tmp_path):
    out = tmp_path / "out"
    args = ["compare-ntk", str(GENERATED), "--quick", "--out", str(out), "--set", "ntk_gp=true"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "test RMSE" in result.output and "NTK-GP" in result.output
    for suffix in ("png", "svg", "npz", "yaml"):
        assert (out / f"fig2_generated.{suffix}").exists()
    assert (out / "fig2_generated_time.png").exists()
    with np.load(out / "fig2_generated.npz") as f:
        assert {"ensemble_mean", "ensemble_std", "ntkgp_mean", "ntk_mean_t"} <= set(f.files)
    # redrawn from the saved arrays alone
    files = redraw(out / "fig2_generated.npz", tmp_path / "again", formats=("png",))
    assert any(p.name == "fig2_generated.png" for p in files)


def test_cli_ill_conditioned_names_diag_reg(tmp_path):
    (tmp_path / "dup.csv").write_text("is_test,x,y\n0,0.5,1\n0,0.5,1.1\n0,1,0\n1,0.2,0\n")
    cfg = tmp_path / "dup.yaml"
    cfg.write_text(
        "experiment: compare-ntk\ndata: {file: dup.csv}\ndiag_reg: 0\nensemble: {size: 0}\n"
    )
    result = CliRunner().invoke(main, ["compare-ntk", str(cfg), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "diag_reg" in result.output and "Traceback" not in result.output
