"""A kernel store as a linear operator whose products run block row by block row on Dask."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from . import store

__all__ = ["StoreOperator"]


def _row_product(path: str, name: str, i: int, chunk: int, v):
    """Worker task: ``K[rows_i, :] @ v`` for block row i, one chunk at a time.

    Each chunk is multiplied in the store's own dtype: a float32 store's products are float32
    (relative error about 1e-7 sqrt(chunk), the size of the entries' own rounding), which
    halves the memory traffic of a float64 copy; the sum over chunks is kept in float64.
    """
    from threadpoolctl import threadpool_limits

    array = store.open_arrays(path)[store.ARRAYS.index(name)]
    n1, n2 = array.shape
    rows = slice(i * chunk, min((i + 1) * chunk, n1))
    out = np.zeros((rows.stop - rows.start, v.shape[1]))
    v = v.astype(array.dtype, copy=False)
    with threadpool_limits(1):
        for j0 in range(0, n2, chunk):
            out += array[rows, j0 : j0 + chunk] @ v[j0 : j0 + chunk]
    return out


def _read_rows(path: str, name: str, index):
    array = store.open_arrays(path)[store.ARRAYS.index(name)]
    return np.asarray(array.get_orthogonal_selection((index, slice(None))), dtype=np.float64)


def _read_diagonal(path: str, name: str, i: int, chunk: int):
    array = store.open_arrays(path)[store.ARRAYS.index(name)]
    rows = slice(i * chunk, min((i + 1) * chunk, array.shape[0]))
    return np.diag(np.asarray(array[rows, rows], dtype=np.float64)).copy()


class StoreOperator:
    """``V -> K V`` for the array ``name`` of a complete wideinf store, on a Dask client."""

    def __init__(self, path, name: str, scheduler: str | None):
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

    def __enter__(self):
        from .cluster import connect

        self._connection = connect(self.scheduler)
        self.client = self._connection.__enter__()
        return self

    def __exit__(self, *exc):
        return self._connection.__exit__(*exc)

    def _block_rows(self):
        return range(math.ceil(self.shape[0] / self.chunk))

    def matvec(self, v):
        v_future = self.client.scatter(np.ascontiguousarray(v, dtype=np.float64), broadcast=True)
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
