"""Predictions of an infinitely wide network on a data set: kernels, solve, evidence, train fit.

The one path from (architecture, training data, test inputs) to predictions that both
``wideinf predict`` and the scikit-learn estimators of :mod:`wideinf.sklearn` take:

- ``kernel="nngp"``: the NNGP posterior (exact Bayesian inference; Lee et al. 2018,
  arXiv:1711.00165);
- ``kernel="ntk"``: the ensemble of networks trained by gradient flow for a time t (inf: to
  convergence; Lee et al. 2019, arXiv:1902.06720, Eq. 16);
- ``kernel="ntk-gp"``: the NTK-GP (He et al. 2020, arXiv:2007.05864).

Classification is regression on one-hot targets centred as in Lee et al. 2018: 0.9 for the
true class and -0.1 for the others (Arora et al. 2020, arXiv:1910.01663, do the same); the
predicted class is the largest score.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import ConfigError, NumericalError
from .evidence import log_marginal_likelihood
from .kernels.gradients import kernel_gradients
from .predict import factorize, gp_posterior, ntk_ensemble, regularizer

__all__ = ["KERNELS", "ONE_HOT", "Outcome", "one_hot", "infer", "bytes_needed"]

KERNELS = ("nngp", "ntk", "ntk-gp")

# Targets of one-hot regression: (wrong class, right class), Lee et al. 2018.
ONE_HOT = (-0.1, 0.9)


@dataclass(frozen=True)
class Outcome:
    """Predictions at M test points, with the evidence and the fit to the training data.

    Attributes
    ----------
    mean : ndarray, shape (M,) or (M, C)
        Mean of f (one column per target column).
    sd : ndarray, shape (M,)
        Standard deviation of f (shared by the columns).
    train_mean : ndarray, shape (N,) or (N, C)
        The same model's mean at the training inputs.
    log_marginal_likelihood : dict
        ``{"nngp": float | None, "ntk-gp": float | None}`` (None: that matrix is singular).
    """

    mean: np.ndarray
    sd: np.ndarray
    train_mean: np.ndarray
    log_marginal_likelihood: dict


def one_hot(labels: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Centred one-hot targets (N, C): 0.9 at each label's class, -0.1 elsewhere."""
    hits = np.asarray(labels)[:, None] == np.asarray(classes)[None, :]  # (N, C)
    return np.where(hits, ONE_HOT[1], ONE_HOT[0])


def infer(
    arch,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    *,
    kernel: str = "nngp",
    time: float = math.inf,
    diag_reg: float = 0.0,
    diag_reg_relative: bool = True,
    dtype=np.float64,
    evidence: bool = True,
) -> Outcome:
    """Predict f at ``x_test`` after "training" on ``(x_train, y_train)``.

    Parameters
    ----------
    arch : Architecture
    x_train : ndarray, shape (N, d)
    y_train : ndarray, shape (N,) or (N, C)
    x_test : ndarray, shape (M, d)
    kernel : {"nngp", "ntk", "ntk-gp"}
    time : float, default inf
        Gradient-flow time of the NTK ensemble (``kernel="ntk"`` only).
    diag_reg, diag_reg_relative
        Regularizer of the train-train matrix inverted (see :func:`wideinf.predict.regularizer`).
    dtype : {np.float64, np.float32}
        Precision of the kernels; the solve is always float64.
    evidence : bool, default True
        Also compute the log marginal likelihood of the NNGP and of the NTK-GP.

    Returns
    -------
    Outcome
    """
    if kernel not in KERNELS:
        raise ConfigError(f"kernel: expected one of {', '.join(KERNELS)}, got {kernel!r}")
    if kernel != "ntk" and not math.isinf(time):
        raise ConfigError(f"time: applies to kernel 'ntk' only, not {kernel!r}")
    train = arch.kernel(x_train, dtype=dtype)  # (N, N)
    cross = arch.kernel(x_test, x_train, dtype=dtype)  # (M, N)
    test = kernel_gradients(arch, x_test, diagonal=True)  # (M,) diagonals, float64
    reg = {"diag_reg": diag_reg, "diag_reg_relative": diag_reg_relative}
    # One Cholesky factor per matrix serves its posterior and its evidence.
    solved = {"nngp": "nngp", "ntk-gp": "ntk-gp", "ntk": "ntk-gp" if math.isinf(time) else None}
    factors, lml, alphas = {}, {"nngp": None, "ntk-gp": None}, {}
    for name, matrix in (("nngp", train.nngp), ("ntk-gp", train.ntk)):
        if not (evidence or name == solved[kernel]):
            continue
        try:
            factors[name] = factorize(matrix, diag_reg, diag_reg_relative, _label(name))
        except NumericalError:
            if name == solved[kernel]:
                raise
            continue
        ev = log_marginal_likelihood(matrix, y_train, **reg, factor=factors[name])
        lml[name], alphas[name] = ev.value, ev.alpha
    if kernel == "nngp":
        pred = gp_posterior(
            train.nngp, cross.nngp, test.nngp, y_train, **reg, factor=factors["nngp"]
        )
        train_mean = _train_mean(train.nngp, y_train, alphas["nngp"], diag_reg, diag_reg_relative)
    elif kernel == "ntk-gp":
        pred = gp_posterior(
            train.ntk, cross.ntk, test.ntk, y_train, **reg, name="NTK", factor=factors["ntk-gp"]
        )
        train_mean = _train_mean(train.ntk, y_train, alphas["ntk-gp"], diag_reg, diag_reg_relative)
    else:
        args = (train.ntk, cross.ntk, train.nngp, cross.nngp, test.nngp, y_train, (time,))
        pred = ntk_ensemble(*args, **reg, factor=factors.get("ntk-gp"))
        pred = type(pred)(pred.mean[0], pred.cov[0])
        if math.isinf(time):
            train_mean = _train_mean(
                train.ntk, y_train, alphas["ntk-gp"], diag_reg, diag_reg_relative
            )
        else:  # the ensemble's mean at the training inputs, by the same formula
            at_train = ntk_ensemble(
                train.ntk, train.ntk, train.nngp, train.nngp, np.diagonal(train.nngp), y_train,
                (time,), **reg,
            )  # fmt: skip
            train_mean = at_train.mean[0]
    return Outcome(pred.mean, pred.std, train_mean, lml)


def bytes_needed(n_train: int, n_test: int, kernel: str, time: float, float32: bool) -> int:
    """An estimate of the peak memory of :func:`infer`, in bytes.

    The NNGP and NTK blocks train-train (N, N) and test-train (M, N) in the kernels' precision,
    a float64 copy of the train-train matrix being factorised and its factor, the (N, M) solve,
    and, for the NTK ensemble at a finite time, the eigendecomposition's workspace.
    """
    item = 4 if float32 else 8
    n2, nm = n_train * n_train, n_train * n_test
    total = 2 * n2 * item + 2 * nm * item + 3 * n2 * 8 + 2 * nm * 8
    if kernel == "ntk" and not math.isinf(time):
        total += 3 * n2 * 8 + 2 * n2 * 8  # eigenvectors, workspace, A_t at the training inputs
    return int(total)


def _label(name):
    return "NNGP" if name == "nngp" else "NTK"


def _train_mean(matrix, y, alpha, diag_reg, relative):
    """``k (k + lambda I)^-1 y = y - lambda alpha`` with ``alpha = (k + lambda I)^-1 y``."""
    lam = regularizer(matrix, diag_reg, relative)
    alpha = alpha[:, 0] if np.ndim(y) == 1 else alpha
    return np.asarray(y, dtype=float) - lam * alpha
