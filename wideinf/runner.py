"""Run one experiment end to end: config -> run -> figures and files, written atomically."""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass
from pathlib import Path

from . import __version__
from .config import ConfigError, apply_overrides, build, load_yaml, parse_set_option, to_plain
from .experiments import ExperimentSpec, Result, spec_for

__all__ = [
    "shipped_dir",
    "shipped_configs",
    "run_experiment",
    "load_config",
    "redraw",
]


def shipped_dir() -> Path:
    """The folder of shipped configs: inside the installed package, else the source tree's."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "shipped", here.parent / "experiments"):
        if candidate.is_dir() and any(candidate.glob("*.yaml")):
            return candidate
    raise ConfigError("the shipped experiment configs are missing from this installation")


def shipped_configs() -> list[Path]:
    """The shipped configs, sorted by name."""
    return sorted(shipped_dir().glob("*.yaml"))


def resolve_config_path(path) -> Path:
    """A path as given, or the name of a shipped config (with or without ``.yaml``)."""
    p = Path(path)
    if p.exists():
        return p
    for candidate in (shipped_dir() / p.name, shipped_dir() / f"{p.name}.yaml"):
        if candidate.exists():
            return candidate
    raise ConfigError(
        f"{path}: no such file (nor a shipped config of that name; see `wideinf list`)"
    )


def load_config(path, *, quick: bool = False, sets=(), seed=None, expect: str | None = None):
    """Read, override and validate an experiment config.

    Returns ``(spec, config)``. ``sets`` are ``key=value`` strings (values parsed as YAML);
    ``quick`` merges the file's ``quick:`` mapping first; ``expect`` is the command's experiment.
    """
    path = resolve_config_path(path)
    raw = load_yaml(path)
    quick_overrides = raw.pop("quick", None) or {}
    if not isinstance(quick_overrides, dict):
        raise ConfigError(f"{path}: quick: expected a mapping of overrides")
    if quick:
        raw = apply_overrides(raw, quick_overrides)
    raw = apply_overrides(raw, [parse_set_option(s) for s in sets])
    if seed is not None:
        raw["seed"] = seed
    experiment = raw.get("experiment", expect)
    if experiment is None:
        raise ConfigError(
            f"{path}: missing key 'experiment' (one of the commands, e.g. compare-ntk)"
        )
    if expect is not None and experiment != expect:
        raise ConfigError(
            f"{path}: is a config for '{experiment}', not '{expect}'; run it with `wideinf {experiment}`"
        )
    raw["experiment"] = experiment
    raw.setdefault("name", path.stem)
    raw.setdefault("config_dir", str(path.resolve().parent))
    return _build_config(experiment, raw, f"{path}:")


def _build_config(experiment: str, raw: dict, where: str):
    spec = spec_for(experiment)
    module = importlib.import_module(f"wideinf.experiments.{spec.module}")
    return spec, build(module.Config, raw, where)


@dataclass
class RunReport:
    """What a run wrote and what it has to say: its name, files, seconds and report lines."""

    name: str
    files: list[Path]
    seconds: float
    lines: list[str]


def run_experiment(
    spec: ExperimentSpec, config, out_dir, formats=("png", "svg"), quick: bool = False
) -> RunReport:
    """Run, plot and save; nothing in ``out_dir`` changes unless everything succeeded."""
    import numpy as np

    from .io import StagedFiles, ensure_writable_dir, yaml_bytes

    ensure_writable_dir(out_dir)  # fail before a long run, not after
    module = importlib.import_module(f"wideinf.experiments.{spec.module}")
    t0 = time.perf_counter()
    result: Result = module.run(config, np.random.default_rng(config.seed))
    meta = {
        "experiment": spec.command,
        "name": config.name,
        "wideinf_version": __version__,
        "seed": config.seed,
        "quick": quick,
        "timings": {"run_seconds": round(time.perf_counter() - t0, 3)},
        "summary": to_plain(result.summary),
        "warnings": list(result.warnings),
        "config": {k: v for k, v in to_plain(config).items() if k != "config_dir"},
    }
    staged = StagedFiles(out_dir)
    try:
        t1 = time.perf_counter()
        _stage_figures(staged, spec, result, config, formats)
        meta["timings"]["plot_seconds"] = round(time.perf_counter() - t1, 3)
        staged.add_npz(f"{config.name}.npz", result.arrays)
        staged.add(f"{config.name}.yaml", yaml_bytes(meta))
        files = staged.commit()
    finally:
        staged.discard()
    lines = list(getattr(module, "report", lambda r: [])(result))
    lines += [f"warning: {w}" for w in result.warnings]
    return RunReport(config.name, files, time.perf_counter() - t0, lines)


def _stage_figures(staged, spec, result, config, formats):
    from .plotting import figure_bytes, plt

    figures = importlib.import_module(f"wideinf.plotting.{spec.module}").plot(result, config)
    try:
        for suffix, fig in figures.items():
            stem = config.name + (f"_{suffix}" if suffix else "")
            for fmt in formats:
                staged.add(f"{stem}.{fmt}", figure_bytes(fig, fmt))
    finally:
        for fig in figures.values():
            plt.close(fig)


def redraw(npz_path, out_dir=None, formats=("png", "svg")) -> list[Path]:
    """Redraw the figures of a saved result from its ``.npz`` and ``.yaml``, no recompute."""
    from .io import StagedFiles, read_npz

    npz_path = Path(npz_path)
    meta_path = npz_path.with_suffix(".yaml")
    meta = load_yaml(meta_path)
    if "experiment" not in meta or "config" not in meta:
        raise ConfigError(f"{meta_path}: not a wideinf result description (no experiment/config)")
    spec, config = _build_config(meta["experiment"], meta["config"], f"{meta_path}: config:")
    result = Result(read_npz(npz_path), meta.get("summary") or {}, meta.get("warnings") or [])
    staged = StagedFiles(out_dir or npz_path.parent)
    try:
        _stage_figures(staged, spec, result, config, formats)
        return staged.commit()
    finally:
        staged.discard()
