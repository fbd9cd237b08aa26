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

import csv
import difflib
import functools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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
    """A CSV with a header: every column but ``target`` is a numeric feature.

    Parameters
    ----------
    path : str or Path
    target : str
        The target column: class names or numbers (classification), numbers (regression).
    task : {"classification", "regression"}, default "classification"

    Returns
    -------
    RealData named after the file's stem, classes sorted by name.
    """
    path = Path(path)
    where = f"csv.file: {path}"
    if not path.is_file():
        raise ConfigError(f"{where}: no such file" if not path.exists() else f"{where}: not a file")
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            rows = [row for row in csv.reader(fh) if row and any(c.strip() for c in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"{where}: cannot read: {exc}") from None
    if len(rows) < 2:
        raise ConfigError(f"{where}: needs a header row and at least one data row")
    header = [h.strip() for h in rows[0]]
    if target not in header:
        raise ConfigError(
            f"{where}: no target column {target!r}; columns: {', '.join(header)} "
            "(set csv.target to one of them)"
        )
    if len(rows) - 1 > MAX_ROWS:
        raise ConfigError(f"{where}: more than {MAX_ROWS} rows")
    j_target = header.index(target)
    features = [j for j in range(len(header)) if j != j_target]
    if not features:
        raise ConfigError(f"{where}: no feature column besides the target {target!r}")
    x = np.empty((len(rows) - 1, len(features)))  # (n, d)
    labels = []
    for i, row in enumerate(rows[1:]):
        line = i + 2
        if len(row) != len(header):
            raise ConfigError(
                f"{where}: line {line} has {len(row)} field(s), the header {len(header)}"
            )
        for k, j in enumerate(features):
            x[i, k] = _number(row[j], f"{where}: line {line}, column {header[j]!r}")
        labels.append(row[j_target].strip())
    if task == "regression":
        y = np.array([_number(v, f"{where}: target {target!r}") for v in labels])
        return RealData(path.stem, task, x, y, source=str(path))
    classes = tuple(sorted(set(labels)))
    index = {c: k for k, c in enumerate(classes)}
    y = np.array([index[v] for v in labels], dtype=np.int64)
    return RealData(path.stem, "classification", x, y, classes=classes, source=str(path))


def _number(cell: str, where: str) -> float:
    try:
        value = float(cell)
    except ValueError:
        raise ConfigError(f"{where}: {cell.strip()!r} is not a number") from None
    if not math.isfinite(value):
        raise ConfigError(f"{where}: NaN or infinity")
    return value
