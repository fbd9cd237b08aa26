"""The minimum-L1-norm fit of ``wideinf features``: the solvers and the toy model's closed form.

Layers: the LP against brute force on tiny cases (every support enumerated; the tie-break as the
least-norm point of the convex hull of the optimal vertices, also enumerated); the L2 fit
against an independent min-norm construction (a basic solution with its null-space component
removed); the closed form n_p / (n_p + k) against the LP on coin instances, and the range of
shares over all minimisers; the exact finite-M theory against scipy's binomial; the claims at
reduced size (mean share within 3 standard errors of the exact theory, N* within 3 standard
errors of the theory's crossing, M >= 16 N); L2 arrays unchanged by switching L1 on.
"""

import itertools
import math

import numpy as np
import pytest
import scipy.linalg
import scipy.optimize
import scipy.stats

from wideinf.config import build
from wideinf.errors import ConfigError
from wideinf.experiments import features as F
from wideinf.experiments import features_l1 as L1
from wideinf.experiments.features_solvers import min_l1_interpolation, min_l2_on_face

SMALL = dict(p=(0.5, 0.125, 1 / 32), n_train=(1, 2, 3, 4, 6, 8, 11, 16, 32, 128), n_features=2048)


@pytest.fixture(scope="module")
def small():
    config = F.Config(**SMALL, n_seeds=12, n_test=20)
    return config, F.run(config, np.random.default_rng(11))


# ----------------------------------------------------------------------------- brute force


def _basic_solutions(f, y):
    """Every basic solution of F w = y: supports of independent columns, solved exactly."""
    n_items, n_cols = f.shape
    out = []
    for size in range(1, n_items + 1):
        for support in itertools.combinations(range(n_cols), size):
            cols = f[:, support]
            if np.linalg.matrix_rank(cols) < size:
                continue
            w_s, *_ = np.linalg.lstsq(cols, y, rcond=None)
            if np.linalg.norm(cols @ w_s - y) < 1e-10:
                w = np.zeros(n_cols)
                w[list(support)] = w_s
                out.append(w)
    return out


def _brute_l1(f, y):
    """Minimum L1 norm and the optimal vertices, by enumerating every support."""
    sols = _basic_solutions(f, y)
    costs = np.array([np.abs(w).sum() for w in sols])
    best = costs.min()
    optimal = np.array([w for w, c in zip(sols, costs) if c <= best + 1e-10])
    return best, np.unique(np.round(optimal, 12), axis=0)  # a vertex is found from many supports


def _least_norm_in_hull(points):
    """Least-L2 point of conv(points): the least-norm point of aff(Q) over affinely independent
    subsets Q, kept when its barycentric coordinates are >= 0 (the optimum lies in the relative
    interior of some face, where it is the least-norm point of the face's affine hull)."""
    pts = np.array(points)  # (V, M)
    best = None
    for size in range(1, len(pts) + 1):
        for subset in itertools.combinations(range(len(pts)), size):
            q = pts[list(subset)]  # (size, M)
            d = (q[1:] - q[0]).T  # (M, size - 1)
            if size > 1 and np.linalg.matrix_rank(d) < size - 1:
                continue
            t = -np.linalg.lstsq(d, q[0], rcond=None)[0] if size > 1 else np.zeros(0)
            bary = np.concatenate([[1 - t.sum()], t])
            if bary.min() < -1e-12:
                continue
            x = q[0] + d @ t if size > 1 else q[0]
            if best is None or x @ x < best @ best - 1e-14:
                best = x
    return best


def _instances():
    rng = np.random.default_rng(3)
    y3 = rng.choice([-1.0, 1.0], 3)
    coins = np.hstack([np.repeat(y3[:, None], 2, axis=1), rng.choice([-1.0, 1.0], (3, 5))])
    gauss = rng.standard_normal((3, 6))
    gauss_dup = np.hstack([gauss[:, :4], gauss[:, :1], -gauss[:, 1:2]])  # repeated columns
    tie = np.array([[2.0, 0.0, 1.0], [0.0, 2.0, 1.0]])  # (1, 1) = e1/2 + e2/2 = f3: a tie
    return [
        ("coins with 2 perfect columns", coins, y3),
        ("gaussian", gauss, rng.standard_normal(3)),
        ("gaussian with repeats", gauss_dup, rng.standard_normal(3)),
        ("tie between distinct columns", tie, np.ones(2)),
    ]


@pytest.mark.parametrize("name, f, y", _instances(), ids=[i[0] for i in _instances()])
def test_l1_solver_matches_brute_force_value_and_tie_break(name, f, y):
    best, vertices = _brute_l1(f, y)
    sol = min_l1_interpolation(f, y)
    assert sol.value == pytest.approx(best, rel=1e-9, abs=1e-12)
    np.testing.assert_allclose(f @ sol.w, y, atol=1e-10)
    assert np.abs(sol.w).sum() == pytest.approx(best, rel=1e-9)
    assert np.abs(sol.vertex).sum() == pytest.approx(best, rel=1e-9)
    assert sol.dual @ y == pytest.approx(best, rel=1e-9)  # strong duality
    assert np.max(np.abs(f.T @ sol.dual)) <= 1 + 1e-9  # dual feasibility
    np.testing.assert_allclose(sol.w, _least_norm_in_hull(vertices), atol=1e-9)


def test_tie_between_distinct_columns_splits_by_least_norm():
    # Minimisers t (1/2, 1/2, 0) + (1 - t) (0, 0, 1); |w|^2 = t^2 / 2 + (1 - t)^2 is least at
    # t = 2/3: w = (1/3, 1/3, 1/3), where a vertex would put everything on one side.
    sol = min_l1_interpolation(np.array([[2.0, 0.0, 1.0], [0.0, 2.0, 1.0]]), np.ones(2))
    np.testing.assert_allclose(sol.w, [1 / 3] * 3, atol=1e-12)
    assert np.count_nonzero(np.abs(sol.vertex) > 1e-12) < 3


def test_least_norm_face_splits_identical_columns_equally():
    a = np.array([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0]])  # three identical columns
    u = min_l2_on_face(a, np.array([1.0, 2.0]))  # U_123 = 1, u_4 = 1
    np.testing.assert_allclose(u, [1 / 3, 1 / 3, 1 / 3, 1.0], atol=1e-12)


def test_l2_fit_matches_a_basic_solution_with_its_null_space_part_removed(rng):
    n_max, m, n_perfect = 6, 9, 3
    y = rng.choice([-1.0, 1.0], n_max)
    rnd = rng.choice([-1.0, 1.0], (n_max, m))
    got = F.fit_min_norm(y, rnd @ rnd.T, np.zeros((1, n_max)), n_perfect, [6])
    f = np.hstack([np.repeat(y[:, None], n_perfect, axis=1), rnd])  # (N, M)
    w0 = _basic_solutions(f, y)[0]  # some exact solution of F w = y
    z = scipy.linalg.null_space(f)  # (M, M - rank)
    w = w0 - z @ (z.T @ w0)  # the solution orthogonal to the null space: the least-norm one
    assert got["share"][0] == pytest.approx(w[:n_perfect].sum(), rel=1e-10)
    assert got["weight_sq_random"][0] == pytest.approx(w[n_perfect:] @ w[n_perfect:], rel=1e-9)


# ----------------------------------------------------------------------------- the toy model


def _share_range(f, y, n_perfect):
    """Smallest and largest perfect share over all L1 minimisers (value 1), by two LPs."""
    n_cols = f.shape[1]
    a_eq = np.vstack([np.hstack([f, -f]), np.ones((1, 2 * n_cols))])  # F w = y, ||w||_1 = 1
    b_eq = np.concatenate([y, [1.0]])
    obj = np.zeros(2 * n_cols)
    obj[:n_perfect], obj[n_cols : n_cols + n_perfect] = 1.0, -1.0  # sum of perfect weights
    lo = scipy.optimize.linprog(obj, A_eq=a_eq, b_eq=b_eq, bounds=(0, None), method="highs")
    hi = scipy.optimize.linprog(-obj, A_eq=a_eq, b_eq=b_eq, bounds=(0, None), method="highs")
    return lo.fun, -hi.fun


def test_closed_form_matches_the_lp_and_the_share_is_unique_only_without_copies(rng):
    n_max, m, n_perfect = 9, 60, 4
    y = rng.choice([-1.0, 1.0], n_max)
    rnd = rng.choice([-1.0, 1.0], (m, n_max))  # one column per row
    hist = np.bincount(L1.agreement_lengths(rnd, y), minlength=n_max + 1)
    ns = np.arange(1, n_max + 1)
    copies = L1.copies_per_size(hist, ns)
    naive = [sum(abs(r[:n] @ y[:n]) == n for r in rnd) for n in ns]
    np.testing.assert_array_equal(copies, naive)
    assert copies[2] > 0 and copies[-1] == 0  # both regimes occur
    check = L1.lp_check(y, rnd, n_perfect, copies, ns)
    np.testing.assert_allclose(check["share_lp"], n_perfect / (n_perfect + copies), atol=1e-10)
    np.testing.assert_allclose(check["value"], 1.0, atol=1e-10)
    closed = L1.fit_min_l1(n_perfect, copies)
    for i, n in enumerate(ns):
        f = np.hstack([np.repeat(y[:n, None], n_perfect, axis=1), rnd[:, :n].T])
        lo, hi = _share_range(f, y[:n], n_perfect)
        assert (lo, hi) == pytest.approx((closed["share_min"][i], closed["share_max"][i]), abs=1e-9)
        assert lo == pytest.approx(0.0 if copies[i] else 1.0, abs=1e-9)


def test_vertex_tie_break_depends_on_the_column_order(rng):
    n, m, n_perfect = 3, 40, 2
    y = rng.choice([-1.0, 1.0], n)
    rnd = rng.choice([-1.0, 1.0], (n, m))
    rnd[:, 0] = -y  # at least one accidental copy
    first = min_l1_interpolation(np.hstack([np.repeat(y[:, None], n_perfect, axis=1), rnd]), y)
    last = min_l1_interpolation(np.hstack([rnd, np.repeat(y[:, None], n_perfect, axis=1)]), y)
    k = int(np.sum(np.abs(rnd.T @ y) == n))
    assert first.w[:n_perfect].sum() == pytest.approx(n_perfect / (n_perfect + k), abs=1e-10)
    assert last.w[m:].sum() == pytest.approx(n_perfect / (n_perfect + k), abs=1e-10)
    assert {round(first.vertex[:n_perfect].sum()), round(last.vertex[m:].sum())} == {0, 1}


def test_exact_finite_m_theory_against_scipy_and_its_limit():
    n_p, m, ns = 5, 300, np.array([1, 3, 6, 9, 40])
    mean, sd = L1.theory_share_l1_finite_m([n_p], [m], ns)
    for i, n in enumerate(ns):
        dist = scipy.stats.binom(m, 2.0 ** (1 - n))
        want = dist.expect(lambda k: n_p / (n_p + k))
        var = dist.expect(lambda k: (n_p / (n_p + k) - want) ** 2)  # noqa: B023
        assert mean[0, i] == pytest.approx(want, rel=1e-9)
        assert sd[0, i] == pytest.approx(math.sqrt(var), rel=1e-6, abs=1e-15)
    assert mean[0, 0] == n_p / (n_p + m)  # N = 1: every coin column is +-y
    big, _ = L1.theory_share_l1_finite_m([2**14], [2**17 - 2**14], ns)  # p = 1/8
    np.testing.assert_allclose(big[0], L1.theory_share_l1(1 / 8, ns), rtol=1e-4)  # gap 1/(8 n_p)
    assert L1.theory_share_l1(1 / 8, L1.n_star_l1_theory(1 / 8)) == pytest.approx(0.5)


# ----------------------------------------------------------------------------- the claims


def test_l1_share_matches_the_exact_theory_within_three_standard_errors(small):
    config, result = small
    a = result.arrays
    assert config.n_features >= 16 * max(config.n_train)  # the regime of the claim
    assert list(a["regularizations"]) == ["l2", "l1"]
    assert a["perfect_share_l1"].shape == a["perfect_share"].shape
    se = np.maximum(a["perfect_share_l1_sd"], a["theory_share_l1_finite_m_sd"])
    se /= math.sqrt(config.n_seeds)
    dev = np.abs(a["perfect_share_l1"] - a["theory_share_l1_finite_m"])
    assert np.all(dev <= 3 * se + 1e-12), (dev / np.maximum(se, 1e-300)).max()
    # The M -> infinity limit differs from the exact mean by Jensen's gap: about 0.15 / n_p at
    # most to second order; 1 / (4 n_p) leaves room for the higher orders.
    gap = np.abs(a["theory_share_l1_finite_m"] - a["theory_share_l1"])
    assert np.all(gap <= 1 / (4 * a["n_perfect"][:, None]))
    np.testing.assert_array_equal(a["perfect_share_l1"][:, 0], config.p)  # N = 1: n_p / M
    np.testing.assert_array_equal(a["perfect_share_l1"][:, -1], 1.0)  # no copies at N = 128
    assert np.all(np.diff(a["perfect_share_l1_min"], axis=1) >= 0)  # unique once k = 0
    # The share is unique (= 1) exactly when k = 0, which has probability (1 - 2^(1-N))^m.
    m = config.n_features - a["n_perfect"][:, None]  # (B, 1)
    unique = (1 - 2.0 ** (1 - a["N"][None, :])) ** m  # (B, A)
    se_unique = np.sqrt(unique * (1 - unique) / config.n_seeds)
    assert np.all(np.abs(a["perfect_share_l1_min"] - unique) <= 3 * se_unique + 1e-12)


def test_l1_n_star_matches_the_theory_within_three_standard_errors(small):
    config, result = small
    a = result.arrays
    on_grid = np.array(
        [F.crossing(a["N"], t, log_n=False) for t in a["theory_share_l1_finite_m"]]
    )  # the theory's crossing read off the same grid the same way
    se = a["n_star_l1_sd"] / math.sqrt(config.n_seeds)
    assert a["n_star_l1"][0] == 1.0  # p = 1/2: share 1/2 at N = 1 exactly
    assert np.all(np.abs(a["n_star_l1"][1:] - on_grid[1:]) <= 3 * se[1:])
    np.testing.assert_allclose(on_grid, a["n_star_l1_theory"], atol=0.05)
    np.testing.assert_allclose(a["n_star_l1_theory"], 1 + a["n_star_bayes"])
    # Exponentially less data than the L2 fit needs once C >= 3 bits.
    assert np.all(a["n_star_l1"][1:] < a["n_star"][1:] / 1.8)
    assert result.summary["l1_lp_check_max_dev"] < 1e-10


def test_l2_arrays_do_not_change_when_l1_is_added():
    config = F.Config(p=(0.25, 1 / 16), n_train=(2, 8, 32), n_features=512, n_seeds=2)
    both = F.run(config, np.random.default_rng(5)).arrays
    alone = F.run(F.Config(**{**vars(config), "regularization": ("l2",)}), np.random.default_rng(5))
    assert list(alone.arrays["regularizations"]) == ["l2"]
    assert "perfect_share_l1" not in alone.arrays
    for key, value in alone.arrays.items():
        if key != "regularizations":
            np.testing.assert_array_equal(both[key], value, err_msg=key)


@pytest.mark.parametrize(
    "raw", [{"regularization": "l1"}, {"regularization": ["l2", "l2"]}, {"regularization": "L3"}]
)
def test_bad_regularization_fails_naming_the_key(raw):
    with pytest.raises(ConfigError, match="regularization"):
        build(F.Config, {"experiment": "features", **raw}, "cfg")


def test_regularization_takes_a_single_name():
    config = build(F.Config, {"experiment": "features", "regularization": "l2"}, "cfg")
    assert config.regularization == ("l2",)
