"""Connecting to Dask: a local cluster on every core, or a running scheduler by address."""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager

from ..errors import ConfigError

__all__ = ["require", "connect", "CONNECT_TIMEOUT"]

# Seconds to wait for a named scheduler before giving up with one line.
CONNECT_TIMEOUT = 8

_INSTALL = "pip install 'wideinf[scale]'"


def require() -> None:
    """Raise a one-line ConfigError naming the extra to install if dask or zarr is missing."""
    missing = []
    for module in ("dask", "distributed", "zarr"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise ConfigError(
            f"chunked kernels need {', '.join(missing)}, which are not installed: {_INSTALL}"
        )


def scheduler_address(address: str | None = None) -> str | None:
    """The scheduler to use: ``address``, else ``DASK_SCHEDULER_ADDRESS``, else None (local)."""
    return address or os.environ.get("DASK_SCHEDULER_ADDRESS") or None


@contextmanager
def connect(address: str | None = None, n_workers: int | None = None):
    """A ``distributed.Client``: to the scheduler at ``address`` or a fresh local cluster.

    The local cluster has one single-threaded worker process per core (``n_workers`` to
    choose), so each task's BLAS and kernel tiles run on one core and the workers share the
    machine without oversubscribing it.
    """
    require()
    from distributed import Client, LocalCluster

    address = scheduler_address(address)
    if address:
        try:
            client = Client(address, timeout=f"{CONNECT_TIMEOUT}s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise ConfigError(
                f"cannot reach the Dask scheduler at {address} within {CONNECT_TIMEOUT} s "
                f"({type(exc).__name__}); check --scheduler or DASK_SCHEDULER_ADDRESS"
            ) from None
        with client:
            yield client
        return
    n = n_workers or _cores()
    cluster = LocalCluster(
        n_workers=n,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        silence_logs=logging.ERROR,
    )
    with cluster, Client(cluster) as client:
        yield client


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)
