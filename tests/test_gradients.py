"""Forward-mode kernel gradients: dual numbers, the recursion in W_std and b_std, against
central differences.

Tolerance: central differences with step h in log space have truncation error ~ h^2 |f'''| / 6
and rounding error ~ eps |f| / h; with h = 1e-5 both are below 1e-9 relative for these smooth
kernels, so 1e-6 relative (of the largest derivative entry) leaves a wide margin and still
catches any wrong term (a missing product-rule term is O(1)).
"""

import numpy as np
import pytest

from wideinf.activations import make_activation
from wideinf.architecture import Architecture
from wideinf.errors import ConfigError
from wideinf.kernels.dual import Dual
from wideinf.kernels.gradients import (
    HYPERPARAMETERS,
    hyperparameters,
    kernel_gradients,
    with_hyperparameters,
)

NETWORKS = {
    "relu": ["dense", "relu", "dense", "relu", "dense"],
    "erf": ["dense", "erf", "dense", "erf", "dense"],
    "gabor-relu": ["dense", "gabor", "dense", "relu", "dense"],
}
STEP = 1e-5


def _arch(layers, parameterization, W_std=1.4, b_std=0.3):
    return Architecture.from_dict(
        {"layers": layers, "W_std": W_std, "b_std": b_std, "parameterization": parameterization}
    )


def _central(arch, x1, x2, which, direction):
    """Central difference of the kernel in log W_std (0) or log b_std (1)."""
    h = hyperparameters(arch)
    out = []
    for sign in (1, -1):
        logs = np.log([h["W_std"], h["b_std"]])
        logs[direction] += sign * STEP
        k = with_hyperparameters(arch, *np.exp(logs)).kernel(x1, x2, method="reference")
        out.append(getattr(k, which))
    return (out[0] - out[1]) / (2 * STEP)


@pytest.mark.parametrize("name", NETWORKS)
@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
@pytest.mark.parametrize("cross", [False, True])
def test_gradients_match_central_differences(rng, name, parameterization, cross):
    arch = _arch(NETWORKS[name], parameterization)
    x1 = rng.standard_normal((25, 3))
    x2 = rng.standard_normal((9, 3)) if cross else None
    grads = kernel_gradients(arch, x1, x2)
    for which in ("nngp", "ntk"):
        for p in range(len(HYPERPARAMETERS)):
            numeric = _central(arch, x1, x2, which, p)
            analytic = getattr(grads, "d_" + which)[p]
            scale = np.abs(numeric).max()
            if parameterization == "standard" and which == "ntk" and p == 1 and scale == 0:
                continue  # the standard NTK at infinite width has no bias terms
            assert np.abs(analytic - numeric).max() <= 1e-6 * scale, (which, p)


@pytest.mark.parametrize("name", NETWORKS)
@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
def test_values_equal_the_core_and_the_diagonal_mode(rng, name, parameterization):
    arch = _arch(NETWORKS[name], parameterization)
    x1, x2 = rng.standard_normal((30, 4)), rng.standard_normal((11, 4))
    grads, core = kernel_gradients(arch, x1), arch.kernel(x1, method="reference")
    np.testing.assert_allclose(grads.nngp, core.nngp, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(grads.ntk, core.ntk, rtol=1e-12, atol=1e-14)
    cross, core_cross = kernel_gradients(arch, x1, x2), arch.kernel(x1, x2, method="reference")
    np.testing.assert_allclose(cross.nngp, core_cross.nngp, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(cross.ntk, core_cross.ntk, rtol=1e-12, atol=1e-14)
    diag = kernel_gradients(arch, x1, diagonal=True)
    np.testing.assert_array_equal(diag.nngp, np.diagonal(grads.nngp))
    np.testing.assert_array_equal(diag.ntk, np.diagonal(grads.ntk))
    np.testing.assert_array_equal(diag.d_nngp, np.diagonal(grads.d_nngp, axis1=1, axis2=2))
    np.testing.assert_array_equal(diag.d_ntk, np.diagonal(grads.d_ntk, axis1=1, axis2=2))
    assert np.array_equal(grads.d_nngp, np.swapaxes(grads.d_nngp, 1, 2))  # exactly symmetric


def test_a_layer_with_its_own_values_is_not_a_hyperparameter(rng):
    layers = ["dense", "erf", {"dense": {"W_std": 2.0, "b_std": 0.5}}, "erf", "dense"]
    arch = Architecture.from_dict({"layers": layers, "W_std": 1.2, "b_std": 0.2})
    x = rng.standard_normal((12, 2))
    grads = kernel_gradients(arch, x)
    for p in range(2):
        numeric = _central(arch, x, None, "ntk", p)
        assert np.abs(grads.d_ntk[p] - numeric).max() <= 1e-6 * np.abs(numeric).max()
    moved = with_hyperparameters(arch, 1.5, 0.1)
    assert moved.dense_layers[1].W_std == 2.0 and moved.dense_layers[0].W_std == 1.5


def test_quadrature_activations_are_refused(rng):
    arch = Architecture.from_dict({"layers": ["dense", "tanh", "dense"]})
    with pytest.raises(ConfigError, match="quadrature"):
        kernel_gradients(arch, rng.standard_normal((4, 2)))


# ----------------------------------------------------------------------------- dual numbers


@pytest.mark.parametrize(
    "name", ["relu", "leaky_relu", "abs", "erf", "gelu", "gabor", "sin", "cos"]
)
def test_dual_activations_match_central_differences_and_price(name):
    """The duals' partial derivatives in (q11, q22, q12); d nngp / d q12 = factor (Price)."""
    act = make_activation(name)
    q = [np.array([1.3, 0.7, 0.4]), np.array([0.8, 2.0, 0.4]), np.array([0.3, -0.5, 0.39])]
    duals = [Dual(v, np.eye(3)[i][:, None] * np.ones(3)) for i, v in enumerate(q)]
    for method in ("nngp", "factor"):
        out = getattr(act, method)(*duals)
        tangent = np.broadcast_to(getattr(out, "tangent", 0.0), (3, 3))
        for i in range(3):
            up = [v + (1e-6 if j == i else 0) for j, v in enumerate(q)]
            down = [v - (1e-6 if j == i else 0) for j, v in enumerate(q)]
            numeric = (getattr(act, method)(*up) - getattr(act, method)(*down)) / 2e-6
            np.testing.assert_allclose(tangent[i], numeric, rtol=1e-6, atol=1e-8)
    price = act.nngp(*duals).tangent[2]
    np.testing.assert_allclose(price, act.factor(*q), rtol=1e-12, atol=1e-15)


def test_dual_conventions():
    x = Dual(np.array([0.0, 4.0]), np.array([[0.0, 1.0]]))
    root = np.sqrt(x)
    np.testing.assert_array_equal(root.tangent, [[0.0, 0.25]])  # 0 * inf = 0 where x stays 0
    tie = np.maximum(Dual(1.0, [1.0]), Dual(1.0, [3.0]))
    assert tie.tangent[0] == 2.0
    clipped = np.clip(Dual(np.array([2.0, 0.5]), [[1.0, 1.0]]), Dual(0.0, [5.0]), Dual(1.0, [7.0]))
    np.testing.assert_array_equal(clipped.tangent, [[7.0, 1.0]])
    with pytest.raises(TypeError):
        np.sum(Dual(np.ones(3), np.ones((1, 3))))


def test_nngp_only_equals_the_full_computation(rng):
    arch = _arch(NETWORKS["gabor-relu"], "ntk")
    x = rng.standard_normal((20, 3))
    full, only = kernel_gradients(arch, x), kernel_gradients(arch, x, ntk=False)
    assert only.ntk is None and only.d_ntk is None
    np.testing.assert_array_equal(only.nngp, full.nngp)
    np.testing.assert_array_equal(only.d_nngp, full.d_nngp)
