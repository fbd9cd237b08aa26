"""Smooth activations whose duals come from :class:`wideinf.kernels.smooth.SmoothDual`.

Each entry of :data:`SMOOTH` is ``name -> (phi, dphi, {parameter: default}, kink)``, where
``phi(x, **params)`` and ``dphi(x, **params)`` are elementwise and ``kink`` says that phi' (or
phi'') jumps at 0. :class:`SmoothActivation` is the activation object (phi, dphi, nngp,
factor), built by :func:`smooth_activation`; its dual is cached per (name, parameters), so the
Hermite rules are set up once.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .smooth import SmoothDual

__all__ = ["SMOOTH", "SmoothActivation", "smooth_activation", "SELU_ALPHA", "SELU_SCALE"]

# Klambauer et al. 2017 (arXiv:1706.02515), eq. 14.
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def _sigmoid(x):
    from scipy.special import expit  # lazily: scipy.special costs ~0.3 s of start-up

    return expit(x)


def _dsigmoid(x):
    s = _sigmoid(x)
    return s * (1 - s)


def _dtanh(x):
    t = np.tanh(x)
    return 1.0 - t * t


def _softplus(x):
    return np.logaddexp(0.0, x)


def _swish(x):
    return x * _sigmoid(x)


def _dswish(x):
    s = _sigmoid(x)
    return s + x * s * (1 - s)


def _mish(x):
    return x * np.tanh(_softplus(x))


def _dmish(x):
    t = np.tanh(_softplus(x))
    return t + x * _sigmoid(x) * (1 - t * t)


def _elu(x, alpha=1.0):
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0)))


def _delu(x, alpha=1.0):
    return np.where(x > 0, 1.0, alpha * np.exp(np.minimum(x, 0.0)))


def _selu(x):
    return SELU_SCALE * _elu(x, SELU_ALPHA)


def _dselu(x):
    return SELU_SCALE * _delu(x, SELU_ALPHA)


def _softsign(x):
    return x / (1 + np.abs(x))


def _dsoftsign(x):
    d = 1 + np.abs(x)
    return 1 / (d * d)


SMOOTH = {
    "tanh": (np.tanh, _dtanh, {}, False),
    "sigmoid": (_sigmoid, _dsigmoid, {}, False),
    "softplus": (_softplus, _sigmoid, {}, False),
    "swish": (_swish, _dswish, {}, False),
    "silu": (_swish, _dswish, {}, False),
    "mish": (_mish, _dmish, {}, False),
    "elu": (_elu, _delu, {"alpha": 1.0}, True),
    "selu": (_selu, _dselu, {}, True),
    "softsign": (_softsign, _dsoftsign, {}, True),
}


@dataclass(frozen=True)
class SmoothActivation:
    """An activation from :data:`SMOOTH`: phi, phi' and their exact duals.

    ``params`` is a tuple of ``(name, value)`` pairs (hashable, so the object is too).
    """

    name: str = "tanh"
    params: tuple = ()

    def phi(self, x):
        return SMOOTH[self.name][0](x, **dict(self.params))

    def dphi(self, x):
        return SMOOTH[self.name][1](x, **dict(self.params))

    @property
    def dual(self) -> SmoothDual:
        return _dual(self.name, self.params)

    def nngp(self, q11, q22, q12):
        """E[phi(u) phi(v)] (see :class:`~wideinf.kernels.smooth.SmoothDual`)."""
        return self.dual.nngp(q11, q22, q12)

    def factor(self, q11, q22, q12):
        """E[phi'(u) phi'(v)]."""
        return self.dual.factor(q11, q22, q12)


@lru_cache(maxsize=32)
def _dual(name: str, params: tuple) -> SmoothDual:
    phi, dphi, _, kink = SMOOTH[name]
    kw = dict(params)
    return SmoothDual(lambda x: phi(x, **kw), lambda x: dphi(x, **kw), kink=kink)


def smooth_activation(name: str, **params) -> SmoothActivation:
    """The activation ``name`` of :data:`SMOOTH` with ``params`` (defaults filled in)."""
    values = {**SMOOTH[name][2], **params}
    return SmoothActivation(name, tuple(sorted((k, float(v)) for k, v in values.items())))
