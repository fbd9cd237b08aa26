"""Elementwise activations, each defined once: its finite view and its infinite view side by side.

Each activation is a small frozen dataclass, as a layer is in Neural Tangents' stax:

- ``phi(x)``, ``dphi(x)``: the function and its derivative, for the finite networks;
- ``duals(q11, q22, q12)``: ``(E[phi(u) phi(v)], E[phi'(u) phi'(v)])`` for
  (u, v) ~ N(0, [[q11, q12], [q12, q22]]), the NNGP dual and the NTK's factor: the one place
  each formula lives (``nngp``, ``factor`` and ``diagonal`` are views of it);
- ``points(q)``: what ``duals`` needs of each point alone, computed once per layer and sliced
  like ``q`` (the variances themselves; a :class:`Smooth` activation's Hermite coefficients).

``duals`` takes broadcastable arrays (q11 (ti, 1), q22 (1, tj), q12 (ti, tj) on a tile) and
keeps their dtype. It is the kernel's inner loop: few passes, its own temporaries updated in
place, never its arguments, and no ``out=`` (the same code runs on
:class:`wideinf.kernels.dual.Dual` for derivatives). Where rounding puts ``|q12|`` just above
``sqrt(q11 q22)`` (duplicate points) each formula gives the correlation-1 value (:func:`_det`
clamps, or the correlation is clipped). relu, leaky_relu and abs are :class:`ABReLU`; cos is
:class:`Sine`; selu is :class:`ELU`; tanh, sigmoid, ... are :class:`Smooth` (Mehler series,
about 1e-14). Adding an activation: a class here, an entry in :data:`CLOSED_FORM` or
:data:`SMOOTH`, and tests. Formulas and citations: ``docs/theory.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from .errors import ConfigError
from .kernels.smooth import SmoothDual

__all__ = [
    "Activation", "ABReLU", "Erf", "Gelu", "Gabor", "Sine", "Identity",
    "Smooth", "Tanh", "Sigmoid", "Softplus", "Swish", "Mish", "ELU", "Softsign",
    "CLOSED_FORM", "SMOOTH", "ACTIVATION_NAMES", "activation_parameters", "make_activation",
]  # fmt: skip

TWO_PI = 2 * np.pi


class Activation:
    """Interface shared by every activation (see the module docstring)."""

    name: str = "activation"

    def phi(self, x):
        raise NotImplementedError

    def dphi(self, x):
        raise NotImplementedError

    def duals(self, q11, q22, q12):
        """``(E[phi(u) phi(v)], E[phi'(u) phi'(v)])``, each of the broadcast shape."""
        raise NotImplementedError

    def points(self, q):
        """Per-point data that ``duals`` accepts in place of the variances ``q``: here ``q``."""
        return q

    def nngp(self, q11, q22, q12):
        """E[phi(u) phi(v)]: the NNGP dual."""
        return self.duals(q11, q22, q12)[0]

    def factor(self, q11, q22, q12):
        """E[phi'(u) phi'(v)]: the factor by which the NTK is multiplied."""
        return self.duals(q11, q22, q12)[1]

    def diagonal(self, q):
        """``(E[phi(u)^2], E[phi'(u)^2])`` for u ~ N(0, q): the duals at correlation exactly 1."""
        return self.duals(q, q, q)


def _det(qq, q12):
    """``qq - q12^2`` (``qq = q11 q22``) as ``(r - q12)(r + q12)``, ``r = sqrt(qq)``, clamped at 0.

    The factored form is exactly 0 at correlation +-1 (``q12 = +-r``) and the clamp makes it 0
    where rounding puts ``|q12|`` above r (duplicate points, and any two points of a 1-D input
    after the first layer); the expanded form would leave a residue whose square root is ~1e-8.
    """
    r = np.sqrt(qq)
    det = r - q12
    det *= r + q12
    return np.maximum(det, 0.0)


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
        s = np.sqrt(_det(q11 * q22, q12))
        factor = np.arctan2(s, q12)  # theta, made the factor in place
        if d2 != 1:  # (relu's is 1)
            factor *= d2
        factor /= -TWO_PI  # (a division: a product by -1 / (2 pi) would change the last bit)
        factor += (a * a + b * b) / 2
        s *= d2 / TWO_PI
        s += factor * q12
        return s, factor


@dataclass(frozen=True)
class Erf(Activation):
    """``phi(z) = erf(z)`` (Williams 1997), with ``P = (1/2 + q11)(1/2 + q22)`` (his P / 4):

    - NNGP ``(2/pi) arcsin(q12 / sqrt(P))``;
    - factor ``(2/pi) / sqrt(P - q12^2)``.
    """

    name: str = "erf"

    def phi(self, x):
        return _erf(x)

    def dphi(self, x):
        return (2 / np.sqrt(np.pi)) * np.exp(-x * x)

    def duals(self, q11, q22, q12):
        p = (0.5 + q11) * (0.5 + q22)
        nngp = np.arcsin(np.clip(q12 / np.sqrt(p), -1.0, 1.0))
        nngp *= 2 / np.pi
        return nngp, (2 / np.pi) / np.sqrt(p - q12 * q12)


@dataclass(frozen=True)
class Gelu(Activation):
    """Exact GeLU ``phi(z) = z Phi(z)``, Phi the standard normal CDF (Tsuchida et al. 2020,
    arXiv:2002.08517). With ``P = (1 + q11)(1 + q22)``, ``D^2 = P - q12^2``,
    ``g = 1/4 + arctan2(q12, D) / (2 pi)`` and ``u = (1 - q11 q22) / P``:

    - NNGP ``g q12 + (q11 q22 + u q12^2) / (2 pi D)``;
    - factor ``g + q12 (1/D^2 + u + 1) / (2 pi D)``

    (their NNGP ``q12/4 + [(q12^2 + q11 q22 D^2) / (P D) + q12 alpha] / (2 pi)``, regrouped).
    """

    name: str = "gelu"

    def phi(self, x):
        return x * 0.5 * (1 + _erf(x / np.sqrt(2)))

    def dphi(self, x):
        return 0.5 * (1 + _erf(x / np.sqrt(2))) + x * np.exp(-x * x / 2) / np.sqrt(2 * np.pi)

    def duals(self, q11, q22, q12):
        p, qq, sq = (1 + q11) * (1 + q22), q11 * q22, q12 * q12
        d2 = p - sq
        d = np.sqrt(d2)
        g = np.arctan2(q12, d) / TWO_PI + 0.25
        u = (1 - qq) / p
        over = (1 / TWO_PI) / d  # 1 / (2 pi D)
        nngp = g * q12 + (qq + u * sq) * over
        return nngp, g + q12 * over * (1 / d2 + u + 1)


@dataclass(frozen=True)
class Gabor(Activation):
    """``phi(z) = exp(-z^2) sin z``, Neural Tangents' ``Gabor`` (Han et al. 2022,
    arXiv:2209.04121). With ``s = q11 + q22``, ``Delta = 4 (q11 q22 - q12^2)``,
    ``D = 1 + 2 s + Delta`` and ``E = exp(-(s + Delta + 2 q12) / (2 D))``:

    - NNGP ``E (exp(2 q12 / D) - 1) / (2 sqrt(D))``; on the diagonal
      ``(1 - exp(-2q / (1 + 4q))) / (2 sqrt(1 + 4q))``;
    - factor ``E [2 S + (exp(2 q12 / D) - 1) (S + T)] / (2 D^(5/2))`` with
      ``S = 1 + 2 s + 4 (q12^2 + q11 q22)`` and ``T = 4 q12 (Delta + 3 s + 2)``.
    """

    name: str = "gabor"

    def phi(self, x):
        return np.exp(-x * x) * np.sin(x)

    def dphi(self, x):
        return np.exp(-x * x) * (np.cos(x) - 2 * x * np.sin(x))

    def duals(self, q11, q22, q12):
        s, qq = q11 + q22, q11 * q22
        delta = 4 * _det(qq, q12)
        one_2s = 1 + 2 * s
        d = one_2s + delta
        two_q12 = 2 * q12
        e = np.exp(-0.5 * ((s + delta + two_q12) / d))  # E
        root = np.sqrt(d)
        expm1 = np.expm1(two_q12 / d)
        big_s = one_2s + 4 * (q12 * q12 + qq)
        big_t = 2 * two_q12 * (delta + 3 * s + 2)
        factor = e * (2 * big_s + expm1 * (big_s + big_t)) / (2 * d * d * root)
        return e * expm1 / (2 * root), factor


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
    from scipy.special import expit  # lazily, as _erf

    return expit(x)


def _softplus(x):
    return np.logaddexp(0.0, x)


@cache
def _series(act) -> SmoothDual:
    """The Mehler series of an activation: its rules and symmetries set up once."""
    return SmoothDual(act.phi, act.dphi, kink=act.kink)


class Smooth(Activation):
    """No closed form: ``E[phi(u) phi(v)] = sum_k a_k(q11) a_k(q22) rho^k`` (Mehler), with
    ``a_k(q) = E[phi(sqrt(q) z) He_k(z)] / sqrt(k!)`` (O'Donnell 2014, ch. 11; Daniely et al.
    2016), the factor the same with phi', and a 2-D rule near rho = +-1 at large variance:
    :class:`wideinf.kernels.smooth.SmoothDual`, within about 1e-14 of ``sqrt(E[phi(u)^2]
    E[phi(v)^2])`` (``docs/smooth-activations.md``). ``kink``: phi' or phi'' jumps at 0.
    :meth:`points` computes the coefficients of a layer's points once; :meth:`duals` takes
    slices of them in place of the variances, so a tile costs only the series.
    """

    kink = False

    def points(self, q):
        return _series(self).point_terms(q)

    def duals(self, q11, q22, q12):
        return _series(self).duals(q11, q22, q12)

    def diagonal(self, q):
        return _series(self).diagonal(q)


@dataclass(frozen=True)
class Tanh(Smooth):
    """``phi(z) = tanh z``, ``phi' = 1 - tanh^2``."""

    name: str = "tanh"
    phi = staticmethod(np.tanh)

    def dphi(self, x):
        t = np.tanh(x)
        return 1.0 - t * t


@dataclass(frozen=True)
class Sigmoid(Smooth):
    """``phi(z) = 1 / (1 + exp(-z))``, ``phi' = phi (1 - phi)``."""

    name: str = "sigmoid"
    phi = staticmethod(_sigmoid)

    def dphi(self, x):
        s = _sigmoid(x)
        return s * (1 - s)


@dataclass(frozen=True)
class Softplus(Smooth):
    """``phi(z) = log(1 + exp z)``, ``phi' = sigmoid``."""

    name: str = "softplus"
    phi, dphi = staticmethod(_softplus), staticmethod(_sigmoid)


@dataclass(frozen=True)
class Swish(Smooth):
    """``phi(z) = z sigmoid(z)`` (swish, also called silu), ``phi' = s + z s (1 - s)``."""

    name: str = "swish"

    def phi(self, x):
        return x * _sigmoid(x)

    def dphi(self, x):
        s = _sigmoid(x)
        return s + x * s * (1 - s)


@dataclass(frozen=True)
class Mish(Smooth):
    """``phi(z) = z tanh(softplus z)`` (Misra 2019), ``phi' = t + z sigmoid(z) (1 - t^2)``."""

    name: str = "mish"

    def phi(self, x):
        return x * np.tanh(_softplus(x))

    def dphi(self, x):
        t = np.tanh(_softplus(x))
        return t + x * _sigmoid(x) * (1 - t * t)


# Klambauer et al. 2017 (arXiv:1706.02515), eq. 14.
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


@dataclass(frozen=True)
class ELU(Smooth):
    """``phi(z) = scale (z if z > 0 else alpha (exp z - 1))``: elu (scale 1), selu (Klambauer
    et al. 2017: :data:`SELU_ALPHA`, :data:`SELU_SCALE`). phi' or phi'' jumps at 0: ``kink``."""

    alpha: float = 1.0
    scale: float = 1.0
    name: str = "elu"
    kink = True

    def phi(self, x):
        return self.scale * np.where(x > 0, x, self.alpha * np.expm1(np.minimum(x, 0.0)))

    def dphi(self, x):
        return self.scale * np.where(x > 0, 1.0, self.alpha * np.exp(np.minimum(x, 0.0)))


@dataclass(frozen=True)
class Softsign(Smooth):
    """``phi(z) = z / (1 + |z|)``, ``phi' = 1 / (1 + |z|)^2`` (a kink in phi' at 0)."""

    name: str = "softsign"
    kink = True

    def phi(self, x):
        return x / (1 + np.abs(x))

    def dphi(self, x):
        return 1 / (1 + np.abs(x)) ** 2


# name -> (constructor, {parameter: default}) of the Mehler-series activations; as CLOSED_FORM.
SMOOTH = {
    "tanh": (Tanh, {}),
    "sigmoid": (Sigmoid, {}),
    "softplus": (Softplus, {}),
    "swish": (Swish, {}),
    "silu": (lambda: Swish("silu"), {}),
    "mish": (Mish, {}),
    "elu": (lambda alpha: ELU(alpha, 1.0, "elu"), {"alpha": 1.0}),
    "selu": (lambda: ELU(SELU_ALPHA, SELU_SCALE, "selu"), {}),
    "softsign": (Softsign, {}),
}
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

ACTIVATION_NAMES = tuple(CLOSED_FORM) + tuple(SMOOTH)


def activation_parameters(name: str) -> dict:
    """The parameters an activation accepts, with their defaults."""
    return dict({**CLOSED_FORM, **SMOOTH}[name][1])


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
    return {**CLOSED_FORM, **SMOOTH}[name][0](**values)
