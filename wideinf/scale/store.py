"""The on-disk kernel store: a Zarr group with arrays ``nngp`` and ``ntk`` and its metadata.

Layout of ``K.zarr`` (a directory):

- ``nngp``, ``ntk``: (n1, n2) arrays in square chunks of ``chunk`` rows, uncompressed (kernel
  entries do not compress, and fixed-size chunks make the size known before starting);
- group attribute ``wideinf``: version, architecture, dtype, chunk, shape, symmetric, complete;
- ``.wideinf-blocks/I_J``: an empty file per finished block, written after both arrays'
  chunks, so an interrupted store can be resumed without recomputing finished blocks.

A run writes to the hidden sibling ``.K.zarr.partial`` and renames it to ``K.zarr`` only when
every block is done, so a failed run never leaves a half-written store at the output path.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..errors import ConfigError, ResourceError

__all__ = [
    "partial_path",
    "is_store",
    "read_meta",
    "check_output",
    "check_disk",
    "create",
    "open_arrays",
    "done_blocks",
    "mark_done",
    "finalize",
]

ATTRIBUTE = "wideinf"
MARKERS = ".wideinf-blocks"
ARRAYS = ("nngp", "ntk")


def partial_path(out: Path) -> Path:
    """Where a store is written before it is complete: ``.NAME.partial`` beside ``out``."""
    return out.with_name(f".{out.name}.partial")


def read_meta(path) -> dict | None:
    """The ``wideinf`` attribute of a store, or None if ``path`` is not a wideinf store."""
    meta_file = Path(path) / "zarr.json"
    try:
        meta = json.loads(meta_file.read_text())
    except (OSError, ValueError):
        return None
    attrs = meta.get("attributes") if isinstance(meta, dict) else None
    value = attrs.get(ATTRIBUTE) if isinstance(attrs, dict) else None
    return value if isinstance(value, dict) else None


def is_store(path) -> bool:
    """True when ``path`` is a wideinf kernel store (complete or not)."""
    return read_meta(path) is not None


def check_output(out: Path) -> None:
    """Refuse to replace anything at ``out`` but an earlier wideinf store."""
    if out.suffix != ".zarr":
        raise ConfigError(f"--out {out}: a chunked kernel store must end in .zarr")
    if out.exists() and not is_store(out):
        raise ConfigError(
            f"--out {out}: exists and is not a wideinf kernel store; choose another name"
        )


def check_disk(directory: Path, nbytes: int) -> None:
    """Fail before starting if the disk holding ``directory`` has less than ``nbytes`` free."""
    directory.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(directory).free
    if free < nbytes:
        raise ResourceError(
            f"the kernel store needs {nbytes / 1e9:.2f} GB but {directory} has only "
            f"{free / 1e9:.2f} GB free; use --float32 to halve it, or another --out disk"
        )


def create(path: Path, shape: tuple[int, int], chunk: int, dtype, meta: dict) -> None:
    """A new, empty store at ``path`` (replacing any partial one there)."""
    import zarr

    if path.exists():
        shutil.rmtree(path)
    group = zarr.open_group(str(path), mode="w")
    for name in ARRAYS:
        group.create_array(
            name, shape=shape, chunks=(chunk, chunk), dtype=dtype, compressors=None, fill_value=0
        )
    group.attrs[ATTRIBUTE] = {**meta, "complete": False}
    (path / MARKERS).mkdir()


def open_arrays(path, mode: str = "r"):
    """The store's ``(nngp, ntk)`` Zarr arrays."""
    import zarr

    group = zarr.open_group(str(path), mode=mode)
    return tuple(group[name] for name in ARRAYS)


def done_blocks(path: Path) -> set[tuple[int, int]]:
    """The blocks ``(i, j)`` already finished in a partial store."""
    folder = path / MARKERS
    if not folder.is_dir():
        return set()
    done = set()
    for marker in folder.iterdir():
        i, _, j = marker.name.partition("_")
        if i.isdigit() and j.isdigit():
            done.add((int(i), int(j)))
    return done


def mark_done(path, i: int, j: int) -> None:
    """Record block (i, j) as finished (after its chunks are written)."""
    (Path(path) / MARKERS / f"{i}_{j}").touch()


def finalize(partial: Path, out: Path) -> None:
    """Mark the store complete and move it to ``out``, replacing an earlier store there."""
    import zarr

    group = zarr.open_group(str(partial), mode="r+")
    group.attrs[ATTRIBUTE] = {**group.attrs[ATTRIBUTE], "complete": True}
    shutil.rmtree(partial / MARKERS)
    old = out.with_name(f".{out.name}.old")
    if out.exists():
        if old.exists():
            shutil.rmtree(old)
        out.rename(old)
    partial.rename(out)
    if old.exists():
        shutil.rmtree(old)
