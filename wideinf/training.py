"""Full-batch gradient descent on the MSE loss, vectorised over an ensemble of networks.

The loss of each network is ``L = (1/2N) sum_i (f(x_i) - y_i)^2`` and one step is
``theta <- theta - eta dL/dtheta``. In the infinite-width limit (NTK parameterization) the
training outputs then follow ``f_t = f_0 e^{-Theta t/N} + (I - e^{-Theta t/N}) y`` with
``t = steps * eta`` (Jacot et al. 2018, arXiv:1806.07572; Lee et al. 2019, arXiv:1902.06720),
up to the discretisation: a mode with ``a = eta lambda / N`` decays as ``(1 - a)^k`` rather
than ``e^{-a k}``, so keep ``eta lambda_max / N`` small to follow the flow (:func:`step_size`).

Standard parameterization: train with ``eta / n`` (n the hidden width) to follow the kernel
that :func:`wideinf.networks.empirical_ntk` and ``Architecture.kernel(x, width=n)`` report
(``Theta / n``), with the same time ``t = steps * eta``.

Each step is :func:`wideinf.networks.forward_cache` then
:func:`wideinf.networks.descent_step`, which writes the step into the parameters in place.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

from .errors import ConfigError, NumericalError
from .memory import FLOAT_BYTES, block_size, check_memory, network_blocks, working_bytes
from .networks import (
    check_points,
    descent_step,
    forward,
    forward_cache,
    hidden_widths,
    parameter_count,
)
from .parameters import check_multipliers
from .progress import progress

__all__ = ["TrainResult", "train", "step_size", "recorded_steps", "memory_estimate"]


def step_size(ntk_train, lr_factor: float = 1.0) -> float:
    """The gradient-descent step ``eta = lr_factor * N / lambda_max(Theta)``.

    Linearised gradient descent on ``(1/2N) |f - y|^2`` moves the train residual by
    ``r <- (I - eta Theta / N) r``: ``lr_factor = 1`` removes the stiffest mode in one step,
    and the descent is stable for ``lr_factor < 2``.

    Parameters
    ----------
    ntk_train : ndarray, shape (N, N) or (S, N, N)
        The tangent kernel that training follows, on the N training points, in the units of
        the learning rate; for an ensemble, ``lambda_max`` is the largest over its networks.
    lr_factor : float, default 1.0

    Returns
    -------
    float
    """
    ntk_train = np.asarray(ntk_train, dtype=float)
    n = ntk_train.shape[-1]
    lam_max = float(np.max(np.linalg.eigvalsh(ntk_train)[..., -1]))
    if not lam_max > 0:
        raise NumericalError("the NTK train-train matrix is zero; cannot derive a learning rate")
    return lr_factor * n / lam_max


def recorded_steps(steps: int, record_every: int) -> np.ndarray:
    """0, r, 2r, ..., and always ``steps`` itself; shape (T,)."""
    rec = list(range(0, steps + 1, record_every))
    if rec[-1] != steps:
        rec.append(steps)
    return np.asarray(rec, dtype=int)


def memory_estimate(arch, d_in: int, width, n_networks: int, n_points: int) -> int:
    """Bytes to train an ensemble on ``n_points`` inputs (training and evaluation points).

    The parameters and their trained copy (``2 S P``) plus, for one block of networks, the
    working memory of a forward and backward pass (:func:`wideinf.memory.working_bytes`).
    """
    per_net = working_bytes((int(d_in), *hidden_widths(arch, width), 1), n_points)
    copies = 2 * n_networks * parameter_count(arch, d_in, width) * FLOAT_BYTES
    return copies + block_size(per_net, n_networks) * per_net


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


def _check_settings(learning_rate, steps, record_every, tol) -> None:
    eta = float(learning_rate)
    if not (math.isfinite(eta) and eta > 0):
        raise ConfigError(f"learning_rate: expected a positive number, got {learning_rate!r}")
    if int(steps) != steps or steps < 0:
        raise ConfigError(f"steps: expected a non-negative integer, got {steps!r}")
    if int(record_every) != record_every or record_every < 1:
        raise ConfigError(f"record_every: expected a positive integer, got {record_every!r}")
    if tol is not None and not (tol >= 0):
        raise ConfigError(f"tol: expected a non-negative number, got {tol!r}")


def train(
    arch, params, x, y, learning_rate: float, steps: int, *, readout_only: bool = False,
    tol: float | None = None, x_eval=None, record_every: int = 1, quiet: bool = False,
    record_outputs: bool = False, multipliers=None,
) -> TrainResult:  # fmt: skip
    """Full-batch gradient descent on ``(1/2N) sum_i (f(x_i) - y_i)^2`` for every network.

    Parameters
    ----------
    arch : Architecture
    params : Params, S networks
        Initial parameters (not modified: training updates a copy in place).
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
        Also record the outputs at the recorded steps (``f_train_path``, ``f_eval_path``);
        a recorded step then runs one forward pass on the training and evaluation points.
    multipliers : sequence of (float, float), optional
        Per-layer learning rates ``eta * multipliers[k]`` for dense layer k's (weights, bias)
        (:func:`wideinf.networks.descent_step`); default ``eta`` for every parameter.

    Returns
    -------
    TrainResult
    """
    x = check_points(x, params.d_in)
    s, n = params.n_networks, x.shape[0]
    y = np.asarray(y, dtype=float)
    if y.shape not in ((n,), (s, n)):
        raise ConfigError(f"y: expected shape ({n},) or ({s}, {n}), got {y.shape}")
    y = np.broadcast_to(y, (s, n))
    xe = None if x_eval is None else check_points(x_eval, params.d_in, "x_eval")
    _check_settings(learning_rate, steps, record_every, tol)
    rates = check_multipliers(multipliers, len(params.weights))
    steps, recorded = int(steps), recorded_steps(int(steps), int(record_every))
    t_rec, m = len(recorded), 0 if xe is None else xe.shape[0]

    paths = s * t_rec * (n + m) * FLOAT_BYTES if record_outputs else 0
    need = memory_estimate(arch, params.d_in, params.widths, s, n + m) + paths
    widths = "x".join(map(str, params.widths)) or "-"
    check_memory(need, f"training {s} network(s) of width {widths}")
    slices = network_blocks(s, working_bytes(params.dims, n + m))

    params = params.copy()
    out = _Outputs(
        loss=np.empty((s, t_rec)),  # (S, T)
        taken=np.zeros(s, dtype=int),  # (S,)
        f_train=np.empty((s, n)),  # (S, N)
        f_path=np.empty((s, t_rec, n)) if record_outputs else None,  # (S, T, N)
        e_path=np.empty((s, t_rec, m)) if record_outputs and xe is not None else None,
    )
    eta = float(learning_rate)
    bar = None if quiet else progress(total=steps * len(slices), desc="gradient descent")
    try:
        for sl in slices:
            _descend(arch, params.take(sl), x, xe, y[sl], eta, recorded, tol, readout_only,
                     out.take(sl), bar, rates)  # fmt: skip
    finally:
        if bar is not None:
            bar.close()
    if out.e_path is not None:
        f_eval = out.e_path[:, -1].copy()  # the last step is always recorded
    else:
        f_eval = None if xe is None else forward(arch, params, xe)
    return TrainResult(
        params, out.loss, recorded, out.taken, out.f_train, f_eval,
        None if tol is None else float(tol), out.f_path, out.e_path,
    )  # fmt: skip


@dataclass(frozen=True)
class _Outputs:
    """The arrays :func:`train` fills, network axis first."""

    loss: np.ndarray
    taken: np.ndarray
    f_train: np.ndarray
    f_path: np.ndarray | None
    e_path: np.ndarray | None

    def take(self, sl: slice) -> _Outputs:
        """Views of the networks ``sl``."""
        parts = (getattr(self, f.name) for f in fields(self))
        return _Outputs(*(None if a is None else a[sl] for a in parts))


def _descend(arch, sub, x, xe, y, eta, recorded, tol, readout_only, out: _Outputs, bar, rates):
    """Gradient descent of one block of networks ``sub`` (views, updated in place)."""
    n, steps = x.shape[0], int(recorded[-1])
    stacked = np.vstack([x, xe]) if out.e_path is not None else None  # (N + M, d)
    lowest = len(sub.weights) - 1 if readout_only else 0
    frozen = {}  # readout only: the first pass on each set of points (its hidden layers)

    def run(points):
        if not readout_only:
            return forward_cache(arch, sub, points)
        if id(points) not in frozen:
            frozen[id(points)] = forward_cache(arch, sub, points)
            return frozen[id(points)]
        return forward_cache(arch, sub, points, reuse=frozen[id(points)])

    active = np.ones(sub.n_networks, dtype=bool)
    column = 0
    for step in range(steps + 1):
        record = step == recorded[column]
        # A recorded step with outputs at x_eval: one pass on the training and eval points.
        both = record and stacked is not None
        cache = run(stacked if both else x)
        f = cache.f[:, :n]  # (S, N)
        resid = f - y  # (S, N)
        current = 0.5 * np.mean(resid * resid, axis=1)  # (S,)
        active &= np.isfinite(current)  # a diverged network stops where it overflowed
        if tol is not None:
            active &= current > tol
        done = step == steps or not active.any()
        # Record this step; when done, fill the remaining columns with the frozen state.
        if record or done:
            cols = slice(column, None) if done else slice(column, column + 1)
            out.loss[:, cols] = current[:, None]
            if out.f_path is not None:
                out.f_path[:, cols] = f[:, None]
            if out.e_path is not None:
                f_eval = cache.f[:, n:] if both else run(xe).f  # (S, M)
                out.e_path[:, cols] = f_eval[:, None]
            column += 1
        if done:
            if bar is not None:
                bar.update(steps - step)
            break
        # dL/df = (f - y) / N
        all_active = active.all()
        descent_step(arch, sub, cache.head(n), resid / n, eta,
                     active=None if all_active else active, lowest=lowest,
                     multipliers=rates)  # fmt: skip
        out.taken[...] += active
        if bar is not None:
            bar.update(1)
    out.f_train[...] = f
