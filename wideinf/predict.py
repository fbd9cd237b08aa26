"""Predictions of infinitely wide networks: the NNGP posterior, the NTK ensemble, the NTK-GP.

Formulas and references in docs/theory.md, "Predictions". X the N training inputs with targets
y, * the M test inputs, K the NNGP and Theta the NTK with blocks ``XX`` (N, N), ``*X`` (M, N),
``**`` (M, M); ``lambda`` (:func:`regularizer`) is added to the diagonal of the train-train matrix
inverted, and also drives the finite-time dynamics, so ``t -> inf`` meets the closed form.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.linalg

from .errors import ConfigError, NumericalError

__all__ = ["Prediction", "regularizer", "gp_posterior", "ntk_ensemble", "ntk_train_loss"]
__all__ += ["factorize", "RCOND_MIN"]

# Smallest reciprocal condition number (1-norm) of a regularized train-train matrix that we
# invert: below it a solve loses more than about 12 of float64's 16 digits.
RCOND_MIN = 1e-12


@dataclass(frozen=True)
class Prediction:
    """Gaussian predictions at M test points.

    Attributes
    ----------
    mean : ndarray, shape (M,) or (T, M), or (M, C) / (T, M, C) for C target columns
        Mean of the latent f (no observation noise), one row per time t.
    cov : ndarray, shape (M, M), (M,), (T, M, M) or (T, M), or None
        Covariance of f, or its diagonal if k** was given as one; None for a mean alone.
    times : ndarray, shape (T,), or None (GP posterior)
    """

    mean: np.ndarray
    cov: np.ndarray
    times: np.ndarray | None = None

    @property
    def var(self) -> np.ndarray:
        """Variances of f, shape (M,) or (T, M) (shared by all target columns)."""
        if self.cov is None:
            raise ValueError("this prediction has a mean only (no test-test kernel was given)")
        if self.cov.ndim == (1 if self.times is None else 2):
            return self.cov
        return np.diagonal(self.cov, axis1=-2, axis2=-1)

    @property
    def std(self) -> np.ndarray:
        """Standard deviations of f, shape (M,) or (T, M) (rounding below zero clipped)."""
        return np.sqrt(np.clip(self.var, 0.0, None))


def regularizer(matrix: np.ndarray, diag_reg: float, relative: bool = True) -> float:
    """The ``lambda`` added to the diagonal: ``diag_reg * trace(M) / N`` if relative, else ``diag_reg``."""
    if not (diag_reg >= 0 and math.isfinite(diag_reg)):
        raise ConfigError(f"diag_reg: must be a finite number >= 0, got {diag_reg!r}")
    return float(diag_reg * np.trace(matrix) / matrix.shape[0] if relative else diag_reg)


def gp_posterior(
    k_train: np.ndarray,
    k_cross: np.ndarray,
    k_test: np.ndarray | None,
    y: np.ndarray,
    *,
    diag_reg: float = 0.0,
    diag_reg_relative: bool = True,
    name: str = "NNGP",
    advice: str | None = None,
    factor=None,
) -> Prediction:
    """GP posterior of f at test points: the NNGP posterior (K) or the NTK-GP (Theta).

    ``mean = k*X (kXX + lambda I)^-1 y``, ``cov = k** - k*X (kXX + lambda I)^-1 kX*``
    (Rasmussen & Williams 2006, Alg. 2.1).

    Parameters
    ----------
    k_train, k_cross : ndarray, shapes (N, N) and (M, N); kXX and k*X
    k_test : ndarray, shape (M, M) or (M,), or None
        k**, or its diagonal (then only variances are returned), or None for the mean alone.
    y : ndarray, shape (N,) or (N, C); C target columns share the covariance
    diag_reg, diag_reg_relative, name, advice
        As :func:`factorize`; ``factor``: its result, when already computed.

    Returns
    -------
    Prediction: ``mean`` (M,) or (M, C), ``cov`` (M, M), (M,) or None.
    """
    mean_only = k_test is None
    k_test = np.zeros(len(k_cross)) if mean_only else k_test
    k_train, k_cross, k_test, y = _check_shapes(k_train, k_cross, k_test, y)
    if factor is None:
        factor = factorize(k_train, diag_reg, diag_reg_relative, name, advice)
    mean = k_cross @ scipy.linalg.cho_solve(factor, y)  # (M,) or (M, C)
    if mean_only:
        return Prediction(mean, None)
    alpha = scipy.linalg.cho_solve(factor, k_cross.T)  # (N, M) = (kXX + lambda)^-1 kX*
    if k_test.ndim == 1:
        cov = k_test - np.einsum("mn,nm->m", k_cross, alpha)  # (M,)
    else:
        cov = k_test - k_cross @ alpha  # (M, M)
        cov = 0.5 * (cov + cov.T)
    return Prediction(mean, cov)


def ntk_ensemble(
    ntk_train: np.ndarray,
    ntk_cross: np.ndarray,
    nngp_train: np.ndarray,
    nngp_cross: np.ndarray,
    nngp_test: np.ndarray,
    y: np.ndarray,
    times=(math.inf,),
    *,
    diag_reg: float = 0.0,
    diag_reg_relative: bool = True,
    factor=None,
) -> Prediction:
    """Mean and covariance of infinitely wide networks trained by gradient flow for times t.

    Lee et al. 2019 (arXiv:1902.06720), Eq. 16, with ``Theta = ThetaXX + lambda I``:
    ``A_t = Theta*X Theta^-1 (I - exp(-Theta t / N))``, ``mean_t = A_t y``,
    ``cov_t = K** + A_t KXX A_t^T - (A_t KX* + K*X A_t^T)``. Finite t by one eigh,
    ``A_t = Theta*X V diag(g_t(w)) V^T`` (:func:`_flow_gain`); t = inf by one Cholesky.

    Parameters
    ----------
    ntk_train, ntk_cross : ndarray, shapes (N, N) and (M, N); ThetaXX and Theta*X
    nngp_train, nngp_cross : ndarray, shapes (N, N) and (M, N); KXX and K*X
    nngp_test : ndarray, shape (M, M) or (M,); K** or its diagonal (then only variances)
    y : ndarray, shape (N,) or (N, C)
    times : sequence of float, default (inf,)
        Gradient-flow times t >= 0 (steps x learning rate), or inf.
    diag_reg, diag_reg_relative
        Regularizer of ThetaXX (:func:`regularizer`); ``factor``: ``factorize(ntk_train,
        diag_reg, diag_reg_relative, "NTK")``, when already computed.

    Returns
    -------
    Prediction: ``mean`` (T, M) or (T, M, C), ``cov`` (T, M, M) or (T, M), ``times`` (T,).
    """
    ntk_train, ntk_cross, nngp_test, y = _check_shapes(ntk_train, ntk_cross, nngp_test, y)
    nngp_train, nngp_cross, _, _ = _check_shapes(nngp_train, nngp_cross, nngp_test, y)
    times = _times(times)
    n, m = y.shape[0], ntk_cross.shape[0]
    a_t = np.empty((times.size, m, n))  # (T, M, N)
    infinite = np.isinf(times)
    if infinite.any():
        if factor is None:
            factor = factorize(ntk_train, diag_reg, diag_reg_relative, "NTK")
        a_t[infinite] = scipy.linalg.cho_solve(factor, ntk_cross.T).T  # (M, N)
    if (~infinite).any():
        w, v = _eigh(ntk_train, diag_reg, diag_reg_relative)  # (N,), (N, N)
        cross_v = ntk_cross @ v  # (M, N)
        for i in np.flatnonzero(~infinite):
            a_t[i] = (cross_v * _flow_gain(w, times[i] / n)) @ v.T  # (M, N)
    mean = a_t @ y  # (T, M) or (T, M, C)
    a_k = a_t @ nngp_train  # (T, M, N) = A_t KXX
    if nngp_test.ndim == 1:
        quad = np.einsum("tmn,tmn->tm", a_k, a_t)  # diag(A KXX A^T)
        cross = np.einsum("tmn,mn->tm", a_t, nngp_cross)  # diag(A KX*)
        cov = nngp_test[None, :] + quad - 2.0 * cross  # (T, M)
    else:
        a_kx = a_t @ nngp_cross.T  # (T, M, M) = A_t KX*
        cov = nngp_test[None] + a_k @ np.swapaxes(a_t, 1, 2) - a_kx - np.swapaxes(a_kx, 1, 2)
        cov = 0.5 * (cov + np.swapaxes(cov, 1, 2))  # (T, M, M)
    return Prediction(mean, cov, times)


def ntk_train_loss(
    ntk_train: np.ndarray,
    nngp_train: np.ndarray,
    y: np.ndarray,
    times,
    *,
    diag_reg: float = 0.0,
    diag_reg_relative: bool = True,
) -> np.ndarray:
    """Expected training loss of the NTK ensemble, ``E[(1/2N) |f_t(X) - y|^2]``, at times t.

    ``(tr(E_t KXX E_t) + |E_t y|^2) / 2N`` with ``E_t = exp(-Theta t / N)`` (Lee et al. 2019).

    ``ntk_train`` (regularized as in :func:`ntk_ensemble`) and ``nngp_train``, (N, N): ThetaXX
    and KXX; y (N,) or (N, C), the loss summed over the C columns; times (T,), t >= 0 or inf.
    Returns shape (T,).
    """
    # (the train-train blocks pass the shape checks of a cross and a test block with M = N)
    ntk_train, _, nngp_train, y = _check_shapes(ntk_train, ntk_train, nngp_train, y)
    times, n = _times(times), y.shape[0]
    w, v = _eigh(ntk_train, diag_reg, diag_reg_relative)  # (N,), (N, N)
    k_eig = v.T @ nngp_train @ v  # (N, N), KXX in the eigenbasis of Theta
    y_eig = (v.T @ y).reshape(n, -1)  # (N, C)
    out = np.empty(times.size)  # (T,)
    for i, t in enumerate(times):
        decay = np.exp(-w * t / n) if math.isfinite(t) else (w <= 0).astype(float)  # (N,)
        fit = decay[:, None] * y_eig  # (N, C)
        out[i] = (y_eig.shape[1] * decay**2 @ np.diagonal(k_eig) + np.sum(fit * fit)) / (2 * n)
    return out


# ----------------------------------------------------------------------------- helpers


def _flow_gain(w: np.ndarray, s: float) -> np.ndarray:
    """``g(w) = (1 - exp(-w s)) / w``, with its limit ``s`` at w = 0; w (N,), s = t / N."""
    ws = w * s
    small = np.abs(ws) < 1e-12
    safe_w = np.where(small, 1.0, w)
    return np.where(small, s, -np.expm1(-ws) / safe_w)  # (N,)


def _times(times) -> np.ndarray:
    """Times t >= 0 or inf as a float array, shape (T,)."""
    times = np.atleast_1d(np.asarray(times, dtype=float))
    if times.ndim != 1 or np.any(np.isnan(times)) or np.any(times < 0):
        raise ConfigError(f"times: expected numbers >= 0 (or inf), got {times.tolist()}")
    return times


def _check_shapes(k_train, k_cross, k_test, y):
    """The kernel blocks and targets as float64 arrays, after checking shapes and finiteness."""
    k_train, k_cross, k_test, y = (
        np.asarray(a, dtype=np.float64) for a in (k_train, k_cross, k_test, y)
    )
    n = y.shape[0] if y.ndim in (1, 2) else -1
    if y.ndim not in (1, 2) or n == 0:
        raise ConfigError(f"y: expected shape (N,) or (N, C) with N >= 1, got {y.shape}")
    if k_train.shape != (n, n):
        raise ConfigError(f"train-train kernel: expected shape ({n}, {n}), got {k_train.shape}")
    if k_cross.ndim != 2 or k_cross.shape[1] != n:
        raise ConfigError(f"test-train kernel: expected shape (M, {n}), got {k_cross.shape}")
    m = k_cross.shape[0]
    if k_test.shape not in ((m,), (m, m)):
        raise ConfigError(
            f"test-test kernel: expected shape ({m}, {m}) or ({m},), got {k_test.shape}"
        )
    for name, arr in (("kernel", k_train), ("kernel", k_cross), ("kernel", k_test), ("y", y)):
        if not np.all(np.isfinite(arr)):
            raise NumericalError(f"{name}: contains NaN or infinite values")
    return k_train, k_cross, k_test, y


def _regularized(matrix, diag_reg, relative):
    out = matrix.copy()
    out[np.diag_indices_from(out)] += regularizer(matrix, diag_reg, relative)
    return out


def _advice(diag_reg, relative) -> str:
    kind = "relative" if relative else "absolute"
    return f"increase diag_reg (now {diag_reg:g}, {kind}), e.g. diag_reg: 1e-4"


def factorize(
    matrix, diag_reg: float = 0.0, relative: bool = True, name: str = "NNGP", advice=None
):
    """Cholesky factor of ``matrix + lambda I`` (cho_solve format), with a condition check.

    ``lambda = regularizer(matrix, diag_reg, relative)``; ``name`` and ``advice`` (default:
    increase ``diag_reg``) go into the NumericalError raised if the matrix is not positive
    definite or its reciprocal condition number is below :data:`RCOND_MIN`.
    """
    reg = _regularized(matrix, diag_reg, relative)
    advice = advice or _advice(diag_reg, relative)
    anorm = float(np.abs(reg).sum(axis=0).max())  # before the factor overwrites reg
    try:
        factor = scipy.linalg.cho_factor(reg, lower=True, overwrite_a=True, check_finite=False)
    except np.linalg.LinAlgError:
        raise NumericalError(
            f"the {name} train-train matrix is not positive definite (duplicate or nearly "
            f"identical training inputs?); {advice}"
        ) from None
    rcond, info = scipy.linalg.lapack.dpocon(factor[0], anorm, uplo="L")
    if info != 0 or not rcond >= RCOND_MIN:
        raise NumericalError(
            f"the {name} train-train matrix is ill-conditioned (reciprocal condition number "
            f"{rcond:.1e} < {RCOND_MIN:g}); {advice}"
        )
    return factor


def _eigh(matrix, diag_reg, relative):
    """Eigenvalues (N,) and eigenvectors (N, N) of ``matrix + lambda I``, checked PSD."""
    w, v = np.linalg.eigh(_regularized(matrix, diag_reg, relative))
    scale = max(float(np.abs(w).max()), np.finfo(float).tiny)
    tol = 100 * matrix.shape[0] * np.finfo(float).eps * scale
    if w.min() < -tol:
        raise NumericalError(
            f"the NTK train-train matrix has a negative eigenvalue ({w.min():.2e}); it is not "
            f"a valid kernel matrix; {_advice(diag_reg, relative)}"
        )
    return np.clip(w, 0.0, None), v
