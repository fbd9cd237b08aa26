"""`wideinf predict` through the command line: outputs, and every bad input in one line."""

import csv

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from wideinf.architecture import Architecture
from wideinf.cli import main
from wideinf.infer import infer, one_hot
from wideinf.tabular import Standardizer

ARCH = "architecture:\n  layers: [dense, erf, dense, relu, dense]\n  W_std: 1.5\n  b_std: 0.1\n"


def _write_csv(path, header, rows):
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


@pytest.fixture
def files(tmp_path, rng):
    x = rng.standard_normal((40, 3))
    y = np.sin(x[:, 0]) + 0.1 * rng.standard_normal(40)
    label = np.where(x[:, 0] + x[:, 1] > 0, "pos", "neg")
    header = ["a", "b", "c", "y"]
    (tmp_path / "arch.yaml").write_text(ARCH)
    return {
        "arch": str(tmp_path / "arch.yaml"),
        "train": _write_csv(tmp_path / "train.csv", header, [[*r, t] for r, t in zip(x[:30], y)]),
        "test": _write_csv(tmp_path / "test.csv", header, [[*r, t] for r, t in zip(x[30:], y[30:])]),
        "ctrain": _write_csv(tmp_path / "ctrain.csv", header, [[*r, t] for r, t in zip(x[:30], label)]),
        "ctest": _write_csv(tmp_path / "ctest.csv", header[:3], x[30:].tolist()),
        "x": x, "y": y, "label": label, "dir": tmp_path,
    }  # fmt: skip


def _run(files, *extra, train="train", test="test", target="y", out="pred.csv"):
    args = ["predict", files["arch"], "--train", files.get(train, train)]
    args += ["--test", files.get(test, test), "--target", target]
    args += ["--out", str(files["dir"] / out), *extra]
    return CliRunner().invoke(main, args)


def _read(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_regression_output_equals_the_library(files):
    result = _run(files, "--diag-reg", "1e-3")
    assert result.exit_code == 0, result.output
    assert "task: regression" in result.output and "standardized" in result.output
    rows = _read(files["dir"] / "pred.csv")
    assert list(rows[0]) == ["mean", "sd", "lower_95", "upper_95"] and len(rows) == 10
    x, y = files["x"], files["y"]
    scaler = Standardizer.fit(x[:30])
    arch = Architecture.from_yaml(files["arch"])
    shift, scale = y[:30].mean(), y[:30].std()
    out = infer(arch, scaler.transform(x[:30]), (y[:30] - shift) / scale, scaler.transform(x[30:]), diag_reg=1e-3)  # fmt: skip
    mean = np.array([float(r["mean"]) for r in rows])
    sd = np.array([float(r["sd"]) for r in rows])
    np.testing.assert_allclose(mean, out.mean * scale + shift, rtol=1e-12)
    np.testing.assert_allclose(sd, out.sd * scale, rtol=1e-12)
    np.testing.assert_allclose([float(r["upper_95"]) for r in rows], mean + 1.96 * sd, rtol=1e-12)
    report = yaml.safe_load((files["dir"] / "pred.yaml").read_text())
    for key in ("architecture", "hyperparameters", "log_marginal_likelihood", "train_fit",
                "timings_s", "wideinf_version", "test_fit"):  # fmt: skip
        assert report[key] is not None, key
    assert set(report["log_marginal_likelihood"]) >= {"nngp", "ntk_gp"}


def test_classification_is_inferred_and_scored(files):
    result = _run(files, "--kernel", "ntk", "--time", "50", train="ctrain", test="ctest")
    assert result.exit_code == 0, result.output
    assert "task: classification" in result.output
    rows = _read(files["dir"] / "pred.csv")
    assert list(rows[0]) == ["predicted", "score_neg", "score_pos", "sd"]
    x, label = files["x"], files["label"]
    scaler = Standardizer.fit(x[:30])
    arch = Architecture.from_yaml(files["arch"])
    classes = np.array(["neg", "pos"])
    out = infer(arch, scaler.transform(x[:30]), one_hot(label[:30], classes), scaler.transform(x[30:]), kernel="ntk", time=50.0)  # fmt: skip
    np.testing.assert_allclose([float(r["score_pos"]) for r in rows], out.mean[:, 1], rtol=1e-12)
    assert [r["predicted"] for r in rows] == list(classes[np.argmax(out.mean, axis=1)])


def test_fit_and_options(files):
    result = _run(files, "--fit", "W_std", "b_std", "noise", "--features", "a", "b", "--float32")
    assert result.exit_code == 0, result.output
    report = yaml.safe_load((files["dir"] / "pred.yaml").read_text())
    assert report["inputs"]["features"] == ["a", "b"]
    assert (
        report["fit"]["log_marginal_likelihood"] >= report["fit"]["initial_log_marginal_likelihood"]
    )
    assert report["hyperparameters"]["diag_reg"] == report["fit"]["values"]["noise"]
    assert report["precision"].startswith("float32")


def test_help_has_an_example():
    result = CliRunner().invoke(main, ["predict", "--help"])
    assert result.exit_code == 0 and "Example:" in result.output and "--fit" in result.output


# ----------------------------------------------------------------------------- bad input


def _assert_rejected(result, files, *needles):
    assert result.exit_code == 2, result.output
    message = result.output.strip()
    assert len(message.splitlines()) == 1 or message.count("Error:") == 1, message
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in message, (needle, message)
    leftovers = [p.name for p in files["dir"].iterdir() if p.name.startswith(("pred", ".pred"))]
    assert not leftovers, leftovers


def _bad(files, name, header, rows):
    files[name] = _write_csv(files["dir"] / f"{name}.csv", header, rows)


def test_missing_target_column(files):
    _assert_rejected(_run(files, target="price"), files, "train.csv", "'price'")


def test_non_numeric_cell(files):
    _bad(files, "bad", ["a", "b", "c", "y"], [[1, 2, 3, 4], [1, "abc", 3, 4], [2, 2, 2, 2]])
    _assert_rejected(_run(files, train="bad"), files, "bad.csv line 3", "column 'b'", "'abc'")


@pytest.mark.parametrize("cell", ["nan", "inf", ""])
def test_nan_inf_and_empty_cells(files, cell):
    _bad(files, "bad", ["a", "b", "c", "y"], [[1, 2, 3, 4], [2, 1, 3, 5], [1, 2, cell, 4]])
    _assert_rejected(_run(files, train="bad"), files, "bad.csv line 4", "column 'c'")


def test_different_feature_columns(files):
    _bad(files, "other", ["a", "b", "z"], [[1, 2, 3], [2, 3, 4]])
    _assert_rejected(_run(files, test="other"), files, "other.csv", "missing 'c'", "extra 'z'")


def test_fewer_than_two_training_rows(files):
    _bad(files, "one", ["a", "b", "c", "y"], [[1, 2, 3, 4]])
    _assert_rejected(_run(files, train="one"), files, "one.csv", "at least 2")


def test_duplicate_rows_name_diag_reg(files):
    _bad(files, "dup", ["a", "b", "c", "y"], [[1, 2, 3, 4], [0, 1, 0, 1], [1, 2, 3, 5]])
    _assert_rejected(_run(files, train="dup"), files, "dup.csv lines 2 and 4", "--diag-reg")


def test_kernel_too_large_for_memory(files):
    big = files["dir"] / "big.npy"
    np.save(big, np.arange(600_000.0).reshape(300_000, 2))  # columns "0" and "1"
    files["big"], files["bigtest"] = str(big), str(files["dir"] / "bigtest.npy")
    np.save(files["bigtest"], np.zeros((3, 1)))
    result = _run(files, train="big", test="bigtest", target="1")
    _assert_rejected(result, files, "300000 training", "GiB", "training rows")


def test_classification_target_with_one_class(files):
    _bad(files, "same", ["a", "b", "c", "y"], [[1, 2, 3, "cat"], [0, 1, 0, "cat"]])
    result = _run(files, "--task", "classification", train="same")
    _assert_rejected(result, files, "same.csv", "only one class", "'cat'")
