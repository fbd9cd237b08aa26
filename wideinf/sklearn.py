"""scikit-learn kernels and estimators for infinitely wide networks (the only scikit-learn importer).

- :class:`NNGPKernel`, :class:`NTKKernel`: ``sklearn.gaussian_process.kernels.Kernel``
  subclasses with hyperparameters ``W_std`` and ``b_std`` (positive, fitted in log space, with
  bounds, each fixable with ``"fixed"``). They compose with ``WhiteKernel``, ``ConstantKernel``
  and the rest, and inside ``GaussianProcessRegressor`` their hyperparameters are fitted by
  marginal likelihood with exact gradients (forward mode through the kernel recursion,
  :mod:`wideinf.kernels.gradients`).
- :class:`InfiniteWidthRegressor`, :class:`InfiniteWidthClassifier`: estimators that predict
  as the infinitely wide network would (NNGP posterior, NTK ensemble at a time t, NTK-GP),
  through :func:`wideinf.infer.infer`, the same path as ``wideinf predict``.

``architecture`` is an ``architecture:`` block as a dict (``{"layers": ["dense", "relu",
"dense"]}``), an :class:`~wideinf.architecture.Architecture`, or None for a two-hidden-layer
ReLU network. In the kernels, ``W_std`` and ``b_std`` replace the block's defaults.

>>> from sklearn.gaussian_process import GaussianProcessRegressor
>>> from sklearn.gaussian_process.kernels import WhiteKernel
>>> gp = GaussianProcessRegressor(NNGPKernel({"layers": ["dense", "erf", "dense"]}) + WhiteKernel())
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.gaussian_process.kernels import Hyperparameter, Kernel
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from .errors import WideinfError

__all__ = [
    "NNGPKernel",
    "NTKKernel",
    "InfiniteWidthRegressor",
    "InfiniteWidthClassifier",
    "DEFAULT_ARCHITECTURE",
]

DEFAULT_ARCHITECTURE = {
    "layers": ["dense", "relu", "dense", "relu", "dense"],
    "W_std": 1.5,
    "b_std": 0.05,
}


def _architecture(architecture, W_std=None, b_std=None):
    """An Architecture from a dict, an Architecture or None, with W_std/b_std if given."""
    from .architecture import Architecture
    from .kernels.gradients import hyperparameters, with_hyperparameters

    try:
        if architecture is None:
            arch = Architecture.from_dict(DEFAULT_ARCHITECTURE)
        elif isinstance(architecture, dict):
            arch = Architecture.from_dict(architecture)
        elif isinstance(architecture, Architecture):
            arch = architecture
        else:
            raise ValueError(
                "architecture: expected a dict (an architecture block), an Architecture or "
                f"None, got {type(architecture).__name__}"
            )
    except WideinfError as exc:
        raise ValueError(str(exc)) from None
    if W_std is None and b_std is None:
        return arch
    current = hyperparameters(arch)
    W_std = current["W_std"] if W_std is None else W_std
    b_std = current["b_std"] if b_std is None else b_std
    return with_hyperparameters(arch, W_std, b_std)


class _NetworkKernel(Kernel):
    """Shared body of :class:`NNGPKernel` and :class:`NTKKernel` (``_which`` picks the matrix)."""

    _which = "nngp"

    def __init__(
        self,
        architecture=None,
        W_std=1.0,
        b_std=0.1,
        W_std_bounds=(1e-2, 1e2),
        b_std_bounds=(1e-4, 1e2),
    ):
        self.architecture = architecture
        self.W_std = W_std
        self.b_std = b_std
        self.W_std_bounds = W_std_bounds
        self.b_std_bounds = b_std_bounds

    @property
    def hyperparameter_W_std(self):
        return Hyperparameter("W_std", "numeric", self.W_std_bounds)

    @property
    def hyperparameter_b_std(self):
        return Hyperparameter("b_std", "numeric", self.b_std_bounds)

    def _arch(self):
        return _architecture(self.architecture, self.W_std, self.b_std)

    def __call__(self, X, Y=None, eval_gradient=False):
        """Kernel k(X, Y) (n_X, n_Y); with ``eval_gradient``, also its gradient with respect to
        the free log-hyperparameters (n_X, n_X, n_free), in the order of ``theta``."""
        X = np.atleast_2d(np.asarray(X, dtype=float))
        if eval_gradient and Y is not None:
            raise ValueError("Gradient can only be evaluated when Y is None.")
        arch = self._arch()
        if not eval_gradient:
            Y = None if Y is None else np.atleast_2d(np.asarray(Y, dtype=float))
            return getattr(_call(arch.kernel, X, Y), self._which)
        from .kernels.gradients import kernel_gradients

        grads = _call(kernel_gradients, arch, X)
        k = getattr(grads, self._which)  # (n, n)
        d = getattr(grads, "d_" + self._which)  # (2, n, n), along (W_std, b_std)
        free = [p for p, h in enumerate(self.hyperparameters) if not h.fixed]
        return k, np.moveaxis(d[free], 0, -1)  # (n, n, n_free)

    def diag(self, X):
        """``k(x, x)`` for each row of X, in O(n) (the one-point recursion)."""
        from .kernels.gradients import kernel_gradients

        X = np.atleast_2d(np.asarray(X, dtype=float))
        return getattr(_call(kernel_gradients, self._arch(), X, diagonal=True), self._which)

    def is_stationary(self):
        return False

    def __repr__(self):
        return f"{type(self).__name__}(W_std={self.W_std:.3g}, b_std={self.b_std:.3g})"


def _call(fn, *args, **kwargs):
    """Run a wideinf function, turning its errors into the ValueError scikit-learn expects."""
    try:
        return fn(*args, **kwargs)
    except WideinfError as exc:
        raise ValueError(str(exc)) from None


class NNGPKernel(_NetworkKernel):
    """The NNGP kernel of an infinitely wide network, a scikit-learn GP kernel.

    Parameters
    ----------
    architecture : dict, Architecture or None
        The network (an ``architecture:`` block); None: Dense-ReLU-Dense-ReLU-Dense.
    W_std, b_std : float, default 1.0, 0.1
        Weight and bias standard deviations (replace the block's defaults); > 0.
    W_std_bounds, b_std_bounds : pair of float or "fixed", default (1e-2, 1e2), (1e-4, 1e2)
        Search bounds of the hyperparameters, or "fixed".
    """

    _which = "nngp"


class NTKKernel(_NetworkKernel):
    """The neural tangent kernel as a scikit-learn GP kernel (the NTK-GP of He et al. 2020).

    Parameters as :class:`NNGPKernel`.
    """

    _which = "ntk"


class _InfiniteWidthEstimator(BaseEstimator):
    """Shared parameters and fit of the two estimators."""

    def __init__(
        self,
        architecture=None,
        kernel="nngp",
        time=math.inf,
        diag_reg=1e-6,
        diag_reg_relative=True,
    ):
        self.architecture = architecture
        self.kernel = kernel
        self.time = time
        self.diag_reg = diag_reg
        self.diag_reg_relative = diag_reg_relative

    def _fit_targets(self, X, targets):
        from .evidence import log_marginal_likelihood
        from .infer import KERNELS

        if self.kernel not in KERNELS:
            raise ValueError(f"kernel: expected one of {KERNELS}, got {self.kernel!r}")
        arch = _architecture(self.architecture)
        matrix = getattr(_call(arch.kernel, X), "nngp" if self.kernel == "nngp" else "ntk")
        self.X_train_ = X
        self.y_train_ = targets
        exact = self.kernel != "ntk" or math.isinf(self.time)
        self.log_marginal_likelihood_ = (
            _call(log_marginal_likelihood, matrix, targets, **self._reg()).value if exact else None
        )
        return self

    def _reg(self):
        return {"diag_reg": self.diag_reg, "diag_reg_relative": self.diag_reg_relative}

    def _infer(self, X):
        from .infer import infer

        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        return _call(
            infer,
            _architecture(self.architecture),
            self.X_train_,
            self.y_train_,
            X,
            kernel=self.kernel,
            time=self.time,
            evidence=False,
            **self._reg(),
        )


class InfiniteWidthRegressor(RegressorMixin, _InfiniteWidthEstimator):
    """Regression by an infinitely wide network (NNGP posterior, NTK ensemble or NTK-GP).

    Parameters
    ----------
    architecture : dict, Architecture or None
        The network; None: Dense-ReLU-Dense-ReLU-Dense (W_std 1.5, b_std 0.05).
    kernel : {"nngp", "ntk", "ntk-gp"}, default "nngp"
    time : float, default inf
        Gradient-flow time of the NTK ensemble (``kernel="ntk"``).
    diag_reg : float, default 1e-6
        Added to the train-train matrix's diagonal (the noise variance of the GP models).
    diag_reg_relative : bool, default True
        Multiply diag_reg by the mean of that diagonal.

    Attributes
    ----------
    log_marginal_likelihood_ : float or None
        Evidence of the training targets (None for the NTK ensemble at a finite time).
    """

    def fit(self, X, y):
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True)
        return self._fit_targets(X, np.asarray(y, dtype=float))

    def predict(self, X, return_std=False):
        """Mean of f at X (n,) or (n, n_outputs); with ``return_std``, also its sd (same shape)."""
        outcome = self._infer(X)
        if not return_std:
            return outcome.mean
        sd = (
            outcome.sd
            if outcome.mean.ndim == 1
            else np.repeat(outcome.sd[:, None], outcome.mean.shape[1], axis=1)
        )
        return outcome.mean, sd

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


class InfiniteWidthClassifier(ClassifierMixin, _InfiniteWidthEstimator):
    """Classification by an infinitely wide network: regression on one-hot targets.

    The targets are 0.9 for the true class and -0.1 for the others (Lee et al. 2018); the
    predicted class has the largest score. Parameters as :class:`InfiniteWidthRegressor`.

    Attributes
    ----------
    classes_ : ndarray, shape (C,)
    log_marginal_likelihood_ : float or None
    """

    def fit(self, X, y):
        from .infer import one_hot

        X, y = validate_data(self, X, y)
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        if self.classes_.size < 2:
            raise ValueError(
                f"classification needs at least 2 classes; y has one class ({self.classes_[0]!r})"
            )
        return self._fit_targets(X, one_hot(y, self.classes_))

    def decision_function(self, X):
        """Per-class scores (n, C); for two classes ``score_1 - score_0`` (n,), as scikit-learn
        expects (positive for ``classes_[1]``)."""
        scores = self._infer(X).mean  # (n, C)
        return scores[:, 1] - scores[:, 0] if scores.shape[1] == 2 else scores

    def predict(self, X):
        scores = self._infer(X).mean  # (n, C)
        return self.classes_[np.argmax(scores, axis=1)]
