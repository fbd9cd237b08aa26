"""Hyperparameters by marginal likelihood: fit W_std, b_std and the noise level to data.

The NNGP (or NTK-GP) is a Gaussian-process prior on the network's outputs, so the data
themselves say which hyperparameters fit them: the log marginal likelihood (the evidence)

    log p(y | X) = -1/2 y^T Ky^-1 y - 1/2 log det Ky - N/2 log 2 pi,   Ky = k(X, X) + lambda I

(Rasmussen & Williams 2006, Eq. 2.30; :func:`log_marginal_likelihood`) is
maximised over ``log W_std``, ``log b_std`` and, optionally, ``log lambda`` (the noise variance),
by L-BFGS-B with exact gradients: R&W Eq. 5.9 contracted with the kernel's derivatives, which
:func:`wideinf.kernels.gradients.kernel_gradients` computes in forward mode.

``kernel="nngp"`` uses the NNGP (the prior of the network at initialisation: Lee et al. 2018),
``"ntk"`` the NTK as a GP covariance (the NTK-GP of He et al. 2020). The hyperparameters are the
architecture block's defaults; a dense layer that sets its own ``W_std`` or ``b_std`` keeps it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import scipy.linalg

from .blas import one_blas_thread
from .errors import ConfigError, NumericalError
from .kernels.gradients import (
    HYPERPARAMETERS,
    hyperparameters,
    kernel_gradients,
    with_hyperparameters,
)
from .predict import factorize, regularizer

__all__ = [
    "FITTABLE",
    "BOUNDS",
    "Evidence",
    "log_marginal_likelihood",
    "Fit",
    "evidence",
    "fit_hyperparameters",
]

FITTABLE = HYPERPARAMETERS + ("noise",)

# Search box of each hyperparameter (noise is a variance, in the units of y^2).
BOUNDS = {"W_std": (1e-2, 1e2), "b_std": (1e-4, 1e2), "noise": (1e-8, 1e4)}

# ----------------------------------------------------------------------------- the evidence


class Evidence(NamedTuple):
    """Log marginal likelihood, its gradient, and ``alpha = (k + lambda I)^-1 y`` (N, C)."""

    value: float
    grad: np.ndarray
    alpha: np.ndarray


def log_marginal_likelihood(
    k_train: np.ndarray,
    y: np.ndarray,
    k_grad: np.ndarray | None = None,
    *,
    diag_reg: float = 0.0,
    diag_reg_relative: bool = True,
    name: str = "NNGP",
    factor=None,
) -> Evidence:
    """Log evidence of targets y under the GP prior ``f ~ N(0, k)`` with noise ``lambda I``.

    With ``Ky = kXX + lambda I = L L^T`` and ``alpha = Ky^-1 y`` (Rasmussen & Williams 2006,
    Eq. 2.30 and Alg. 2.1), summed over the C columns of y:
    ``log p(y) = -1/2 y^T alpha - sum_i log L_ii - N/2 log(2 pi)``.
    Its derivative along a direction theta of the kernel (R&W Eq. 5.9):
    ``d log p / d theta = 1/2 tr((alpha alpha^T - Ky^-1) dKy / d theta)``; a relative
    ``diag_reg`` moves with the trace, ``d lambda = diag_reg tr(dk) / N``. The last entry of the
    gradient is the derivative in ``log lambda`` (the noise variance, at fixed kernel).

    Parameters
    ----------
    k_train : ndarray, shape (N, N)
    y : ndarray, shape (N,) or (N, C)
    k_grad : ndarray, shape (P, N, N), optional
        Derivatives of k_train along P directions.
    diag_reg, diag_reg_relative
        The regularizer ``lambda`` (see :func:`wideinf.predict.regularizer`); the noise variance of the model.
    name : str, default "NNGP"
        Kernel name used in error messages.
    factor : optional
        ``factorize(k_train, diag_reg, diag_reg_relative, name)``, when already computed.

    Returns
    -------
    Evidence
        ``value`` (float); ``grad`` (P + 1,): derivatives along the P directions of ``k_grad``,
        then along ``log lambda`` (only when ``k_grad`` is given; otherwise empty);
        ``alpha`` (N, C).

    Raises
    ------
    NumericalError
        If ``Ky`` is not positive definite or too ill-conditioned; the message names diag_reg.
    """
    y2 = np.asarray(y, dtype=np.float64)
    y2 = y2[:, None] if y2.ndim == 1 else y2  # (N, C)
    k_train = _check_kernel(k_train, y2)
    n, c = y2.shape
    if factor is None:
        factor = factorize(k_train, diag_reg, diag_reg_relative, name)
    alpha = scipy.linalg.cho_solve(factor, y2)  # (N, C)
    log_det = 2.0 * np.log(np.diagonal(factor[0])).sum()
    value = float(
        -0.5 * np.sum(y2 * alpha) - 0.5 * c * log_det - 0.5 * n * c * math.log(2 * math.pi)
    )
    if k_grad is None:
        return Evidence(value, np.empty(0), alpha)
    # 1/2 tr((alpha alpha^T - C Ky^-1) dK) per direction, without forming the full inverse:
    # alpha^T dK alpha by products, and tr(Ky^-1 dK) from the lower triangle of Ky^-1.
    lower = _cholesky_inverse_lower(factor[0])  # (N, N), lower triangle of Ky^-1
    k_grad = np.asarray(k_grad, dtype=np.float64)
    quad = np.einsum("pic,ic->p", k_grad @ alpha, alpha)  # (P,)
    diag_inv = np.diagonal(lower)  # (N,)
    trace = 2.0 * np.einsum("ij,pij->p", lower, k_grad) - np.einsum("i,pii->p", diag_inv, k_grad)
    grad = 0.5 * quad - 0.5 * c * trace  # (P,)
    trace_g = 0.5 * float(np.sum(alpha * alpha) - c * diag_inv.sum())  # tr(G)
    if diag_reg_relative:
        grad += diag_reg * np.einsum("pii->p", k_grad) / n * trace_g
    lam = regularizer(k_train, diag_reg, diag_reg_relative)
    return Evidence(value, np.append(grad, lam * trace_g), alpha)


def _check_kernel(k_train, y):
    """float64 (N, N) kernel and (N, C) targets, finite, matching; else ConfigError/NumericalError."""
    k_train = np.asarray(k_train, dtype=np.float64)
    n = y.shape[0]
    if k_train.shape != (n, n) or n == 0:
        raise ConfigError(f"train-train kernel: expected shape ({n}, {n}), got {k_train.shape}")
    if not (np.all(np.isfinite(k_train)) and np.all(np.isfinite(y))):
        raise NumericalError("kernel or y: contains NaN or infinite values")
    return k_train


def _cholesky_inverse_lower(lower):
    """The lower triangle of ``(L L^T)^-1`` from the lower Cholesky factor (LAPACK potri)."""
    inv, info = scipy.linalg.lapack.dpotri(lower, lower=True)
    if info != 0:
        raise NumericalError("cannot invert the train-train matrix from its Cholesky factor")
    return np.tril(inv)


# ----------------------------------------------------------------------------- fitting

# Starting value of b_std when the architecture has none (log space cannot start at 0).
_B_STD_START = 0.1


@dataclass(frozen=True)
class Fit:
    """The result of :func:`fit_hyperparameters`.

    Attributes
    ----------
    architecture : Architecture
        The architecture with the fitted W_std and b_std.
    values : dict
        ``W_std``, ``b_std`` and ``noise`` (the noise variance; None when it was not fitted).
    log_marginal_likelihood, initial_log_marginal_likelihood : float
        The evidence at the fitted and at the starting values.
    evaluations : int
        Evidence-and-gradient evaluations.
    seconds : float
    converged : bool
    message : str
        The optimiser's own words.
    """

    architecture: object
    values: dict
    log_marginal_likelihood: float
    initial_log_marginal_likelihood: float
    evaluations: int
    seconds: float
    converged: bool
    message: str


def evidence(
    arch,
    x,
    y,
    *,
    kernel: str = "nngp",
    diag_reg: float = 0.0,
    diag_reg_relative: bool = True,
) -> tuple[float, np.ndarray]:
    """Log marginal likelihood of targets y and its gradient.

    Parameters
    ----------
    arch : Architecture
    x : ndarray, shape (N, d)
    y : ndarray, shape (N,) or (N, C)
        C columns are independent outputs sharing the kernel (their evidences add up).
    kernel : {"nngp", "ntk"}
    diag_reg, diag_reg_relative
        The noise variance ``lambda`` (see :func:`wideinf.predict.regularizer`).

    Returns
    -------
    value : float
    grad : ndarray, shape (3,)
        Derivatives in ``log W_std``, ``log b_std``, ``log lambda``.
    """
    if kernel not in ("nngp", "ntk"):
        raise ConfigError(f"kernel: expected 'nngp' or 'ntk', got {kernel!r}")
    grads = kernel_gradients(arch, x, ntk=kernel == "ntk")
    k, dk = (grads.nngp, grads.d_nngp) if kernel == "nngp" else (grads.ntk, grads.d_ntk)
    name = "NNGP" if kernel == "nngp" else "NTK"
    ev = log_marginal_likelihood(
        k, y, dk, diag_reg=diag_reg, diag_reg_relative=diag_reg_relative, name=name
    )
    return ev.value, ev.grad


def fit_hyperparameters(
    arch,
    x,
    y,
    fit=("W_std", "b_std"),
    *,
    kernel: str = "nngp",
    diag_reg: float = 0.0,
    diag_reg_relative: bool = True,
    noise: float | None = None,
    max_iter: int = 200,
) -> Fit:
    """Maximise the log marginal likelihood over the hyperparameters named in ``fit``.

    Parameters
    ----------
    arch : Architecture
        Its W_std and b_std are the starting point (b_std = 0 starts at 0.1).
    x : ndarray, shape (N, d)
    y : ndarray, shape (N,) or (N, C)
    fit : sequence of {"W_std", "b_std", "noise"}
        The hyperparameters to fit; the others stay fixed.
    kernel : {"nngp", "ntk"}
        Evidence of the NNGP or of the NTK-GP.
    diag_reg, diag_reg_relative
        The fixed noise when "noise" is not fitted (see :func:`wideinf.predict.regularizer`).
    noise : float, optional
        Starting noise variance when "noise" is fitted (default ``0.1 mean(y^2)``); the fitted
        noise is absolute and replaces diag_reg.
    max_iter : int, default 200
        L-BFGS-B iterations.

    Returns
    -------
    Fit
    """
    import scipy.optimize

    fit = tuple(dict.fromkeys(fit))
    unknown = [name for name in fit if name not in FITTABLE]
    if unknown or not fit:
        raise ConfigError(
            f"fit: cannot fit {unknown[0] if unknown else 'nothing'!r}; "
            f"choose among {', '.join(FITTABLE)}"
        )
    y = np.asarray(y, dtype=float)
    start = dict(hyperparameters(arch))
    if "b_std" in fit and start["b_std"] <= 0:
        start["b_std"] = _B_STD_START
    start["noise"] = noise if noise is not None else 0.1 * float(np.mean(y * y)) or 0.1
    index = [FITTABLE.index(name) for name in fit]
    theta0 = np.log([start[name] for name in fit])
    bounds = [tuple(np.log(BOUNDS[name])) for name in fit]
    fit_noise = "noise" in fit
    calls = {"n": 0, "last": None}

    def negative(theta):
        values = dict(start, **{name: math.exp(t) for name, t in zip(fit, theta)})
        trial = with_hyperparameters(arch, values["W_std"], values["b_std"])
        reg, rel = (values["noise"], False) if fit_noise else (diag_reg, diag_reg_relative)
        calls["n"] += 1
        try:
            value, grad = evidence(trial, x, y, kernel=kernel, diag_reg=reg, diag_reg_relative=rel)
        except NumericalError:
            if calls["last"] is None:
                raise
            # An ill-conditioned trial point: far worse than any seen, so the search backs off.
            return abs(calls["last"]) * 10 + 1e6, np.zeros_like(theta)
        calls["last"] = -value
        return -value, -grad[index]

    t0 = time.perf_counter()
    # The kernel's row blocks run on threads; BLAS stays on one thread meanwhile, so that the
    # two do not oversubscribe the cores (at these sizes a BLAS call gains little from more).
    with one_blas_thread():
        initial = -negative(theta0)[0]
        result = scipy.optimize.minimize(
            negative,
            theta0,
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"maxiter": max_iter},
        )
    values = dict(start, **{name: float(math.exp(t)) for name, t in zip(fit, result.x)})
    if not fit_noise:
        values["noise"] = None
    return Fit(
        architecture=with_hyperparameters(arch, values["W_std"], values["b_std"]),
        values=values,
        log_marginal_likelihood=float(-result.fun),
        initial_log_marginal_likelihood=float(initial),
        evaluations=calls["n"],
        seconds=time.perf_counter() - t0,
        converged=bool(result.success),
        message=str(result.message),
    )
