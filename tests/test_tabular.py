"""Reading tables: CSV with a header, .npy, .npz; messages that name file, line and column."""

import numpy as np
import pytest

from wideinf.errors import ConfigError
from wideinf.tabular import Standardizer, align_features, features, read_table, target


def test_npy_and_npz_columns(tmp_path):
    np.save(tmp_path / "a.npy", np.arange(12.0).reshape(4, 3))
    table = read_table(tmp_path / "a.npy")
    assert table.columns == ("0", "1", "2") and table.resolve("-1", "target") == "2"
    x, names = features(table, "2")
    np.testing.assert_array_equal(x, np.arange(12.0).reshape(4, 3)[:, :2])
    np.savez(tmp_path / "b.npz", X=np.ones((4, 2)), y=np.array(["a", "b", "a", "b"]))
    table = read_table(tmp_path / "b.npz")
    assert table.columns == ("X[0]", "X[1]", "y")
    assert list(target(table, "y")) == ["a", "b", "a", "b"]
    with pytest.raises(ConfigError, match="row 2"):
        np.save(tmp_path / "c.npy", np.array([[1.0], [2.0], [np.nan]]))
        read_table(tmp_path / "c.npy").numeric("0")


def test_csv_shape_problems_name_the_line(tmp_path):
    (tmp_path / "t.csv").write_text("a,b,y\n1,2,3\n4,5\n")
    with pytest.raises(ConfigError, match=r"t.csv line 3: 2 cells, expected 3"):
        read_table(tmp_path / "t.csv")
    (tmp_path / "u.csv").write_text("a,a,y\n1,2,3\n")
    with pytest.raises(ConfigError, match="'a' appears twice"):
        read_table(tmp_path / "u.csv")
    (tmp_path / "t.parquet").write_bytes(b"PAR1")
    with pytest.raises(ConfigError, match="expected a .csv"):
        read_table(tmp_path / "t.parquet")


def test_feature_order_follows_training_and_standardizer(tmp_path):
    (tmp_path / "tr.csv").write_text("a,b,y\n1,5,0\n3,5,1\n")
    (tmp_path / "te.csv").write_text("b,a\n5,2\n")
    train, test = read_table(tmp_path / "tr.csv"), read_table(tmp_path / "te.csv")
    x, names = features(train, "y")
    xt, _ = align_features(train, names, test, None)
    np.testing.assert_array_equal(xt, [[2.0, 5.0]])
    scaler = Standardizer.fit(x)
    np.testing.assert_array_equal(scaler.transform(xt), [[0.0, 0.0]])  # constant column: scale 1
