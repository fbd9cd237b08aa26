"""Finite-width MLPs in numpy: forward, the dense backward pass, and empirical NNGP/NTK.

The finite view of every :class:`~wideinf.architecture.Architecture`, for an ensemble of S
networks (:class:`~wideinf.parameters.Params`: sampling, counting and the parameterizations
are in :mod:`wideinf.parameters`, re-exported here). The core, on which everything else is
built: :func:`forward_cache` (the forward pass, keeping what the backward pass needs),
:func:`backward` (**the** dense backward pass), and on it :func:`vjp` (gradients) and
:func:`descent_step` (a gradient step written into the parameters in place; gradient descent
itself is :mod:`wideinf.training`).

:func:`forward`, :func:`features`, :func:`gradients`, :func:`empirical_nngp` and
:func:`empirical_ntk` bound their working memory by processing blocks of networks
(:mod:`wideinf.memory`). In standard parameterization :func:`empirical_ntk` reports
``Theta / n`` with ``n`` the hidden width, as ``Architecture.kernel(x, width=n)`` does.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from scipy.linalg.blas import dgemm

from .errors import ConfigError
from .memory import (
    FLOAT_BYTES,
    available_memory,
    block_size,
    check_memory,
    network_blocks,
    working_bytes,
)
from .parameters import (
    Params,
    check_multipliers,
    check_points,
    dense_blocks,
    hidden_widths,
    init_params,
    layer_scales,
    parameter_bytes,
    parameter_count,
    ravel_params,
    unravel_params,
)

__all__ = [
    "Params",
    "Cache",
    "hidden_widths",
    "parameter_count",
    "parameter_bytes",
    "init_params",
    "check_points",
    "forward_cache",
    "backward",
    "vjp",
    "descent_step",
    "forward",
    "features",
    "gradients",
    "empirical_nngp",
    "empirical_ntk",
    "jacobian",
    "ravel_params",
    "unravel_params",
    "available_memory",
    "check_memory",
]


def _check(arch, params: Params) -> list:
    blocks = dense_blocks(arch)
    if len(blocks) != len(params.weights):
        raise ConfigError(
            f"the parameters have {len(params.weights)} dense layer(s) "
            f"but the architecture has {len(blocks)}"
        )
    return blocks


# --------------------------------------------------------------------------- the core
@dataclass(frozen=True)
class Cache:
    """A forward pass on N points, with what :func:`backward` needs.

    Attributes
    ----------
    f : ndarray, shape (S, N)
        The outputs.
    inputs : tuple of ndarray
        ``inputs[k]`` is the input of dense layer k: (N, d) for k = 0 (shared by every
        network), (S, N, n_in) after.
    pre : tuple of tuple of ndarray
        ``pre[k][j]`` is the input of the j-th activation after dense layer k, (S, N, n_out).
    """

    f: np.ndarray
    inputs: tuple
    pre: tuple

    def head(self, n: int) -> Cache:
        """The same pass restricted to its first n points (views, no copies)."""

        def rows(a):
            return a[:n] if a.ndim == 2 else a[:, :n]

        pre = tuple(tuple(z[:, :n] for z in zs) for zs in self.pre)
        return Cache(self.f[:, :n], tuple(rows(y) for y in self.inputs), pre)


def forward_cache(arch, params: Params, x, *, reuse: Cache | None = None) -> Cache:
    """Forward pass of all S networks on N points, keeping what :func:`backward` needs.

    Dense layer k computes ``z = sw y @ W + sb b`` with the scales of
    :func:`~wideinf.parameters.layer_scales`, then its activations. No blocking and no memory
    check: the caller bounds S and N (see :func:`wideinf.memory.working_bytes`).

    Parameters
    ----------
    arch : Architecture
    params : Params, S networks
    x : array, shape (N, d)
    reuse : Cache, optional
        A pass of the same networks on the same x in which only the readout's parameters have
        changed since: the hidden layers are taken from it and only the readout is recomputed
        (readout-only training); x is then not read.

    Returns
    -------
    Cache with f of shape (S, N).
    """
    blocks = _check(arch, params)
    start = 0 if reuse is None else len(blocks) - 1
    y = check_points(x, params.d_in) if reuse is None else reuse.inputs[-1]
    inputs = [] if reuse is None else list(reuse.inputs[:-1])
    pre = [] if reuse is None else list(reuse.pre[:-1])
    for (dense, acts), W, b in zip(blocks[start:], params.weights[start:], params.biases[start:]):
        sw, sb = layer_scales(arch, dense, W.shape[1])
        inputs.append(y)
        z = np.matmul(y, W)  # (S, N, n_out)
        z *= sw
        z += sb * b[:, None, :]
        zs = []
        for act in acts:
            zs.append(z)
            z = act.phi(z)
        pre.append(tuple(zs))
        y = z
    return Cache(y[..., 0], tuple(inputs), tuple(pre))


def backward(
    arch, params: Params, cache: Cache, cotangent, *, lowest: int = 0
) -> Iterator[tuple[int, np.ndarray]]:
    """The dense backward pass: ``delta_k = d(sum_i c_i f(x_i)) / dz_k`` for each dense layer.

    For the readout ``delta = c``; through an activation ``delta <- delta * phi'(z)``; through
    dense layer k to the layer below ``delta <- sw_k delta @ W_k^T``. Point by point: nothing
    is summed over N. The parameter gradients follow as ``dW_k = sw_k y_k^T delta_k`` and
    ``db_k = sb_k sum_i delta_k,i`` (:func:`vjp`).

    Parameters
    ----------
    arch : Architecture
    params : Params, S networks (those of ``cache``)
    cache : Cache
        The forward pass on N points (:func:`forward_cache`).
    cotangent : array, shape (S, N)
        ``c``, the weight of each output.
    lowest : int, default 0
        Stop after dense layer ``lowest`` (the number of dense layers minus one: the readout
        only).

    Yields
    ------
    (k, delta_k) for k from the readout down to ``lowest``; delta_k has shape (S, N, n_out).
    The derivative for the layer below is computed *before* (k, delta_k) is yielded, so the
    consumer may update layer k's parameters in place (as :func:`descent_step` does).
    """
    blocks = _check(arch, params)
    delta = np.asarray(cotangent, dtype=float)[..., None]  # (S, N, 1)
    for k in range(len(blocks) - 1, lowest - 1, -1):
        dense, acts = blocks[k]
        for act, z in zip(reversed(acts), reversed(cache.pre[k])):
            delta = delta * act.dphi(z)  # (S, N, n_out)
        below = None
        if k > lowest:
            W = params.weights[k]
            below = np.matmul(delta, W.transpose(0, 2, 1))  # (S, N, n_in)
            below *= layer_scales(arch, dense, W.shape[1])[0]
        yield k, delta
        delta = below


def _transpose_points(y: np.ndarray) -> np.ndarray:
    return y.T if y.ndim == 2 else y.transpose(0, 2, 1)  # (n_in, N) or (S, n_in, N)


def vjp(arch, params: Params, cache: Cache, cotangent) -> Params:
    """Vector-Jacobian product ``sum_i c_i df(x_i)/dtheta`` from a forward pass.

    Parameters
    ----------
    cache : Cache, the forward pass on N points
    cotangent : array, shape (S, N)

    Returns
    -------
    Params of gradients shaped like ``params`` (with respect to the stored parameters):
    ``dW_k = sw_k y_k^T delta_k`` (S, n_in, n_out), ``db_k = sb_k sum_i delta_k,i`` (S, n_out).
    """
    blocks = _check(arch, params)
    gw, gb = [None] * len(blocks), [None] * len(blocks)
    for k, delta in backward(arch, params, cache, cotangent):
        sw, sb = layer_scales(arch, blocks[k][0], params.weights[k].shape[1])
        gw[k] = np.matmul(_transpose_points(cache.inputs[k]), delta)  # (S, n_in, n_out)
        if sw != 1.0:
            gw[k] *= sw
        gb[k] = np.sum(delta, axis=1)  # (S, n_out)
        if sb != 1.0:
            gb[k] *= sb
    return Params(tuple(gw), tuple(gb))


def descent_step(
    arch, params: Params, cache: Cache, cotangent, learning_rate: float, *, active=None,
    lowest: int = 0, multipliers=None,
) -> None:  # fmt: skip
    """One gradient step ``theta <- theta - eta sum_i c_i df(x_i)/dtheta``, in place.

    Each layer is updated as soon as :func:`backward` has passed it: ``b -= eta sb sum_i
    delta_i`` and ``W += (-eta sw) y^T delta`` by BLAS ``dgemm`` with ``beta = 1`` writing into
    the Fortran-ordered view ``W[s].T``, so a step allocates nothing of a weight matrix's size.
    Very wide networks are bound by memory traffic, and this reads and writes each weight
    once. (Few, large BLAS calls: splitting W into cache-sized blocks saved under 10% with
    one thread and was many times slower with several.)

    Parameters
    ----------
    params : Params, S networks, updated in place (writeable arrays)
    cache : Cache, their forward pass on the N training points
    cotangent : array, shape (S, N); ``dL/df`` for a loss L
    learning_rate : float
        eta.
    active : bool array, shape (S,), optional
        Update only these networks (default: all).
    lowest : int, default 0
        Update only dense layers ``lowest`` and above (the readout only: their number minus one).
    multipliers : sequence of (float, float), optional
        Per-layer rates: dense layer k's (weights, bias) step with ``eta * multipliers[k]``
        (e.g. the maximal-update parameterization, :mod:`wideinf.mup`); default ``eta``.
    """
    blocks = _check(arch, params)
    eta = float(learning_rate)
    rates = check_multipliers(multipliers, len(blocks))
    nets = range(params.n_networks) if active is None else np.flatnonzero(active)
    for k, delta in backward(arch, params, cache, cotangent, lowest=lowest):
        W, b, y = params.weights[k], params.biases[k], cache.inputs[k]
        sw, sb = layer_scales(arch, blocks[k][0], W.shape[1])
        eta_w, eta_b = (eta, eta) if rates is None else (eta * rates[k][0], eta * rates[k][1])
        if active is None:
            b -= (eta_b * sb) * delta.sum(axis=1)  # (S, n_out)
        else:
            b[active] -= (eta_b * sb) * delta[active].sum(axis=1)
        for s in nets:
            ys = y if y.ndim == 2 else y[s]  # (N, n_in)
            target = W[s].T  # (n_out, n_in), Fortran-ordered view
            out = dgemm(-eta_w * sw, delta[s].T, ys, beta=1.0, c=target, overwrite_c=1)
            if not np.shares_memory(out, W[s]):  # BLAS made a copy after all
                W[s] = out.T


# --------------------------------------------------------------------------- guarded entry points
def _guarded_blocks(params: Params, per_net: int, fixed: int, what: str) -> list[slice]:
    """Blocks of networks after checking ``fixed`` bytes plus one block's working memory."""
    s = params.n_networks
    check_memory(fixed + block_size(per_net, s) * per_net, what)
    return network_blocks(s, per_net)


def forward(arch, params: Params, x) -> np.ndarray:
    """Outputs of every network of the ensemble.

    Parameters
    ----------
    arch : Architecture
    params : Params, S networks
    x : array, shape (N, d)

    Returns
    -------
    f : ndarray, shape (S, N)
    """
    _check(arch, params)
    x = check_points(x, params.d_in)
    s, n = params.n_networks, x.shape[0]
    per_net = working_bytes(params.dims, n) // 2
    out = np.empty((s, n))  # (S, N)
    for sl in _guarded_blocks(params, per_net, s * n * FLOAT_BYTES, f"the outputs at {n} points"):
        out[sl] = forward_cache(arch, params.take(sl), x).f
    return out


def features(arch, params: Params, x) -> np.ndarray:
    """The readout's input (last hidden layer's activations), shape (S, N, n_L)."""
    _check(arch, params)
    x = check_points(x, params.d_in)
    s, n, n_l = params.n_networks, x.shape[0], params.weights[-1].shape[1]
    out = np.empty((s, n, n_l))  # (S, N, n_L)
    per_net = working_bytes(params.dims, n) // 2
    for sl in _guarded_blocks(params, per_net, s * n * n_l * FLOAT_BYTES, "the readout features"):
        last = forward_cache(arch, params.take(sl), x).inputs[-1]
        out[sl] = last if last.ndim == 3 else last[None]
    return out


def gradients(arch, params: Params, x, cotangent) -> Params:
    """Vector-Jacobian product ``sum_i cotangent_i df(x_i)/dtheta`` for every network.

    Parameters
    ----------
    x : array, shape (N, d)
    cotangent : array, shape (S, N) or (N,)

    Returns
    -------
    Params of gradients, shaped like ``params`` (with respect to the stored parameters).
    """
    _check(arch, params)
    x = check_points(x, params.d_in)
    s, n = params.n_networks, x.shape[0]
    cot = np.broadcast_to(np.asarray(cotangent, dtype=float), (s, n))
    per_net = working_bytes(params.dims, n)
    fixed = 2 * s * params.n_params * FLOAT_BYTES
    gw = [np.empty_like(w) for w in params.weights]
    gb = [np.empty_like(b) for b in params.biases]
    for sl in _guarded_blocks(params, per_net, fixed, "the gradients"):
        sub = params.take(sl)
        g = vjp(arch, sub, forward_cache(arch, sub, x), cot[sl])
        for out, part in zip(gw + gb, g.weights + g.biases):
            out[sl] = part
    return Params(tuple(gw), tuple(gb))


# --------------------------------------------------------------------------- empirical kernels
def empirical_nngp(arch, params: Params, x1, x2=None) -> np.ndarray:
    """Empirical NNGP: the readout's input features, scaled as the kernel.

    ``K_hat(x, x') = W_std^2 phi_L(x) . phi_L(x') / n_L + b_std^2`` with the readout layer's
    ``W_std``, ``b_std`` and ``n_L`` its fan-in: the output covariance over the readout's
    random weights given the features (Neal 1996; Lee et al. 2018, arXiv:1711.00165). Its mean
    over networks is the analytic NNGP (exactly for one hidden layer).

    Parameters
    ----------
    x1 : array, shape (N1, d)
    x2 : array, shape (N2, d), optional (defaults to x1; the result is then symmetric)

    Returns
    -------
    ndarray, shape (S, N1, N2)
    """
    readout = _check(arch, params)[-1][0]
    x1 = check_points(x1, params.d_in, "x1")
    x2v = x1 if x2 is None else check_points(x2, params.d_in, "x2")
    s, n1, n2 = params.n_networks, x1.shape[0], x2v.shape[0]
    per_net = working_bytes(params.dims, n1 + n2) // 2 + 2 * n1 * n2 * FLOAT_BYTES
    what = f"the empirical NNGP on {n1} x {n2} points"
    n_l = params.weights[-1].shape[1]
    out = np.empty((s, n1, n2))  # (S, N1, N2)
    for sl in _guarded_blocks(params, per_net, s * n1 * n2 * FLOAT_BYTES, what):
        sub = params.take(sl)
        f1 = forward_cache(arch, sub, x1).inputs[-1]
        f2 = f1 if x2 is None else forward_cache(arch, sub, x2v).inputs[-1]
        gram = np.matmul(f1, np.swapaxes(f2, -1, -2))  # (S, N1, N2) or (N1, N2)
        k = (readout.W_std**2 / n_l) * gram + readout.b_std**2
        if x2 is None:
            k = 0.5 * (k + np.swapaxes(k, -1, -2))
        out[sl] = k
    return out


def empirical_ntk(arch, params: Params, x1, x2=None, *, multipliers=None) -> np.ndarray:
    """Empirical NTK ``J(x1) J(x2)^T``, layer by layer without the Jacobian.

    For dense layer l with input y_{l-1}, output z_l and scales ``(sw, sb)``
    (``(W_std / sqrt(n_in), b_std)`` in NTK parameterization, ``(1, 1)`` in standard),
    with ``delta_l(x) = df(x) / dz_l`` from :func:`backward`:
    ``Theta += sw^2 [y_{l-1}(x) . y_{l-1}(x')] [delta_l(x) . delta_l(x')]
    + sb^2 [delta_l(x) . delta_l(x')]`` (Jacot et al. 2018, arXiv:1806.07572).
    In standard parameterization the result is divided by the hidden width n to match
    :meth:`Architecture.kernel(x, width=n)`, which has a single n: the hidden widths must then
    be equal (layer l's weights contribute ``n_{l-1} / n`` times the limit's term otherwise).

    With per-layer learning-rate ``multipliers`` (:func:`descent_step`) each layer's terms are
    weighted by theirs: ``J M J^T``, the kernel that gradient descent with those rates follows.

    Parameters and result as :func:`empirical_nngp`: x1 of shape (N1, d), x2 of shape (N2, d)
    or None (then x1, and the result is symmetric); returns an ndarray of shape (S, N1, N2).
    """
    blocks = _check(arch, params)
    rates = check_multipliers(multipliers, len(blocks))
    if arch.parameterization == "standard" and len(set(params.widths)) > 1:
        raise ConfigError(
            "empirical_ntk: standard parameterization needs equal hidden widths to match the "
            f"kernel's Theta / n, got {'x'.join(map(str, params.widths))}"
        )
    x1 = check_points(x1, params.d_in, "x1")
    x2v = x1 if x2 is None else check_points(x2, params.d_in, "x2")
    s, n1, n2 = params.n_networks, x1.shape[0], x2v.shape[0]
    per_net = working_bytes(params.dims, n1 + n2) + 3 * n1 * n2 * FLOAT_BYTES
    what = f"the empirical NTK on {n1} x {n2} points"
    out = np.empty((s, n1, n2))  # (S, N1, N2)
    for sl in _guarded_blocks(params, per_net, s * n1 * n2 * FLOAT_BYTES, what):
        sub = params.take(sl)
        c1 = forward_cache(arch, sub, x1)
        d1 = dict(backward(arch, sub, c1, np.ones((sub.n_networks, n1))))  # {k: (S, N1, n_k)}
        c2 = c1 if x2 is None else forward_cache(arch, sub, x2v)
        d2 = d1 if x2 is None else dict(backward(arch, sub, c2, np.ones((sub.n_networks, n2))))
        theta = np.zeros((sub.n_networks, n1, n2))  # (S, N1, N2)
        for k, (dense, _) in enumerate(blocks):
            sw, sb = layer_scales(arch, dense, sub.weights[k].shape[1])
            dd = np.matmul(d1[k], d2[k].transpose(0, 2, 1))  # (S, N1, N2)
            yy = np.matmul(c1.inputs[k], np.swapaxes(c2.inputs[k], -1, -2))  # (S,N1,N2)|(N1,N2)
            mw, mb = (1.0, 1.0) if rates is None else rates[k]  # x 1.0 is exact
            theta += (mw * sw * sw * yy + mb * sb * sb) * dd
        if x2 is None:
            theta = 0.5 * (theta + theta.transpose(0, 2, 1))
        out[sl] = theta
    if arch.parameterization == "standard":
        out /= params.weights[-1].shape[1]
    return out


def jacobian(arch, params: Params, x) -> np.ndarray:
    """Explicit Jacobian ``df(x_i)/dtheta``, shape (S, N, P), one backward pass per point.

    In the order of :func:`ravel_params`. Memory ``S N P``: for small networks (tests).
    """
    x = check_points(x, params.d_in)
    s, n, p = params.n_networks, x.shape[0], params.n_params
    check_memory(2 * s * n * p * FLOAT_BYTES, f"the explicit Jacobian ({s} x {n} x {p})")
    jac = np.empty((s, n, p))  # (S, N, P)
    for i in range(n):
        cot = np.zeros((s, n))
        cot[:, i] = 1.0
        jac[:, i] = ravel_params(gradients(arch, params, x, cot))
    return jac
