"""Derivatives of the NNGP and NTK with respect to an architecture's W_std and b_std.

Forward mode: the whole-matrix kernel recursion below is run on :class:`~wideinf.kernels.dual.Dual`
numbers, with ``W_std`` and ``b_std`` as the two input directions, so every layer carries the
kernel and its two derivatives, ``(K, dK/dlog W_std, dK/dlog b_std)``, for the NNGP and the NTK
alike. A dense layer differentiates ``W_std^2 K + b_std^2`` by the product rule; an activation
layer evaluates the activation's own closed forms, ``duals(q11, q22, q12)`` (and ``diagonal(q)``
for K(x, x)), on Duals, which differentiates them as written (their derivative in
``q12`` reproduces Price's theorem, ``d E[phi(u) phi(v)] / d q12 = E[phi'(u) phi'(v)]``, which the
tests check). Derivatives are taken with respect to the logarithms, the coordinates in which
the hyperparameters are fitted (a positive parameter, a well-scaled optimisation).

Hyperparameters: ``W_std`` and ``b_std`` are the architecture block's defaults, so they act on
every dense layer that does not set its own value (a layer with ``{dense: {W_std: 2.0}}`` keeps
2.0). The recursion is that of :mod:`wideinf.kernels.core` at infinite width, in NTK or standard
parameterization; its values equal :meth:`Architecture.kernel` to rounding (tested).

Activations integrated by quadrature (tanh, sigmoid, ...) have no closed form to differentiate;
asking for their gradients is a ConfigError.
"""

from __future__ import annotations

import dataclasses
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from .dual import Dual, tangent_of

__all__ = [
    "HYPERPARAMETERS",
    "KernelGradients",
    "kernel_gradients",
    "hyperparameters",
    "with_hyperparameters",
]

HYPERPARAMETERS = ("W_std", "b_std")


@dataclass(frozen=True)
class KernelGradients:
    """A kernel and its derivatives with respect to ``log W_std`` and ``log b_std``.

    Attributes
    ----------
    nngp, ntk : ndarray, shape (n1, n2), or (n,) for a diagonal (ntk None if not asked for)
    d_nngp, d_ntk : ndarray, shape (2, n1, n2), or (2, n)
        Derivatives along :data:`HYPERPARAMETERS`, in that order.
    """

    nngp: np.ndarray
    ntk: np.ndarray
    d_nngp: np.ndarray
    d_ntk: np.ndarray


def hyperparameters(arch) -> dict:
    """The architecture's ``{"W_std": ..., "b_std": ...}`` (its block's defaults)."""
    if arch.config is not None:
        return {"W_std": arch.config.W_std, "b_std": arch.config.b_std}
    first = arch.dense_layers[0]
    return {"W_std": first.W_std, "b_std": first.b_std}


def with_hyperparameters(arch, W_std: float, b_std: float):
    """A copy of ``arch`` whose default ``W_std`` and ``b_std`` are replaced."""
    Architecture = type(arch)  # not imported: the kernel core does not depend on architecture
    if arch.config is not None:
        cfg = dataclasses.replace(arch.config, W_std=float(W_std), b_std=float(b_std))
        return Architecture.from_config(cfg)
    layers = [
        dataclasses.replace(layer, W_std=float(W_std), b_std=float(b_std))
        if hasattr(layer, "W_std")
        else layer
        for layer in arch.layers
    ]
    return Architecture(layers, arch.parameterization)


def kernel_gradients(
    arch, x1, x2=None, *, diagonal: bool = False, ntk: bool = True
) -> KernelGradients:
    """NNGP and NTK of ``arch`` with their derivatives in ``log W_std`` and ``log b_std``.

    Parameters
    ----------
    arch : Architecture
    x1, x2 : arrays, shapes (n1, d) and (n2, d)
        x2 defaults to x1 (symmetric; the diagonal from the one-point recursion, as in the core).
    diagonal : bool, default False
        Only ``K(x, x)`` and ``Theta(x, x)`` of each point of x1, in O(n1) (x2 must be None).
    ntk : bool, default True
        Also the NTK; False skips its factors (about half the work) and leaves it None.

    Returns
    -------
    KernelGradients
    """
    x1 = np.asarray(x1, dtype=float)
    params = _layer_parameters(arch)
    points1 = _point_recursion(arch, params, _input_variance(x1))
    if diagonal:
        if x2 is not None:
            raise ValueError("diagonal=True takes x1 only")
        nngp, ntk = points1[1], points1[2]
        return KernelGradients(nngp.value, ntk.value, nngp.tangent, ntk.tangent)
    symmetric = x2 is None
    x2 = x1 if symmetric else np.asarray(x2, dtype=float)
    points2 = points1 if symmetric else _point_recursion(arch, params, _input_variance(x2))
    n1, n2, d = x1.shape[0], x2.shape[0], x1.shape[1]
    with_ntk = ntk
    out = [np.empty((n1, n2)), None, np.empty((2, n1, n2)), None]
    if with_ntk:
        out[1], out[3] = np.empty((n1, n2)), np.empty((2, n1, n2))
    # Row blocks of about _BLOCK entries, so that every layer's Duals of a block stay in cache,
    # shared among threads (numpy's ufuncs release the GIL); a symmetric kernel computes the
    # blocks on and right of the diagonal and mirrors them (the blocks write disjoint parts).
    rows = max(1, _BLOCK // max(n2, 1))

    def run(start):
        block = slice(start, min(start + rows, n1))
        cols = slice(start if symmetric else 0, n2)
        k_in = x1[block] @ x2[cols].T / d  # (b, c)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            duals = _block_recursion(
                arch, params, k_in, points1[0], points2[0], block, cols, with_ntk
            )
        for value, tangent, dual in zip(out[:2], out[2:], duals):
            value[block, cols], tangent[:, block, cols] = dual.value, dual.tangent
            if symmetric:
                value[cols, block], tangent[:, cols, block] = dual.value.T, dual.tangent.mT

    starts = range(0, n1, rows)
    threads = min(os.cpu_count() or 1, len(starts))
    if threads > 1 and n1 * n2 >= _THREADING_MIN_ENTRIES:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(run, starts))
    else:
        for start in starts:
            run(start)
    if symmetric:  # the diagonal of every layer is the one-point recursion's, as in the core
        for value, tangent, dual in zip(out[:2], out[2:], points1[1:]):
            if value is None:
                continue
            np.fill_diagonal(value, dual.value)
            for p in range(len(HYPERPARAMETERS)):
                np.fill_diagonal(tangent[p], dual.tangent[p])
    return KernelGradients(*out)


# ----------------------------------------------------------------------------- the recursion

# Below this many entries a kernel is computed in the calling thread only.
_THREADING_MIN_ENTRIES = 100_000

# Entries per row block of the whole-matrix recursion (a tangent of 16 rows of 1000 columns: 256 KB).
_BLOCK = 16_384


def _input_variance(x):
    return np.einsum("ij,ij->i", x, x) / x.shape[1]  # (n,) = |x|^2 / d


def _layer_parameters(arch):
    """Per dense layer: (W_std, b_std), as Duals where the architecture's default applies."""
    tied_w, tied_b = _tied_parameters(arch)
    params = []
    for i, layer in enumerate(arch.layers):
        if hasattr(layer, "W_std"):
            w = _parameter(layer.W_std, 0) if tied_w[i] else layer.W_std
            b = _parameter(layer.b_std, 1) if tied_b[i] else layer.b_std
            params.append((w, b))
        else:
            params.append(None)
    return params


def _dense(nngp, ntk, w, b, parameterization, first):
    """``nngp <- W^2 nngp + b^2``; the NTK as in :func:`wideinf.kernels.core.dense_kernel`."""
    w2 = w * w
    new = w2 * nngp + b * b
    if ntk is None:  # not asked for
        return new, None
    if parameterization == "ntk":
        return new, new + w2 * ntk
    # standard, at infinite width: only the hidden and readout weights contribute (core.py)
    return new, (0.0 if first else 1.0) * nngp + w2 * ntk


def _point_recursion(arch, params, var):
    """One point at a time: the variance entering each activation, ``K(x, x)``, ``Theta(x, x)``.

    Returns (list of Duals (n,) per activation step, Dual (n,), Dual (n,)).
    """
    var, ntk, pre, first = _as_dual(var), 0.0, [], True
    for layer, param in zip(arch.layers, params):
        if param is not None:
            var, ntk = _dense(var, ntk, *param, arch.parameterization, first)
            first = False
        else:
            pre.append(var)
            activation = layer.activation
            var, factor = _on_diagonal(activation, var)
            ntk = ntk * factor
    n = var.value.shape
    return pre, _as_dual(var), _broadcast(_as_dual(ntk), n)


def _block_recursion(arch, params, k_in, pre1, pre2, rows, cols, with_ntk=True):
    """The layers on a block of rows of the kernel matrix, given every point's variances."""
    nngp, ntk, step, first = k_in, (0.0 if with_ntk else None), 0, True
    for layer, param in zip(arch.layers, params):
        if param is not None:
            nngp, ntk = _dense(nngp, ntk, *param, arch.parameterization, first)
            first = False
            continue
        q11, q22 = pre1[step][rows][:, None], pre2[step][cols][None, :]  # (b, 1), (1, c)
        step += 1
        bound = np.sqrt(q11 * q22)
        q12 = np.clip(nngp, -bound, bound)  # correlation in [-1, 1]
        activation = layer.activation
        try:
            nngp, factor = _duals(activation, q11, q22, q12)  # (b, c) each
            if with_ntk:
                ntk = ntk * factor
        except TypeError:
            raise _no_closed_form(activation) from None
    shape = np.shape(_as_dual(nngp).value)
    if not with_ntk:
        return (_broadcast(_as_dual(nngp), shape),)
    return _broadcast(_as_dual(nngp), shape), _broadcast(_as_dual(ntk), shape)


def _duals(activation, q11, q22, q12):
    """The activation's ``duals`` (NNGP dual, NTK factor) on Duals.

    The identity's are ``(q12, 1)`` directly: its implementation copies with ``np.array``,
    which a Dual cannot pass through without losing its tangents.
    """
    if activation.name == "identity":
        return q12, 1.0
    return activation.duals(q11, q22, q12)


def _on_diagonal(activation, var):
    """``activation.diagonal(v)`` (NNGP and factor at correlation 1) and its derivatives.

    Evaluated with a unit tangent along v itself, so ``sqrt(v * v) - v`` is exactly 0 with an
    exactly 0 tangent and ``q11 q22 - q12^2`` stays on the diagonal; the derivatives in v are
    then multiplied by the tangents of v (the hyperparameters' directions).
    """
    n = var.value.shape
    unit = Dual(var.value, np.ones((1,) + n))
    try:
        outs = (unit, 1.0) if activation.name == "identity" else activation.diagonal(unit)
    except TypeError:
        raise _no_closed_form(activation) from None
    chained = []
    for out in outs:
        if not isinstance(out, Dual):  # a constant (the identity's factor)
            chained.append(Dual(np.broadcast_to(out, n), np.zeros((len(HYPERPARAMETERS),) + n)))
            continue
        slope = np.broadcast_to(out.tangent, (1,) + n)[0]  # (n,)
        tangent = slope * np.broadcast_to(var.tangent, (len(HYPERPARAMETERS),) + n)
        chained.append(Dual(np.broadcast_to(out.value, n), tangent))
    return tuple(chained)


def _no_closed_form(activation):
    return ConfigError(
        f"activation {activation.name!r} is integrated by quadrature and has no closed "
        "form to differentiate; gradients (and fitting W_std, b_std) need one of relu, "
        "leaky_relu, abs, erf, gelu, gabor, sin, cos, identity"
    )


def _broadcast(dual, shape):
    """Value (shape) and tangents (2, *shape) as broadcast views of exactly that shape."""
    tangent = tangent_of(dual, len(HYPERPARAMETERS), len(shape))
    return Dual(
        np.broadcast_to(dual.value, shape), np.broadcast_to(tangent, tangent.shape[:1] + shape)
    )


def _parameter(value, direction):
    """A hyperparameter as a Dual whose tangent is its derivative in log space (= itself)."""
    tangent = np.zeros(len(HYPERPARAMETERS))
    tangent[direction] = value  # d value / d log value
    return Dual(value, tangent)


def _as_dual(x):
    if isinstance(x, Dual):
        return x
    return Dual(x, np.zeros((len(HYPERPARAMETERS),) + np.shape(x)))


def _tied_parameters(arch):
    """Per layer: (does the default W_std apply?, does the default b_std apply?)."""
    n = len(arch.layers)
    if arch.config is None:
        return [True] * n, [True] * n
    tied_w, tied_b = [], []
    for layer in arch.config.layers:
        tied_w.append(layer.kind == "dense" and layer.get("W_std") is None)
        tied_b.append(layer.kind == "dense" and layer.get("b_std") is None)
    return tied_w, tied_b
