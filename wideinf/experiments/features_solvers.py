"""Minimum-norm interpolation of labels by features: L2 (through the Gram matrix) and L1 (an LP).

L2: ``w = F^T (F F^T)^+ y``, what gradient descent from zero finds, computed for the features
toy model from the N x N Gram matrix of its columns (:func:`fit_min_norm`; the model and the
meaning of each output are in :mod:`wideinf.experiments.features`).

L1: ``argmin ||w||_1`` subject to ``F w = y``, solved as the linear program
``min 1^T (u + v)`` s.t. ``F (u - v) = y``, ``u, v >= 0`` with scipy's HiGHS
(:func:`min_l1_interpolation`). Its minimiser need not be unique: any group of identical columns
can share its weight in any proportion, and distinct columns can tie too. Ties are broken by
taking the minimiser of least L2 norm, which is

- the one answer that does not depend on the order of the columns: the set of minimisers is
  convex and symmetric under permuting identical columns, and its least-L2 point is unique, so
  it splits the weight of a group of identical columns equally;
- the limit of the elastic net ``||w||_1 + eps ||w||_2^2`` as eps -> 0 (for every small enough
  eps it is exactly this point: Mangasarian & Meyer 1979, "Nonlinear perturbation of linear
  programs", SIAM J. Control Optim. 17).

A simplex vertex, which is what the LP solver returns, puts all the weight of a group on one
column, chosen by the order in which the columns are listed.

Finding the least-L2 minimiser: with any dual optimum ``lam`` (``|F^T lam| <= 1`` and
``y . lam`` = the optimal value), a feasible ``w`` is optimal iff it uses only columns with
``|f_j . lam| = 1``, each with the sign of ``f_j . lam`` (then ``||w||_1 = w . F^T lam =
y . lam``; complementary slackness gives the converse). On that face of the feasible set the
least-L2 point solves a least-distance program (Lawson & Hanson 1974, "Solving Least Squares
Problems", ch. 23), through non-negative least squares. Cost: the LP takes milliseconds, but
HiGHS's dual is often a vertex such as +-e_i, whose face holds every column; after merging
identical columns that is up to 2^(N-1) distinct ones for +-1 features, so this solver is for
small N (benchmarks/bench_features_l1.py). A strictly complementary dual would shrink the face.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.optimize

from ..errors import NumericalError

__all__ = ["fit_min_norm", "L1Solution", "min_l1_interpolation", "min_l2_on_face"]


def fit_min_norm(y, gram, cross, n_perfect: int, ns) -> dict:
    """The minimum-norm fit on the first N items, for every N in ``ns``, and its test margins.

    Parameters
    ----------
    y : ndarray, shape (N_max,)
        Labels +-1.
    gram : ndarray, shape (N_max, N_max)
        ``K = Rnd Rnd^T`` of the m random columns.
    cross : ndarray, shape (T, N_max)
        ``Xi Rnd^T``: fresh test coins (already multiplied by the test label) against ``Rnd``.
    n_perfect : int
        Perfect columns n_p (copies of y).
    ns : sequence of int, length A
        Training sizes, each at most N_max.

    Returns
    -------
    dict of ndarray, each shape (A,)
        ``share`` s = n_p (y . a); ``P`` = |v_P| and ``R`` = |v_R| (the lengths of the weighted
        sums of perfect and random features on the training set); ``random_along_y`` =
        (v_R . y) / |y|^2; ``weight_sq_perfect`` = s^2 / n_p and ``weight_sq_random`` =
        a^T K a (sums of squared weights); ``accuracy``, the fraction of test margins
        ``s + xi . w_R = s + cross a`` above zero (ties count half); ``residual`` =
        |G a - y| / |y|, where a = G^+ y and G = n_p y y^T + K.
    """
    g = gram + n_perfect * np.outer(y, y)  # (N_max, N_max)
    try:
        factor = scipy.linalg.cholesky(g, lower=True)  # leading blocks factor leading blocks
    except scipy.linalg.LinAlgError:
        factor = None
    keys = ("share", "P", "R", "random_along_y", "weight_sq_perfect", "weight_sq_random")
    out = {k: np.empty(len(ns)) for k in keys + ("accuracy", "residual")}
    for i, n in enumerate(ns):
        yn, gn, kn = y[:n], g[:n, :n], gram[:n, :n]
        if factor is not None:
            a = scipy.linalg.cho_solve((factor[:n, :n], True), yn)  # (n,)
        else:
            a = _pinv_solve(gn, yn)
        s = float(n_perfect * (yn @ a))
        v_r = kn @ a  # (n,)
        norm_y = math.sqrt(n)  # |y| for labels +-1
        margin = s + cross[:, :n] @ a  # (T,)
        out["share"][i] = s
        out["P"][i] = abs(s) * norm_y
        out["R"][i] = float(np.linalg.norm(v_r))
        out["random_along_y"][i] = float(v_r @ yn) / n
        out["weight_sq_perfect"][i] = s * s / n_perfect
        out["weight_sq_random"][i] = float(a @ v_r)
        out["accuracy"][i] = np.mean((margin > 0) + 0.5 * (margin == 0))
        out["residual"][i] = float(np.linalg.norm(gn @ a - yn)) / norm_y
    return out


def _pinv_solve(g, y):
    """``G^+ y`` by least squares, for a Gram matrix that is not positive definite."""
    a, *_ = scipy.linalg.lstsq(g, y, cond=1e-12)
    if not np.all(np.isfinite(a)):
        raise NumericalError("the feature Gram matrix could not be solved; raise n_features")
    return a


# Relative tolerance on |f_j . lam| = 1 when reading the optimal face off the LP dual.
_FACE_TOL = 1e-7


@dataclass(frozen=True)
class L1Solution:
    """A minimum-L1-norm interpolant.

    Attributes
    ----------
    w : ndarray, shape (M,)
        The least-L2 minimiser (the tie-break of this module).
    vertex : ndarray, shape (M,)
        The basic optimal solution the LP solver returned (one of possibly many minimisers).
    value : float
        The minimum ``||w||_1``.
    dual : ndarray, shape (N,)
        A dual optimum ``lam``: ``|F^T lam| <= 1`` and ``y . lam = value``.
    """

    w: np.ndarray
    vertex: np.ndarray
    value: float
    dual: np.ndarray


def min_l1_interpolation(f, y) -> L1Solution:
    """``argmin ||w||_1`` s.t. ``F w = y``, ties broken by least L2 norm; see the module docstring.

    Parameters
    ----------
    f : ndarray, shape (N, M)
        Features (columns) on the training items; ``y`` must lie in their span.
    y : ndarray, shape (N,)
        Labels.
    """
    f = np.asarray(f, dtype=float)
    y = np.asarray(y, dtype=float)
    n_items, n_cols = f.shape
    res = scipy.optimize.linprog(
        np.ones(2 * n_cols), A_eq=np.hstack([f, -f]), b_eq=y, bounds=(0, None), method="highs"
    )
    if res.status != 0:
        raise NumericalError(f"the L1 interpolation LP failed: {res.message}")
    vertex = res.x[:n_cols] - res.x[n_cols:]  # (M,)
    dual = np.asarray(res.eqlin.marginals, dtype=float)  # (N,) d value / d y
    corr = f.T @ dual  # (M,) in [-1, 1] at a dual optimum
    active = np.flatnonzero(np.abs(corr) >= 1 - _FACE_TOL)
    signs = np.sign(corr[active])
    u = min_l2_on_face(f[:, active] * signs, y)  # (|active|,) >= 0
    w = np.zeros(n_cols)
    w[active] = signs * u
    value = float(res.fun)
    if abs(np.abs(w).sum() - value) > 1e-9 * max(1.0, value):
        raise NumericalError("the least-L2 point of the L1 face is not L1-optimal")
    return L1Solution(w=w, vertex=vertex, value=value, dual=dual)


def min_l2_on_face(a, y) -> np.ndarray:
    """``argmin ||u||_2`` s.t. ``A u = y``, ``u >= 0`` (the least-L2 point of a face).

    Identical columns get equal weight (the problem is symmetric in them and its minimiser
    unique), so they are merged first: with group sizes k_g the problem is
    ``min sum U_g^2 / k_g`` s.t. ``sum U_g a_g = y``, ``U >= 0``. If the distinct columns are
    linearly independent the constraint alone fixes U; otherwise it is the least-distance
    program ``min ||x||`` s.t. ``G x >= h`` with ``x_g = U_g / sqrt(k_g)``, solved by
    Lawson & Hanson's algorithm LDP (ch. 23) through non-negative least squares.

    Parameters
    ----------
    a : ndarray, shape (N, K)
        Columns of the face, already multiplied by the signs of their weights.
    y : ndarray, shape (N,)

    Returns
    -------
    ndarray, shape (K,)
    """
    a = np.asarray(a, dtype=float)
    y = np.asarray(y, dtype=float)
    groups, inverse, sizes = np.unique(a.T, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    b = groups.T * np.sqrt(sizes)  # (N, G): columns scaled so that x = U / sqrt(k)
    if np.linalg.matrix_rank(b) == b.shape[1]:
        x, *_ = np.linalg.lstsq(b, y, rcond=None)  # (G,) the only feasible point
    else:
        g = np.vstack([b, -b, np.eye(b.shape[1])])  # b x >= y, -b x >= -y, x >= 0
        x = _least_distance(g, np.concatenate([y, -y, np.zeros(b.shape[1])]))
    if np.min(x, initial=0.0) < -1e-9 or np.linalg.norm(b @ x - y) > 1e-9 * np.linalg.norm(y):
        raise NumericalError("the L1 face has no non-negative interpolant (inconsistent dual)")
    u_group = np.maximum(x, 0.0) * np.sqrt(sizes)  # (G,) U_g = sqrt(k_g) x_g
    return u_group[inverse] / sizes[inverse]


def _least_distance(g, h) -> np.ndarray:
    """``argmin ||x||`` s.t. ``G x >= h`` (Lawson & Hanson 1974, algorithm LDP, ch. 23).

    NNLS on ``E = [G^T; h^T]``, ``f = e_(n+1)``; with residual ``r = E z - f`` (``z >= 0``),
    ``x = -r[:n] / r[n]``; ``r = 0`` means the constraints are infeasible.
    """
    n = g.shape[1]
    e = np.vstack([g.T, h[None, :]])  # (n + 1, rows of G)
    target = np.zeros(n + 1)
    target[n] = 1.0
    z, _ = scipy.optimize.nnls(e, target, maxiter=50 * e.shape[1])
    r = e @ z - target  # (n + 1,)
    if abs(r[n]) < 1e-12:
        raise NumericalError("the least-distance program is infeasible")
    return -r[:n] / r[n]
