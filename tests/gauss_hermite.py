"""Gauss-Hermite quadrature: the reference the closed-form duals are tested against.

For (u, v) ~ N(0, [[q11, q12], [q12, q22]]) write ``u = sqrt(q11) z1`` and
``v = sqrt(q22) (c z1 + sqrt(1 - c^2) z2)`` with ``c = q12 / sqrt(q11 q22)`` and z1, z2
independent standard normals (the Cholesky factor of the 2x2 covariance). Then

    E[f(u) g(v)] ~= sum_a sum_b w_a w_b f(u_a) g(v_ab)

with the probabilists' Gauss-Hermite nodes ``z`` and weights ``w`` (normalised to sum to 1).
An n-node rule is exact when f(u) g(v) is a polynomial of degree < 2n in (z1, z2); for the
entire closed-form activations at variances up to 3 it converges super-geometrically
(``tests/test_duals.py`` checks 300 nodes against 350). It converges slowly once the integrand
varies on a scale finer than the node spacing (tanh' at large variance) or has a kink, which
is why the smooth activations use a Mehler series instead (``docs/smooth-activations.md``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["DEFAULT_NODES", "hermite_rule", "expectation_2d", "expectation_1d"]

DEFAULT_NODES = 64


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
