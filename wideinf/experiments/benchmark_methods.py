"""The methods of ``wideinf benchmark``, each over its own hyperparameter grid.

Every method fits on the training rows only and predicts every evaluation row (validation and
test rows together, so one fit serves both) for every point of its grid; the protocol in
:mod:`wideinf.experiments.benchmark` then chooses the grid point on the validation rows. A
method returns a :class:`Grid`: predicted labels (classification) or values (regression),
shape (G, M), and one label per grid point.

- Infinite width: the NNGP posterior mean and the NTK gradient-flow mean of ReLU MLPs, through
  the one adapter :func:`infinite_width_predict` (kernels from
  :meth:`wideinf.architecture.Architecture.kernel`, predictions as in :mod:`wideinf.predict`).
  W_std and b_std come from a small grid, not from the marginal likelihood.
- Finite width: the same MLPs, one network per target column, trained by full-batch gradient
  descent (:func:`wideinf.training.train`) on the same targets; optionally *centred* (each
  network's initial function subtracted, so it starts from zero like the kernel predictors).
- scikit-learn: logistic regression, RBF-kernel SVM, random forest, GP regression with an RBF
  kernel (regression only; its hyperparameters by marginal likelihood on the training rows).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.linalg

from ..architecture import Architecture
from ..config import ArchitectureConfig, LayerConfig
from ..datasets import require
from ..networks import forward, init_params
from ..predict import _flow_gain, regularizer
from ..training import train

__all__ = [
    "Grid",
    "relu_mlp",
    "infinite_width_predict",
    "kernel_mean",
    "learning_rate",
    "train_finite",
    "SKLEARN_METHODS",
    "sklearn_grid",
]


@dataclass(frozen=True)
class Grid:
    """Predictions of one method for every grid point.

    Attributes
    ----------
    predictions : ndarray, shape (G, M)
        Labels (int) or values (float) at the M evaluation rows.
    labels : tuple of str, length G
        The hyperparameters of each grid point, e.g. ``"depth=3 b_std=0.5 diag_reg=0.01"``.
    """

    predictions: np.ndarray
    labels: tuple[str, ...]


def relu_mlp(
    depth: int, W_std: float, b_std: float, parameterization: str = "ntk"
) -> ArchitectureConfig:
    """``dense, relu`` repeated ``depth`` times, then a dense readout."""
    layers = (LayerConfig("dense"), LayerConfig("relu")) * depth + (LayerConfig("dense"),)
    return ArchitectureConfig(layers, W_std, b_std, parameterization)


# ----------------------------------------------------------------------------- infinite width


def infinite_width_predict(
    arch: ArchitectureConfig, x_train, targets, x_eval, diag_regs, time: float = math.inf
) -> dict[str, np.ndarray]:
    """NNGP posterior mean and NTK ensemble mean at the evaluation rows (the one adapter).

    Parameters
    ----------
    arch : ArchitectureConfig
    x_train : ndarray, shape (N, d)
    targets : ndarray, shape (N, C)
        One column per output (one-hot classes, or one standardized regression target).
    x_eval : ndarray, shape (M, d)
    diag_regs : sequence of float, length R
        Relative diagonal regularizers (``diag_reg * trace / N``, Neural Tangents' default).
    time : float, default inf
        Gradient-flow time t of the NTK mean (steps x learning rate); the NNGP mean does not
        depend on it.

    Returns
    -------
    dict with ``"nngp"`` and ``"ntk"``, each ndarray (R, M, C); a grid point whose regularized
    matrix cannot be factored is NaN (never chosen).
    """
    n = len(x_train)
    kernel = Architecture.from_config(arch).kernel(np.vstack([x_train, x_eval]))  # (N+M, N+M)
    out = {}
    for kind, t in (("nngp", math.inf), ("ntk", time)):
        matrix = getattr(kernel, kind)
        k_train, k_eval = matrix[:n, :n], matrix[n:, :n]  # (N, N), (M, N)
        out[kind] = np.stack([kernel_mean(k_train, k_eval, targets, r, t) for r in diag_regs])
    return out


def kernel_mean(k_train, k_eval, targets, diag_reg: float, time: float = math.inf) -> np.ndarray:
    """``k*X A_t Y`` for every column of Y at once: the mean of :mod:`wideinf.predict`.

    At ``t = inf``, ``A = (kXX + lambda I)^-1`` (``gp_posterior``'s mean, and ``ntk_ensemble``'s
    at t = inf); at finite t, ``A_t = V diag((1 - exp(-w t / N)) / w) V^T`` with
    ``kXX + lambda I = V diag(w) V^T`` (``ntk_ensemble``, Lee et al. 2019, Eq. 16). One factor
    serves all C columns, where the library functions take one target vector at a time;
    the tests check both against them column by column.

    Parameters
    ----------
    k_train : ndarray, shape (N, N)
    k_eval : ndarray, shape (M, N)
    targets : ndarray, shape (N, C)
    diag_reg : float
        Relative regularizer (see :func:`wideinf.predict.regularizer`).
    time : float, default inf

    Returns
    -------
    ndarray, shape (M, C); NaN if the regularized matrix is not positive definite.
    """
    n = k_train.shape[0]
    reg = k_train + regularizer(k_train, diag_reg, True) * np.eye(n)  # (N, N)
    if math.isinf(time):
        try:
            factor = scipy.linalg.cho_factor(reg, lower=True, check_finite=False)
        except np.linalg.LinAlgError:
            return np.full((k_eval.shape[0], targets.shape[1]), np.nan)
        return k_eval @ scipy.linalg.cho_solve(factor, targets)  # (M, C)
    w, v = np.linalg.eigh(reg)  # (N,), (N, N)
    gain = _flow_gain(np.clip(w, 0.0, None), time / n)  # (N,)
    return (k_eval @ v) @ (gain[:, None] * (v.T @ targets))  # (M, C)


# ----------------------------------------------------------------------------- finite width


def learning_rate(arch: ArchitectureConfig, x_train, width: int, factor: float) -> float:
    """``factor * N / lambda_max`` of the network's NTK on the training rows.

    A mode of eigenvalue lambda shrinks by ``1 - eta lambda / N`` per step, so ``factor < 2``
    is stable in the kernel regime and ``factor = 1`` removes the top mode in one step. In
    standard parameterization the kernel is ``Theta / n`` and the returned rate is to be
    divided by the width n (:mod:`wideinf.training`).
    """
    n = len(x_train)
    theta = Architecture.from_config(arch).kernel(x_train, width=width).ntk  # (N, N)
    top = scipy.linalg.eigvalsh(theta, subset_by_index=[n - 1, n - 1])[0]
    return float(factor * n / top)


def train_finite(
    arch: ArchitectureConfig,
    width: int,
    x_train,
    targets,
    x_eval,
    steps: int,
    record_every: int,
    lr_factor: float,
    center: bool,
    rng: np.random.Generator,
):
    """Train one network per target column by full-batch gradient descent on MSE.

    Parameters
    ----------
    arch : ArchitectureConfig
        ``ntk`` or ``standard`` parameterization (then the rate is divided by ``width``).
    width : int
        Hidden width of every hidden layer.
    x_train : ndarray, shape (N, d)
    targets : ndarray, shape (N, C)
    x_eval : ndarray, shape (M, d)
    steps, record_every : int
    lr_factor : float
        See :func:`learning_rate`.
    center : bool
        Train ``f - f_0`` (targets ``y + f_0(x)``, outputs minus ``f_0``): its infinite-width
        limit is the NTK mean itself rather than a random draw around it.
    rng : numpy.random.Generator
        Draws the C networks' initial parameters.

    Returns
    -------
    outputs : ndarray, shape (T, M, C)
        Outputs at the evaluation rows at the recorded steps.
    steps_recorded : ndarray of int, shape (T,)
    eta : float
        Learning rate in the time of the kernel (``t = steps * eta``).
    final_loss : ndarray, shape (C,)
    """
    net = Architecture.from_config(arch)
    d, c = x_train.shape[1], targets.shape[1]
    eta = learning_rate(arch, x_train, width, lr_factor)
    step_size = eta / width if arch.parameterization == "standard" else eta
    params = init_params(net, d, width, c, rng)  # C networks
    goal = targets.T.copy()  # (C, N)
    offset = np.zeros((c, len(x_eval)))  # (C, M)
    if center:
        goal += forward(net, params, x_train)
        offset = forward(net, params, x_eval)
    result = train(
        net, params, x_train, goal, step_size, steps, x_eval=x_eval,
        record_every=record_every, quiet=True, record_outputs=True,
    )  # fmt: skip
    outputs = result.f_eval_path - offset[:, None, :]  # (C, T, M)
    return outputs.transpose(1, 2, 0), result.steps_recorded, eta, result.final_loss


# ----------------------------------------------------------------------------- scikit-learn

SKLEARN_METHODS = ("logistic", "svm_rbf", "random_forest", "gp_rbf")


def sklearn_grid(method: str, classification: bool, x_train, y_train, x_eval, seed: int) -> Grid:
    """Fit a scikit-learn learner for every point of its grid; predict the evaluation rows.

    Grids: logistic regression ``C`` in 0.01 .. 100 (classification only); RBF SVM ``C`` in
    {1, 10, 100} x ``gamma`` in {0.3, 1, 3} / d (inputs are standardized, so 1/d is
    scikit-learn's ``"scale"``); random forest of 100 trees with ``max_features`` in
    {sqrt(d), d/2} x ``min_samples_leaf`` in {1, 3}; GP regression with an isotropic RBF
    kernel plus white noise, hyperparameters by marginal likelihood (regression only).

    Returns
    -------
    Grid, or None when the method does not apply to the task.
    """
    svm, ensemble = (
        require("sklearn.svm", "scikit-learn"),
        require("sklearn.ensemble", "scikit-learn"),
    )
    d = x_train.shape[1]
    fits = []
    if method == "logistic":
        if not classification:
            return None
        from sklearn.linear_model import LogisticRegression

        for c in (0.01, 0.1, 1.0, 10.0, 100.0):
            fits.append((f"C={c:g}", LogisticRegression(C=c, max_iter=2000)))
    elif method == "svm_rbf":
        for c in (1.0, 10.0, 100.0):
            for g in (0.3, 1.0, 3.0):
                kw = dict(C=c, gamma=g / d, kernel="rbf")
                fits.append(
                    (f"C={c:g} gamma={g:g}/d", svm.SVC(**kw) if classification else svm.SVR(**kw))
                )
    elif method == "random_forest":
        forest = (
            ensemble.RandomForestClassifier if classification else ensemble.RandomForestRegressor
        )
        for feats in ("sqrt", 0.5):
            for leaf in (1, 3):
                model = forest(n_estimators=100, max_features=feats, min_samples_leaf=leaf,
                               random_state=seed, n_jobs=1)  # fmt: skip
                fits.append((f"max_features={feats} min_leaf={leaf}", model))
    elif method == "gp_rbf":
        if classification:
            return None
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

        kernel = ConstantKernel() * RBF(length_scale=math.sqrt(d)) + WhiteKernel(0.1)
        gp = GaussianProcessRegressor(kernel, normalize_y=True, n_restarts_optimizer=2,
                                      random_state=seed)  # fmt: skip
        fits.append(("marginal likelihood", gp))
    else:
        raise ValueError(f"unknown method {method!r}")
    preds = [model.fit(x_train, y_train).predict(x_eval) for _, model in fits]
    return Grid(np.stack(preds), tuple(label for label, _ in fits))
