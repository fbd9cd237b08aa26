"""`wideinf kernel`: kernels of an architecture on a user's own points, saved as .npz."""

from __future__ import annotations

from pathlib import Path

from .errors import ConfigError

__all__ = ["compute_and_save"]


def compute_and_save(arch_path, x1_path, x2_path, out_path, float32: bool = False):
    """Compute ``nngp`` and ``ntk`` (n1, n2) and write them atomically to ``out_path``.

    Returns the shape (n1, n2) and the kernel's warnings (:attr:`wideinf.kernels.Kernel.warnings`:
    activations evaluated outside the range where their stated accuracy holds).
    """
    import numpy as np

    from .architecture import Architecture
    from .io import StagedFiles, load_points

    arch = Architecture.from_yaml(arch_path)
    x1 = load_points(x1_path, "--x1")
    x2 = None if x2_path is None else load_points(x2_path, "--x2")
    if x2 is not None and x2.shape[1] != x1.shape[1]:
        raise ConfigError(f"--x1 has {x1.shape[1]} input dimension(s) but --x2 has {x2.shape[1]}")
    dtype = np.float32 if float32 else np.float64
    k = arch.kernel(x1, x2, dtype=dtype)
    out_path = Path(out_path)
    if out_path.suffix != ".npz":
        raise ConfigError(f"--out {out_path}: expected a file name ending in .npz")
    staged = StagedFiles(out_path.parent if str(out_path.parent) else ".")
    try:
        staged.add_npz(
            out_path.name,
            {"nngp": k.nngp.astype(dtype, copy=False), "ntk": k.ntk.astype(dtype, copy=False)},
        )
        staged.commit()
    finally:
        staged.discard()
    return k.nngp.shape, k.warnings
