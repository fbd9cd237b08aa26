"""wideinf.experiments.ensemble: parameter counts, step sizes, one stream per network."""

import numpy as np
import pytest

from wideinf import networks as nw
from wideinf.architecture import Architecture
from wideinf.errors import NumericalError
from wideinf.experiments import ensemble

ARCH = {"layers": ["dense", "relu", "dense", "relu", "dense"], "W_std": 1.5, "b_std": 0.1}


@pytest.mark.parametrize("d_in, width", [(1, 3), (2, 16), (5, 1)])
def test_parameter_count_is_what_init_draws(d_in, width):
    arch = Architecture.from_dict(ARCH)
    params = nw.init_params(arch, d_in, width, 1, np.random.default_rng(0))
    assert ensemble.parameter_count(arch, d_in, width) == params.n_params
    # (d + 1) n + (n + 1) n + (n + 1) written out
    assert params.n_params == (d_in + 1) * width + (width + 1) * width + width + 1


def test_step_size():
    theta = np.diag([4.0, 1.0, 0.5])
    assert ensemble.step_size(theta) == pytest.approx(3 / 4)
    stack = np.stack([theta, 2 * theta])  # (S, N, N): the largest eigenvalue over networks
    assert ensemble.step_size(stack, 1.5) == pytest.approx(1.5 * 3 / 8)
    with pytest.raises(NumericalError, match="learning rate"):
        ensemble.step_size(np.zeros((2, 2)))


def test_stored_step():
    ntk = Architecture.from_dict(ARCH)
    std = Architecture.from_dict({**ARCH, "parameterization": "standard"})
    assert ensemble.stored_step(ntk, 0.5, 100) == 0.5
    assert ensemble.stored_step(std, 0.5, 100) == 0.005


def test_network_j_is_its_own_stream():
    arch = Architecture.from_dict(ARCH)
    rngs = [np.random.default_rng([7, j]) for j in range(3)]
    three = ensemble.init_per_stream(arch, 2, 8, rngs)
    one = ensemble.init_per_stream(arch, 2, 8, [np.random.default_rng([7, 2])])
    for w3, w1 in zip(three.weights + three.biases, one.weights + one.biases):
        np.testing.assert_array_equal(w3[2], w1[0])
    blocks = ensemble.network_blocks(arch, 2, 8, 5, block_bytes=2 * 8 * three.n_params)
    assert blocks == [slice(0, 2), slice(2, 4), slice(4, 5)]
