"""Gauss-Hermite quadrature for the dual of any elementwise activation.

For (u, v) ~ N(0, [[q11, q12], [q12, q22]]) write ``u = sqrt(q11) z1`` and
``v = sqrt(q22) (c z1 + sqrt(1 - c^2) z2)`` with ``c = q12 / sqrt(q11 q22)`` and z1, z2
independent standard normals (the Cholesky factor of the 2x2 covariance). Then

    E[f(u) g(v)] ~= sum_a sum_b w_a w_b f(u_a) g(v_ab)

with the probabilists' Gauss-Hermite nodes ``z`` and weights ``w`` (normalised to sum to 1).
An n-node rule is exact when f(u) g(v) is a polynomial of degree < 2n in (z1, z2), and
converges slowly once the integrand varies on a scale finer than the node spacing (tanh'
at large variance is a narrow bump) or has a kink. No activation uses it: the closed forms
are tested against it, and the smooth activations (tanh, sigmoid, ...) get exact duals from
:mod:`wideinf.kernels.smooth` (see ``docs/smooth-activations.md``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = [
    "DEFAULT_NODES",
    "hermite_rule",
    "expectation_2d",
    "expectation_1d",
    "paired_expectations",
]

DEFAULT_NODES = 64

# Pair-and-node-pair values per block in :func:`paired_expectations`: under 256 KB of float64.
_PAIR_BLOCK = 30_000


@lru_cache(maxsize=32)
def hermite_rule(n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights (summing to 1) of the n-point rule for E[h(z)], z ~ N(0, 1)."""
    z, w = np.polynomial.hermite_e.hermegauss(n_nodes)
    return z, w / w.sum()


def expectation_1d(f, q, n_nodes: int = DEFAULT_NODES):
    """E[f(u)] for u ~ N(0, q), elementwise over the array ``q``."""
    z, w = hermite_rule(n_nodes)
    root = np.sqrt(np.asarray(q, dtype=float))[..., None]  # (..., 1)
    return (f(root * z) * w).sum(axis=-1)


def expectation_2d(f, g, q11, q22, q12, n_nodes: int = DEFAULT_NODES):
    """E[f(u) g(v)] elementwise over broadcastable ``q11, q22, q12`` (see module docstring).

    Memory is O(size * n_nodes): the loop runs over the first node, vectorised over pairs and
    the second node. When ``f`` and ``g`` are the same function, each pair is integrated with
    its smaller variance as ``q11``, so the result is symmetric in (q11, q22).
    """
    q11, q22, q12 = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (q11, q22, q12)))
    if f is g or f == g:
        # E[f(u) f(v)] is symmetric in (q11, q22): the smaller variance outside makes the
        # rule symmetric too, and more accurate (the wider integrand gets the inner rule).
        q11, q22 = np.minimum(q11, q22), np.maximum(q11, q22)
    z, w = hermite_rule(n_nodes)
    r1, r2 = np.sqrt(q11), np.sqrt(q22)
    denom = r1 * r2
    c = np.divide(q12, denom, out=np.zeros_like(q12), where=denom > 0)
    c = np.clip(c, -1.0, 1.0)
    s = np.sqrt(1.0 - c * c)
    out = np.zeros(q12.shape)
    r2c, r2s = (r2 * c)[..., None], (r2 * s)[..., None]  # (..., 1)
    for za, wa in zip(z, w):
        fu = f(r1 * za)  # (...)
        # A sum per element (not BLAS), so a value does not depend on the array around it.
        gv = (g(r2c * za + r2s * z) * w).sum(axis=-1)  # (...)
        out += wa * fu * gv
    return out


def paired_expectations(functions, q11, q22, q12, n_nodes: int = DEFAULT_NODES):
    """``[E[f(u) f(v)] for f in functions]``, elementwise: :func:`expectation_2d` with g = f.

    The same rule, the same arithmetic for each node and the same order of the sums as
    :func:`expectation_2d`, so the same numbers, organised for speed: the inner sums over the
    second node are taken a few pairs at a time, with the arguments ``r2 (c z_a + s z_b)`` of
    every node pair computed once into small preallocated buffers (under 256 KB, where numpy
    neither leaves the cache nor spends time on its temporary-elision check) and shared by all
    the functions (an activation and its derivative).

    Parameters
    ----------
    functions : sequence of callables
        Elementwise functions f.
    q11, q22, q12 : broadcastable arrays
    n_nodes : int, default DEFAULT_NODES

    Returns
    -------
    list of ndarray, one per function, of the broadcast shape (float64).
    Memory is O(size * n_nodes) for the inner sums.
    """
    q11, q22, q12 = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (q11, q22, q12)))
    shape = q12.shape
    lo, hi, q12 = np.minimum(q11, q22).ravel(), np.maximum(q11, q22).ravel(), q12.ravel()
    z, w = hermite_rule(n_nodes)
    n = len(z)
    r1, r2 = np.sqrt(lo), np.sqrt(hi)  # (P,)
    denom = r1 * r2
    c = np.divide(q12, denom, out=np.zeros_like(q12), where=denom > 0)
    c = np.clip(c, -1.0, 1.0)
    s = np.sqrt(1.0 - c * c)
    r2c, r2s = r2 * c, r2 * s  # (P,)
    za, zb = np.repeat(z, n), np.tile(z, n)  # (n * n,): node pair (a, b) at a * n + b
    size = q12.size
    block = max(1, min(size, _PAIR_BLOCK // (n * n)))
    arg, part = np.empty((block, n * n)), np.empty((block, n * n))
    inner = [np.empty((size, n)) for _ in functions]  # (P, n): sums over the second node
    for start in range(0, size, block):
        stop = min(start + block, size)
        m = stop - start
        a, t = arg[:m], part[:m]  # (m, n * n)
        np.multiply(r2c[start:stop, None], za, out=a)
        np.multiply(r2s[start:stop, None], zb, out=t)
        np.add(a, t, out=a)  # r2 c z_a + r2 s z_b, as expectation_2d rounds it
        for f, gv in zip(functions, inner):
            np.multiply(f(a).reshape(m, n, n), w, out=t.reshape(m, n, n))
            t.reshape(m, n, n).sum(axis=-1, out=gv[start:stop])
    outs = []
    for f, gv in zip(functions, inner):
        out = np.zeros(size)
        for k in range(n):  # the outer sum, in expectation_2d's order
            out += w[k] * f(r1 * z[k]) * gv[:, k]
        outs.append(out.reshape(shape))
    return outs
