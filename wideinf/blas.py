"""BLAS on the calling thread only, for code whose matrix products are small."""

from __future__ import annotations

import contextlib
from functools import cache

__all__ = ["one_blas_thread"]


@cache
def _controller():
    import scipy.linalg  # noqa: F401  (loads scipy's own BLAS, so that the limit covers it)

    try:  # threadpoolctl comes with scikit-learn
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover
        return None
    return ThreadpoolController()


def one_blas_thread():
    """A context in which BLAS uses one thread: for products of a few hundred rows, where a
    second thread costs more in synchronisation than it saves (10 to 15 times the CPU time,
    measured on a loaded 2-core machine). No limit where threadpoolctl is missing."""
    controller = _controller()
    if controller is None:
        return contextlib.nullcontext()
    return controller.limit(limits=1, user_api="blas")
