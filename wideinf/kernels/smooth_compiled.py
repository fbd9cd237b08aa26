"""The Mehler series of :mod:`wideinf.kernels.smooth`, compiled: one pass per kernel entry.

The same evaluation as :meth:`SmoothDual._duals` (numpy), entry by entry with the terms in
registers instead of several array passes per term: the correlation
``rho = clip(q12 / sqrt(q1 q2), -1, 1)``; a point with itself at rho = 1 takes its second
moments; otherwise, for each of the NNGP dual and the NTK factor,

    sum_{k <= K} a_k(q1) a_k(q2) rho^k

by Horner's rule in rho^2 on the even and the odd k (only the nonzero ones for odd or even
functions), with the same products, the same order of operations and no fused
multiply-adds, so that for equal K the two paths agree bit for bit. K is chosen per entry
rather than per tile: the smallest K whose truncation bound ``|rho|^(K+1) bound[K]`` is at
most ``tol`` for both duals (``bound`` the block's worst tails, as in the numpy path), read
from a table over |rho| rounded up to a multiple of 1/:data:`BINS` (the numpy path's K serves
the largest |rho| of the tile, or of a band of the few larger ones). Every entry takes at
least its own K, so the bound holds entry by entry, and the two paths differ by at most the
bound, ``tol`` of the scale. The entries beyond the reach of all the terms are returned for
the 2-D rule, the same entries as the numpy path's.

The coefficients come chain by chain (:attr:`PointTerms.chains`): step t of a chain holds the
NNGP dual's coefficient k = first + 2t beside the NTK factor's, so the two duals' Horner
chains walk one array together. A row's entries are sorted by their number of steps and
evaluated four at a time (:data:`LANES`), with the largest number of the four: eight
independent chains, so the core is not waiting on the latency of one.

Needs numba (the optional extra ``wideinf[fast]``); :mod:`wideinf.kernels.smooth` imports this
module on the first series it evaluates, and runs the numpy path when numba is absent. The
compiled code is cached on disk (``cache=True``) after the first use.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .smooth_rules import chain_starts

__all__ = ["series", "BINS"]

# Bins of |rho| in [0, 1] for the number of terms: rounding |rho| up to the next multiple of
# 1/256 adds at most about one term (|rho| 0.1 to 0.9, where most entries are).
BINS = 256
# Entries evaluated together: the same number of steps (their largest), independent chains.
LANES = 4

_JIT = {"cache": True, "nogil": True, "fastmath": False, "error_model": "numpy"}
_LOG_EDGES = np.log(np.arange(1, BINS + 1) / BINS)  # log of each bin's upper end


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


@numba.njit(**_JIT)
def _worst(rows, cols):
    """``max_i rows[i, k] * max_j cols[j, k]`` (K,): the bound of the block, as the numpy path's."""
    worst = rows[0].copy()
    for i in range(1, rows.shape[0]):
        for k in range(worst.shape[0]):
            worst[k] = max(worst[k], rows[i, k])
    worst_c = cols[0].copy()
    for j in range(1, cols.shape[0]):
        for k in range(worst.shape[0]):
            worst_c[k] = max(worst_c[k], cols[j, k])
    for k in range(worst.shape[0]):
        worst[k] *= worst_c[k]
    return worst


@numba.njit(inline="always", **_JIT)
def _horner(cr, cc, p, i, j, top, r2):
    """Chain pair p of four lanes (entries (i[l], j[l])), Horner in ``r2[l]`` from step ``top``:
    ``sum_t cr[i, p, t, d] cc[j, p, t, d] r2^t`` for d = 0 (NNGP dual) and 1 (NTK factor)."""
    (i0, i1, i2, i3), (j0, j1, j2, j3), (q0, q1, q2, q3) = i, j, r2
    a0, b0 = cr[i0, p, top, 0] * cc[j0, p, top, 0], cr[i0, p, top, 1] * cc[j0, p, top, 1]
    a1, b1 = cr[i1, p, top, 0] * cc[j1, p, top, 0], cr[i1, p, top, 1] * cc[j1, p, top, 1]
    a2, b2 = cr[i2, p, top, 0] * cc[j2, p, top, 0], cr[i2, p, top, 1] * cc[j2, p, top, 1]
    a3, b3 = cr[i3, p, top, 0] * cc[j3, p, top, 0], cr[i3, p, top, 1] * cc[j3, p, top, 1]
    for t in range(top - 1, -1, -1):
        a0 = a0 * q0 + cr[i0, p, t, 0] * cc[j0, p, t, 0]
        b0 = b0 * q0 + cr[i0, p, t, 1] * cc[j0, p, t, 1]
        a1 = a1 * q1 + cr[i1, p, t, 0] * cc[j1, p, t, 0]
        b1 = b1 * q1 + cr[i1, p, t, 1] * cc[j1, p, t, 1]
        a2 = a2 * q2 + cr[i2, p, t, 0] * cc[j2, p, t, 0]
        b2 = b2 * q2 + cr[i2, p, t, 1] * cc[j2, p, t, 1]
        a3 = a3 * q3 + cr[i3, p, t, 0] * cc[j3, p, t, 0]
        b3 = b3 * q3 + cr[i3, p, t, 1] * cc[j3, p, t, 1]
    return (a0, a1, a2, a3), (b0, b1, b2, b3)


@numba.njit(inline="always", **_JIT)
def _constant(k_rows, k_cols, d, i, j, nonzero):
    """The constant term (k = 0) of dual d for four lanes: ``k_rows[i, d] k_cols[j, d]``."""
    if not nonzero:
        return (0.0, 0.0, 0.0, 0.0)
    return (
        k_rows[i[0], d] * k_cols[j[0], d],
        k_rows[i[1], d] * k_cols[j[1], d],
        k_rows[i[2], d] * k_cols[j[2], d],
        k_rows[i[3], d] * k_cols[j[3], d],
    )


@numba.njit(inline="always", **_JIT)
def _add(total, part, odd, rho):
    """``total + part`` (four lanes), the part times rho when its chain holds the odd k."""
    if odd:
        part = (part[0] * rho[0], part[1] * rho[1], part[2] * rho[2], part[3] * rho[3])
    return (total[0] + part[0], total[1] + part[1], total[2] + part[2], total[3] + part[3])


@numba.njit(**_JIT)
def _series_block(
    chains, constants, tails, q, ea, eb, row_step, col_stride, q12, tol, odd, out, slow
):
    """The series of every entry (a, b) of ``q12`` (n1, n2) between a row and a column point.

    ``chains``: (rows, cols), each (points, P, T, 2) (:attr:`PointTerms.chains`);
    ``constants``: (rows, cols), each (points, 2), per dual a_0 where the dual's function minus
    its value at 0 is odd (its chains hold only the odd k), else 0; ``tails``:
    (a rows, a cols, b rows, b cols), each (points, K), the relative tails (the series' bound
    uses the block's worst); ``q`` (rows, cols) variances; ``ea, eb`` the rows' second
    moments; the point of entry (a, b) is ``a * row_step`` of the rows and
    ``a * col_stride[0] + b * col_stride[1]`` of the columns (0 on a broadcast axis); ``odd`` (P, 2): 1 where chain pair p of a dual holds the odd k. Writes
    ``out[0]``, ``out[1]`` (flat); returns the number of entries beyond the series' reach, whose
    flat indices go to ``slow`` (their outputs left unset).
    """
    tab_a, tab_b, tab = np.empty(BINS, np.int64), np.empty(BINS, np.int64), np.empty(BINS, np.int64)
    bound_a, bound_b = _worst(tails[0], tails[1]), _worst(tails[2], tails[3])
    _term_table(bound_a, tol, _LOG_EDGES, tab_a)
    _term_table(bound_b, tol, _LOG_EDGES, tab_b)
    for b in range(BINS):  # one number of terms for both duals
        tab[b] = max(tab_a[b], tab_b[b]) if min(tab_a[b], tab_b[b]) >= 0 else -1
    # as smooth_rules.radius with all K terms
    reach_a = (tol / max(bound_a[-1], 1e-300)) ** (1.0 / bound_a.shape[0])
    reach_b = (tol / max(bound_b[-1], 1e-300)) ** (1.0 / bound_b.shape[0])
    (c_rows, c_cols), (k_rows, k_cols), (q_rows, q_cols) = chains, constants, q
    out_a, out_b = out
    s10, s11 = col_stride
    n1, n2 = q12.shape
    constant = (
        k_rows[:, 0].any() and k_cols[:, 0].any(),
        k_rows[:, 1].any() and k_cols[:, 1].any(),
    )
    rho, steps = np.empty(n2), np.empty(n2, np.int64)
    order, counts = np.empty(n2, np.int64), np.zeros(c_rows.shape[2] + 1, np.int64)
    n_slow = 0
    for a in range(n1):
        i0 = a * row_step  # the row's point, in every lane
        i = (i0, i0, i0, i0)
        top_row = 0
        for b in range(n2):  # correlation and steps of each entry; the special ones
            p, j = a * n2 + b, a * s10 + b * s11
            denom = math.sqrt(q_rows[i[0]] * q_cols[j])
            r = min(max(q12[a, b] / denom if denom > 0 else 0.0, -1.0), 1.0)
            rho[b], steps[b], r_abs = r, -1, abs(r)
            k = tab[min(int(r_abs * BINS), BINS - 1)]
            if k < 0 or r_abs == 1.0:
                if r == 1.0 and q_rows[i[0]] == q_cols[j]:  # a point with itself
                    out_a[p], out_b[p] = ea[i[0]], eb[i[0]]
                    continue
                ka = _terms(r_abs, tab_a, reach_a, bound_a, tol)
                kb = _terms(r_abs, tab_b, reach_b, bound_b, tol)
                if min(ka, kb) < 0:  # beyond the series' reach: the 2-D rule
                    slow[n_slow] = p
                    n_slow += 1
                    continue
                k = max(ka, kb)
            steps[b] = k // 2  # even chains reach k, odd ones k or k + 1
            counts[k // 2 + 1] += 1
            top_row = max(top_row, k // 2)
        for t in range(top_row + 1):  # counting sort by steps
            counts[t + 1] += counts[t]
        m = counts[top_row + 1]
        for b in range(n2):
            if steps[b] >= 0:
                order[counts[steps[b]]] = b
                counts[steps[b]] += 1
        counts[: top_row + 2] = 0
        for g in range(0, m, LANES):  # four at a time (the last repeated to fill)
            b4 = (
                order[g],
                order[min(g + 1, m - 1)],
                order[min(g + 2, m - 1)],
                order[min(g + 3, m - 1)],
            )
            j = (
                a * s10 + b4[0] * s11,
                a * s10 + b4[1] * s11,
                a * s10 + b4[2] * s11,
                a * s10 + b4[3] * s11,
            )
            r = (rho[b4[0]], rho[b4[1]], rho[b4[2]], rho[b4[3]])
            r2 = (r[0] * r[0], r[1] * r[1], r[2] * r[2], r[3] * r[3])
            top = max(max(steps[b4[0]], steps[b4[1]]), max(steps[b4[2]], steps[b4[3]]))
            va = _constant(k_rows, k_cols, 0, i, j, constant[0])
            vb = _constant(k_rows, k_cols, 1, i, j, constant[1])
            for pair in range(odd.shape[0]):
                pa, pb = _horner(c_rows, c_cols, pair, i, j, top, r2)
                va, vb = _add(va, pa, odd[pair, 0], r), _add(vb, pb, odd[pair, 1], r)
            base = a * n2
            out_a[base + b4[0]], out_b[base + b4[0]] = va[0], vb[0]
            out_a[base + b4[1]], out_b[base + b4[1]] = va[1], vb[1]
            out_a[base + b4[2]], out_b[base + b4[2]] = va[2], vb[2]
            out_a[base + b4[3]], out_b[base + b4[3]] = va[3], vb[3]
    return n_slow


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

    None when the row points change along the last axis of a 2-D ``shape`` with more than one
    row (not a tile's layout): the numpy path then evaluates it.
    """
    shape2 = (1,) * (2 - len(shape)) + tuple(shape)
    q12 = np.asarray(q12, dtype=float)
    if q12.shape != tuple(shape):  # (a tile's covariances have the shape: no copy)
        q12 = np.broadcast_to(q12, shape)
    row_stride, col_stride = _strides(rows.q, shape2), _strides(cols.q, shape2)
    if row_stride[1]:  # row points along the columns: one row read as one column, else numpy
        if shape2[0] > 1:
            return None
        shape2, row_stride, col_stride = shape2[::-1], row_stride[::-1], col_stride[::-1]
    nr, nc, k_all = rows.q.size, cols.q.size, rows.a.shape[-1]
    out = (np.empty(math.prod(shape)), np.empty(math.prod(shape)))
    slow = np.empty(out[0].size, np.int64)
    starts = [chain_starts(p) for p in parities]
    odd = np.array(
        [[len(s) > p and s[p] == 1 for s in starts] for p in range(rows.chains.shape[-3])], np.int64
    )
    sides = ((rows, nr), (cols, nc))
    n_slow = _series_block(
        tuple(_c(t.chains.reshape((n,) + t.chains.shape[-3:])) for t, n in sides),
        tuple(_constants(t, n, parities) for t, n in sides),
        tuple(_c(getattr(t, f).reshape(n, k_all)) for f in ("ta", "tb") for t, n in sides),
        (_c(rows.q.reshape(nr)), _c(cols.q.reshape(nc))),
        _c(rows.ea.reshape(nr)),
        _c(rows.eb.reshape(nr)),
        row_stride[0],
        col_stride,
        _c(q12.reshape(shape2)),
        float(tol),
        odd,
        out,
        slow,
    )
    return (out[0].reshape(shape), out[1].reshape(shape)), slow[:n_slow]
