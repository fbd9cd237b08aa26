"""Tables of training and test data: CSV with a header row, .npy and .npz.

Every problem is reported in one line naming the file and, where it lies in one place, the
line (CSV, counting the header as line 1) or row (arrays, from 0) and the column:

    train.csv line 7, column 'x2': 'abc' is not a number

Columns: a CSV's header names them; a 2-D ``.npy`` array's columns are named ``0, 1, ...``
(negative names count from the end, as in Python); an ``.npz`` holds 1-D arrays, one column
each under its key, or 2-D arrays whose columns are named ``key[0], key[1], ...``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ConfigError
from .io import existing_file

__all__ = ["Table", "read_table", "features", "align_features", "target", "Standardizer"]


@dataclass(frozen=True)
class Table:
    """A table read from a file.

    Attributes
    ----------
    path : Path
    columns : tuple of str
    data : dict of str -> ndarray, shape (n,)
        Each column as read: floats (arrays) or strings (CSV cells, converted on request).
    lines : ndarray of int, shape (n,), or None
        The CSV line of each row (the header is line 1); None for arrays (rows count from 0).
    """

    path: Path
    columns: tuple
    data: dict
    lines: np.ndarray | None

    @property
    def n_rows(self) -> int:
        return len(next(iter(self.data.values()))) if self.data else 0

    def where(self, row: int) -> str:
        """``"file line 7"`` (CSV) or ``"file row 5"`` (arrays)."""
        if self.lines is not None:
            return f"{self.path} line {self.lines[row]}"
        return f"{self.path} row {row}"

    def resolve(self, name: str, role: str) -> str:
        """The column called ``name`` (a negative index for unnamed array columns)."""
        if name in self.data:
            return name
        if self.lines is None and _is_int(name) and -len(self.columns) <= int(name) < 0:
            return self.columns[int(name)]
        shown = ", ".join(repr(c) for c in self.columns[:20])
        more = ", ..." if len(self.columns) > 20 else ""
        raise ConfigError(f"{self.path}: no {role} column {name!r} (columns: {shown}{more})")

    def numeric(self, column: str) -> np.ndarray:
        """A column as float64 (n,), finite, or a ConfigError naming the first bad cell."""
        raw = self.data[column]
        values = _floats(raw)
        if values is None:
            for row, cell in enumerate(raw):
                if not cell.strip():
                    raise ConfigError(f"{self.where(row)}, column {column!r}: empty cell")
                try:
                    float(cell)
                except ValueError:
                    raise ConfigError(
                        f"{self.where(row)}, column {column!r}: {str(cell)!r} is not a number"
                    ) from None
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            row = int(bad[0])
            raise ConfigError(
                f"{self.where(row)}, column {column!r}: {values[row]} (missing or infinite "
                "values are not supported; remove or fill the row)"
            )
        return values


def read_table(path, label: str = "data") -> Table:
    """Read a CSV (header row), .npy or .npz file; ``label`` names the option in messages."""
    path = existing_file(path, label)
    suffix = path.suffix.lower()
    if suffix in (".csv", ".txt"):
        return _read_csv(path)
    if suffix in (".npy", ".npz"):
        return _read_arrays(path)
    raise ConfigError(f"{label} {path}: expected a .csv (with a header row), .npy or .npz file")


def features(table: Table, target: str | None, names=None) -> tuple[np.ndarray, tuple]:
    """The feature matrix (n, d) and its column names.

    Features are ``names`` if given, else every column except the target (when present).
    """
    if names:
        chosen = [table.resolve(name, "feature") for name in names]
    else:
        chosen = [c for c in table.columns if c != target]
    if not chosen:
        raise ConfigError(f"{table.path}: no feature columns (only the target {target!r})")
    x = np.column_stack([table.numeric(c) for c in chosen])  # (n, d)
    return x, tuple(chosen)


def align_features(train: Table, train_names, test: Table, target: str | None, names=None):
    """The test table's features in the training table's column order, or a ConfigError."""
    if names:
        return features(test, None, train_names)
    test_names = [c for c in test.columns if c != target]
    missing = [c for c in train_names if c not in test_names]
    extra = [c for c in test_names if c not in train_names]
    if missing or extra:
        parts = ([f"missing {', '.join(map(repr, missing))}"] if missing else []) + (
            [f"extra {', '.join(map(repr, extra))}"] if extra else []
        )
        raise ConfigError(
            f"{test.path}: feature columns differ from {train.path}'s: {'; '.join(parts)} "
            "(use --features to choose the columns both have)"
        )
    return features(test, None, train_names)


def target(table: Table, column: str) -> np.ndarray:
    """The target column as read: floats if every cell is a number, else strings."""
    raw = table.data[column]
    values = _floats(raw)
    if values is None:
        empty = np.flatnonzero(np.char.str_len(np.char.strip(raw)) == 0)
        if empty.size:
            raise ConfigError(f"{table.where(int(empty[0]))}, column {column!r}: empty target cell")
        return np.char.strip(raw)
    if not np.all(np.isfinite(values)):
        table.numeric(column)  # raises, naming the row
    return values


@dataclass(frozen=True)
class Standardizer:
    """Per-column ``(x - mean) / scale`` with the training set's statistics.

    A constant column gets scale 1 (it is then 0 everywhere in training).
    """

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> Standardizer:
        mean = x.mean(axis=0)  # (d,)
        scale = x.std(axis=0)  # (d,)
        return cls(mean, np.where(scale > 0, scale, 1.0))

    def transform(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) / self.scale


# ----------------------------------------------------------------------------- readers


def _read_csv(path: Path) -> Table:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"{path}: cannot read as CSV: {exc}") from None
    lines = [i + 1 for i, row in enumerate(rows) if row and any(cell.strip() for cell in row)]
    if not lines:
        raise ConfigError(f"{path}: is empty; expected a header row and data rows")
    header = [cell.strip() for cell in rows[lines[0] - 1]]
    blank = [i for i, name in enumerate(header) if not name]
    if blank:
        raise ConfigError(f"{path} line {lines[0]}: column {blank[0] + 1} has no name")
    if len(set(header)) != len(header):
        dup = next(name for name in header if header.count(name) > 1)
        raise ConfigError(f"{path} line {lines[0]}: column {dup!r} appears twice")
    data_lines = lines[1:]
    for line in data_lines:
        if len(rows[line - 1]) != len(header):
            raise ConfigError(
                f"{path} line {line}: {len(rows[line - 1])} cells, expected {len(header)} "
                "(as in the header)"
            )
    cells = np.array([rows[line - 1] for line in data_lines], dtype=str).reshape(-1, len(header))
    data = {name: cells[:, j] for j, name in enumerate(header)}
    return Table(path, tuple(header), data, np.array(data_lines, dtype=int))


def _read_arrays(path: Path) -> Table:
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            items = {"": loaded}
        else:
            with loaded:
                items = {key: loaded[key] for key in loaded.files}
    except (ValueError, OSError, EOFError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"{path}: cannot read: {reason}") from None
    data = {}
    for key, arr in items.items():
        if arr.dtype.kind not in "biufU":
            raise ConfigError(
                f"{path}: array {key or '(npy)'} has dtype {arr.dtype}; expected numbers"
            )
        if arr.ndim == 1:
            data[key or "0"] = arr
        elif arr.ndim == 2:
            for j in range(arr.shape[1]):
                data[f"{key}[{j}]" if key else str(j)] = arr[:, j]
        else:
            raise ConfigError(
                f"{path}: array {key or '(npy)'} has shape {arr.shape}; expected 1-D or 2-D"
            )
    lengths = {len(v) for v in data.values()}
    if len(lengths) > 1:
        raise ConfigError(f"{path}: arrays have different lengths {sorted(lengths)}")
    if not data:
        raise ConfigError(f"{path}: holds no arrays")
    return Table(path, tuple(data), data, None)


def _floats(raw: np.ndarray):
    """The cells as float64 (n,), or None if some cell is not a number."""
    try:
        return raw.astype(float)
    except ValueError:
        return None


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True
