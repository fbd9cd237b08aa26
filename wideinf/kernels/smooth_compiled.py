"""The Mehler series of :mod:`wideinf.kernels.smooth`, compiled: eight kernel entries a pass.

The same evaluation as :meth:`SmoothDual._duals` (numpy), eight neighbouring entries of a
row at a time with the terms in vector registers, instead of several array passes per term:
the correlation ``rho = clip(q12 / sqrt(q1 q2), -1, 1)``; a point with itself at rho = 1
takes its second moments; otherwise, for each of the NNGP dual and the NTK factor,

    sum_{k <= K} a_k(q1) a_k(q2) rho^k

by Horner's rule in rho^2 on the even and the odd k (only the nonzero ones for odd or even
functions), with the same products, the same order of operations and no fused
multiply-adds, so that for equal K the two paths agree bit for bit. K is chosen per entry
rather than per tile: the smallest K whose truncation bound ``|rho|^(K+1) bound[K]`` is at
most ``tol`` for both duals (``bound`` the block's worst tails, as in the numpy path), read
from a table over |rho| rounded up to a multiple of 1/:data:`BINS` (the numpy path's K serves
the largest |rho| of the tile, or of a band of the few larger ones). Each group of eight
(:data:`LANES`) takes the largest K of its entries, so every entry takes at least its own K,
the bound holds entry by entry, and the two paths differ by at most the bound, ``tol`` of the
scale. The entries beyond the reach of all the terms are returned for the 2-D rule, the same
entries as the numpy path's.

The coefficients come chain by chain (:attr:`PointTerms.chains`): step t of a chain holds
the NNGP dual's coefficient k = first + 2t beside the NTK factor's, and the columns' chains
are laid out column by column, so that one step of eight lanes is one vector load, two
multiplications and an addition per dual. The compiler makes those vectors only with LLVM's
SLP vectorizer, which numba leaves off: :func:`_run_block` switches it on for this module's
one compilation.
Needs numba (a run-time dependency); :mod:`wideinf.kernels.smooth` imports this
module on the first series it evaluates, and runs the numpy path when numba is absent. The
compiled code is cached on disk (``cache=True``) after the first use.
"""

from __future__ import annotations

import math
import threading

import numba
import numpy as np

from .smooth_rules import chain_starts

__all__ = ["series", "BINS"]

# Bins of |rho| in [0, 1] for the number of terms: rounding |rho| up to the next multiple of
# 1/256 adds at most about one term (|rho| 0.1 to 0.9, where most entries are).
BINS = 256
# Neighbouring entries of a row evaluated together, as vectors: the steps of the largest.
LANES = 8
_U = np.uint64

_JIT = {"cache": True, "nogil": True, "fastmath": False, "error_model": "numpy"}
_LOG_EDGES = np.log(np.arange(1, BINS + 1) / BINS)  # log of each bin's upper end
_COMPILE_LOCK = threading.Lock()
_COMPILED = False


@numba.njit(**_JIT)
def _term_table(bound, tol, log_edges, table):
    """``table[b]``: smallest k with ``edge_b^(k + 1) bound[k] <= tol``, or -1 (none).

    ``bound`` (K,) is nonincreasing in k (tails of sums of squares), so the answer is
    nondecreasing in b and one sweep finds all of them; compared in logarithms.
    """
    k_all, log_tol = bound.shape[0], math.log(tol)
    log_bound = np.log(bound)
    k = 0
    for b in range(table.shape[0]):
        while k < k_all and (k + 1) * log_edges[b] + log_bound[k] > log_tol:
            k += 1
        table[b] = k if k < k_all else -1


@numba.njit(**_JIT)
def _terms(r, table, reach, bound, tol):
    """Last k of the series for |rho| = r, or -1 beyond ``reach`` (then the 2-D rule)."""
    k = table[min(int(r * table.shape[0]), table.shape[0] - 1)]
    if k >= 0:
        return k
    if r > reach:
        return -1
    for k in range(bound.shape[0]):  # the top bin: r itself, as smooth_rules.terms_needed
        if r ** float(k + 1) * bound[k] <= tol:
            return k
    return bound.shape[0] - 1


@numba.njit(inline="always", **_JIT)
def _lanes(x, row, u):
    """``x[row, u], x[row, u + 1], .., x[row, u + 7]``: a chunk's eight lanes (u unsigned: no
    wraparound code, so the compiler sees eight neighbours and loads them as one vector)."""
    r = _U(row)
    return (
        x[r, u],
        x[r, u + _U(1)],
        x[r, u + _U(2)],
        x[r, u + _U(3)],
        x[r, u + _U(4)],
        x[r, u + _U(5)],
        x[r, u + _U(6)],
        x[r, u + _U(7)],
    )


@numba.njit(inline="always", **_JIT)
def _step(s, q, x, v):
    """One Horner step on eight lanes: ``s * q + x * v`` (no fused multiply-add)."""
    return (
        s[0] * q[0] + x * v[0],
        s[1] * q[1] + x * v[1],
        s[2] * q[2] + x * v[2],
        s[3] * q[3] + x * v[3],
        s[4] * q[4] + x * v[4],
        s[5] * q[5] + x * v[5],
        s[6] * q[6] + x * v[6],
        s[7] * q[7] + x * v[7],
    )


@numba.njit(inline="always", **_JIT)
def _scaled(x, v):
    """``x * v`` on eight lanes."""
    return (x * v[0], x * v[1], x * v[2], x * v[3], x * v[4], x * v[5], x * v[6], x * v[7])


@numba.njit(inline="always", **_JIT)
def _add(total, part, odd, rho):
    """``total + part`` on eight lanes, the part times rho when its chain holds the odd k."""
    if odd:
        part = (
            part[0] * rho[0],
            part[1] * rho[1],
            part[2] * rho[2],
            part[3] * rho[3],
            part[4] * rho[4],
            part[5] * rho[5],
            part[6] * rho[6],
            part[7] * rho[7],
        )
    return (
        total[0] + part[0],
        total[1] + part[1],
        total[2] + part[2],
        total[3] + part[3],
        total[4] + part[4],
        total[5] + part[5],
        total[6] + part[6],
        total[7] + part[7],
    )


@numba.njit(inline="always", **_JIT)
def _horner(c_rows, i, ct, p, top, u, q):
    """Chain pair p of a chunk: ``sum_t c_rows[i, p, t, d] ct[(p T + t) 2 + d, u + l] q[l]^t`` for
    both duals d (the row point's chains times the columns', lane l), by Horner from ``top``."""
    base = p * c_rows.shape[2] * 2
    a = _scaled(c_rows[i, p, top, 0], _lanes(ct, base + 2 * top, u))
    b = _scaled(c_rows[i, p, top, 1], _lanes(ct, base + 2 * top + 1, u))
    for t in range(top - 1, -1, -1):
        a = _step(a, q, c_rows[i, p, t, 0], _lanes(ct, base + 2 * t, u))
        b = _step(b, q, c_rows[i, p, t, 1], _lanes(ct, base + 2 * t + 1, u))
    return a, b


@numba.njit(inline="always", **_JIT)
def _store(x, at, v):
    """``x[at + l] = v[l]`` for the eight lanes (one vector store)."""
    u = _U(at)
    x[u], x[u + _U(1)], x[u + _U(2)], x[u + _U(3)] = v[0], v[1], v[2], v[3]
    x[u + _U(4)], x[u + _U(5)], x[u + _U(6)], x[u + _U(7)] = v[4], v[5], v[6], v[7]


@numba.njit(inline="always", **_JIT)
def _chunk(a, i, b0, n2, c_rows, ct, k_rows, kt, constant, odd, lanes, out):
    """The eight entries (a, b0 .. b0 + 7) of a row: one Horner pass with their largest steps.

    ``lanes`` (3, width): the row's correlations, their squares and steps (as floats)."""
    u = _U(b0)
    s, r, q = _lanes(lanes, 2, u), _lanes(lanes, 0, u), _lanes(lanes, 1, u)
    top = int(max(max(max(s[0], s[1]), max(s[2], s[3])), max(max(s[4], s[5]), max(s[6], s[7]))))
    va = _scaled(k_rows[i, 0] if constant[0] else 0.0, _lanes(kt, 0, u))
    vb = _scaled(k_rows[i, 1] if constant[1] else 0.0, _lanes(kt, 1, u))
    for p in range(odd.shape[0] if top >= 0 else 0):
        pa, pb = _horner(c_rows, i, ct, p, top, u, q)
        va, vb = _add(va, pa, odd[p, 0], r), _add(vb, pb, odd[p, 1], r)
    # all eight lanes, as two vector stores: lanes past the row end write the next row's first
    # entries (computed after) or the outputs' padding; the special entries are set after
    flat = a * n2 + b0
    out_a, out_b = out
    _store(out_a, flat, va)
    _store(out_b, flat, vb)


@numba.njit(**_JIT)
def _series_block(
    chains, constants, bounds, q, ea, eb, row_step, col_step, q12, tol, odd, out, slow
):
    """The series of every entry (a, b) of ``q12`` (n1, n2) between a row and a column point.

    The point of row a is ``a * row_step``, of column b ``b * col_step`` (0: broadcast).
    ``chains``: (rows, cols), each (points, P, T, 2) (:attr:`PointTerms.chains`);
    ``constants``: (rows, cols), each (points, 2), per dual a_0 where the dual's function minus
    its value at 0 is odd (its chains hold only the odd k), else 0; ``bounds``: per dual (K,)
    the block's worst relative tails, its rows' maximum times its columns'; ``q`` (rows, cols)
    variances; ``ea, eb`` the rows' second moments; ``odd`` (P, 2): 1 where chain pair p of a
    dual holds the odd k. Writes ``out[0]``, ``out[1]`` (flat, padded by :data:`LANES`);
    returns the number of entries beyond the series' reach, whose flat indices go to ``slow``
    (their outputs left unset).
    """
    tab_a, tab_b, tab = np.empty(BINS, np.int64), np.empty(BINS, np.int64), np.empty(BINS, np.int64)
    bound_a, bound_b = bounds
    _term_table(bound_a, tol, _LOG_EDGES, tab_a)
    _term_table(bound_b, tol, _LOG_EDGES, tab_b)
    for b in range(BINS):  # one number of terms for both duals
        tab[b] = max(tab_a[b], tab_b[b]) if min(tab_a[b], tab_b[b]) >= 0 else -1
    # as smooth_rules.radius with all K terms
    reach_a = (tol / max(bound_a[-1], 1e-300)) ** (1.0 / bound_a.shape[0])
    reach_b = (tol / max(bound_b[-1], 1e-300)) ** (1.0 / bound_b.shape[0])
    (c_rows, c_cols), (k_rows, k_cols), (q_rows, q_cols) = chains, constants, q
    n1, n2 = q12.shape
    n_pairs, n_steps = c_rows.shape[1], c_rows.shape[2]
    width = -(-n2 // LANES) * LANES  # whole chunks; the lanes past n2 are computed, not written
    # The columns' chains column by column (one vector a step), up to the steps asked so far.
    ct = np.empty((n_pairs * n_steps * 2, width))  # row (p T + t) 2 + d
    kt, qc = np.zeros((2, width)), np.zeros(width)  # the columns' constants and variances
    for b in range(n2):
        kt[0, b], kt[1, b] = k_cols[b * col_step, 0], k_cols[b * col_step, 1]
        qc[b] = q_cols[b * col_step]
    constant = (k_rows[:, 0].any() and kt[0].any(), k_rows[:, 1].any() and kt[1].any())
    filled = 0
    # per row: correlations, their squares, Horner steps (-1 a point with itself, -2 no series)
    lanes = np.zeros((3, width))
    lanes[2] = -2.0
    rho, r2, steps = lanes[0], lanes[1], lanes[2]
    n_slow = 0
    for a in range(n1):
        i = a * row_step
        q_row = q_rows[i]
        for b in range(n2):  # the correlations (vectors)
            denom = math.sqrt(q_row * qc[b])
            r = q12[a, b] / denom if denom > 0 else 0.0
            rho[b] = min(max(r, -1.0), 1.0)
            r2[b] = rho[b] * rho[b]
        top_row, flagged = -1, 0
        for b in range(n2):  # steps from the table (vectors); flags entries it cannot serve
            r_abs = abs(rho[b])
            k = tab[min(int(r_abs * BINS), BINS - 1)]
            steps[b] = k >> 1  # even chains reach k, odd ones k or k + 1
            top_row = max(top_row, k >> 1)
            flagged += (k < 0) | (r_abs == 1.0)
        for b in range(n2 if flagged else 0):  # a point with itself; the 2-D rule's; the top bin
            r_abs = abs(rho[b])
            if tab[min(int(r_abs * BINS), BINS - 1)] >= 0 and r_abs < 1.0:
                continue
            if rho[b] == 1.0 and q_row == qc[b]:
                steps[b] = -1
                continue
            ka = _terms(r_abs, tab_a, reach_a, bound_a, tol)
            kb = _terms(r_abs, tab_b, reach_b, bound_b, tol)
            if min(ka, kb) < 0:  # beyond the series' reach
                steps[b] = -2
                slow[n_slow] = a * n2 + b
                n_slow += 1
                continue
            steps[b] = max(ka, kb) >> 1
            top_row = max(top_row, max(ka, kb) >> 1)
        for p in range(n_pairs):  # more of the columns' chains, if this row needs them
            for t in range(filled, top_row + 1):
                for d in range(2):
                    for b in range(n2):
                        ct[(p * n_steps + t) * 2 + d, b] = c_cols[b * col_step, p, t, d]
        filled = max(filled, top_row + 1)
        for b0 in range(0, n2, LANES):
            _chunk(a, i, b0, n2, c_rows, ct, k_rows, kt, constant, odd, lanes, out)
        for b in range(n2):  # a point with itself: its second moments
            if steps[b] == -1:
                out[0][a * n2 + b], out[1][a * n2 + b] = ea[i], eb[i]
    return n_slow


def _run_block(*args):
    """:func:`_series_block`, compiled on its first call with LLVM's SLP vectorizer on.

    The vectorizer turns the eight lanes of :func:`_chunk` into vector instructions; numba
    leaves it off by default, so it is switched on for this compilation only (one signature:
    :func:`series` passes every argument in one layout), not for other numba code.
    """
    global _COMPILED
    if not _COMPILED:
        with _COMPILE_LOCK:
            if not _COMPILED:
                saved = numba.config.SLP_VECTORIZE
                numba.config.SLP_VECTORIZE = 1
                try:
                    _series_block.compile(tuple(numba.typeof(x) for x in args))
                finally:
                    numba.config.SLP_VECTORIZE = saved
                _COMPILED = True
    return _series_block(*args)


def _c(x, dtype=np.float64):
    """C-contiguous, writable, of ``dtype``: one compiled signature for every call."""
    x = np.ascontiguousarray(x, dtype=dtype)
    return x if x.flags.writeable else x.copy()


def _strides(q, shape):
    """Per axis of the 2-D ``shape``, the step of the flat point index of ``q`` (broadcast)."""
    dims = (1,) * (2 - q.ndim) + q.shape
    return (dims[1] if dims[0] > 1 else 0, 1 if dims[1] > 1 else 0)


def _constants(terms, n, parities):
    """(n, 2): a_0 of each dual whose function minus its value at 0 is odd, else 0."""
    out = np.zeros((n, 2))
    for d, (f, parity) in enumerate(zip("ab", parities)):
        if parity == 1:
            out[:, d] = getattr(terms, f).reshape(n, -1)[:, 0]
    return out


def series(rows, cols, q12, shape, parities, tol):
    """Both duals of the broadcast ``shape`` (at most 2-D) of ``rows.q``, ``cols.q``, ``q12``.

    Parameters
    ----------
    rows, cols : PointTerms
        The points of the rows and the columns, broadcastable to ``shape``.
    q12 : ndarray, broadcastable to ``shape``
        Covariances.
    parities : (int or None, int or None)
        Of phi and phi' (``SmoothDual.parity_a``, ``parity_b``).
    tol : float
        Truncation bound relative to the scale.

    Returns
    -------
    (nngp, factor) : ndarrays of ``shape``
    slow : ndarray of int
        Flat indices of the entries beyond the reach of every term (left unset): the 2-D rule's.

    None unless the row points change only along the first axis and the column points only
    along the last (a tile's layout, not pairs each with its own two points): the numpy path
    then evaluates it.
    """
    shape2 = (1,) * (2 - len(shape)) + tuple(shape)
    q12 = np.asarray(q12, dtype=float)
    if q12.shape != tuple(shape):  # (a tile's covariances have the shape: no copy)
        q12 = np.broadcast_to(q12, shape)
    row_stride, col_stride = _strides(rows.q, shape2), _strides(cols.q, shape2)
    if row_stride[1] or col_stride[0]:  # not a row point per row and a column point per column
        return None
    nr, nc = rows.q.size, cols.q.size
    n = math.prod(shape)
    out = (np.empty(n + LANES), np.empty(n + LANES))  # a row's last chunk may write past n
    slow = np.empty(n, np.int64)
    starts = [chain_starts(p) for p in parities]
    odd = np.array(
        [[len(s) > p and s[p] == 1 for s in starts] for p in range(rows.chains.shape[-3])], np.int64
    )
    sides = ((rows, nr), (cols, nc))
    n_slow = _run_block(
        tuple(_c(t.chains.reshape((n,) + t.chains.shape[-3:])) for t, n in sides),
        tuple(_constants(t, n, parities) for t, n in sides),
        tuple(w_rows * w_cols for w_rows, w_cols in zip(rows.worst_tails(), cols.worst_tails())),
        (_c(rows.q.reshape(nr)), _c(cols.q.reshape(nc))),
        _c(rows.ea.reshape(nr)),
        _c(rows.eb.reshape(nr)),
        row_stride[0],
        col_stride[1],
        _c(q12.reshape(shape2)),
        float(tol),
        odd,
        out,
        slow,
    )
    return (out[0][:n].reshape(shape), out[1][:n].reshape(shape)), slow[:n_slow]
