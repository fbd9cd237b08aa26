"""Kernels and kernel regression past one machine's memory: Dask tasks over Zarr stores.

The only package that imports dask, distributed or zarr, and only when one of its functions
is called; install them with ``pip install 'wideinf[scale]'``.

- :func:`chunked_kernel`: the NNGP and NTK of an architecture, block by block as Dask tasks,
  streamed into a Zarr store (``nngp`` and ``ntk``), resumable.
- :func:`solve`, :func:`cross_multiply`: kernel regression ``(K + lambda I) a = y`` by
  preconditioned conjugate gradients whose products run block-wise on the workers.
- :func:`connect`: a Dask client, local (every core, one BLAS thread per worker) or on a
  running cluster (``--scheduler`` or ``DASK_SCHEDULER_ADDRESS``).
"""

from .chunked import chunked_kernel
from .cluster import connect, require
from .solve import CGInfo, cross_multiply, pcg, solve
from .store import is_store, read_meta

__all__ = [
    "chunked_kernel",
    "connect",
    "require",
    "solve",
    "cross_multiply",
    "pcg",
    "CGInfo",
    "is_store",
    "read_meta",
]
