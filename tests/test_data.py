"""Data loading and generation: CSV parsing, validation errors, generated targets."""

from pathlib import Path

import numpy as np
import pytest

from wideinf.config import build
from wideinf.data import TARGETS, DataConfig, generate, load_dataset, read_csv
from wideinf.errors import ConfigError

SHIPPED = Path(__file__).resolve().parents[1] / "experiments/data/wide_neural_nets_fig2_points.csv"


def _write(tmp_path, text, name="points.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_shipped_points():
    data = read_csv(SHIPPED, noise=0.1)
    assert data.x_train.shape == (10, 1) and data.y_train.shape == (10,)
    assert data.x_test.shape == (100, 1) and data.y_test.shape == (100,)
    assert data.noise == 0.1
    assert np.all(np.abs(data.x_test) <= 3)
    # noisy sin(x): residual sd close to 0.1 (100 points: se about 0.007)
    assert np.std(data.y_test - np.sin(data.x_test[:, 0])) == pytest.approx(0.1, abs=0.03)


def test_csv_multi_dimensional_any_column_order(tmp_path):
    path = _write(tmp_path, "y,x1,is_test,x0\n1.0,2.0,0,3.0\n4.0,5.0,1,6.0\n7,8,0,9\n")
    data = read_csv(path)
    np.testing.assert_array_equal(data.x_train, [[3.0, 2.0], [9.0, 8.0]])
    np.testing.assert_array_equal(data.y_train, [1.0, 7.0])
    np.testing.assert_array_equal(data.x_test, [[6.0, 5.0]])
    assert data.dim == 2 and data.n_train == 2 and data.n_test == 1


def test_csv_relative_to_config_dir(tmp_path, rng):
    _write(tmp_path, "is_test,x,y\n0,1,2\n")
    data = load_dataset(DataConfig(file="points.csv"), tmp_path, rng)
    assert data.n_train == 1 and data.n_test == 0


@pytest.mark.parametrize(
    "text, message",
    [
        ("is_test,x,y\n0,1\n", "line 2 has 2 field"),
        ("is_test,x,y\n0,1,2,3\n", "line 2 has 4 field"),
        ("is_test,x,y\n0,nan,2\n", "NaN"),
        ("is_test,x,y\n0,1,inf\n", "NaN or infinity"),
        ("is_test,x,y\n0,1,abc\n", "'abc' is not a number"),
        ("is_test,x,y\n2,1,1\n", "is_test must be 0 or 1"),
        ("is_test,x,y\n1,1,1\n", "no training rows"),
        ("is_test,y\n0,1\n", "no input column"),
        ("x,y\n0,1\n", "no column 'is_test'"),
        ("is_test,x\n0,1\n", "no column 'y'"),
        ("is_test,x0,x2,y\n0,1,1,1\n", "without gaps"),
        ("is_test,x,x0,y\n0,1,1,1\n", "not both"),
        ("", "is empty"),
    ],
)
def test_csv_errors(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as err:
        read_csv(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_missing_file(tmp_path, rng):
    with pytest.raises(ConfigError, match="no such file"):
        load_dataset(DataConfig(file="nope.csv"), tmp_path, rng)
    with pytest.raises(ConfigError, match="is a directory"):
        read_csv(tmp_path)


def test_generated_data(rng):
    cfg = DataConfig(target="sin", noise=0.1, n_train=10, n_test=2000, x_range=(-3.0, 3.0))
    data = generate(cfg, rng)
    assert data.x_train.shape == (10, 1) and data.x_test.shape == (2000, 1)
    assert data.x_test.min() >= -3 and data.x_test.max() <= 3
    resid = data.y_test - np.sin(data.x_test[:, 0])
    # sd of the noise within 4 standard errors (se of a sample sd = 0.1 / sqrt(2 * 2000))
    assert np.std(resid) == pytest.approx(0.1, abs=4 * 0.1 / np.sqrt(4000))
    assert abs(np.mean(resid)) < 4 * 0.1 / np.sqrt(2000)


def test_generated_is_reproducible_and_multidimensional():
    cfg = DataConfig(target="quadratic", noise=0.0, n_train=5, n_test=3, input_dim=3)
    a = generate(cfg, np.random.default_rng(7))
    b = generate(cfg, np.random.default_rng(7))
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert a.x_train.shape == (5, 3)
    np.testing.assert_allclose(a.y_train, (a.x_train**2).sum(axis=1))


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_targets_shape(name):
    x = np.linspace(-1, 1, 12).reshape(4, 3)
    assert TARGETS[name](x).shape == (4,)


def test_config_validation():
    with pytest.raises(ConfigError, match="x_range"):
        build(DataConfig, {"x_range": [3, -3]}, "data")
    with pytest.raises(ConfigError, match="target.*did you mean 'sin'"):
        build(DataConfig, {"target": "sine"}, "data")
    with pytest.raises(ConfigError, match="n_train"):
        build(DataConfig, {"n_train": 0}, "data")
    with pytest.raises(ConfigError, match="unknown key 'nosie'"):
        build(DataConfig, {"nosie": 0.1}, "data")
