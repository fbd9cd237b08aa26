"""Duals of points that share one variance, as functions of the correlation alone.

Where every row and column of a kernel block has the same variance q (inputs normalised to
``|x|^2 / d = 1`` give this at every layer), the NNGP dual and the NTK factor of
:class:`~wideinf.kernels.smooth.SmoothDual` are functions of rho only,

    F(rho) = E[phi(u) phi(v)],   G(rho) = E[phi'(u) phi'(v)],   u, v ~ N(0, q), corr(u, v) = rho,

and are evaluated from a table built once per variance range: a piecewise Chebyshev
interpolant in rho (panels bisected towards +-1, where F and G are smooth but not analytic),
of exact values, interpolated in ``log q`` between Chebyshev nodes of each octave
``[2^j, 2^(j+1))`` below :data:`Q_OCTAVES`, or built at q itself above it (there the exact
values near +-1 come from the 2-D rule, at up to 0.2 s each). The exact values are those of
:meth:`SmoothDual.exact_duals` (the Mehler series where its truncation bound meets
:data:`NODE_TOL`, the 2-D rule beyond, ``E[phi^2]`` and ``E[phi'^2]`` at rho = 1).

Error: every panel is accepted only when the interpolant of half its nodes (degree n) agrees
with the exact values at the other half to :data:`ACCEPT` of the scale, at every q node;
the table then uses all nodes (degree 2n). The interpolation in log q is checked at two
points between nodes likewise; where it fails the variance gets its own table. Analysis and
measurements: ``docs/smooth-activations.md``, section 6.
"""

from __future__ import annotations

import math
import threading
from functools import lru_cache

import numpy as np

from .smooth_rules import _barycentric  # the one barycentric formula of the package

__all__ = ["RangeTable", "EqualVarianceTables", "NODE_TOL", "ACCEPT", "DEGREE", "Q_OCTAVES"]

# Chebyshev degree of each panel (2n, n = DEGREE / 2 for the error estimate).
DEGREE = 16
# Truncation bound of the series at the nodes, relative to the scale: just above the rounding
# floor of the Parseval tail (2 * 256 * eps = 1.14e-13), so the series reaches rho = 1
# wherever the coefficients have decayed to rounding.
NODE_TOL = 2e-13
# Largest accepted interpolation estimate, relative to the scale E[phi^2] or E[phi'^2].
ACCEPT = 1e-12
# Variances below this are interpolated in log q within octaves; above, one table per q.
Q_OCTAVES = 64.0
# Panels are bisected at most down to this width (then the range is left to the exact path).
_MIN_WIDTH = 2.0**-40
# First panel breaks on [0, 1], graded towards 1.
_START = (0.0, 0.5, 0.75, 0.875, 0.9375, 1.0)
# Chebyshev nodes in log q per octave: an analytic strip of half-width 0.8 pi (as for the
# coefficients, smooth_rules) over a half-length log(2) / 2 gives r = 14.6, r^-12 = 1e-14
# (and 2 more nodes, as there); two probes check it.
_Q_NODES = 14
_OCTAVES_KEPT = 64
_TABLES_KEPT = 16


@lru_cache(maxsize=4)
def _chebyshev(n: int):
    """Extreme points x_j = cos(pi j / n) (n + 1,), descending, and values -> coefficients.

    ``c = M @ f`` gives ``p(x) = sum_k c_k T_k(x)`` interpolating f at the points.
    """
    j = np.arange(n + 1)
    x = np.cos(np.pi * j / n)
    m = np.cos(np.pi * np.outer(j, j) / n) * (2.0 / n)  # (k, j)
    m[:, [0, n]] /= 2
    m[[0, n], :] /= 2
    return x, m


@lru_cache(maxsize=4)
def _half_check(n: int):
    """Matrix (n / 2, n / 2 + 1): the degree-n/2 interpolant of the even nodes at the odd ones."""
    x, _ = _chebyshev(n)
    _, m_half = _chebyshev(n // 2)
    odd = x[1::2]
    t = np.cos(np.outer(np.arccos(odd), np.arange(n // 2 + 1)))  # T_k(x_odd)
    return t @ m_half


class RangeTable:
    """Panels in rho of the exact duals at a few variances (one, or an octave's log q nodes).

    Panels are built lazily, when an evaluation first needs them, and bisected until the
    estimate passes: a panel's values (or its children) depend only on the panel, never on
    which calls came first, so results do not depend on the order of calls. A panel that
    cannot pass (narrower than 2^-40, or its values at the probes not matching the log q
    interpolant) is marked exact: its entries take the exact path.

    Attributes
    ----------
    leaves : list of (lo, hi, state)
        Ascending panels; state None (not built), ``"exact"``, or values (m, 2, DEGREE + 1)
        at the nodes' variances, at the Chebyshev points of the panel (descending x).
    """

    def __init__(self, dual, q_nodes, q_probes, symmetric: bool):
        self.dual = dual
        self.q_nodes, self.m = q_nodes, len(q_nodes)
        self.q_all = np.concatenate([q_nodes, q_probes])
        self.terms = dual.point_terms(self.q_all)
        scale = np.stack(dual.diagonal(self.terms), axis=1)  # (m + probes, 2)
        self.scale = np.where(scale > 0, scale, 1.0)[:, :, None]
        self.probe_weights = _barycentric(np.log(q_nodes), np.log(q_probes))  # (probes, m)
        starts = np.array(_START) if symmetric else np.r_[-np.array(_START[:0:-1]), _START]
        self.leaves = [(a, b, None) for a, b in zip(starts[:-1], starts[1:])]
        self.version = 0
        # Top panels that need the 2-D rule at some node, and the values one costs to build.
        reach = dual.series_reach(self.terms, NODE_TOL).min()
        self.starts = starts
        self.costly = (starts[1:] > reach) | (starts[:-1] < -reach)
        self.build_values = len(self.q_all) * (DEGREE + 1)

    def few(self, r):
        """Entries (r's shape, bool) that the exact path gives more cheaply than the table.

        Those in a top panel whose values need the 2-D rule, when fewer entries than the
        panel's values fall in it. Decided on the fixed top panels, so independently of
        which panels earlier calls built.
        """
        top = np.clip(np.searchsorted(self.starts, r, side="right") - 1, 0, len(self.starts) - 2)
        counts = np.bincount(top.ravel(), minlength=len(self.starts) - 1)
        return (self.costly & (counts < self.build_values))[top]

    @property
    def breaks(self):
        return _breaks(self.leaves)

    def ensure(self, hit) -> bool:
        """Build the unbuilt leaves whose ``hit`` (P,) is True; True if the leaves changed."""
        todo = [i for i, leaf in enumerate(self.leaves) if hit[i] and leaf[2] is None]
        if not todo:
            return False
        lo = np.array([self.leaves[i][0] for i in todo])
        hi = np.array([self.leaves[i][1] for i in todo])
        x, _ = _chebyshev(DEGREE)
        rho = (hi + lo)[:, None] / 2 + (hi - lo)[:, None] / 2 * x  # (t, n + 1), x descending
        fa, fb = self.dual.exact_duals(self.terms, rho.ravel(), NODE_TOL)  # (m + probes, t n)
        values = np.stack([fa, fb], axis=1).reshape(len(self.q_all), 2, len(todo), DEGREE + 1)
        replace = {}
        for j, i in enumerate(todo):
            replace[i] = self._accept(lo[j], hi[j], values[:, :, j])
        leaves = []
        for i, leaf in enumerate(self.leaves):
            leaves += replace.get(i, [leaf])
        self.leaves = leaves
        self.version += 1
        return True

    def _accept(self, lo, hi, values):
        """The leaves that replace the panel [lo, hi] with these values (m + probes, 2, n + 1)."""
        half = np.abs(values[..., 0::2] @ _half_check(DEGREE).T - values[..., 1::2])
        if (half / self.scale).max() > ACCEPT:
            if hi - lo <= _MIN_WIDTH:
                return [(lo, hi, "exact")]
            mid = (lo + hi) / 2
            return [(lo, mid, None), (mid, hi, None)]
        nodes = values[: self.m]
        if len(self.q_all) > self.m:
            got = np.einsum("qm,mdj->qdj", self.probe_weights, nodes)
            if (np.abs(got - values[self.m :]) / self.scale[self.m :]).max() > ACCEPT:
                return [(lo, hi, "exact")]
        return [(lo, hi, nodes)]

    def coefficients(self, q: float):
        """Chebyshev coefficients (2, DEGREE + 1, P) at variance q, and the exact panels (P,)."""
        weights = _barycentric(np.log(self.q_nodes), np.array([math.log(q)]))[0]  # (m,)
        _, cheb = _chebyshev(DEGREE)
        exact = np.array([isinstance(leaf[2], str) for leaf in self.leaves])
        values = np.zeros((2, DEGREE + 1, len(self.leaves)))
        for p, (_, _, state) in enumerate(self.leaves):
            if state is not None and not isinstance(state, str):
                values[:, :, p] = np.einsum("m,mdj->dj", weights, state) @ cheb.T
        return values, exact


class EqualVarianceTables:
    """The tables of one :class:`SmoothDual`, built on demand and kept (thread-safe).

    :meth:`evaluate` gives both duals of points that all have variance q > 0.
    """

    def __init__(self, dual):
        self.dual = dual
        self.symmetric = dual.parity_a is not None and dual.parity_b is not None
        self.constants = tuple(
            float(f(np.zeros(1))[0]) ** 2 if parity == 1 else 0.0
            for f, parity in ((dual.phi, dual.parity_a), (dual.dphi, dual.parity_b))
        )
        self._ranges: dict = {}  # octave index, or ("q", q) -> RangeTable
        self._coefs: dict = {}  # q -> (range version, coefficients, exact panels)
        self._lock = threading.Lock()

    def evaluate(self, q: float, rho, point=None):
        """``(F(rho), G(rho))`` at variance q > 0, each of rho's shape; rho in [-1, 1].

        ``point``: the :class:`PointTerms` (1,) of variance q, if at hand, for the entries
        that take the exact path.
        """
        rho = np.asarray(rho, dtype=float)
        r = np.abs(rho) if self.symmetric else rho
        with self._lock:
            table = self._range(q)
        few = table.few(r)  # from the fixed top panels: no lock needed
        while True:  # the per-entry work outside the lock; builds and coefficients inside
            leaves = table.leaves  # ensure() replaces the list, never changes it
            breaks = _breaks(leaves)
            panel = np.clip(np.searchsorted(breaks, r, side="right") - 1, 0, len(breaks) - 2)
            used = np.bincount(panel[~few], minlength=len(breaks) - 1) > 0
            with self._lock:
                if table.leaves is not leaves or table.ensure(used):
                    continue
                version, coefs, exact = self._coefs.get(q, (None, None, None))
                if version != (id(table), table.version):
                    coefs, exact = table.coefficients(q)
                    self._coefs[q] = ((id(table), table.version), coefs, exact)
                    while len(self._coefs) > _TABLES_KEPT:
                        self._coefs.pop(next(iter(self._coefs)))
                break
        lo, hi = breaks[panel], breaks[panel + 1]
        x2 = 2.0 * ((2.0 * r - (lo + hi)) / (hi - lo))  # 2 x, x in [-1, 1] on the panel
        outs = [_clenshaw(coefs[d], panel, x2) for d in range(2)]
        slow = exact[panel] | few
        if slow.any():
            point = self.dual.point_terms(np.array([q])) if point is None else point
            exact_values = self.dual._duals(point, point, point.q * r[slow])
            outs[0][slow], outs[1][slow] = exact_values
        for d, out in enumerate(outs):
            if self.symmetric and (self.dual.parity_a, self.dual.parity_b)[d] == 1:
                np.subtract(2.0 * self.constants[d], out, out=out, where=rho < 0)  # F(-rho)
        return outs[0], outs[1]

    def _range(self, q: float) -> RangeTable:
        """The octave's table below :data:`Q_OCTAVES`, else q's own."""
        if q < Q_OCTAVES:
            key = math.floor(math.log2(q))
            if key not in self._ranges:
                lo, hi = key * math.log(2.0), (key + 1) * math.log(2.0)
                s = lo + (hi - lo) / 2 * (1 - np.cos(np.pi * np.arange(_Q_NODES) / (_Q_NODES - 1)))
                mid = _Q_NODES // 2
                probes = np.array([(s[0] + s[1]) / 2, (s[mid] + s[mid + 1]) / 2])
                self._keep(key, RangeTable(self.dual, np.exp(s), np.exp(probes), self.symmetric))
        else:
            key = ("q", q)
            if key not in self._ranges:
                self._keep(key, RangeTable(self.dual, np.array([q]), np.empty(0), self.symmetric))
        return self._ranges[key]

    def _keep(self, key, table):
        self._ranges[key] = table
        while len(self._ranges) > _OCTAVES_KEPT:
            self._ranges.pop(next(iter(self._ranges)))


def _breaks(leaves):
    """Panel ends (P + 1,) of a list of leaves."""
    return np.array([leaf[0] for leaf in leaves] + [leaves[-1][1]])


def _clenshaw(coefs, panel, x2):
    """``sum_k c_k[panel] T_k(x)`` by Clenshaw's recurrence; coefs (K + 1, P), x2 = 2 x."""
    b1 = np.zeros_like(x2)
    b2 = np.zeros_like(x2)
    for k in range(coefs.shape[0] - 1, 0, -1):
        b0 = np.take(coefs[k], panel)
        b0 += x2 * b1
        b0 -= b2
        b1, b2 = b0, b1
    out = np.take(coefs[0], panel)
    out += 0.5 * x2 * b1
    out -= b2
    return out
