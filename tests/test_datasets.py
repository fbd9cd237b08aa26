"""``wideinf.datasets``: the shipped real data sets and the CSV reader.

Layers: each data set's published size, task and classes (exact); MNIST-1D against the
``mnist1d`` package itself and without side effects on global random streams; the CSV reader's
parsing and its one-line errors.
"""

import random

import numpy as np
import pytest

from wideinf import datasets as D
from wideinf.errors import ConfigError

SIZES = {  # rows, features, classes (0 for regression)
    "iris": (150, 4, 3),
    "wine": (178, 13, 3),
    "breast_cancer": (569, 30, 2),
    "digits": (1797, 64, 10),
    "diabetes": (442, 10, 0),
}


@pytest.mark.parametrize("name", sorted(SIZES))
def test_shipped_sklearn_sets_have_their_published_sizes(name):
    data = D.load(name)
    rows, d, classes = SIZES[name]
    assert data.x.shape == (rows, d) and data.y.shape == (rows,)
    assert data.x.dtype == np.float64 and np.isfinite(data.x).all()
    assert data.x_test is None and data.y_test is None
    assert data.n_classes == classes
    assert data.task == ("regression" if classes == 0 else "classification")
    if classes:
        assert data.y.dtype == np.int64
        np.testing.assert_array_equal(np.unique(data.y), np.arange(classes))


def test_mnist1d_has_its_default_shape_and_leaves_global_streams_alone():
    np.random.seed(123)
    random.seed(123)
    before_np, before_py = np.random.get_state()[1].copy(), random.getstate()
    D._mnist1d.cache_clear()
    data = D.load("mnist1d")
    np.testing.assert_array_equal(np.random.get_state()[1], before_np)
    assert random.getstate() == before_py
    assert data.x.shape == (4000, 40) and data.x_test.shape == (1000, 40)
    assert data.n_classes == 10 and data.task == "classification"
    # 500 sequences per class, shuffled: every class in both sets, about 400 of them in training.
    counts = np.bincount(data.y, minlength=10) + np.bincount(data.y_test, minlength=10)
    np.testing.assert_array_equal(counts, 500)
    # The package standardizes all 5000 sequences together (mean 0, sd 1 over every value).
    both = np.concatenate([data.x, data.x_test])
    assert abs(both.mean()) < 1e-12 and both.std() == pytest.approx(1.0, abs=1e-12)
    assert not data.x.flags.writeable  # the cached copy cannot be changed by a caller


def test_unknown_name_suggests_the_closest():
    with pytest.raises(ConfigError, match=r"unknown data set 'irs' \(did you mean 'iris'\?\)"):
        D.load("irs")


def test_missing_package_is_one_line_naming_the_install():
    with pytest.raises(ConfigError, match=r"pip install no-such-pkg"):
        D.require("no_such_module_xyz", "no-such-pkg")


def test_csv_classes_by_name_and_regression_targets(tmp_path):
    path = tmp_path / "flowers.csv"
    path.write_text("a,b,kind\n1,2,rose\n3,4.5,tulip\n-1,0,rose\n")
    data = D.read_table(path, "kind")
    assert data.name == "flowers" and data.classes == ("rose", "tulip")
    np.testing.assert_array_equal(data.x, [[1, 2], [3, 4.5], [-1, 0]])
    np.testing.assert_array_equal(data.y, [0, 1, 0])
    reg = D.read_table(_write(tmp_path, "y,x\n1.5,2\n-3,4\n"), "y", "regression")
    np.testing.assert_array_equal(reg.y, [1.5, -3.0])
    np.testing.assert_array_equal(reg.x, [[2.0], [4.0]])


def _write(tmp_path, text, name="r.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "text, target, needle",
    [
        ("a,b,kind\n1,2,x\n", "label", "no target column 'label' (columns: 'a', 'b', 'kind')"),
        ("a,kind\n1,x\nfoo,y\n", "kind", "line 3, column 'a': 'foo' is not a number"),
        ("a,kind\n1,x\n2\n", "kind", "line 3: 1 cells, expected 2"),
        ("a,kind\nnan,x\n", "kind", "missing or infinite values are not supported"),
        ("kind\nx\n", "kind", "no feature columns"),
        ("a,kind\n", "kind", "at least one data row"),
    ],
)
def test_bad_csv_is_a_one_line_config_error(tmp_path, text, target, needle):
    with pytest.raises(ConfigError) as err:
        D.read_table(_write(tmp_path, text), target)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_missing_csv_file(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        D.read_table(tmp_path / "none.csv", "y")
