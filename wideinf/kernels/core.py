"""The infinite-width kernel state and the one recursion over layers.

The dense and activation steps, the input kernel and standard parameterization's ``Theta / n``
are in docs/theory.md, "Layer recursion". Given the variances of the two points at every layer,
each entry follows its own recursion: :func:`layer_recursion`, on arrays of any shape, serves
whole matrices (:func:`recursion`), tiles (:mod:`wideinf.kernels.tiled`) and single points
(:func:`point_recursion`). An activation is any object with ``name``, ``duals(q11, q22, q12)``,
``diagonal(q)`` and ``points(q)`` (:mod:`wideinf.activations`); matrices and tiles take their
q11 and q22 from the point recursion's ``points(q)``, so a tile costs only what depends on the
pair. Covariances are passed as computed (``|q12|`` may exceed ``sqrt(q11 q22)`` by a few
ulp); each formula clips where it matters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "Kernel", "DenseStep", "ActivationStep", "PointRecursion",
    "layer_recursion", "point_recursion", "recursion", "symmetrize",
]  # fmt: skip


@dataclass(frozen=True)
class Kernel:
    """Kernel state between two sets of inputs.

    Attributes
    ----------
    nngp, ntk : ndarray, shape (n1, n2), the NNGP K(x1, x2) and the NTK Theta(x1, x2)
    var1 : ndarray, shape (n1,), the NNGP variance K(x, x) of each point of x1 (its own recursion)
    var2 : ndarray, shape (n2,), the same for x2 (the same array as ``var1`` when ``symmetric``)
    symmetric : bool, True when x2 is x1; then the diagonal of ``nngp`` equals ``var1`` exactly
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
    """An affine layer ``z = W y + b`` of a kernel recursion.

    In standard parameterization ``fan_in_ratio = n_in / n`` (1 for a hidden input, ``d / n``
    for the network input) and ``inverse_width = 1 / n`` (the bias term), n the hidden width;
    both are ignored in NTK parameterization.
    """

    W_std: float
    b_std: float
    fan_in_ratio: float = 1.0
    inverse_width: float = 0.0


@dataclass(frozen=True)
class ActivationStep:
    """An elementwise nonlinearity of a kernel recursion."""

    activation: object


@dataclass(frozen=True)
class PointRecursion:
    """The recursion on each point alone: ``K(x, x)`` layer by layer and the NTK diagonal.

    Attributes
    ----------
    var_in : ndarray, shape (n,), ``|x|^2 / d``
    pre_activation : tuple
        Per activation step, in order, ``activation.points(q)`` of the variances q (n,)
        entering it: q itself for a closed form; what ``duals`` takes in place of q.
    var, ntk : ndarray, shape (n,), ``K(x, x)`` and ``Theta(x, x)`` of the output
    """

    var_in: np.ndarray
    pre_activation: tuple
    var: np.ndarray
    ntk: np.ndarray


def layer_recursion(nngp, steps, parameterization: str = "ntk", variances=None):
    """NNGP and NTK of a layer stack, entry by entry, from the input covariances.

    Parameters
    ----------
    nngp : ndarray, any shape
        Input covariances ``x . x' / d`` (dtype float64 or float32, kept throughout).
    steps : sequence of DenseStep | ActivationStep
    parameterization : {"ntk", "standard"}
    variances : sequence of (q11, q22), optional
        Per activation step, the entries' two points: slices of
        :attr:`PointRecursion.pre_activation` broadcastable to ``nngp`` (e.g. rows (n1, 1) and
        columns (1, n2)). None when ``nngp`` holds the variances themselves (the diagonal:
        every entry is a point with itself).

    Returns
    -------
    nngp, ntk : ndarray, the shape of ``nngp``
    pre_activation : list
        Per activation step: on the diagonal ``activation.points`` of the variances entering
        it; else the covariances entering it.
    """
    if parameterization not in ("ntk", "standard"):
        raise ValueError(f"unknown parameterization {parameterization!r}")
    # The input carries no trainable parameter: ntk starts as the scalar 0 and becomes an
    # array at the first layer (``0 += array`` makes a new one); from then on every array
    # below is this function's own, so it is updated in place, one pass each.
    ntk = 0.0
    pre = []
    for step in steps:
        if isinstance(step, DenseStep):
            w2, b2 = step.W_std * step.W_std, step.b_std * step.b_std
            ntk *= w2
            if parameterization == "standard":
                ntk += step.fan_in_ratio * nngp + step.inverse_width
            nngp = w2 * nngp
            nngp += b2
            if parameterization == "ntk":
                ntk += nngp  # the first layer's NTK is its NNGP
        else:
            act = step.activation
            if variances is None:  # each entry is a point with itself: correlation 1
                points = act.points(nngp)  # the once-per-point work of this layer
                new, factor = act.diagonal(points)
                pre.append(points)
            else:
                new, factor = act.duals(*variances[len(pre)], nngp)
                pre.append(nngp)
            # (a series computes in float64: round back to the working precision)
            nngp = np.asarray(new, dtype=nngp.dtype)
            ntk *= np.asarray(factor, dtype=nngp.dtype)
    if np.ndim(ntk) == 0:  # no layer at all
        ntk = np.zeros_like(nngp)
    return nngp, ntk, pre


def point_recursion(x, steps, parameterization: str = "ntk") -> PointRecursion:
    """:func:`layer_recursion` on the diagonal only: O(n) work for x (n, d)."""
    var_in = np.einsum("ij,ij->i", x, x) / x.shape[1]  # (n,)
    var, ntk, pre = layer_recursion(var_in, steps, parameterization)
    return PointRecursion(var_in, tuple(pre), var, ntk)


def recursion(x1, x2, steps, parameterization: str = "ntk") -> Kernel:
    """The kernel of a layer stack, one whole (n1, n2) matrix per layer, in float64.

    The plain reference for :func:`wideinf.kernels.tiled.tiled_kernel` (the same numbers, tile
    by tile): :func:`layer_recursion` on whole matrices, variances from :func:`point_recursion`.

    Parameters
    ----------
    x1 : array, shape (n1, d)
    x2 : array, shape (n2, d), or None for x1 itself (symmetric, exact diagonal)
    steps : sequence of DenseStep | ActivationStep
    parameterization : {"ntk", "standard"}
    """
    symmetric = x2 is None
    x1 = np.asarray(x1, dtype=float)
    x2 = x1 if symmetric else np.asarray(x2, dtype=float)
    p1 = point_recursion(x1, steps, parameterization)
    p2 = p1 if symmetric else point_recursion(x2, steps, parameterization)
    gram = x1 @ x2.T / x1.shape[1]  # (n1, n2)
    if symmetric:
        np.fill_diagonal(gram, p1.var_in)
    variances = [(a[:, None], b[None, :]) for a, b in zip(p1.pre_activation, p2.pre_activation)]
    nngp, ntk, _ = layer_recursion(gram, steps, parameterization, variances)
    if symmetric:
        symmetrize(nngp, p1.var)
        symmetrize(ntk, p1.ntk)
    return Kernel(nngp, ntk, p1.var, p2.var, symmetric)


def symmetrize(m, diagonal) -> None:
    """Mirror the upper triangle of the square ``m`` below it and set its diagonal, in place.

    The 1-D recursion's diagonal, exactly, and exact symmetry: (i, j) and (j, i) may round
    differently (a series' gathered terms, vectorised ufuncs over differently laid-out arrays).
    """
    for i in range(1, m.shape[0]):
        m[i, :i] = m[:i, i]
    np.fill_diagonal(m, diagonal)
