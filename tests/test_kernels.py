"""The kernel recursion: exact identities, known values, and Monte Carlo over finite networks."""

import numpy as np
import pytest

from wideinf import Architecture
from wideinf.architecture import Dense
from wideinf.errors import ConfigError

FIG1 = {"layers": ["dense", "gabor", "dense", "relu", "dense"], "W_std": 1.5, "b_std": 0.05}
ARCHS = {
    "relu": {"layers": ["dense", "relu", "dense", "relu", "dense"], "W_std": 1.4, "b_std": 0.1},
    "erf": {"layers": ["dense", "erf", "dense"], "W_std": 1.2, "b_std": 0.2},
    "gelu": {"layers": ["dense", "gelu", "dense", "gelu", "dense"], "W_std": 1.3, "b_std": 0.05},
    "gabor-relu": FIG1,
    "tanh": {"layers": ["dense", "tanh", "dense"], "W_std": 1.5, "b_std": 0.1},
    "leaky-abs-sin": {
        "layers": [
            "dense",
            {"leaky_relu": {"alpha": 0.1}},
            "dense",
            "abs",
            "dense",
            {"sin": {"a": 1.0, "b": 2.0, "c": 0.3}},
            {"dense": {"W_std": 0.7}},
        ],
        "W_std": 1.1,
        "b_std": 0.3,
    },
}


def _points(rng, n=7, d=3):
    x = rng.normal(size=(n, d))
    x[3] = x[2]  # a duplicated point: correlation exactly 1 off the diagonal
    x[4] = -x[1]  # an antipodal point
    return x


def test_known_values_of_the_blog_network():
    # The blog's Gabor-ReLU network on 1-D inputs (read off its published Figure 1; README).
    k = Architecture.from_dict(FIG1).kernel(np.array([[1.0], [-1.0], [0.0]]))
    assert k.nngp[0, 0] == pytest.approx(0.15028, abs=5e-6)
    assert k.nngp[0, 1] == pytest.approx(0.00309, abs=5e-6)
    assert np.sqrt(k.nngp[2, 2]) == pytest.approx(0.1074, abs=5e-5)


@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
@pytest.mark.parametrize("name", sorted(ARCHS))
def test_exact_identities(name, parameterization, rng):
    arch = Architecture.from_dict({**ARCHS[name], "parameterization": parameterization})
    x = _points(rng)
    k = arch.kernel(x)
    for m in (k.nngp, k.ntk):
        np.testing.assert_array_equal(m, m.T)  # symmetric to the bit
        eig = np.linalg.eigvalsh(m)
        assert eig[0] >= -1e-10 * eig[-1]  # positive semi-definite
    # The diagonal is the variance recursion, to the last bit.
    np.testing.assert_array_equal(np.diag(k.nngp), k.var1)
    # A block of the joint kernel is the cross kernel.
    x1, x2 = x[:3], x[3:]
    cross = arch.kernel(x1, x2)
    np.testing.assert_allclose(cross.nngp, k.nngp[:3, 3:], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(cross.ntk, k.ntk[:3, 3:], rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(cross.var1, k.var1[:3])
    np.testing.assert_array_equal(cross.var2, k.var1[3:])


def test_duplicate_points_have_identical_rows(rng):
    arch = Architecture.from_dict(ARCHS["relu"])
    x = _points(rng)
    k = arch.kernel(x)
    np.testing.assert_allclose(k.nngp[3], k.nngp[2], rtol=1e-12)
    np.testing.assert_allclose(k.ntk[2, 3], k.ntk[2, 2], rtol=1e-7)


def test_first_layer_ntk_equals_nngp(rng):
    arch = Architecture.from_dict({"layers": ["dense"], "W_std": 1.3, "b_std": 0.4})
    k = arch.kernel(rng.normal(size=(5, 2)))
    np.testing.assert_array_equal(k.ntk, k.nngp)


def test_linear_network_closed_form(rng):
    # Dense-identity-Dense: K = w2^2 (w1^2 x.x'/d + b1^2) + b2^2; Theta = K + w2^2 K1.
    arch = Architecture.from_dict(
        {
            "layers": ["dense", "identity", {"dense": {"W_std": 0.5, "b_std": 0.2}}],
            "W_std": 2.0,
            "b_std": 0.3,
        }
    )
    x = rng.normal(size=(4, 3))
    k1 = 4.0 * x @ x.T / 3 + 0.09
    k = arch.kernel(x)
    np.testing.assert_allclose(k.nngp, 0.25 * k1 + 0.04, rtol=1e-14)
    np.testing.assert_allclose(k.ntk, 0.25 * k1 + 0.04 + 0.25 * k1, rtol=1e-14)


def test_standard_parameterization_limit_drops_first_layer_and_biases(rng):
    # One hidden ReLU layer, standard parameterization, Theta / n at n = inf: only the readout
    # weights remain, whose contribution is E[relu(u) relu(v)] = NNGP without the readout's
    # W_std^2 scaling and bias.
    cfg = {
        "layers": ["dense", "relu", "dense"],
        "W_std": 1.5,
        "b_std": 0.2,
        "parameterization": "standard",
    }
    x = rng.normal(size=(5, 2))
    k = Architecture.from_dict(cfg).kernel(x)
    np.testing.assert_allclose(k.ntk, (k.nngp - 0.04) / 2.25, rtol=1e-13)
    # At finite n the first layer's and the biases' terms come back with weight d / n and 1 / n.
    finite = Architecture.from_dict(cfg).kernel(x, width=100.0)
    assert np.all(finite.ntk > k.ntk)


def test_bad_inputs_are_one_line_errors():
    arch = Architecture.from_dict(ARCHS["relu"])
    with pytest.raises(ConfigError, match="NaN"):
        arch.kernel(np.array([[np.nan, 1.0]]))
    with pytest.raises(ConfigError, match="input dimension"):
        arch.kernel(np.ones((2, 3)), np.ones((2, 2)))
    with pytest.raises(ConfigError, match="shape"):
        arch.kernel(np.ones((0, 3)))


# ----------------------------------------------------------------------------- Monte Carlo


def _sample_outputs(arch, x, width, n_networks, rng):
    """A deliberately naive finite sampler: outputs (S, N) of S networks (NTK parameterization)."""
    outs = np.empty((n_networks, x.shape[0]))
    for s in range(n_networks):
        y = x
        for layer in arch.layers:
            if isinstance(layer, Dense):
                is_readout = layer is arch.layers[-1]
                n_out = 1 if is_readout else width
                w = rng.normal(size=(y.shape[1], n_out))
                b = rng.normal(size=n_out)
                y = layer.W_std * y @ w / np.sqrt(y.shape[1]) + layer.b_std * b
            else:
                y = layer.activation.phi(y)
        outs[s] = y[:, 0]
    return outs


@pytest.mark.parametrize("name", ["relu", "erf", "gelu", "gabor-relu", "tanh"])
def test_nngp_matches_monte_carlo(name):
    # The output covariance of random finite networks is the NNGP up to an O(1/n) bias (n=256:
    # well below the standard error of 3000 networks); each entry within 4 standard errors.
    rng = np.random.default_rng(7)
    arch = Architecture.from_dict(ARCHS[name])
    x = np.array([[1.0, 0.5, -0.2], [-0.3, 0.8, 0.1], [0.0, -1.0, 0.7], [2.0, 0.0, 0.0]])
    f = _sample_outputs(arch, x, width=256, n_networks=3000, rng=rng)  # (S, N)
    prod = f[:, :, None] * f[:, None, :]  # (S, N, N)
    mean, se = prod.mean(0), prod.std(0, ddof=1) / np.sqrt(len(f))
    k = arch.kernel(x).nngp
    z = np.abs(mean - k) / se
    assert z.max() < 4.0, (name, z.max())


# ----------------------------------------------------------------------------- large variances


def test_kernel_command_at_large_variance_is_silent(tmp_path, rng):
    # The smooth activations are exact at any variance: no accuracy warning is printed.
    from click.testing import CliRunner

    from wideinf.cli import main

    np.save(tmp_path / "x.npy", 3.0 * rng.normal(size=(5, 2)))
    arch = tmp_path / "arch.yaml"
    arch.write_text("architecture:\n  layers: [dense, tanh, dense]\n  W_std: 2.0\n")
    result = CliRunner().invoke(
        main,
        ["kernel", str(arch), "--x1", str(tmp_path / "x.npy"), "--out", str(tmp_path / "K.npz")],
    )
    assert result.exit_code == 0
    assert "warning" not in result.stderr
    assert (tmp_path / "K.npz").exists()
