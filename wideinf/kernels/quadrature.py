"""Gauss-Hermite quadrature for the dual of any elementwise activation.

For (u, v) ~ N(0, [[q11, q12], [q12, q22]]) write ``u = sqrt(q11) z1`` and
``v = sqrt(q22) (c z1 + sqrt(1 - c^2) z2)`` with ``c = q12 / sqrt(q11 q22)`` and z1, z2
independent standard normals (the Cholesky factor of the 2x2 covariance). Then

    E[f(u) g(v)] ~= sum_a sum_b w_a w_b f(u_a) g(v_ab)

with the probabilists' Gauss-Hermite nodes ``z`` and weights ``w`` (normalised to sum to 1).
An n-node rule is exact when f(u) g(v) is a polynomial of degree < 2n in (z1, z2); for the
smooth activations shipped (tanh, sigmoid, softplus, swish) 64 nodes give about 1e-12 relative
accuracy at variances up to 10 (see ``tests/test_duals.py``); kinks (elu) converge slower.
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
    the second node.
    """
    q11, q22, q12 = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (q11, q22, q12)))
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
        gv = g(r2c * za + r2s * z) @ w  # (...)
        out += wa * fu * gv
    return out
