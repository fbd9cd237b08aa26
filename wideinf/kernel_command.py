"""`wideinf kernel`: kernels of an architecture on a user's own points, as .npz or .zarr."""

from __future__ import annotations

from pathlib import Path

from .errors import ConfigError, ResourceError

__all__ = ["compute_and_save"]

# Share of the available memory a run may plan to use (kernel and predict commands alike).
_MEMORY_SHARE = 0.8


def compute_and_save(
    arch_path,
    x1_path,
    x2_path,
    out_path,
    float32: bool = False,
    *,
    chunk: int = 4096,
    scheduler: str | None = None,
    resume: bool = False,
):
    """Compute ``nngp`` and ``ntk`` (n1, n2) and write them atomically to ``out_path``.

    ``.npz``: in memory (checked to fit first); ``.zarr``: block by block on Dask
    (:func:`wideinf.scale.chunked_kernel`). Returns the shape (n1, n2).
    """
    import numpy as np

    from .architecture import Architecture
    from .io import StagedFiles, load_points
    from .networks import available_memory

    out_path = Path(out_path)
    if out_path.suffix not in (".npz", ".zarr"):
        raise ConfigError(f"--out {out_path}: expected a name ending in .npz or .zarr")
    if out_path.suffix == ".npz" and (scheduler or resume):
        raise ConfigError("--scheduler and --resume apply to a .zarr output only")
    arch = Architecture.from_yaml(arch_path)
    x1 = load_points(x1_path, "--x1")
    x2 = None if x2_path is None else load_points(x2_path, "--x2")
    if x2 is not None and x2.shape[1] != x1.shape[1]:
        raise ConfigError(f"--x1 has {x1.shape[1]} input dimension(s) but --x2 has {x2.shape[1]}")
    dtype = np.float32 if float32 else np.float64
    shape = (x1.shape[0], x1.shape[0] if x2 is None else x2.shape[0])
    if out_path.suffix == ".zarr":
        from .scale import chunked_kernel

        chunked_kernel(
            arch, x1, x2, out_path, chunk=chunk, dtype=dtype, scheduler=scheduler, resume=resume
        )
        return shape
    need, have = 2 * shape[0] * shape[1] * np.dtype(dtype).itemsize, available_memory()
    if have and need > _MEMORY_SHARE * have:  # refuse before allocating the two (n1, n2) outputs
        raise ResourceError(
            f"the nngp and ntk kernels ({shape[0]} x {shape[1]}) need {need / 1e9:.1f} GB but "
            f"{have / 1e9:.1f} GB of memory are available; write them to disk block by block "
            "with --out K.zarr (pip install 'wideinf[scale]')"
        )
    k = arch.kernel(x1, x2, dtype=dtype)
    staged = StagedFiles(out_path.parent)
    try:
        arrays = {name: getattr(k, name).astype(dtype, copy=False) for name in ("nngp", "ntk")}
        staged.add_npz(out_path.name, arrays)
        staged.commit()
    finally:
        staged.discard()
    return shape
