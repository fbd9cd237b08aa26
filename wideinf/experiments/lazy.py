"""Gradient descent on wide networks, and the linearised network trained beside it.

Lazy training (Chizat et al. 2019, arXiv:1812.07956; Lee et al. 2019, arXiv:1902.06720): a wide
network trained by gradient descent stays close to its first-order Taylor expansion around the
initial parameters theta_0,

    f_lin(x; theta) = f(x; theta_0) + grad f(x; theta_0) . (theta - theta_0).

Gradient descent with learning rate eta on ``L = (1/2N) sum_i (f(x_i) - y_i)^2`` moves the
linearised model's outputs by exactly (discrete time, no approximation)

    f_lin_{k+1}(x) = f_lin_k(x) - (eta / N) Theta_0(x, X) (f_lin_k(X) - y),

with ``Theta_0`` the *empirical* NTK of that network at initialisation, so the linearised
network at any step follows from ``Theta_0`` on (evaluation points, training points) alone:
:func:`linearized_path`, no Jacobian.

:func:`descend` is the same full-batch gradient descent as :func:`wideinf.networks.train`
(tested against it), written for very wide networks, whose steps are bound by memory traffic:
every weight matrix is updated in place by a rank-N BLAS update (``W += alpha Y^T Delta``,
``dgemm`` with ``beta = 1``), so a step allocates nothing of a weight matrix's size, and the
outputs at the evaluation points are recorded in the same forward pass as the training points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.linalg.blas import dgemm

from ..errors import NumericalError
from ..networks import Params, _blocks, _forward_cache, _scales

__all__ = ["LazyTrace", "descend", "linearized_path", "relative_change", "recorded_steps"]


@dataclass(frozen=True)
class LazyTrace:
    """What :func:`descend` returns.

    Attributes
    ----------
    params : Params
        Final parameters of the S networks (new arrays; the initial ones are unchanged).
    steps_recorded : ndarray of int, shape (T,)
        Steps at which outputs were recorded: 0, r, 2r, ... and the last step.
    f_path : ndarray, shape (S, T, M)
        Outputs at ``x_record`` at the recorded steps (column 0: at initialisation).
    loss : ndarray, shape (S, T)
        Training loss ``(1/2N) sum (f - y)^2`` at the recorded steps.
    weight_change : ndarray, shape (S, L)
        ``||W_T - W_0||_F / ||W_0||_F`` of each dense layer's weight matrix (biases excluded),
        input layer first, readout last.
    """

    params: Params
    steps_recorded: np.ndarray
    f_path: np.ndarray
    loss: np.ndarray
    weight_change: np.ndarray


def recorded_steps(steps: int, record_every: int) -> np.ndarray:
    """0, r, 2r, ..., and always ``steps`` itself; shape (T,)."""
    rec = list(range(0, steps + 1, record_every))
    if rec[-1] != steps:
        rec.append(steps)
    return np.asarray(rec, dtype=int)


# Entries of one row block in :func:`relative_change` (4 MB): no temporary of W's size.
_BLOCK_ENTRIES = 2**19


class _Net:
    """S networks held as mutable arrays: forward, backprop and an in-place GD step."""

    def __init__(self, arch, params: Params):
        self.arch = arch
        self.blocks = _blocks(arch)
        self.W = [np.array(w, dtype=float, order="C") for w in params.weights]  # (S, n_in, n_out)
        self.b = [np.array(b, dtype=float) for b in params.biases]  # (S, n_out)
        self.scales = [_scales(arch, d, w.shape[1]) for (d, _), w in zip(self.blocks, self.W)]

    def forward(self, x, keep: bool = False):
        """f (S, N); with ``keep`` also the inputs and pre-activations backprop needs."""
        f, inputs, pre = _forward_cache(self.arch, self.blocks, self.params(), x)
        return (f, inputs, pre) if keep else f

    def step(self, inputs, pre, cotangent, eta: float) -> None:
        """``theta -= eta * sum_i cotangent_i df(x_i)/dtheta``, weights updated in place.

        ``inputs`` and ``pre`` are the forward cache on the N training inputs (their first N
        rows if the cache holds more points); cotangent (S, N).
        """
        n = cotangent.shape[1]
        delta = cotangent[..., None]  # (S, N, 1)
        for k in range(len(self.blocks) - 1, -1, -1):
            (_, acts), (sw, sb) = self.blocks[k], self.scales[k]
            for act, z in zip(reversed(acts), reversed(pre[k])):
                delta = delta * act.dphi(z[:, :n])  # (S, N, n_out)
            y = inputs[k]
            y = y[:n] if y.ndim == 2 else y[:, :n]  # (N, n_in) or (S, N, n_in)
            self.b[k] -= (eta * sb) * delta.sum(axis=1)  # (S, n_out)
            delta = self._backprop_update(self.W[k], y, delta, sw, -eta * sw, need_below=k > 0)

    @staticmethod
    def _backprop_update(W, y, delta, sw: float, alpha: float, need_below: bool):
        """``below = sw delta W^T`` with the old W, then ``W += alpha y^T delta`` in place.

        W (S, n_in, n_out), y (N, n_in) or (S, N, n_in), delta (S, N, n_out); returns below
        (S, N, n_in) or None. The update is BLAS ``dgemm`` with ``beta = 1`` writing into the
        Fortran-ordered view ``W[s].T``: no temporary of W's size. (Few, large BLAS calls:
        splitting W into cache-sized blocks saved under 10% with one thread and was many times
        slower with several.)
        """
        below = None
        if need_below:
            below = np.matmul(delta, W.transpose(0, 2, 1))  # (S, N, n_in)
            below *= sw
        for s in range(W.shape[0]):
            ys = y if y.ndim == 2 else y[s]  # (N, n_in)
            target = W[s].T  # (n_out, n_in), Fortran-ordered view
            out = dgemm(alpha, delta[s].T, ys, beta=1.0, c=target, overwrite_c=1)
            if not np.shares_memory(out, W[s]):  # BLAS made a copy after all
                W[s] = out.T
        return below

    def params(self) -> Params:
        return Params(tuple(self.W), tuple(self.b))


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
            diff = a - b
            num += float(np.sum(diff * diff))  # elementwise, not BLAS: many small blocks
            den += float(np.sum(b * b))
        out[s] = math.sqrt(num / den) if den > 0 else math.inf
    return out


def descend(
    arch,
    params: Params,
    x,
    y,
    learning_rate: float,
    steps: int,
    *,
    x_record,
    record_every: int = 1,
) -> LazyTrace:
    """Full-batch gradient descent on ``(1/2N) sum_i (f(x_i) - y_i)^2``, as ``networks.train``.

    Parameters
    ----------
    arch : Architecture
    params : Params, S networks
        Initial parameters (not modified).
    x : ndarray, shape (N, d)
        Training inputs.
    y : ndarray, shape (N,)
        Targets.
    learning_rate : float
        eta, applied to the stored parameters (use eta / n in standard parameterization).
    steps : int
        Gradient steps.
    x_record : ndarray, shape (M, d)
        Inputs at which the outputs are recorded.
    record_every : int
        Record every this many steps (and at the last step).

    Returns
    -------
    LazyTrace

    Raises
    ------
    NumericalError
        If the outputs become NaN or infinite (the learning rate is too large for the width).
    """
    net = _Net(arch, params)
    x = np.asarray(x, dtype=float)
    x_record = np.asarray(x_record, dtype=float)
    y = np.asarray(y, dtype=float)
    n = x.shape[0]
    rec = recorded_steps(steps, record_every)
    s = params.n_networks
    f_path = np.empty((s, len(rec), x_record.shape[0]))  # (S, T, M)
    loss = np.empty((s, len(rec)))  # (S, T)
    m = x_record.shape[0]
    both = np.vstack([x, x_record])  # (N + M, d): recorded steps take one pass for both
    column = 0
    # Divergence is reported below as a NumericalError, not as overflow warnings.
    with np.errstate(over="ignore", invalid="ignore"):
        for step in range(steps + 1):
            record = step == rec[column]
            f, inputs, pre = net.forward(both if record else x, keep=True)  # (S, N [+ M])
            if record:
                f, f_path[:, column] = f[:, :n], f[:, n : n + m]
            resid = f - y  # (S, N)
            if record:
                loss[:, column] = 0.5 * np.mean(resid * resid, axis=1)
                column += 1
            if not np.all(np.isfinite(resid)):
                raise NumericalError(
                    f"gradient descent diverged at step {step} (width {'x'.join(map(str, params.widths)) or '-'}); "
                    f"lower train.learning_rate (now {learning_rate:g})"
                )
            if step == steps:
                break
            net.step(inputs, pre, resid / n, learning_rate)
    change = np.stack([relative_change(w, w0) for w, w0 in zip(net.W, params.weights)], axis=1)
    return LazyTrace(net.params(), rec, f_path, loss, change)


def linearized_path(
    theta_eval, theta_train, f0_eval, f0_train, y, learning_rate: float, steps_recorded
) -> np.ndarray:
    """Outputs of the linearised networks under the same gradient descent.

    ``f_lin_{k+1}(x) = f_lin_k(x) - (eta / N) Theta_0(x, X) (f_lin_k(X) - y)`` (Lee et al. 2019,
    eq. 8, in discrete time), evaluated exactly step by step.

    Parameters
    ----------
    theta_eval : ndarray, shape (S, M, N)
        Empirical NTK at initialisation between the evaluation and the training inputs.
    theta_train : ndarray, shape (S, N, N)
        Empirical NTK at initialisation among the training inputs.
    f0_eval : ndarray, shape (S, M)
    f0_train : ndarray, shape (S, N)
        Outputs at initialisation.
    y : ndarray, shape (N,)
    learning_rate : float
        eta times the factor that turns the given kernel into the kernel of the stored
        parameters (1 in NTK parameterization; n with eta / n in standard parameterization).
    steps_recorded : ndarray of int, shape (T,)

    Returns
    -------
    ndarray, shape (S, T, M): the linearised outputs at ``x_eval`` at the recorded steps.
    """
    n = theta_train.shape[-1]
    rate = learning_rate / n
    resid = f0_train - y  # (S, N)
    f = f0_eval.copy()  # (S, M)
    steps_recorded = np.asarray(steps_recorded)
    out = np.empty((f.shape[0], len(steps_recorded), f.shape[1]))  # (S, T, M)
    column = 0
    for step in range(int(steps_recorded[-1]) + 1):
        if step == steps_recorded[column]:
            out[:, column] = f
            column += 1
        if column == len(steps_recorded):
            break
        f -= rate * np.einsum("smn,sn->sm", theta_eval, resid)
        resid = resid - rate * np.einsum("smn,sn->sm", theta_train, resid)
    return out
