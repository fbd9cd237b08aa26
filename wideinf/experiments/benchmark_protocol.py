"""The protocol of ``wideinf benchmark``: splits, scores and the validation-only choice.

One split seed draws a random train / validation / test split, stratified by class (a data set
with its own test set keeps it, and the seed draws the validation rows from its training rows).
Inputs are standardized with the training rows' mean and sd; classification targets are one-hot
columns, regression targets are standardized with the training rows. A method's grid point is
chosen by :func:`select` from the validation labels alone; :func:`score` reads the test labels
once, for the chosen point.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..datasets import RealData
from ..errors import ConfigError

__all__ = ["Split", "make_split", "score", "select", "as_outputs"]


@dataclass(frozen=True)
class Split:
    """Rows of one split: standardized inputs and targets, train / validation / test."""

    x_train: np.ndarray  # (N, d)
    y_train: np.ndarray  # (N,)
    x_val: np.ndarray  # (V, d)
    y_val: np.ndarray  # (V,)
    x_test: np.ndarray  # (M, d)
    y_test: np.ndarray  # (M,)
    classification: bool
    n_classes: int = 0
    y_shift: float = 0.0  # regression targets are (y - shift) / scale for the methods
    y_scale: float = 1.0
    train_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, int))

    def targets(self, rows: int | None = None) -> np.ndarray:
        """Targets of the first ``rows`` training rows: one-hot (N, C) or standardized (N, 1)."""
        y = self.y_train[:rows]
        if self.classification:
            return np.eye(self.n_classes)[y]
        return ((y - self.y_shift) / self.y_scale)[:, None]


def make_split(data: RealData, val_fraction, test_fraction, max_train, rng) -> Split:
    """One random split of ``data`` (stratified by class); see the module docstring.

    Raises ConfigError if a class has too few rows to appear in every part.
    """
    classification = data.task == "classification"
    fixed = data.x_test is not None
    parts = 2 if fixed else 3
    groups = [np.flatnonzero(data.y == c) for c in range(data.n_classes)] if classification else [np.arange(len(data.y))]  # fmt: skip
    train, val, test = [], [], []
    for c, rows in enumerate(groups):
        if len(rows) < parts:
            name = data.classes[c] if classification else "-"
            raise ConfigError(
                f"{data.name}: class {name!r} has {len(rows)} row(s); every class needs at least "
                f"{parts} (one per {'train/validation' if fixed else 'train/validation/test'} part)"
            )
        rows = rng.permutation(rows)
        n_val = max(1, round(val_fraction * len(rows)))
        n_test = 0 if fixed else max(1, round(test_fraction * len(rows)))
        n_val = min(n_val, len(rows) - n_test - 1)
        val.append(rows[:n_val])
        test.append(rows[n_val : n_val + n_test])
        train.append(rows[n_val + n_test :])
    train_rows = rng.permutation(np.concatenate(train))
    if max_train:
        train_rows = train_rows[:max_train]
    val_rows = np.sort(np.concatenate(val))
    x_test = data.x_test if fixed else data.x[np.sort(np.concatenate(test))]
    y_test = data.y_test if fixed else data.y[np.sort(np.concatenate(test))]
    x_train = data.x[train_rows]
    mean, sd = x_train.mean(axis=0), x_train.std(axis=0)  # (d,)
    sd = np.where(sd > 0, sd, 1.0)  # constant columns (e.g. digits' border pixels) stay 0
    shift = scale = None
    if not classification:
        shift, scale = float(data.y[train_rows].mean()), float(data.y[train_rows].std() or 1.0)
    return Split(
        (x_train - mean) / sd, data.y[train_rows], (data.x[val_rows] - mean) / sd,
        data.y[val_rows], (x_test - mean) / sd, y_test, classification, data.n_classes,
        shift or 0.0, scale or 1.0, train_rows,
    )  # fmt: skip


def score(pred: np.ndarray, y: np.ndarray, classification: bool) -> float:
    """Accuracy (fraction of labels equal) or RMSE; NaN predictions give NaN."""
    if classification:
        return float(np.mean(pred == y))
    return float(np.sqrt(np.mean((pred - y) ** 2)))


def select(val_predictions: np.ndarray, y_val: np.ndarray, classification: bool) -> int:
    """Index of the best grid point on the validation rows (first one on a tie; NaN never)."""
    scores = np.array([score(p, y_val, classification) for p in val_predictions])  # (G,)
    if not classification:
        scores = -scores
    scores = np.where(np.isfinite(scores), scores, -np.inf)
    return int(np.argmax(scores))


def as_outputs(values: np.ndarray, split: Split) -> np.ndarray:
    """Method outputs (..., M, C) -> labels (argmax) or regression values on the data's scale."""
    if split.classification:
        labels = np.argmax(values, axis=-1)
        return np.where(np.isnan(values).any(axis=-1), -1, labels)
    return values[..., 0] * split.y_scale + split.y_shift
