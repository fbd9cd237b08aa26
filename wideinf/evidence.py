"""Hyperparameters by marginal likelihood: fit W_std, b_std and the noise level to data.

The NNGP (or NTK-GP) is a Gaussian-process prior on the network's outputs, so the data
themselves say which hyperparameters fit them: the log marginal likelihood (the evidence)

    log p(y | X) = -1/2 y^T Ky^-1 y - 1/2 log det Ky - N/2 log 2 pi,   Ky = k(X, X) + lambda I

(Rasmussen & Williams 2006, Eq. 2.30; :func:`wideinf.predict.log_marginal_likelihood`) is
maximised over ``log W_std``, ``log b_std`` and, optionally, ``log lambda`` (the noise variance),
by L-BFGS-B with exact gradients: R&W Eq. 5.9 contracted with the kernel's derivatives, which
:func:`wideinf.kernels.gradients.kernel_gradients` computes in forward mode.

``kernel="nngp"`` uses the NNGP (the prior of the network at initialisation: Lee et al. 2018),
``"ntk"`` the NTK as a GP covariance (the NTK-GP of He et al. 2020). The hyperparameters are the
architecture block's defaults; a dense layer that sets its own ``W_std`` or ``b_std`` keeps it.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass

import numpy as np

from .errors import ConfigError, NumericalError
from .kernels.gradients import (
    HYPERPARAMETERS,
    hyperparameters,
    kernel_gradients,
    with_hyperparameters,
)
from .predict import log_marginal_likelihood

__all__ = ["FITTABLE", "BOUNDS", "Fit", "evidence", "fit_hyperparameters"]

FITTABLE = HYPERPARAMETERS + ("noise",)

# Search box of each hyperparameter (noise is a variance, in the units of y^2).
BOUNDS = {"W_std": (1e-2, 1e2), "b_std": (1e-4, 1e2), "noise": (1e-8, 1e4)}

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


def _one_blas_thread():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - installed with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


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
    with _one_blas_thread():
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
