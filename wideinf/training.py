"""Full-batch gradient descent on the MSE loss, vectorised over an ensemble of networks.

The loss of each network is ``L = (1/2N) sum_i (f(x_i) - y_i)^2`` and one step is
``theta <- theta - eta dL/dtheta``. In the infinite-width limit (NTK parameterization) the
training outputs then follow ``f_t = f_0 e^{-Theta t/N} + (I - e^{-Theta t/N}) y`` with
``t = steps * eta`` (Jacot et al. 2018, arXiv:1806.07572; Lee et al. 2019, arXiv:1902.06720),
up to the discretisation: a mode with ``a = eta lambda / N`` decays as ``(1 - a)^k`` rather
than ``e^{-a k}``, so keep ``eta lambda_max / N`` small to follow the flow.

Standard parameterization: train with ``eta / n`` (n the last hidden width) to follow the kernel
that :func:`wideinf.networks.empirical_ntk` and ``Architecture.kernel(x, width=n)`` report
(``Theta / n``), with the same time ``t = steps * eta``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import ConfigError
from .progress import progress

__all__ = ["TrainResult", "train"]


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` returns.

    Attributes
    ----------
    params : Params
        The final parameters (a copy; the input is left unchanged).
    loss : ndarray, shape (S, T)
        Loss of each network at the recorded steps (a frozen network keeps its last loss).
    steps_recorded : ndarray of int, shape (T,)
        Step numbers of the columns of ``loss``: 0, r, 2r, ... and always the last step.
    steps_taken : ndarray of int, shape (S,)
        Gradient steps each network took: fewer than ``steps`` if it reached ``tol``, or if it
        diverged (its loss is then NaN or infinite; check ``np.isfinite(final_loss)``).
    f_train : ndarray, shape (S, N)
        Final outputs on the training inputs.
    f_eval : ndarray, shape (S, M), or None
        Final outputs on ``x_eval``, if given.
    tol : float or None
        The loss tolerance used.
    f_train_path : ndarray, shape (S, T, N), or None
        Outputs on the training inputs at the recorded steps (with ``record_outputs``).
    f_eval_path : ndarray, shape (S, T, M), or None
        Outputs on ``x_eval`` at the recorded steps (with ``record_outputs`` and ``x_eval``).
    """

    params: object
    loss: np.ndarray
    steps_recorded: np.ndarray
    steps_taken: np.ndarray
    f_train: np.ndarray
    f_eval: np.ndarray | None = None
    tol: float | None = None
    f_train_path: np.ndarray | None = None
    f_eval_path: np.ndarray | None = None

    @property
    def final_loss(self) -> np.ndarray:
        """Loss of each network after training, shape (S,)."""
        return self.loss[:, -1]

    @property
    def converged(self) -> np.ndarray:
        """Networks whose final loss is at most ``tol``, shape (S,) (all False without tol)."""
        if self.tol is None:
            return np.zeros(self.loss.shape[0], dtype=bool)
        return self.final_loss <= self.tol


def train(
    arch,
    params,
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
    record_outputs: bool = False,
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
        Train only the last dense layer (linear regression on the fixed random features).
    tol : float, optional
        Stop a network (freeze its parameters) as soon as its loss is at most ``tol``.
    x_eval : array, shape (M, d), optional
        Inputs at which to report the outputs.
    record_every : int, default 1
        Record the loss (and outputs) every this many steps, and at the last step.
    quiet : bool, default False
        No progress bar (it is also off when stderr is not a terminal, and under ``--quiet``).
    record_outputs : bool, default False
        Also record the outputs at the recorded steps (``f_train_path``, ``f_eval_path``).

    Returns
    -------
    TrainResult
    """
    from . import networks as nw

    blocks = nw._check(arch, params)
    x = nw._points(x, params.d_in)
    s, n = params.n_networks, x.shape[0]
    y = np.asarray(y, dtype=float)
    if y.shape not in ((n,), (s, n)):
        raise ConfigError(f"y: expected shape ({n},) or ({s}, {n}), got {y.shape}")
    y = np.broadcast_to(y, (s, n))
    xe = None if x_eval is None else nw._points(x_eval, params.d_in, "x_eval")
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
    t_rec = len(recorded)
    m = 0 if xe is None else xe.shape[0]

    per_net = nw._per_network_bytes(params, n + m) + params.n_params * nw._F8
    slices = list(nw._net_blocks(params, per_net))
    paths = s * t_rec * (n + m) * nw._F8 if record_outputs else 0
    check = 2 * s * params.n_params * nw._F8 + (slices[0].stop - slices[0].start) * per_net
    widths = "x".join(map(str, params.widths)) or "-"
    nw.check_memory(check + paths, f"training {s} network(s) of width {widths}")

    params = params.copy()
    loss = np.empty((s, t_rec))  # (S, T)
    steps_taken = np.zeros(s, dtype=int)  # (S,)
    f_train = np.empty((s, n))  # (S, N)
    f_path = np.empty((s, t_rec, n)) if record_outputs else None  # (S, T, N)
    e_path = np.empty((s, t_rec, m)) if record_outputs and xe is not None else None
    bar = None if quiet else progress(total=steps * len(slices), desc="gradient descent")
    try:
        for sl in slices:
            state = _Block(nw, arch, blocks, params.take(sl), x, xe, readout_only)
            state.run(
                y[sl], eta, steps, recorded, tol, loss[sl], steps_taken[sl], f_train[sl],
                None if f_path is None else f_path[sl], None if e_path is None else e_path[sl],
                bar,
            )  # fmt: skip
    finally:
        if bar is not None:
            bar.close()
    f_eval = None if xe is None else nw.forward(arch, params, xe)
    return TrainResult(
        params, loss, np.asarray(recorded), steps_taken, f_train, f_eval,
        None if tol is None else float(tol), f_path, e_path,
    )  # fmt: skip


class _Block:
    """Gradient descent for a block of networks whose parameters are views (updated in place)."""

    def __init__(self, nw, arch, blocks, sub, x, x_eval, readout_only):
        self.nw, self.arch, self.blocks, self.sub = nw, arch, blocks, sub
        self.x, self.x_eval, self.readout_only = x, x_eval, readout_only
        self.sw, self.sb = nw._scales(arch, blocks[-1][0], sub.weights[-1].shape[1])
        if readout_only:
            # Fixed features: the readout's inputs, (S, N, n_L) or (N, d) without hidden layers.
            self.feats = nw._forward_cache(arch, blocks, sub, x)[1][-1]
            self.feats_eval = (
                None if x_eval is None else nw._forward_cache(arch, blocks, sub, x_eval)[1][-1]
            )

    def _readout(self, feats) -> np.ndarray:
        w, b = self.sub.weights[-1], self.sub.biases[-1]
        return self.sw * np.matmul(feats, w)[..., 0] + self.sb * b  # (S, N)

    def outputs(self):
        """f (S, N) on the training inputs and what the gradient needs."""
        if self.readout_only:
            return self._readout(self.feats), None
        f, inputs, pre = self.nw._forward_cache(self.arch, self.blocks, self.sub, self.x)
        return f, (inputs, pre)

    def eval_outputs(self) -> np.ndarray:
        if self.readout_only:
            return self._readout(self.feats_eval)
        return self.nw._forward_cache(self.arch, self.blocks, self.sub, self.x_eval)[0]

    def updates(self, cache, cot):
        """[(parameter, gradient)] for the cotangent dL/df (S, N)."""
        sub = self.sub
        if self.readout_only:
            feats = self.feats
            ft = feats.T if feats.ndim == 2 else feats.transpose(0, 2, 1)  # (.., n_L, N)
            gw = self.sw * np.matmul(ft, cot[..., None])  # (S, n_L, 1)
            gb = self.sb * cot.sum(axis=1, keepdims=True)  # (S, 1)
            return [(sub.weights[-1], gw), (sub.biases[-1], gb)]
        inputs, pre = cache
        deltas = self.nw._backward(self.arch, self.blocks, sub, inputs, pre, cot[..., None])
        if not hasattr(self, "gws"):  # gradient buffers, reused at every step
            self.gws = [np.empty_like(w) for w in sub.weights]
            self.gbs = [np.empty_like(b) for b in sub.biases]
        gws, gbs = self.gws, self.gbs
        self.nw._accumulate(self.arch, self.blocks, sub, inputs, deltas, gws, gbs, slice(None))
        return list(zip(sub.weights, gws)) + list(zip(sub.biases, gbs))

    def run(self, y, eta, steps, recorded, tol, loss, taken, f_out, f_path, e_path, bar):
        n = self.x.shape[0]
        active = np.ones(self.sub.n_networks, dtype=bool)
        column = 0
        for step in range(steps + 1):
            f, cache = self.outputs()
            resid = f - y  # (S, N)
            current = 0.5 * np.mean(resid * resid, axis=1)  # (S,)
            active &= np.isfinite(current)  # a diverged network stops where it overflowed
            if tol is not None:
                active &= current > tol
            done = step == steps or not active.any()
            # Record this step; when done, fill the remaining columns with the frozen state.
            if step == recorded[column] or done:
                cols = slice(column, None) if done else slice(column, column + 1)
                loss[:, cols] = current[:, None]
                if f_path is not None:
                    f_path[:, cols] = f[:, None]
                if e_path is not None:
                    e_path[:, cols] = self.eval_outputs()[:, None]
                column += 1
            if done:
                if bar is not None:
                    bar.update(steps - step)
                break
            grads = self.updates(cache, resid / n)  # dL/df = (f - y) / N
            all_active = active.all()
            for p, g in grads:
                if all_active:
                    g *= eta  # in place: no temporary of the weights' size
                    p -= g
                else:
                    p[active] -= eta * g[active]
            taken += active
            if bar is not None:
                bar.update(1)
        f_out[...] = f
