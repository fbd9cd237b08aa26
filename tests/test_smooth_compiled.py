"""The compiled series (wideinf.kernels.smooth_compiled) against the numpy one, and the fallback.

Both evaluate the same Mehler series from the same per-point coefficients with the same
products and order of operations; they differ only in the number of terms of each entry (the
compiled one takes as few as the truncation bound allows for the entry, the numpy one as many
as its tile or band needs), so they agree to the bound, 1e-14 of the scale
``sqrt(E[phi(u)^2] E[phi(v)^2])``, plus rounding; asked here: 1e-13 of the scale. Entries beyond
the series' reach take the same 2-D rule in both, and a point with itself its second moments.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from wideinf.activations import make_activation
from wideinf.architecture import Architecture
from wideinf.kernels import smooth
from wideinf.kernels.smooth import SmoothDual

pytest.importorskip("numba")

AGREE = 1e-13  # of the scale


def _dual(name):
    act = make_activation(name)
    return SmoothDual(act.phi, act.dphi, kink=act.kink)


def _tile(rng, n=30):
    """Variances from 1e-4 to 100 (and both ends exactly), correlations with exactly +-1, 0,
    points within 1e-14 of +-1, and each point with itself on the diagonal."""
    q = np.concatenate([[1e-4, 100.0, 1.0], np.exp(rng.uniform(np.log(1e-4), np.log(100.0), n))])
    rho = rng.uniform(-1, 1, (q.size, q.size))
    rho[::5, 1::4], rho[1::5, ::3], rho[2::5, 2::7] = 1.0, -1.0, 0.0
    near = rho[3::5, ::6]  # (few: beyond the series' reach, the 2-D rule takes ~0.1 s each)
    rho[3::5, ::6] = np.sign(near) * (1 - 10.0 ** rng.uniform(-14, -1, near.shape))
    q12 = rho * np.sqrt(q[:, None] * q[None, :])
    np.fill_diagonal(q12, q)
    return q, q12


def _both(dual, rows, cols, q12, monkeypatch):
    monkeypatch.setattr(smooth, "USE_COMPILED", False)
    want = dual._duals(rows, cols, q12)
    monkeypatch.setattr(smooth, "USE_COMPILED", True)
    got = dual._duals(rows, cols, q12)
    return got, want


@pytest.mark.parametrize("name", ["tanh", "sigmoid", "softplus", "elu"])
def test_compiled_series_matches_numpy_series(name, rng, monkeypatch):
    dual = _dual(name)
    q, q12 = _tile(rng)
    terms = dual.point_terms(q)
    got, want = _both(dual, terms[:, None], terms[None, :], q12, monkeypatch)
    for g, w, e in zip(got, want, (terms.ea, terms.eb)):
        scale = np.sqrt(e[:, None] * e[None, :])
        assert np.all(np.abs(g - w) <= AGREE * scale), np.max(np.abs(g - w) / scale)
        assert np.array_equal(np.diag(g), e)  # each point with itself: its second moment


@pytest.mark.parametrize("name", ["tanh", "softplus"])
def test_compiled_series_of_blocks_broadcast_rows_and_pairs(name, rng, monkeypatch):
    # a block of other rows than columns (widths not a multiple of the eight lanes), one point
    # against many (the tables' case); 1-D pairs (each entry its own two points) are not a
    # tile's layout and are left to the numpy path
    from wideinf.kernels import smooth_compiled

    dual = _dual(name)
    q, q12 = _tile(rng, n=20)
    terms = dual.point_terms(q)
    blocks = (
        (terms[:7, None], terms[None, 4:], q12[:7, 4:]),
        (terms[:7, None], terms[None, 3:4], q12[:7, 3:4]),  # one column point
        (terms[2:3], terms[2:3], q12[2]),
    )
    for rows, cols, cov in blocks:
        got, want = _both(dual, rows, cols, cov, monkeypatch)
        scale = np.sqrt(rows.ea * cols.ea)
        assert np.all(np.abs(got[0] - want[0]) <= AGREE * scale)
        assert np.all(np.abs(got[1] - want[1]) <= AGREE * np.sqrt(rows.eb * cols.eb))
    i, j = np.triu_indices(q.size)
    parities = (dual.parity_a, dual.parity_b)
    assert smooth_compiled.series(terms[i], terms[j], q12[i, j], i.shape, parities, 1e-14) is None


def test_numpy_fallback_runs_without_numba(monkeypatch, rng):
    # numba not importable: the numpy path, through the whole tiled kernel, equal to the
    # compiled one to the truncation bound.
    import wideinf.kernels

    arch = Architecture.from_dict({"layers": ["dense", "tanh", "dense", "tanh", "dense"]})
    x = rng.standard_normal((300, 4))
    fast = arch.kernel(x)
    monkeypatch.setitem(sys.modules, "numba", None)  # import numba raises ImportError
    monkeypatch.delitem(sys.modules, "wideinf.kernels.smooth_compiled")
    monkeypatch.delattr(wideinf.kernels, "smooth_compiled")
    monkeypatch.setattr(smooth, "_NUMBA_MISSING", False)  # restored afterwards
    assert smooth._compiled() is None
    assert smooth._NUMBA_MISSING  # found missing once: not looked for on every tile
    slow = arch.kernel(x)
    for a, b in ((slow.nngp, fast.nngp), (slow.ntk, fast.ntk)):
        assert np.max(np.abs(a - b)) <= AGREE * np.max(np.abs(b))
    monkeypatch.setattr(smooth, "USE_COMPILED", True)  # asked for, but absent: an error
    with pytest.raises(ImportError):
        smooth._compiled()


def test_vectorizer_setting_is_restored(rng):
    # the compiled series turns numba's SLP vectorizer on for its own compilation only
    import numba

    before = numba.config.SLP_VECTORIZE
    Architecture.from_dict({"layers": ["dense", "tanh", "dense"]}).kernel(
        rng.standard_normal((9, 3))
    )
    assert numba.config.SLP_VECTORIZE == before


def test_numba_is_imported_only_by_a_smooth_series():
    code = (
        "import sys, numpy as np\n"
        "from wideinf import Architecture\n"
        "import wideinf.cli\n"
        "x = np.ones((3, 2))\n"
        "Architecture.from_dict({'layers': ['dense', 'erf', 'dense']}).kernel(x)\n"
        "assert 'numba' not in sys.modules\n"
        "Architecture.from_dict({'layers': ['dense', 'tanh', 'dense']}).kernel(x)\n"
        "assert 'numba' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
