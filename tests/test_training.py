"""Gradient descent (wideinf.training) and the in-place step it is built on: one step is minus
the learning rate times the VJP, the step size rule, the NTK prediction at large width, readout-only
training as linear regression, loss tolerances, divergence, progress, the memory estimate, and
the direction of the dependencies."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pytest

# The same networks and points as the finite-network tests (tests/ is on the import path).
from test_networks import BLOG, PARAMETERIZATIONS, make, points, rng

from wideinf import memory, training
from wideinf import networks as nw
from wideinf.errors import NumericalError, ResourceError

PACKAGE = Path(nw.__file__).parent


# --------------------------------------------------------------------------- one step
@pytest.mark.parametrize("parameterization", PARAMETERIZATIONS)
def test_descent_step_is_minus_eta_times_the_vjp(parameterization):
    """In place: theta - eta * vjp for the active networks and layers; the others untouched."""
    arch = make(BLOG, parameterization, 1.3, 0.4)
    p = nw.init_params(arch, 2, [6, 6], 4, rng(81))
    x, cot = points(5), rng(82).standard_normal((4, 5))  # (N, d), (S, N)
    grad = nw.ravel_params(nw.vjp(arch, p, nw.forward_cache(arch, p, x), cot))  # (S, P)
    before = nw.ravel_params(p)
    n_readout = 6 + 1  # W_readout (6 x 1) and b_readout, last in ravel order
    for active, lowest in [(None, 0), (np.array([True, False, True, True]), 0), (None, 2)]:
        q = p.copy()
        nw.descent_step(arch, q, nw.forward_cache(arch, q, x), cot, 0.3, active=active,
                        lowest=lowest)  # fmt: skip
        want = before - 0.3 * grad
        if active is not None:
            want[~active] = before[~active]
        if lowest == 2:
            want[:, :-n_readout] = before[:, :-n_readout]
        np.testing.assert_allclose(nw.ravel_params(q), want, rtol=0, atol=1e-14)
        moved = nw.ravel_params(q) != before  # (S, P)
        assert moved.any(axis=1).tolist() == [True, active is None, True, True]
        if lowest == 2:
            assert not moved[:, :-n_readout].any()
    # The gradients themselves are checked against finite differences in test_networks.py.


def test_step_size_is_lr_factor_n_over_the_largest_eigenvalue():
    theta = np.diag([1.0, 2.0, 4.0])  # N = 3, lambda_max = 4
    assert training.step_size(theta) == pytest.approx(3 / 4, rel=1e-15)
    assert training.step_size(theta, lr_factor=0.5) == pytest.approx(3 / 8, rel=1e-15)
    ensemble = np.stack([theta, 2 * theta])  # (S, N, N): the stiffest network sets the step
    assert training.step_size(ensemble) == pytest.approx(3 / 8, rel=1e-15)
    with pytest.raises(NumericalError, match="NTK train-train matrix is zero"):
        training.step_size(np.zeros((3, 3)))


def test_recorded_steps():
    assert training.recorded_steps(10, 4).tolist() == [0, 4, 8, 10]
    assert training.recorded_steps(8, 4).tolist() == [0, 4, 8]
    assert training.recorded_steps(0, 3).tolist() == [0]


# --------------------------------------------------------------------------- against the NTK
def ntk_tracking_error(layers, parameterization, width, steps, n_networks=2, a=0.05):
    """max_t ||f_t - f_t^NTK|| / ||f_0 - y|| on the training set, per network.

    Learning rate ``a N / lambda_max(Theta)`` (``/ n`` in standard parameterization), so that
    each GD step differs from the flow by at most ``a / 2e`` of the residual.
    """
    arch = make(layers, parameterization)
    x = np.linspace(-3, 3, 8)[:, None]
    y, n_points = np.sin(x[:, 0]), 8
    theta = arch.kernel(x, width=width if parameterization == "standard" else math.inf).ntk
    lam, vec = np.linalg.eigh(theta)
    eta = a * n_points / lam.max()
    lr = eta / width if parameterization == "standard" else eta
    p = nw.init_params(arch, 1, width, n_networks, rng(31))
    res = training.train(arch, p, x, y, lr, steps, record_every=10, record_outputs=True, quiet=True)
    t = res.steps_recorded * eta  # (T,)
    f0 = res.f_train_path[:, 0]  # (S, N)
    decay = np.exp(-lam[None, :] * t[:, None] / n_points)  # (T, N) in the eigenbasis
    pred = y + np.einsum("ij,tj,kj,sk->sti", vec, decay, vec, f0 - y)  # (S, T, N)
    err = np.linalg.norm(res.f_train_path - pred, axis=2)  # (S, T)
    scale = np.linalg.norm(f0 - y, axis=1)  # (S,)
    assert np.all(res.final_loss < 0.5 * res.loss[:, 0])  # it did train
    return (err / scale[:, None]).max(axis=1)


@pytest.mark.parametrize("parameterization", PARAMETERIZATIONS)
def test_wide_network_follows_the_ntk_prediction_fast(parameterization):
    err = ntk_tracking_error(["dense", "relu", "dense"], parameterization, 4096, 300)
    assert np.all(err < 0.05), err


@pytest.mark.slow
def test_wide_deep_network_follows_the_ntk_prediction():
    err = ntk_tracking_error(["dense", "relu", "dense", "relu", "dense"], "ntk", 4096, 300)
    print(f"max relative deviation from the NTK prediction: {np.round(err, 4)}")
    assert np.all(err < 0.05), err


def test_readout_only_training_is_linear_regression_on_the_features():
    """Only the readout moves, and the residual follows (I - eta K_hat / N)^k exactly."""
    arch = make(BLOG, "ntk", 1.5, 0.3)
    p = nw.init_params(arch, 1, [5, 7], 3, rng(41))
    x, y = np.linspace(-2, 2, 6)[:, None], np.cos(np.linspace(-2, 2, 6))
    xe = np.linspace(-3, 3, 4)[:, None]
    res = training.train(
        arch, p, x, y, 0.3, 20, readout_only=True, x_eval=xe, record_outputs=True, quiet=True
    )
    for k in range(len(p.weights) - 1):
        assert np.array_equal(res.params.weights[k], p.weights[k])
        assert np.array_equal(res.params.biases[k], p.biases[k])
    assert not np.array_equal(res.params.weights[-1], p.weights[-1])
    step = np.eye(6) - 0.3 * nw.empirical_nngp(arch, p, x) / 6  # (S, N, N)
    r = res.f_train_path[:, 0] - y
    for k in range(1, 21):
        r = np.einsum("snm,sm->sn", step, r)
        np.testing.assert_allclose(res.f_train_path[:, k] - y, r, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(res.f_train, res.f_train_path[:, -1], rtol=0, atol=0)
    # Outputs at x_eval: recorded from the same frozen features as the training points.
    np.testing.assert_allclose(res.f_eval_path[:, 0], nw.forward(arch, p, xe), rtol=1e-13)
    np.testing.assert_allclose(res.f_eval, nw.forward(arch, res.params, xe), rtol=1e-13)


def test_loss_tolerance_freezes_each_network():
    arch = make(["dense", "erf", "dense"], "ntk", 1.5, 0.3)
    p = nw.init_params(arch, 1, 64, 4, rng(51))
    x, y = np.linspace(-2, 2, 5)[:, None], np.sin(np.linspace(-2, 2, 5))
    tol, steps = 2e-3, 400
    res = training.train(arch, p, x, y, 1.0, steps, tol=tol, x_eval=x, quiet=True)
    taken = res.steps_taken
    assert np.any(taken < steps) and res.loss.shape == (4, steps + 1)
    for s, k in enumerate(taken):
        if k < steps:
            assert res.converged[s] and res.loss[s, k] <= tol < res.loss[s, : max(k, 1)].min()
            assert np.all(res.loss[s, k:] == res.loss[s, k])  # frozen
        # The frozen parameters are those after exactly `k` steps without a tolerance.
        alone = training.train(arch, p.take(slice(s, s + 1)), x, y, 1.0, int(k), quiet=True)
        np.testing.assert_allclose(nw.ravel_params(alone.params)[0], nw.ravel_params(res.params)[s])
    np.testing.assert_allclose(res.f_eval, res.f_train, rtol=1e-13)
    assert np.array_equal(
        nw.ravel_params(p), nw.ravel_params(nw.init_params(arch, 1, 64, 4, rng(51)))
    )


def test_a_diverging_network_stops_without_an_error():
    arch = make(["dense", "relu", "dense"])
    p, x = nw.init_params(arch, 1, 32, 2, rng(52)), np.linspace(-3, 3, 6)[:, None]
    with np.errstate(all="ignore"):
        res = training.train(arch, p, x, np.sin(x[:, 0]), 1e3, 500, quiet=True)
    assert np.all(res.steps_taken < 500)
    assert not np.any(np.isfinite(res.final_loss)) and not np.any(res.converged)


def test_progress_bar_counts_steps_and_is_off_when_quiet(monkeypatch):
    calls = []

    class Bar:
        def __init__(self, total, desc):
            calls.append([total, 0, False])

        def update(self, k):
            calls[-1][1] += k

        def close(self):
            calls[-1][2] = True

    monkeypatch.setattr(training, "progress", lambda total, desc: Bar(total, desc))
    arch = make(["dense", "relu", "dense"])
    p, x = nw.init_params(arch, 2, 8, 2, rng()), points(4)
    training.train(arch, p, x, np.zeros(4), 0.1, 25)
    training.train(arch, p, x, np.zeros(4), 0.1, 1000, tol=1e9)  # stops at once
    training.train(arch, p, x, np.zeros(4), 0.1, 25, quiet=True)
    assert calls == [[25, 25, True], [1000, 1000, True]]


def test_memory_estimate_is_what_training_needs(monkeypatch):
    arch = make(BLOG)
    p, x, y = nw.init_params(arch, 1, [16, 8], 3, rng()), points(50, 1), np.zeros(50)
    need = training.memory_estimate(arch, 1, [16, 8], 3, 50)
    monkeypatch.setattr(memory, "available_memory", lambda: int(need / memory.MEMORY_FRACTION) + 1)
    training.train(arch, p, x, y, 0.1, 1, quiet=True)
    monkeypatch.setattr(memory, "available_memory", lambda: int(need / memory.MEMORY_FRACTION) - 1)
    with pytest.raises(ResourceError):
        training.train(arch, p, x, y, 0.1, 1, quiet=True)


# --------------------------------------------------------------------------- dependencies
def _imports(path: Path) -> tuple[list[tuple[str, list[str]]], list[str]]:
    """Every relative ``from ... import`` of a file as (wideinf module, [names]), and the
    attributes read from imported wideinf modules (``nw._check`` after ``from . import
    networks as nw``)."""
    tree = ast.parse(path.read_text())
    imports, aliases = [], set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            parts = path.relative_to(PACKAGE.parent).with_suffix("").parts[: -node.level]
            module = ".".join(parts + ((node.module,) if node.module else ()))
            imports.append((module, [a.name for a in node.names]))
            if node.module is None:  # modules themselves: from . import networks as nw
                aliases |= {a.asname or a.name for a in node.names}
    attributes = [
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id in aliases
    ]
    return imports, attributes


@pytest.mark.parametrize(
    "path", ["networks.py", "parameters.py", "memory.py", "training.py", "experiments/lazy.py"]
)
def test_dependencies_go_one_way_and_use_public_names(path):
    """The finite-network core never imports training or the experiments; no private names."""
    imports, attributes = _imports(PACKAGE / path)
    assert imports
    for module, names in imports:
        assert not any(n.startswith("_") for n in names), (path, module, names)
        if path in ("networks.py", "parameters.py", "memory.py"):
            assert module != "wideinf.training", (path, module)
            assert not module.startswith("wideinf.experiments"), (path, module)
    assert not any(a.startswith("_") for a in attributes), (path, attributes)
