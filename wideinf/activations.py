"""Elementwise activations: the finite view (phi, phi') and the infinite view (its duals).

Each activation is a frozen dataclass with
``phi(x)``, ``dphi(x)``: the function and its derivative, elementwise on arrays;
``nngp(q11, q22, q12)``: E[phi(u) phi(v)] for (u, v) ~ N(0, [[q11, q12], [q12, q22]]);
``factor(q11, q22, q12)``: E[phi'(u) phi'(v)], the factor by which the NTK is multiplied.
Closed forms live in :mod:`wideinf.kernels.duals`; the smooth activations of
:mod:`wideinf.kernels.smooth_activations` (tanh, sigmoid, softplus, swish, mish, elu, selu,
softsign) get theirs from a Mehler series (:mod:`wideinf.kernels.smooth`), to about 1e-14.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import ConfigError
from .kernels import duals
from .kernels.smooth_activations import SMOOTH, SmoothActivation, smooth_activation

__all__ = [
    "Activation",
    "ABReLU",
    "Erf",
    "Gelu",
    "Gabor",
    "Sine",
    "Identity",
    "Numerical",
    "CLOSED_FORM",
    "NUMERICAL",
    "ACTIVATION_NAMES",
    "make_activation",
]


class Activation:
    """Interface shared by every activation (see module docstring)."""

    name: str = "activation"

    def phi(self, x):
        raise NotImplementedError

    def dphi(self, x):
        raise NotImplementedError

    def nngp(self, q11, q22, q12):
        raise NotImplementedError

    def factor(self, q11, q22, q12):
        raise NotImplementedError


@dataclass(frozen=True)
class ABReLU(Activation):
    """``phi(z) = a min(z, 0) + b max(z, 0)``: relu (0, 1), leaky_relu (alpha, 1), abs (-1, 1)."""

    a: float = 0.0
    b: float = 1.0
    name: str = "relu"

    def phi(self, x):
        return np.where(x > 0, self.b * x, self.a * x)

    def dphi(self, x):
        return np.where(x > 0, self.b, self.a) * np.ones_like(x)

    def nngp(self, q11, q22, q12):
        return duals.ab_relu_nngp(q11, q22, q12, self.a, self.b)

    def factor(self, q11, q22, q12):
        return duals.ab_relu_factor(q11, q22, q12, self.a, self.b)


@dataclass(frozen=True)
class Erf(Activation):
    """``phi(z) = erf(z)``."""

    name: str = "erf"

    def phi(self, x):
        return _erf(x)

    def dphi(self, x):
        return (2 / np.sqrt(np.pi)) * np.exp(-x * x)

    def nngp(self, q11, q22, q12):
        return duals.erf_nngp(q11, q22, q12)

    def factor(self, q11, q22, q12):
        return duals.erf_factor(q11, q22, q12)


@dataclass(frozen=True)
class Gelu(Activation):
    """Exact GeLU ``phi(z) = z Phi(z)`` with Phi the standard normal CDF."""

    name: str = "gelu"

    def phi(self, x):
        return x * 0.5 * (1 + _erf(x / np.sqrt(2)))

    def dphi(self, x):
        return 0.5 * (1 + _erf(x / np.sqrt(2))) + x * np.exp(-x * x / 2) / np.sqrt(2 * np.pi)

    def nngp(self, q11, q22, q12):
        return duals.gelu_nngp(q11, q22, q12)

    def factor(self, q11, q22, q12):
        return duals.gelu_factor(q11, q22, q12)


@dataclass(frozen=True)
class Gabor(Activation):
    """``phi(z) = exp(-z^2) sin z`` (Neural Tangents' ``Gabor``)."""

    name: str = "gabor"

    def phi(self, x):
        return np.exp(-x * x) * np.sin(x)

    def dphi(self, x):
        return np.exp(-x * x) * (np.cos(x) - 2 * x * np.sin(x))

    def nngp(self, q11, q22, q12):
        return duals.gabor_nngp(q11, q22, q12)

    def factor(self, q11, q22, q12):
        return duals.gabor_factor(q11, q22, q12)


@dataclass(frozen=True)
class Sine(Activation):
    """``phi(z) = a sin(b z + c)``; ``cos`` is this with ``c + pi/2``."""

    a: float = 1.0
    b: float = 1.0
    c: float = 0.0
    name: str = "sin"

    def phi(self, x):
        return self.a * np.sin(self.b * x + self.c)

    def dphi(self, x):
        return self.a * self.b * np.cos(self.b * x + self.c)

    def nngp(self, q11, q22, q12):
        return duals.sine_nngp(q11, q22, q12, self.a, self.b, self.c)

    def factor(self, q11, q22, q12):
        return duals.sine_factor(q11, q22, q12, self.a, self.b, self.c)


@dataclass(frozen=True)
class Identity(Activation):
    """``phi(z) = z``: the dual is the covariance itself and the factor is 1."""

    name: str = "identity"

    def phi(self, x):
        return np.asarray(x, dtype=float).copy()

    def dphi(self, x):
        return np.ones_like(x, dtype=float)

    def nngp(self, q11, q22, q12):
        return np.broadcast_arrays(q11, q22, q12)[2].astype(float, copy=True)

    def factor(self, q11, q22, q12):
        return np.ones(np.broadcast_shapes(np.shape(q11), np.shape(q22), np.shape(q12)))


def _erf(x):
    from scipy.special import erf  # lazily: scipy.special costs ~0.3 s of start-up

    return erf(x)


# name -> (phi, dphi, {parameter: default}, kink at 0): duals by the Mehler series of
# wideinf.kernels.smooth, with a 2-D rule near correlation +-1.
NUMERICAL = SMOOTH
Numerical = SmoothActivation


# name -> (constructor, {parameter: default}); each constructor takes the parameters by name.
CLOSED_FORM = {
    "relu": (lambda: ABReLU(0.0, 1.0, "relu"), {}),
    "leaky_relu": (lambda alpha: ABReLU(alpha, 1.0, "leaky_relu"), {"alpha": 0.01}),
    "abs": (lambda: ABReLU(-1.0, 1.0, "abs"), {}),
    "erf": (Erf, {}),
    "gelu": (Gelu, {}),
    "gabor": (Gabor, {}),
    "sin": (lambda a, b, c: Sine(a, b, c, "sin"), {"a": 1.0, "b": 1.0, "c": 0.0}),
    "cos": (lambda a, b, c: Sine(a, b, c + np.pi / 2, "cos"), {"a": 1.0, "b": 1.0, "c": 0.0}),
    "identity": (Identity, {}),
}

ACTIVATION_NAMES = tuple(CLOSED_FORM) + tuple(NUMERICAL)


def activation_parameters(name: str) -> dict:
    """The parameters an activation accepts, with their defaults."""
    if name in CLOSED_FORM:
        return dict(CLOSED_FORM[name][1])
    return dict(NUMERICAL[name][2])


def make_activation(name: str, **params) -> Activation:
    """Build an activation by name; ``params`` must be among :func:`activation_parameters`."""
    if name not in ACTIVATION_NAMES:
        raise ConfigError(f"unknown activation {name!r}; valid: {', '.join(ACTIVATION_NAMES)}")
    allowed = activation_parameters(name)
    unknown = set(params) - set(allowed)
    if unknown:
        raise ConfigError(
            f"activation {name!r} takes no parameter {sorted(unknown)[0]!r}; "
            f"valid: {', '.join(allowed) or 'none'}"
        )
    values = {**allowed, **params}
    if name in CLOSED_FORM:
        return CLOSED_FORM[name][0](**values)
    return smooth_activation(name, **values)
