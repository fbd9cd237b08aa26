"""A kernel store as a linear operator whose products run block row by block row on Dask."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..blas import one_blas_thread
from ..errors import ConfigError
from . import store

__all__ = ["StoreOperator", "block_product", "HOLD_FRACTION"]

# Share of the workers' summed memory limits a held kernel may take: Dask starts spilling a
# worker's data to disk at 60% of its limit by default, so stay below that.
HOLD_FRACTION = 0.5


# Pieces of a float32 block converted to float64 at a time: 128 x 2048 x 8 B = 2 MB, so the
# float64 copy stays in cache and a product costs little more memory traffic than float32's.
_PIECE_ROWS, _PIECE_COLS = 128, 2048


def block_product(block, v):
    """``block @ v`` with float64 products and sums, whatever the block's dtype.

    A float32 block is widened piece by piece: its entries are exact in float64, so the
    product is that of the stored kernel to float64 rounding (float32 products would leave a
    residual floor near 1e-3 of ``|y|`` in conjugate gradients at N = 16,000).

    Parameters
    ----------
    block : ndarray, shape (r, n), float32 or float64
    v : ndarray, shape (n, C), float64

    Returns
    -------
    ndarray, shape (r, C), float64
    """
    if block.dtype == np.float64:
        return block @ v
    out = np.zeros((block.shape[0], v.shape[1]))
    for i0 in range(0, block.shape[0], _PIECE_ROWS):
        rows = slice(i0, i0 + _PIECE_ROWS)
        for j0 in range(0, block.shape[1], _PIECE_COLS):
            cols = slice(j0, j0 + _PIECE_COLS)
            out[rows] += block[rows, cols].astype(np.float64) @ v[cols]
    return out


def _row_product(path: str, name: str, i: int, chunk: int, v):
    """Worker task: ``K[rows_i, :] @ v`` for block row i, read one chunk at a time."""
    array = store.open_arrays(path)[store.ARRAYS.index(name)]
    n1, n2 = array.shape
    rows = slice(i * chunk, min((i + 1) * chunk, n1))
    out = np.zeros((rows.stop - rows.start, v.shape[1]))
    with one_blas_thread():
        for j0 in range(0, n2, chunk):
            out += block_product(array[rows, j0 : j0 + chunk], v[j0 : j0 + chunk])
    return out


def _load_row(path: str, name: str, i: int, chunk: int):
    """Worker task: block row i of the array, in the store's dtype (kept in worker memory)."""
    array = store.open_arrays(path)[store.ARRAYS.index(name)]
    return array[i * chunk : min((i + 1) * chunk, array.shape[0]), :]


def _held_product(block, v):
    """Worker task: ``block @ v`` for a block row held in the worker's memory."""
    with one_blas_thread():
        return block_product(block, v)


def _read_rows(path: str, name: str, index):
    array = store.open_arrays(path)[store.ARRAYS.index(name)]
    return np.asarray(array.get_orthogonal_selection((index, slice(None))), dtype=np.float64)


def _read_diagonal(path: str, name: str, i: int, chunk: int):
    array = store.open_arrays(path)[store.ARRAYS.index(name)]
    rows = slice(i * chunk, min((i + 1) * chunk, array.shape[0]))
    return np.diag(np.asarray(array[rows, rows], dtype=np.float64)).copy()


class StoreOperator:
    """``V -> K V`` for the array ``name`` of a complete wideinf store, on a Dask client.

    With ``hold``, every block row is read once into the workers' memory (the store's size
    spread over the workers) and each product runs where its block row lives; otherwise each
    product streams the store from disk. ``hold=None`` holds the blocks when the store takes
    at most :data:`HOLD_FRACTION` of the workers' memory limits together.
    """

    def __init__(self, path, name: str, scheduler: str | None, hold: bool | None = None):
        path = Path(path)
        meta = store.read_meta(path)
        if meta is None:
            raise ConfigError(f"{path}: not a wideinf kernel store")
        if not meta.get("complete"):
            raise ConfigError(f"{path}: the kernel store is incomplete (resume its computation)")
        if name not in store.ARRAYS:
            raise ConfigError(f"unknown kernel {name!r}; valid: {', '.join(store.ARRAYS)}")
        self.path, self.name, self.scheduler = str(path), name, scheduler
        self.shape = tuple(meta["shape"])
        self.chunk = int(meta["chunk"])
        self.hold = hold
        self.nbytes = self.shape[0] * self.shape[1] * np.dtype(meta["dtype"]).itemsize
        self._held = None

    def __enter__(self):
        from .cluster import connect

        self._connection = connect(self.scheduler)
        self.client = self._connection.__enter__()
        if self.hold is None:
            self.hold = self.nbytes <= HOLD_FRACTION * _cluster_memory(self.client)
        if self.hold:  # read every block row once; the products then run where it lives
            self._held = [
                self.client.submit(_load_row, self.path, self.name, i, self.chunk)
                for i in self._block_rows()
            ]
        return self

    def __exit__(self, *exc):
        self._held = None  # releases the blocks from the workers' memory
        return self._connection.__exit__(*exc)

    def _block_rows(self):
        return range(math.ceil(self.shape[0] / self.chunk))

    def matvec(self, v):
        # hash=False: a unique key per call; equal vectors under one key race with its release
        v = np.ascontiguousarray(v, dtype=np.float64)
        v_future = self.client.scatter(v, broadcast=True, hash=False)
        if self._held is not None:
            futures = [self.client.submit(_held_product, b, v_future) for b in self._held]
        else:
            futures = [
                self.client.submit(_row_product, self.path, self.name, i, self.chunk, v_future)
                for i in self._block_rows()
            ]
        return np.concatenate(self.client.gather(futures), axis=0)

    def rows(self, index):
        index = np.asarray(index)
        blocks = [index[(index // self.chunk) == i] for i in self._block_rows()]
        futures = [
            self.client.submit(_read_rows, self.path, self.name, b) for b in blocks if len(b)
        ]
        return np.concatenate(self.client.gather(futures), axis=0)

    def diagonal(self):
        if self.shape[0] != self.shape[1]:
            raise ConfigError(f"{self.path}: a square (train x train) kernel store is needed")
        futures = [
            self.client.submit(_read_diagonal, self.path, self.name, i, self.chunk)
            for i in self._block_rows()
        ]
        return np.concatenate(self.client.gather(futures))


def _cluster_memory(client) -> float:
    """Sum of the workers' memory limits in bytes (0 when a worker states none)."""
    workers = client.scheduler_info().get("workers", {}).values()
    limits = [w.get("memory_limit") or 0 for w in workers]
    return float(sum(limits)) if limits and all(limits) else 0.0
