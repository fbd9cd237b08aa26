"""The command line: a thin click shell over the library. The only module that imports click.

Every command parses its options, calls one library function and turns library errors into a
one-line message with exit code 2.
"""

from __future__ import annotations

import functools
import math
import sys
import time
from pathlib import Path

import click

from . import __version__
from .errors import WideinfError
from .experiments import EXPERIMENTS

# ----------------------------------------------------------------------------- helpers


class MultiValueOption(click.Option):
    """An option that takes every following value up to the next option: ``--widths 4 500 inf``."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("multiple", True)
        super().__init__(*args, **kwargs)

    def add_to_parser(self, parser, ctx):
        super().add_to_parser(parser, ctx)
        for name in self.opts:
            opt = parser._long_opt.get(name) or parser._short_opt.get(name)
            if opt is None:
                continue
            original = opt.process

            def process(value, state, original=original):
                original(value, state)
                while state.rargs and _is_value(state.rargs[0]):
                    original(state.rargs.pop(0), state)

            opt.process = process


def _is_value(token: str) -> bool:
    """True for the tokens a multi-value option keeps eating: not options, not config files."""
    if token.startswith("-"):
        try:
            float(token)
        except ValueError:
            return False
        return True
    return not token.lower().endswith((".yaml", ".yml"))


def fail_cleanly(func):
    """Turn wideinf errors, Ctrl-C and memory errors into one line and a non-zero exit."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except WideinfError as exc:
            raise click.ClickException(str(exc)) from None
        except MemoryError:
            raise click.ClickException(
                "out of memory; reduce the widths, sample counts or points (see --quick)"
            ) from None
        except KeyboardInterrupt:
            click.echo("interrupted; earlier outputs are unchanged", err=True)
            sys.exit(130)

    return wrapper


click.ClickException.exit_code = 2


format_option = click.option(
    "--format",
    "formats",
    cls=MultiValueOption,
    type=click.Choice(["png", "svg", "pdf"]),
    help="Figure formats, e.g. --format png svg (default: png svg).",
)


float32_option = click.option(
    "--float32",
    "float32",
    is_flag=True,
    help="Compute and store the kernels in float32 (faster, ~1e-6 relative).",
)


def common_options(func):
    """--out, --seed, --quick, --format, --set and --quiet, shared by every experiment command."""
    options = [
        click.option(
            "--out",
            "out",
            type=click.Path(file_okay=False),
            default="figures",
            show_default=True,
            help="Folder for the figures and result files.",
        ),
        click.option(
            "--seed",
            type=click.IntRange(0, 2**32 - 1),
            default=None,
            help="Random seed (overrides the config's seed).",
        ),
        click.option("--quick", is_flag=True, help="Apply the config's small `quick:` settings."),
        format_option,
        click.option(
            "--set",
            "sets",
            multiple=True,
            metavar="KEY=VALUE",
            help="Override a config key; VALUE is YAML, e.g. --set ensemble.size=8.",
        ),
        click.option("--quiet", "-q", is_flag=True, help="No progress bars."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _run_one(spec, config_path, out, seed, quick, formats, sets, quiet, extra_sets=()):
    from .progress import set_quiet
    from .runner import load_config, run_experiment

    set_quiet(quiet)
    spec, config = load_config(
        config_path,
        quick=quick,
        sets=tuple(sets) + tuple(extra_sets),
        seed=seed,
        expect=spec.command if spec else None,
    )
    report = run_experiment(spec, config, out, formats or ("png", "svg"), quick=quick)
    for line in report.lines:
        click.echo(line)
    click.echo(f"{report.name}: {len(report.files)} files in {out}/ ({report.seconds:.1f} s)")
    return report


# ----------------------------------------------------------------------------- the group


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="wideinf")
def main():
    """Exact infinite-width NNGP and NTK kernels of MLPs, finite networks beside them, and the
    figures that compare the two.

    \b
    Example:
      wideinf all --quick          # regenerate every shipped figure, small and fast
      wideinf list                 # the shipped experiments
    """


def _experiment_command(spec):
    def command(config, out, seed, quick, formats, sets, quiet, **extra):
        extra_sets = []
        for option in spec.options:
            values = extra.get(option.key)
            if values:
                extra_sets.append(f"{option.key}=[{', '.join(values)}]")
        _run_one(
            spec, config or spec.default_config, out, seed, quick, formats, sets, quiet, extra_sets
        )

    command.__doc__ = (
        f"{spec.summary}\n\nCONFIG is a YAML file or a shipped config name (default: "
        f"{spec.default_config}).\n\n\b\nExample:\n  {spec.example}"
    )
    command = fail_cleanly(command)
    for option in spec.options:
        command = click.option(option.flag, option.key, cls=MultiValueOption, help=option.help)(
            command
        )
    command = common_options(command)
    command = click.argument("config", required=False, type=click.Path(dir_okay=False))(command)
    return main.command(spec.command)(command)


for _spec in EXPERIMENTS.values():
    _experiment_command(_spec)


# ----------------------------------------------------------------------------- kernel


@main.command("kernel")
@click.argument("arch", type=click.Path(dir_okay=False))
@click.option(
    "--x1",
    "x1",
    required=True,
    type=click.Path(dir_okay=False),
    help="Points as .npy or .csv, one row per point.",
)
@click.option(
    "--x2", "x2", type=click.Path(dir_okay=False), help="Second set of points (default: x1)."
)
@click.option(
    "--out",
    "out",
    default="K.npz",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="Output .npz with arrays nngp and ntk, each (n1, n2).",
)
@float32_option
@fail_cleanly
def kernel_command(arch, x1, x2, out, float32):
    """Exact NNGP and NTK of an architecture on your own points.

    ARCH is a YAML file with a top-level `architecture:` block (an experiment config works too).

    \b
    Example:
      wideinf kernel experiments/fig1_gabor_relu.yaml --x1 points.npy --out K.npz
    """
    from .kernel_command import compute_and_save

    t0 = time.perf_counter()
    shapes = compute_and_save(arch, x1, x2, out, float32=float32)
    click.echo(
        f"{out}: nngp and ntk of shape {shapes[0]}x{shapes[1]} in {time.perf_counter() - t0:.2f} s"
    )


# ----------------------------------------------------------------------------- predict


@main.command("predict")
@click.argument("arch", type=click.Path(dir_okay=False))
@click.option(
    "--train",
    "train",
    required=True,
    type=click.Path(dir_okay=False),
    help="Training table: CSV with a header row, .npy or .npz.",
)
@click.option("--test", "test", required=True, type=click.Path(dir_okay=False), help="Test table.")
@click.option("--target", required=True, help="The target column of the training table.")
@click.option(
    "--out",
    default="predictions.csv",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="Output CSV, one row per test row; a YAML of the same name goes beside it.",
)
@click.option(
    "--kernel",
    type=click.Choice(["nngp", "ntk", "ntk-gp"]),
    default="nngp",
    show_default=True,
    help="NNGP posterior, NTK ensemble (trained networks), or NTK-GP.",
)
@click.option(
    "--time",
    "time_",
    type=click.FloatRange(min=0),
    default=math.inf,
    help="Training time t of the NTK ensemble (steps x learning rate; default inf).",
)
@click.option(
    "--diag-reg",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Added to the train-train matrix's diagonal, relative to its mean diagonal.",
)
@click.option(
    "--task",
    type=click.Choice(["regression", "classification"]),
    help="Default: inferred from the target column (and printed).",
)
@click.option(
    "--fit",
    "fit",
    cls=MultiValueOption,
    type=click.Choice(["W_std", "b_std", "noise"]),
    help="Fit these by marginal likelihood first, e.g. --fit W_std b_std noise.",
)
@click.option(
    "--features",
    "features",
    cls=MultiValueOption,
    help="Feature columns (default: every column but the target).",
)
@click.option(
    "--no-standardize",
    "no_std",
    is_flag=True,
    help="Use features (and regression targets) as given, not standardized.",
)
@float32_option
@fail_cleanly
def predict_command(
    arch, train, test, target, out, kernel, time_, diag_reg, task, fit, features,
    no_std, float32,
):  # fmt: skip
    """Predictions of an infinitely wide network trained on your own table.

    ARCH is a YAML file with a top-level `architecture:` block. Regression writes the mean,
    sd and 95% band of f per test row; classification (one-hot targets -0.1/0.9) the
    predicted class and per-class scores. OUT.yaml records the hyperparameters, the log
    marginal likelihood (NNGP and NTK-GP), the fit to the training data and timings.

    \b
    Example:
      wideinf predict arch.yaml --train train.csv --test test.csv --target y --out pred.csv
      wideinf predict arch.yaml --train train.csv --test test.csv --target label \\
          --kernel ntk --fit W_std b_std --out pred.csv
    """
    from .predict_command import PredictOptions, run_predict

    fit, features = tuple(fit or ()), tuple(features or ())
    options = PredictOptions(kernel, time_, diag_reg, task, fit, float32, features, not no_std)
    run_predict(arch, train, test, target, out, options, echo=click.echo)


# ----------------------------------------------------------------------------- batch commands


@main.command("run")
@click.argument("configs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@common_options
@fail_cleanly
def run_command(configs, out, seed, quick, formats, sets, quiet):
    """Run one or more configs, each by its `experiment:` key.

    \b
    Example:
      wideinf run experiments/fig1_gabor_relu.yaml experiments/fig2_nngp_vs_ntk.yaml --quick
    """
    from .batch import run_many

    failures = run_many(
        configs,
        out=out,
        seed=seed,
        quick=quick,
        formats=formats or ("png", "svg"),
        sets=sets,
        quiet=quiet,
        jobs=1,
        echo=click.echo,
    )
    if failures:
        sys.exit(1)


@main.command("all")
@click.option(
    "--out",
    default="figures",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder for every figure and result file.",
)
@click.option("--quick", is_flag=True, help="Small, fast versions (for tests and CI).")
@click.option(
    "--jobs",
    "-j",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Experiments run side by side.",
)
@format_option
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@fail_cleanly
def all_command(out, quick, jobs, formats, quiet):
    """Regenerate every shipped experiment; goes on past a failure and ends with a table.

    \b
    Example:
      wideinf all                 # full quality into figures/
      wideinf all --quick --out /tmp/figs --jobs 2
    """
    from .batch import run_many
    from .runner import shipped_configs

    failures = run_many(
        [str(p) for p in shipped_configs()],
        out=out,
        seed=None,
        quick=quick,
        formats=formats or ("png", "svg"),
        sets=(),
        quiet=quiet,
        jobs=jobs,
        echo=click.echo,
    )
    if failures:
        sys.exit(1)


@main.command("list")
@fail_cleanly
def list_command():
    """The shipped experiments, one line each.

    \b
    Example:
      wideinf list
    """
    from .batch import describe_shipped

    for line in describe_shipped():
        click.echo(line)


@main.command("plot")
@click.argument("result", type=click.Path(dir_okay=False))
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    help="Folder for the figures (default: beside RESULT).",
)
@format_option
@fail_cleanly
def plot_command(result, out, formats):
    """Redraw a figure from saved results (RESULT.npz and its .yaml), with no recompute.

    \b
    Example:
      wideinf plot figures/fig1_gabor_relu.npz --out /tmp/redrawn
    """
    from .runner import redraw

    files = redraw(result, out, formats or ("png", "svg"))
    click.echo(f"{len(files)} files: " + ", ".join(str(Path(f)) for f in files))


if __name__ == "__main__":  # pragma: no cover
    main()
