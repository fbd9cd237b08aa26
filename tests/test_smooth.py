"""The smooth activations' duals (Mehler series + 2-D rule) against independent references.

Accuracy target: within 1e-9 of the reference value, or 1e-12 absolute where the value is
near zero. The reference is nested adaptive Gauss-Kronrod quadrature (``smooth_reference.py``,
written independently with the ``math`` module), whose own error estimates are below 1e-13.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from smooth_reference import FUNCTIONS, expectation

from wideinf import networks as nw
from wideinf.activations import ACTIVATION_NAMES, SMOOTH, Smooth, Softsign, make_activation
from wideinf.architecture import Architecture
from wideinf.kernels.smooth import SmoothDual
from wideinf.kernels.smooth_rules import (
    coefficient_range,
    coefficient_rule,
    hermite_coefficients,
    interpolated_coefficients,
)

ACTIVATIONS = {name: {} for name in SMOOTH if name != "silu"}
ACTIVATIONS["elu_0.5"] = {"alpha": 0.5}


def _activation(key):
    return make_activation(key.split("_")[0], **ACTIVATIONS[key])


def _check(key, pairs, correlations):
    act = _activation(key)
    f, df = FUNCTIONS[key]
    for q1, q2 in pairs:
        for rho in correlations:
            q12 = rho * math.sqrt(q1 * q2)
            for got, g in ((act.nngp(q1, q2, q12), f), (act.factor(q1, q2, q12), df)):
                ref, err = expectation(g, q1, q2, rho)
                assert err < 1e-12 + 1e-13 * abs(ref)  # the reference's own estimate
                assert abs(got - ref) <= 1e-9 * abs(ref) + 1e-12, (key, q1, q2, rho, got, ref)


@pytest.mark.parametrize("key", sorted(ACTIVATIONS))
def test_duals_match_adaptive_quadrature(key):
    # Extreme and mixed variances, correlations +-1 exactly and near 1 (the 2-D rule's range).
    _check(key, [(1e-4, 3.0), (100.0, 100.0)], [-1.0, -0.3, 0.95, 1.0])


@pytest.mark.slow
@pytest.mark.parametrize("key", sorted(ACTIVATIONS))
def test_duals_match_adaptive_quadrature_dense_grid(key):
    pairs = [(1e-4, 1e-4), (1e-4, 1.0), (0.5, 0.5), (0.3, 3.0), (3.0, 3.0), (10.0, 100.0)]
    pairs += [(100.0, 100.0)]
    _check(key, pairs, [-1.0, -0.9, -0.3, 0.0, 0.5, 0.95, 0.999999, 1.0])


def test_every_smooth_activation_is_offered_and_tested():
    assert set(SMOOTH) <= set(ACTIVATION_NAMES)
    assert {k.split("_")[0] for k in ACTIVATIONS} | {"silu"} == set(SMOOTH)
    assert all(isinstance(make_activation(name), Smooth) for name in SMOOTH)
    assert make_activation("elu", alpha=0.5) == make_activation("elu", alpha=0.5)
    assert make_activation("silu").phi(1.5) == make_activation("swish").phi(1.5)


def _tile_points(rng):
    q = np.concatenate([[0.0, 1e-4, 2.0, 2.0, 100.0], rng.uniform(0.2, 6.0, 40)])
    z = rng.normal(size=(len(q), 4))
    z[3] = z[2]  # same variance, correlation 1: the diagonal's per-point value
    z[6] = -z[5]  # correlation -1
    z[8] = z[7] + 1e-4 * rng.normal(size=4)  # correlation near 1: the 2-D rule
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    root = np.sqrt(q)[:, None] * z
    return q, root @ root.T  # variances (n,), covariances (n, n)


@pytest.mark.parametrize("name", ["tanh", "swish", "elu", "softsign"])
def test_tile_equals_the_pairwise_duals(name, rng):
    # The tile path (per-point terms once, then the series on the tile) against nngp / factor
    # called on broadcast arrays: two routes through the same series, 1e-14 of the scale.
    act = make_activation(name)
    q, cov = _tile_points(rng)
    terms = act.points(q)
    rows, cols = slice(0, 30), slice(20, 45)
    nngp, factor = act.duals(terms[rows, None], terms[None, cols], cov[rows, cols])
    q1, q2 = q[rows, None], q[None, cols]
    ea, eb = terms.ea, terms.eb
    for got, want, e in ((nngp, act.nngp, ea), (factor, act.factor, eb)):
        scale = np.sqrt(e[rows, None] * e[None, cols])
        assert np.all(np.abs(got - want(q1, q2, cov[rows, cols])) <= 1e-14 * scale + 1e-300)


def test_diagonal_is_the_second_moment():
    # nngp(q, q, q) = E[phi(u)^2], also where the series does not converge at rho = 1.
    act = make_activation("tanh")
    q = np.array([1e-4, 0.5, 3.0, 100.0])
    f, df = FUNCTIONS["tanh"]
    for fn, g in ((act.nngp, f), (act.factor, df)):
        got = fn(q, q, q)
        ref = np.array([expectation(g, v, v, 1.0)[0] for v in q])
        np.testing.assert_allclose(got, ref, rtol=1e-12)


def test_truncation_bound_holds():
    # |sum_{k > K} a_k(q1) a_k(q2) rho^k| <= |rho|^(K+1) sqrt(T_K(q1) T_K(q2)) for every K.
    dual = SmoothDual(np.tanh, lambda x: 1 - np.tanh(x) ** 2)
    terms = dual.point_terms(np.array([0.7, 2.5]))
    a, t, e = terms.a, terms.ta, terms.ea
    rho = 0.6
    full = np.sum(a[0] * a[1] * rho ** np.arange(a.shape[1]))
    for k in range(0, 60, 3):
        partial = np.sum(a[0, : k + 1] * a[1, : k + 1] * rho ** np.arange(k + 1))
        bound = rho ** (k + 1) * t[0, k] * t[1, k] * np.sqrt(e[0] * e[1])
        assert abs(full - partial) <= bound * (1 + 1e-9) + 1e-16


def test_hermite_coefficients_are_exact_for_polynomials():
    # f(x) = x^3 - 2x: a_1 = 3q^(3/2) - 2 sqrt(q), a_3 = sqrt(6) q^(3/2), others 0; E[f^2] exact.
    q = np.array([0.3, 2.0, 50.0])
    a, second, rest = hermite_coefficients(lambda x: x**3 - 2 * x, q, 8)
    r = np.sqrt(q)
    want = np.zeros((3, 8))
    want[:, 1], want[:, 3] = 3 * r**3 - 2 * r, math.sqrt(6) * r**3
    np.testing.assert_allclose(a, want, atol=1e-13 * np.abs(want).max())
    np.testing.assert_allclose(second, 15 * q**3 - 12 * q**2 + 4 * q, rtol=1e-13)
    # rest is the Parseval remainder rounded up by its own rounding error, 2 * 8 * eps
    assert np.all(rest <= 32 * np.finfo(float).eps * second)


def test_coefficient_rule_is_orthonormal_and_truncated_safely():
    terms = 256
    z, root_weight, table = coefficient_rule(0.125, terms)
    np.testing.assert_allclose(table.T @ table, np.eye(terms), atol=1e-13)
    # The Hermite functions are negligible at the ends of the range.
    assert np.abs(table[[0, -1]]).max() < 1e-16
    assert coefficient_range(terms) >= math.sqrt(4 * terms + 2) + 6


def test_interpolated_coefficients_equal_direct(rng):
    q = np.concatenate([[0.0], np.exp(rng.uniform(np.log(1e-3), np.log(80.0), 60))])
    for f in (np.tanh, Softsign().phi):
        got = interpolated_coefficients(f, q, 96)
        want = hermite_coefficients(f, q, 96)
        scale = np.sqrt(want[1])[:, None]
        assert np.all(np.abs(got[0] - want[0]) <= 1e-13 * scale + 1e-300)
        np.testing.assert_allclose(got[1], want[1], rtol=1e-13, atol=1e-300)


def test_symmetry_gives_exact_zeros():
    terms = make_activation("tanh").points(np.array([0.5, 4.0]))
    assert np.all(terms.a[:, 0::2] == 0) and np.all(terms.b[:, 1::2] == 0)
    sig = make_activation("sigmoid").points(np.array([0.5, 4.0]))
    assert np.all(sig.a[:, 2::2] == 0) and np.all(sig.a[:, 0] == 0.5)


def test_chained_coefficients_hold_each_chain_in_order():
    # step t of chain p: a's coefficient k = start_p + 2 t beside b's; zeros past the end
    from wideinf.kernels.smooth_rules import chain_starts, chained_coefficients

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((3, 7)), rng.standard_normal((3, 7))
    for parities in ((1, 0), (None, None), (None, 0), (0, 1)):
        chains = chained_coefficients(a, b, *parities)
        starts = [chain_starts(p) for p in parities]
        assert chains.shape == (3, max(map(len, starts)), 4, 2)
        for d, (coef, first) in enumerate(zip((a, b), starts)):
            for p in range(chains.shape[1]):
                want = np.zeros((3, 4))
                if p < len(first):
                    column = coef[:, first[p] :: 2]
                    want[:, : column.shape[1]] = column
                assert np.array_equal(chains[:, p, :, d], want)


def test_point_terms_keep_their_slices_and_worst_tails():
    terms = make_activation("tanh").points(np.array([0.5, 4.0, 2.0, 9.0]))
    rows = terms[1:3, None]
    assert terms[1:3, None] is rows  # a tile's rows: sliced once per layer
    assert terms[np.array([1, 2])] is not terms[np.array([1, 2])]  # fancy indices: not kept
    assert terms[True] is not terms[True]
    for got, tail in zip(rows.worst_tails(), (rows.ta, rows.tb)):
        assert np.array_equal(got, tail.reshape(-1, tail.shape[-1]).max(axis=0))


def test_user_function_through_the_same_path():
    # Any elementwise function: here 2 sin(x) + x, whose duals have a closed form.
    dual = SmoothDual(lambda x: 2 * np.sin(x) + x, lambda x: 2 * np.cos(x) + 1)
    q1, q2, q12 = 0.8, 2.0, -0.6
    s = (q1 + q2) / 2
    sin_sin = 2 * (np.exp(q12 - s) - np.exp(-q12 - s))  # 4 E[sin u sin v]
    cross = 2 * q12 * (np.exp(-q1 / 2) + np.exp(-q2 / 2))  # 2 E[u sin v] + 2 E[v sin u]
    want = sin_sin + cross + q12
    assert dual.duals(q1, q2, q12)[0] == pytest.approx(want, rel=1e-13)


# --------------------------------------------------------------------------- Monte Carlo
TANH3 = ["dense", "tanh", "dense", "tanh", "dense", "tanh", "dense"]


def test_three_hidden_layer_tanh_network_matches_monte_carlo():
    # Empirical NNGP and NTK of finite networks (width 256) against the exact kernels: each
    # entry within 4 standard errors. The O(1/n) finite-width bias is far below the error of
    # 400 networks. Pre-activation variances reach about 4.6.
    arch = Architecture.from_dict({"layers": TANH3, "W_std": 2.0, "b_std": 0.2})
    x = np.array([[1.0, 0.5], [-0.5, 1.0], [1.2, 0.7], [-1.0, -0.6]])
    p = nw.init_params(arch, 2, 256, 400, np.random.default_rng(21))
    k = arch.kernel(x)
    for samples, exact in (
        (nw.empirical_nngp(arch, p, x), k.nngp),
        (nw.empirical_ntk(arch, p, x), k.ntk),
    ):
        mean = samples.mean(axis=0)
        se = samples.std(axis=0, ddof=1) / math.sqrt(samples.shape[0])
        assert np.max(np.abs(mean - exact) / se) < 4.0
