"""The command line: a thin click shell over the library. The only module that imports click.

Every command parses its options, calls one library function and turns library errors into a
one-line message with exit code 2.
"""

from __future__ import annotations

import functools
import math
import sys
import time

import click

from . import __version__
from .errors import WideinfError
from .experiments import EXPERIMENTS

# ----------------------------------------------------------------------------- helpers


class MultiValueOption(click.Option):
    """An option that takes several values after one flag: ``--widths 4 500 inf``.

    After its first value the option keeps taking the next tokens while they look like its
    values (``accepts``; by default the choices of a ``click.Choice``, else numbers and
    ``inf``), so an argument after the values, such as a config file or a shipped config name
    (``--widths 8 64 ensemble_prior_4point``), is left to the argument.
    """

    def __init__(self, *args, accepts=None, **kwargs):
        kwargs.setdefault("multiple", True)
        super().__init__(*args, **kwargs)
        if accepts is None and isinstance(self.type, click.Choice):
            accepts = self.type.choices.__contains__
        self.accepts = accepts or _is_number

    def add_to_parser(self, parser, ctx):
        super().add_to_parser(parser, ctx)
        for name in self.opts:
            opt = parser._long_opt.get(name) or parser._short_opt.get(name)  # registered above
            original = opt.process

            def process(value, state, original=original):
                original(value, state)
                while state.rargs and self.accepts(state.rargs[0]):
                    original(state.rargs.pop(0), state)

            opt.process = process


def _is_number(token: str) -> bool:
    """True for a number or an infinity as YAML writes it (``inf``, ``.inf``, ``infinity``)."""
    try:
        float(token)
    except ValueError:
        return token.strip().lower().lstrip("+") in (".inf", "inf", "infinity")
    return True


click.ClickException.exit_code = 2

_FILE = click.Path(dir_okay=False)

format_option = click.option(
    "--format", "formats", cls=MultiValueOption, type=click.Choice(["png", "svg", "pdf"]),
    default=("png", "svg"), help="Figure formats, e.g. --format png svg (default: png svg).",
)  # fmt: skip
float32_option = click.option(
    "--float32",
    is_flag=True,
    help="Compute and store the kernels in float32: faster, half the memory. Measured error "
    "against float64, largest difference relative to the largest entry: up to 5e-7 on "
    "scattered points; on nearly parallel points (a dense 1-D grid) up to 5e-6 for the NNGP "
    "and 8e-4 for the NTK of networks with a ReLU.",
)
out_option = click.option(
    "--out", type=click.Path(file_okay=False), default="figures", show_default=True,
    help="Folder for the figures and result files.",
)  # fmt: skip
quick_option = click.option(
    "--quick", is_flag=True, help="Apply each config's small `quick:` settings (tests, CI)."
)
quiet_option = click.option("--quiet", "-q", is_flag=True, help="No progress bars.")


def scheduler_option(help: str):
    return click.option("--scheduler", metavar="ADDRESS", default=None, help=help)


def _stack(*decorators):
    """One decorator applying ``decorators`` as if written one above the other."""

    def apply(func):
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return apply


# --out, --seed, --quick, --format, --set and --quiet, shared by every experiment command.
common_options = _stack(
    out_option,
    click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=None,
                 help="Random seed (overrides the config's seed)."),
    quick_option,
    format_option,
    click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
                 help="Override a config key; VALUE is YAML, e.g. --set ensemble.size=8."),
    quiet_option,
)  # fmt: skip


def _run_one(spec, config_path, out, seed, quick, formats, sets, quiet, extra_sets=()):
    from .progress import set_quiet
    from .runner import load_config, run_experiment

    set_quiet(quiet)
    sets = tuple(sets) + tuple(extra_sets)
    spec, config = load_config(config_path, quick=quick, sets=sets, seed=seed, expect=spec.command)
    report = run_experiment(spec, config, out, formats, quick=quick)
    for line in report.lines:
        click.echo(line)
    click.echo(f"{report.name}: {len(report.files)} files in {out}/ ({report.seconds:.1f} s)")


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


def command(name: str):
    """``@main.command(name)`` whose errors, Ctrl-C included, end as one line and an exit code."""

    def decorate(func):
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

        return main.command(name)(wrapper)

    return decorate


def _experiment_command(spec):
    def run(config, out, seed, quick, formats, sets, quiet, **extra):
        extra_sets = [f"{o.key}=[{', '.join(extra[o.key])}]" for o in spec.options if extra[o.key]]
        _run_one(
            spec, config or spec.default_config, out, seed, quick, formats, sets, quiet, extra_sets
        )

    run.__doc__ = (
        f"{spec.summary}\n\nCONFIG is a YAML file or a shipped config name (default: "
        f"{spec.default_config}).\n\n\b\nExample:\n  {spec.example}"
    )
    options = [click.option(o.flag, o.key, cls=MultiValueOption, help=o.help) for o in spec.options]
    config_argument = click.argument("config", required=False, type=_FILE)
    return _stack(command(spec.command), config_argument, common_options, *options)(run)


for _spec in EXPERIMENTS.values():
    _experiment_command(_spec)


# ----------------------------------------------------------------------------- kernel


# fmt: off
@command("kernel")
@click.argument("arch", type=_FILE)
@click.option("--x1", required=True, type=_FILE, help="Points as .npy or .csv, one row per point.")
@click.option("--x2", type=_FILE, help="Second set of points (default: x1).")
@click.option("--out", default="K.npz", show_default=True, type=click.Path(),
              help="Output: .npz (in memory) or .zarr (chunked on disk, past memory), "
              "with arrays nngp and ntk, each (n1, n2).")
@float32_option
@click.option("--chunk", type=click.IntRange(1), default=4096, show_default=True,
              help="Rows and columns per block of a .zarr output.")
@scheduler_option("Dask scheduler for a .zarr output, e.g. tcp://host:8786 "
                  "(default: DASK_SCHEDULER_ADDRESS, else every local core).")
@click.option("--resume", is_flag=True, help="Continue an interrupted .zarr output.")
# fmt: on
@quiet_option
def kernel_command(arch, x1, x2, out, float32, chunk, scheduler, resume, quiet):
    """Exact NNGP and NTK of an architecture on your own points.

    ARCH is a YAML file with a top-level `architecture:` block (an experiment config works too).
    A .zarr output computes the kernels block by block as Dask tasks, past one machine's memory
    and on a cluster with --scheduler (needs: pip install 'wideinf[scale]').

    \b
    Example:
      wideinf kernel experiments/fig1_gabor_relu.yaml --x1 points.npy --out K.npz
      wideinf kernel arch.yaml --x1 big.npy --out K.zarr --float32 --chunk 4096
    """
    from .kernel_command import compute_and_save
    from .progress import set_quiet

    set_quiet(quiet)
    t0 = time.perf_counter()
    options = dict(float32=float32, chunk=chunk, scheduler=scheduler, resume=resume)
    n1, n2 = compute_and_save(arch, x1, x2, out, **options)
    click.echo(f"{out}: nngp and ntk of shape {n1}x{n2} in {time.perf_counter() - t0:.2f} s")


# ----------------------------------------------------------------------------- predict


# fmt: off
@command("predict")
@click.argument("arch", type=_FILE)
@click.option("--train", required=True, type=_FILE,
              help="Training table: CSV with a header row, .npy or .npz.")
@click.option("--test", required=True, type=_FILE, help="Test table.")
@click.option("--target", required=True, help="The target column of the training table.")
@click.option("--out", default="predictions.csv", show_default=True, type=_FILE,
              help="Output CSV, one row per test row; a YAML of the same name goes beside it.")
@click.option("--kernel", type=click.Choice(["nngp", "ntk", "ntk-gp"]), default="nngp",
              show_default=True, help="NNGP posterior, NTK ensemble (trained networks), or NTK-GP.")
@click.option("--time", "time_", type=click.FloatRange(min=0), default=math.inf,
              help="Training time t of the NTK ensemble (steps x learning rate; default inf).")
@click.option("--diag-reg", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Added to the train-train matrix's diagonal, relative to its mean diagonal.")
@click.option("--task", type=click.Choice(["regression", "classification"]),
              help="Default: inferred from the target column (and printed).")
@click.option("--fit", "fit", cls=MultiValueOption, type=click.Choice(["W_std", "b_std", "noise"]),
              help="Fit these by marginal likelihood first, e.g. --fit W_std b_std noise.")
@click.option("--features", "features", cls=MultiValueOption,  # column names, not options or YAML
              accepts=lambda t: not t.startswith("-") and not t.lower().endswith((".yaml", ".yml")),
              help="Feature columns, e.g. --features age height (default: all but the target).")
@click.option("--no-standardize", "no_std", is_flag=True,
              help="Use features (and regression targets) as given, not standardized.")
# fmt: on
@float32_option
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

    options = PredictOptions(kernel, time_, diag_reg, task, fit, float32, features, not no_std)
    run_predict(arch, train, test, target, out, options, echo=click.echo)


# ----------------------------------------------------------------------------- batch commands


@command("run")
@click.argument("configs", nargs=-1, required=True, type=_FILE)
@common_options
def run_command(configs, out, seed, quick, formats, sets, quiet):
    """Run one or more configs, each by its `experiment:` key.

    \b
    Example:
      wideinf run experiments/fig1_gabor_relu.yaml experiments/fig2_nngp_vs_ntk.yaml --quick
    """
    _run_configs(configs, out=out, seed=seed, quick=quick, formats=formats, sets=sets, quiet=quiet)


def _run_configs(paths, jobs=1, scheduler=None, **options):
    """Run every config past failures (a table at the end); exit code 1 if any failed."""
    from .batch import run_many

    if run_many(list(paths), jobs=jobs, scheduler=scheduler, echo=click.echo, **options):
        sys.exit(1)


@command("all")
@out_option
@quick_option
@click.option(
    "--jobs", "-j", default=1, show_default=True, type=click.IntRange(1, 64),
    help="Experiments run side by side.",
)  # fmt: skip
@format_option
@scheduler_option(
    "Run the experiments as tasks on a Dask cluster (tcp://host:8786); "
    "--out must be on a file system its workers share."
)
@quiet_option
def all_command(out, quick, jobs, formats, scheduler, quiet):
    """Regenerate every shipped experiment; goes on past a failure and ends with a table.

    \b
    Example:
      wideinf all                 # full quality into figures/
      wideinf all --quick --out /tmp/figs --jobs 2
      wideinf all --scheduler tcp://scheduler:8786 --out /shared/figures
    """
    from .runner import shipped_configs

    paths = [str(p) for p in shipped_configs()]
    options = dict(out=out, seed=None, quick=quick, formats=formats, sets=(), quiet=quiet)
    _run_configs(paths, jobs=jobs, scheduler=scheduler, **options)


@command("list")
def list_command():
    """The shipped experiments, one line each.

    \b
    Example:
      wideinf list
    """
    from .batch import describe_shipped

    click.echo("\n".join(describe_shipped()))


@command("plot")
@click.argument("result", type=_FILE)
@click.option("--out", type=click.Path(file_okay=False),
              help="Folder for the figures (default: beside RESULT).")  # fmt: skip
@format_option
def plot_command(result, out, formats):
    """Redraw a figure from saved results (RESULT.npz and its .yaml), with no recompute.

    \b
    Example:
      wideinf plot figures/fig1_gabor_relu.npz --out /tmp/redrawn
    """
    from .runner import redraw

    files = redraw(result, out, formats)
    click.echo(f"{len(files)} files: " + ", ".join(str(f) for f in files))


if __name__ == "__main__":  # pragma: no cover
    main()
