"""Several experiments in one go (`wideinf run`, `wideinf all`), and the shipped list."""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from .errors import WideinfError

__all__ = ["run_many", "describe_shipped"]


def describe_shipped() -> list[str]:
    """One line per shipped config: file name, command and description."""
    from .config import load_yaml
    from .runner import shipped_configs

    lines = []
    for path in shipped_configs():
        raw = load_yaml(path)
        text = str(raw.get("description", "")).strip().splitlines()
        lines.append(f"{path.stem:<28} {raw.get('experiment', '?'):<14} {text[0] if text else ''}")
    return lines


def _run_in_process(path, out, seed, quick, formats, sets, quiet):
    """Run one config; returns (name, status, seconds, files, message)."""
    from .progress import set_quiet
    from .runner import load_config, run_experiment

    set_quiet(quiet)
    t0 = time.perf_counter()
    name = Path(path).stem
    try:
        spec, config = load_config(path, quick=quick, sets=sets, seed=seed)
        name = config.name
        report = run_experiment(spec, config, out, formats, quick=quick)
        return name, "ok", time.perf_counter() - t0, len(report.files), "\n".join(report.lines)
    except Exception as exc:  # keep going past one broken experiment, and say what broke
        message = str(exc) if isinstance(exc, WideinfError) else f"{type(exc).__name__}: {exc}"
        message = "out of memory" if isinstance(exc, MemoryError) else message
        return name, "failed", time.perf_counter() - t0, 0, message


def run_many(
    paths, *, out, seed, quick, formats, sets, quiet, jobs, echo, scheduler=None
) -> list[str]:
    """Run every config, continue past failures, print a table; return the failed names.

    With ``scheduler`` (a Dask scheduler address) every experiment is a task on the cluster's
    workers, which must see ``out`` on a shared file system.
    """
    parallel = bool(scheduler) or (jobs > 1 and len(paths) > 1)
    args = (out, seed, quick, formats, sets, quiet or parallel)
    rows = []
    with _submitter(scheduler, jobs if parallel else 1) as submit:
        for result in [submit(_run_in_process, p, *args) for p in paths]:
            rows.append(result())
            name, status, _, _, message = rows[-1]
            if status != "ok" or message:
                echo(f"{name}: FAILED: {message}" if status != "ok" else message)
    echo("")
    echo(f"{'experiment':<28} {'status':<7} {'time':>8} {'files':>5}")
    for name, status, seconds, n_files, _ in rows:
        echo(f"{name:<28} {status:<7} {seconds:>7.1f}s {n_files:>5}")
    failed = [r[0] for r in rows if r[1] != "ok"]
    echo(f"{len(rows) - len(failed)} ok, {len(failed)} failed; outputs in {out}/")
    return failed


@contextmanager
def _submitter(scheduler, jobs: int):
    """``submit(fn, *args)`` -> a function that waits for ``fn(*args)``: on Dask, in processes,
    or serially (run when waited for)."""
    if scheduler:
        from .scale import connect

        with connect(scheduler) as client:
            yield lambda fn, *args: client.submit(fn, *args, pure=False).result
    elif jobs > 1:
        with ProcessPoolExecutor(max_workers=jobs, initializer=_blas_threads_per_process) as pool:
            yield lambda fn, *args: pool.submit(fn, *args).result
    else:
        yield lambda fn, *args: lambda: fn(*args)


def _blas_threads_per_process():
    """Several experiments side by side: one BLAS thread each, or the threads fight for cores."""
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
