"""4-point 2-D sweeps: finite MLPs fitted to tiny data sets against their infinite-width limits.

A reconstruction of the experiment of "Infinite-width MLPs as an ensemble prior" (the second
text): MLPs of growing width, one per seed, fitted to 4 labelled points in a 2-D square, against
the infinite-width mean predictors over the square (Lee et al. 2019, arXiv:1902.06720):
NTK ``Theta(*, X) Theta(X, X)^-1 y`` (training every layer), NNGP ``K(*, X) K(X, X)^-1 y``
(the readout only) and, in standard parameterization, the last hidden layer's kernel
``E[phi phi]`` (Sohl-Dickstein et al. 2020, arXiv:2001.07301). ``training.init_output`` says
how the random initial function is removed (centered, zero_readout or standard); which limit
each setting reaches is derived in docs/theory.md, "Centered training". Every network has its
own random stream (:func:`~wideinf.experiments.generalize_sweep.train_width`); slopes against
width carry bootstrap standard errors over seeds (:mod:`wideinf.stats`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..architecture import Architecture
from ..config import ArchitectureConfig, ExperimentConfig, Width, setting
from ..errors import ConfigError, NumericalError
from ..predict import gp_posterior
from ..progress import progress
from ..stats import fit_power_law
from . import Result
from .ensemble import check_ensemble_size, check_width_list
from .generalize_sweep import gradient_norm, make_scheme, rms, slopes, spread, train_width

__all__ = [
    "Config",
    "DataConfig",
    "GridConfig",
    "run",
    "report",
    "make_data",
    "make_grid",
    "limit_predictors",
    "matching_limit",
]

# Parameters per ensemble (seeds x weights) held at once; 40 M float64 = 320 MB.
MAX_PARAMETERS = 40_000_000


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


@dataclass(frozen=True)
class MupConfig:
    """The maximal-update parameterization's base width (:mod:`wideinf.mup`)."""

    base_width: int = setting(
        8, ge=1, le=2**20, help="width n_0 at which muP equals the standard parameterization"
    )


_DEFAULT_ARCHITECTURE = ArchitectureConfig.from_raw(
    {"layers": ["dense", "relu", "dense"], "W_std": 1.5, "b_std": 0.5}
)
_DEFAULT_WIDTHS = tuple(float(2**k) for k in range(3, 14))  # 8 .. 8192


@dataclass(frozen=True)
class Config(ExperimentConfig):
    """``wideinf generalize``: see the module docstring and experiments/ensemble_prior_4point.yaml."""

    architecture: ArchitectureConfig = setting(_DEFAULT_ARCHITECTURE)
    widths: tuple[Width, ...] = setting(
        _DEFAULT_WIDTHS, min_len=2, max_len=32, help="finite hidden widths (the limits are added)"
    )
    seeds: int = setting(8, ge=2, le=64, help="networks per width (columns of the figure)")
    data: DataConfig = setting(DataConfig())
    grid: GridConfig = setting(GridConfig())
    training: TrainingConfig = setting(TrainingConfig())
    parameterizations: tuple[Literal["ntk", "standard", "mup"], ...] = setting(
        (), scalar_ok=True, max_len=3,
        help="finite networks' parameterizations, ntk | standard | mup (default: the "
        "architecture's); each sweep is saved as predictions_<name>",
    )  # fmt: skip
    mup: MupConfig = setting(MupConfig())

    @property
    def sweeps(self) -> tuple[str, ...]:
        """The parameterizations trained, the architecture's (the reference sweep) first."""
        ref = self.architecture.parameterization
        return (ref,) + tuple(p for p in self.parameterizations if p != ref)

    def validate(self, where: str = "config"):
        listed, ref = self.parameterizations, self.architecture.parameterization
        if len(set(listed)) != len(listed):
            raise ConfigError(f"{where}.parameterizations: contains a repeated name")
        if listed and ref not in listed:
            raise ConfigError(
                f"{where}.parameterizations: must include the architecture's parameterization "
                f"{ref!r} (the sweep saved as `predictions` and compared with the limits)"
            )
        check_width_list(self.widths, f"{where}.widths", increasing=False)
        if max(self.widths) > 2**20:
            raise ConfigError(f"{where}.widths: at most {2**20}, got {max(self.widths):g}")
        check_ensemble_size(
            self.architecture, 2, max(self.widths), self.seeds, MAX_PARAMETERS, f"{where}.widths"
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
        return rng.uniform(-s, s, size=(4, 2)), rng.permutation(np.array([1.0, 1.0, -1.0, -1.0]))
    return np.array(data.points, dtype=float), np.array(data.labels, dtype=float)


def make_grid(grid: GridConfig) -> tuple[np.ndarray, np.ndarray]:
    """Axis (g,) and grid points (g * g, 2); point ``i * g + j`` is ``(axis[j], axis[i])``."""
    axis = np.linspace(-grid.extent, grid.extent, grid.points)  # (g,)
    x1, x2 = np.meshgrid(axis, axis)  # (g, g) each; rows vary along x2
    return axis, np.stack([x1.ravel(), x2.ravel()], axis=1)  # (g * g, 2)


# ----------------------------------------------------------------------------- limits


def limit_predictors(arch: Architecture, x_train, y_train, x_test) -> dict[str, np.ndarray]:
    """The infinite-width mean predictors at ``x_test`` (G, 2): each an array (G,).

    Means of :func:`wideinf.predict.gp_posterior` without regularizer: ``ntk``
    ``Theta(*, X) Theta^-1 y``, ``nngp`` ``K(*, X) K^-1 y``, and ``features`` the same with the
    last hidden layer's kernel ``E[phi phi]``.
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
    advice = (
        "move the training points apart, or add a bias (b_std > 0) so that no point has zero kernel"
    )
    return {
        key: gp_posterior(k, cross, None, y_train, name=name, advice=advice).mean
        for key, (k, cross, name) in pairs.items()
    }


def matching_limit(config: Config) -> str:
    """Which limit each network should converge to: ``ntk``, ``nngp`` or ``features``.

    All-layer training from a random readout: the NTK predictor; readout-only training or a zero
    readout: the readout's kernel, the NNGP in NTK parameterization and ``E[phi phi]`` in
    standard parameterization (docs/theory.md, "Centered training").
    """
    training = config.training
    if training.layers == "all" and training.init_output != "zero_readout":
        return "ntk"
    return "nngp" if config.architecture.parameterization == "ntk" else "features"


# ----------------------------------------------------------------------------- run


# Arrays of a sweep (``train_width``'s keys) saved under the names of the npz contract.
_SWEEP_ARRAYS = {
    "f": "predictions",
    "loss": "train_loss",
    "steps": "steps",
    "lr": "learning_rate",
    "movement": "feature_movement",
}


def _sweep(config: Config, scheme, x_train, y_train, grid_x, widths, base: int, bar) -> dict:
    """Every width of one parameterization: ``f`` (W, S, G), ``loss``, ``steps``,
    ``movement`` (W, S) and ``lr`` (W,); a NumericalError if a network diverged."""
    rows = []
    for width in widths:
        rows.append(train_width(config, scheme, x_train, y_train, grid_x, int(width), base))
        bar.update(1)
    out = {key: np.stack([np.asarray(r[key]) for r in rows]) for key in _SWEEP_ARRAYS}
    bad = ~np.all(np.isfinite(out["f"]), axis=-1)  # (W, S)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise NumericalError(
            f"training diverged for {int(bad.sum())} {scheme.name} network(s) (first: width "
            f"{widths[i]} seed {j + 1}); lower training.lr_factor (now "
            f"{config.training.lr_factor:g})"
        )
    return out


def _sweep_arrays(sweep: dict, limits: dict, g: int, h: float, suffix: str = "") -> dict:
    """A sweep's arrays and metrics under their npz names plus ``suffix``: those of
    :data:`_SWEEP_ARRAYS`, ``spread`` (W,), ``gradient_norm`` and ``dist_<limit>`` (W, S)."""
    f = sweep["f"]  # (W, S, G)
    out = {name: sweep[key] for key, name in _SWEEP_ARRAYS.items()}
    out.update(spread=spread(f), gradient_norm=gradient_norm(f, g, h))
    for name, lim in limits.items():
        out[f"dist_{name}"] = rms(f - lim, axis=-1)  # (W, S)
    return {f"{name}{suffix}": value for name, value in out.items()}


def _rounded_slopes(summary: dict, fits: dict, suffix: str = "") -> None:
    """``slope_<key><suffix>`` and ``slope_<key><suffix>_sd`` of :func:`slopes`' fits."""
    for key, (slope, sd) in fits.items():
        summary[f"slope_{key}{suffix}"] = round(slope, 4)
        summary[f"slope_{key}{suffix}_sd"] = round(sd, 4)


def run(config: Config, rng: np.random.Generator) -> Result:
    """Train every parameterization x width x seed; the limits and the metrics of the figures.

    Returns arrays: ``grid_x`` (G, 2), ``grid_axis`` (g,), ``x_train`` (N, 2), ``y_train`` (N,),
    ``widths`` (W,), ``ntk_limit``, ``nngp_limit``, ``features_limit`` (G,),
    ``limit_gradient_norm`` (3,) for (ntk, nngp, features), ``parameterizations`` (P,) the
    sweeps, the architecture's (the reference) first; of the reference sweep ``predictions``
    (W, S, G), ``train_loss``, ``steps``, ``gradient_norm``, ``dist_<limit>`` (W, S),
    ``learning_rate`` and ``spread`` (W,); the same suffixed ``_<p>`` for every sweep p, with
    ``feature_movement_<p>`` (W, S).
    """
    arch = Architecture.from_config(config.architecture)
    x_train, y_train = make_data(config.data)
    axis, grid_x = make_grid(config.grid)
    g, h = len(axis), float(axis[1] - axis[0])
    widths = np.array(sorted(int(w) for w in config.widths))  # (W,)
    limits = limit_predictors(arch, x_train, y_train, grid_x)  # each (G,)

    net_rng, boot_rng = rng.spawn(2)
    base = int(net_rng.integers(2**63))
    names = config.sweeps
    bar = progress(total=len(names) * len(widths), desc="widths")
    try:
        sweeps = {
            name: _sweep(config, make_scheme(name, arch, config.mup.base_width), x_train,
                         y_train, grid_x, widths, base, bar)
            for name in names
        }  # fmt: skip
    finally:
        bar.close()
    arrays = {
        "grid_x": grid_x,
        "grid_axis": axis,
        "x_train": x_train,
        "y_train": y_train,
        "widths": widths,
        **{f"{key}_limit": limit for key, limit in limits.items()},
        **_sweep_arrays(sweeps[names[0]], limits, g, h),
        "limit_gradient_norm": np.array([gradient_norm(limits[k], g, h) for k in limits]),
        "parameterizations": np.array(names),
    }
    del arrays["feature_movement"]  # saved per parameterization only
    for name, sw in sweeps.items():
        arrays.update(_sweep_arrays(sw, limits, g, h, f"_{name}"))

    match = matching_limit(config)
    summary = {"matching_limit": match, "init_output": config.training.init_output}
    _rounded_slopes(summary, slopes(widths, sweeps[names[0]]["f"], limits, boot_rng))
    summary["slope_matching"] = summary[f"slope_dist_{match}"]
    tol = config.training.loss_tol
    missed = {name: ~(sw["loss"] <= tol) for name, sw in sweeps.items()}  # each (W, S)
    summary["networks_missing_tol"] = int(sum(m.sum() for m in missed.values()))
    loss = np.concatenate([sw["loss"].ravel() for sw in sweeps.values()])
    summary["max_final_loss"] = float(np.max(np.where(np.isfinite(loss), loss, np.inf)))
    summary["spread_widest"] = float(arrays["spread"][-1])
    summary[f"dist_{match}_widest"] = float(rms(arrays[f"dist_{match}"][-1]))
    # Drawn after the reference slopes, so those are as without the other sweeps.
    summary["parameterizations"] = list(names)
    summary["mup_base_width"] = config.mup.base_width if "mup" in names else None
    for name, sw in sweeps.items():
        movement = sw["movement"]  # (W, S); no slope when the features do not move at all
        summary[f"feature_movement_widest_{name}"] = float(np.median(movement[-1]))
        fit = fit_power_law(widths, movement, boot_rng) if np.all(movement > 0) else None
        summary[f"slope_feature_movement_{name}"] = None if fit is None else round(fit.slope, 4)
        summary[f"slope_feature_movement_{name}_sd"] = None if fit is None else round(fit.se, 4)
        _rounded_slopes(
            summary, slopes(widths, sw["f"], {"ntk": limits["ntk"]}, boot_rng), f"_{name}"
        )
        summary[f"dist_ntk_widest_{name}"] = float(rms(arrays[f"dist_ntk_{name}"][-1]))
    warnings = []
    for name, miss in missed.items():
        if miss.any():
            which = ", ".join(
                f"width {widths[i]} seed {j + 1}" for i, j in zip(*np.nonzero(miss), strict=True)
            )
            warnings.append(
                f"{int(miss.sum())} {name} network(s) did not reach loss {tol:g} in "
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
    ] + [_movement_line(s, name) for name in s.get("parameterizations", [])]


def _movement_line(s: dict, name: str) -> str:
    base = f" (base width {s['mup_base_width']})" if name == "mup" else ""
    slope, sd = s[f"slope_feature_movement_{name}"], s[f"slope_feature_movement_{name}_sd"]
    fit = "" if slope is None else f"slope {slope:+.2f} +- {sd:.2f} (lazy: -0.5), "
    return (
        f"{name}{base}: feature movement ||h_T - h_0|| / ||h_0|| {fit}"
        f"{s[f'feature_movement_widest_{name}']:.4f} at the widest; distance to the ntk limit "
        f"slope {s[f'slope_dist_ntk_{name}']:+.2f}, {s[f'dist_ntk_widest_{name}']:.4f} at the widest"
    )
