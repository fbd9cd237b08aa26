"""Every dual activation against independent quadrature, and the identities of its views.

Tolerance: 1e-10 relative to the Cauchy-Schwarz bound sqrt(E[f(u)^2] E[g(v)^2]), which is the
natural scale of E[f(u) g(v)] (a relative error to the value itself is meaningless where the
value crosses zero, e.g. odd activations at zero correlation).
"""

import numpy as np
import pytest
from gauss_hermite import expectation_1d, expectation_2d
from scipy import integrate, special

from wideinf.activations import CLOSED_FORM, make_activation

VARIANCES = [1e-6, 0.05, 1.0, 3.0]
CORRELATIONS = [-1.0, -0.8, -0.2, 0.0, 0.3, 0.9, 0.999999, 1.0]
SMOOTH = [
    ("erf", {}),
    ("gelu", {}),
    ("gabor", {}),
    ("sin", {"a": 1.3, "b": 0.7, "c": 0.4}),
    ("cos", {"a": 0.8, "b": 1.6, "c": -0.3}),
    ("identity", {}),
]
RELU_FAMILY = [("relu", {}), ("leaky_relu", {"alpha": 0.2}), ("abs", {})]


def _grid():
    for q11 in VARIANCES:
        for q22 in VARIANCES[1:]:
            for c in CORRELATIONS:
                yield q11, q22, c * np.sqrt(q11 * q22)


def _scale(f, g, q11, q22, nodes=300):
    return np.sqrt(
        expectation_1d(lambda x: f(x) ** 2, q11, nodes)
        * expectation_1d(lambda x: g(x) ** 2, q22, nodes)
    )


@pytest.mark.parametrize("name,params", SMOOTH)
def test_smooth_closed_forms_match_gauss_hermite(name, params):
    # Entire activations: Gauss-Hermite converges super-geometrically; 300 nodes agree with 350
    # to 1e-12 of the scale for variances <= 3 (checked here, so the reference is trustworthy).
    act = make_activation(name, **params)
    for q11, q22, q12 in _grid():
        for closed, f in ((act.nngp, act.phi), (act.factor, act.dphi)):
            ref = expectation_2d(f, f, q11, q22, q12, 300)
            scale = _scale(f, f, q11, q22)
            assert abs(ref - expectation_2d(f, f, q11, q22, q12, 350)) <= 1e-12 * scale + 1e-300
            assert abs(closed(q11, q22, q12) - ref) <= 1e-10 * scale + 1e-300, (name, q11, q22, q12)


def _ab_relu_reference(a, b, q11, q22, q12, derivative):
    """E[f(u) f(v)] by an outer adaptive quadrature over u with the inner expectation exact.

    Given z1, v ~ N(m, s^2) with m = sqrt(q22) c z1, s = sqrt(q22 (1 - c^2)); for
    f(v) = a min(v, 0) + b max(v, 0): E f(v) = a m + (b - a) [m Phi(m/s) + s phi(m/s)]; for
    the derivative f'(v) = a + (b - a) 1[v > 0]: E f'(v) = a + (b - a) Phi(m/s).
    """
    r1, r2 = np.sqrt(q11), np.sqrt(q22)
    c = np.clip(q12 / (r1 * r2), -1, 1)
    sd = r2 * np.sqrt(1 - c * c)

    def f(x):
        return a + (b - a) * (x > 0) if derivative else a * min(x, 0) + b * max(x, 0)

    def inner(z1):
        m = r2 * c * z1
        if sd == 0:
            return f(m)
        t = m / sd
        if derivative:
            return a + (b - a) * special.ndtr(t)
        return a * m + (b - a) * (
            m * special.ndtr(t) + sd * np.exp(-t * t / 2) / np.sqrt(2 * np.pi)
        )

    def integrand(z1):
        return np.exp(-z1 * z1 / 2) / np.sqrt(2 * np.pi) * f(r1 * z1) * inner(z1)

    total = 0.0
    for lo, hi in ((-np.inf, 0.0), (0.0, np.inf)):
        total += integrate.quad(integrand, lo, hi, epsabs=1e-14, epsrel=1e-13, limit=200)[0]
    return total


@pytest.mark.parametrize("name,params", RELU_FAMILY)
def test_ab_relu_family_matches_adaptive_quadrature(name, params):
    act = make_activation(name, **params)
    a, b = act.a, act.b
    for q11, q22, q12 in _grid():
        for derivative, closed in ((False, act.nngp), (True, act.factor)):
            ref = _ab_relu_reference(a, b, q11, q22, q12, derivative)
            scale = np.sqrt(q11 * q22) if not derivative else max(a * a, b * b)
            assert abs(closed(q11, q22, q12) - ref) <= 1e-10 * scale + 1e-300, (name, q11, q22, q12)


def test_relu_special_cases():
    # Cho & Saul: at c = 1, E[relu(u)^2] = q/2 and the factor is 1/2; at c = -1 both vanish
    # except the factor, which is 0; at c = 0, E = sqrt(q11 q22) / (2 pi), factor 1/4.
    act = make_activation("relu")
    assert act.nngp(2.0, 2.0, 2.0) == 1.0
    assert act.factor(2.0, 2.0, 2.0) == 0.5
    assert act.nngp(2.0, 2.0, -2.0) == pytest.approx(0.0, abs=1e-16)
    assert act.factor(2.0, 2.0, -2.0) == pytest.approx(0.0, abs=1e-16)
    assert act.nngp(1.0, 4.0, 0.0) == pytest.approx(2 / (2 * np.pi), rel=1e-15)
    assert act.factor(1.0, 4.0, 0.0) == pytest.approx(0.25, rel=1e-15)


def test_gabor_diagonal_formula():
    # Han et al. 2022 (docs/theory.md, "Dual activations"): E[phi(u)^2] = (1 - exp(-2q/(1+4q))) / (2 sqrt(1+4q)).
    act = make_activation("gabor")
    q = np.array([1e-8, 0.1, 1.0, 7.0])
    expected = -np.expm1(-2 * q / (1 + 4 * q)) / (2 * np.sqrt(1 + 4 * q))
    np.testing.assert_allclose(act.nngp(q, q, q), expected, rtol=1e-13)


def test_every_closed_form_is_covered():
    covered = {n for n, _ in SMOOTH} | {n for n, _ in RELU_FAMILY}
    assert covered == set(CLOSED_FORM)


@pytest.mark.parametrize("name", [*CLOSED_FORM, "tanh"])
def test_views_are_the_one_formula(name):
    # nngp, factor and diagonal are views of duals (tanh: its Mehler series, tests/test_smooth.py).
    act = make_activation(name)
    q11, q22 = np.array([[0.3], [1.7]]), np.array([[0.9, 2.2, 0.05]])  # (2, 1), (1, 3)
    q12 = np.array([[0.2, -0.5, 0.1], [-1.0, 0.95, 0.0]]) * np.sqrt(q11 * q22)
    nngp, factor = act.duals(q11, q22, q12)
    assert nngp.shape == factor.shape == (2, 3)
    np.testing.assert_array_equal(act.nngp(q11, q22, q12), nngp)
    np.testing.assert_array_equal(act.factor(q11, q22, q12), factor)
    q = np.array([0.05, 1.0, 2.5])
    diag = act.diagonal(q)
    np.testing.assert_array_equal(diag[0], act.nngp(q, q, q))
    np.testing.assert_array_equal(diag[1], act.factor(q, q, q))
    # and given the per-point data of the kernel recursion instead of the variances
    p11, p22 = act.points(np.ravel(q11))[:, None], act.points(np.ravel(q22))[None, :]
    for got, want in zip(act.duals(p11, p22, q12), (nngp, factor)):
        np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-300)


@pytest.mark.parametrize("name", [*CLOSED_FORM, "tanh"])
def test_correlation_rounded_past_one_gives_the_limit(name):
    # The recursion passes covariances as computed: |q12| can exceed sqrt(q11 q22) by a few
    # units in the last place (duplicate points). Each formula must give the value at
    # correlation +-1 there, not NaN or a sqrt-of-rounding jump (~1e-8).
    act = make_activation(name)
    q11, q22 = 0.7, 1.9
    r = np.sqrt(q11 * q22)
    for sign in (1.0, -1.0):
        exact = act.duals(q11, q22, sign * r)
        past = act.duals(q11, q22, sign * r * (1 + 4e-16))
        for a, b in zip(exact, past):
            assert np.isfinite(b)
            assert abs(a - b) <= 1e-14 * max(1.0, abs(a)), (name, sign, a, b)


def test_float32_in_float32_out():
    # The tiles of a float32 kernel stay float32 through every closed form.
    q11, q22 = np.float32([[0.5]]), np.float32([[1.5, 0.2]])
    q12 = np.float32([[0.3, -0.1]])
    for name in CLOSED_FORM:
        for out in make_activation(name).duals(q11, q22, q12):
            assert out.dtype == np.float32, name


def test_kernels_do_not_import_activations():
    # One direction of dependencies: activations use kernels' series; the kernel core
    # takes any object with duals() and never imports the activations.
    import subprocess
    import sys

    code = (
        "import sys, wideinf.kernels.tiled, wideinf.kernels.core, wideinf.kernels.smooth\n"
        "print('wideinf.activations' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
