"""Signal propagation through a deep, infinitely wide MLP (Poole et al. 2016; Schoenholz et al. 2017).

A hidden layer is a dense layer (``sigma_w^2 = W_std^2``, ``sigma_b^2 = b_std^2``) followed by an
elementwise activation phi. For two inputs, the pre-activation covariance of the next layer is

    q^{l+1}    = V(q^l)  = sigma_w^2 E[phi(sqrt(q^l) z)^2] + sigma_b^2,        z ~ N(0, 1),
    q_12^{l+1} = sigma_w^2 E[phi(u) phi(v)] + sigma_b^2,   (u, v) ~ N(0, [[q, q_12], [q_12, q]]).

*Variance map.* From normalised inputs (``|x|^2 / d = 1``, so ``q^1 = sigma_w^2 + sigma_b^2``)
the variance converges to the stable fixed point ``q* = V(q*)``. Its slope there sets the depth
scale of the variance: ``q^l - q* ~ exp(-l / xi_q)`` with ``xi_q = -1 / log chi_q`` and

    chi_q = V'(q*) = sigma_w^2 E[phi(u) phi'(u) z] / sqrt(q*)          (u = sqrt(q*) z)
          = sigma_w^2 E[phi'(u)^2 + phi(u) phi''(u)],

the first line by differentiating under the integral (``du/dq = z / (2 sqrt q)``), the second by
Gaussian integration by parts (``E[h(z) z] = E[h'(z)]``), which is Schoenholz et al.'s Eq. (5)
form. We use the first: it needs only phi and phi', and it stays finite as q* -> 0.

*Correlation map.* At the fixed point, ``c -> C(c) = (sigma_w^2 E[phi(u) phi(v)] + sigma_b^2) / q*``
with ``q_12 = q* c``: the activation's own NNGP dual ``nngp(q*, q*, q* c)``, the same formula the
kernels use. ``C(1) = 1``; by Price's theorem (``d E[phi(u) phi(v)] / d q_12 = E[phi'(u) phi'(v)]``)
its slope at c = 1 is

    chi_1 = C'(1) = sigma_w^2 E[phi'(sqrt(q*) z)^2].

If ``chi_1 < 1`` (ordered phase) c = 1 is stable and every pair of inputs becomes perfectly
correlated; if ``chi_1 > 1`` (chaotic phase) it is unstable and correlations converge to a fixed
point ``c* < 1``. Either way ``|c^l - c*| ~ exp(-l / xi_c)`` with ``xi_c = -1 / log chi_c``,
``chi_c = C'(c*) = sigma_w^2 E[phi'(u) phi'(v)]`` at ``q_12 = q* c*`` (the activation's ``factor``);
in the ordered phase ``chi_c = chi_1``. At ``chi_1 = 1`` (the critical line) xi_c diverges: deep
networks can still tell inputs apart there.

*Numerics.* The scalar expectations behind q*, chi_1 and chi_q are one-dimensional; we compute them
with the midpoint rule on a fine symmetric grid in z (:data:`N_NODES` nodes on ``|z| < Z_MAX``),
not with the activation's two-dimensional dual: the critical line must be solved to 1e-10, and a
quadrature dual of modest order (tanh's) is only accurate to ~1e-4 at variances of a few. The
rule converges exponentially for integrands analytic in a strip around the real axis (Trefethen
& Weideman 2014, SIAM Rev. 56:385); for tanh, whose poles sit at ``z = i pi / (2 sqrt q)``, it is
accurate to rounding for q up to about 100 (measured against adaptive quadrature in the tests).
The grid is symmetric with no node at 0, so the ReLU family's kink is integrated exactly. At
``q = 0`` the expectations are their limits ``q -> 0+`` (evaluated at ``q = Q_TINY``).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

__all__ = [
    "N_NODES",
    "Z_MAX",
    "gauss_expectation",
    "variance_map",
    "variance_slope",
    "chi_1",
    "FixedPoint",
    "fixed_point",
    "correlation_map",
    "correlation_fixed_point",
    "depth_scale",
    "correlation_depth_scale",
    "critical_sigma_w2",
    "deep_kernels",
    "correlations_through_depth",
    "measured_depth_scale",
]

N_NODES = 1024
Z_MAX = 12.0  # the Gaussian density below 1e-31 beyond
Q_TINY = 1e-300  # where q = 0 stands for its limit q -> 0+
Q_LARGE = 1e8  # a variance that has "diverged"
FIXED_POINT_TOL = 1e-14  # relative residual |V(q) - q| / max(1, q) at convergence
_ITERATIONS = 30  # plain iterations before Newton's method
_NEWTON_STEPS = 100


@lru_cache(maxsize=4)
def _midpoint_rule(n_nodes: int = N_NODES, z_max: float = Z_MAX):
    """Nodes (n,) and weights (n,) summing to 1 for E[h(z)], z ~ N(0, 1)."""
    h = 2 * z_max / n_nodes
    z = -z_max + h * (np.arange(n_nodes) + 0.5)  # symmetric, no node at 0 (n even)
    w = np.exp(-0.5 * z * z)
    return z, w / w.sum()


def gauss_expectation(f, q):
    """``E[f(sqrt(q) z, z)]`` for z ~ N(0, 1), elementwise over the array q (shape of q).

    ``f(u, z)`` receives ``u = sqrt(q) z`` and z, each of shape ``q.shape + (N_NODES,)``.
    """
    z, w = _midpoint_rule()
    q = np.maximum(np.asarray(q, dtype=float), Q_TINY)
    root = np.sqrt(q)[..., None]  # (..., 1)
    return f(root * z, z) @ w


def variance_map(act, w2, b2, q):
    """``V(q) = sigma_w^2 E[phi(sqrt(q) z)^2] + sigma_b^2``; arrays broadcast."""
    return w2 * gauss_expectation(lambda u, z: act.phi(u) ** 2, q) + b2


def variance_slope(act, w2, q):
    """``chi_q = V'(q) = sigma_w^2 E[phi(u) phi'(u) z] / sqrt(q)`` (module docstring)."""
    q = np.maximum(np.asarray(q, dtype=float), Q_TINY)
    root = np.sqrt(q)[..., None]
    return w2 * gauss_expectation(lambda u, z: act.phi(u) * act.dphi(u) * z / root, q)


def chi_1(act, w2, q):
    """``chi_1 = sigma_w^2 E[phi'(sqrt(q) z)^2]``, the slope of the correlation map at c = 1."""
    return w2 * gauss_expectation(lambda u, z: act.dphi(u) ** 2, q)


class FixedPoint:
    """The stable fixed point q* of the variance map over a grid of (sigma_w^2, sigma_b^2).

    Attributes (all of the broadcast shape of ``w2`` and ``b2``)
    ----------
    q : ndarray
        q*, ``inf`` where the variance diverges (grows without bound from normalised inputs).
    residual : ndarray
        ``|V(q*) - q*| / max(1, q*)`` (nan where diverged).
    diverged : ndarray of bool
    converged : ndarray of bool
        Residual within :data:`FIXED_POINT_TOL` and the point stable (``V'(q*) <= 1``), or
        diverged (then there is no fixed point to find).
    """

    def __init__(self, q, residual, diverged, converged):
        self.q, self.residual, self.diverged, self.converged = q, residual, diverged, converged

    @property
    def q_finite(self):
        """q*, with :data:`Q_LARGE` where the variance diverges (for chi_1's large-q limit)."""
        return np.where(self.diverged, Q_LARGE, self.q)


def fixed_point(act, w2, b2) -> FixedPoint:
    """Solve ``q = V(q)`` from ``q^1 = sigma_w^2 + sigma_b^2``, elementwise.

    :data:`_ITERATIONS` iterations of the map bring q near the stable fixed point it converges
    to; Newton's method on ``V(q) - q`` (slope ``V'(q) - 1`` from :func:`variance_slope`) then
    finishes quadratically, falling back to a plain iteration wherever a Newton step would
    leave ``[0, inf)`` or climb. Where ``V(Q_LARGE) > Q_LARGE`` and no stable fixed point was
    found, the variance diverges (ReLU-like activations with large sigma_w^2).
    """
    w2, b2 = np.broadcast_arrays(np.asarray(w2, dtype=float), np.asarray(b2, dtype=float))
    q = w2 + b2
    for _ in range(_ITERATIONS):
        q = variance_map(act, w2, b2, q)
        q = np.minimum(q, Q_LARGE)
    for _ in range(_NEWTON_STEPS):
        g = variance_map(act, w2, b2, q) - q
        slope = variance_slope(act, w2, q) - 1.0
        with np.errstate(divide="ignore", invalid="ignore"):
            step = np.where(slope < 0, -g / slope, g)  # Newton, or one plain iteration
        new = np.clip(q + step, 0.0, Q_LARGE)
        done = (np.abs(new - q) <= 4e-16 * q) | (np.abs(g) <= 1e-18 + 1e-15 * q)
        q = new
        if done.all():
            break
    resid = np.abs(variance_map(act, w2, b2, q) - q) / np.maximum(1.0, q)
    stable = variance_slope(act, w2, q) <= 1.0 + 1e-9
    ok = (resid <= FIXED_POINT_TOL) & stable & (q < Q_LARGE)
    grows = variance_map(act, w2, b2, np.full_like(q, Q_LARGE)) > Q_LARGE
    diverged = ~ok & grows
    q = np.where(diverged, np.inf, q)
    return FixedPoint(q, np.where(diverged, np.nan, resid), diverged, ok | diverged)


def correlation_map(act, w2, b2, q, c):
    """``C(c) = (sigma_w^2 nngp(q, q, q c) + sigma_b^2) / q`` with the activation's dual."""
    return (w2 * act.nngp(q, q, q * c) + b2) / q


def correlation_fixed_point(act, w2, b2, q, iterations: int = 200, newton: int = 60):
    """The stable fixed point c* < 1 of the correlation map in the chaotic phase, elementwise.

    Iterates C from c = 0, then Newton's method on ``C(c) - c`` with slope
    ``sigma_w^2 factor(q, q, q c) - 1``. Returns (c*, residual |C(c*) - c*|).
    """
    w2, b2, q = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (w2, b2, q)))
    c = np.zeros_like(q)
    for _ in range(iterations):
        c = np.clip(correlation_map(act, w2, b2, q, c), -1.0, 1.0)
    for _ in range(newton):
        g = correlation_map(act, w2, b2, q, c) - c
        slope = w2 * act.factor(q, q, q * c) - 1.0
        with np.errstate(divide="ignore", invalid="ignore"):
            step = np.where(slope < 0, -g / slope, g)
        new = np.clip(c + step, -1.0, 1.0)
        if np.all(np.abs(new - c) <= 1e-15):
            c = new
            break
        c = new
    return c, np.abs(correlation_map(act, w2, b2, q, c) - c)


def depth_scale(chi):
    """``xi = -1 / log chi`` for 0 < chi < 1 (inf at chi = 1, nan outside)."""
    chi = np.asarray(chi, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(
            (chi > 0) & (chi < 1), -1.0 / np.log(chi), np.where(chi == 1, np.inf, np.nan)
        )


def correlation_depth_scale(act, w2, b2, fp: FixedPoint, chi1):
    """``xi_c`` and ``c*`` for every point: ``-1/log chi_1`` if ordered, ``-1/log C'(c*)`` if chaotic.

    Returns (xi_c, c_star, chi_c), each of the broadcast shape; nan where the variance diverges.
    """
    w2, b2, chi1 = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (w2, b2, chi1)))
    c_star = np.ones_like(chi1)
    chi_c = chi1.copy()
    chaotic = (chi1 > 1) & ~fp.diverged
    if chaotic.any():
        q = fp.q[chaotic]
        c, _ = correlation_fixed_point(act, w2[chaotic], b2[chaotic], q)
        c_star[chaotic] = c
        chi_c[chaotic] = w2[chaotic] * act.factor(q, q, q * c)
    xi = depth_scale(chi_c)
    bad = fp.diverged
    return np.where(bad, np.nan, xi), np.where(bad, np.nan, c_star), np.where(bad, np.nan, chi_c)


def critical_sigma_w2(act, b2: float, lo: float, hi: float, xtol: float = 1e-13) -> float:
    """The sigma_w^2 in [lo, hi] where chi_1 = 1 at this sigma_b^2 (Brent's method).

    ``chi_1 - 1`` must change sign on [lo, hi]; returns nan otherwise.
    """
    from scipy.optimize import brentq

    def excess(w2):
        fp = fixed_point(act, np.array([w2]), np.array([b2]))
        return float(chi_1(act, w2, fp.q_finite)[0]) - 1.0

    f_lo, f_hi = excess(lo), excess(hi)
    if f_lo == 0:
        return lo
    if f_hi == 0:
        return hi
    if math.isnan(f_lo) or math.isnan(f_hi) or np.sign(f_lo) == np.sign(f_hi):
        return math.nan
    return brentq(excess, lo, hi, xtol=xtol, rtol=4 * np.finfo(float).eps, maxiter=200)


# ----------------------------------------------------------------------------- layer by layer


def deep_kernels(act, w2, b2, nngp, var, depths, with_ntk: bool = True):
    """NNGP (and NTK) of the outputs of networks of every depth, one recursion for all.

    A network of depth l has l hidden layers (dense + activation) and a dense readout; the
    recursion starts from the first dense layer's output and applies (activation, dense) once
    per hidden layer, yielding at each requested depth. It is the recursion of
    :meth:`wideinf.architecture.Architecture.kernel` (NTK parameterization; the tests check
    they agree), kept here because that method returns only the last layer:

    - dense: ``K <- w2 K + b2``, ``Theta <- K + w2 Theta``;
    - activation: ``K <- nngp(q_i, q_j, K_ij)``, ``Theta <- Theta * factor(q_i, q_j, K_ij)``,
      with ``q_i`` each point's own variance (so a square block's diagonal is exact).

    Parameters
    ----------
    act : Activation
    w2, b2 : float or ndarray, shape (...)
        sigma_w^2 and sigma_b^2, one per batch entry (a batch of columns at once).
    nngp : ndarray, shape (..., R, C)
        First layer's pre-activation covariance between R points and the first C of them.
    var : ndarray, shape (..., R)
        First layer's variance of each of the R points.
    depths : iterable of int
        Depths to report, each >= 0, increasing.
    with_ntk : bool, default True

    Yields
    ------
    depth, nngp (..., R, C), var (..., R), ntk (..., R, C) or None, ntk_diag (..., R) or None
    """
    w2 = np.asarray(w2, dtype=float)
    b2 = np.asarray(b2, dtype=float)
    w2_k, b2_k = w2[..., None, None], b2[..., None, None]  # broadcast against (..., R, C)
    w2_v, b2_v = w2[..., None], b2[..., None]
    k, v = np.array(nngp, dtype=float), np.array(var, dtype=float)
    n_cols = k.shape[-1]
    ntk, ntk_d = (k.copy(), v.copy()) if with_ntk else (None, None)
    wanted = sorted(set(int(d) for d in depths))
    depth = 0
    for target in wanted:
        while depth < target:
            k, v, factor, factor_d = _activation_step(act, k, v, n_cols, with_ntk)
            k = w2_k * k + b2_k
            v = w2_v * v + b2_v
            if with_ntk:
                ntk = k + w2_k * (ntk * factor)
                ntk_d = v + w2_v * (ntk_d * factor_d)
            depth += 1
        yield depth, k, v, ntk, ntk_d


def _activation_step(act, k, v, n_cols: int, with_ntk: bool):
    """Dual activation on (..., R, C) with exact diagonal on the leading C x C block.

    As in the kernel recursion, the activation's per-point work (``act.points``: a smooth
    activation's Hermite coefficients) is done once per layer and passed to ``duals``.
    """
    q11, q22 = v[..., :, None], v[..., None, :n_cols]  # (..., R, 1), (..., 1, C)
    bound = np.sqrt(q11 * q22)
    q12 = np.clip(k, -bound, bound)  # rounding can push |q12| past sqrt(q11 q22)
    points = act.points(v)  # (..., R)
    new_v, factor_d = act.diagonal(points)  # (..., R)
    new_k, factor = act.duals(points[..., :, None], points[..., None, :n_cols], q12)
    diag = np.arange(min(n_cols, k.shape[-2]))
    new_k[..., diag, diag] = new_v[..., diag]
    if not with_ntk:
        return new_k, new_v, None, None
    factor[..., diag, diag] = factor_d[..., diag]
    return new_k, new_v, factor, factor_d


def correlations_through_depth(act, w2, b2, q, c0: float, max_depth: int):
    """Correlation ``c^l`` (l = 0..max_depth) of two inputs whose first-layer variance is q.

    Both inputs start at variance q (the fixed point q*, so only the correlation moves) and
    correlation c0; each depth is the layer-by-layer NNGP of :func:`deep_kernels`.

    Parameters
    ----------
    w2, b2, q : ndarray, shape (W,)

    Returns
    -------
    ndarray, shape (W, max_depth + 1)
    """
    w2, b2, q = (np.asarray(a, dtype=float) for a in (w2, b2, q))
    k = q[:, None, None] * np.array([[1.0, c0], [c0, 1.0]])  # (W, 2, 2)
    v = np.repeat(q[:, None], 2, axis=1)  # (W, 2)
    out = np.empty((q.size, max_depth + 1))
    for depth, kd, vd, _, _ in deep_kernels(act, w2, b2, k, v, range(max_depth + 1), False):
        out[:, depth] = kd[:, 0, 1] / np.sqrt(vd[:, 0] * vd[:, 1])
    return out


def measured_depth_scale(corr, start: int, stop: int, floor: float = 1e-11, min_points: int = 10):
    """Depth scale of the correlation's convergence, fitted over depths [start, stop].

    If ``c^l - c* ~ A exp(-l / xi)``, the steps ``c^{l+1} - c^l = A (exp(-1/xi) - 1) exp(-l/xi)``
    decay at the same rate, so xi is measured without knowing c*: ``-1 / slope`` of a
    least-squares line through ``log |c^{l+1} - c^l|`` against l, using the steps above
    ``floor`` (rounding makes smaller ones noise). nan with fewer than ``min_points`` steps.

    Parameters
    ----------
    corr : ndarray, shape (W, L + 1)

    Returns
    -------
    ndarray, shape (W,)
    """
    steps = np.abs(np.diff(corr, axis=1))  # (W, L)
    depths = np.arange(steps.shape[1])
    out = np.full(corr.shape[0], np.nan)
    for i, row in enumerate(steps):
        use = (depths >= start) & (depths <= stop) & (row > floor)
        if use.sum() >= min_points:
            slope = np.polyfit(depths[use], np.log(row[use]), 1)[0]
            out[i] = -1.0 / slope if slope < 0 else np.inf
    return out
