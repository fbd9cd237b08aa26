"""Duals of points that share one variance, from tables in rho, against the exact path.

The exact path is :meth:`SmoothDual._duals` (Mehler series to 1e-14 of the scale, 2-D rule,
second moments at rho = 1), itself checked against adaptive quadrature in test_smooth.py.
Stated bound of the tables (docs/smooth-activations.md, section 6): about 3e-12 of the scale
``E[phi(u)^2]`` (NNGP) or ``E[phi'(u)^2]`` (NTK factor); the issue's target is 1e-9 relative
or 1e-12 absolute near zero.
"""

from __future__ import annotations

import numpy as np
import pytest

from wideinf.activations import _series, make_activation
from wideinf.architecture import Architecture
from wideinf.kernels import smooth
from wideinf.kernels.smooth import SmoothDual

BOUND = 3e-12


def _rho_grid(rng, per_panel=300):
    """Correlations with exactly -1, 0, 1, points near +-1 and enough in every top panel that
    the table is built there (not left to the exact path as a few entries would be)."""
    edges = np.array([0.0, 0.5, 0.75, 0.875, 0.9375, 1.0])
    fill = [rng.uniform(a, b, per_panel) for a, b in zip(edges[:-1], edges[1:])]
    near = 1 - 10.0 ** rng.uniform(-14, -1, per_panel)
    pos = np.concatenate(fill + [near, [0.0, 1.0, 0.5, 1 - 2e-16]])
    return np.concatenate([pos, -pos])


def _fresh(name):
    act = make_activation(name)
    return SmoothDual(act.phi, act.dphi, kink=act.kink)


def _check(dual, q, rho, n_exact=120, rng=None):
    got = dual.tables.evaluate(q, rho)
    terms = dual.point_terms(np.array([q]))
    scale = dual.diagonal(terms)
    # The exact path at every +-1 and near-+-1 point, and at a random subset of the others.
    pick = np.flatnonzero((np.abs(rho) > 1 - 1e-3) | (rho == 0))
    pick = np.union1d(pick, rng.choice(rho.size, n_exact, replace=False))
    want = dual._duals(terms, terms, q * rho[pick])
    for g, w, s, what in zip(got, want, scale, ("nngp", "factor")):
        err = np.abs(g[pick] - w)
        assert np.all(err <= BOUND * s[0]), (what, q, err.max() / s[0])
        assert np.all(err <= 1e-9 * np.abs(w) + 1e-12), (what, q, rho[pick][np.argmax(err)])


@pytest.mark.parametrize("name", ["tanh", "sigmoid", "softplus"])
@pytest.mark.parametrize("q", [1e-4, 1.0])
def test_table_matches_exact_path(name, q, rng):
    _check(_fresh(name), q, _rho_grid(rng), rng=rng)


@pytest.mark.slow
@pytest.mark.parametrize("q", [1e-4, 1.0])
def test_table_matches_exact_path_with_a_kink(q, rng):
    # elu's coefficients decay algebraically: the 2-D rule (split at the kink) fills the
    # panels near +-1 on both sides, minutes of work.
    _check(_fresh("elu"), q, _rho_grid(rng), rng=rng)


def test_table_matches_exact_path_with_a_kink_away_from_one(rng):
    rho = np.concatenate([rng.uniform(-0.9, 0.9, 1500), [0.0, 0.9, -0.9]])
    _check(_fresh("elu"), 1.0, rho, n_exact=60, rng=rng)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tanh", "sigmoid", "softplus", "elu"])
def test_table_matches_exact_path_at_large_variance(name, rng):
    # q = 100 gets its own table (above the octaves), whose values near +-1 are the 2-D rule's.
    _check(_fresh(name), 100.0, _rho_grid(rng, per_panel=40), n_exact=40, rng=rng)


def test_table_matches_exact_path_at_large_variance_away_from_one(rng):
    # The fast suite's q = 100: correlations up to 0.9 (the 2-D rule's region is slow to fill).
    rho = np.concatenate([rng.uniform(-0.9, 0.9, 400), [0.0, 0.9, -0.9]])
    _check(_fresh("tanh"), 100.0, rho, n_exact=60, rng=rng)


def test_results_do_not_depend_on_the_order_of_calls(rng):
    r1, r2 = rng.uniform(-1, 1, 3000), 1 - 10.0 ** rng.uniform(-9, -1, 3000)
    a, b = _fresh("tanh"), _fresh("tanh")
    a1, a2 = a.tables.evaluate(1.3, r1), a.tables.evaluate(1.3, r2)
    b2, b1 = b.tables.evaluate(1.3, r2), b.tables.evaluate(1.3, r1)
    for x, y in zip(a1 + a2, b1 + b2):
        np.testing.assert_array_equal(x, y)


def test_common_variance_tolerates_rounding_only():
    q = np.full(5, 0.7)
    assert smooth._common_variance(q, q[:3]) is not None
    ulps = q * (1 + np.arange(5) * np.finfo(float).eps)
    assert abs(smooth._common_variance(ulps, q) / 0.7 - 1) < 1e-13
    assert smooth._common_variance(q * (1 + 1e-12 * np.arange(5)), q) is None
    assert smooth._common_variance(np.zeros(3), np.zeros(3)) is None


def _normalised(rng, n, d=6):
    x = rng.standard_normal((n, d))
    x[1] = x[0]  # correlation 1 between two points
    x[2] = -x[0]  # and -1
    x[3] = x[4] + 1e-5 * rng.standard_normal(d)  # near 1
    return x / np.sqrt(np.sum(x * x, axis=1, keepdims=True) / d)  # |x|^2 / d = 1, to rounding


@pytest.mark.parametrize("name", ["tanh", "softplus"])
def test_whole_kernel_with_equal_norm_inputs_matches_the_exact_path(name, rng, monkeypatch):
    arch = Architecture.from_dict(
        {"layers": ["dense", name] * 3 + ["dense"], "W_std": 1.6, "b_std": 0.1}
    )
    x = _normalised(rng, 90)  # 8100 entries: the tables
    _series.cache_clear()
    fast = arch.kernel(x)
    monkeypatch.setattr(smooth, "TABLE_MIN_ENTRIES", 10**12)
    _series.cache_clear()
    slow = arch.kernel(x)
    _series.cache_clear()
    for f, s in ((fast.nngp, slow.nngp), (fast.ntk, slow.ntk)):
        assert np.max(np.abs(f - s) / np.abs(s).max()) < 1e-12
        np.testing.assert_allclose(f, s, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(np.diag(fast.nngp), np.diag(slow.nngp))
