"""Closed-form dual activations: E[phi(u) phi(v)] and E[phi'(u) phi'(v)].

Every function takes broadcastable arrays ``q11, q22, q12``: the covariance of the centred
Gaussian pair (u, v). Correlations are clipped into [-1, 1] by the caller
(:func:`clip_covariance`), so ``q11 * q22 - q12**2 >= 0`` up to rounding, which each formula
clamps at zero where it takes a square root.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "clip_covariance",
    "ab_relu_nngp",
    "ab_relu_factor",
    "erf_nngp",
    "erf_factor",
    "gelu_nngp",
    "gelu_factor",
    "gabor_nngp",
    "gabor_factor",
    "sine_nngp",
    "sine_factor",
]


def clip_covariance(q11, q22, q12):
    """Clip ``q12`` so that the correlation ``q12 / sqrt(q11 q22)`` lies in [-1, 1]."""
    bound = np.sqrt(q11 * q22)
    return np.clip(q12, -bound, bound)


def _det(q11, q22, q12):
    """``q11 q22 - q12^2`` as ``(r - q12)(r + q12)`` with ``r = sqrt(q11 q22)``, clamped at 0.

    The factored form is exactly 0 at correlation +-1 (``q12 = +-r``, as clipping produces),
    where the expanded form leaves a rounding residue whose square root is ~1e-8.
    """
    r = np.sqrt(q11 * q22)
    return np.maximum((r - q12) * (r + q12), 0.0)


def ab_relu_nngp(q11, q22, q12, a: float, b: float):
    """E[phi(u) phi(v)] for ``phi(z) = a min(z, 0) + b max(z, 0)`` (Cho & Saul 2009).

    With ``s = sqrt(q11 q22 - q12^2)`` and ``theta = arctan2(s, q12)`` (angle between u and v):
    ``(a-b)^2 s / (2 pi) + [(a^2 + b^2)/2 - (a-b)^2 theta / (2 pi)] q12``.
    ReLU is a=0, b=1; leaky ReLU a=alpha, b=1; abs a=-1, b=1.
    """
    s = np.sqrt(_det(q11, q22, q12))
    theta = np.arctan2(s, q12)
    d2 = (a - b) ** 2
    return d2 / (2 * np.pi) * s + ((a * a + b * b) / 2 - d2 * theta / (2 * np.pi)) * q12


def ab_relu_factor(q11, q22, q12, a: float, b: float):
    """E[phi'(u) phi'(v)] for AB-ReLU: ``(a^2 + b^2)/2 - (a-b)^2 theta / (2 pi)``."""
    s = np.sqrt(_det(q11, q22, q12))
    theta = np.arctan2(s, q12)
    return (a * a + b * b) / 2 - (a - b) ** 2 * theta / (2 * np.pi)


def erf_nngp(q11, q22, q12):
    """E[erf(u) erf(v)] = (2/pi) arcsin(2 q12 / sqrt((1 + 2 q11)(1 + 2 q22))) (Williams 1997)."""
    ratio = 2 * q12 / np.sqrt((1 + 2 * q11) * (1 + 2 * q22))
    return (2 / np.pi) * np.arcsin(np.clip(ratio, -1.0, 1.0))


def erf_factor(q11, q22, q12):
    """E[erf'(u) erf'(v)] = (4/pi) / sqrt((1 + 2 q11)(1 + 2 q22) - 4 q12^2) (Williams 1997)."""
    return (4 / np.pi) / np.sqrt((1 + 2 * q11) * (1 + 2 * q22) - 4 * q12 * q12)


def gelu_nngp(q11, q22, q12):
    """E[g(u) g(v)] for the exact GeLU ``g(z) = z Phi(z)`` (Tsuchida et al. 2020, arXiv:2002.08517).

    With ``D^2 = (1 + q11)(1 + q22) - q12^2`` and ``alpha = arctan2(q12, D)``:
    ``q12/4 + [(q12^2 + q11 q22 D^2) / ((1 + q11)(1 + q22) D) + q12 alpha] / (2 pi)``.
    """
    p11, p22 = 1 + q11, 1 + q22
    d = np.sqrt(p11 * p22 - q12 * q12)
    alpha = np.arctan2(q12, d)
    return q12 / 4 + ((q12 * q12 + q11 * q22 * d * d) / (p11 * p22 * d) + q12 * alpha) / (2 * np.pi)


def gelu_factor(q11, q22, q12):
    """E[g'(u) g'(v)] for the exact GeLU (Tsuchida et al. 2020).

    ``1/4 + alpha/(2 pi) + q12/(2 pi D) [1/D^2 + (1 - q11 q22)/((1 + q11)(1 + q22)) + 1]``
    with D and alpha as in :func:`gelu_nngp`.
    """
    p11, p22 = 1 + q11, 1 + q22
    d2 = p11 * p22 - q12 * q12
    d = np.sqrt(d2)
    alpha = np.arctan2(q12, d)
    bracket = 1 / d2 + (1 - q11 * q22) / (p11 * p22) + 1
    return 0.25 + alpha / (2 * np.pi) + q12 / (2 * np.pi * d) * bracket


def _gabor_terms(q11, q22, q12):
    s = q11 + q22
    delta = 4 * _det(q11, q22, q12)
    d = 1 + 2 * s + delta
    e = np.exp(-(s + delta + 2 * q12) / (2 * d))
    return s, delta, d, e


def gabor_nngp(q11, q22, q12):
    """E[phi(u) phi(v)] for ``phi(z) = exp(-z^2) sin z`` (Han et al. 2022, arXiv:2209.04121).

    With ``s = q11 + q22``, ``Delta = 4 (q11 q22 - q12^2)``, ``D = 1 + 2 s + Delta`` and
    ``E = exp(-(s + Delta + 2 q12) / (2 D))``: ``E (exp(2 q12 / D) - 1) / (2 sqrt(D))``.
    """
    _, _, d, e = _gabor_terms(q11, q22, q12)
    return e * np.expm1(2 * q12 / d) / (2 * np.sqrt(d))


def gabor_factor(q11, q22, q12):
    """E[phi'(u) phi'(v)] for the Gabor activation (Han et al. 2022).

    ``E [(S - T) + exp(2 q12 / D) (S + T)] / (2 D^(5/2))`` with
    ``S = 1 + 2 s + 4 (q12^2 + q11 q22)`` and ``T = 4 q12 (Delta + 3 s + 2)``.
    """
    s, delta, d, e = _gabor_terms(q11, q22, q12)
    big_s = 1 + 2 * s + 4 * (q12 * q12 + q11 * q22)
    big_t = 4 * q12 * (delta + 3 * s + 2)
    return e * ((big_s - big_t) + np.exp(2 * q12 / d) * (big_s + big_t)) / (2 * d**2.5)


def sine_nngp(q11, q22, q12, a: float, b: float, c: float):
    """E[phi(u) phi(v)] for ``phi(z) = a sin(b z + c)``.

    From ``sin A sin B = [cos(A - B) - cos(A + B)] / 2`` and ``E cos(w) = exp(-Var(w) / 2)``:
    ``(a^2 / 2) [exp(b^2 (q12 - s/2)) - exp(-b^2 (q12 + s/2)) cos 2c]`` with ``s = q11 + q22``.
    """
    half = (q11 + q22) / 2
    b2 = b * b
    return (a * a / 2) * (np.exp(b2 * (q12 - half)) - np.exp(-b2 * (q12 + half)) * np.cos(2 * c))


def sine_factor(q11, q22, q12, a: float, b: float, c: float):
    """E[phi'(u) phi'(v)] for ``a sin(b z + c)``: the NNGP of ``a b sin(b z + c + pi/2)``."""
    half = (q11 + q22) / 2
    b2 = b * b
    return (a * a * b2 / 2) * (
        np.exp(b2 * (q12 - half)) + np.exp(-b2 * (q12 + half)) * np.cos(2 * c)
    )
