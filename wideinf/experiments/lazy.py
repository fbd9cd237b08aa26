"""Gradient descent on wide networks, and the linearised network trained beside it.

Lazy training (Chizat et al. 2019, arXiv:1812.07956; Lee et al. 2019, arXiv:1902.06720): a wide
network stays close to ``f_lin(x; theta) = f(x; theta_0) + grad f(x; theta_0) . (theta -
theta_0)``, whose outputs follow exactly from the empirical NTK at initialisation
(:func:`linearized_path`, no Jacobian; docs/theory.md, "Lazy training and O(n^-1/2)
convergence"). :func:`descend` is :func:`wideinf.training.train` recording the outputs and how
far each layer's weights moved.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import NumericalError
from ..networks import Params
from ..training import recorded_steps, train

__all__ = ["LazyTrace", "descend", "linearized_path", "relative_change", "recorded_steps"]


@dataclass(frozen=True)
class LazyTrace:
    """What :func:`descend` returns for S networks, T recorded steps and M recorded inputs."""

    params: Params  # final parameters (new arrays; the initial ones are unchanged)
    steps_recorded: np.ndarray  # (T,) int: 0, r, 2r, ... and the last step
    f_path: np.ndarray  # (S, T, M) outputs at x_record at the recorded steps
    loss: np.ndarray  # (S, T) training loss (1/2N) sum (f - y)^2 at the recorded steps
    weight_change: np.ndarray  # (S, L) ||W_T - W_0||_F / ||W_0||_F per layer, biases excluded


# Entries of one row block in :func:`relative_change` (4 MB): no temporary of W's size.
_BLOCK_ENTRIES = 2**19


def relative_change(new, old) -> np.ndarray:
    """``||new - old||_F / ||old||_F`` over all but the first axis, in row blocks; (S,).

    new, old : ndarray, shape (S, a, b)
    """
    s_count, rows_total = new.shape[0], new.shape[1]
    rows = max(1, _BLOCK_ENTRIES // max(1, int(np.prod(new.shape[2:]))))
    out = np.empty(s_count)
    for s in range(s_count):
        num = den = 0.0
        for start in range(0, rows_total, rows):
            a, b = new[s, start : start + rows], old[s, start : start + rows]
            num += float(np.sum((a - b) ** 2))  # elementwise, not BLAS: many small blocks
            den += float(np.sum(b * b))
        out[s] = math.sqrt(num / den) if den > 0 else math.inf
    return out


def descend(
    arch, params: Params, x, y, learning_rate: float, steps: int, *, x_record,
    record_every: int = 1,
) -> LazyTrace:  # fmt: skip
    """:func:`wideinf.training.train` recording the outputs and the weights' change.

    S networks ``params`` (left unchanged) take ``steps`` steps of ``learning_rate`` on the
    stored parameters (eta / n in standard parameterization) on x (N, d), y (N,); the outputs
    at ``x_record`` (M, d) are recorded every ``record_every`` steps and at the last. Returns a
    :class:`LazyTrace`; a NumericalError if the outputs become NaN or infinite.
    """
    # Divergence is reported below as a NumericalError, not as overflow warnings.
    with np.errstate(over="ignore", invalid="ignore"):
        res = train(
            arch, params, x, y, learning_rate, steps, x_eval=x_record,
            record_every=record_every, quiet=True, record_outputs=True,
        )  # fmt: skip
    diverged = ~np.isfinite(res.final_loss)
    if diverged.any():
        raise NumericalError(
            f"gradient descent diverged at step {int(res.steps_taken[diverged].min())} "
            f"(width {'x'.join(map(str, params.widths)) or '-'}); "
            f"lower train.learning_rate (now {learning_rate:g})"
        )
    change = np.stack(
        [relative_change(w, w0) for w, w0 in zip(res.params.weights, params.weights)], axis=1
    )  # (S, L)
    return LazyTrace(res.params, res.steps_recorded, res.f_eval_path, res.loss, change)


def linearized_path(
    theta_eval, theta_train, f0_eval, f0_train, y, learning_rate: float, steps_recorded
) -> np.ndarray:
    """Outputs (S, T, M) of the linearised networks at the T ``steps_recorded``.

    ``f_lin_{k+1}(x) = f_lin_k(x) - (eta / N) Theta_0(x, X) (f_lin_k(X) - y)`` (Lee et al. 2019,
    eq. 8, in discrete time), evaluated exactly step by step from the empirical NTK at
    initialisation ``theta_eval`` (S, M, N) and ``theta_train`` (S, N, N), the initial outputs
    ``f0_eval`` (S, M) and ``f0_train`` (S, N), and the targets y (N,). ``learning_rate`` is eta
    times the factor that turns the given kernel into the stored parameters' (1 in NTK
    parameterization; n with eta / n in standard parameterization).
    """
    rate = learning_rate / theta_train.shape[-1]  # eta / N
    resid = f0_train - y  # (S, N)
    f = f0_eval.copy()  # (S, M)
    out = np.empty((f.shape[0], len(steps_recorded), f.shape[1]))  # (S, T, M)
    step = 0
    for column, stop in enumerate(steps_recorded):
        for _ in range(int(stop) - step):
            f -= rate * np.einsum("smn,sn->sm", theta_eval, resid)
            resid = resid - rate * np.einsum("smn,sn->sm", theta_train, resid)
        step = int(stop)
        out[:, column] = f
    return out
