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
most ``tol`` (``bound`` the block's worst tails, as in the numpy path), read from a table over
|rho| rounded up to a multiple of 1/:data:`BINS` (the numpy path's K serves the largest |rho|
of the tile, or of a band of the few larger ones). Four entries of a row with about as many
terms are evaluated together, with the largest K of the four (:data:`LANES`). Every entry
takes at least its own K, so the bound holds entry by entry, and the two paths differ by at
most the bound, ``tol`` of the scale. The entries beyond the reach of all the terms are
returned for the 2-D rule, the same entries as the numpy path's.

Needs numba (the optional extra ``wideinf[fast]``); :mod:`wideinf.kernels.smooth` imports this
module on the first series it evaluates, and runs the numpy path when numba is absent. The
compiled code is cached on disk (``cache=True``) after the first use.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["series", "BINS"]

# Bins of |rho| in [0, 1] for the number of terms: rounding |rho| up to the next multiple of
# 1/1024 adds at most a fraction of a term at |rho| < 0.99.
BINS = 1024
# Entries evaluated together: the same number of terms (their largest), four independent
# Horner chains, so the core is not waiting on one chain's latency.
LANES = 4

# Sort keys of a row's entries: the two duals' numbers of terms, added (capped).
_KEYS = 128
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
def _terms(table, r, reach, bound, tol):
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
def _horner(cr, cc, i, j, first, top, r2):
    """``sum_k cr[i[l], k] cc[j[l], k] r2[l]^((k - first) / 2)``, k = first, first + 2, ..,
    top, for each of the four lanes l (entries (i[l], j[l])): four independent chains."""
    (i0, i1, i2, i3), (j0, j1, j2, j3) = i, j
    s0, s1 = cr[i0, top] * cc[j0, top], cr[i1, top] * cc[j1, top]
    s2, s3 = cr[i2, top] * cc[j2, top], cr[i3, top] * cc[j3, top]
    for k in range(top - 2, first - 1, -2):
        s0 = s0 * r2[0] + cr[i0, k] * cc[j0, k]
        s1 = s1 * r2[1] + cr[i1, k] * cc[j1, k]
        s2 = s2 * r2[2] + cr[i2, k] * cc[j2, k]
        s3 = s3 * r2[3] + cr[i3, k] * cc[j3, k]
    return s0, s1, s2, s3


@numba.njit(inline="always", **_JIT)
def _mehler(cr, cc, i, j, k_max, parity, rho, r2):
    """``sum_{k <= k_max} cr[i, k] cc[j, k] rho^k`` for four entries, as ``smooth_rules.mehler``:
    Horner in rho^2 on the even k plus rho times Horner on the odd ones. parity 1: only the
    odd k and k = 0; 0: only the even k; -1: all."""
    even = _horner(cr, cc, i, j, 0, 0 if parity == 1 else k_max - k_max % 2, r2)
    odd_top = -1 if parity == 0 else k_max - 1 + k_max % 2
    if odd_top < 1:
        return even
    odd = _horner(cr, cc, i, j, 1, odd_top, r2)
    return (
        even[0] + rho[0] * odd[0],
        even[1] + rho[1] * odd[1],
        even[2] + rho[2] * odd[2],
        even[3] + rho[3] * odd[3],
    )


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
def _set(pair, d, value):
    return (value, pair[1]) if d == 0 else (pair[0], value)


@numba.njit(**_JIT)
def _series_block(coef, tails, q, ea, eb, stride, q12, tol, parity, out, slow):
    """The series of every entry (a, b) of ``q12`` (n1, n2) between a row and a column point.

    ``coef``: (a rows, a cols, b rows, b cols), each (points, K); ``tails`` likewise the
    relative tails (the series' bound uses the block's worst); ``q`` (rows, cols) variances; ``ea, eb`` the rows' second moments;
    ``stride``: per side, the point of entry (a, b) is ``a * s[0] + b * s[1]`` (0 on a
    broadcast axis). Writes ``out[0]``, ``out[1]`` (flat); returns the number of entries
    beyond the series' reach, whose flat indices go to ``slow`` (their outputs left unset).
    """
    tables = (np.empty(BINS, np.int64), np.empty(BINS, np.int64))
    bound = (_worst(tails[0], tails[1]), _worst(tails[2], tails[3]))
    reach = (0.0, 0.0)
    for d in range(2):
        _term_table(bound[d], tol, _LOG_EDGES, tables[d])
        # as smooth_rules.radius with all K terms
        reach = _set(reach, d, (tol / max(bound[d][-1], 1e-300)) ** (1.0 / bound[d].shape[0]))
    n1, n2 = q12.shape
    rho, terms = np.empty(n2), np.empty((n2, 2), np.int64)
    points, key = np.empty((n2, 2), np.int64), np.empty(n2, np.int64)
    order, counts = np.empty(n2, np.int64), np.empty(_KEYS + 1, np.int64)
    n_slow = 0
    for a in range(n1):
        counts[:] = 0
        for b in range(n2):  # correlations, second moments, terms; the 2-D rule's entries
            p = a * n2 + b
            i, j = a * stride[0][0] + b * stride[0][1], a * stride[1][0] + b * stride[1][1]
            denom = math.sqrt(q[0][i] * q[1][j])
            r = min(max(q12[a, b] / denom if denom > 0 else 0.0, -1.0), 1.0)
            rho[b], points[b, 0], points[b, 1], key[b] = r, i, j, -1
            if r == 1.0 and q[0][i] == q[1][j]:  # a point with itself
                out[0][p], out[1][p] = ea[i], eb[i]
                continue
            for d in range(2):
                terms[b, d] = _terms(tables[d], abs(r), reach[d], bound[d], tol)
            if terms[b, 0] < 0 or terms[b, 1] < 0:
                slow[n_slow] = p
                n_slow += 1
                continue
            key[b] = min(terms[b, 0] + terms[b, 1], _KEYS - 1)
            counts[key[b] + 1] += 1
        for k in range(_KEYS):  # counting sort by terms: a group's four need about as many
            counts[k + 1] += counts[k]
        m = counts[_KEYS]
        for b in range(n2):
            if key[b] >= 0:
                order[counts[key[b]]] = b
                counts[key[b]] += 1
        for g in range(0, m, LANES):  # four at a time (the last repeated to fill)
            b4 = (
                order[g],
                order[min(g + 1, m - 1)],
                order[min(g + 2, m - 1)],
                order[min(g + 3, m - 1)],
            )
            i = (points[b4[0], 0], points[b4[1], 0], points[b4[2], 0], points[b4[3], 0])
            j = (points[b4[0], 1], points[b4[1], 1], points[b4[2], 1], points[b4[3], 1])
            r = (rho[b4[0]], rho[b4[1]], rho[b4[2]], rho[b4[3]])
            r2 = (r[0] * r[0], r[1] * r[1], r[2] * r[2], r[3] * r[3])
            ka = max(max(terms[b4[0], 0], terms[b4[1], 0]), max(terms[b4[2], 0], terms[b4[3], 0]))
            kb = max(max(terms[b4[0], 1], terms[b4[1], 1]), max(terms[b4[2], 1], terms[b4[3], 1]))
            va = _mehler(coef[0], coef[1], i, j, ka, parity[0], r, r2)
            vb = _mehler(coef[2], coef[3], i, j, kb, parity[1], r, r2)
            for lane in range(LANES):
                out[0][a * n2 + b4[lane]], out[1][a * n2 + b4[lane]] = va[lane], vb[lane]
    return n_slow


def _c(x, dtype=np.float64):
    """C-contiguous, writable, of ``dtype``: one compiled signature for every call."""
    x = np.ascontiguousarray(x, dtype=dtype)
    return x if x.flags.writeable else x.copy()


def _strides(q, shape):
    """Per axis of the 2-D ``shape``, the step of the flat point index of ``q`` (broadcast)."""
    dims = (1,) * (2 - q.ndim) + q.shape
    return (dims[1] if dims[0] > 1 else 0, 1 if dims[1] > 1 else 0)


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
    """
    nr, nc, k_all = rows.q.size, cols.q.size, rows.a.shape[-1]
    shape2 = (1,) * (2 - len(shape)) + tuple(shape)
    out = (np.empty(math.prod(shape)), np.empty(math.prod(shape)))
    slow = np.empty(out[0].size, np.int64)
    sides = ((rows, nr), (cols, nc))
    n_slow = _series_block(
        tuple(_c(getattr(t, f).reshape(n, k_all)) for f in "ab" for t, n in sides),
        tuple(_c(getattr(t, f).reshape(n, k_all)) for f in ("ta", "tb") for t, n in sides),
        (_c(rows.q.reshape(nr)), _c(cols.q.reshape(nc))),
        _c(rows.ea.reshape(nr)),
        _c(rows.eb.reshape(nr)),
        (_strides(rows.q, shape2), _strides(cols.q, shape2)),
        _c(np.broadcast_to(q12, shape).reshape(shape2)),
        float(tol),
        tuple(-1 if p is None else int(p) for p in parities),
        out,
        slow,
    )
    return (out[0].reshape(shape), out[1].reshape(shape)), slow[:n_slow]
