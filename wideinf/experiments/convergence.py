"""Finite networks converge to their infinite-width limits, and train lazily.

For every hidden width n, S networks on a grid of M points in [x_min, x_max]: the relative
errors ``||K_hat - K||_F / ||K||_F`` of their empirical NNGP and NTK at initialisation, and
lazy training on N points of y = sin(x) beside the linearised network
(:mod:`wideinf.experiments.lazy`): the NTK's relative change, the largest RMS gap to the
linearised outputs, and each weight matrix's relative change. All fall as about n^-1/2 (Lee et
al. 2019, arXiv:1902.06720; docs/theory.md, "Lazy training and O(n^-1/2) convergence"); the
slopes of ``log median`` against ``log n`` carry bootstrap standard errors (:mod:`wideinf.stats`).
An optional ``variant`` architecture gets the kernel errors at initialisation only.

Arrays (the ``<name>.npz`` contract): ``widths`` (W,), ``nngp_rel_err``, ``ntk_rel_err``,
``ntk_change``, ``linearization_gap`` (W, S), ``weight_change`` (W, S, L), ``slope_nngp``,
``slope_ntk``, ``slope_ntk_change``, ``slope_linearization_gap`` (scalars),
``slope_weight_change`` (L,), each slope with ``intercept_*`` and ``se_*`` of the same shape;
``fit_widths`` (2,) the fitted range; ``x_grid`` (M,), ``x_train``, ``y_train`` (N,);
``loss_initial``, ``loss_final`` (W, S); ``f_trained``, ``f_linearized`` (W, M) the outputs
of network 0 of each width after training and of its linearisation; with a variant
``variant_nngp_rel_err``, ``variant_ntk_rel_err`` (W, S) and their slopes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import networks as nw
from ..architecture import Architecture
from ..config import ArchitectureConfig, ExperimentConfig, Width, setting
from ..errors import ConfigError
from ..stats import fit_power_law, relative_error, widest_half
from . import Result
from .ensemble import BLOG_ARCHITECTURE, TrainConfig, check_widths, each_block, lazy_run

__all__ = ["Config", "run", "report", "kernel_errors"]

_RELU = ArchitectureConfig.from_raw(
    {"layers": ["dense", "relu", "dense", "relu", "dense"], "W_std": 1.5, "b_std": 0.05}
)


@dataclass(frozen=True)
class GridConfig:
    """1-D inputs: kernels and outputs on ``points`` in [x_min, x_max]."""

    x_min: float = setting(-3.0, ge=-1e3, le=1e3, help="left end of the input grid")
    x_max: float = setting(3.0, ge=-1e3, le=1e3, help="right end of the input grid")
    points: int = setting(21, ge=2, le=400, help="points of the grid")


@dataclass(frozen=True)
class ScalingTrainConfig(TrainConfig):
    """Gradient descent beside the linearised network, compared every ``record_every`` steps."""

    record_every: int = setting(
        5, ge=1, le=20_000, help="compare with the linearised network every this many steps"
    )


@dataclass(frozen=True)
class VariantConfig:
    """A second architecture whose kernel errors at initialisation are drawn dashed."""

    label: str = "ReLU"
    architecture: ArchitectureConfig = _RELU


@dataclass(frozen=True)
class Config(ExperimentConfig):
    """Settings of ``wideinf convergence`` (YAML keys of the same names)."""

    architecture: ArchitectureConfig = BLOG_ARCHITECTURE
    widths: tuple[Width, ...] = setting(
        tuple(float(2**k) for k in range(4, 14)),
        min_len=2,
        max_len=24,
        help="hidden widths n (finite, increasing)",
    )
    n_networks: int = setting(6, ge=2, le=1000, help="networks S per width")
    grid: GridConfig = GridConfig()
    train: ScalingTrainConfig = ScalingTrainConfig()
    variant: VariantConfig | None = setting(
        None, help="a second architecture, kernel errors only; null for none"
    )

    def validate(self, where: str = "config"):
        if self.grid.x_min >= self.grid.x_max:
            raise ConfigError(
                f"{where}.grid.x_min: must be below x_max, got {self.grid.x_min:g} >= "
                f"{self.grid.x_max:g}"
            )
        archs = [self.architecture] + ([self.variant.architecture] if self.variant else [])
        for arch_cfg in archs:
            check_widths(arch_cfg, 1, self.widths, where)


def _fit(arrays, key, widths, values, rng):
    """Store ``slope_key``, ``intercept_key``, ``se_key`` of the medians over networks."""
    values = np.asarray(values)  # (W, S), or (W, S, L): one fit per layer
    columns = [values] if values.ndim == 2 else [values[:, :, j] for j in range(values.shape[2])]
    fits = [fit_power_law(widths, v, rng) for v in columns]
    for name in ("slope", "intercept", "se"):
        got = np.array([getattr(f, name) for f in fits], dtype=np.float64)
        arrays[f"{name}_{key}"] = got if values.ndim == 3 else got[0]


def _measure(arch, widths, s: int, xg, width_rngs, train=None, x_train=None, y_train=None):
    """Kernel errors at initialisation of S networks per width on ``xg`` (M, 1); with ``train``
    (a :class:`ScalingTrainConfig`) also lazy training on x_train (N, 1), y_train (N,)."""
    n_w, m = len(widths), xg.shape[0]
    lazy = ("ntk_change", "linearization_gap", "loss_initial", "loss_final") if train else ()
    out = {k: np.empty((n_w, s)) for k in ("nngp_rel_err", "ntk_rel_err", *lazy)}  # (W, S) each
    if train:
        out["weight_change"] = np.empty((n_w, s, arch.n_hidden + 1))
        out["f_trained"], out["f_linearized"] = np.empty((n_w, m)), np.empty((n_w, m))
    for i, width, sl, params in each_block(arch, 1, widths.astype(int), [s] * n_w, width_rngs):
        if sl.start == 0:
            kernel = arch.kernel(xg, width=width)
        nngp = nw.empirical_nngp(arch, params, xg)  # (S_b, M, M)
        out["nngp_rel_err"][i, sl] = relative_error(nngp, kernel.nngp)
        if not train:
            theta = nw.empirical_ntk(arch, params, xg)  # (S_b, M, M)
            out["ntk_rel_err"][i, sl] = relative_error(theta, kernel.ntk)
            continue
        res = lazy_run(arch, params, xg, x_train, y_train, train, width, train.record_every)
        del params
        out["ntk_rel_err"][i, sl] = relative_error(res["theta0"], kernel.ntk)
        out["ntk_change"][i, sl] = relative_error(res["theta_t"], res["theta0"])
        out["linearization_gap"][i, sl] = res["gap"]
        for key in ("weight_change", "loss_initial", "loss_final"):
            out[key][i, sl] = res[key]
        if sl.start == 0:
            out["f_trained"][i] = res["f_trained"][0]
            out["f_linearized"][i] = res["f_linearized"][0]
    return out


def run(config: Config, rng: np.random.Generator) -> Result:
    """Run the sweep; see the module docstring for the arrays."""
    arch = Architecture.from_config(config.architecture)
    widths = np.array(config.widths)  # (W,)
    n_w, s = len(widths), config.n_networks
    g, t = config.grid, config.train
    x_grid = np.linspace(g.x_min, g.x_max, g.points)  # (M,)
    cell = (g.x_max - g.x_min) / t.points
    x_train = g.x_min + cell * (np.arange(t.points) + 0.5)  # (N,)
    y_train = np.sin(x_train)  # (N,)
    xg = x_grid[:, None]

    boot_rng, variant_rng, *width_rngs = rng.spawn(n_w + 2)
    out = _measure(arch, widths, s, xg, width_rngs, config.train, x_train[:, None], y_train)
    arrays = {"widths": widths, "x_grid": x_grid, "x_train": x_train, "y_train": y_train, **out}
    arrays["fit_widths"] = widths[[widest_half(n_w).start, n_w - 1]]
    for key in ("nngp", "ntk", "ntk_change", "linearization_gap", "weight_change"):
        _fit(arrays, key, widths, out.get(key, out.get(f"{key}_rel_err")), boot_rng)
    if config.variant is not None:
        errs = kernel_errors(config.variant.architecture, widths, s, xg, variant_rng)
        for key, values in errs.items():
            arrays[f"variant_{key}_rel_err"] = values
            _fit(arrays, f"variant_{key}", widths, values, boot_rng)
    warnings = []
    if np.median(out["loss_final"][-1]) > 0.1 * np.median(out["loss_initial"][-1]):
        warnings.append(
            "the widest networks reduced their training loss by less than 10x; "
            "training is short (raise train.steps or train.learning_rate)"
        )
    summary = {
        "widths": f"{int(widths[0])} .. {int(widths[-1])} ({len(widths)} widths)",
        "networks_per_width": config.n_networks,
        "fit_widths": f"{int(arrays['fit_widths'][0])} .. {int(arrays['fit_widths'][1])}",
    }
    for key in ("nngp", "ntk", "ntk_change", "linearization_gap"):
        summary[f"slope_{key}"] = round(float(arrays[f"slope_{key}"]), 4)
        summary[f"se_{key}"] = round(float(arrays[f"se_{key}"]), 4)
    for j, value in enumerate(arrays["slope_weight_change"]):
        summary[f"slope_weight_change_layer{j + 1}"] = round(float(value), 4)
    if config.variant is not None:
        for key in ("nngp", "ntk"):
            summary[f"slope_variant_{key}"] = round(float(arrays[f"slope_variant_{key}"]), 4)
    summary["median_loss_final_widest"] = float(f"{np.median(arrays['loss_final'][-1]):.3g}")
    return Result(arrays, summary, warnings)


def kernel_errors(arch_cfg, widths, s, xg, rng) -> dict[str, np.ndarray]:
    """``{"nngp": (W, S), "ntk": (W, S)}``: the relative errors of the empirical kernels of
    S = ``s`` freshly initialised networks per width (W,) on 1-D inputs ``xg`` (M, 1)."""
    arch = Architecture.from_config(arch_cfg)
    out = _measure(arch, widths, s, xg, rng.spawn(len(widths)))
    return {"nngp": out["nngp_rel_err"], "ntk": out["ntk_rel_err"]}


_NAMES = {
    "nngp": "NNGP error at init",
    "ntk": "NTK error at init",
    "ntk_change": "NTK change in training",
    "linearization_gap": "gap to linearised network",
}


def report(result: Result) -> list[str]:
    """The fitted slopes with their bootstrap standard errors."""
    s = result.summary
    lines = [f"slopes of log error vs log width over n = {s['fit_widths']} (n^-1/2: -0.5):"]
    for key, label in _NAMES.items():
        lines.append(f"  {label:28s} {s[f'slope_{key}']:+.3f} +- {s[f'se_{key}']:.3f}")
    layers = [v for k, v in s.items() if k.startswith("slope_weight_change_layer")]
    lines.append("  weight change per layer     " + ", ".join(f"{v:+.3f}" for v in layers))
    if "slope_variant_nngp" in s:
        lines.append(
            f"  variant NNGP / NTK error     {s['slope_variant_nngp']:+.3f} / "
            f"{s['slope_variant_ntk']:+.3f}"
        )
    return lines
