"""Finite networks converge to their infinite-width limits, and train lazily.

Two modes of one experiment (``wideinf convergence``):

``mode: scaling`` (experiments/kernel_convergence.yaml). For every hidden width n of a sweep,
S independently initialised networks on 1-D inputs x (a grid of M points on [x_min, x_max]):

- at initialisation, the relative Frobenius errors ``||K_hat - K||_F / ||K||_F`` of each
  network's empirical NNGP and NTK against the analytic kernels on the grid. The empirical
  kernels are averages over n hidden units, so their fluctuations fall as n^-1/2 (Jacot et al.
  2018, arXiv:1806.07572; Lee et al. 2019, arXiv:1902.06720);
- lazy training: each network is trained by full-batch gradient descent (learning rate eta,
  loss ``(1/2N) sum (f - y)^2``) on N points of y = sin(x), the cell centres of [x_min, x_max].
  Beside it the linearised network ``f_lin(x; theta) = f(x; theta_0) + grad f(x; theta_0) .
  (theta - theta_0)`` takes the same steps, exactly, through the empirical NTK at
  initialisation (see :mod:`wideinf.experiments.lazy`). Recorded against width:

  * ``ntk_change``: ``||Theta_T - Theta_0||_F / ||Theta_0||_F`` on the grid;
  * ``linearization_gap``: ``max_k RMS_x |f_k(x) - f_lin_k(x)|`` over the grid and the
    recorded steps k (every ``train.record_every`` steps and the last);
  * ``weight_change``: ``||W_T - W_0||_F / ||W_0||_F`` of each dense layer's weight matrix.

  Lee et al. 2019 (Theorem 2.1) bound the first two, and the parameters' motion, by O(n^-1/2).
  With a ReLU in the network both fall at about that rate (measured: slopes near -1/2 for the
  Gabor-ReLU network); for smooth activations only they fall faster, as 1/n (Dyer & Gur-Ari
  2020, arXiv:1909.11304: the NTK's time derivative is O(1/n); measured here for a
  one-hidden-layer erf network, see the tests). The weights need not all move at that rate. In NTK parameterization a hidden-to-hidden
  matrix has ``||W_0||_F = n`` while its gradient ``sw y^T delta`` has O(1) Frobenius norm
  (y = O(1) per unit, delta = df/dz = O(n^-1/2) per unit, sw = O(n^-1/2)), so it moves by
  O(1/n) relatively; the input layer (``||W_0||_F = sqrt(d n)``) and the readout
  (``||W_0||_F = sqrt(n)``) move by O(1) in total, O(n^-1/2) relatively.

  The slopes of ``log median`` against ``log n`` are fitted over the widest half of the widths,
  with bootstrap standard errors (networks resampled within each width).

  An optional ``variant`` architecture (the ReLU network of the shipped config) gets the kernel
  errors at initialisation only.

``mode: circle`` (experiments/ntk_circle.yaml): Figure 1 of Jacot et al. 2018. Inputs on the
unit circle ``x = (cos g, sin g)``; ``Theta(x0, x)`` with ``x0 = (1, 0)`` against g, for each
width, at initialisation and after gradient descent on N standard normal 2-D inputs with
target ``y = x1 x2``, beside the analytic limit.

Arrays of ``mode: scaling`` (the ``<name>.npz`` contract): ``widths`` (W,), ``nngp_rel_err``,
``ntk_rel_err``, ``ntk_change``, ``linearization_gap`` (W, S), ``weight_change`` (W, S, L),
``slope_nngp``, ``slope_ntk``, ``slope_ntk_change``, ``slope_linearization_gap`` (scalars),
``slope_weight_change`` (L,), each slope with ``intercept_*`` and ``se_*`` of the same shape;
``fit_widths`` (2,) the fitted range; ``x_grid`` (M,), ``x_train``, ``y_train`` (N,);
``loss_initial``, ``loss_final`` (W, S); ``f_trained``, ``f_linearized`` (W, M) the outputs
of network 0 of each width after training and of its linearisation; with a variant
``variant_nngp_rel_err``, ``variant_ntk_rel_err`` (W, S) and their slopes.

Arrays of ``mode: circle``, one row per network (``circle.n_networks`` may differ between
widths): ``widths`` (W,), ``gamma`` (G,), ``ntk_limit`` (G,) the analytic ``Theta(x0, x)``,
``network_width`` (R,) each row's width, ``ntk_init``, ``ntk_trained`` (R, G) the empirical
``Theta(x0, x)`` before and after training, ``ntk_rel_err`` (R,) its relative error against the
analytic kernel at initialisation, ``ntk_change`` (R,) its relative change in training,
``loss_initial``, ``loss_final`` (R,), ``x_train`` (N, 2), ``y_train`` (N,).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from .. import networks as nw
from ..architecture import Architecture
from ..config import ArchitectureConfig, ExperimentConfig, Width, setting
from ..errors import ConfigError
from ..progress import progress
from . import Result
from .blog import BLOG_ARCHITECTURE
from .lazy import descend, linearized_path

__all__ = [
    "Config",
    "GridConfig",
    "TrainConfig",
    "CircleConfig",
    "VariantConfig",
    "run",
    "report",
    "relative_error",
    "fit_slope",
    "bootstrap_slope",
    "fit_range",
    "kernel_errors",
]

# Parameters of one ensemble block of networks trained together (bytes).
_BLOCK_BYTES = 64 * 2**20
# Largest single network (its parameters alone; training holds two copies), bytes.
_NETWORK_BYTES = 3 * 2**30
# Bootstrap resamples for the slopes' standard errors.
_BOOTSTRAP = 400

_GABOR_RELU = BLOG_ARCHITECTURE
_RELU = ArchitectureConfig.from_raw(
    {"layers": ["dense", "relu", "dense", "relu", "dense"], "W_std": 1.5, "b_std": 0.05}
)


@dataclass(frozen=True)
class GridConfig:
    """1-D inputs of ``mode: scaling``: kernels and outputs on ``points`` in [x_min, x_max]."""

    x_min: float = setting(-3.0, ge=-1e3, le=1e3, help="left end of the input grid")
    x_max: float = setting(3.0, ge=-1e3, le=1e3, help="right end of the input grid")
    points: int = setting(21, ge=2, le=400, help="points of the grid")


@dataclass(frozen=True)
class TrainConfig:
    """Full-batch gradient descent on ``(1/2N) sum (f - y)^2``."""

    points: int = setting(8, ge=1, le=256, help="training inputs N")
    learning_rate: float = setting(
        1.0, gt=0.0, le=1e3, help="eta (eta / n is used in standard parameterization)"
    )
    steps: int = setting(40, ge=1, le=20_000, help="gradient steps; time t = steps * eta")
    record_every: int = setting(
        5, ge=1, le=20_000, help="compare with the linearised network every this many steps"
    )


@dataclass(frozen=True)
class CircleConfig:
    """Inputs of ``mode: circle``: ``x = (cos g, sin g)`` for ``angles`` g in [-pi, pi]."""

    angles: int = setting(61, ge=3, le=721, help="points g on the circle (x0 is g = 0)")
    n_networks: tuple[int, ...] | None = setting(
        None, ge=1, le=1000, help="networks per width, one per width; null: n_networks each"
    )


@dataclass(frozen=True)
class VariantConfig:
    """A second architecture whose kernel errors at initialisation are drawn dashed."""

    label: str = "ReLU"
    architecture: ArchitectureConfig = _RELU


@dataclass(frozen=True)
class Config(ExperimentConfig):
    """Settings of ``wideinf convergence`` (YAML keys of the same names)."""

    mode: Literal["scaling", "circle"] = "scaling"
    architecture: ArchitectureConfig = _GABOR_RELU
    widths: tuple[Width, ...] = setting(
        tuple(float(2**k) for k in range(4, 14)),
        min_len=2,
        max_len=24,
        help="hidden widths n (finite, increasing)",
    )
    n_networks: int = setting(6, ge=2, le=1000, help="networks S per width")
    grid: GridConfig = GridConfig()
    train: TrainConfig = TrainConfig()
    circle: CircleConfig = CircleConfig()
    variant: VariantConfig | None = setting(
        None, help="mode scaling: a second architecture, kernel errors only; null for none"
    )

    def validate(self, where: str = "config"):
        for i, width in enumerate(self.widths):
            if math.isinf(width):
                raise ConfigError(
                    f"{where}.widths[{i}]: must be finite (the analytic limit is always shown)"
                )
            if i and width <= self.widths[i - 1]:
                raise ConfigError(f"{where}.widths: must increase, got {_ints(self.widths)}")
        if self.grid.x_min >= self.grid.x_max:
            raise ConfigError(
                f"{where}.grid.x_min: must be below x_max, got {self.grid.x_min:g} >= "
                f"{self.grid.x_max:g}"
            )
        counts = self.circle.n_networks
        if counts is not None and len(counts) != len(self.widths):
            raise ConfigError(
                f"{where}.circle.n_networks: needs one count per width ({len(self.widths)}), "
                f"got {len(counts)}"
            )
        if self.mode == "circle" and self.variant is not None:
            raise ConfigError(f"{where}.variant: only used in mode scaling; remove it or use null")
        d_in = 2 if self.mode == "circle" else 1
        archs = [self.architecture] + ([self.variant.architecture] if self.variant else [])
        for arch_cfg in archs:
            arch = Architecture.from_config(arch_cfg)
            for i, width in enumerate(self.widths):
                size = _parameter_bytes(arch, d_in, int(width))
                if size > _NETWORK_BYTES:
                    raise ConfigError(
                        f"{where}.widths[{i}]: width {int(width)} needs "
                        f"{size / 2**30:.1f} GiB per network (at most "
                        f"{_NETWORK_BYTES / 2**30:.0f} GiB); use a smaller width"
                    )


def _ints(widths) -> list[int]:
    return [int(w) for w in widths]


def _parameter_bytes(arch, d_in: int, width: int) -> int:
    dims = (d_in, *[width] * arch.n_hidden, 1)
    return 8 * sum(a * b + b for a, b in zip(dims[:-1], dims[1:]))


# ----------------------------------------------------------------------------- statistics


def relative_error(estimate, reference) -> np.ndarray:
    """``||estimate - reference||_F / ||reference||_F`` over the last two axes.

    Parameters
    ----------
    estimate : ndarray, shape (..., M1, M2)
    reference : ndarray, shape (M1, M2) or (..., M1, M2)
    """
    diff = np.linalg.norm(estimate - reference, axis=(-2, -1))
    return diff / np.linalg.norm(reference, axis=(-2, -1))


def fit_range(n_widths: int) -> slice:
    """The widest half of the widths (at least two): the slice the slopes are fitted on."""
    return slice(n_widths - max(2, math.ceil(n_widths / 2)), n_widths)


def fit_slope(widths, values) -> tuple[float, float]:
    """Least-squares line through ``(log n, log median_S values)``; values (W, S).

    Returns (slope, intercept): ``median ~ exp(intercept) n^slope``.
    """
    med = np.median(values, axis=1)  # (W,)
    slope, intercept = np.polyfit(np.log(widths), np.log(med), 1)
    return float(slope), float(intercept)


def bootstrap_slope(widths, values, rng, resamples: int = _BOOTSTRAP) -> float:
    """Standard error of :func:`fit_slope` by resampling the networks within each width."""
    w, s = values.shape
    idx = rng.integers(0, s, size=(resamples, w, s))  # (B, W, S)
    rows = np.arange(w)[None, :, None]
    med = np.median(values[rows, idx], axis=2)  # (B, W)
    logn = np.log(widths) - np.mean(np.log(widths))
    slopes = np.log(med) @ logn / (logn @ logn)  # (B,)
    return float(np.std(slopes, ddof=1))


def _fit(arrays, key, widths, values, rng):
    """Store ``slope_key``, ``intercept_key``, ``se_key`` fitted over the widest half."""
    sl = fit_range(len(widths))
    values = np.asarray(values)
    if values.ndim == 3:  # (W, S, L): one fit per layer
        fits = [_fit_one(widths[sl], values[sl, :, j], rng) for j in range(values.shape[2])]
        for name, part in zip(("slope", "intercept", "se"), zip(*fits)):
            arrays[f"{name}_{key}"] = np.array(part)
        return
    for name, part in zip(("slope", "intercept", "se"), _fit_one(widths[sl], values[sl], rng)):
        arrays[f"{name}_{key}"] = np.float64(part)


def _fit_one(widths, values, rng):
    slope, intercept = fit_slope(widths, values)
    return slope, intercept, bootstrap_slope(widths, values, rng)


# ----------------------------------------------------------------------------- networks


def _learning_rate(arch, eta: float, width: int) -> float:
    """Step size on the stored parameters: eta, or eta / n in standard parameterization."""
    return eta / width if arch.parameterization == "standard" else eta


def _blocks_of_networks(arch, d_in: int, width: int, n_networks: int) -> list[slice]:
    per = max(1, _parameter_bytes(arch, d_in, width))
    size = max(1, min(n_networks, _BLOCK_BYTES // per))
    return [slice(a, min(n_networks, a + size)) for a in range(0, n_networks, size)]


def _init(arch, d_in: int, width: int, rngs) -> nw.Params:
    """One network per generator, stacked: network j is the same whatever the blocking."""
    nets = [nw.init_params(arch, d_in, width, 1, r) for r in rngs]
    if len(nets) == 1:
        return nets[0]
    return nw.Params(
        tuple(np.concatenate(ws) for ws in zip(*(p.weights for p in nets))),
        tuple(np.concatenate(bs) for bs in zip(*(p.biases for p in nets))),
    )


def _lazy_block(
    arch, params, x_eval, x_train, y_train, train: TrainConfig, width: int, linearize=True
):
    """Train a block of S networks (beside their linearisations); per-network measurements.

    Returns theta0 and theta_t (S, M, M), the empirical NTK on ``x_eval`` before and after
    training; loss_initial and loss_final (S,); with ``linearize`` also gap (S,), the largest
    RMS difference from the linearised network over the recorded steps, f_trained and
    f_linearized (S, M) at the end, and weight_change (S, L).
    """
    m = x_eval.shape[0]
    x_all = np.vstack([x_eval, x_train]) if linearize else x_eval  # (M [+ N], d)
    theta_all = nw.empirical_ntk(arch, params, x_all)  # (S, M + N, M + N)
    eta = _learning_rate(arch, train.learning_rate, width)
    copy_bytes = 8 * params.n_networks * params.n_params  # descend trains a copy
    nw.check_memory(copy_bytes, f"training {params.n_networks} network(s) of width {width}")
    f0 = nw.forward(arch, params, x_all) if linearize else None  # (S, M + N)
    trace = descend(
        arch, params, x_train, y_train, eta, train.steps, x_record=x_eval,
        record_every=train.record_every if linearize else train.steps,
    )  # fmt: skip
    out = {
        "theta0": theta_all[:, :m, :m],
        "theta_t": nw.empirical_ntk(arch, trace.params, x_eval),  # (S, M, M)
        "loss_initial": trace.loss[:, 0],
        "loss_final": trace.loss[:, -1],
        "weight_change": trace.weight_change,
    }
    if linearize:
        # The reported kernel is Theta / n in standard parameterization, where eta / n is used,
        # so the kernel times the step size is learning_rate * Theta_reported in both.
        f_lin = linearized_path(
            theta_all[:, :m, m:], theta_all[:, m:, m:], f0[:, :m], f0[:, m:], y_train,
            train.learning_rate, trace.steps_recorded,
        )  # (S, T, M)  # fmt: skip
        diff = trace.f_path - f_lin  # (S, T, M)
        out["gap"] = np.sqrt(np.mean(diff * diff, axis=2)).max(axis=1)  # (S,)
        out["f_trained"] = trace.f_path[:, -1]
        out["f_linearized"] = f_lin[:, -1]
    return out


# ----------------------------------------------------------------------------- scaling


def _scaling(config: Config, rng) -> Result:
    arch = Architecture.from_config(config.architecture)
    widths = np.array(config.widths)  # (W,)
    n_w, s = len(widths), config.n_networks
    g, t = config.grid, config.train
    x_grid = np.linspace(g.x_min, g.x_max, g.points)  # (M,)
    cell = (g.x_max - g.x_min) / t.points
    x_train = g.x_min + cell * (np.arange(t.points) + 0.5)  # (N,)
    y_train = np.sin(x_train)  # (N,)
    xg, xt = x_grid[:, None], x_train[:, None]
    n_layers = arch.n_hidden + 1

    boot_rng, variant_rng, *width_rngs = rng.spawn(n_w + 2)
    out = {k: np.empty((n_w, s)) for k in _SCALING_WS}
    out["weight_change"] = np.empty((n_w, s, n_layers))
    out["f_trained"] = np.empty((n_w, g.points))
    out["f_linearized"] = np.empty((n_w, g.points))
    bar = progress(total=n_w * s, desc="networks")
    try:
        for i, width in enumerate(widths.astype(int)):
            kernel = arch.kernel(xg, width=width)
            nets = width_rngs[i].spawn(s)
            for sl in _blocks_of_networks(arch, 1, width, s):
                params = _init(arch, 1, width, nets[sl])
                nngp = nw.empirical_nngp(arch, params, xg)  # (S_b, M, M)
                out["nngp_rel_err"][i, sl] = relative_error(nngp, kernel.nngp)
                res = _lazy_block(arch, params, xg, xt, y_train, t, width)
                del params
                out["ntk_rel_err"][i, sl] = relative_error(res["theta0"], kernel.ntk)
                out["ntk_change"][i, sl] = relative_error(res["theta_t"], res["theta0"])
                out["linearization_gap"][i, sl] = res["gap"]
                out["weight_change"][i, sl] = res["weight_change"]
                out["loss_initial"][i, sl] = res["loss_initial"]
                out["loss_final"][i, sl] = res["loss_final"]
                if sl.start == 0:
                    out["f_trained"][i] = res["f_trained"][0]
                    out["f_linearized"][i] = res["f_linearized"][0]
                bar.update(sl.stop - sl.start)
    finally:
        bar.close()

    arrays = {"widths": widths, "x_grid": x_grid, "x_train": x_train, "y_train": y_train}
    arrays.update(out)
    sl = fit_range(n_w)
    arrays["fit_widths"] = widths[[sl.start, n_w - 1]]
    for key in ("nngp", "ntk"):
        _fit(arrays, key, widths, out[f"{key}_rel_err"], boot_rng)
    for key in ("ntk_change", "linearization_gap", "weight_change"):
        _fit(arrays, key, widths, out[key], boot_rng)
    if config.variant is not None:
        errs = kernel_errors(config.variant.architecture, widths, s, xg, variant_rng)
        for key, values in errs.items():
            arrays[f"variant_{key}_rel_err"] = values
            _fit(arrays, f"variant_{key}", widths, values, boot_rng)

    summary = {
        "widths": f"{int(widths[0])} .. {int(widths[-1])} ({n_w} widths)",
        "networks_per_width": s,
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
    summary["median_loss_final_widest"] = float(f"{np.median(out['loss_final'][-1]):.3g}")
    warnings = []
    if np.median(out["loss_final"][-1]) > 0.1 * np.median(out["loss_initial"][-1]):
        warnings.append(
            "the widest networks reduced their training loss by less than 10x; "
            "training is short (raise train.steps or train.learning_rate)"
        )
    return Result(arrays, summary, warnings)


_SCALING_WS = (
    "nngp_rel_err",
    "ntk_rel_err",
    "ntk_change",
    "linearization_gap",
    "loss_initial",
    "loss_final",
)


def kernel_errors(arch_cfg, widths, s, xg, rng) -> dict[str, np.ndarray]:
    """Relative NNGP and NTK errors of freshly initialised networks on 1-D inputs.

    Parameters
    ----------
    arch_cfg : ArchitectureConfig
    widths : ndarray, shape (W,)
    s : int
        Networks per width.
    xg : ndarray, shape (M, 1)
    rng : numpy.random.Generator

    Returns
    -------
    {"nngp": (W, S), "ntk": (W, S)}
    """
    arch = Architecture.from_config(arch_cfg)
    errs = {"nngp": np.empty((len(widths), s)), "ntk": np.empty((len(widths), s))}
    width_rngs = rng.spawn(len(widths))
    for i, width in enumerate(progress(widths.astype(int), desc="variant widths")):
        kernel = arch.kernel(xg, width=width)
        nets = width_rngs[i].spawn(s)
        for sl in _blocks_of_networks(arch, 1, width, s):
            params = _init(arch, 1, width, nets[sl])
            errs["nngp"][i, sl] = relative_error(nw.empirical_nngp(arch, params, xg), kernel.nngp)
            errs["ntk"][i, sl] = relative_error(nw.empirical_ntk(arch, params, xg), kernel.ntk)
    return errs


# ----------------------------------------------------------------------------- circle


def _circle(config: Config, rng) -> Result:
    arch = Architecture.from_config(config.architecture)
    widths = np.array(config.widths)  # (W,)
    counts = config.circle.n_networks or (config.n_networks,) * len(widths)
    t = config.train
    gamma = np.linspace(-np.pi, np.pi, config.circle.angles)  # (G,)
    x0 = np.array([[1.0, 0.0]])  # (1, 2)
    xc = np.stack([np.cos(gamma), np.sin(gamma)], axis=1)  # (G, 2)
    x_eval = np.vstack([x0, xc])  # (1 + G, 2)
    data_rng, *width_rngs = rng.spawn(len(widths) + 1)
    x_train = data_rng.standard_normal((t.points, 2))  # (N, 2)
    y_train = x_train[:, 0] * x_train[:, 1]  # (N,)

    rows = {k: [] for k in ("ntk_init", "ntk_trained", "ntk_rel_err", "ntk_change")}
    rows.update(loss_initial=[], loss_final=[], network_width=[])
    bar = progress(total=sum(counts), desc="networks")
    try:
        for i, (width, s) in enumerate(zip(widths.astype(int), counts)):
            ref = arch.kernel(x0, xc, width=width).ntk[0]  # (G,)
            nets = width_rngs[i].spawn(s)
            for sl in _blocks_of_networks(arch, 2, width, s):
                params = _init(arch, 2, width, nets[sl])
                res = _lazy_block(arch, params, x_eval, x_train, y_train, t, width, False)
                del params
                row0 = res["theta0"][:, 0, 1:]  # (S_b, G)
                row_t = res["theta_t"][:, 0, 1:]  # (S_b, G)
                rows["ntk_init"].append(row0)
                rows["ntk_trained"].append(row_t)
                rows["ntk_rel_err"].append(relative_error(row0[:, None], ref[None]))
                rows["ntk_change"].append(relative_error(row_t[:, None], row0[:, None]))
                rows["loss_initial"].append(res["loss_initial"])
                rows["loss_final"].append(res["loss_final"])
                rows["network_width"].append(np.full(row0.shape[0], float(width)))
                bar.update(sl.stop - sl.start)
    finally:
        bar.close()
    arrays = {
        "widths": widths,
        "gamma": gamma,
        "ntk_limit": arch.kernel(x0, xc).ntk[0],  # (G,), infinite width
        **{k: np.concatenate(v) for k, v in rows.items()},
        "x_train": x_train,
        "y_train": y_train,
    }
    summary = {"widths": ", ".join(str(w) for w in _ints(widths)), "networks": list(counts)}
    for width in _ints(widths):
        pick = arrays["network_width"] == width
        for key in ("ntk_rel_err", "ntk_change"):
            summary[f"median_{key}_w{width}"] = round(float(np.median(arrays[key][pick])), 4)
    return Result(arrays, summary, [])


# ----------------------------------------------------------------------------- entry points


def run(config: Config, rng: np.random.Generator) -> Result:
    """Run the experiment; see the module docstring for the arrays of each mode."""
    if config.mode == "circle":
        return _circle(config, rng)
    return _scaling(config, rng)


def report(result: Result) -> list[str]:
    """The numbers to check: fitted slopes (scaling) or kernel spread and motion (circle)."""
    s = result.summary
    if "slope_nngp" in s:
        lines = [f"slopes of log error vs log width over n = {s['fit_widths']} (n^-1/2: -0.5):"]
        names = {
            "nngp": "NNGP error at init",
            "ntk": "NTK error at init",
            "ntk_change": "NTK change in training",
            "linearization_gap": "gap to linearised network",
        }
        for key, label in names.items():
            lines.append(f"  {label:28s} {s[f'slope_{key}']:+.3f} +- {s[f'se_{key}']:.3f}")
        layers = [v for k, v in s.items() if k.startswith("slope_weight_change_layer")]
        lines.append("  weight change per layer     " + ", ".join(f"{v:+.3f}" for v in layers))
        if "slope_variant_nngp" in s:
            lines.append(
                f"  variant NNGP / NTK error     {s['slope_variant_nngp']:+.3f} / "
                f"{s['slope_variant_ntk']:+.3f}"
            )
        return lines
    lines = []
    for key, value in s.items():
        if key.startswith("median_ntk_rel_err_w"):
            width = key.rsplit("_w", 1)[1]
            change = s[f"median_ntk_change_w{width}"]
            lines.append(
                f"width {width}: median error of Theta(x0, .) at init {value:.3f}, "
                f"change in training {change:.3f}"
            )
    return lines
