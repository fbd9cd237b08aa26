"""Progress bars: tqdm on a terminal, silent otherwise or under ``--quiet``."""

from __future__ import annotations

_quiet = False

__all__ = ["set_quiet", "progress"]


def set_quiet(quiet: bool) -> None:
    """Turn every progress bar off (``--quiet``)."""
    global _quiet
    _quiet = bool(quiet)


def progress(iterable=None, *, total=None, desc: str = "", leave: bool = False):
    """``tqdm(iterable)`` that is off under ``--quiet`` and when stderr is not a terminal."""
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, leave=leave, disable=True if _quiet else None)
