"""Regression data for experiments: a CSV file, or a target function plus Gaussian noise.

The ``data:`` block is a :class:`DataConfig`; a CSV file is read by :func:`read_csv` (``is_test``
is 0 for a training point, 1 for a test point; columns in any order).
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from .config import setting
from .errors import ConfigError
from .io import existing_file

__all__ = ["TARGETS", "DataConfig", "Dataset", "load_dataset", "read_csv", "generate"]


# Target functions of the inputs x (n, d) -> (n,). With d = 1 they are the usual sin(x), ...
TARGETS = {
    "sin": lambda x: np.sin(x.sum(axis=1)),  # sin(x_1 + ... + x_d)
    "cos": lambda x: np.cos(x.sum(axis=1)),
    "linear": lambda x: x.sum(axis=1),  # x_1 + ... + x_d
    "quadratic": lambda x: (x * x).sum(axis=1),  # |x|^2
    "abs": lambda x: np.abs(x).sum(axis=1),  # |x_1| + ... + |x_d|
    "step": lambda x: np.sign(x.sum(axis=1)),
}

MAX_POINTS = 100_000  # per split; kernels are (n, n), so far beyond this nothing fits in memory


@dataclass(frozen=True)
class DataConfig:
    """The ``data:`` block: a CSV ``file``, or generated points (``target``, ``n_train``, ...)."""

    file: str = setting(
        "", help="CSV with columns is_test, x (or x0, x1, ...), y; relative to the config"
    )
    target: Literal["sin", "cos", "linear", "quadratic", "abs", "step"] = setting(
        "sin", help="target function of generated data"
    )
    noise: float = setting(0.1, ge=0.0, le=1e6, help="sd of the Gaussian noise on the targets")
    n_train: int = setting(10, ge=1, le=MAX_POINTS, help="generated training points")
    n_test: int = setting(100, ge=0, le=MAX_POINTS, help="generated test points")
    x_range: tuple[float, ...] = setting(
        (-3.0, 3.0), min_len=2, max_len=2, help="interval of generated inputs, every coordinate"
    )
    input_dim: int = setting(1, ge=1, le=10_000, help="dimension d of generated inputs")

    def validate(self, where: str = "data"):
        lo, hi = self.x_range
        if not lo < hi:
            raise ConfigError(
                f"{where}.x_range: expected [low, high] with low < high, got {[lo, hi]}"
            )


@dataclass(frozen=True)
class Dataset:
    """Train points x_train (n, d), y_train (n,) and test points x_test (m, d), y_test (m,).

    m may be 0. ``noise``: the sd of the targets' noise (generated or assumed); ``source``: where
    the points came from (a file path or a description), for reports.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    noise: float = 0.0
    source: str = ""

    @property
    def dim(self) -> int:
        return self.x_train.shape[1]

    @property
    def n_train(self) -> int:
        return self.x_train.shape[0]

    @property
    def n_test(self) -> int:
        return self.x_test.shape[0]


def load_dataset(cfg: DataConfig, config_dir: str | Path, rng: np.random.Generator) -> Dataset:
    """The data of a ``data:`` block: ``cfg.file`` (relative to ``config_dir``), else generated."""
    if cfg.file:  # an absolute cfg.file replaces config_dir
        return read_csv(Path(config_dir or ".") / cfg.file, noise=cfg.noise)
    return generate(cfg, rng)


def generate(cfg: DataConfig, rng: np.random.Generator) -> Dataset:
    """``x ~ U(x_range)^d``, ``y = target(x) + noise * N(0, 1)``; train points drawn first."""
    lo, hi = cfg.x_range

    def draw(n):
        x = rng.uniform(lo, hi, size=(n, cfg.input_dim))  # (n, d)
        return x, TARGETS[cfg.target](x) + cfg.noise * rng.standard_normal(n)  # (n,)

    source = f"{cfg.target}(x) + N(0, {cfg.noise:g}^2), x in [{lo:g}, {hi:g}]^{cfg.input_dim}"
    return Dataset(*draw(cfg.n_train), *draw(cfg.n_test), float(cfg.noise), source)


_X_COLUMN = re.compile(r"^x(\d+)$")


def read_csv(path: str | Path, noise: float = 0.0) -> Dataset:
    """Read a CSV with a header and columns ``is_test``, ``x`` or ``x0, x1, ...``, ``y``.

    Every problem is a one-line ConfigError naming the file and the line.
    """
    path = existing_file(path, "data.file:")
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            rows = [row for row in csv.reader(fh) if row and any(c.strip() for c in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise _bad(path, f"cannot read: {exc}") from None
    if not rows:
        raise _bad(path, "is empty; expected a header is_test,x,y")
    header = [h.strip() for h in rows[0]]
    x_cols, got = _x_columns(header, path), ",".join(header)
    for name in ("is_test", "y"):
        if name not in header:
            raise _bad(path, f"no column {name!r}; expected a header like is_test,x,y (got {got})")
    if len(set(header)) != len(header):
        raise _bad(path, f"repeated column names in {got}")
    values = np.empty((len(rows) - 1, len(header)))  # (rows, columns)
    for i, row in enumerate(rows[1:]):
        line = i + 2
        if len(row) != len(header):
            raise _bad(path, f"line {line} has {len(row)} field(s), the header {len(header)}")
        for j, cell in enumerate(row):
            try:
                values[i, j] = float(cell)
            except ValueError:
                where = f"line {line}, column {header[j]!r}"
                raise _bad(path, f"{where}: {cell.strip()!r} is not a number") from None
            if not math.isfinite(values[i, j]):
                raise _bad(path, f"line {line}, column {header[j]!r}: NaN or infinity")
    is_test = values[:, header.index("is_test")]  # (rows,)
    bad = np.flatnonzero((is_test != 0) & (is_test != 1))
    if bad.size:
        raise _bad(path, f"line {bad[0] + 2}: is_test must be 0 or 1, got {is_test[bad[0]]:g}")
    test = is_test == 1
    x = values[:, [header.index(c) for c in x_cols]]  # (rows, d)
    y = values[:, header.index("y")]  # (rows,)
    if not (~test).any():
        raise _bad(path, "no training rows (is_test = 0)")
    if (~test).sum() > MAX_POINTS or test.sum() > MAX_POINTS:
        raise _bad(path, f"more than {MAX_POINTS} points in a split")
    return Dataset(x[~test], y[~test], x[test], y[test], float(noise), str(path))


def _bad(path: Path, message: str) -> ConfigError:
    return ConfigError(f"data.file: {path}: {message}")


def _x_columns(header: list[str], path: Path) -> list[str]:
    """``["x"]`` or ``["x0", ..., "x{d-1}"]`` (all of them, no gaps), from the header."""
    numbered = sorted((int(m.group(1)), h) for h in header if (m := _X_COLUMN.match(h)))
    if "x" in header and numbered:
        raise _bad(path, "use either a column x or columns x0, x1, ..., not both")
    if "x" in header:
        return ["x"]
    if not numbered:
        raise _bad(path, f"no input column x (or x0, x1, ...) among {','.join(header)}")
    if [k for k, _ in numbered] != list(range(len(numbered))):
        raise _bad(
            path,
            f"input columns must be x0, x1, ..., x{len(numbered) - 1} without gaps "
            f"(got {', '.join(h for _, h in numbered)})",
        )
    return [h for _, h in numbered]
