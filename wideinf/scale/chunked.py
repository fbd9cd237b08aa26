"""Kernels past memory: blocks of the tiled kernel as Dask tasks, streamed into a Zarr store.

The (n1, n2) output is cut into square blocks of ``chunk`` rows, one Zarr chunk each. A task
computes one block with :meth:`wideinf.architecture.Architecture.kernel` (the same tiled core
and the same numbers as an in-memory kernel) on one core and writes it straight into the
store, so no block ever passes through the client and a worker holds about one block at a
time: memory per worker is ``~ 3 chunk^2`` values whatever N is. When x2 is absent the kernel
is symmetric: only blocks on and above the diagonal are computed, and each off-diagonal block
is written twice, as itself and as its transpose. Each block is computed once; a worker lost
mid-run has its tasks rescheduled by Dask, and a task only ever rewrites its own chunks.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np

from ..blas import one_blas_thread
from ..errors import ConfigError
from ..progress import progress
from . import store

__all__ = ["chunked_kernel", "block_grid", "DEFAULT_CHUNK"]

DEFAULT_CHUNK = 4096


def block_grid(n1: int, n2: int, chunk: int, symmetric: bool) -> list[tuple[int, int]]:
    """Blocks (i, j) to compute: all of them, or those with j >= i for a symmetric kernel."""
    rows, cols = math.ceil(n1 / chunk), math.ceil(n2 / chunk)
    return [(i, j) for i in range(rows) for j in range(i if symmetric else 0, cols)]


def compute_block(arch, x1, x2, i: int, j: int, chunk: int, dtype, path: str):
    """Worker task: the kernels of block (i, j), written into the store at ``path``.

    ``x2`` is None for a symmetric kernel: block (i, i) is then itself symmetric with the
    exact diagonal, and block (i, j) is also written at (j, i), transposed.
    """
    rows = slice(i * chunk, min((i + 1) * chunk, x1.shape[0]))
    other = x1 if x2 is None else x2
    cols = slice(j * chunk, min((j + 1) * chunk, other.shape[0]))
    with one_blas_thread():  # one core per task: the workers are the parallelism
        if x2 is None and i == j:
            k = arch.kernel(x1[rows], dtype=dtype, workers=1)
        else:
            k = arch.kernel(x1[rows], other[cols], dtype=dtype, workers=1)
    nngp, ntk = store.open_arrays(path, mode="r+")
    nngp[rows, cols] = k.nngp
    ntk[rows, cols] = k.ntk
    if x2 is None and i != j:
        nngp[cols, rows] = k.nngp.T
        ntk[cols, rows] = k.ntk.T
    store.mark_done(path, i, j)
    return i, j


def chunked_kernel(
    arch,
    x1,
    x2=None,
    out="K.zarr",
    *,
    chunk: int = DEFAULT_CHUNK,
    dtype=np.float64,
    scheduler: str | None = None,
    resume: bool = False,
    n_workers: int | None = None,
    on_block=None,
) -> dict:
    """Compute the NNGP and NTK of ``arch`` on (x1, x2) into the Zarr store ``out``.

    Parameters
    ----------
    arch : Architecture
    x1 : array, shape (n1, d)
    x2 : array, shape (n2, d), optional
        Defaults to x1 (symmetric kernel, exact diagonal, half the blocks).
    out : path ending in ``.zarr``
        Replaced only when every block is done; anything else at that path is refused.
    chunk : int
        Rows and columns per block (and per Zarr chunk).
    dtype : {np.float64, np.float32}
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://host:8786``); default: a local cluster
        on every core, or ``DASK_SCHEDULER_ADDRESS`` when set. On a cluster, ``out`` must be
        on a file system every worker can write.
    resume : bool
        Continue an interrupted run of the same kernel, skipping its finished blocks.
    n_workers : int, optional
        Workers of the local cluster (default: one per core).
    on_block : callable, optional
        Called with (i, j) as each block finishes, in the calling process.

    A progress bar (off under ``--quiet``) counts the blocks.

    Returns
    -------
    dict: the store's metadata (shape, chunk, dtype, ...) and the blocks computed and resumed
    this run.
    """
    from .cluster import connect, require

    require()
    out = Path(out)
    store.check_output(out)
    chunk = int(chunk)
    if chunk < 1:
        raise ConfigError(f"--chunk must be a positive number of rows, got {chunk}")
    dtype = np.dtype(dtype)
    x1 = np.ascontiguousarray(x1, dtype=np.float64)
    x2 = None if x2 is None else np.ascontiguousarray(x2, dtype=np.float64)
    shape = (x1.shape[0], x1.shape[0] if x2 is None else x2.shape[0])
    meta = _metadata(arch, x1, x2, shape, chunk, dtype)

    partial = store.partial_path(out)
    done: set[tuple[int, int]] = set()
    if resume and _same_kernel(store.read_meta(partial), meta):
        done = store.done_blocks(partial)
    else:
        store.check_disk(out.parent, 2 * shape[0] * shape[1] * dtype.itemsize)
        store.create(partial, shape, chunk, dtype, meta)
    blocks = block_grid(*shape, chunk, x2 is None)
    todo = [b for b in blocks if b not in done]

    if todo:
        with (
            connect(scheduler, n_workers) as client,
            progress(total=len(blocks), desc="kernel blocks") as bar,
        ):
            bar.update(len(blocks) - len(todo))

            def finished(i, j):
                bar.update(1)
                if on_block is not None:
                    on_block(i, j)

            _run_blocks(client, arch, x1, x2, todo, chunk, dtype, partial, finished)
    store.finalize(partial, out)
    return {
        **meta,
        "blocks_computed": len(todo),
        "blocks_resumed": len(done),
    }


def _run_blocks(client, arch, x1, x2, todo, chunk, dtype, partial, on_block):
    """Submit every block, wait for all, and cancel the rest if one fails or on Ctrl-C."""
    from distributed import as_completed

    x1_future = client.scatter(x1, broadcast=True)
    x2_future = None if x2 is None else client.scatter(x2, broadcast=True)
    futures = [
        client.submit(
            compute_block,
            arch,
            x1_future,
            x2_future,
            i,
            j,
            chunk,
            dtype,
            str(partial),
            key=f"wideinf-block-{i}-{j}-{partial.name}",
            pure=False,
        )
        for i, j in todo
    ]
    try:
        for future in as_completed(futures):
            i, j = future.result()
            on_block(i, j)
    except BaseException:
        client.cancel(futures)
        raise


def _metadata(arch, x1, x2, shape, chunk, dtype) -> dict:
    from .. import __version__

    digest = hashlib.sha256(x1.tobytes())
    if x2 is not None:
        digest.update(x2.tobytes())
    return {
        "version": __version__,
        "architecture": arch.config.to_raw() if arch.config is not None else None,
        "description": arch.describe(),
        "dtype": dtype.name,
        "chunk": chunk,
        "shape": list(shape),
        "symmetric": x2 is None,
        "inputs_sha256": digest.hexdigest(),
    }


def _same_kernel(found: dict | None, meta: dict) -> bool:
    """Whether a partial store was started for exactly this kernel (resumable)."""
    if found is None:
        return False
    keys = ("description", "dtype", "chunk", "shape", "symmetric", "inputs_sha256")
    return all(found.get(k) == meta[k] for k in keys)
