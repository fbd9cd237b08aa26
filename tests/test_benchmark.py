"""``wideinf benchmark``: infinite vs finite width vs standard learners on real data.

Layers: the multi-column kernel predictor against :mod:`wideinf.predict` column by column
(exact to rounding); invariances (permuted input dimensions leave the NNGP/NTK accuracy unchanged
to the last digit); the protocol (poisoned test labels change no choice); the claims at reduced
size (wide NTK-parameterized networks agree with the NTK predictor; logistic regression on
MNIST-1D near its published 32%); config and bad input; the figure's structure; the CLI.
"""

import dataclasses
import math

import numpy as np
import pytest
from click.testing import CliRunner

from wideinf.architecture import Architecture
from wideinf.cli import main
from wideinf.config import build
from wideinf.datasets import load
from wideinf.errors import ConfigError
from wideinf.experiments import benchmark as B
from wideinf.experiments import benchmark_methods as bm
from wideinf.experiments.benchmark_protocol import make_split, score, select
from wideinf.predict import gp_posterior, ntk_ensemble

TINY = {
    "experiment": "benchmark",
    "datasets": ["iris", "diabetes", "mnist1d"],
    "n_splits": 2,
    "max_train": 150,
    "kernels": {"depth": [1, 2], "b_std": [0.0], "diag_reg": [1e-3, 1e-1]},
    "finite": {"widths": [16, 64], "steps": 20, "record_every": 5, "max_train": 100},
}


def _config(**changes):
    return build(B.Config, {**TINY, **changes}, "cfg")


@pytest.fixture(scope="module")
def tiny():
    config = _config()
    return config, B.run(config, np.random.default_rng(3))


@pytest.fixture(scope="module")
def mnist_split():
    """MNIST-1D with 300 training rows, its 800 validation rows and its own 1000 test rows."""
    return make_split(load("mnist1d"), 0.2, 0.2, 300, np.random.default_rng(0))


# ----------------------------------------------------------------------------- exact layers


def test_kernel_mean_is_the_library_prediction_column_by_column(rng):
    x, x_eval = rng.normal(size=(30, 5)), rng.normal(size=(7, 5))
    y = rng.normal(size=(30, 3))  # (N, C)
    k = Architecture.from_config(bm.relu_mlp(2, 1.5, 0.3)).kernel(np.vstack([x, x_eval]))
    nn_tr, nn_ev, th_tr, th_ev = (
        k.nngp[:30, :30],
        k.nngp[30:, :30],
        k.ntk[:30, :30],
        k.ntk[30:, :30],
    )
    nn_diag = np.diag(k.nngp)[30:]
    for t in (math.inf, 5.0):
        got_nngp = bm.kernel_mean(nn_tr, nn_ev, y, 1e-3)  # (M, C)
        got_ntk = bm.kernel_mean(th_tr, th_ev, y, 1e-3, t)
        for c in range(3):
            want = gp_posterior(nn_tr, nn_ev, nn_diag, y[:, c], diag_reg=1e-3).mean
            np.testing.assert_allclose(got_nngp[:, c], want, rtol=1e-9, atol=1e-12)
            ens = ntk_ensemble(th_tr, th_ev, nn_tr, nn_ev, nn_diag, y[:, c], [t], diag_reg=1e-3)
            np.testing.assert_allclose(got_ntk[:, c], ens.mean[0], rtol=1e-9, atol=1e-12)


def test_adapter_returns_both_kernels_and_nan_for_an_unfactorable_grid_point(rng):
    x = np.repeat(rng.normal(size=(5, 3)), 2, axis=0)  # duplicated rows: singular without reg
    out = bm.infinite_width_predict(bm.relu_mlp(1, 1.4, 0.0), x, np.eye(10)[:, :2], x[:3], (0.0, 1e-2))  # fmt: skip
    assert out["nngp"].shape == out["ntk"].shape == (2, 3, 2)
    assert np.isfinite(out["nngp"][1]).all() and np.isfinite(out["ntk"][1]).all()
    assert np.isnan(out["nngp"][0]).all() or np.isfinite(out["nngp"][0]).all()


def test_select_uses_validation_scores_first_on_ties_never_nan():
    y = np.array([0, 1, 1])
    preds = np.array([[0, 0, 0], [0, 1, 0], [0, 1, 1], [0, 1, 1], [-1, -1, -1]])
    assert select(preds, y, True) == 2
    values = np.array([[np.nan, 0, 0], [1.0, 1.0, 1.0], [0.0, 1.0, 1.0]])
    assert select(values, np.array([0.0, 1.0, 1.0]), False) == 2  # lowest RMSE
    assert score(np.array([1.0, 3.0]), np.array([0.0, 0.0]), False) == pytest.approx(math.sqrt(5))


def test_split_is_stratified_disjoint_and_standardized_by_training_rows():
    data = load("iris")
    split = make_split(data, 0.2, 0.2, 0, np.random.default_rng(1))
    assert (len(split.y_train), len(split.y_val), len(split.y_test)) == (90, 30, 30)
    for part in (split.y_train, split.y_val, split.y_test):
        assert np.all(np.bincount(part, minlength=3) == len(part) // 3)
    np.testing.assert_allclose(split.x_train.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(split.x_train.std(axis=0), 1, atol=1e-12)
    np.testing.assert_array_equal(split.targets().sum(axis=1), 1)  # one-hot


# ----------------------------------------------------------------------------- invariances


def test_permuted_input_dimensions_leave_nngp_and_ntk_accuracy_unchanged(mnist_split):
    config = _config(kernels={"depth": [1, 3], "b_std": [0.0, 0.5], "diag_reg": [1e-3, 1e-1]})
    perm = np.random.default_rng(9).permutation(40)
    shuffled = dataclasses.replace(
        mnist_split,
        x_train=mnist_split.x_train[:, perm],
        x_val=mnist_split.x_val[:, perm],
        x_test=mnist_split.x_test[:, perm],
    )
    scores = []
    for split in (mnist_split, shuffled):
        x_eval = np.vstack([split.x_val, split.x_test])
        n_val = len(split.x_val)
        out = []
        for kind, grid in B._kernel_grids(config, split, x_eval).items():
            g = select(grid.predictions[:, :n_val], split.y_val, True)
            out.append((kind, g, score(grid.predictions[g, n_val:], split.y_test, True)))
        scores.append(out)
    assert scores[0] == scores[1]  # the same choice and the same accuracy, to the last digit
    assert all(s > 0.2 for _, _, s in scores[0])  # and far above chance (0.1)


# ----------------------------------------------------------------------------- the protocol


def test_poisoned_test_labels_change_no_choice(tiny, monkeypatch):
    config, clean = tiny
    real = B.make_split

    def poisoned(*args, **kwargs):
        split = real(*args, **kwargs)
        if split.classification:
            bad = (split.y_test + 1) % split.n_classes
        else:
            bad = split.y_test + 1e3
        return dataclasses.replace(split, y_test=bad)

    monkeypatch.setattr(B, "make_split", poisoned)
    dirty = B.run(config, np.random.default_rng(3))
    np.testing.assert_array_equal(dirty.arrays["choice"], clean.arrays["choice"])
    np.testing.assert_array_equal(dirty.arrays["val_score"], clean.arrays["val_score"])
    # The test scores did see the poison (a constant prediction may score the same on
    # balanced classes with shifted labels, so the majority baseline is left out).
    learners = [j for j, m in enumerate(clean.arrays["methods"]) if m != "majority"]
    for i, _ in enumerate(clean.arrays["datasets"]):
        before, after = clean.arrays["test_score"][i, learners], dirty.arrays["test_score"][i, learners]  # fmt: skip
        assert (after != before)[np.isfinite(before)].all()


def test_contract_names_and_shapes(tiny):
    config, result = tiny
    a = result.arrays
    d, p, s, w = 3, len(B.METHODS), config.n_splits, len(config.finite.widths)
    assert a["test_score"].shape == a["val_score"].shape == a["choice"].shape == (d, p, s)
    assert list(a["datasets"]) == ["iris", "diabetes", "mnist1d"]
    assert a["study_accuracy"].shape == a["study_agreement"].shape == (2, w, s)
    assert list(a["study_params"]) == ["ntk", "standard"]
    j = list(a["methods"]).index
    assert np.isnan(a["test_score"][0, j("gp_rbf")]).all()  # regression only
    assert np.isnan(a["test_score"][1, j("logistic")]).all()  # classification only
    assert np.isfinite(a["test_score"][1, j("gp_rbf")]).all()
    assert a["n_train"][2] == 150 and a["n_test"][2] == 1000  # MNIST-1D keeps its test set
    iris = a["test_score"][0]
    assert np.nanmin(iris[[j("nngp"), j("ntk"), j("svm_rbf")]]) > 0.8


def test_same_seed_gives_identical_arrays():
    config = _config(datasets=["iris"], methods=["nngp", "mlp_ntk", "random_forest"], width_study="")  # fmt: skip
    a = B.run(config, np.random.default_rng(5)).arrays
    b = B.run(config, np.random.default_rng(5)).arrays
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


# ----------------------------------------------------------------------------- the claims


AGREE_WIDTH = 2048


def test_wide_ntk_networks_agree_with_the_ntk_predictor_on_mnist1d(mnist_split):
    # Reduced size: 200 training rows, 100 steps; centred networks of width 2048, one per class.
    x, y = mnist_split.x_train[:200], mnist_split.targets(200)
    arch = bm.relu_mlp(1, math.sqrt(2), 0.1, "ntk")
    steps = 100
    out, _, eta, _ = bm.train_finite(
        arch, AGREE_WIDTH, x, y, mnist_split.x_test, steps, steps, 1.0, True,
        np.random.default_rng(1),
    )  # fmt: skip
    limit = bm.infinite_width_predict(arch, x, y, mnist_split.x_test, (0.0,), time=eta * steps)
    agreement = np.mean(out[-1].argmax(1) == limit["ntk"][0].argmax(1))
    assert agreement >= 0.9, agreement


def test_logistic_regression_on_mnist1d_is_near_the_published_32_percent():
    split = make_split(load("mnist1d"), 0.2, 0.2, 0, np.random.default_rng(0))
    x_eval = np.vstack([split.x_val, split.x_test])
    grid = bm.sklearn_grid("logistic", True, split.x_train, split.y_train, x_eval, 0)
    n_val = len(split.y_val)
    g = select(grid.predictions[:, :n_val], split.y_val, True)
    accuracy = score(grid.predictions[g, n_val:], split.y_test, True)
    assert abs(accuracy - 0.32) <= 0.03, accuracy


# ----------------------------------------------------------------------------- config, input


@pytest.mark.parametrize(
    "raw, needle",
    [
        ({"datasets": ["irs"]}, "did you mean 'iris'"),
        ({"datasets": ["iris", "iris"]}, "repeated"),
        ({"methods": ["svm"]}, "methods"),
        ({"val_fraction": 0.5, "test_fraction": 0.5}, "below 1"),
        ({"datasets": ["iris"], "width_study": "mnist1d"}, "width_study"),
        ({"csv": {"file": "a.csv"}}, "csv.target"),
        ({"n_splits": 1}, "n_splits"),
        ({"finite": {"lr_factor": 2.0}}, "lr_factor"),
    ],
)
def test_impossible_configs_fail_naming_the_key(raw, needle):
    with pytest.raises(ConfigError, match=needle):
        _config(**raw)


def _one_line_exit_2(args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.output
    return lines[0]


def _csv_config(tmp_path, rows, target="kind"):
    (tmp_path / "mine.csv").write_text("a,b,kind\n" + "".join(rows))
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        f"experiment: benchmark\ndatasets: []\ncsv: {{file: mine.csv, target: {target}}}\n"
        "width_study: ''\nmethods: [nngp, ntk, logistic, majority]\n"
        "kernels: {depth: [1], b_std: [0.0], diag_reg: [0.01]}\n"
    )
    return cfg


def test_bad_input_is_one_line_and_exit_code_2(tmp_path):
    out = tmp_path / "out"
    line = _one_line_exit_2(["benchmark", "--quick", "--set", "datasets=[irs]", "--out", out])
    assert "did you mean 'iris'" in line
    rng = np.random.default_rng(0)
    rows = [f"{a:.3f},{b:.3f},{k}\n" for (a, b), k in zip(rng.normal(size=(24, 2)), "xy" * 12)]
    line = _one_line_exit_2(["benchmark", _csv_config(tmp_path, rows, "label"), "--out", out])
    assert "no target column 'label'" in line
    rare = rows + ["0.1,0.2,z\n", "0.3,0.1,z\n"]  # class z: 2 rows for 3 parts
    line = _one_line_exit_2(["benchmark", _csv_config(tmp_path, rare), "--out", out])
    assert "class 'z' has 2 row(s)" in line
    assert not out.exists() or not any(out.iterdir())


def test_cli_runs_your_own_csv_and_redraws(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 2))
    rows = [f"{a:.4f},{b:.4f},{'pos' if a + b > 0 else 'neg'}\n" for a, b in x]
    cfg = _csv_config(tmp_path, rows)
    result = CliRunner().invoke(main, ["benchmark", str(cfg), "--out", str(tmp_path / "o"), "--format", "png", "-q"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "mine" in result.output and "test accuracy" in result.output
    with np.load(tmp_path / "o" / "cfg.npz") as saved:
        assert list(saved["datasets"]) == ["mine"]
        assert saved["test_score"].shape == (1, 4, 4)
        # A linear boundary, easy: NNGP, NTK and logistic regression above 80% on average
        # (12 test rows per split, so single splits vary by 1/12).
        assert np.all(saved["test_score"][0, :3].mean(axis=1) > 0.8)
    redraw = CliRunner().invoke(main, ["plot", str(tmp_path / "o" / "cfg.npz"), "--format", "png"])
    assert redraw.exit_code == 0, redraw.output


# ----------------------------------------------------------------------------- figure, report


def test_figure_structure(tiny):
    from wideinf.plotting import benchmark as BP
    from wideinf.plotting import plt

    config, result = tiny
    figs = BP.plot(result, config)
    try:
        axes = figs[""].axes
        assert len(axes) == 3 + 2  # one per data set, then (b) and (c)
        assert [ax.get_title() for ax in axes[3:]] == list(BP.TITLES)
        assert axes[0].get_title().startswith("iris")
        assert axes[1].get_xlabel().startswith("test RMSE")
        assert [ax.get_xscale() for ax in axes[3:]] == ["log", "log"]
        legend = [t.get_text() for t in axes[3].get_legend().get_texts()]
        assert any("NTK" in t for t in legend) and any("standard" in t for t in legend)
        assert len(axes[4].containers) == 2  # one errorbar series per parameterization
    finally:
        for fig in figs.values():
            plt.close(fig)


def test_report_is_a_table_with_one_row_per_data_set(tiny):
    _, result = tiny
    lines = B.report(result)
    assert "nngp" in lines[1] and "random_forest" in lines[1]
    assert lines[2].startswith("iris") and lines[3].startswith("diabetes (RMSE)")
    assert any(line.startswith("mnist1d, ntk param.") for line in lines)
