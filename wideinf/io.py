"""Files in and out: validated input arrays, and atomic writes of every output.

Outputs are written as temporaries and renamed into place only when all of a run's files are
written (:class:`StagedFiles`): a failed or interrupted run leaves the previous results intact.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import ConfigError, WideinfError

__all__ = [
    "existing_file",
    "load_points",
    "ensure_writable_dir",
    "StagedFiles",
    "yaml_bytes",
    "read_npz",
]


def existing_file(path, label: str = "") -> Path:
    """``path`` as a Path, or a ConfigError ``"{label} {path}: ..."`` if missing or a folder."""
    path = Path(path)
    where = f"{label} {path}".lstrip()
    if not path.exists():
        raise ConfigError(f"{where}: no such file")
    if path.is_dir():
        raise ConfigError(f"{where}: is a directory")
    return path


def load_points(path, name: str = "x"):
    """Read an (n, d) float64 array from ``.npy`` or ``.csv`` (one row per point, no header).

    A 1-D array is n points of dimension 1; anything else is a one-line ConfigError.
    """
    import numpy as np

    from .architecture import check_points

    path = existing_file(path, f"{name}:")
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".csv", ".txt"):
        raise ConfigError(f"{name}: {path}: expected a .npy or .csv file")
    try:
        if suffix == ".npy":
            x = np.load(path, allow_pickle=False)
        else:
            x = np.loadtxt(path, delimiter=",", ndmin=2, dtype=float)
    except (ValueError, OSError, EOFError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"{name}: {path}: cannot read as numbers: {reason}") from None
    if x.dtype.kind not in "biuf":
        raise ConfigError(f"{name}: {path}: expected a numeric array, got dtype {x.dtype}")
    return check_points(x, name=f"{name}: {path}", min_points=1)


def ensure_writable_dir(path) -> Path:
    """Create ``path`` if needed and check that files can be written there."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".wideinf-check-"):
            pass
    except OSError as exc:
        raise WideinfError(f"cannot write to output folder {path}: {exc.strerror or exc}") from None
    return path


class StagedFiles:
    """Write several files as temporaries, then rename them all into place at once.

    >>> staged = StagedFiles(out_dir)
    >>> staged.add("run.npz", data)
    >>> staged.commit()   # only now do the final names change
    """

    def __init__(self, directory):
        self.directory = ensure_writable_dir(directory)
        self._pending: list[tuple[Path, Path]] = []

    def add(self, filename: str, data: bytes) -> Path:
        """Stage ``data`` under ``filename``."""
        return self.add_with(filename, lambda fh: fh.write(data))

    def add_npz(self, filename: str, arrays: dict) -> Path:
        """Stage an uncompressed ``.npz`` of ``arrays``, written straight to disk (no copy)."""
        import numpy as np

        return self.add_with(
            filename, lambda fh: np.savez(fh, **{k: np.asarray(v) for k, v in arrays.items()})
        )

    def add_with(self, filename: str, write) -> Path:
        """Stage the file that ``write(binary_file_handle)`` produces."""
        final = self.directory / filename
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=f".{filename}.", suffix=".tmp")
        try:
            mask = os.umask(0)  # reading the umask means setting it: set it back
            os.umask(mask)
            os.fchmod(fd, 0o666 & ~mask)  # mkstemp's 0600 -> what open() would give
            with os.fdopen(fd, "wb") as fh:
                write(fh)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._pending.append((Path(tmp), final))
        return final

    def commit(self) -> list[Path]:
        for tmp, final in self._pending:
            os.replace(tmp, final)
        done, self._pending = [final for _, final in self._pending], []
        return done

    def discard(self) -> None:
        for tmp, _ in self._pending:
            tmp.unlink(missing_ok=True)
        self._pending = []


def yaml_bytes(data: dict) -> bytes:
    import yaml

    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True).encode("utf-8")


def read_npz(path) -> dict:
    """All arrays of a saved result (no pickles)."""
    import numpy as np

    path = existing_file(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (ValueError, OSError, EOFError) as exc:
        raise ConfigError(f"{path}: not a readable .npz file ({exc})") from None
