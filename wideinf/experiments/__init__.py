"""The experiment registry: what each command runs, its default config and its options.

This module imports nothing heavy, so ``wideinf --help`` and ``wideinf list`` stay fast. An
experiment module ``wideinf.experiments.<module>`` provides

- ``Config``: a frozen dataclass subclassing :class:`wideinf.config.ExperimentConfig`;
- ``run(config, rng) -> Result``: arrays only, no I/O, no plotting;
- ``report(result) -> list[str]``: the lines printed after a run (optional);

and ``wideinf.plotting.<module>`` provides ``plot(result, config) -> dict[str, Figure]``, where
the key ``""`` is the main figure ``<name>.png`` and any other key ``k`` is ``<name>_<k>.png``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Result", "CliOption", "ExperimentSpec", "EXPERIMENTS", "spec_for"]


@dataclass
class Result:
    """What an experiment computed."""

    # Every array a figure shows; saved as ``<name>.npz`` (names are the commands' contract).
    arrays: dict[str, Any]
    # Scalars worth printing and keeping (saved in ``<name>.yaml``).
    summary: dict[str, Any] = field(default_factory=dict)
    # Things the user should know (e.g. a network that missed its loss tolerance).
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class CliOption:
    """A command-specific option that sets a config key (``--widths 4 500 inf`` -> widths)."""

    flag: str
    key: str
    help: str
    multiple: bool = False  # takes several values after one flag


@dataclass(frozen=True)
class ExperimentSpec:
    command: str
    module: str
    default_config: str
    summary: str
    example: str
    options: tuple[CliOption, ...] = ()


def _spec(command: str, config: str, summary: str, example: str, widths: str = ""):
    """The spec of ``command`` (module: its name with underscores); ``widths`` is an example of
    its ``--widths`` option, which it has only if given."""
    options = (CliOption("--widths", "widths", f"hidden widths, e.g. {widths}", multiple=True),)
    module = command.replace("-", "_")
    return ExperimentSpec(command, module, config, summary, example, options if widths else ())


EXPERIMENTS: dict[str, ExperimentSpec] = {
    spec.command: spec
    for spec in (
        _spec(
            "nngp-samples",
            "fig1_gabor_relu.yaml",
            "Random output functions at finite and infinite width (blog Figure 1).",
            "wideinf nngp-samples --widths 4 500 inf",
            "4 500 inf",
        ),
        _spec(
            "compare-ntk",
            "fig2_nngp_vs_ntk.yaml",
            "NNGP posterior vs NTK ensemble vs trained finite networks (blog Figure 2).",
            "wideinf compare-ntk experiments/fig2_nngp_vs_ntk.yaml",
        ),
        _spec(
            "generalize",
            "ensemble_prior_4point.yaml",
            "4-point 2-D fits across widths and seeds against the infinite-width limits.",
            "wideinf generalize experiments/ensemble_prior_4point.yaml --quick",
            "8 64 512",
        ),
        _spec(
            "features",
            "ensemble_prior_features.yaml",
            "Perfect vs random features under min-norm regression (essay's toy model).",
            "wideinf features experiments/ensemble_prior_features.yaml",
        ),
        _spec(
            "convergence",
            "kernel_convergence.yaml",
            "Empirical kernels and training converge to the limit at O(n^-1/2); lazy training.",
            "wideinf convergence experiments/kernel_convergence.yaml --quick",
            "64 256 1024",
        ),
        _spec(
            "ntk-circle",
            "ntk_circle.yaml",
            "The NTK of finite networks on the unit circle, before and after training (Jacot et al.).",
            "wideinf ntk-circle --quick --widths 64 512",
            "500 10000",
        ),
        _spec(
            "depth",
            "depth_phase.yaml",
            "Signal propagation with depth: order-to-chaos phase diagram, depth scales, accuracy.",
            "wideinf depth experiments/depth_phase.yaml --quick",
        ),
        _spec(
            "benchmark",
            "benchmark_small_data.yaml",
            "Real data: infinite-width NNGP/NTK vs finite MLPs vs standard learners.",
            "wideinf benchmark experiments/benchmark_small_data.yaml --quick",
        ),
    )
}


def spec_for(experiment: str) -> ExperimentSpec:
    """The spec of an experiment by its ``experiment:`` name (a ConfigError if unknown)."""
    from ..config import ConfigError, _did_you_mean

    valid = ", ".join(EXPERIMENTS)
    if not isinstance(experiment, str):
        raise ConfigError(f"experiment: expected a command name ({valid}), got {experiment!r}")
    if experiment not in EXPERIMENTS:
        hint = _did_you_mean(experiment, EXPERIMENTS)
        raise ConfigError(f"unknown experiment {experiment!r}{hint}; valid: {valid}")
    return EXPERIMENTS[experiment]
