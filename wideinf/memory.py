"""Memory guards: refuse what the machine cannot hold, before allocating, and block sizes.

Ensembles are processed in blocks of networks whose size depends only on the shapes, never on
the machine, so results are the same everywhere.
"""

from __future__ import annotations

import os

from .errors import ResourceError

__all__ = [
    "BLOCK_BYTES",
    "MEMORY_FRACTION",
    "FLOAT_BYTES",
    "available_memory",
    "check_memory",
    "block_size",
    "network_blocks",
    "working_bytes",
]

# Working memory per block of networks (activations and their derivatives).
BLOCK_BYTES = 256 * 2**20
# Refuse requests above this fraction of the machine's available memory.
MEMORY_FRACTION = 0.8
FLOAT_BYTES = 8  # float64


def available_memory() -> int:
    """Bytes of memory available to a new allocation (``MemAvailable``), 0 if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0


def _gb(nbytes: float) -> str:
    return f"{nbytes / 2**30:.2f} GB" if nbytes >= 2**28 else f"{nbytes / 2**20:.0f} MB"


def check_memory(nbytes: float, what: str) -> None:
    """Raise :class:`ResourceError` if ``nbytes``, the peak memory of ``what`` (named in the
    message), exceeds :data:`MEMORY_FRACTION` of the available memory."""
    avail = available_memory()
    if avail and nbytes > MEMORY_FRACTION * avail:
        raise ResourceError(
            f"{what} needs about {_gb(nbytes)} of memory but this machine has "
            f"{_gb(avail)} available; use a smaller width, fewer networks or fewer points"
        )


def block_size(per_network_bytes: int, n_networks: int) -> int:
    """Networks per block: as many as fit in :data:`BLOCK_BYTES`, at least one."""
    return max(1, min(n_networks, BLOCK_BYTES // max(1, int(per_network_bytes))))


def network_blocks(n_networks: int, per_network_bytes: int) -> list[slice]:
    """Consecutive slices of the ensemble, each of :func:`block_size` networks (the last fewer)."""
    step = block_size(per_network_bytes, n_networks)
    return [slice(start, min(n_networks, start + step)) for start in range(0, n_networks, step)]


def working_bytes(dims, n_points: int) -> int:
    """Bytes of a forward and backward pass of one network on N = ``n_points`` inputs.

    ``4 N sum(dims)`` floats (each layer's input, pre-activation, phi' and delta), with dims the
    layer sizes ``(d, n_1, ..., n_L, 1)``.
    """
    return 4 * n_points * sum(dims) * FLOAT_BYTES
