"""The infinite-width kernel state and its layer-by-layer recursion.

Conventions (Neural Tangents' stax, NTK parameterization unless said otherwise):

- input:      ``nngp = x1 @ x2.T / d``, ``ntk = 0``;
- dense:      ``nngp <- W_std^2 nngp + b_std^2``; ``ntk <- nngp_new + W_std^2 ntk``;
- activation: ``nngp <- E[phi(u) phi(v)]``; ``ntk <- ntk * E[phi'(u) phi'(v)]``,
  (u, v) Gaussian with the current NNGP covariance.

Standard parameterization (``W ~ N(0, W_std^2 / n_in)``, ``b ~ N(0, b_std^2)``, trained
directly) has an NTK that grows with the hidden width n. We report ``Theta / n``:
``ntk <- (n_in / n) K_in + 1 / n + W_std^2 ntk``; at ``n = inf`` the first layer's and the
biases' terms vanish and only the hidden-to-hidden and readout weights contribute
(Sohl-Dickstein et al. 2020, arXiv:2001.07301). Train with learning rate ``eta / n`` to match.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .duals import clip_covariance

__all__ = [
    "Kernel",
    "DenseStep",
    "ActivationStep",
    "input_kernel",
    "dense_kernel",
    "activation_kernel",
    "recursion",
]

# Pair-and-node values per block of rows in the quadrature path (about 160 MB of float64).
_QUADRATURE_BLOCK = 20_000_000


@dataclass(frozen=True)
class Kernel:
    """Kernel state between two sets of inputs.

    Attributes
    ----------
    nngp : ndarray, shape (n1, n2)
        NNGP covariance K(x1, x2).
    ntk : ndarray, shape (n1, n2)
        Neural tangent kernel Theta(x1, x2).
    var1 : ndarray, shape (n1,)
        NNGP variance K(x, x) of each point of x1, carried by its own recursion.
    var2 : ndarray, shape (n2,)
        The same for x2 (the same array as ``var1`` when ``symmetric``).
    symmetric : bool
        True when x2 is x1; then the diagonal of ``nngp`` equals ``var1`` exactly.
    """

    nngp: np.ndarray
    ntk: np.ndarray
    var1: np.ndarray
    var2: np.ndarray
    symmetric: bool

    @property
    def shape(self) -> tuple[int, int]:
        return self.nngp.shape


@dataclass(frozen=True)
class DenseStep:
    """An affine layer of a kernel recursion (arguments of :func:`dense_kernel`)."""

    W_std: float
    b_std: float
    fan_in_ratio: float = 1.0
    inverse_width: float = 0.0


@dataclass(frozen=True)
class ActivationStep:
    """An elementwise nonlinearity of a kernel recursion (argument of :func:`activation_kernel`)."""

    activation: object


def recursion(x1, x2, steps, parameterization: str = "ntk") -> Kernel:
    """The kernel of a layer stack, one whole (n1, n2) matrix per layer.

    This is the plain reference implementation: every layer is applied to the full matrices,
    in float64. :func:`wideinf.kernels.tiled.tiled_kernel` computes the same numbers tile by
    tile and is the one :meth:`wideinf.architecture.Architecture.kernel` uses.

    Parameters
    ----------
    x1 : array, shape (n1, d)
    x2 : array, shape (n2, d), or None for x1 itself (symmetric, exact diagonal)
    steps : sequence of DenseStep | ActivationStep
    parameterization : {"ntk", "standard"}
    """
    k = input_kernel(x1, x2)
    for step in steps:
        if isinstance(step, DenseStep):
            k = dense_kernel(
                k,
                step.W_std,
                step.b_std,
                parameterization,
                step.fan_in_ratio,
                step.inverse_width,
            )
        else:
            k = activation_kernel(k, step.activation)
    return k


def input_kernel(x1: np.ndarray, x2: np.ndarray | None = None) -> Kernel:
    """Kernel of the raw inputs: ``x1 @ x2.T / d``; x1 (n1, d), x2 (n2, d)."""
    x1 = np.asarray(x1, dtype=float)
    d = x1.shape[1]
    var1 = np.einsum("ij,ij->i", x1, x1) / d  # (n1,)
    if x2 is None:
        nngp = x1 @ x1.T / d  # (n1, n1)
        np.fill_diagonal(nngp, var1)
        return Kernel(nngp, np.zeros_like(nngp), var1, var1, True)
    x2 = np.asarray(x2, dtype=float)
    var2 = np.einsum("ij,ij->i", x2, x2) / d  # (n2,)
    nngp = x1 @ x2.T / d  # (n1, n2)
    return Kernel(nngp, np.zeros_like(nngp), var1, var2, False)


def dense_kernel(
    k: Kernel,
    W_std: float,
    b_std: float,
    parameterization: str = "ntk",
    fan_in_ratio: float = 1.0,
    inverse_width: float = 0.0,
) -> Kernel:
    """Affine layer ``z = W y + b`` in either parameterization.

    NTK: ``ntk <- nngp_new + W_std^2 ntk``. Standard, normalised by the hidden width n:
    ``ntk <- fan_in_ratio * K_in + inverse_width + W_std^2 ntk`` with ``fan_in_ratio = n_in / n``
    (1 for a hidden input, ``d / n`` for the network input) and ``inverse_width = 1 / n`` (the
    bias term); both extra arguments are ignored in NTK parameterization.
    """
    w2, b2 = W_std * W_std, b_std * b_std
    nngp = w2 * k.nngp + b2
    var1 = w2 * k.var1 + b2
    var2 = var1 if k.symmetric else w2 * k.var2 + b2
    if parameterization == "ntk":
        ntk = nngp + w2 * k.ntk
    elif parameterization == "standard":
        ntk = fan_in_ratio * k.nngp + inverse_width + w2 * k.ntk
    else:
        raise ValueError(f"unknown parameterization {parameterization!r}")
    return Kernel(nngp, ntk, var1, var2, k.symmetric)


def activation_kernel(k: Kernel, activation) -> Kernel:
    """Elementwise nonlinearity: the dual activation and the NTK derivative factor."""
    q11 = k.var1[:, None]  # (n1, 1)
    q22 = k.var2[None, :]  # (1, n2)
    q12 = clip_covariance(q11, q22, k.nngp)  # (n1, n2)
    nngp, factor = _duals_blockwise(activation, q11, q22, q12)
    var1 = activation.nngp(k.var1, k.var1, k.var1)
    var2 = var1 if k.symmetric else activation.nngp(k.var2, k.var2, k.var2)
    if k.symmetric:
        # The diagonal from its own recursion, exactly (theta = 0, no rounding of q12).
        np.fill_diagonal(nngp, var1)
        np.fill_diagonal(factor, activation.factor(k.var1, k.var1, k.var1))
    return replace(k, nngp=nngp, ntk=k.ntk * factor, var1=var1, var2=var2)


def _duals_blockwise(activation, q11, q22, q12):
    """NNGP dual and NTK factor; quadrature activations in row blocks to bound memory."""
    nodes = getattr(activation, "nodes", None)
    if nodes is None:
        return activation.nngp(q11, q22, q12), activation.factor(q11, q22, q12)
    n1, n2 = q12.shape
    rows = max(1, _QUADRATURE_BLOCK // max(1, n2 * nodes))
    nngp, factor = np.empty_like(q12), np.empty_like(q12)
    for start in range(0, n1, rows):
        block = slice(start, start + rows)
        nngp[block] = activation.nngp(q11[block], q22, q12[block])
        factor[block] = activation.factor(q11[block], q22, q12[block])
    return nngp, factor
