"""Kernel regression at scale: ``(K + lambda I) a = y`` by preconditioned conjugate gradients.

The matrix is never held by one process: each product ``K V`` is a set of Dask tasks, one per
block row of the Zarr store, each reading its row of chunks and multiplying it into ``V``
(N, C) for all C right-hand sides (classes) at once. The preconditioner is a randomized
Nystrom approximation of rank r (Frangella, Tropp & Udell 2023, "Randomized Nystrom
preconditioning", SIAM J. Matrix Anal. Appl.): with ``r`` random landmark rows S,
``C = K[:, S]`` and ``W = K[S, S]``, ``K ~ U diag(Lambda) U^T`` (thin SVD of
``C chol(W)^-T``) and ``P = U diag(Lambda) U^T + lambda I``, applied exactly as
``P^-1 v = U [(Lambda + lambda)^-1 - 1/lambda] U^T v + v / lambda``. It removes the large
eigenvalues that make a kernel matrix ill-conditioned, which is where plain CG stalls.

Stopping rule: every column's relative residual ``|y - (K + lambda I) a| / |y|`` below ``tol``
(the residual is recomputed from scratch at the end and reported), or ``maxiter`` iterations.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import scipy.linalg

from ..errors import ConfigError, NumericalError

__all__ = ["CGInfo", "pcg", "NystromPreconditioner", "solve", "cross_multiply"]


@dataclass(frozen=True)
class CGInfo:
    """How a conjugate-gradient solve went.

    Attributes
    ----------
    iterations : int
        Conjugate-gradient steps taken.
    residual : ndarray, shape (C,)
        Final relative residual of each right-hand side, recomputed from scratch.
    converged : bool
        Every residual below ``tol``.
    seconds : float
    rank : int
        Rank of the Nystrom preconditioner (0: none).
    regularizer : float
        The lambda added to the diagonal.
    """

    iterations: int
    residual: np.ndarray
    converged: bool
    seconds: float
    rank: int
    regularizer: float


def pcg(matvec, b, precondition=None, *, tol: float = 1e-8, maxiter: int = 1000, callback=None):
    """Solve ``A x = b`` for symmetric positive definite A, every column of b at once.

    Parameters
    ----------
    matvec : callable, (N, C) -> (N, C)
        ``V -> A V``.
    b : array, shape (N, C)
    precondition : callable, (N, C) -> (N, C), optional
        ``V -> P^-1 V`` for a symmetric positive definite P close to A.
    tol : float
        Stop when every column has ``|b - A x| / |b| < tol``.
    callback : callable, optional
        Called with (iteration, relative residuals (C,)).

    Returns
    -------
    x : ndarray, shape (N, C)
    iterations : int
    """
    precondition = precondition or (lambda v: v)
    b = np.asarray(b, dtype=np.float64)
    norm_b = np.linalg.norm(b, axis=0)
    norm_b[norm_b == 0] = 1.0
    x = np.zeros_like(b)
    r = b.copy()
    z = precondition(r)
    p = z.copy()
    rz = np.einsum("ij,ij->j", r, z)
    for it in range(1, maxiter + 1):
        ap = matvec(p)
        pap = np.einsum("ij,ij->j", p, ap)
        active = pap > 0  # a converged column has p = 0: leave it alone
        alpha = np.where(active, rz / np.where(active, pap, 1.0), 0.0)
        x += alpha * p
        r -= alpha * ap
        rel = np.linalg.norm(r, axis=0) / norm_b
        if callback is not None:
            callback(it, rel)
        if np.all(rel < tol):
            return x, it
        z = precondition(r)
        rz_new = np.einsum("ij,ij->j", r, z)
        beta = np.where(rz > 0, rz_new / np.where(rz > 0, rz, 1.0), 0.0)
        p = z + beta * p
        rz = rz_new
    return x, maxiter


class NystromPreconditioner:
    """``P^-1`` for ``P = U diag(Lambda) U^T + lambda I``, a rank-r Nystrom approximation of K.

    Parameters
    ----------
    columns : array, shape (N, r)
        ``K[:, S]`` for the landmark indices S.
    landmarks : array of int, shape (r,)
    regularizer : float
        The lambda of the system ``K + lambda I``.
    """

    def __init__(self, columns, landmarks, regularizer: float):
        c = np.asarray(columns, dtype=np.float64)  # (N, r)
        w = c[landmarks]  # (r, r)
        w = (w + w.T) / 2
        shift = np.finfo(float).eps * max(1.0, float(np.linalg.norm(c)))
        factor = scipy.linalg.cholesky(w + shift * np.eye(len(landmarks)), lower=True)
        b = scipy.linalg.solve_triangular(factor, c.T, lower=True).T  # C L^-T, (N, r)
        u, sigma, _ = np.linalg.svd(b, full_matrices=False)
        self.u = u  # (N, r)
        self.eigenvalues = np.maximum(sigma * sigma - shift, 0.0)  # (r,)
        self.regularizer = float(regularizer)

    def __call__(self, v):
        lam = self.regularizer
        coeff = 1.0 / (self.eigenvalues + lam) - 1.0 / lam  # (r,)
        return self.u @ (coeff[:, None] * (self.u.T @ v)) + v / lam


def solve(
    kernel,
    y,
    diag_reg: float = 1e-4,
    relative: bool = True,
    *,
    name: str = "nngp",
    tol: float = 1e-8,
    maxiter: int = 2000,
    rank: int = 500,
    seed: int = 0,
    scheduler: str | None = None,
    hold: bool | None = None,
    callback=None,
):
    """Solve ``(K + lambda I) a = y`` by Nystrom-preconditioned conjugate gradients.

    Parameters
    ----------
    kernel : ndarray (N, N), or path of a symmetric wideinf ``.zarr`` store
    y : array, shape (N,) or (N, C)
    diag_reg : float
        lambda, or with ``relative`` lambda = diag_reg * trace(K) / N (Neural Tangents' rule).
    name : {"nngp", "ntk"}
        Which array of a store.
    rank : int
        Landmarks of the preconditioner (0 for plain CG).
    hold : bool, optional
        Keep a store's block rows in the workers' memory for the whole solve instead of
        reading them from disk for every product; default: when they fit (see
        :class:`~wideinf.scale.blocks.StoreOperator`).

    Returns
    -------
    a : ndarray, shape of y
    info : CGInfo
    """
    t0 = time.perf_counter()
    y = np.asarray(y, dtype=np.float64)
    single = y.ndim == 1
    b = y[:, None] if single else y  # (N, C)
    with _operator(kernel, name, scheduler, hold) as op:
        if op.shape != (b.shape[0], b.shape[0]):
            raise ConfigError(f"kernel of shape {op.shape} does not match {b.shape[0]} targets")
        diagonal = op.diagonal()
        lam = float(diag_reg) * (float(diagonal.sum()) / len(diagonal) if relative else 1.0)
        if not lam > 0:
            raise NumericalError("conjugate gradients need diag_reg > 0 (K + lambda I must be PD)")

        def matvec(v):
            return op.matvec(v) + lam * v

        precondition = None
        rank = int(min(rank, b.shape[0]))
        if rank > 0:
            landmarks = np.sort(np.random.default_rng(seed).choice(b.shape[0], rank, False))
            precondition = NystromPreconditioner(op.rows(landmarks).T, landmarks, lam)
        a, iterations = pcg(matvec, b, precondition, tol=tol, maxiter=maxiter, callback=callback)
        residual = np.linalg.norm(b - matvec(a), axis=0) / np.maximum(
            np.linalg.norm(b, axis=0), np.finfo(float).tiny
        )
    info = CGInfo(
        iterations, residual, bool(np.all(residual < 10 * tol)), time.perf_counter() - t0, rank, lam
    )
    return (a[:, 0] if single else a), info


def cross_multiply(kernel, a, *, name: str = "nngp", scheduler: str | None = None):
    """``K a`` for a (n1, n2) kernel (ndarray or store of test x train): the predicted mean."""
    a = np.asarray(a, dtype=np.float64)
    single = a.ndim == 1
    with _operator(kernel, name, scheduler) as op:
        out = op.matvec(a[:, None] if single else a)
    return out[:, 0] if single else out


def _operator(kernel, name, scheduler, hold=False):
    if isinstance(kernel, np.ndarray):
        return _ArrayOperator(kernel)
    from .blocks import StoreOperator

    return StoreOperator(kernel, name, scheduler, hold)


class _ArrayOperator:
    """An in-memory kernel behind the operator interface (tests, small N)."""

    def __init__(self, matrix):
        self.matrix = matrix
        self.shape = matrix.shape

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def matvec(self, v):
        return self.matrix @ v

    def rows(self, index):
        return np.asarray(self.matrix[index], dtype=np.float64)

    def diagonal(self):
        return np.diag(self.matrix).astype(np.float64)
