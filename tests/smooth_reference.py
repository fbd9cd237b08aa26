"""Independent reference values of E[f(u) f(v)] by adaptive Gauss-Kronrod quadrature.

Used by ``tests/test_smooth.py`` and ``benchmarks/bench_smooth.py``. The activations are written again here with the ``math``
module's scalar functions (not wideinf's), and the expectation is a nested adaptive quadrature
(``scipy.integrate.quad``, QUADPACK, absolute tolerance 1e-15 and relative 1e-13) of
``E[f(u) f(v)] = E_z[ f(sqrt(q1) z) E_y[ f(sqrt(q2) (rho z + sqrt(1 - rho^2) y)) ] ]``
with the intervals split at the kink (x = 0, in both integrals) and on the scale of the
integrand, at float64 inputs (q1, q2, rho). QUADPACK's own error estimates are returned too.
"""

from __future__ import annotations

import math
import warnings

from scipy import integrate

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def _sig(x):
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


def _sp(x):
    return x + math.log1p(math.exp(-x)) if x > 0 else math.log1p(math.exp(x))


def _dmish(x):
    t = math.tanh(_sp(x))
    return t + x * _sig(x) * (1 - t * t)


FUNCTIONS = {
    "relu": (lambda x: max(x, 0.0), lambda x: 1.0 if x > 0 else 0.0),
    "erf": (math.erf, lambda x: 2 / math.sqrt(math.pi) * math.exp(-x * x)),
    "tanh": (math.tanh, lambda x: 1 / math.cosh(x) ** 2 if abs(x) < 300 else 0.0),
    "sigmoid": (_sig, lambda x: _sig(x) * _sig(-x)),
    "softplus": (_sp, _sig),
    "swish": (lambda x: x * _sig(x), lambda x: _sig(x) + x * _sig(x) * _sig(-x)),
    "mish": (lambda x: x * math.tanh(_sp(x)), _dmish),
    "elu": (lambda x: x if x > 0 else math.expm1(x), lambda x: 1.0 if x > 0 else math.exp(x)),
    "elu_0.5": (
        lambda x: x if x > 0 else 0.5 * math.expm1(x),
        lambda x: 1.0 if x > 0 else 0.5 * math.exp(x),
    ),
    "selu": (
        lambda x: SELU_SCALE * (x if x > 0 else SELU_ALPHA * math.expm1(x)),
        lambda x: SELU_SCALE * (1.0 if x > 0 else SELU_ALPHA * math.exp(x)),
    ),
    "softsign": (lambda x: x / (1 + abs(x)), lambda x: 1 / (1 + abs(x)) ** 2),
}

_TAIL = 11.0  # standard deviations: the Gaussian beyond is below 1e-27


def _quad(g, center, width):
    """Integral of g over [-11, 11] split at ``center`` and on the scale ``width`` around it."""
    pts = sorted(
        {center + s * width * m for s in (-1, 1) for m in (0.5, 2, 8)} | {center, -_TAIL, _TAIL}
    )
    pts = [p for p in pts if -_TAIL <= p <= _TAIL]
    total = err = 0.0
    for a, b in zip(pts[:-1], pts[1:]):
        with warnings.catch_warnings():
            # QUADPACK warns when 1e-16 absolute is out of reach; its estimate says by how much
            warnings.simplefilter("ignore", integrate.IntegrationWarning)
            v, e = integrate.quad(g, a, b, epsabs=1e-16, epsrel=1e-13, limit=200)
        total, err = total + v, err + e
    return total, err


def expectation(f, q1, q2, rho):
    """E[f(u) f(v)], (u, v) with variances q1, q2 and correlation rho (floats)."""
    r1, r2 = math.sqrt(q1), math.sqrt(q2)
    s = math.sqrt(max(0.0, (1 - rho) * (1 + rho)))
    c = 1 / math.sqrt(2 * math.pi)

    def inner(z):
        m = r2 * rho * z
        if s == 0:
            return f(m)
        sig = r2 * s
        return _quad(
            lambda y: c * math.exp(-y * y / 2) * f(m + sig * y), -m / sig, min(1, 1 / sig)
        )[0]

    width = min(1.0, 1 / r1) if r1 > 0 else 1.0
    return _quad(lambda z: c * math.exp(-z * z / 2) * f(r1 * z) * inner(z), 0.0, width)
