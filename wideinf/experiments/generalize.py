"""4-point 2-D sweeps: finite MLPs fitted to tiny data sets against their infinite-width limits.

A reconstruction of the experiment described in "Infinite-width MLPs as an ensemble prior"
(the second text): fit MLPs of growing width to 4 labelled points in a 2-D input square, one
network per seed, and compare the learned functions over the square with the infinite-width
mean predictors (Lee et al. 2019, arXiv:1902.06720; Jacot et al. 2018, arXiv:1806.07572):

- NTK:  ``f_inf(*) = Theta(*, X) Theta(X, X)^-1 y``, the limit of training every layer;
- NNGP: ``f_inf(*) = K(*, X) K(X, X)^-1 y``, the limit of training the readout only;
- features (standard parameterization only): ``k(*, X) k(X, X)^-1 y`` with ``k = E[phi phi]``
  the last hidden layer's kernel, where the readout bias freezes (Sohl-Dickstein et al. 2020,
  arXiv:2001.07301).

A network's learned function is ``f_init + correction``. The random initial function ``f_init``
is O(1) at every width and survives training away from the data, so each network converges to
one limiting function only once it is removed: ``init_output: centered`` trains and reports
``f(x; theta) - f(x; theta_0)``, whose lazy limit is kernel regression from a zero initial
output (Chizat et al. 2019, arXiv:1812.07956; Arora et al. 2019, arXiv:1904.11955, shrink the
output scale instead); ``zero_readout`` starts the readout at zero (then all-layer training in NTK
parameterization tends to the NNGP predictor, since the hidden layers' gradients start at zero);
``standard`` keeps ``f_init``, and only the ensemble mean tends to the limit.

Network j of width n is drawn from its own stream ``default_rng([base, n, j])`` (``base`` drawn
once from the run's generator), so adding a width leaves the others' networks as they were.
Slopes against width carry bootstrap standard errors over seeds (:mod:`wideinf.stats`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from .. import networks as nets
from ..architecture import Architecture
from ..config import ArchitectureConfig, ExperimentConfig, LayerConfig, Width, setting
from ..errors import ConfigError, NumericalError
from ..predict import gp_posterior
from ..progress import progress
from ..stats import fit_power_law
from ..training import train
from . import Result
from .ensemble import init_per_stream, parameter_count, step_size

__all__ = [
    "Config",
    "DataConfig",
    "GridConfig",
    "TrainingConfig",
    "run",
    "report",
    "make_data",
    "make_grid",
    "limit_predictors",
    "matching_limit",
]

# Parameters per ensemble (seeds x weights) held at once; 40 M float64 = 320 MB.
MAX_PARAMETERS = 40_000_000
# Activations per block of grid points when evaluating (seeds x points x width); blocks
# of about 8 MB stay in cache and are several times faster than larger ones.
_EVAL_BLOCK = 2**20


@dataclass(frozen=True)
class DataConfig:
    """The training set: a named layout of 4 points in 2-D with labels +-1, or explicit points."""

    layout: Literal["xor", "random", "separable", "points"] = setting(
        "xor", help="xor: corners (+-s, +-s), label sign(x1 x2); random: 4 points in the square"
    )
    scale: float = setting(1.0, gt=0.0, le=100.0, help="half side s of the layout's square")
    data_seed: int = setting(0, ge=0, le=2**32 - 1, help="seed of the random layout")
    points: tuple[tuple[float, ...], ...] = setting((), help="explicit points (layout: points)")
    labels: tuple[float, ...] = setting((), help="labels of the explicit points")

    def validate(self, where: str = "data"):
        if self.layout != "points":
            if self.points or self.labels:
                raise ConfigError(f"{where}.points: only used with layout: points")
            return
        if not 1 <= len(self.points) <= 32:
            raise ConfigError(
                f"{where}.points: give 1 to 32 points [x1, x2], got {len(self.points)}"
            )
        for i, p in enumerate(self.points):
            if len(p) != 2:
                raise ConfigError(f"{where}.points[{i}]: expected [x1, x2], got {list(p)}")
        if len(self.labels) != len(self.points):
            raise ConfigError(
                f"{where}.labels: expected {len(self.points)} labels (one per point), "
                f"got {len(self.labels)}"
            )
        if len(set(self.points)) != len(self.points):
            raise ConfigError(f"{where}.points: contains a duplicate point")


@dataclass(frozen=True)
class GridConfig:
    """The evaluation grid: ``points x points`` over ``[-extent, extent]^2``."""

    extent: float = setting(2.0, gt=0.0, le=1e3, help="half side of the square drawn")
    points: int = setting(61, ge=5, le=201, help="grid points per axis")


@dataclass(frozen=True)
class TrainingConfig:
    """Full-batch gradient descent on ``(1/2N) sum_i (f(x_i) - y_i)^2``."""

    layers: Literal["all", "readout"] = setting("all", help="train every layer or the readout")
    init_output: Literal["centered", "zero_readout", "standard"] = setting(
        "centered", help="remove the initial function: f - f_init, zero readout, or keep it"
    )
    loss_tol: float = setting(1e-6, gt=0.0, le=1.0, help="stop a network once its loss is below")
    max_steps: int = setting(20_000, ge=1, le=1_000_000, help="give up after this many steps")
    lr_factor: float = setting(
        1.0, gt=0.0, lt=2.0, help="learning rate = lr_factor * N / largest empirical NTK eigenvalue"
    )


def _default_architecture() -> ArchitectureConfig:
    layers = (LayerConfig("dense"), LayerConfig("relu"), LayerConfig("dense"))
    return ArchitectureConfig(layers, W_std=1.5, b_std=0.5, parameterization="ntk")


_DEFAULT_WIDTHS = tuple(float(2**k) for k in range(3, 14))  # 8 .. 8192


@dataclass(frozen=True)
class Config(ExperimentConfig):
    """``wideinf generalize``: see the module docstring and experiments/ensemble_prior_4point.yaml."""

    architecture: ArchitectureConfig = setting(_default_architecture())
    widths: tuple[Width, ...] = setting(
        _DEFAULT_WIDTHS, min_len=2, max_len=32, help="finite hidden widths (the limits are added)"
    )
    seeds: int = setting(8, ge=2, le=64, help="networks per width (columns of the figure)")
    data: DataConfig = setting(DataConfig())
    grid: GridConfig = setting(GridConfig())
    training: TrainingConfig = setting(TrainingConfig())

    def validate(self, where: str = "config"):
        if any(math.isinf(w) for w in self.widths):
            raise ConfigError(
                f"{where}.widths: list finite widths only; the infinite-width rows are always drawn"
            )
        if len(set(self.widths)) != len(self.widths):
            raise ConfigError(f"{where}.widths: contains a repeated width")
        if max(self.widths) > 2**20:
            raise ConfigError(f"{where}.widths: at most {2**20}, got {max(self.widths):g}")
        arch = Architecture.from_config(self.architecture)
        largest = self.seeds * parameter_count(arch, 2, int(max(self.widths)))
        if largest > MAX_PARAMETERS:
            raise ConfigError(
                f"{where}.widths: {self.seeds} networks of width {max(self.widths):g} hold "
                f"{largest:,} parameters (limit {MAX_PARAMETERS:,}); lower the widths or seeds"
            )


# ----------------------------------------------------------------------------- data


def make_data(data: DataConfig) -> tuple[np.ndarray, np.ndarray]:
    """Training inputs (N, 2) and labels (N,) of a layout.

    ``xor``: the corners ``(+-s, +-s)`` with label ``sign(x1 x2)``; ``separable``: the same
    corners labelled by ``sign(x1)``; ``random``: 4 points uniform in ``[-s, s]^2`` from
    ``data_seed`` with two labels of each sign in random order; ``points``: as given.
    """
    s = data.scale
    corners = s * np.array([[1.0, 1.0], [-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0]])  # (4, 2)
    if data.layout == "xor":
        return corners, np.sign(corners[:, 0] * corners[:, 1])
    if data.layout == "separable":
        return corners, np.sign(corners[:, 0])
    if data.layout == "random":
        rng = np.random.default_rng(data.data_seed)
        x = rng.uniform(-s, s, size=(4, 2))  # (4, 2)
        y = rng.permutation(np.array([1.0, 1.0, -1.0, -1.0]))  # (4,)
        return x, y
    return np.array(data.points, dtype=float), np.array(data.labels, dtype=float)


def make_grid(grid: GridConfig) -> tuple[np.ndarray, np.ndarray]:
    """Axis (g,) and grid points (g * g, 2); point ``i * g + j`` is ``(axis[j], axis[i])``."""
    axis = np.linspace(-grid.extent, grid.extent, grid.points)  # (g,)
    x1, x2 = np.meshgrid(axis, axis)  # (g, g) each; rows vary along x2
    return axis, np.stack([x1.ravel(), x2.ravel()], axis=1)  # (g * g, 2)


# ----------------------------------------------------------------------------- limits


_SINGULAR_ADVICE = (
    "move the training points apart, or add a bias (b_std > 0) so that no point has zero kernel"
)


def limit_predictors(arch: Architecture, x_train, y_train, x_test) -> dict[str, np.ndarray]:
    """The infinite-width mean predictors at ``x_test`` (G, 2): each an array (G,).

    Each is the mean of :func:`wideinf.predict.gp_posterior`, with no regularizer.
    ``ntk``: ``Theta(*, X) Theta^-1 y`` with the architecture's NTK (in standard
    parameterization the limit NTK without the first layer's and the biases' terms);
    ``nngp``: ``K(*, X) K^-1 y``; ``features``: the same with the kernel ``E[phi phi]`` of the
    last hidden layer (the readout's own contribution in standard parameterization).
    """
    k_train = arch.kernel(x_train)
    k_cross = arch.kernel(x_test, x_train)  # (G, N) blocks
    body = Architecture(arch.layers[:-1], "ntk")
    f_train, f_cross = body.kernel(x_train), body.kernel(x_test, x_train)
    pairs = {
        "ntk": (k_train.ntk, k_cross.ntk, "NTK"),
        "nngp": (k_train.nngp, k_cross.nngp, "NNGP"),
        "features": (f_train.nngp, f_cross.nngp, "last-layer feature"),
    }
    return {
        key: gp_posterior(k, cross, None, y_train, name=name, advice=_SINGULAR_ADVICE).mean
        for key, (k, cross, name) in pairs.items()
    }


def matching_limit(config: Config) -> str:
    """Which limit each network should converge to: ``ntk``, ``nngp`` or ``features``.

    All-layer training from a random readout: the NTK predictor. Readout-only training, or a
    zero readout (the hidden layers' gradients are proportional to the readout, so they start
    at zero and stay O(n^-1/2)): the readout's kernel, which is the NNGP in NTK
    parameterization and ``E[phi phi]`` in standard parameterization, where the readout bias's
    contribution 1/n vanishes.
    """
    training = config.training
    if training.layers == "all" and training.init_output != "zero_readout":
        return "ntk"
    return "nngp" if config.architecture.parameterization == "ntk" else "features"


# ----------------------------------------------------------------------------- training


def _zero_readout(params):
    """The same parameters with the readout's weights and bias set to zero."""
    weights = params.weights[:-1] + (np.zeros_like(params.weights[-1]),)
    biases = params.biases[:-1] + (np.zeros_like(params.biases[-1]),)
    return replace(params, weights=weights, biases=biases)


def _tangent_kernel(arch, params, x_train, training) -> np.ndarray:
    """The tangent kernel that training follows, one (N, N) per network: (S, N, N).

    The raw kernel ``J J^T`` of the trained parameters, in the units of the learning rate:
    all layers, the empirical NTK (times the width in standard parameterization, where
    ``empirical_ntk`` reports ``Theta / n``); readout only, ``s_w^2 phi . phi + s_b^2`` with
    the readout's scales (``W_std^2 / n`` and ``b_std^2`` in NTK parameterization, 1 and 1 in
    standard parameterization).
    """
    standard = arch.parameterization == "standard"
    n_last = params.weights[-1].shape[1]
    if training.layers == "readout":
        phi = nets.features(arch, params, x_train)  # (S, N, n_L)
        gram = np.matmul(phi, phi.transpose(0, 2, 1))  # (S, N, N)
        readout = arch.dense_layers[-1]
        sw2, sb2 = (1.0, 1.0) if standard else (readout.W_std**2 / n_last, readout.b_std**2)
        return sw2 * gram + sb2
    return nets.empirical_ntk(arch, params, x_train) * (n_last if standard else 1.0)


def _evaluate(arch, params, x, width: int, n_networks: int) -> np.ndarray:
    """``forward`` over blocks of points so that (S, block, width) stays small; -> (S, G)."""
    block = max(1, _EVAL_BLOCK // (n_networks * width))
    parts = [nets.forward(arch, params, x[i : i + block]) for i in range(0, len(x), block)]
    return np.concatenate(parts, axis=1)  # (S, G)


def _train_width(config: Config, arch, x_train, y_train, grid_x, width: int, base: int) -> dict:
    """Train ``seeds`` networks of one width; the learned functions on the grid and diagnostics.

    Network j is drawn from its own stream ``default_rng([base, width, j])``.
    """
    training = config.training
    rngs = [np.random.default_rng([base, width, j]) for j in range(config.seeds)]
    params = init_per_stream(arch, x_train.shape[1], width, rngs)
    if training.init_output == "zero_readout":
        params = _zero_readout(params)
    n = len(y_train)
    target = np.broadcast_to(y_train, (config.seeds, n)).copy()  # (S, N)
    if training.init_output == "centered":
        # Training f - f_init on y is training f on y + f_init(X): the same gradients.
        target = target + nets.forward(arch, params, x_train)  # (S, N)
    lr = step_size(_tangent_kernel(arch, params, x_train, training), training.lr_factor)
    out = train(
        arch, params, x_train, target, lr, training.max_steps,
        readout_only=training.layers == "readout", tol=training.loss_tol,
        record_every=training.max_steps, quiet=True,
    )  # fmt: skip
    f_grid = _evaluate(arch, out.params, grid_x, width, config.seeds)  # (S, G)
    if training.init_output == "centered":
        f_grid = f_grid - _evaluate(arch, params, grid_x, width, config.seeds)
    loss = 0.5 * np.mean((out.f_train - target) ** 2, axis=1)  # (S,)
    return {"f": f_grid, "loss": loss, "steps": np.asarray(out.steps_taken), "lr": lr}


# ----------------------------------------------------------------------------- metrics


def _rms(a: np.ndarray, axis=-1) -> np.ndarray:
    return np.sqrt(np.mean(a * a, axis=axis))


def _gradient_norm(f: np.ndarray, g: int, h: float) -> np.ndarray:
    """Mean |grad f| over the grid by central differences; f (..., g * g) -> (...)."""
    grid = f.reshape(f.shape[:-1] + (g, g))
    d2, d1 = np.gradient(grid, h, axis=(-2, -1))
    return np.mean(np.hypot(d1, d2), axis=(-2, -1))


def _spread(f: np.ndarray) -> np.ndarray:
    """Across-seed spread: RMS over the grid of the seeds' sd; f (..., W, S, G) -> (..., W)."""
    return np.sqrt(np.mean(np.var(f, axis=-2, ddof=1), axis=-1))


def _slopes(widths, f, limits: dict, rng) -> dict[str, tuple[float, float]]:
    """Log-log slopes of the spread and of each distance over the widest half, with their
    bootstrap standard errors over seeds (:func:`wideinf.stats.fit_power_law`); f (W, S, G)."""
    metrics = {"spread": _spread}
    for name, lim in limits.items():
        metrics[f"dist_{name}"] = lambda sample, lim=lim: _rms(_rms(sample - lim))  # (..., W)
    fits = {key: fit_power_law(widths, f, rng, statistic) for key, statistic in metrics.items()}
    return {key: (fit.slope, fit.se) for key, fit in fits.items()}


# ----------------------------------------------------------------------------- run


def run(config: Config, rng: np.random.Generator) -> Result:
    """Train every width x seed, compute the limits and the metrics of Figures A and B.

    Returns arrays: ``grid_x`` (G, 2), ``grid_axis`` (g,), ``x_train`` (N, 2), ``y_train`` (N,),
    ``widths`` (W,), ``predictions`` (W, S, G), ``ntk_limit``, ``nngp_limit``,
    ``features_limit`` (G,), ``train_loss``, ``steps`` (W, S), ``learning_rate`` (W,),
    ``spread`` (W,), ``dist_ntk``, ``dist_nngp``, ``dist_features``, ``gradient_norm`` (W, S),
    ``limit_gradient_norm`` (3,) for (ntk, nngp, features).
    """
    arch = Architecture.from_config(config.architecture)
    x_train, y_train = make_data(config.data)
    axis, grid_x = make_grid(config.grid)
    g, h = len(axis), float(axis[1] - axis[0])
    widths = np.array(sorted(int(w) for w in config.widths))  # (W,)
    limits = limit_predictors(arch, x_train, y_train, grid_x)  # each (G,)

    net_rng, boot_rng = rng.spawn(2)
    base = int(net_rng.integers(2**63))
    rows = []
    for width in progress(widths, total=len(widths), desc="widths"):
        rows.append(_train_width(config, arch, x_train, y_train, grid_x, int(width), base))
    f = np.stack([r["f"] for r in rows])  # (W, S, G)
    loss = np.stack([r["loss"] for r in rows])  # (W, S)
    steps = np.stack([r["steps"] for r in rows])  # (W, S)

    bad = ~np.all(np.isfinite(f), axis=-1)  # (W, S)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise NumericalError(
            f"training diverged for {int(bad.sum())} network(s) (first: width {widths[i]} "
            f"seed {j + 1}); lower training.lr_factor (now {config.training.lr_factor:g})"
        )
    arrays = {
        "grid_x": grid_x,
        "grid_axis": axis,
        "x_train": x_train,
        "y_train": y_train,
        "widths": widths,
        "predictions": f,
        "ntk_limit": limits["ntk"],
        "nngp_limit": limits["nngp"],
        "features_limit": limits["features"],
        "train_loss": loss,
        "steps": steps,
        "learning_rate": np.array([r["lr"] for r in rows]),  # (W,)
        "spread": _spread(f),
        "gradient_norm": _gradient_norm(f, g, h),  # (W, S)
        "limit_gradient_norm": np.array([_gradient_norm(limits[k], g, h) for k in limits]),
    }
    for name, lim in limits.items():
        arrays[f"dist_{name}"] = _rms(f - lim, axis=-1)  # (W, S)

    match = matching_limit(config)
    summary = {"matching_limit": match, "init_output": config.training.init_output}
    for key, (slope, sd) in _slopes(widths, f, limits, boot_rng).items():
        summary[f"slope_{key}"] = round(slope, 4)
        summary[f"slope_{key}_sd"] = round(sd, 4)
    summary["slope_matching"] = summary[f"slope_dist_{match}"]
    tol = config.training.loss_tol
    missed = ~(loss <= tol)
    summary["networks_missing_tol"] = int(missed.sum())
    summary["max_final_loss"] = float(np.nanmax(np.where(np.isfinite(loss), loss, np.inf)))
    summary["spread_widest"] = float(arrays["spread"][-1])
    summary[f"dist_{match}_widest"] = float(_rms(arrays[f"dist_{match}"][-1]))
    warnings = []
    if missed.any():
        which = ", ".join(
            f"width {widths[i]} seed {j + 1}" for i, j in zip(*np.nonzero(missed), strict=True)
        )
        warnings.append(
            f"{int(missed.sum())} network(s) did not reach loss {tol:g} in "
            f"{config.training.max_steps} steps: {which}"
        )
    return Result(arrays, summary, warnings)


def report(result: Result) -> list[str]:
    """The numbers to check: slopes against -1/2, the widest width's spread and distance."""
    s, a = result.summary, result.arrays
    match = s["matching_limit"]
    return [
        f"widths {a['widths'][0]}..{a['widths'][-1]}, {a['predictions'].shape[1]} seeds, "
        f"init_output {s['init_output']}; "
        f"{'the seed average' if s['init_output'] == 'standard' else 'each network'} "
        f"should tend to the {match} limit",
        f"log-log slope over the widest half (n^-1/2 gives -0.5): spread "
        f"{s['slope_spread']:+.2f} +- {s['slope_spread_sd']:.2f}, distance to {match} limit "
        f"{s[f'slope_dist_{match}']:+.2f} +- {s[f'slope_dist_{match}_sd']:.2f}",
        f"at width {a['widths'][-1]}: spread {s['spread_widest']:.4f}, RMS distance to the "
        f"{match} limit {s[f'dist_{match}_widest']:.4f}",
        f"networks missing the loss tolerance: {s['networks_missing_tol']} "
        f"(largest final loss {s['max_final_loss']:.1e})",
    ]
