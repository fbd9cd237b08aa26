"""Full-batch gradient descent on the MSE loss, vectorised over an ensemble of networks.

The loss of each network is ``L = (1/2N) sum_i (f(x_i) - y_i)^2`` and one step is
``theta <- theta - eta dL/dtheta``. In the infinite-width limit (NTK parameterization) the
training outputs then follow ``f_t = f_0 e^{-Theta t/N} + (I - e^{-Theta t/N}) y`` with
``t = steps * eta`` (Jacot et al. 2018, arXiv:1806.07572; Lee et al. 2019, arXiv:1902.06720).
In standard parameterization, train with ``eta / n`` (n the last hidden width) to follow the
kernel that :func:`wideinf.networks.empirical_ntk` and ``Architecture.kernel(x, width=n)``
report, with the same ``t = steps * eta``.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import ConfigError
from .networks import (
    _F8,
    Params,
    TrainResult,
    _accumulate,
    _backward,
    _check,
    _forward_cache,
    _net_blocks,
    _per_network_bytes,
    _points,
    _scales,
    check_memory,
    forward,
)
from .progress import progress

__all__ = ["train"]


def train(
    arch,
    params: Params,
    x,
    y,
    learning_rate: float,
    steps: int,
    *,
    readout_only: bool = False,
    tol: float | None = None,
    x_eval=None,
    record_every: int = 1,
    quiet: bool = False,
) -> TrainResult:
    """Full-batch gradient descent on ``(1/2N) sum_i (f(x_i) - y_i)^2`` for every network.

    Parameters
    ----------
    arch : Architecture
    params : Params, S networks
        Initial parameters (not modified).
    x : array, shape (N, d)
    y : array, shape (N,) or (S, N)
        Targets, shared by every network or one row per network.
    learning_rate : float
        Step size eta (> 0); time ``t = steps * eta``. Use ``eta / n`` in standard
        parameterization (see the module docstring).
    steps : int
        Number of gradient steps (>= 0).
    readout_only : bool, default False
        Train only the last dense layer (regression on the fixed random features).
    tol : float, optional
        Stop a network (freeze its parameters) as soon as its loss is at most ``tol``.
    x_eval : array, shape (M, d), optional
        Inputs at which to report the final outputs.
    record_every : int, default 1
        Record the loss every this many steps (and at the last step).
    quiet : bool, default False
        No progress bar (it is also off when stderr is not a terminal).

    Returns
    -------
    TrainResult
    """
    blocks = _check(arch, params)
    x = _points(x, params.d_in)
    s, n = params.n_networks, x.shape[0]
    y = np.asarray(y, dtype=float)
    if y.shape not in ((n,), (s, n)):
        raise ConfigError(f"y: expected shape ({n},) or ({s}, {n}), got {y.shape}")
    y = np.broadcast_to(y, (s, n))
    eta = float(learning_rate)
    if not (math.isfinite(eta) and eta > 0):
        raise ConfigError(f"learning_rate: expected a positive number, got {learning_rate!r}")
    if int(steps) != steps or steps < 0:
        raise ConfigError(f"steps: expected a non-negative integer, got {steps!r}")
    if int(record_every) != record_every or record_every < 1:
        raise ConfigError(f"record_every: expected a positive integer, got {record_every!r}")
    if tol is not None and not (tol >= 0):
        raise ConfigError(f"tol: expected a non-negative number, got {tol!r}")
    steps, record_every = int(steps), int(record_every)
    recorded = list(range(0, steps + 1, record_every))
    if recorded[-1] != steps:
        recorded.append(steps)

    per_net = _per_network_bytes(params, n) + params.n_params * _F8
    slices = list(_net_blocks(params, per_net))
    block = slices[0].stop - slices[0].start
    check_memory(
        2 * s * params.n_params * _F8 + block * per_net,
        f"training {s} network(s) of width {'x'.join(map(str, params.widths)) or '-'}",
    )
    params = params.copy()
    loss = np.empty((s, len(recorded)))  # (S, T)
    steps_taken = np.zeros(s, dtype=int)  # (S,)
    f_train = np.empty((s, n))  # (S, N)
    bar = None if quiet else progress(total=steps * len(slices), desc="gradient descent")
    try:
        for sl in slices:
            _train_block(
                arch, blocks, params.take(sl), x, y[sl], eta, steps, recorded, readout_only,
                tol, loss[sl], steps_taken[sl], f_train[sl], bar,
            )  # fmt: skip
    finally:
        if bar is not None:
            bar.close()
    f_eval = None if x_eval is None else forward(arch, params, x_eval)
    return TrainResult(
        params, loss, np.asarray(recorded), steps_taken, f_train, f_eval,
        None if tol is None else float(tol),
    )  # fmt: skip


def _train_block(
    arch, blocks, sub: Params, x, y, eta, steps, recorded, readout_only, tol,
    loss_out, taken_out, f_out, bar,
):  # fmt: skip
    """Train the networks ``sub`` (views into the result's arrays) in place."""
    n = x.shape[0]
    last = len(blocks) - 1
    sw_l, sb_l = _scales(arch, blocks[-1][0], sub.weights[-1].shape[1])
    feats = None
    if readout_only:
        _, inputs, _ = _forward_cache(arch, blocks, sub, x)
        feats = inputs[-1]  # (S, N, n_L), or (N, d) without hidden layers
        feats_t = feats.T if feats.ndim == 2 else feats.transpose(0, 2, 1)

    active = np.ones(sub.n_networks, dtype=bool)
    column = 0
    for step in range(steps + 1):
        if readout_only:
            f = sw_l * np.matmul(feats, sub.weights[-1])[..., 0] + sb_l * sub.biases[-1]
        else:
            f, inputs, pre = _forward_cache(arch, blocks, sub, x)  # f (S, N)
        resid = f - y  # (S, N)
        current = 0.5 * np.mean(resid * resid, axis=1)  # (S,)
        if tol is not None:
            active &= current > tol
        if step == recorded[column]:
            loss_out[:, column] = current
            column += 1
        if step == steps or not active.any():
            loss_out[:, column:] = current[:, None]
            if bar is not None:
                bar.update(steps - step)
            break
        cot = resid / n  # dL/df, (S, N)
        if readout_only:
            gw = sw_l * np.matmul(feats_t, cot[..., None])  # (S, n_L, 1)
            gb = sb_l * cot.sum(axis=1, keepdims=True)  # (S, 1)
            updates = [(sub.weights[-1], gw), (sub.biases[-1], gb)]
        else:
            deltas = _backward(arch, blocks, sub, inputs, pre, cot[..., None])
            gws = [np.empty_like(w) for w in sub.weights]
            gbs = [np.empty_like(b) for b in sub.biases]
            _accumulate(arch, blocks, sub, inputs, deltas, gws, gbs, slice(None))
            updates = [(sub.weights[k], gws[k]) for k in range(last + 1)]
            updates += [(sub.biases[k], gbs[k]) for k in range(last + 1)]
        all_active = active.all()
        for p, g in updates:
            if all_active:
                p -= eta * g
            else:
                p[active] -= eta * g[active]
        taken_out += active
        if bar is not None:
            bar.update(1)
    f_out[...] = f
