"""Dual activations evaluated in place on one tile of the kernel matrix.

Each evaluator turns a tile of covariances ``q12`` (ti, tj) into the NNGP dual, in place, and
multiplies a tile of the NTK by the derivative factor E[phi'(u) phi'(v)], with the variances of
the tile's rows ``q11`` (ti, 1) and columns ``q22`` (1, tj). The arithmetic is that of
:func:`wideinf.kernels.core.activation_kernel` and :mod:`wideinf.kernels.duals`, operation for
operation and in the same order (only the shared subexpressions of the NNGP and the factor are
computed once, and multiplications by an exact 1 are dropped), written with ``out=`` into
preallocated buffers. So a tile holds the same numbers as the same block of the whole-matrix
recursion; ``tests/test_tiled.py`` checks this against the reference.

Closed forms: AB-ReLU (Cho & Saul 2009), erf (Williams 1997), GeLU (Tsuchida et al. 2020,
arXiv:2002.08517), Gabor (Han et al. 2022, arXiv:2209.04121), ``a sin(b z + c)``. The
smooth activations evaluate their Mehler series on the tile from per-point coefficients
(:meth:`wideinf.kernels.smooth.SmoothDual.tile`); any other activation (identity) calls its
own ``nngp`` / ``factor`` on the tile.
"""

from __future__ import annotations

import numpy as np

__all__ = ["TileDual", "tile_dual", "TEMPORARIES"]

TWO_PI = 2 * np.pi

# Temporary (ti, tj) buffers an evaluator may use.
TEMPORARIES = 8

# Pair-and-node values per block in a quadrature evaluation (8 MB of float64).
_QUADRATURE_BLOCK = 1_000_000


class TileDual:
    """Generic evaluator: the activation's own ``nngp`` and ``factor`` on the tile.

    Subclasses replace :meth:`apply` with an in-place closed form and :meth:`point_terms` with
    the per-point quantities it needs.
    """

    def __init__(self, activation):
        self.activation = activation

    def point_terms(self, q: np.ndarray) -> tuple[np.ndarray, ...]:
        """Per-point arrays (each (n,)) computed once from the variances ``q`` (n,)."""
        return (q,)

    def apply(self, rows, cols, q12, ntk, tmp) -> None:
        """``q12 <- E[phi(u) phi(v)]`` and ``ntk *= E[phi'(u) phi'(v)]``, in place.

        Parameters
        ----------
        rows, cols : tuples of arrays, shapes (ti, 1) and (1, tj)
            :meth:`point_terms` of the tile's rows and columns; the first is the variance.
        q12 : ndarray, shape (ti, tj)
            Covariances in, NNGP dual out.
        ntk : ndarray, shape (ti, tj)
        tmp : list of ndarray, each shape (ti, tj)
            Scratch buffers (:data:`TEMPORARIES` of them).
        """
        q11, q22 = rows[0], cols[0]
        _clip(q11, q22, q12, tmp[0], tmp[1], tmp[2])
        act = self.activation
        nodes = getattr(act, "nodes", None)
        ti, tj = q12.shape
        step = ti if nodes is None else max(1, _QUADRATURE_BLOCK // max(1, tj * int(nodes)))
        for start in range(0, ti, step):
            block = slice(start, start + step)
            a, c = q11[block], q12[block]
            factor = act.factor(a, q22, c)
            c[...] = act.nngp(a, q22, c)
            ntk[block] *= factor


def _clip(q11, q22, q12, p, r, neg):
    """Clip q12 into [-r, r], ``r = sqrt(q11 q22)`` (``duals.clip_covariance``), in place.

    Leaves ``p = q11 q22``, ``r`` and ``-r`` (each (ti, tj)) in the three buffers. Where a
    variance is 0 the bounds are zeros, and the sign ``np.clip`` gives a zero matters to
    ``arctan2``: such tiles call ``np.clip`` itself; elsewhere min and max give its values.
    """
    np.multiply(q11, q22, out=p)
    np.sqrt(p, out=r)
    np.negative(r, out=neg)
    if q11.all() and q22.all():
        np.minimum(q12, r, out=q12)
        np.maximum(q12, neg, out=q12)
    else:
        np.clip(q12, neg, r, out=q12)


def _det(r, q12, out, tmp):
    """``(r - q12)(r + q12)`` into ``out``: ``duals._det`` with r = sqrt(q11 q22).

    After :func:`_clip`, ``-r <= q12 <= r``, so both factors are >= +0 and the product is
    never negative: ``duals._det``'s clamp at 0 would change no bit and is left out.
    """
    np.subtract(r, q12, out=out)
    np.add(r, q12, out=tmp)
    np.multiply(out, tmp, out=out)


class ABReLUTile(TileDual):
    """``a min(z, 0) + b max(z, 0)``; see :func:`wideinf.kernels.duals.ab_relu_nngp`."""

    def apply(self, rows, cols, q12, ntk, tmp):
        a, b = self.activation.a, self.activation.b
        d2 = (a - b) ** 2
        k0 = (a * a + b * b) / 2
        p, r, s, theta = tmp[0], tmp[1], tmp[2], tmp[3]
        _clip(rows[0], cols[0], q12, p, r, theta)
        # s = sqrt((r - q12)(r + q12)); theta = arctan2(s, q12)
        _det(r, q12, s, theta)
        np.sqrt(s, out=s)
        np.arctan2(s, q12, out=theta)
        # factor = k0 - d2 theta / (2 pi)
        if d2 != 1.0:
            np.multiply(theta, d2, out=theta)
        np.divide(theta, TWO_PI, out=theta)
        np.subtract(k0, theta, out=theta)
        np.multiply(ntk, theta, out=ntk)
        # nngp = d2 / (2 pi) s + factor q12
        np.multiply(theta, q12, out=q12)
        np.multiply(s, d2 / TWO_PI, out=s)
        np.add(s, q12, out=q12)


class ErfTile(TileDual):
    """``erf``; see :func:`wideinf.kernels.duals.erf_nngp` and ``erf_factor``."""

    def point_terms(self, q):
        return (q, 1 + 2 * q)

    def apply(self, rows, cols, q12, ntk, tmp):
        pp, root, ratio = tmp[0], tmp[1], tmp[2]
        _clip(rows[0], cols[0], q12, pp, root, ratio)
        np.multiply(rows[1], cols[1], out=pp)  # (1 + 2 q11)(1 + 2 q22)
        np.sqrt(pp, out=root)
        np.multiply(q12, 2, out=ratio)
        np.divide(ratio, root, out=ratio)
        np.clip(ratio, -1.0, 1.0, out=ratio)
        np.arcsin(ratio, out=ratio)
        np.multiply(ratio, 2 / np.pi, out=ratio)
        # factor = (4 / pi) / sqrt(pp - 4 q12 q12)
        np.multiply(q12, 4, out=root)
        np.multiply(root, q12, out=root)
        np.subtract(pp, root, out=pp)
        np.sqrt(pp, out=pp)
        np.divide(4 / np.pi, pp, out=pp)
        np.multiply(ntk, pp, out=ntk)
        q12[...] = ratio


class GeluTile(TileDual):
    """Exact GeLU; see :func:`wideinf.kernels.duals.gelu_nngp` and ``gelu_factor``."""

    def point_terms(self, q):
        return (q, 1 + q)

    def apply(self, rows, cols, q12, ntk, tmp):
        qq, pp, sq, d2, d, alpha, u, v = tmp
        _clip(rows[0], cols[0], q12, qq, u, v)  # qq = q11 q22
        np.multiply(rows[1], cols[1], out=pp)  # (1 + q11)(1 + q22)
        np.multiply(q12, q12, out=sq)
        np.subtract(pp, sq, out=d2)  # D^2
        np.sqrt(d2, out=d)
        np.arctan2(q12, d, out=alpha)
        # factor: 0.25 + alpha/(2 pi) + q12/(2 pi D) [1/D^2 + (1 - q11 q22)/(p11 p22) + 1]
        np.subtract(1, qq, out=u)
        np.divide(u, pp, out=u)
        np.divide(1, d2, out=v)
        np.add(v, u, out=v)
        np.add(v, 1, out=v)  # bracket
        np.multiply(d, TWO_PI, out=u)
        np.divide(q12, u, out=u)
        np.multiply(u, v, out=u)
        np.divide(alpha, TWO_PI, out=v)
        np.add(0.25, v, out=v)
        np.add(v, u, out=v)
        np.multiply(ntk, v, out=ntk)
        # nngp: q12/4 + [(q12^2 + q11 q22 D^2) / (p11 p22 D) + q12 alpha] / (2 pi)
        np.multiply(qq, d, out=qq)
        np.multiply(qq, d, out=qq)
        np.add(sq, qq, out=qq)
        np.multiply(pp, d, out=pp)
        np.divide(qq, pp, out=qq)
        np.multiply(q12, alpha, out=alpha)
        np.add(qq, alpha, out=qq)
        np.divide(qq, TWO_PI, out=qq)
        np.divide(q12, 4, out=q12)
        np.add(q12, qq, out=q12)


class GaborTile(TileDual):
    """``exp(-z^2) sin z``; see :func:`wideinf.kernels.duals.gabor_nngp` and ``gabor_factor``."""

    def apply(self, rows, cols, q12, ntk, tmp):
        qq, sq, delta, s, one2s, d, e, u = tmp
        q11, q22 = rows[0], cols[0]
        _clip(q11, q22, q12, qq, s, u)
        # Delta = 4 (r - q12)(r + q12); s = q11 + q22; D = (1 + 2 s) + Delta
        _det(s, q12, delta, u)
        np.multiply(delta, 4, out=delta)
        np.multiply(q12, q12, out=sq)
        np.add(q11, q22, out=s)
        np.multiply(s, 2, out=one2s)
        np.add(1, one2s, out=one2s)
        np.add(one2s, delta, out=d)
        # E = exp(-((s + Delta) + 2 q12) / (2 D))
        np.add(s, delta, out=e)
        np.multiply(q12, 2, out=u)
        np.add(e, u, out=e)
        np.negative(e, out=e)
        np.divide(u, d, out=u)  # 2 q12 / D, kept for both exponentials
        np.multiply(d, 2, out=s)  # s is not needed as such below, only 3 s: use q11 + q22 again
        np.divide(e, s, out=e)
        np.exp(e, out=e)
        # big S = (1 + 2 s) + 4 (q12^2 + q11 q22); big T = (4 q12) ((Delta + 3 s) + 2)
        np.add(sq, qq, out=sq)
        np.multiply(sq, 4, out=sq)
        np.add(one2s, sq, out=sq)  # S
        np.add(q11, q22, out=qq)
        np.multiply(qq, 3, out=qq)
        np.add(delta, qq, out=qq)
        np.add(qq, 2, out=qq)
        np.multiply(q12, 4, out=one2s)
        np.multiply(one2s, qq, out=qq)  # T
        np.subtract(sq, qq, out=one2s)  # S - T
        np.add(sq, qq, out=sq)  # S + T
        np.exp(u, out=qq)
        np.multiply(qq, sq, out=qq)
        np.add(one2s, qq, out=one2s)
        np.multiply(e, one2s, out=one2s)
        np.power(d, 2.5, out=qq)
        np.multiply(qq, 2, out=qq)
        np.divide(one2s, qq, out=one2s)
        np.multiply(ntk, one2s, out=ntk)
        # nngp = E expm1(2 q12 / D) / (2 sqrt(D))
        np.expm1(u, out=u)
        np.multiply(e, u, out=u)
        np.sqrt(d, out=d)
        np.multiply(d, 2, out=d)
        np.divide(u, d, out=q12)


class SineTile(TileDual):
    """``a sin(b z + c)``; see :func:`wideinf.kernels.duals.sine_nngp` and ``sine_factor``."""

    def apply(self, rows, cols, q12, ntk, tmp):
        act = self.activation
        a, b, c = act.a, act.b, act.c
        b2 = b * b
        half, e1, e2 = tmp[0], tmp[1], tmp[2]
        q11, q22 = rows[0], cols[0]
        _clip(q11, q22, q12, half, e1, e2)
        np.add(q11, q22, out=half)
        np.divide(half, 2, out=half)
        np.subtract(q12, half, out=e1)
        np.multiply(e1, b2, out=e1)
        np.exp(e1, out=e1)
        np.add(q12, half, out=e2)
        np.multiply(e2, -b2, out=e2)
        np.exp(e2, out=e2)
        np.multiply(e2, float(np.cos(2 * c)), out=e2)
        np.add(e1, e2, out=half)
        np.multiply(half, a * a * b2 / 2, out=half)
        np.multiply(ntk, half, out=ntk)
        np.subtract(e1, e2, out=q12)
        np.multiply(q12, a * a / 2, out=q12)


class SmoothTile(TileDual):
    """Smooth activations: per-point Hermite coefficients, a Mehler series on the tile.

    See :meth:`wideinf.kernels.smooth.SmoothDual.tile`.
    """

    def point_terms(self, q):
        return self.activation.dual.point_terms(q)

    def apply(self, rows, cols, q12, ntk, tmp):
        _clip(rows[0], cols[0], q12, tmp[0], tmp[1], tmp[2])
        r = tuple(v[:, 0] for v in rows)  # each (ti,) or (ti, K)
        c = tuple(v[0] for v in cols)  # each (tj,) or (tj, K)
        nngp, factor = self.activation.dual.tile(r, c, q12)
        q12[...] = nngp
        ntk *= factor


def tile_dual(activation) -> TileDual:
    """The tile evaluator for ``activation``: a closed form when there is one, else generic."""
    from ..activations import ABReLU, Erf, Gabor, Gelu, Sine
    from .smooth_activations import SmoothActivation

    kind = {
        ABReLU: ABReLUTile,
        Erf: ErfTile,
        Gelu: GeluTile,
        Gabor: GaborTile,
        Sine: SineTile,
        SmoothActivation: SmoothTile,
    }
    return kind.get(type(activation), TileDual)(activation)
