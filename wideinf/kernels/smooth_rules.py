"""Quadrature rules behind :mod:`wideinf.kernels.smooth`: Hermite coefficients and 2-D expectations.

Both are composite Gauss-Legendre rules on a truncated range with a panel boundary at 0, so an
activation whose derivative jumps at 0 (elu, selu, softsign) is integrated piece by piece, at
the same geometric rate as a smooth one. Panels are at most 1 wide in the activation's own
variable ``x`` and at most ``1`` (``1/2`` for the Hermite coefficients) in the standard normal
variable, with :data:`PANEL_NODES` nodes each. Error analysis: ``docs/smooth-activations.md``.
"""

from __future__ import annotations

import contextlib
import threading
from functools import lru_cache

import numpy as np

from ..blas import one_blas_thread

__all__ = [
    "PANEL_NODES",
    "panel_rule",
    "graded_rule",
    "coefficient_rule",
    "hermite_coefficients",
    "interpolated_coefficients",
    "conditional_expectation",
    "symmetry_parity",
    "mehler",
    "radius",
    "terms_needed",
]

# Gauss-Legendre nodes per panel: with panels 1 wide in x and phi analytic within pi/2 of the
# real axis (tanh's poles; every other shipped activation has more room) the panel error is
# below rho^(-2n) with rho = pi + sqrt(1 + pi^2) = 6.4: 4e-20 for n = 12 (Trefethen, ATAP 19.3).
PANEL_NODES = 12
# The Hermite coefficient rule: 16 nodes on panels of width h with h sqrt(2K) <= 5.6, so the
# oscillation of He_K (frequency sqrt(2K)) costs at most (e 5.6 / 64)^32 ~ 1e-20 per panel.
COEFFICIENT_NODES = 16
# Beyond z = 10 phi(z) (1 + |z|)^2 is below 1e-20.
EXPECTATION_RANGE = 10.0


def coefficient_range(terms: int) -> float:
    """Truncation of z for He_k, k < terms: 6 past the last turning point sqrt(4k + 2)."""
    return float(np.ceil(np.sqrt(4 * terms + 2) + 6))


def coefficient_width(terms: int) -> float:
    """Panel width with width * sqrt(2 terms) <= 5.6, at most 1/2."""
    return float(min(0.5, 5.6 / np.sqrt(2 * terms)))


# Elements (x nodes x nodes) per block of :func:`conditional_expectation` (16 MB of float64).
_BLOCK = 2_000_000


@lru_cache(maxsize=64)
def panel_rule(width: float, half_range: float, nodes: int = PANEL_NODES):
    """Composite Gauss-Legendre rule on [-half_range, half_range], panels of ``width``.

    Panels start at 0 in both directions, so 0 is always a panel boundary.

    Returns
    -------
    z, w : ndarray, shape (m,)
        Nodes and plain Legendre weights (no Gaussian factor), ``sum(w) = 2 half_range``.
    """
    x, w = np.polynomial.legendre.leggauss(nodes)
    n_half = int(np.ceil(half_range / width - 1e-9))
    left = np.arange(-n_half, n_half) * width  # (2 n_half,) panel left ends
    z = (left[:, None] + (x + 1) * (width / 2)).ravel()
    return z, np.tile(w * (width / 2), 2 * n_half)


@lru_cache(maxsize=64)
def graded_rule(width: float, levels: int, half_range: float):
    """:func:`panel_rule` with the two panels next to 0 cut geometrically, ``levels`` times.

    The panels ``[0, width]`` and ``[-width, 0]`` become ``[width 2^-J, width 2^(1-J)]``, ...,
    ``[width / 2, width]`` and ``[0, width 2^-J]`` (J = levels): a rule for integrands with
    a feature of size ``width 2^-J`` at 0, such as a kink smoothed by a narrow Gaussian.
    """
    z, w = panel_rule(width, half_range)
    if levels <= 0:
        return z, w
    keep = np.abs(z) > width
    x, wx = np.polynomial.legendre.leggauss(PANEL_NODES)
    edges = np.concatenate([[0.0], width * 2.0 ** -np.arange(levels, -1, -1)])
    lo, hi = edges[:-1, None], edges[1:, None]
    zg = (lo + (x + 1) * (hi - lo) / 2).ravel()
    wg = (wx * (hi - lo) / 2).ravel()
    return np.concatenate([z[keep], zg, -zg]), np.concatenate([w[keep], wg, wg])


def _level_width(scale, cap: float):
    """Panel width ``cap / 2^l``, the largest with ``width * scale <= 1``; ``scale`` (n,)."""
    need = np.maximum(np.asarray(scale, dtype=float) * cap, 1.0)
    return cap / 2.0 ** np.ceil(np.log2(need))


@lru_cache(maxsize=16)
def coefficient_rule(width: float, terms: int):
    """Nodes, square-root weights and the Hermite functions on them, for k < terms.

    Returns
    -------
    z : ndarray, shape (m,)
    root_weight : ndarray, shape (m,)
        sqrt(Legendre weight x standard normal density).
    table : ndarray, shape (m, terms)
        ``root_weight * He_k(z) / sqrt(k!)``, by the stable recurrence of the normalised
        polynomials ``P_{k+1} = (z P_k - sqrt(k) P_{k-1}) / sqrt(k + 1)``; its columns are
        orthonormal to quadrature accuracy, and bounded by 1 (no overflow at large z).
    """
    z, w = panel_rule(width, coefficient_range(terms), COEFFICIENT_NODES)
    root_weight = np.sqrt(w * np.exp(-z * z / 2) / np.sqrt(2 * np.pi))
    table = np.empty((len(z), terms))
    prev, cur = np.zeros_like(z), np.ones_like(z)
    for k in range(terms):
        table[:, k] = cur * root_weight
        prev, cur = cur, (z * cur - np.sqrt(k) * prev) / np.sqrt(k + 1)
    return z, root_weight, table


def hermite_coefficients(f, q, terms: int):
    """``a_k(q) = E[f(sqrt(q) z) He_k(z)] / sqrt(k!)``, E[f^2] and the truncation tail.

    Parameters
    ----------
    f : callable, elementwise
    q : ndarray, shape (n,)
        Variances, >= 0.
    terms : int
        Number of coefficients (k = 0 .. terms - 1).

    Returns
    -------
    a : ndarray, shape (n, terms)
    second : ndarray, shape (n,)
        ``E[f(u)^2]`` for u ~ N(0, q), by the same rule.
    rest : ndarray, shape (n,)
        An upper bound of ``sum_{k >= terms} a_k^2 = E[f^2] - sum_{k < terms} a_k^2``
        (Parseval), rounded up by ``2 terms eps E[f^2]``: the tail of the tail, used only
        beyond the last coefficient (shorter tails are sums of squares, exact to rounding).
    """
    q = np.asarray(q, dtype=float)
    root = np.sqrt(q)
    a = np.empty((len(q), terms))
    second, rest = np.empty(len(q)), np.empty(len(q))
    widths = _level_width(root, coefficient_width(terms))  # and <= 1 wide in x
    for width in np.unique(widths):
        idx = np.nonzero(widths == width)[0]
        z, root_weight, table = coefficient_rule(float(width), terms)
        values = f(root[idx, None] * z) * root_weight  # (p, m)
        with _one_blas_thread():
            a[idx] = values @ table
        # einsum, not BLAS: a point's value must not depend on the other points in the call
        second[idx] = np.einsum("pm,pm->p", values, values)
    # Parseval: rest = E[f^2] - sum a_k^2, rounded up by the rounding error of that sum
    # (about terms * eps * E[f^2]): an upper bound, never rounding noise below the truth.
    slack = 2 * terms * np.finfo(float).eps * second
    rest = np.maximum(second - np.einsum("pk,pk->p", a, a), 0.0) + slack
    return a, second, rest


def conditional_expectation(functions, q1, q2, rho, kink: bool):
    """``E[f(u) f(v)]`` for each f in ``functions``, for (u, v) with variances q1, q2, correlation rho.

    Conditioning on ``z``: ``u = sqrt(q1) z``, ``v = m + sigma y`` with ``m = sqrt(q2) rho z``,
    ``sigma = sqrt(q2 (1 - rho^2))``; the outer integral over z and the inner one over y are
    composite Gauss-Legendre rules on [-10, 10] whose panels are at most 1 wide in z (y) and
    in u (v). When ``kink``, the inner range is split at the kink ``y* = -m / sigma`` (both
    pieces get the full number of panels), so the integrand is smooth on every panel. At
    ``rho = +-1`` (sigma = 0) the inner expectation is ``f(m)`` itself.

    Parameters
    ----------
    functions : sequence of callables, elementwise
    q1, q2, rho : ndarray, shape (p,)
        Put the larger variance in ``q1``: the outer rule resolves it at no extra cost.

    Returns
    -------
    list of ndarray, each shape (p,)
    """
    q1, q2, rho = (np.asarray(a, dtype=float) for a in (q1, q2, rho))
    outs = [np.empty(len(q1)) for _ in functions]
    sigma = np.sqrt(q2 * np.maximum(0.0, (1 - rho) * (1 + rho)))
    w_out = _level_width(np.sqrt(q1), 1.0)
    w_in = np.where(sigma > 0, _level_width(sigma, 1.0), 0.0)
    # With a kink, E[f(v) | z] has a feature of size sigma / (sqrt(q2) |rho|) at z = 0.
    feature = sigma / np.maximum(np.sqrt(q2) * np.abs(rho), 1e-300)
    grade = np.zeros(len(q1), int)
    if kink:
        ratio = np.where(sigma > 0, w_out / np.maximum(feature, 1e-300), 0.0)
        grade = np.clip(np.ceil(np.log2(np.maximum(ratio, 1.0))), 0, 60).astype(int)
    for wo, wi, j in set(zip(w_out.tolist(), w_in.tolist(), grade.tolist())):
        idx = np.nonzero((w_out == wo) & (w_in == wi) & (grade == j))[0]
        z, wz = graded_rule(wo, j, EXPECTATION_RANGE)
        gz = wz * np.exp(-z * z / 2) / np.sqrt(2 * np.pi)  # (mz,)
        inner = 1 if wi == 0 else 2 * len(panel_rule(wi, EXPECTATION_RANGE)[0])
        per = max(1, _BLOCK // (len(z) * inner))
        for start in range(0, len(idx), per):
            sel = idx[start : start + per]
            vals = _conditional_block(
                functions, q1[sel], q2[sel], rho[sel], sigma[sel], z, wi, kink
            )
            for out, v in zip(outs, vals):
                out[sel] = v @ gz
    return outs


def _conditional_block(functions, q1, q2, rho, sigma, z, inner_width, kink):
    """Outer integrands ``f(sqrt(q1) z) E[f(v) | z]`` (p, mz) for one group of elements."""
    u = np.sqrt(q1)[:, None] * z  # (p, mz)
    m = (np.sqrt(q2) * rho)[:, None] * z  # (p, mz)
    if inner_width == 0:
        return [f(u) * f(m) for f in functions]
    s = sigma[:, None, None]
    if not kink:
        y, wy = panel_rule(inner_width, EXPECTATION_RANGE)
        gy = wy * np.exp(-y * y / 2) / np.sqrt(2 * np.pi)
        v = m[:, :, None] + s * y  # (p, mz, my)
        return [f(u) * (f(v) @ gy) for f in functions]
    # Split [-10, 10] at y* = -m / sigma: each piece is the unit rule stretched over it.
    t, wt = panel_rule(inner_width / 20.0, 0.5)  # on [-1/2, 1/2]: as many panels as [-10, 10]
    t, wt = t + 0.5, wt  # on [0, 1]
    ystar = np.clip(-m / sigma[:, None], -EXPECTATION_RANGE, EXPECTATION_RANGE)[:, :, None]
    lo_len, hi_len = ystar + EXPECTATION_RANGE, EXPECTATION_RANGE - ystar  # (p, mz, 1)
    y = np.concatenate([-EXPECTATION_RANGE + lo_len * t, ystar + hi_len * t], axis=-1)
    wy = np.concatenate([lo_len * wt, hi_len * wt], axis=-1)  # (p, mz, 2 my)
    gy = wy * np.exp(-y * y / 2) / np.sqrt(2 * np.pi)
    v = m[:, :, None] + s * y
    return [f(u) * np.einsum("pzy,pzy->pz", f(v), gy) for f in functions]


# One thread at a time changes BLAS's thread count (tables are built in the tiles' threads).
_BLAS_LOCK = threading.Lock()


@contextlib.contextmanager
def _one_blas_thread():
    """BLAS on one thread for the coefficient products (a few dozen rows), one caller at a time."""
    with _BLAS_LOCK, one_blas_thread():
        yield


# Below this many points (or this variance ratio) the coefficients are computed point by point.
_INTERPOLATE_MIN_POINTS = 24
# Coefficients are analytic in s = log q for |Im s| < pi (phi(e^(s/2) z) stays integrable
# against the Gaussian while Re e^(s/2) > 0); the node count assumes 0.8 pi, and is checked.
_STRIP = 0.8 * np.pi
_INTERPOLATION_TOL = 1e-14


def interpolated_coefficients(f, q, terms: int):
    """:func:`hermite_coefficients` of many points, by interpolation in log q.

    The coefficients (and E[f^2], and the tail) are computed exactly at n Chebyshev points of
    ``log q`` over the range of the positive variances and interpolated to every point by the
    barycentric formula (Berrut & Trefethen 2004). n is chosen for an analytic strip of half
    width 0.8 pi (Chebyshev error ~ rho^-n, rho = b + sqrt(1 + b^2), b = 0.8 pi / half-length;
    Trefethen, ATAP Thm 8.2), and the result is checked against the exact values at the two
    points between the first and the middle nodes: if either differs by more than 1e-14 of
    sqrt(E[f^2]), n doubles (at most 256 nodes), else every point is computed exactly.
    Zero variances are computed exactly.
    """
    q = np.asarray(q, dtype=float)
    pos = q > 0
    if pos.sum() <= _INTERPOLATE_MIN_POINTS or q[pos].max() <= q[pos].min() * (1 + 1e-9):
        return hermite_coefficients(f, q, terms)
    s = np.log(q[pos])
    lo, hi = s.min(), s.max()
    half = (hi - lo) / 2
    b = _STRIP / half
    n = int(np.clip(np.ceil(37 / np.log(b + np.sqrt(1 + b * b))) + 2, 8, 256))
    while n <= 256 and n < pos.sum():
        nodes = lo + half * (1 - np.cos(np.pi * np.arange(n) / (n - 1)))  # (n,) ascending
        exact = hermite_coefficients(f, np.exp(nodes), terms)
        probe = np.array([(nodes[0] + nodes[1]) / 2, (nodes[n // 2] + nodes[n // 2 + 1]) / 2])
        check = hermite_coefficients(f, np.exp(probe), terms)
        got = [_barycentric(nodes, probe) @ v for v in exact]
        scale = np.sqrt(np.maximum(check[1], 1e-300))
        err = np.max(np.abs(got[0] - check[0]), axis=1) / scale
        if np.all(err <= _INTERPOLATION_TOL):
            weights = _barycentric(nodes, s)  # (p, n)
            out = [np.empty((len(q),) + v.shape[1:]) for v in exact]
            with _one_blas_thread():
                for o, v in zip(out, exact):
                    o[pos] = weights @ v
            rest = hermite_coefficients(f, q[~pos], terms)
            for o, v in zip(out, rest):
                o[~pos] = v
            out[1][pos] = np.maximum(out[1][pos], 0.0)
            out[2][pos] = np.maximum(out[2][pos], 0.0)
            return tuple(out)
        n *= 2
    return hermite_coefficients(f, q, terms)


def _barycentric(nodes, x):
    """Barycentric interpolation matrix (len(x), n) at Chebyshev extreme points ``nodes``."""
    n = len(nodes)
    w = (-1.0) ** np.arange(n)
    w[0] /= 2
    w[-1] /= 2
    diff = x[:, None] - nodes[None, :]  # (p, n)
    hit = diff == 0
    diff[hit] = 1.0
    m = w / diff
    m /= m.sum(axis=1, keepdims=True)
    rows = hit.any(axis=1)
    m[rows] = hit[rows].astype(float)
    return m


_PROBE = np.concatenate([np.linspace(0.01, 12.0, 241), [0.3183, 1.7, 25.0, 80.0]])


def symmetry_parity(f):
    """1 if ``f - f(0)`` is odd, 0 if f is even, else None (to rounding, on probe points).

    The coefficients that the symmetry makes zero are then set to exactly zero (they would
    otherwise be rounding noise of about 1e-16 of the scale) and skipped in the series.
    """
    x = _PROBE
    f0 = float(f(np.zeros(1))[0])
    fx, fm = f(x), f(-x)
    slack = 4 * np.finfo(float).eps * (np.abs(fx) + abs(f0) + 1e-300)
    if np.all(np.abs((fm - f0) + (fx - f0)) <= slack):
        return 1
    if np.all(np.abs(fm - fx) <= slack):
        return 0
    return None


def chain_starts(parity) -> tuple:
    """First k of each Horner chain in rho^2 that a function's series needs: (1,) when
    ``f - f(0)`` is odd (its k = 0, the constant, is added apart), (0,) when f is even, else
    (0, 1)."""
    return (1,) if parity == 1 else (0,) if parity == 0 else (0, 1)


def chained_coefficients(a, b, parity_a, parity_b):
    """The coefficients of phi and phi' chain by chain, for the compiled series.

    Parameters
    ----------
    a, b : ndarray, shape (n, K)
        Hermite coefficients of phi and phi' (:func:`hermite_coefficients`).

    Returns
    -------
    ndarray, shape (n, P, T, 2), T = ceil(K / 2)
        ``[:, p, t, 0] = a[:, s_p + 2 t]`` for the p-th start ``s_p`` of
        :func:`chain_starts` (parity_a), likewise ``[..., 1]`` of b; zero past the last
        coefficient and for p beyond a function's chains. P is the larger number of chains.
    """
    starts = (chain_starts(parity_a), chain_starts(parity_b))
    n, k_all = a.shape
    out = np.zeros((n, max(map(len, starts)), (k_all + 1) // 2, 2))
    for d, (coef, first) in enumerate(zip((a, b), starts)):
        for p, s in enumerate(first):
            chain = coef[:, s::2]
            out[:, p, : chain.shape[1], d] = chain
    return out


# ----------------------------------------------------------------- the series (numpy)


def radius(bound_last, terms: int, tol: float):
    """Largest |rho| with ``|rho|^terms * bound_last <= tol`` (elementwise; may exceed 1)."""
    with np.errstate(divide="ignore"):
        return np.power(tol / np.maximum(bound_last, 1e-300), 1.0 / terms)


def terms_needed(rmax: float, bound, tol: float) -> int:
    """Smallest K with ``rmax^(K+1) bound[K] <= tol``; bound (K+1,) of the tile's tails."""
    powers = rmax ** np.arange(1, len(bound) + 1)
    ok = np.nonzero(powers * bound <= tol)[0]
    return int(ok[0]) if len(ok) else len(bound) - 1


def mehler(products, rho, r2, k_max, parity, constant, out):
    """``out = sum_{k <= k_max} c_k rho^k``, by Horner in rho^2 on even and odd k.

    ``products(k, tmp)`` gives ``c_k = a_k(q1) a_k(q2)`` broadcast to rho's shape (written into
    ``tmp`` or returned); ``parity`` 1 (only odd k, and k = 0 when ``constant``), 0 (only even
    k) or None. Zero terms are skipped.
    """
    parts = []
    tmp = np.empty_like(rho)
    for first in (0, 1):
        ks = list(range(first, k_max + 1, 2))
        if parity is not None and first != parity:  # only k = 0 can be nonzero here
            ks = [0] if first == 0 and constant else []
        if not ks:
            continue
        acc = np.array(products(ks[-1], tmp), copy=True)
        for k in reversed(ks[:-1]):
            np.multiply(acc, r2, out=acc)
            np.add(acc, products(k, tmp), out=acc)
        if first == 1:
            np.multiply(acc, rho, out=acc)
        parts.append(acc)
    if not parts:
        out[...] = 0.0
    elif len(parts) == 1:
        out[...] = parts[0]
    else:
        np.add(parts[0], parts[1], out=out)
