"""Finite-width networks: backprop, empirical kernels, Monte Carlo against the exact kernels,
the finite-width claims (n^-1/2 error, 15/n kurtosis), gradient descent against the NTK
prediction, the memory guard and reproducibility."""

from __future__ import annotations

import math

import numpy as np
import pytest

from wideinf import memory, training
from wideinf import networks as nw
from wideinf.activations import ACTIVATION_NAMES
from wideinf.architecture import Architecture
from wideinf.errors import ConfigError, ResourceError

PARAMETERIZATIONS = ("ntk", "standard")
BLOG = ["dense", "gabor", "dense", "relu", "dense"]  # the blog post's network


def make(layers, parameterization="ntk", W_std=1.5, b_std=0.05):
    return Architecture.from_dict(
        {"layers": layers, "W_std": W_std, "b_std": b_std, "parameterization": parameterization}
    )


def rng(*seed):
    return np.random.default_rng(list(seed) or 0)


def points(n, d=2, seed=1):
    return rng(seed).standard_normal((n, d))


def gram(j1, j2):
    return np.einsum("snp,smp->snm", j1, j2)  # (S, N1, N2)


# --------------------------------------------------------------------------- structure
def test_shapes_and_flat_view():
    arch = make(["dense", "relu", "dense", "erf", "dense"])
    p = nw.init_params(arch, 2, [3, 5], 4, rng())
    assert [w.shape for w in p.weights] == [(4, 2, 3), (4, 3, 5), (4, 5, 1)]
    assert [b.shape for b in p.biases] == [(4, 3), (4, 5), (4, 1)]
    assert (p.n_networks, p.d_in, p.widths, p.n_params) == (4, 2, (3, 5), 9 + 20 + 6)
    assert nw.parameter_count(arch, 2, [3, 5]) == nw.ravel_params(p).shape[1] == 9 + 20 + 6
    assert nw.parameter_count(arch, 2, 4) == 12 + 20 + 5
    assert nw.parameter_bytes(arch, 2, [3, 5], 4) == 8 * 4 * 35
    x1, x2 = points(6), points(3, seed=2)
    assert nw.forward(arch, p, x1).shape == (4, 6)
    assert nw.empirical_nngp(arch, p, x1, x2).shape == (4, 6, 3)
    assert nw.empirical_ntk(arch, p, x1).shape == (4, 6, 6)
    assert nw.jacobian(arch, p, x2).shape == (4, 3, p.n_params)
    feats = nw.features(arch, p, x1)  # (S, N, n_L): the readout's inputs
    assert feats.shape == (4, 6, 5)
    np.testing.assert_allclose(
        nw.empirical_nngp(arch, p, x1), 1.5**2 * gram(feats, feats) / 5 + 0.05**2, rtol=1e-13
    )
    back = nw.unravel_params(nw.ravel_params(p), p)
    assert all(
        np.array_equal(a, b) for a, b in zip(back.weights + back.biases, p.weights + p.biases)
    )
    # The kernels on (x, x) are symmetric and positive semi-definite.
    for k in (nw.empirical_nngp(arch, p, x1), nw.empirical_ntk(arch, p, x1)):
        assert np.array_equal(k, k.transpose(0, 2, 1))
        assert np.linalg.eigvalsh(k).min() > -1e-12 * np.abs(k).max()


@pytest.mark.parametrize("width", [[3], [3, 4, 5], 0, 2.5, math.inf, "8", True])
def test_bad_widths_are_rejected(width):
    with pytest.raises(ConfigError, match="width"):
        nw.init_params(make(["dense", "relu", "dense", "relu", "dense"]), 2, width, 1, rng())


def test_bad_inputs_are_rejected():
    arch = make(["dense", "relu", "dense"])
    p = nw.init_params(arch, 2, 4, 2, rng())
    with pytest.raises(ConfigError, match=r"x: expected an array of shape \(N, 2\)"):
        nw.forward(arch, p, np.ones((3, 5)))
    x = points(3)
    for kwargs, key in [
        (dict(y=np.ones(4), learning_rate=0.1, steps=1), "y:"),
        (dict(y=np.ones(3), learning_rate=-1.0, steps=1), "learning_rate:"),
        (dict(y=np.ones(3), learning_rate=0.1, steps=-1), "steps:"),
        (dict(y=np.ones(3), learning_rate=0.1, steps=1, tol=-1.0), "tol:"),
    ]:
        with pytest.raises(ConfigError, match=key):
            training.train(arch, p, x, **kwargs)


def test_parameterizations_give_the_same_function_from_the_same_seed():
    x = points(5)
    f = [
        nw.forward(make(BLOG, par), nw.init_params(make(BLOG, par), 2, [4, 6], 3, rng(7)), x)
        for par in PARAMETERIZATIONS
    ]
    np.testing.assert_allclose(f[0], f[1], rtol=1e-12, atol=1e-14)


# --------------------------------------------------------------------------- backprop
@pytest.mark.parametrize("parameterization", PARAMETERIZATIONS)
@pytest.mark.parametrize("activation", ACTIVATION_NAMES)
def test_backprop_matches_central_differences(activation, parameterization):
    """Every parameter's gradient of sum_i c_i f(x_i) against central differences (1e-6)."""
    arch = make(["dense", activation, "dense", activation, "dense"], parameterization, 1.3, 0.4)
    p = nw.init_params(arch, 2, [3, 4], 2, rng(3))
    x, cot = points(3), rng(4).standard_normal((2, 3))  # (N, d), (S, N)
    grad = nw.ravel_params(nw.gradients(arch, p, x, cot))  # (S, P)
    flat, h = nw.ravel_params(p), 1e-5
    fd = np.empty_like(flat)
    for j in range(flat.shape[1]):  # every network at once: they are independent
        step = np.zeros_like(flat)
        step[:, j] = h
        plus = nw.forward(arch, nw.unravel_params(flat + step, p), x)
        minus = nw.forward(arch, nw.unravel_params(flat - step, p), x)
        fd[:, j] = np.sum(cot * (plus - minus), axis=1) / (2 * h)
    assert np.abs(grad).max() > 1e-3
    assert np.abs(grad - fd).max() <= 1e-6 * np.abs(grad).max()


@pytest.mark.parametrize("parameterization", PARAMETERIZATIONS)
@pytest.mark.parametrize("same", [True, False])
def test_empirical_ntk_is_the_jacobian_gram(parameterization, same):
    arch = make(["dense", "gelu", "dense", "dense", "tanh", "dense"], parameterization, 1.2, 0.3)
    # Standard parameterization reports Theta / n and needs one width n (see below).
    widths = [4, 6, 5] if parameterization == "ntk" else [5, 5, 5]
    p = nw.init_params(arch, 3, widths, 3, rng(5))
    x1 = points(6, 3)
    x2 = x1 if same else points(4, 3, seed=6)
    theta = nw.empirical_ntk(arch, p, x1, None if same else x2)
    jj = gram(nw.jacobian(arch, p, x1), nw.jacobian(arch, p, x2))
    if parameterization == "standard":
        jj /= 5  # reported as Theta / n with n the hidden width
    assert np.abs(theta - jj).max() <= 1e-10 * np.abs(jj).max()


def test_standard_parameterization_with_unequal_widths_is_refused():
    """Theta / n has no single n: layer l's weights would carry n_{l-1} / n times the limit's
    term. The kernel takes one width, so the empirical NTK refuses rather than disagree."""
    arch = make(BLOG, "standard")
    x = points(3)
    with pytest.raises(ConfigError, match="standard parameterization needs equal hidden widths"):
        nw.empirical_ntk(arch, nw.init_params(arch, 2, [4, 6], 2, rng()), x)
    # Equal widths, and unequal widths in NTK parameterization (width-free), are accepted.
    assert nw.empirical_ntk(arch, nw.init_params(arch, 2, [5, 5], 2, rng()), x).shape == (2, 3, 3)
    ntk_arch = make(BLOG, "ntk")
    assert nw.empirical_ntk(ntk_arch, nw.init_params(ntk_arch, 2, [4, 6], 2, rng()), x).shape == (
        2, 3, 3,
    )  # fmt: skip


def test_empirical_nngp_is_the_readout_weights_gram():
    """NTK parameterization: the readout layer's NTK term is the empirical NNGP."""
    arch = make(BLOG, "ntk", 1.5, 0.3)
    p = nw.init_params(arch, 2, [4, 6], 2, rng(8))
    x1, x2 = points(5), points(3, seed=9)
    readout = slice(-(6 + 1), None)  # W_readout (6 x 1) and b_readout, last in ravel order
    jj = gram(nw.jacobian(arch, p, x1)[..., readout], nw.jacobian(arch, p, x2)[..., readout])
    np.testing.assert_allclose(nw.empirical_nngp(arch, p, x1, x2), jj, rtol=1e-12)


# --------------------------------------------------------------------------- Monte Carlo
def assert_within_standard_errors(samples, exact, z=4.0):
    """Every entry of mean(samples) within z standard errors of exact; samples (S, n1, n2)."""
    mean = samples.mean(axis=0)
    se = samples.std(axis=0, ddof=1) / math.sqrt(samples.shape[0])
    assert np.all(se > 0)
    worst = np.max(np.abs(mean - exact) / se)
    assert worst < z, f"{worst:.2f} standard errors off"
    return worst


MC_CASES = [
    # (layers, width, networks); one hidden layer: the mean is exact at any width.
    (["dense", "relu", "dense"], 64, 2000),
    (["dense", "erf", "dense"], 64, 2000),
    (["dense", "gelu", "dense"], 64, 2000),
    (["dense", "tanh", "dense"], 64, 2000),
    (BLOG, 256, 48),  # two hidden layers: O(1/n) bias, far below the standard error here
]


@pytest.mark.parametrize("parameterization", PARAMETERIZATIONS)
@pytest.mark.parametrize(
    "layers, width, n_networks", MC_CASES, ids=["relu", "erf", "gelu", "tanh", "gabor-relu"]
)
def test_monte_carlo_means_match_the_kernels(layers, width, n_networks, parameterization):
    arch = make(layers, parameterization, 1.5, 0.3)
    # Pre-activation variances up to 3.7 (and 9 in the large-variance test below).
    x = np.array([[-1.0, 0.5], [-0.5, 1.0], [1.0, 0.0], [1.5, -1.0]])
    p = nw.init_params(arch, 2, width, n_networks, rng(11))
    k = arch.kernel(x, width=width if parameterization == "standard" else math.inf)
    assert_within_standard_errors(nw.empirical_nngp(arch, p, x), k.nngp)
    assert_within_standard_errors(nw.empirical_ntk(arch, p, x), k.ntk)


@pytest.mark.parametrize("activation, W_std", [("tanh", 3.0)])
def test_monte_carlo_smooth_activations_at_large_variance(activation, W_std):
    # Pre-activation variance 9: the NTK factor of tanh is exact here too (it was 9% off
    # with 64-node Gauss-Hermite quadrature).
    arch = make(["dense", activation, "dense"], "ntk", W_std, 0.0)
    x = np.array([[1.0], [-0.5]])
    p = nw.init_params(arch, 1, 64, 5000, rng(13))
    assert_within_standard_errors(nw.empirical_ntk(arch, p, x), arch.kernel(x).ntk)


def test_monte_carlo_catches_a_wrong_kernel():
    """The 4-standard-error check has power: a 5% error in the NTK is detected."""
    arch = make(["dense", "relu", "dense"], "ntk", 1.5, 0.3)
    x = points(4)
    p = nw.init_params(arch, 2, 64, 2000, rng(12))
    with pytest.raises(AssertionError):
        assert_within_standard_errors(nw.empirical_ntk(arch, p, x), 1.05 * arch.kernel(x).ntk)


def ntk_error_slope(widths, repeats, seed=0):
    """Log-log slope of the mean relative Frobenius error of single networks' NTK vs width."""
    arch = make(BLOG)
    x = np.linspace(-3, 3, 8)[:, None]
    theta = arch.kernel(x).ntk
    errors = []
    for w in widths:
        err = []
        for start in range(0, repeats, 8):  # blocks of 8 networks bound the memory
            p = nw.init_params(arch, 1, w, min(8, repeats - start), rng(seed, w, start))
            diff = nw.empirical_ntk(arch, p, x) - theta
            err.extend(np.linalg.norm(diff, axis=(1, 2)) / np.linalg.norm(theta))
        errors.append(np.mean(err))
    return np.polyfit(np.log(widths), np.log(errors), 1)[0], errors


def test_ntk_error_falls_as_inverse_square_root_of_width_fast():
    slope, errors = ntk_error_slope([64, 128, 256, 512], 32)
    assert -0.65 <= slope <= -0.35, (slope, errors)


@pytest.mark.slow
def test_ntk_error_falls_as_inverse_square_root_of_width():
    slope, errors = ntk_error_slope([256, 512, 1024, 2048, 4096], 32)
    print(f"NTK error slope {slope:.3f}, errors {np.round(errors, 4)}")
    assert -0.6 <= slope <= -0.4, (slope, errors)


# --------------------------------------------------------------------------- kurtosis
def relu_output_moments(n):
    """Exact E f^2, E f^4, E f^6, E f^8 of a one-hidden-layer ReLU net, W_std = 1, no readout bias.

    Given the features, f ~ N(0, s) with s = sum_j u_j / n, u_j = relu(z_j)^2 iid, z ~ N(0, q)
    (q = 1 by scale invariance of the ratios). So E f^2k = (2k-1)!! E s^k; the moments of
    sum_j u_j follow from n times the cumulants of u, with E u^m = (2m-1)!! / 2.
    """
    m = [1.0] + [math.prod(range(1, 2 * k, 2)) / 2 for k in range(1, 5)]  # E u^k
    k1 = m[1]
    k2 = m[2] - m[1] ** 2
    k3 = m[3] - 3 * m[2] * m[1] + 2 * m[1] ** 3
    k4 = m[4] - 4 * m[3] * m[1] - 3 * m[2] ** 2 + 12 * m[2] * m[1] ** 2 - 6 * m[1] ** 4
    c1, c2, c3, c4 = (n * k for k in (k1, k2, k3, k4))  # cumulants of the sum
    t1 = c1
    t2 = c2 + c1**2
    t3 = c3 + 3 * c2 * c1 + c1**3
    t4 = c4 + 4 * c3 * c1 + 3 * c2**2 + 6 * c2 * c1**2 + c1**4
    return t1 / n, 3 * t2 / n**2, 15 * t3 / n**3, 105 * t4 / n**4


def kurtosis_standard_error(n, samples):
    """Delta-method sd of g = m4 / m2^2 (known zero mean) from M samples.

    Var(g) ~ [Var(f^4) / mu2^4 - 4 mu4 Cov(f^4, f^2) / mu2^5 + 4 mu4^2 Var(f^2) / mu2^6] / M.
    """
    mu2, mu4, mu6, mu8 = relu_output_moments(n)
    var = (
        (mu8 - mu4**2) / mu2**4
        - 4 * mu4 * (mu6 - mu4 * mu2) / mu2**5
        + 4 * mu4**2 * (mu4 - mu2**2) / mu2**6
    )
    return math.sqrt(var / samples)


def test_exact_moments_give_fifteen_over_n():
    for n in (1, 4, 16, 64):
        mu2, mu4, _, _ = relu_output_moments(n)
        assert mu4 / mu2**2 - 3 == pytest.approx(15 / n, rel=1e-12)
    assert kurtosis_standard_error(10**9, 1) == pytest.approx(math.sqrt(24), rel=1e-3)  # Gaussian


def output_kurtosis(n, samples, seed, block=100_000):
    arch = Architecture.from_dict(
        {"layers": ["dense", "relu", {"dense": {"W_std": 1.0, "b_std": 0.0}}], "b_std": 0.5}
    )
    f = []
    for start in range(0, samples, block):
        p = nw.init_params(arch, 1, n, min(block, samples - start), rng(seed, n, start))
        f.append(nw.forward(arch, p, [[1.0]])[:, 0])
    f = np.concatenate(f)
    return np.mean(f**4) / np.mean(f**2) ** 2 - 3  # E f = 0 exactly (symmetric readout)


@pytest.mark.parametrize("n", [4, 16, 64])
def test_relu_output_excess_kurtosis_is_fifteen_over_n_fast(n):
    samples = 100_000
    kurt, se = output_kurtosis(n, samples, 21), kurtosis_standard_error(n, samples)
    assert abs(kurt - 15 / n) < 4 * se
    assert 15 / n > 4 * se  # non-Gaussianity itself is resolved


@pytest.mark.slow
@pytest.mark.parametrize("n", [4, 16, 64])
def test_relu_output_excess_kurtosis_is_fifteen_over_n(n):
    samples = 2_000_000
    kurt, se = output_kurtosis(n, samples, 22), kurtosis_standard_error(n, samples)
    print(f"n={n}: excess kurtosis {kurt:.4f} vs 15/n = {15 / n:.4f} (se {se:.4f})")
    assert abs(kurt - 15 / n) < 4 * se


# --------------------------------------------------------------------------- reproducibility
def test_same_seed_gives_bit_identical_parameters_outputs_and_training():
    arch = make(BLOG)
    x = points(5, 1)
    runs = []
    for _ in range(2):
        p = nw.init_params(arch, 1, [6, 5], 3, rng(61))
        res = training.train(arch, p, x, np.sin(x[:, 0]), 0.2, 15, x_eval=x[:2], quiet=True)
        runs.append(
            [nw.ravel_params(p), nw.forward(arch, p, x), nw.empirical_ntk(arch, p, x),
             nw.ravel_params(res.params), res.loss, res.f_eval]
        )  # fmt: skip
    assert all(np.array_equal(a, b) for a, b in zip(*runs))
    other = nw.ravel_params(nw.init_params(arch, 1, [6, 5], 3, rng(62)))
    assert not np.array_equal(other, runs[0][0])


def test_blocks_of_networks_give_the_same_results(monkeypatch):
    """Splitting the ensemble into blocks to bound memory does not change any number."""
    arch = make(BLOG, "standard")
    p, x = nw.init_params(arch, 2, [6, 6], 5, rng(71)), points(4)
    y = np.sin(x[:, 0])

    def everything():
        res = training.train(arch, p, x, y, 0.05, 5, quiet=True)
        return [nw.forward(arch, p, x), nw.empirical_nngp(arch, p, x), nw.empirical_ntk(arch, p, x),
                nw.ravel_params(nw.gradients(arch, p, x, y)), nw.ravel_params(res.params), res.loss]  # fmt: skip

    whole = everything()
    monkeypatch.setattr(memory, "BLOCK_BYTES", 1)  # one network per block
    for a, b in zip(whole, everything()):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)


# --------------------------------------------------------------------------- memory guard
def test_memory_guard_refuses_what_the_machine_cannot_hold():
    arch = make(BLOG)
    with pytest.raises(ResourceError, match=r"needs about [\d.]+ GB .* available"):
        nw.init_params(arch, 1, 10**6, 100, rng())  # 8e14 bytes


@pytest.mark.parametrize("what", ["init", "forward", "ntk", "nngp", "train", "jacobian"])
def test_memory_guard_reports_estimate_and_available_memory(monkeypatch, what):
    arch = make(["dense", "relu", "dense"])
    p = nw.init_params(arch, 1, 16, 2, rng())
    monkeypatch.setattr(memory, "available_memory", lambda: 2**20)  # 1 MB
    x = np.linspace(-1, 1, 2000)[:, None]
    calls = {
        "init": lambda: nw.init_params(arch, 1, 5000, 100, rng()),
        "forward": lambda: nw.forward(arch, p, np.zeros((10**5, 1))),
        "ntk": lambda: nw.empirical_ntk(arch, p, x),
        "nngp": lambda: nw.empirical_nngp(arch, p, x),
        "train": lambda: training.train(arch, p, x, np.zeros(2000), 0.1, 1),
        "jacobian": lambda: nw.jacobian(arch, p, x),
    }
    with pytest.raises(
        ResourceError, match=r"needs about \d+ MB of memory but this machine has 1 MB"
    ):
        calls[what]()


def test_available_memory_is_read():
    assert memory.available_memory() > 2**20
