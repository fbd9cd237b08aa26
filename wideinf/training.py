"""Full-batch gradient descent on ``L = (1/2N) sum_i (f(x_i) - y_i)^2`` for an ensemble.

Time is ``t = steps * eta``; in standard parameterization train with ``eta / n``
(docs/theory.md, "Gradient descent and time").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .architecture import check_points
from .errors import ConfigError, NumericalError
from .memory import FLOAT_BYTES, block_size, check_memory, network_blocks, working_bytes
from .networks import descent_step, forward, forward_cache
from .parameters import check_multipliers, hidden_widths, parameter_count
from .progress import progress

__all__ = ["TrainResult", "train", "step_size", "recorded_steps", "memory_estimate"]


def step_size(ntk_train, lr_factor: float = 1.0) -> float:
    """The gradient-descent step ``eta = lr_factor * N / lambda_max(Theta)`` (stable below 2).

    ``ntk_train`` (N, N) or (S, N, N): the tangent kernel that training follows on the N
    training points; for an ensemble ``lambda_max`` is the largest over its networks.
    """
    ntk_train = np.asarray(ntk_train, dtype=float)
    n = ntk_train.shape[-1]
    lam_max = float(np.max(np.linalg.eigvalsh(ntk_train)[..., -1]))
    if not lam_max > 0:
        raise NumericalError("the NTK train-train matrix is zero; cannot derive a learning rate")
    return lr_factor * n / lam_max


def recorded_steps(steps: int, record_every: int) -> np.ndarray:
    """0, r, 2r, ..., and always ``steps`` itself; shape (T,)."""
    return np.union1d(np.arange(0, steps + 1, record_every), [steps])


def memory_estimate(arch, d_in: int, width, n_networks: int, n_points: int) -> int:
    """Bytes to train S networks on ``n_points`` (training and evaluation) inputs: the
    parameters and their trained copy (``2 S P``) plus one block's :func:`working_bytes`."""
    per_net = working_bytes((int(d_in), *hidden_widths(arch, width), 1), n_points)
    copies = 2 * n_networks * parameter_count(arch, d_in, width) * FLOAT_BYTES
    return copies + block_size(per_net, n_networks) * per_net


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` returns.

    Attributes
    ----------
    params : Params, the final parameters (a copy)
    loss : ndarray, shape (S, T), at the recorded steps (a frozen network keeps its last loss)
    steps_recorded : ndarray of int, shape (T,), the steps of the columns (:func:`recorded_steps`)
    steps_taken : ndarray of int, shape (S,), fewer if a network reached ``tol`` or diverged
    f_train, f_eval : ndarray, shapes (S, N) and (S, M) (or None), the final outputs
    tol : float or None
    f_train_path, f_eval_path : ndarray, shapes (S, T, N) and (S, T, M), or None
        Outputs at the recorded steps (with ``record_outputs``).
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
        return self.final_loss <= (-np.inf if self.tol is None else self.tol)


def train(
    arch, params, x, y, learning_rate: float, steps: int, *, readout_only: bool = False,
    tol: float | None = None, x_eval=None, record_every: int = 1, quiet: bool = False,
    record_outputs: bool = False, multipliers=None,
) -> TrainResult:  # fmt: skip
    """Full-batch gradient descent on ``(1/2N) sum_i (f(x_i) - y_i)^2`` for every network.

    Parameters
    ----------
    arch : Architecture
    params : Params, S networks (not modified: a copy is trained)
    x : array, shape (N, d); y : array, shape (N,) or (S, N)
    learning_rate : float, eta > 0; steps : int >= 0
    readout_only : bool, default False
        Train only the last dense layer.
    tol : float, optional
        Freeze a network as soon as its loss is at most ``tol``.
    x_eval : array, shape (M, d), optional
        Inputs at which to report the outputs.
    record_every : int, default 1
        Record the loss (and with ``record_outputs`` the outputs) every this many steps and at
        the last.
    quiet : bool, default False
        No progress bar.
    multipliers : sequence of (float, float), optional
        Per-layer rates, as :func:`wideinf.networks.descent_step`.

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
    eta = float(learning_rate)
    if not (math.isfinite(eta) and eta > 0):
        raise ConfigError(f"learning_rate: expected a positive number, got {learning_rate!r}")
    for name, value, least in (("steps", steps, 0), ("record_every", record_every, 1)):
        if int(value) != value or value < least:
            raise ConfigError(f"{name}: expected an integer >= {least}, got {value!r}")
    if tol is not None and not (tol >= 0):
        raise ConfigError(f"tol: expected a non-negative number, got {tol!r}")
    rates = check_multipliers(multipliers, len(params.weights))
    steps, recorded = int(steps), recorded_steps(int(steps), int(record_every))
    t_rec, m = len(recorded), 0 if xe is None else xe.shape[0]

    paths = s * t_rec * (n + m) * FLOAT_BYTES if record_outputs else 0
    need = memory_estimate(arch, params.d_in, params.widths, s, n + m) + paths
    widths = "x".join(map(str, params.widths)) or "-"
    check_memory(need, f"training {s} network(s) of width {widths}")
    slices = network_blocks(s, working_bytes(params.dims, n + m))

    params = params.copy()
    out = {
        "loss": np.empty((s, t_rec)),  # (S, T)
        "taken": np.zeros(s, dtype=int),  # (S,)
        "f_train": np.empty((s, n)),  # (S, N)
        "f_path": np.empty((s, t_rec, n)) if record_outputs else None,  # (S, T, N)
        "e_path": np.empty((s, t_rec, m)) if record_outputs and xe is not None else None,
    }
    bar = None if quiet else progress(total=steps * len(slices), desc="gradient descent")
    try:
        for sl in slices:
            block = {k: None if a is None else a[sl] for k, a in out.items()}  # views
            _descend(arch, params.take(sl), x, xe, y[sl], eta, recorded, tol, readout_only,
                     bar, rates, **block)  # fmt: skip
    finally:
        if bar is not None:
            bar.close()
    e_path = out["e_path"]
    if e_path is not None:
        f_eval = e_path[:, -1].copy()  # the last step is always recorded
    else:
        f_eval = None if xe is None else forward(arch, params, xe)
    return TrainResult(
        params, out["loss"], recorded, out["taken"], out["f_train"], f_eval,
        None if tol is None else float(tol), out["f_path"], e_path,
    )  # fmt: skip


def _descend(arch, sub, x, xe, y, eta, recorded, tol, readout_only, bar, rates, *, loss, taken,
             f_train, f_path, e_path):  # fmt: skip
    """Gradient descent of one block of networks ``sub``; the arrays are its views, filled."""
    n, steps = x.shape[0], int(recorded[-1])
    stacked = np.vstack([x, xe]) if e_path is not None else None  # (N + M, d)
    lowest = len(sub.weights) - 1 if readout_only else 0
    frozen = {}  # readout only: the first pass on each set of points (its hidden layers)

    def run(points):
        cache = forward_cache(arch, sub, points, reuse=frozen.get(id(points)))
        if readout_only:
            frozen.setdefault(id(points), cache)
        return cache

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
            loss[:, cols] = current[:, None]
            if f_path is not None:
                f_path[:, cols] = f[:, None]
            if e_path is not None:
                e_path[:, cols] = (cache.f[:, n:] if both else run(xe).f)[:, None]  # (S, 1, M)
            column += 1
        if done:
            if bar is not None:
                bar.update(steps - step)
            break
        # dL/df = (f - y) / N
        descent_step(arch, sub, cache.head(n), resid / n, eta,
                     active=None if active.all() else active, lowest=lowest,
                     multipliers=rates)  # fmt: skip
        taken += active
        if bar is not None:
            bar.update(1)
    f_train[...] = f
