"""Elementwise activations, each defined once: its finite view and its infinite view side by side.

Each activation is a small frozen dataclass, as a layer is in Neural Tangents' stax:

- ``phi(x)``, ``dphi(x)``: the function and its derivative, elementwise on arrays (the finite
  network of :mod:`wideinf.networks`);
- ``duals(q11, q22, q12)``: ``(E[phi(u) phi(v)], E[phi'(u) phi'(v)])`` for
  (u, v) ~ N(0, [[q11, q12], [q12, q22]]), the NNGP dual and the factor by which the NTK is
  multiplied (the infinite network of :mod:`wideinf.kernels`). This is the one place each
  formula lives; ``nngp``, ``factor`` and ``diagonal`` are views of it;
- ``max_variance``: the pre-activation variance up to which ``duals`` holds its documented
  accuracy (infinite for a closed form). The kernel recursion reports larger variances in
  :attr:`wideinf.kernels.Kernel.warnings`.

``duals`` takes broadcastable arrays (the tiled kernel passes q11 (ti, 1), q22 (1, tj),
q12 (ti, tj)) and keeps the dtype of its arguments. Rounding can put ``|q12|`` slightly above
``sqrt(q11 q22)`` (correlation 1 + 1e-16, e.g. duplicate points): each formula gives the
correlation-1 value there (clamping ``q11 q22 - q12^2`` at 0, :func:`_det`, or clipping its
correlation) or is smooth there. Special cases go through the general case: relu, leaky_relu and
abs are :class:`ABReLU`; cos is :class:`Sine` with a phase. Any other smooth activation is
integrated by Gauss-Hermite quadrature (:class:`Numerical`). Adding an activation: a class
here and an entry in :data:`CLOSED_FORM` (or :data:`NUMERICAL`), plus its tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import ConfigError
from .kernels.quadrature import DEFAULT_NODES, paired_expectations

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
    "activation_parameters",
    "make_activation",
]

TWO_PI = 2 * np.pi


class Activation:
    """Interface shared by every activation (see the module docstring)."""

    name: str = "activation"
    max_variance: float = math.inf

    def phi(self, x):
        raise NotImplementedError

    def dphi(self, x):
        raise NotImplementedError

    def duals(self, q11, q22, q12):
        """``(E[phi(u) phi(v)], E[phi'(u) phi'(v)])``, each of the broadcast shape."""
        raise NotImplementedError

    def nngp(self, q11, q22, q12):
        """E[phi(u) phi(v)]: the NNGP dual."""
        return self.duals(q11, q22, q12)[0]

    def factor(self, q11, q22, q12):
        """E[phi'(u) phi'(v)]: the factor by which the NTK is multiplied."""
        return self.duals(q11, q22, q12)[1]

    def diagonal(self, q):
        """``(E[phi(u)^2], E[phi'(u)^2])`` for u ~ N(0, q): the duals at correlation exactly 1."""
        return self.duals(q, q, q)


def _det(q11, q22, q12):
    """``q11 q22 - q12^2`` as ``(r - q12)(r + q12)`` with ``r = sqrt(q11 q22)``, clamped at 0.

    The factored form is exactly 0 at correlation +-1 (``q12 = +-r``) and the clamp makes it 0
    where rounding puts ``|q12|`` above r (duplicate points, and any two points of a 1-D input
    after the first layer); the expanded form would leave a residue whose square root is ~1e-8.
    """
    r = np.sqrt(q11 * q22)
    return np.maximum((r - q12) * (r + q12), 0.0)


@dataclass(frozen=True)
class ABReLU(Activation):
    """``phi(z) = a min(z, 0) + b max(z, 0)``: relu (0, 1), leaky_relu (alpha, 1), abs (-1, 1).

    The arc-cosine kernel (Cho & Saul 2009). With ``s = sqrt(q11 q22 - q12^2)`` and
    ``theta = arctan2(s, q12)``, the angle between u and v:

    - factor ``(a^2 + b^2)/2 - (a - b)^2 theta / (2 pi)``;
    - NNGP ``(a - b)^2 s / (2 pi) + factor q12``.

    For ReLU: ``(s + (pi - theta) q12) / (2 pi)`` and ``(pi - theta) / (2 pi)``.
    """

    a: float = 0.0
    b: float = 1.0
    name: str = "relu"

    def phi(self, x):
        return np.where(x > 0, self.b * x, self.a * x)

    def dphi(self, x):
        return np.where(x > 0, self.b, self.a) * np.ones_like(x)

    def duals(self, q11, q22, q12):
        a, b = self.a, self.b
        d2 = (a - b) ** 2
        s = np.sqrt(_det(q11, q22, q12))
        theta = np.arctan2(s, q12)
        factor = (a * a + b * b) / 2 - d2 * theta / TWO_PI
        return d2 / TWO_PI * s + factor * q12, factor


@dataclass(frozen=True)
class Erf(Activation):
    """``phi(z) = erf(z)`` (Williams 1997), with ``P = (1 + 2 q11)(1 + 2 q22)``:

    - NNGP ``(2/pi) arcsin(2 q12 / sqrt(P))``;
    - factor ``(4/pi) / sqrt(P - 4 q12^2)``.
    """

    name: str = "erf"

    def phi(self, x):
        return _erf(x)

    def dphi(self, x):
        return (2 / np.sqrt(np.pi)) * np.exp(-x * x)

    def duals(self, q11, q22, q12):
        p = (1 + 2 * q11) * (1 + 2 * q22)
        nngp = (2 / np.pi) * np.arcsin(np.clip(2 * q12 / np.sqrt(p), -1.0, 1.0))
        return nngp, (4 / np.pi) / np.sqrt(p - 4 * q12 * q12)


@dataclass(frozen=True)
class Gelu(Activation):
    """Exact GeLU ``phi(z) = z Phi(z)``, Phi the standard normal CDF (Tsuchida et al. 2020,
    arXiv:2002.08517). With ``D^2 = (1 + q11)(1 + q22) - q12^2`` and ``alpha = arctan2(q12, D)``:

    - NNGP ``q12/4 + [(q12^2 + q11 q22 D^2) / ((1 + q11)(1 + q22) D) + q12 alpha] / (2 pi)``;
    - factor ``1/4 + alpha/(2 pi) + q12/(2 pi D) [1/D^2 + (1 - q11 q22)/((1 + q11)(1 + q22)) + 1]``.
    """

    name: str = "gelu"

    def phi(self, x):
        return x * 0.5 * (1 + _erf(x / np.sqrt(2)))

    def dphi(self, x):
        return 0.5 * (1 + _erf(x / np.sqrt(2))) + x * np.exp(-x * x / 2) / np.sqrt(2 * np.pi)

    def duals(self, q11, q22, q12):
        pp, qq, sq = (1 + q11) * (1 + q22), q11 * q22, q12 * q12
        d2 = pp - sq
        d = np.sqrt(d2)
        alpha = np.arctan2(q12, d)
        nngp = q12 / 4 + ((sq + qq * d * d) / (pp * d) + q12 * alpha) / TWO_PI
        bracket = 1 / d2 + (1 - qq) / pp + 1
        return nngp, 0.25 + alpha / TWO_PI + q12 / (TWO_PI * d) * bracket


@dataclass(frozen=True)
class Gabor(Activation):
    """``phi(z) = exp(-z^2) sin z``, Neural Tangents' ``Gabor`` (Han et al. 2022,
    arXiv:2209.04121). With ``s = q11 + q22``, ``Delta = 4 (q11 q22 - q12^2)``,
    ``D = 1 + 2 s + Delta`` and ``E = exp(-(s + Delta + 2 q12) / (2 D))``:

    - NNGP ``E (exp(2 q12 / D) - 1) / (2 sqrt(D))``; on the diagonal
      ``(1 - exp(-2q / (1 + 4q))) / (2 sqrt(1 + 4q))``;
    - factor ``E [(S - T) + exp(2 q12 / D) (S + T)] / (2 D^(5/2))`` with
      ``S = 1 + 2 s + 4 (q12^2 + q11 q22)`` and ``T = 4 q12 (Delta + 3 s + 2)``.
    """

    name: str = "gabor"

    def phi(self, x):
        return np.exp(-x * x) * np.sin(x)

    def dphi(self, x):
        return np.exp(-x * x) * (np.cos(x) - 2 * x * np.sin(x))

    def duals(self, q11, q22, q12):
        s = q11 + q22
        delta = 4 * _det(q11, q22, q12)
        one_2s = 1 + 2 * s
        d = one_2s + delta
        two_q12 = 2 * q12
        e = np.exp(-(s + delta + two_q12) / (2 * d))
        ratio = two_q12 / d
        nngp = e * np.expm1(ratio) / (2 * np.sqrt(d))
        big_s = one_2s + 4 * (q12 * q12 + q11 * q22)
        big_t = 2 * two_q12 * (delta + 3 * s + 2)
        return nngp, e * ((big_s - big_t) + np.exp(ratio) * (big_s + big_t)) / (2 * d**2.5)


@dataclass(frozen=True)
class Sine(Activation):
    """``phi(z) = a sin(b z + c)``; ``cos`` is this with ``c + pi/2``.

    From ``sin A sin B = [cos(A - B) - cos(A + B)] / 2`` and ``E cos(w) = exp(-Var(w) / 2)``,
    with ``s = q11 + q22``: NNGP ``(a^2 / 2) [exp(b^2 (q12 - s/2)) - exp(-b^2 (q12 + s/2)) cos 2c]``;
    the factor is the NNGP of ``phi' = a b sin(b z + c + pi/2)``:
    ``(a^2 b^2 / 2) [exp(b^2 (q12 - s/2)) + exp(-b^2 (q12 + s/2)) cos 2c]``.
    """

    a: float = 1.0
    b: float = 1.0
    c: float = 0.0
    name: str = "sin"

    def phi(self, x):
        return self.a * np.sin(self.b * x + self.c)

    def dphi(self, x):
        return self.a * self.b * np.cos(self.b * x + self.c)

    def duals(self, q11, q22, q12):
        a, half, b2 = self.a, (q11 + q22) / 2, self.b * self.b
        same = np.exp(b2 * (q12 - half))
        opposite = np.exp(-b2 * (q12 + half)) * float(np.cos(2 * self.c))
        return (a * a / 2) * (same - opposite), (a * a * b2 / 2) * (same + opposite)


@dataclass(frozen=True)
class Identity(Activation):
    """``phi(z) = z``: the dual is the covariance itself and the factor is 1."""

    name: str = "identity"

    def phi(self, x):
        return np.asarray(x, dtype=float).copy()

    def dphi(self, x):
        return np.ones_like(x, dtype=float)

    def duals(self, q11, q22, q12):
        nngp = np.array(np.broadcast_arrays(q11, q22, q12)[2])  # a copy, in q12's dtype
        return nngp, np.ones_like(nngp)


def _erf(x):
    from scipy.special import erf  # lazily: scipy.special costs ~0.3 s of start-up

    return erf(x)


def _sigmoid(x):
    from scipy.special import expit

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


# name -> (phi, dphi); integrated by Gauss-Hermite quadrature. Only smooth activations: a kink
# in phi' (elu, softsign) makes the rule converge algebraically, to percent-level errors.
NUMERICAL = {
    "tanh": (np.tanh, _dtanh),
    "sigmoid": (_sigmoid, _dsigmoid),
    "softplus": (_softplus, _sigmoid),
    "swish": (_swish, _dswish),
    "silu": (_swish, _dswish),
}


@dataclass(frozen=True)
class Numerical(Activation):
    """Any elementwise activation from :data:`NUMERICAL`, its duals by 2-D Gauss-Hermite.

    phi and phi' are integrated together on shared nodes
    (:func:`wideinf.kernels.quadrature.paired_expectations`), in float64. The default 64-node
    rule keeps the NTK factor of tanh within 1e-3 of the scale ``sqrt(E[phi'(u)^2]
    E[phi'(v)^2])`` while the pre-activation variances stay at or below ``max_variance = 3``,
    within 5e-2 up to 10 (:mod:`wideinf.kernels.quadrature`); beyond 3 the kernel warns.
    """

    name: str = "tanh"
    nodes: int = DEFAULT_NODES
    max_variance = 3.0  # class constant, not a field: the range the stated accuracy covers

    def phi(self, x):
        return NUMERICAL[self.name][0](x)

    def dphi(self, x):
        return NUMERICAL[self.name][1](x)

    def duals(self, q11, q22, q12):
        nngp, factor = paired_expectations((self.phi, self.dphi), q11, q22, q12, self.nodes)
        return nngp, factor


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
    return {"nodes": DEFAULT_NODES}


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
    return Numerical(name, int(values["nodes"]))
