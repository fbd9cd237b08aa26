"""The kernel recursion evaluated tile by tile, on every core, with memory close to its output.

Each square tile of ``x1 @ x2.T / d`` is carried through all layers by
:func:`wideinf.kernels.core.layer_recursion` and written out (docs/theory.md, "Tiling"); the
number of threads never changes a bit. ``dtype=np.float32`` computes in float32 (a series runs
in float64 and rounds its result), in half the memory; near-parallel inputs lose most, up to
about 1e-3 of a ReLU NTK (``benchmarks/RESULTS.md``, "float32 against float64").
"""

from __future__ import annotations

import ctypes
import os
import threading
from functools import cache

import numpy as np

from .core import Kernel, layer_recursion, point_recursion, symmetrize

__all__ = ["tiled_kernel", "DEFAULT_TILE"]

# Rows (and columns) of a tile. A 256 x 256 float64 temporary is 512 KB: the few alive at once
# stay in the core's cache, and there are few enough numpy calls per entry that two threads
# rarely wait for each other's GIL (128 x 128 cost 30% more CPU on 2 threads, benchmarks/).
DEFAULT_TILE = 256

# OpenBLAS runs a matrix product on the calling thread below m n k = 65536 * 4; the Gram
# matrix is computed tile by tile when that allows blocks of at least this many rows.
_BLAS_SINGLE_THREAD = 262_000
_GRAM_MIN_ROWS = 16

# Below this many entries a kernel is computed in the calling thread only.
_THREADING_MIN_ENTRIES = 200_000


@cache
def _keep_freed_memory() -> bool:
    """Let glibc reuse the memory of freed tile temporaries instead of returning it to the OS.

    Without it every tile page-faults its temporaries in again, about a quarter of the kernel's
    time on two threads (``benchmarks/RESULTS.md``). Called once; False where it is not glibc.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        trim = libc.mallopt(-1, 32 << 20)  # M_TRIM_THRESHOLD: keep up to 32 MB per thread
        mmap = libc.mallopt(-3, 4 << 20)  # M_MMAP_THRESHOLD: mmap only blocks above 4 MB
    except (OSError, AttributeError):
        return False
    return bool(trim and mmap)


def tiled_kernel(
    x1,
    x2=None,
    steps=(),
    parameterization: str = "ntk",
    *,
    dtype=np.float64,
    tile: int = DEFAULT_TILE,
    workers: int | None = None,
) -> Kernel:
    """NNGP and NTK of a layer stack, tile by tile (see the module docstring).

    Parameters
    ----------
    x1 : array, shape (n1, d)
    x2 : array, shape (n2, d), optional
        Defaults to x1: then only the upper triangle's tiles are computed, the result is
        exactly symmetric and its diagonal is the 1-D recursion's.
    steps : sequence of DenseStep | ActivationStep
    parameterization : {"ntk", "standard"}
    dtype : {np.float64, np.float32}, default float64
        Precision of every stored array and (closed forms) of the arithmetic.
    tile : int, default DEFAULT_TILE
        Rows and columns per tile.
    workers : int, optional
        Threads; defaults to the cores this process may use.

    Returns
    -------
    Kernel with ``nngp`` and ``ntk`` of shape (n1, n2) and dtype ``dtype``.
    """
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    steps = tuple(steps)
    symmetric = x2 is None
    x1 = np.ascontiguousarray(x1, dtype=dtype)
    x2 = x1 if symmetric else np.ascontiguousarray(x2, dtype=dtype)
    n1, n2, d = x1.shape[0], x2.shape[0], x1.shape[1]
    tile = max(1, int(tile))

    _keep_freed_memory()
    p1 = point_recursion(x1, steps, parameterization)
    p2 = p1 if symmetric else point_recursion(x2, steps, parameterization)
    nngp = np.empty((n1, n2), dtype)
    ntk = np.empty((n1, n2), dtype)
    # The input Gram matrix x1 @ x2.T (BLAS): per tile, in products small enough for OpenBLAS
    # to keep on the calling thread, when d is small; else at once, into the NNGP output.
    gram_rows = _BLAS_SINGLE_THREAD // max(1, min(tile, n2) * d)
    tile_gram = gram_rows >= _GRAM_MIN_ROWS
    if not tile_gram:
        np.matmul(x1, x2.T, out=nngp)

    def run_tile(i0, j0, buf):
        i1, j1 = min(i0 + tile, n1), min(j0 + tile, n2)
        q12 = buf[: (i1 - i0) * (j1 - j0)].reshape(i1 - i0, j1 - j0)
        if tile_gram:
            for r0 in range(i0, i1, gram_rows):
                r1 = min(r0 + gram_rows, i1)
                np.matmul(x1[r0:r1], x2[j0:j1].T, out=q12[r0 - i0 : r1 - i0])
        else:
            q12[...] = nngp[i0:i1, j0:j1]
        np.divide(q12, d, out=q12)
        on_diagonal = symmetric and i0 == j0
        if on_diagonal:
            np.fill_diagonal(q12, p1.var_in[i0:i1])
        variances = [
            (a[i0:i1, None], b[None, j0:j1])  # rows (ti, 1), columns (1, tj): their points
            for a, b in zip(p1.pre_activation, p2.pre_activation)
        ]
        k, th, _ = layer_recursion(q12, steps, parameterization, variances)
        if on_diagonal:
            symmetrize(k, p1.var[i0:i1])
            symmetrize(th, p1.ntk[i0:i1])
        nngp[i0:i1, j0:j1] = k
        ntk[i0:i1, j0:j1] = th
        if symmetric and i0 != j0:
            nngp[j0:j1, i0:i1] = k.T
            ntk[j0:j1, i0:i1] = th.T

    tasks = [
        (i0, j0) for i0 in range(0, n1, tile) for j0 in range(i0 if symmetric else 0, n2, tile)
    ]
    workers = _available_cores() if workers is None else workers
    if n1 * n2 < _THREADING_MIN_ENTRIES:
        workers = 1
    size = min(tile, n1) * min(tile, n2)  # entries of the largest tile
    _run_parallel(tasks, run_tile, min(workers, len(tasks)), size, dtype)
    return Kernel(nngp, ntk, p1.var, p2.var, symmetric)


def _run_parallel(tasks, fn, workers, size, dtype):
    """Run ``fn(*task, buffer)`` for every task on ``workers`` threads (one is this thread)."""

    if workers <= 1:
        buf = np.empty(size, dtype)
        for task in tasks:
            fn(*task, buf)
        return
    it = iter(tasks)
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work():
        buf = np.empty(size, dtype)  # this thread's Gram tile
        while not errors:
            with lock:
                task = next(it, None)
            if task is None:
                return
            try:
                fn(*task, buf)
            except BaseException as exc:  # re-raised in the calling thread
                errors.append(exc)
                return

    threads = [threading.Thread(target=work, daemon=True) for _ in range(workers - 1)]
    for t in threads:
        t.start()
    try:
        work()
    finally:
        for t in threads:
            t.join()
    if errors:
        raise errors[0]


def _available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)
