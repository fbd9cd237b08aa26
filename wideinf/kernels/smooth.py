"""Exact duals of any elementwise activation: a Mehler series, and 2-D quadrature near rho = +-1.

For (u, v) ~ N(0, [[q1, q1 q2 rho], ...]) (variances q1, q2, correlation rho), Mehler's formula
(the Hermite expansion of the bivariate normal density; O'Donnell 2014, Analysis of Boolean
Functions, ch. 11; Daniely et al. 2016, arXiv:1602.05897, section 4) gives

    E[phi(u) phi(v)] = sum_k a_k(q1) a_k(q2) rho^k,    a_k(q) = E[phi(sqrt(q) z) He_k(z)] / sqrt(k!)

and the NTK factor E[phi'(u) phi'(v)] is the same series with the coefficients b_k of phi'.
The coefficients are computed once per point (:func:`~wideinf.kernels.smooth_rules.hermite_coefficients`),
so a pair costs a polynomial in rho. Truncating after k = K errs by at most (Cauchy-Schwarz)

    |rho|^(K+1) sqrt(T_K(q1) T_K(q2)),    T_K(q) = E[phi(sqrt(q) z)^2] - sum_{k <= K} a_k(q)^2,

so the number of terms is chosen per tile from the tails T_K of its rows and columns, to make
this bound at most ``tol`` times the Cauchy-Schwarz scale ``sqrt(E[phi(u)^2] E[phi(v)^2])``.
Where even ``terms`` terms cannot (|rho| near 1 with a large variance), the pair is integrated
by a 2-D composite Gauss-Legendre rule instead
(:func:`~wideinf.kernels.smooth_rules.conditional_expectation`); on the diagonal (same variance,
rho = 1) the value is the per-point E[phi^2]. Error analysis: ``docs/smooth-activations.md``.
"""

from __future__ import annotations

import math
import threading

import numpy as np

from .smooth_rules import (
    chained_coefficients,
    conditional_expectation,
    interpolated_coefficients,
    mehler,
    radius,
    symmetry_parity,
    terms_needed,
)
from .smooth_table import EqualVarianceTables

__all__ = ["SmoothDual", "PointTerms", "DEFAULT_TERMS", "DEFAULT_TOL"]

DEFAULT_TERMS = 256
# Terms of the series on a whole tile; the few entries with larger |rho| get more, gathered.
TILE_TERMS = 32
TERM_STEPS = (48, 96, 160)
# Truncation bound relative to sqrt(E[phi(u)^2] E[phi(v)^2]): far below the 1e-9 target, so
# rounding (about 1e-15 of the scale per term) dominates the error.
DEFAULT_TOL = 1e-14

# Sets of variances whose terms :meth:`SmoothDual._recent_terms` keeps.
_RECENT = 8

# Slices of one PointTerms kept (a kernel's tiles ask for a few dozen).
_KEPT_SLICES = 256

# Pairs per block when :meth:`SmoothDual.nngp` / ``factor`` get arbitrary broadcast arrays.
_PAIR_BLOCK = 8_192

# Entries from which a block whose points share one variance is evaluated from the table of
# that variance (smooth_table): building one costs about as much as this many entries of
# the series, or a few entries near rho = +-1 of the 2-D rule.
TABLE_MIN_ENTRIES = 2_048
# Variances this close (relative) count as one. The duals change with log q at a rate of
# about their scale, so evaluating them at the common, rounded variance errs by about
# SAME_VARIANCE + 2^-_VARIANCE_BITS (3e-14) of the scale.
SAME_VARIANCE = 64 * np.finfo(float).eps
_VARIANCE_BITS = 46

# The series compiled by numba (smooth_compiled) when importable: None decides on first use,
# False keeps the numpy path. numba is imported only then, not with the package.
USE_COMPILED = None
# Set once numba has been found missing, so that the tiles do not look for it again each time.
_NUMBA_MISSING = False


class PointTerms:
    """What the series needs of each point, computed once per point per layer.

    Attributes (leading axes: the points, any shape ``S``)
    ----------
    q : ndarray, shape S
        Variances.
    a, b : ndarray, shape S + (K,)
        Hermite coefficients of phi and phi' (k = 0 .. K-1).
    ta, tb : ndarray, shape S + (K,)
        ``sqrt(T_k / E)``: square roots of the relative truncation tails.
    ea, eb : ndarray, shape S
        ``E[phi(u)^2]``, ``E[phi'(u)^2]``: the duals on the diagonal.
    chains : ndarray, shape S + (P, T, 2)
        a and b chain by chain for the compiled series
        (:func:`~wideinf.kernels.smooth_rules.chained_coefficients`).

    Indexed like the variance array (``terms[i0:i1, None]`` is the terms of rows i0..i1 as a
    column), so the kernel recursion slices it exactly as it slices variances.
    """

    FIELDS = ("q", "a", "b", "ta", "tb", "ea", "eb", "chains")

    def __init__(self, q, a, b, ta, tb, ea, eb, chains):
        self.q, self.a, self.b, self.ta, self.tb, self.ea, self.eb = q, a, b, ta, tb, ea, eb
        self.chains = chains
        self._worst = None
        # slices by basic indices, kept: every tile of a row of tiles asks for the same rows
        self._slices: dict = {}

    def __getitem__(self, index):
        index = index if isinstance(index, tuple) else (index,)
        key = _basic_key(index)
        if key in self._slices:
            return self._slices[key]
        fields = (getattr(self, f) for f in self.FIELDS)
        # full slices over each field's own trailing axes, so ``...`` means the point axes
        terms = PointTerms(*(f[index + (slice(None),) * (f.ndim - self.q.ndim)] for f in fields))
        if key is not None and len(self._slices) < _KEPT_SLICES:
            self._slices[key] = terms
        return terms

    def worst_tails(self):
        """``(max ta, max tb)`` over all the points, (K,) each: a block's truncation bound is
        its rows' times its columns'. Computed once per PointTerms, and slices are kept, so a
        tile's rows and columns compute theirs once per layer, not once per tile."""
        if self._worst is None:
            k = self.ta.shape[-1]
            self._worst = tuple(t.reshape(-1, k).max(axis=0) for t in (self.ta, self.tb))
        return self._worst

    def index(self, entries) -> tuple:
        """The index of the points of some entries of the broadcast shape (from ``np.nonzero``)."""
        entries = entries[len(entries) - self.q.ndim :]  # broadcasting aligns trailing axes
        return tuple(ix if n > 1 else 0 * ix for ix, n in zip(entries, self.q.shape))

    @property
    def shape(self):
        return self.q.shape


class SmoothDual:
    """NNGP dual and NTK factor of an elementwise activation, to ``tol`` of their scale.

    Parameters
    ----------
    phi, dphi : callable
        The activation and its derivative, elementwise on float64 arrays.
    kink : bool, default False
        True when phi' (or phi'') jumps at 0 (elu, selu, softsign): the 2-D rule then splits
        its inner integral there. Kinks elsewhere than 0 are not supported.
    terms : int, default DEFAULT_TERMS
        Hermite coefficients per point (k = 0 .. terms - 1).
    tol : float, default DEFAULT_TOL

    Examples
    --------
    >>> d = SmoothDual(np.tanh, lambda x: 1 - np.tanh(x) ** 2)
    >>> round(float(d.duals(1.0, 1.0, 0.5)[0]), 12)  # E[tanh(u) tanh(v)], correlation 0.5
    0.180285514006
    """

    def __init__(
        self, phi, dphi, *, kink: bool = False, terms: int = DEFAULT_TERMS, tol=DEFAULT_TOL
    ):
        self.phi, self.dphi, self.kink = phi, dphi, bool(kink)
        self.terms, self.tol = int(terms), float(tol)
        self.parity_a = symmetry_parity(phi)
        self.parity_b = symmetry_parity(dphi)
        self._recent: dict = {}  # unique variances (bytes) -> their terms, for _evaluate
        self._lock = threading.Lock()
        self.tables = EqualVarianceTables(self)  # points of one variance: duals in rho

    # ------------------------------------------------------------------ per point
    def point_terms(self, q) -> PointTerms:
        """Coefficients, tails and second moments of every point, from its variances ``q``.

        The work of a layer that depends on one point only: the kernel recursion calls this
        once per layer on the points' variances (any shape) and passes slices of the result
        to :meth:`duals` for every tile.
        """
        q = np.asarray(q, dtype=float)
        flat = np.maximum(q.ravel(), 0.0)
        values, inverse = np.unique(flat, return_inverse=True)
        if values.size == flat.size:  # all distinct, the usual case: no gather
            terms = self._unique_point_terms(flat)
        else:
            terms = self._unique_point_terms(values)[inverse.ravel()]
        return PointTerms(*(f.reshape(q.shape + f.shape[1:]) for f in _fields(terms)))

    def _unique_point_terms(self, q) -> PointTerms:
        coefs, tails, seconds = [], [], []
        for f, parity in ((self.phi, self.parity_a), (self.dphi, self.parity_b)):
            a, second, rest = interpolated_coefficients(f, q, self.terms)
            if parity == 1:  # f - f(0) odd: a_0 = E[f(u)] = f(0), exact zeros at even k >= 2
                a[:, 2::2] = 0.0
                a[:, 0] = float(f(np.zeros(1))[0])
            elif parity == 0:  # f even: exact zeros at odd k
                a[:, 1::2] = 0.0
            # T_K = rest + sum_{K < k < terms} a_k^2: sums of squares, no cancellation
            squares = a * a
            tail = np.cumsum(squares[:, ::-1], axis=1)[:, ::-1]
            tail -= squares
            tail += rest[:, None]  # in place: the arrays are (points, 256)
            tail /= np.where(second > 0, second, 1.0)[:, None]
            coefs.append(a)
            tails.append(np.sqrt(tail, out=tail))
            seconds.append(second)
        chains = chained_coefficients(*coefs, self.parity_a, self.parity_b)
        return PointTerms(q, *coefs, *tails, *seconds, chains)

    # ------------------------------------------------------------------ pairs
    def diagonal(self, q):
        """``(E[phi(u)^2], E[phi'(u)^2])``; ``q`` the variances or their :meth:`point_terms`."""
        terms = q if isinstance(q, PointTerms) else self.point_terms(q)
        return terms.ea.copy(), terms.eb.copy()

    def duals(self, q11, q22, q12):
        """``(E[phi(u) phi(v)], E[phi'(u) phi'(v)])`` elementwise, in float64.

        Parameters
        ----------
        q11, q22 : broadcastable arrays of variances, or their :meth:`point_terms` indexed
            alike (a tile: rows (ti, 1), columns (1, tj)); the terms are then not recomputed.
        q12 : ndarray
            Covariances.
        """
        if isinstance(q11, PointTerms):
            return self._pairs(q11, q22, np.asarray(q12, dtype=float))
        return self._evaluate(q11, q22, q12)

    def exact_duals(self, terms: PointTerms, rho, tol: float):
        """Both duals (m, p) of m points ``terms`` (m,) each with itself at correlations rho (p,).

        For the tables of :mod:`.smooth_table`: the series with all ``terms`` coefficients
        where its truncation bound is at most ``tol`` of the scale (so its error is a smooth
        function of rho, not one that jumps where the number of terms changes), the 2-D rule
        beyond, and at rho = 1 the second moments.
        """
        rho = np.asarray(rho, dtype=float)
        out = np.empty((2, len(terms.q), rho.size))
        r2, at_one = rho * rho, rho == 1.0
        for i in range(len(terms.q)):
            row = terms[i : i + 1]
            slow = np.zeros(rho.shape, bool)
            for d, (coef, tail, parity) in enumerate(
                (("a", "ta", self.parity_a), ("b", "tb", self.parity_b))
            ):
                c = getattr(row, coef)[0] ** 2  # (K,) a_k(q)^2
                slow |= np.abs(rho) > radius(getattr(row, tail)[0, -1] ** 2, len(c), tol)

                def products(k, tmp, c=c):
                    tmp.fill(c[k])
                    return tmp

                mehler(products, rho, r2, len(c) - 1, parity, bool(c[0]), out[d, i])
            slow &= ~at_one
            if slow.any():
                q = np.full(int(slow.sum()), row.q[0])
                out[0, i, slow], out[1, i, slow] = self._pairs_slow(q, q, rho[slow])
            out[0, i, at_one], out[1, i, at_one] = row.ea[0], row.eb[0]
        return out[0], out[1]

    def series_reach(self, terms: PointTerms, tol: float):
        """Largest |rho| (m,) where all the series' terms meet ``tol``, for both duals."""
        k = terms.a.shape[-1]
        return np.minimum(
            radius(terms.ta[..., -1] ** 2, k, tol), radius(terms.tb[..., -1] ** 2, k, tol)
        )

    def _first_tier_reach(self, rows) -> float:
        """Largest |rho| that :data:`TILE_TERMS` terms reach for the first point of ``rows``."""
        k = min(TILE_TERMS, self.terms)
        tails = (f.reshape(-1, f.shape[-1])[0, k - 1] ** 2 for f in (rows.ta, rows.tb))
        return float(min(radius(t, k, self.tol) for t in tails))

    def _pairs(self, rows, cols, q12):
        """:meth:`_duals`, or where every point has one variance q > 0, its table in rho."""
        shape = np.broadcast_shapes(rows.q.shape, cols.q.shape, np.shape(q12))
        q = _common_variance(rows.q, cols.q)
        if q is None or math.prod(shape) < TABLE_MIN_ENTRIES:
            return self._duals(rows, cols, q12)
        rho = _correlation(rows.q, cols.q, q12, shape)
        if np.abs(rho).max() <= self._first_tier_reach(rows):
            return self._duals(rows, cols, q12)  # the tile tier of the series: no faster table
        first = PointTerms(*(f.reshape((-1,) + f.shape[rows.q.ndim :])[:1] for f in _fields(rows)))
        outs = self.tables.evaluate(q, rho, first)
        _second_moments(rows, cols, rho, outs)  # as the exact path: a point with itself
        return outs

    def _duals(self, rows, cols, q12, tol=None):
        """Both duals of the broadcast shape of ``rows.q``, ``cols.q`` and ``q12``: the series
        to truncation bound ``tol`` (default: the dual's), the 2-D rule beyond.

        The series is compiled (:mod:`.smooth_compiled`) when numba is importable and
        :data:`USE_COMPILED` allows it, else evaluated by numpy (:meth:`_series`)."""
        q1, q2 = rows.q, cols.q
        shape = np.broadcast_shapes(q1.shape, q2.shape, np.shape(q12))
        tol = self.tol if tol is None else tol
        compiled = _compiled() if len(shape) <= 2 else None
        result = None
        if compiled is not None:
            parities = (self.parity_a, self.parity_b)
            result = compiled.series(rows, cols, q12, shape, parities, tol)
        outs, slow = self._series(rows, cols, q12, shape, tol) if result is None else result
        if slow.size:
            entries = np.unravel_index(slow, shape)
            q1s, q2s = q1[rows.index(entries)], q2[cols.index(entries)]
            rho = _correlation(q1s, q2s, np.broadcast_to(q12, shape)[entries], q1s.shape)
            fa, fb = self._pairs_slow(q1s, q2s, rho)
            outs[0].reshape(-1)[slow], outs[1].reshape(-1)[slow] = fa, fb
        return outs

    def _series(self, rows, cols, q12, shape, tol):
        """The series by numpy, a tile at a time; returns both duals and the flat indices of
        the entries beyond its reach (left for the 2-D rule)."""
        rho = _correlation(rows.q, cols.q, q12, shape)
        absr, r2 = np.abs(rho), rho * rho
        rmax = float(absr.max(initial=0.0))
        outs = (np.empty(shape), np.empty(shape))
        left = []  # flat indices of the entries beyond the series' reach
        worst = (rows.worst_tails(), cols.worst_tails())
        for d, (out, coef, parity) in enumerate(
            ((outs[0], "a", self.parity_a), (outs[1], "b", self.parity_b))
        ):
            bound = worst[0][d] * worst[1][d]  # (K,) the block's worst tails
            left.append(self._tiers(rows, cols, coef, bound, rho, r2, absr, rmax, parity, out, tol))
        slow = np.union1d(*left)
        if rmax == 1.0:
            slow = np.setdiff1d(slow, _second_moments(rows, cols, rho, outs))
        return outs, slow

    def _tiers(self, rows, cols, coef, bound, rho, r2, absr, rmax, parity, out, tol):
        """The series where it meets ``tol``; returns the flat indices of the entries beyond it.

        First the whole array with at most :data:`TILE_TERMS` terms (right for the entries
        with |rho| up to that many terms' radius, most of them); then, gathered, the entries
        in the next radii with more terms (:data:`TERM_STEPS`).
        """
        steps = [k for k in (TILE_TERMS, *TERM_STEPS) if k < self.terms] + [self.terms]
        cuts = [radius(bound[k - 1], k, tol) for k in steps]
        k = terms_needed(min(rmax, float(cuts[0])), bound[: steps[0]], tol)
        a_r, a_c = getattr(rows, coef), getattr(cols, coef)
        constant = bool(np.any(a_r[..., 0]) and np.any(a_c[..., 0]))
        # k-major copies (k + 1, ti, 1), (k + 1, 1, tj): each term's factors contiguous
        r_k = np.ascontiguousarray(np.moveaxis(a_r[..., : k + 1], -1, 0))
        c_k = np.ascontiguousarray(np.moveaxis(a_c[..., : k + 1], -1, 0))
        mehler(
            lambda i, tmp: np.multiply(r_k[i], c_k[i], out=tmp), rho, r2, k, parity, constant, out
        )
        if rmax <= cuts[0]:
            return np.empty(0, np.intp)
        far = np.flatnonzero(absr > cuts[0])  # (p,) flat indices, gathered
        rho_far = rho.reshape(-1)[far]
        abs_far = np.abs(rho_far)
        for lo_cut, hi_cut, terms in zip(cuts[:-1], cuts[1:], steps[1:]):
            sel = np.flatnonzero((abs_far > lo_cut) & (abs_far <= hi_cut))
            if not sel.size:
                continue
            entries = np.unravel_index(far[sel], rho.shape)
            rb = rho_far[sel]
            k = terms_needed(float(abs_far[sel].max()), bound[:terms], tol)
            first = (slice(0, k + 1),)  # the band's coefficient products, k-major (k + 1, p)
            products = a_r[rows.index(entries) + first] * a_c[cols.index(entries) + first]
            products = np.ascontiguousarray(products.T)
            vals = np.empty_like(rb)
            mehler(lambda i, tmp, p=products: p[i], rb, rb * rb, k, parity, constant, vals)
            out.reshape(-1)[far[sel]] = vals
        return far[abs_far > cuts[-1]]

    def _pairs_slow(self, q1, q2, rho):
        """The 2-D rule for pairs of variances q1, q2 (p,) with correlations rho (p,)."""
        hi, lo = np.maximum(q1, q2), np.minimum(q1, q2)
        fa, fb = conditional_expectation((self.phi, self.dphi), hi, lo, rho, self.kink)
        return fa, fb

    def _recent_terms(self, values) -> PointTerms:
        """:meth:`_unique_point_terms`, kept for the last few sets of variances.

        Callers that pass variances rather than terms (fixed-point iterations, scalar
        queries) often ask again for the same variances; the kernel recursion never comes here.
        """
        key = values.tobytes()
        with self._lock:
            terms = self._recent.pop(key, None)
        if terms is None:
            terms = self._unique_point_terms(values)
        with self._lock:
            self._recent[key] = terms
            while len(self._recent) > _RECENT:
                self._recent.pop(next(iter(self._recent)))
        return terms

    def _evaluate(self, q11, q22, q12):
        """Both duals of broadcast arrays, in blocks of pairs (each pair its own two points)."""
        q11, q22, q12 = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (q11, q22, q12)))
        shape = q12.shape
        q11, q22, q12 = q11.ravel(), q22.ravel(), q12.ravel()
        r = np.sqrt(np.maximum(q11, 0) * np.maximum(q22, 0))
        q12 = np.clip(q12, -r, r)
        values, inverse = np.unique(np.concatenate([q11, q22]), return_inverse=True)
        inverse = inverse.ravel()
        terms = self._recent_terms(np.maximum(values, 0.0))
        nngp, factor = np.empty(q12.size), np.empty(q12.size)
        for start in range(0, q12.size, _PAIR_BLOCK):
            sel = slice(start, start + _PAIR_BLOCK)
            ri, ci = inverse[: q11.size][sel], inverse[q11.size :][sel]
            nngp[sel], factor[sel] = self._pairs(terms[ri], terms[ci], q12[sel])
        return nngp.reshape(shape), factor.reshape(shape)


def _compiled():
    """The module :mod:`.smooth_compiled`, or None (numba not importable, or not wanted)."""
    global _NUMBA_MISSING
    if USE_COMPILED is False or (_NUMBA_MISSING and USE_COMPILED is None):
        return None
    try:
        from . import smooth_compiled
    except ImportError:
        if USE_COMPILED:
            raise
        _NUMBA_MISSING = True
        return None
    return smooth_compiled


def _correlation(q1, q2, q12, shape):
    """``q12 / sqrt(q1 q2)`` in [-1, 1] (0 where a variance is 0), of the broadcast shape."""
    denom = np.sqrt(q1 * q2)
    rho = np.divide(q12, denom, out=np.zeros(shape), where=denom > 0)
    return np.clip(rho, -1.0, 1.0, out=rho)


def _second_moments(rows, cols, rho, outs):
    """Set the entries of a point with itself (same variance, rho = 1) to its second moments,
    exactly; returns their flat indices."""
    shape = rho.shape
    same = np.flatnonzero(np.broadcast_to(rows.q == cols.q, shape) & (rho == 1.0))
    entries = np.unravel_index(same, shape)
    outs[0].reshape(-1)[same] = rows.ea[rows.index(entries)]
    outs[1].reshape(-1)[same] = rows.eb[rows.index(entries)]
    return same


def _common_variance(q1, q2):
    """The variance of every point of ``q1`` and ``q2``, if they agree to :data:`SAME_VARIANCE`.

    Returns it rounded to :data:`_VARIANCE_BITS` significant bits (so that blocks whose
    variances differ in the last bits share one table), or None. Inputs normalised in floating
    point have variances a few units in the last place apart, layer after layer.
    """
    if q1.size == 0 or q2.size == 0:
        return None
    lo, hi = min(q1.min(), q2.min()), max(q1.max(), q2.max())
    if not (lo > 0 and hi - lo <= SAME_VARIANCE * hi and np.isfinite(hi)):
        return None
    mantissa, exponent = math.frexp(float(lo + hi) / 2)
    return math.ldexp(round(mantissa * 2**_VARIANCE_BITS), exponent - _VARIANCE_BITS)


def _basic_key(index):
    """A hashable form of an index of slices, None, Ellipsis and integers; else None."""
    key = []
    for item in index:
        if isinstance(item, slice):
            key.append((item.start, item.stop, item.step))
        elif item is None or item is Ellipsis:
            key.append(item)
        elif isinstance(item, (int, np.integer)) and not isinstance(item, (bool, np.bool_)):
            key.append(int(item))
        else:  # arrays, booleans: not kept
            return None
    return tuple(key)


def _fields(terms: PointTerms):
    return [getattr(terms, f) for f in PointTerms.FIELDS]
