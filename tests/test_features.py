"""``wideinf features``: the perfect-vs-random features toy model of the second text.

Layers: the Gram-matrix fit against a naive minimum-norm least squares on the explicit feature
matrix (exact); exact identities (the two parts add up to the labels, N = 1); the claims at
reduced size (share within max(3 SE, 0.02) of pN / (pN + 1 - p) where M >= 16 N, N* within
20% of (1 - p) / p); the figure's structure; the command line end to end.
"""

import math

import numpy as np
import pytest
from click.testing import CliRunner

from wideinf.cli import main
from wideinf.config import build
from wideinf.errors import ConfigError
from wideinf.experiments import features as F

SMALL = dict(p=(0.5, 0.125, 1 / 32), n_train=(1, 2, 4, 8, 16, 32, 64, 128), n_features=2048)
CONTRACT = {
    "N": "A",
    "p": "B",
    "perfect_share": "BA",
    "perfect_share_sd": "BA",
    "theory_share": "BA",
    "P": "BA",
    "R": "BA",
    "n_star": "B",
}


@pytest.fixture(scope="module")
def small():
    config = F.Config(**SMALL, n_seeds=8, n_test=200)
    return config, F.run(config, np.random.default_rng(7))


# ----------------------------------------------------------------------------- exact layers


def _naive(y, rnd, xi, n_perfect, n):
    """Min-norm weights of the explicit N x M feature matrix by least squares (SVD)."""
    f_p = np.repeat(y[:n, None], n_perfect, axis=1)  # (n, n_p)
    f_r = rnd[:n]  # (n, m)
    w, *_ = np.linalg.lstsq(np.hstack([f_p, f_r]), y[:n], rcond=None)  # (M,) minimum norm
    w_p, w_r = w[:n_perfect], w[n_perfect:]
    v_p, v_r = f_p @ w_p, f_r @ w_r  # (n,)
    margin = w_p.sum() + xi @ w_r  # (T,) perfect features give the label (+1) on fresh inputs
    return dict(
        share=v_p @ y[:n] / n,
        P=np.linalg.norm(v_p),
        R=np.linalg.norm(v_r),
        random_along_y=v_r @ y[:n] / n,
        weight_sq_perfect=w_p @ w_p,
        weight_sq_random=w_r @ w_r,
        accuracy=np.mean(margin > 0),
        v_sum=v_p + v_r,
    )


def test_gram_fit_equals_naive_min_norm_on_the_explicit_features(rng):
    n_max, m, n_perfect, n_test = 12, 40, 5, 30
    y = rng.choice([-1.0, 1.0], n_max)
    rnd = rng.choice([-1.0, 1.0], (n_max, m))
    xi = rng.choice([-1.0, 1.0], (n_test, m))
    ns = [1, 3, 7, 12]
    got = F.fit_min_norm(y, rnd @ rnd.T, xi @ rnd.T, n_perfect, ns)
    for i, n in enumerate(ns):
        want = _naive(y, rnd, xi, n_perfect, n)
        for key in ("share", "P", "R", "random_along_y", "weight_sq_perfect", "weight_sq_random"):
            assert got[key][i] == pytest.approx(want[key], rel=1e-9, abs=1e-12), (key, n)
        assert got["accuracy"][i] == want["accuracy"]
        # The perfect and random parts add up to the labels exactly, both along y.
        np.testing.assert_allclose(want["v_sum"], y[:n], atol=1e-10)
        assert got["share"][i] + got["random_along_y"][i] == pytest.approx(1.0, abs=1e-12)
        assert got["P"][i] + got["R"][i] == pytest.approx(math.sqrt(n), rel=1e-10)
        assert got["residual"][i] < 1e-12
        # Squared weights per type are proportional to the contributions, exactly: a^T G a = y^T a.
        ratio = got["weight_sq_perfect"][i] / got["weight_sq_random"][i]
        assert ratio == pytest.approx(got["P"][i] / got["R"][i], rel=1e-9)


def test_gram_snapshots_are_the_exact_integer_gram_matrices_of_the_drawn_coins():
    seed, n_items, n_test, stops = 3, 5, 3, [4, 7]
    snaps = list(F.gram_snapshots(np.random.default_rng(seed), n_items, n_test, stops))
    # The documented draw order: per block, the training coins (c, N) then the test coins (c, T).
    rng = np.random.default_rng(seed)
    blocks = [(F._coins(rng, (c, n_items)), F._coins(rng, (c, n_test))) for c in (4, 3)]
    rnd = np.vstack([b[0] for b in blocks]).T.astype(float)  # (N, m)
    xi = np.vstack([b[1] for b in blocks]).T.astype(float)  # (T, m)
    for (m, gram, cross), stop in zip(snaps, stops):
        assert m == stop
        np.testing.assert_array_equal(gram, rnd[:, :m] @ rnd[:, :m].T)
        np.testing.assert_array_equal(cross, xi[:, :m] @ rnd[:, :m].T)


def test_one_item_gives_share_p_exactly():
    # N = 1: G = n_p + m = M, so s = n_p / M = p with no randomness.
    config = F.Config(p=(0.5, 0.25, 1 / 64), n_train=(1, 2), n_features=256, n_seeds=3)
    result = F.run(config, np.random.default_rng(0))
    np.testing.assert_array_equal(result.arrays["perfect_share"][:, 0], config.p)
    np.testing.assert_array_equal(result.arrays["perfect_share_sd"][:, 0], 0.0)


def test_crossing_is_exact_on_the_theory_and_nan_off_the_grid():
    ns = np.array([1, 2, 3, 5, 8, 13, 21, 34, 55, 89])
    for p in (0.3, 0.125, 0.05, 1 / 40):
        assert F.crossing(ns, F.theory_share(p, ns)) == pytest.approx((1 - p) / p, rel=1e-12)
    assert F.crossing(ns, F.theory_share(0.5, ns)) == 1.0  # exactly 1/2 at the first point
    assert math.isnan(F.crossing(ns, F.theory_share(0.7, ns)))  # N* < 1
    assert math.isnan(F.crossing(ns, F.theory_share(1e-3, ns)))  # N* = 999 > 89


def test_same_seed_gives_identical_arrays():
    config = F.Config(p=(0.25, 1 / 16), n_train=(2, 8, 32), n_features=512, n_seeds=2)
    a = F.run(config, np.random.default_rng(5)).arrays
    b = F.run(config, np.random.default_rng(5)).arrays
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


# ----------------------------------------------------------------------------- the claims


def test_contract_names_and_shapes(small):
    config, result = small
    sizes = {"A": len(config.n_train), "B": len(config.p)}
    for key, dims in CONTRACT.items():
        assert result.arrays[key].shape == tuple(sizes[d] for d in dims), key
    np.testing.assert_array_equal(result.arrays["N"], config.n_train)
    np.testing.assert_array_equal(result.arrays["p"], config.p)


def test_share_matches_the_theory_within_three_standard_errors_or_0_02(small):
    config, result = small
    a = result.arrays
    assert config.n_features >= 16 * max(config.n_train)  # the regime of the claim
    np.testing.assert_allclose(
        a["theory_share"], F.theory_share(a["p"][:, None], a["N"][None, :]), rtol=1e-15
    )
    se = a["perfect_share_sd"] / math.sqrt(config.n_seeds)
    dev = np.abs(a["perfect_share"] - a["theory_share"])
    assert np.all(dev <= np.maximum(3 * se, 0.02)), dev.max()
    assert result.summary["share_within_tolerance"]
    # What is left is the finite-M effect: the Wishart approximation removes most of it.
    dev_m = np.abs(a["perfect_share"] - a["theory_share_finite_m"])
    assert np.all(dev_m <= 4 * se + 0.005), dev_m.max()
    assert dev_m.max() < dev.max()


def test_n_star_is_within_20_percent_of_one_minus_p_over_p(small):
    _, result = small
    a = result.arrays
    np.testing.assert_allclose(a["n_star_theory"], (1 - a["p"]) / a["p"])
    np.testing.assert_allclose(a["n_star"], a["n_star_theory"], rtol=0.2)
    assert a["n_star"][0] == 1.0  # p = 1/2: s = 1/2 exactly at N = 1
    np.testing.assert_allclose(a["n_star_bayes"], np.log2(a["n_star_theory"]))
    np.testing.assert_allclose(a["complexity"], np.log2(1 / a["p"]))


def test_contributions_and_squared_weights_follow_pN_over_1_minus_p(small):
    _, result = small
    a = result.arrays
    np.testing.assert_allclose(
        a["P"] + a["R"], np.broadcast_to(np.sqrt(a["N"]), a["P"].shape), rtol=1e-9
    )
    ratio = a["p"][:, None] * a["N"][None, :] / (1 - a["p"][:, None])  # (B, A)
    big = a["R"] > 0.05 * np.sqrt(a["N"])  # where R is not tiny
    np.testing.assert_allclose((a["P"] / a["R"])[big], ratio[big], rtol=0.15)
    # The essay: squared weights of each type are proportional to its contribution.
    np.testing.assert_allclose(
        a["weight_sq_perfect"] / a["weight_sq_random"], a["P"] / a["R"], rtol=0.02
    )


def test_test_accuracy_matches_its_gaussian_approximation(small):
    config, result = small
    a = result.arrays
    theory = a["test_accuracy_theory"]
    se = np.maximum(
        a["test_accuracy_sd"], np.sqrt(theory * (1 - theory) / config.n_test)
    ) / math.sqrt(config.n_seeds)
    assert np.all(np.abs(a["test_accuracy"] - theory) <= 3 * se + 0.02)
    assert a["test_accuracy"][-1, 0] < 0.97  # p = 1/32, N = 1: the coins do matter at M = 2048
    assert np.all(a["test_accuracy"] >= 0.5)


# ----------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    "raw, key",
    [
        ({"n_train": [1, 4, 2]}, "n_train"),
        ({"p": [0.5, 0.5]}, "p"),
        ({"p": [1.0]}, "p"),
        ({"p": [1e-4], "n_features": 1000}, "n_features"),
        ({"p": [0.9], "n_features": 1000, "n_train": [1, 500]}, "n_features"),
        ({"n_features": 2**25}, "n_features"),
        ({"n_seeds": 1}, "n_seeds"),
    ],
)
def test_impossible_configs_fail_naming_the_key(raw, key):
    with pytest.raises(ConfigError, match=key):
        build(F.Config, {"experiment": "features", **raw}, "cfg")


# ----------------------------------------------------------------------------- figure and CLI


def test_figure_structure(small):
    from wideinf.plotting import features as FP
    from wideinf.plotting import plt

    config, result = small
    figs = FP.plot(result, config)
    try:
        assert list(figs) == [""]
        axes = figs[""].axes
        assert [ax.get_title() for ax in axes] == list(FP.TITLES)  # (d) is the L1 panel
        assert [ax.get_xscale() for ax in axes] == ["log", "linear", "log", "log"]
        assert axes[1].get_yscale() == "log"
        labels = [t.get_text() for t in axes[0].get_legend().get_texts()]
        assert any("pN / (pN + 1 - p)" in t for t in labels)
        keyed = [t.get_text() for t in axes[2].get_legend().get_texts()]
        assert [k for k in keyed if k.startswith("p = ")] == [
            "p = 1/2 (C = 1)", "p = 1/8 (C = 3)", "p = 1/32 (C = 5)"
        ]  # fmt: skip
        # One errorbar series per p in (a), (c), (d), one measured N* per p and fit in (b)
        # (+ legend keys).
        b = len(config.p)
        assert [len(ax.containers) for ax in axes] == [b + 1, 2 * b + 2, b, b + 1]
        assert all(ax.get_xlabel() and ax.get_ylabel() for ax in axes)
        labels_b = [t.get_text() for t in axes[1].get_legend().get_texts()]
        assert any("1 + \\log_2" in t for t in labels_b)
    finally:
        for fig in figs.values():
            plt.close(fig)


def test_figure_without_l1_keeps_its_three_panels():
    from wideinf.plotting import features as FP
    from wideinf.plotting import plt

    config = F.Config(p=(0.25, 1 / 16), n_train=(2, 8, 32), n_features=512, n_seeds=2)
    config = F.Config(**{**vars(config), "regularization": ("l2",)})
    figs = FP.plot(F.run(config, np.random.default_rng(0)), config)
    try:
        axes = figs[""].axes
        assert [ax.get_title() for ax in axes] == list(FP.TITLES[:3])
        assert [len(ax.containers) for ax in axes] == [3, 3, 2]
    finally:
        plt.close(figs[""])


def test_cli_quick_end_to_end(tmp_path):
    runner = CliRunner()
    result = runner.invoke(
        main, ["features", "--quick", "--out", str(tmp_path), "--quiet", "--format", "png"]
    )
    assert result.exit_code == 0, result.output
    assert "N* = (1-p)/p" in result.output
    assert "N* = 1 + log2((1-p)/p)" in result.output
    name = "ensemble_prior_features"
    for suffix in ("png", "npz", "yaml"):
        assert (tmp_path / f"{name}.{suffix}").is_file()
    with np.load(tmp_path / f"{name}.npz") as saved:
        assert set(CONTRACT) <= set(saved.files)
        assert saved["perfect_share"].shape == (len(saved["p"]), len(saved["N"]))
        assert list(saved["regularizations"]) == ["l2", "l1"]  # the shipped default: both
        assert saved["perfect_share_l1"].shape == saved["perfect_share"].shape
        for key in ("perfect_share_l1_sd", "theory_share_l1"):
            assert saved[key].shape == saved["perfect_share"].shape, key
        assert saved["n_star_l1"].shape == saved["p"].shape
    redraw = runner.invoke(
        main,
        ["plot", str(tmp_path / f"{name}.npz"), "--out", str(tmp_path / "r"), "--format", "png"],
    )
    assert redraw.exit_code == 0, redraw.output
    assert (tmp_path / "r" / f"{name}.png").is_file()
    bad = runner.invoke(
        main, ["features", "--quick", "--set", "n_train=[4,2]", "--out", str(tmp_path)]
    )
    assert bad.exit_code == 2
    assert "n_train" in bad.output and "Traceback" not in bad.output


@pytest.mark.slow
def test_shipped_full_config_meets_the_acceptance():
    from wideinf.runner import load_config

    _, config = load_config("ensemble_prior_features", expect="features")
    result = F.run(config, np.random.default_rng(config.seed))
    a = result.arrays
    assert result.summary["share_within_tolerance"]
    assert result.summary["share_max_abs_dev"] < 0.02
    np.testing.assert_allclose(a["n_star"], a["n_star_theory"], rtol=0.2)
    assert result.summary["interpolation_residual_max"] < 1e-10
    assert not result.warnings
    # L1: the share within 3 SE of its exact theory, N* within 3 SE of the theory's crossing on
    # the same grid, which is within 0.02 of 1 + log2((1 - p) / p).
    assert result.summary["l1_share_max_z"] < 3
    se = a["n_star_l1_sd"] / math.sqrt(config.n_seeds)
    on_grid = np.array([F.crossing(a["N"], t, log_n=False) for t in a["theory_share_l1_finite_m"]])
    assert np.all(np.abs(a["n_star_l1"] - on_grid)[1:] <= 3 * se[1:])
    np.testing.assert_allclose(on_grid, a["n_star_l1_theory"], atol=0.02)
    assert result.summary["l1_lp_check_max_dev"] < 1e-10
