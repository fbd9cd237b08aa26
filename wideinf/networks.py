"""Finite-width MLPs in numpy: forward, the dense backward pass, and empirical NNGP/NTK.

The finite view of an :class:`~wideinf.architecture.Architecture` for an ensemble of S networks
(:class:`~wideinf.parameters.Params`, re-exported here); formulas in docs/theory.md, "Finite
networks". :func:`forward` and the functions after it work on memory-bounded blocks of networks.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from scipy.linalg.blas import dgemm

from .architecture import check_points
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
    dense_blocks,
    init_params,
    layer_scales,
    parameter_bytes,
    parameter_count,
    ravel_params,
    unravel_params,
)

__all__ = [
    "Params",
    "parameter_count",
    "parameter_bytes",
    "init_params",
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
    f : ndarray, shape (S, N), the outputs
    inputs : ``inputs[k]`` the input of dense layer k, (N, d) for k = 0, (S, N, n_in) after
    pre : ``pre[k][j]`` the input of activation j after dense layer k, (S, N, n_out)
    """

    f: np.ndarray
    inputs: tuple
    pre: tuple

    def head(self, n: int) -> Cache:
        """The same pass restricted to its first n points (views, no copies)."""
        pre = tuple(tuple(z[:, :n] for z in zs) for zs in self.pre)
        inputs = tuple(y[:n] if y.ndim == 2 else y[:, :n] for y in self.inputs)
        return Cache(self.f[:, :n], inputs, pre)


def forward_cache(arch, params: Params, x, *, reuse: Cache | None = None) -> Cache:
    """Forward pass ``z = sw y @ W + sb b`` (:func:`layer_scales`), then the activations.

    No blocks and no memory check: the caller bounds S and N (:func:`working_bytes`).

    Parameters
    ----------
    arch : Architecture
    params : Params, S networks
    x : array, shape (N, d)
    reuse : Cache, optional
        A pass on the same x after which only the readout changed: only the readout is
        recomputed (readout-only training), and x is not read.
    """
    blocks = _check(arch, params)
    start = 0 if reuse is None else len(blocks) - 1
    y = check_points(x, params.d_in) if reuse is None else reuse.inputs[-1]
    inputs, pre = ([], []) if reuse is None else (list(reuse.inputs[:-1]), list(reuse.pre[:-1]))
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
    """The dense backward pass: ``delta_k = d(sum_i c_i f(x_i)) / dz_k``, point by point.

    ``delta = c`` at the readout; ``delta <- delta * phi'(z)`` through an activation;
    ``delta <- sw_k delta @ W_k^T`` through dense layer k.

    Yields (k, delta_k), delta_k of shape (S, N, n_out), from the readout down to dense layer
    ``lowest``, for the forward pass ``cache`` of ``params`` on N points and cotangent (S, N).
    The derivative for the layer below is computed first, so the consumer may update layer k's
    parameters in place (:func:`descent_step`).
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


def vjp(arch, params: Params, cache: Cache, cotangent) -> Params:
    """Vector-Jacobian product ``sum_i c_i df(x_i)/dtheta`` from a forward pass.

    Returns Params shaped like ``params``: ``dW_k = sw_k y_k^T delta_k`` (S, n_in, n_out),
    ``db_k = sb_k sum_i delta_k,i`` (S, n_out); cotangent (S, N).
    """
    blocks = _check(arch, params)
    gw, gb = [None] * len(blocks), [None] * len(blocks)
    for k, delta in backward(arch, params, cache, cotangent):
        sw, sb = layer_scales(arch, blocks[k][0], params.weights[k].shape[1])
        y = cache.inputs[k]
        gw[k] = sw * np.matmul(np.swapaxes(y, -1, -2), delta)  # (S, n_in, n_out)
        gb[k] = sb * np.sum(delta, axis=1)  # (S, n_out)
    return Params(tuple(gw), tuple(gb))


def descent_step(
    arch, params: Params, cache: Cache, cotangent, learning_rate: float, *, active=None,
    lowest: int = 0, multipliers=None,
) -> None:  # fmt: skip
    """One gradient step ``theta <- theta - eta sum_i c_i df(x_i)/dtheta``, in place.

    Each layer is updated once :func:`backward` has passed it, ``W += (-eta sw) y^T delta`` by
    one BLAS ``dgemm`` into the view ``W[s].T``: each weight read and written once, no temporary.

    Parameters
    ----------
    params : Params, S networks, updated in place (writeable arrays)
    cache : Cache, their forward pass on the N training points
    cotangent : array, shape (S, N), ``dL/df`` for a loss L; learning_rate : float
    active : bool array, shape (S,), optional
        Update only these networks (default: all).
    lowest : int, default 0
        Update only dense layers ``lowest`` and above.
    multipliers : sequence of (float, float), optional
        Dense layer k's (weights, bias) step with ``eta * multipliers[k]`` (:mod:`wideinf.mup`).
    """
    blocks = _check(arch, params)
    eta = float(learning_rate)
    rates = check_multipliers(multipliers, len(blocks))
    nets = range(params.n_networks) if active is None else np.flatnonzero(active)
    which = slice(None) if active is None else active
    for k, delta in backward(arch, params, cache, cotangent, lowest=lowest):
        W, b, y = params.weights[k], params.biases[k], cache.inputs[k]
        sw, sb = layer_scales(arch, blocks[k][0], W.shape[1])
        eta_w, eta_b = (eta, eta) if rates is None else (eta * rates[k][0], eta * rates[k][1])
        b[which] -= (eta_b * sb) * delta[which].sum(axis=1)  # (S, n_out)
        for s in nets:
            ys = y if y.ndim == 2 else y[s]  # (N, n_in)
            target = W[s].T  # (n_out, n_in), Fortran-ordered view
            out = dgemm(-eta_w * sw, delta[s].T, ys, beta=1.0, c=target, overwrite_c=1)
            if not np.shares_memory(out, W[s]):  # BLAS made a copy after all
                W[s] = out.T


# --------------------------------------------------------------------------- guarded entry points
def _blocks(params: Params, per_net: int, fixed: int, what: str) -> list[slice]:
    """Blocks of networks after checking ``fixed`` bytes plus one block's working memory."""
    s = params.n_networks
    check_memory(fixed + block_size(per_net, s) * per_net, what)
    return network_blocks(s, per_net)


def _per_block(arch, params: Params, x, pick, tail: tuple, what: str) -> np.ndarray:
    """``pick(forward_cache(...))`` of every block of networks, into one (S, N, *tail) array."""
    x = check_points(x, params.d_in)
    out = np.empty((params.n_networks, x.shape[0], *tail))
    per_net = working_bytes(params.dims, x.shape[0]) // 2
    for sl in _blocks(params, per_net, out.nbytes, f"{what} at {x.shape[0]} points"):
        out[sl] = pick(forward_cache(arch, params.take(sl), x))
    return out


def forward(arch, params: Params, x) -> np.ndarray:
    """Outputs of every network, shape (S, N); x of shape (N, d)."""
    return _per_block(arch, params, x, lambda c: c.f, (), "the outputs")


def features(arch, params: Params, x) -> np.ndarray:
    """The readout's input (last hidden layer's activations), shape (S, N, n_L)."""
    n_l = params.weights[-1].shape[1]
    return _per_block(arch, params, x, lambda c: c.inputs[-1], (n_l,), "the readout features")


def gradients(arch, params: Params, x, cotangent) -> Params:
    """:func:`vjp` of every network: x (N, d), cotangent (S, N) or (N,); Params like ``params``."""
    x = check_points(x, params.d_in)
    s, n = params.n_networks, x.shape[0]
    cot = np.broadcast_to(np.asarray(cotangent, dtype=float), (s, n))
    flat = np.empty((s, params.n_params))  # (S, P), then shaped like params: 2 S P in all
    for sl in _blocks(params, working_bytes(params.dims, n), 2 * flat.nbytes, "the gradients"):
        sub = params.take(sl)
        flat[sl] = ravel_params(vjp(arch, sub, forward_cache(arch, sub, x), cot[sl]))
    return unravel_params(flat, params)


# --------------------------------------------------------------------------- empirical kernels
def _kernel(params, x1, x2, bytes_per_net, name: str, compute) -> np.ndarray:
    """``compute(sub, x1, x2)`` of every block of networks, (S, N1, N2), symmetric if x2 is None.

    ``bytes_per_net(w, k)``: one network's memory, from its pass's ``w`` bytes and ``k`` bytes
    of an (N1, N2) matrix.
    """
    x1 = check_points(x1, params.d_in, "x1")
    x2 = None if x2 is None else check_points(x2, params.d_in, "x2")
    n1, n2 = x1.shape[0], x1.shape[0] if x2 is None else x2.shape[0]
    out = np.empty((params.n_networks, n1, n2))  # (S, N1, N2)
    per_net = bytes_per_net(working_bytes(params.dims, n1 + n2), n1 * n2 * FLOAT_BYTES)
    for sl in _blocks(params, per_net, out.nbytes, f"the empirical {name} on {n1} x {n2} points"):
        k = compute(params.take(sl), x1, x2)
        out[sl] = 0.5 * (k + np.swapaxes(k, -1, -2)) if x2 is None else k
    return out


def empirical_nngp(arch, params: Params, x1, x2=None) -> np.ndarray:
    """Empirical NNGP ``W_std^2 phi_L(x) . phi_L(x') / n_L + b_std^2`` of the readout's input.

    With the readout's ``W_std``, ``b_std`` and fan-in ``n_L`` (Lee et al. 2018,
    arXiv:1711.00165). x1 (N1, d); x2 (N2, d) or None (x1, symmetric); returns (S, N1, N2).
    """
    readout = _check(arch, params)[-1][0]
    scale = readout.W_std**2 / params.weights[-1].shape[1]

    def compute(sub, x1, x2):
        f1 = forward_cache(arch, sub, x1).inputs[-1]
        f2 = f1 if x2 is None else forward_cache(arch, sub, x2).inputs[-1]
        gram = np.matmul(f1, np.swapaxes(f2, -1, -2))  # (S, N1, N2) or (N1, N2)
        return scale * gram + readout.b_std**2

    return _kernel(params, x1, x2, lambda w, k: w // 2 + 2 * k, "NNGP", compute)


def empirical_ntk(arch, params: Params, x1, x2=None, *, multipliers=None) -> np.ndarray:
    """Empirical NTK ``J(x1) J(x2)^T``, layer by layer without the Jacobian.

    ``Theta = sum_l [sw_l^2 y_{l-1}(x) . y_{l-1}(x') + sb_l^2] delta_l(x) . delta_l(x')``
    (Jacot et al. 2018, arXiv:1806.07572); with ``multipliers`` (:func:`descent_step`) layer l's
    terms are weighted by its rates, ``J M J^T``. In standard parameterization the result is
    divided by the hidden width, which must be the same in every layer. Arguments and shapes as
    :func:`empirical_nngp`.
    """
    blocks = _check(arch, params)
    rates = check_multipliers(multipliers, len(blocks))
    if arch.parameterization == "standard" and len(set(params.widths)) > 1:
        raise ConfigError(
            "empirical_ntk: standard parameterization needs equal hidden widths to match the "
            f"kernel's Theta / n, got {'x'.join(map(str, params.widths))}"
        )

    def pass_(sub, x):
        cache = forward_cache(arch, sub, x)
        ones = np.ones((sub.n_networks, x.shape[0]))
        return cache, dict(backward(arch, sub, cache, ones))  # {k: (S, N, n_k)}

    def compute(sub, x1, x2):
        c1, d1 = pass_(sub, x1)
        c2, d2 = (c1, d1) if x2 is None else pass_(sub, x2)
        theta = np.zeros((sub.n_networks, x1.shape[0], c2.f.shape[1]))  # (S, N1, N2)
        for k, (dense, _) in enumerate(blocks):
            sw, sb = layer_scales(arch, dense, sub.weights[k].shape[1])
            dd = np.matmul(d1[k], d2[k].transpose(0, 2, 1))  # (S, N1, N2)
            yy = np.matmul(c1.inputs[k], np.swapaxes(c2.inputs[k], -1, -2))  # (S,N1,N2)|(N1,N2)
            mw, mb = (1.0, 1.0) if rates is None else rates[k]  # x 1.0 is exact
            theta += (mw * sw * sw * yy + mb * sb * sb) * dd
        return theta

    out = _kernel(params, x1, x2, lambda w, k: w + 3 * k, "NTK", compute)
    if arch.parameterization == "standard":
        out /= params.weights[-1].shape[1]
    return out


def jacobian(arch, params: Params, x) -> np.ndarray:
    """Explicit Jacobian ``df(x_i)/dtheta``, shape (S, N, P) in :func:`ravel_params` order.

    One backward pass per point, memory ``S N P``: for small networks (tests).
    """
    x = check_points(x, params.d_in)
    s, n, p = params.n_networks, x.shape[0], params.n_params
    check_memory(2 * s * n * p * FLOAT_BYTES, f"the explicit Jacobian ({s} x {n} x {p})")
    jac = np.empty((s, n, p))  # (S, N, P)
    for i, point in enumerate(np.eye(n)):  # cotangent 1 at point i
        jac[:, i] = ravel_params(gradients(arch, params, x, point))
    return jac
