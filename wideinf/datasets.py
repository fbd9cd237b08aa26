"""Real data sets behind one loader: the ones shipped inside installed packages, or any CSV.

Nothing is downloaded: scikit-learn bundles its data sets as files, and MNIST-1D (Greydanus
2020, arXiv:2011.14439) is generated offline from its ten templates by the ``mnist1d`` package's
``make_dataset`` with its default arguments (5000 sequences of length 40, seed 42; the first
4000 are its training set, the last 1000 its test set).

===============  =============  ====  ====  =======  =========================================
name             task           rows  d     classes  source
===============  =============  ====  ====  =======  =========================================
iris             classification 150   4     3        Fisher 1936 (UCI)
wine             classification 178   13    3        Forina et al. (UCI)
breast_cancer    classification 569   30    2        Wolberg et al., WDBC (UCI)
digits           classification 1797  64    10       UCI optdigits, 8 x 8 images
diabetes         regression     442   10    -        Efron et al. 2004
mnist1d          classification 5000  40    10       Greydanus 2020 (own 4000/1000 split)
===============  =============  ====  ====  =======  =========================================

A CSV file: a header row, numeric feature columns and one target column (numbers, or class
names for classification). Every problem is a one-line :class:`~wideinf.errors.ConfigError`.
"""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import tabular
from .errors import ConfigError

__all__ = ["NAMES", "RealData", "load", "read_table", "require"]

# name -> (task, loader function in sklearn.datasets, citation)
_SKLEARN = {
    "iris": ("classification", "load_iris", "Fisher 1936, UCI iris"),
    "wine": ("classification", "load_wine", "UCI wine recognition"),
    "breast_cancer": ("classification", "load_breast_cancer", "UCI breast cancer (WDBC)"),
    "digits": ("classification", "load_digits", "UCI optdigits, 8 x 8"),
    "diabetes": ("regression", "load_diabetes", "Efron et al. 2004, diabetes"),
}
NAMES = tuple(_SKLEARN) + ("mnist1d",)
MAX_ROWS = 100_000  # kernels are (n, n): far beyond this nothing fits in memory


@dataclass(frozen=True)
class RealData:
    """A data set, optionally with its own fixed test set.

    Attributes
    ----------
    name : str
    task : {"classification", "regression"}
    x : ndarray, shape (n, d)
        Rows to split into train / validation (/ test, when there is no fixed test set).
    y : ndarray, shape (n,)
        Class indices 0 .. C-1 (int) for classification, targets (float) for regression.
    x_test, y_test : ndarray, shapes (m, d) and (m,), or None
        The data set's own test set (MNIST-1D), never used before the final score.
    classes : tuple of str
        Class names, index = label (empty for regression).
    source : str
    """

    name: str
    task: str
    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    classes: tuple[str, ...] = ()
    source: str = ""

    @property
    def n_classes(self) -> int:
        return len(self.classes)


def require(module: str, package: str):
    """Import ``module``; if it is missing, one line naming the package to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(
            f"the package {package!r} is needed for this; install it with `pip install {package}`"
        ) from None


def load(name: str) -> RealData:
    """A shipped data set by name (see the module docstring); unknown names are a ConfigError."""
    if name in _SKLEARN:
        task, loader, source = _SKLEARN[name]
        datasets = require("sklearn.datasets", "scikit-learn")
        bunch = getattr(datasets, loader)()
        x = np.asarray(bunch.data, dtype=np.float64)  # (n, d)
        if task == "classification":
            y = np.asarray(bunch.target, dtype=np.int64)
            classes = tuple(str(c) for c in bunch.target_names)
        else:
            y, classes = np.asarray(bunch.target, dtype=np.float64), ()
        return RealData(name, task, x, y, classes=classes, source=source)
    if name == "mnist1d":
        return _mnist1d()
    close = difflib.get_close_matches(str(name), NAMES, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ConfigError(f"unknown data set {name!r}{hint}; valid: {', '.join(NAMES)}")


@functools.lru_cache(maxsize=1)
def _mnist1d() -> RealData:
    """MNIST-1D from its templates with the package's default arguments (offline).

    ``make_dataset`` seeds numpy's and Python's global generators; their states are restored
    afterwards so that loading the data changes no other random stream. Kept after the first
    call (it takes seconds, and is the same every time); the arrays are read-only.
    """
    import random

    data_module = require("mnist1d.data", "mnist1d")
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        data = data_module.make_dataset(data_module.get_dataset_args())
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    arrays = [
        np.array(data[key], dtype=dtype)  # x (4000, 40), y (4000,), x_test (1000, 40), y_test
        for key, dtype in (
            ("x", np.float64),
            ("y", np.int64),
            ("x_test", np.float64),
            ("y_test", np.int64),
        )
    ]
    for arr in arrays:
        arr.flags.writeable = False
    return RealData(
        "mnist1d",
        "classification",
        *arrays,
        tuple(str(c) for c in range(10)),
        "Greydanus 2020, MNIST-1D (make_dataset, default arguments)",
    )


def read_table(path, target: str, task: str = "classification") -> RealData:
    """Your own data: a CSV with a header (or a .npy / .npz table), read by :mod:`wideinf.tabular`.

    Every column but ``target`` is a numeric feature.

    Parameters
    ----------
    path : str or Path
    target : str
        The target column: class names or numbers (classification), numbers (regression).
    task : {"classification", "regression"}, default "classification"

    Returns
    -------
    RealData named after the file's stem; classes sorted (numerically when all are numbers).
    """
    path = Path(path)
    table = tabular.read_table(path, label="csv.file")
    if table.n_rows == 0:
        raise ConfigError(f"csv.file {path}: needs a header row and at least one data row")
    if table.n_rows > MAX_ROWS:
        raise ConfigError(f"csv.file {path}: more than {MAX_ROWS} rows")
    column = table.resolve(target, "target")
    x, _ = tabular.features(table, column)  # (n, d)
    if task == "regression":
        return RealData(path.stem, task, x, table.numeric(column), source=str(path))
    values, y = np.unique(tabular.target(table, column), return_inverse=True)
    classes = tuple(f"{v:g}" if isinstance(v, float) else str(v) for v in values.tolist())
    return RealData(path.stem, task, x, y.astype(np.int64), classes=classes, source=str(path))
