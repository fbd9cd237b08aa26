"""NNGP posterior vs NTK ensemble vs trained finite networks (blog Figure 2).

On one regression data set (by default the blog's: sin(x) plus noise of sd 0.1, 10 training and
100 test points in [-3, 3]), on a grid of inputs and at the test points: the NNGP posterior of f;
the NTK ensemble (Lee et al. 2019, arXiv:1902.06720) at ``t = inf`` and at each of ``times``;
optionally the NTK-GP (He et al. 2020, arXiv:2007.05864); optionally S finite networks trained
by gradient descent for ``steps`` steps of ``learning_rate``, against the NTK ensemble at their
time (:mod:`wideinf.experiments.trained_ensemble`). Formulas: :mod:`wideinf.predict` and
docs/theory.md, "Predictions". Bands are mean +- 1.96 sd of f; the test metrics' bands add the
observation noise (:func:`band_metrics`). ``ntk_band: nngp`` draws the NTK band with the NNGP
sd, as the original figure did; the arrays always hold the NTK ensemble's sd (``ntk_std``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..architecture import Architecture
from ..config import ArchitectureConfig, ExperimentConfig, setting
from ..data import DataConfig, Dataset, load_dataset
from ..errors import ConfigError
from ..predict import gp_posterior, ntk_ensemble
from . import Result
from .ensemble import BLOG_ARCHITECTURE, check_ensemble_size, step_size
from .trained_ensemble import compare_trained_ensemble, diag_reg_args

__all__ = ["Config", "run", "report", "make_grid", "kernel_blocks", "band_metrics"]

Z95 = 1.959963984540054  # two-sided 95% normal quantile
_DIAG_BLOCK = 256  # eval points per block when computing the kernels' diagonals
_MAX_ENSEMBLE_PARAMS = 10**8  # parameters of the whole ensemble (0.8 GB per copy)


@dataclass(frozen=True)
class EnsembleConfig:
    """The ``ensemble:`` block: finite networks trained by full-batch gradient descent."""

    size: int = setting(32, ge=0, le=4096, help="networks S; 0 turns the ensemble off")
    width: int = setting(1024, ge=1, le=65536, help="width of every hidden layer")
    learning_rate: float | None = setting(
        None,
        gt=0.0,
        le=1e6,
        help="eta (time t = steps * eta); null: N / (largest eigenvalue of the train NTK)",
    )
    steps: int = setting(100, ge=0, le=1_000_000, help="gradient descent steps")


@dataclass(frozen=True)
class Config(ExperimentConfig):
    """Settings of ``wideinf compare-ntk`` (YAML keys of the same names)."""

    architecture: ArchitectureConfig = BLOG_ARCHITECTURE
    data: DataConfig = setting(DataConfig(), help="CSV file or generated data (wideinf.data)")
    diag_reg: float = setting(
        1e-4, ge=0.0, le=1e6, help="added to the diagonal of the train-train matrix inverted"
    )
    diag_reg_relative: bool = setting(
        True, help="multiply diag_reg by trace/N of that matrix (Neural Tangents' default)"
    )
    times: tuple[float, ...] = setting(
        (0.0, 3.0, 10.0, 30.0, 100.0, 1000.0),
        ge=0.0,
        max_len=50,
        allow_inf=True,
        help="gradient-flow times t (steps x learning rate) of the NTK ensemble",
    )
    ntk_band: Literal["ntk", "nngp"] = setting(
        "ntk", help="sd of the NTK band: ntk (the ensemble's) or nngp (as the original figure)"
    )
    ntk_gp: bool = setting(False, help="also show the NTK-GP of He et al. 2020")
    grid_points: int = setting(200, ge=2, le=10_000, help="inputs where the curves are drawn")
    grid_range: tuple[float, ...] = setting(
        (),
        max_len=2,
        help="[low, high] of the curves' inputs; empty: data.x_range or the data's span",
    )
    ensemble: EnsembleConfig = setting(EnsembleConfig(), help="finite networks trained by GD")

    def validate(self, where: str = "config"):
        low_high = self.grid_range
        if low_high and (len(low_high) != 2 or not low_high[0] < low_high[1]):
            raise ConfigError(
                f"{where}.grid_range: expected [low, high] with low < high, got {list(low_high)}"
            )
        ens = self.ensemble
        if ens.size:
            if ens.size < 2:
                raise ConfigError(f"{where}.ensemble.size: need at least 2 networks (or 0)")
            d = self.data.input_dim if not self.data.file else 1
            check_ensemble_size(
                self.architecture, d, ens.width, ens.size, _MAX_ENSEMBLE_PARAMS, f"{where}.ensemble"
            )


# ----------------------------------------------------------------------------- inputs


def make_grid(config: Config, data: Dataset) -> np.ndarray:
    """Inputs where the curves are drawn, shape (G, d): in 1-D ``grid_points`` points over
    ``grid_range``, else ``data.x_range`` (generated data), else the data's span widened by 5%
    each side; in several dimensions the test inputs (or without them the training inputs)."""
    if data.dim > 1:
        return (data.x_test if data.n_test else data.x_train).copy()
    if config.grid_range:
        lo, hi = config.grid_range
    elif not config.data.file:
        lo, hi = config.data.x_range
    else:
        xs = np.concatenate([data.x_train[:, 0], data.x_test[:, 0]])
        pad = 0.05 * max(float(xs.max() - xs.min()), 1e-3)
        lo, hi = float(xs.min()) - pad, float(xs.max()) + pad
    return np.linspace(lo, hi, config.grid_points)[:, None]  # (G, 1)


@dataclass(frozen=True)
class KernelBlocks:
    """Kernel blocks between N training and M evaluation inputs."""

    nngp_train: np.ndarray  # (N, N)
    ntk_train: np.ndarray  # (N, N)
    nngp_cross: np.ndarray  # (M, N): evaluation inputs (rows) against training inputs
    ntk_cross: np.ndarray  # (M, N)
    nngp_diag: np.ndarray  # (M,) K(x, x) at the evaluation inputs
    ntk_diag: np.ndarray  # (M,) Theta(x, x)


def kernel_blocks(arch: Architecture, x_train: np.ndarray, x_eval: np.ndarray) -> KernelBlocks:
    """The analytic NNGP and NTK blocks that the predictions need (no (M, M) matrix)."""
    train = arch.kernel(x_train)  # (N, N)
    cross = arch.kernel(x_eval, x_train)  # (M, N)
    ntk_diag = np.empty(x_eval.shape[0])  # (M,)
    for start in range(0, x_eval.shape[0], _DIAG_BLOCK):
        block = arch.kernel(x_eval[start : start + _DIAG_BLOCK])
        ntk_diag[start : start + _DIAG_BLOCK] = np.diagonal(block.ntk)
    return KernelBlocks(
        train.nngp, train.ntk, cross.nngp, cross.ntk, np.asarray(cross.var1), ntk_diag
    )


# ----------------------------------------------------------------------------- metrics


def band_metrics(mean, std, y, noise: float) -> tuple[float, float]:
    """(RMSE of ``mean`` against ``y``, fraction of ``y`` inside ``mean +- 1.96 sqrt(std^2 +
    noise^2)``); NaN for no points. mean, std, y: shape (m,)."""
    if len(y) == 0:
        return math.nan, math.nan
    err = np.asarray(mean) - np.asarray(y)  # (m,)
    half = Z95 * np.sqrt(np.asarray(std) ** 2 + noise**2)  # (m,)
    return float(np.sqrt(np.mean(err**2))), float(np.mean(np.abs(err) <= half))


# ----------------------------------------------------------------------------- run


def run(config: Config, rng: np.random.Generator) -> Result:
    """Compute every curve, band and metric of the figure (see the module docstring)."""
    data_rng, net_rng, stats_rng = rng.spawn(3)
    data = load_dataset(config.data, config.config_dir, data_rng)
    arch = Architecture.from_config(config.architecture)
    x_grid = make_grid(config, data)  # (G, d)
    g = x_grid.shape[0]
    x_eval = np.concatenate([x_grid, data.x_test])  # (G + m, d)
    blocks = kernel_blocks(arch, data.x_train, x_eval)
    ens, warnings = config.ensemble, []
    times = [math.inf, *config.times]  # and the finite networks' time t = steps * eta
    if ens.size:
        eta = ens.learning_rate or step_size(blocks.ntk_train)
        times.append(ens.steps * eta)
        stable = step_size(blocks.ntk_train, 2.0)
        if eta >= stable:
            warnings.append(
                f"ensemble.learning_rate {eta:g} is above the stable limit 2N/lambda_max = "
                f"{stable:.3g} of the infinite-width dynamics"
            )
    # Variances only, no (M, M) covariance; the NTK ensemble has one row (G + m,) per time.
    b, y, reg = blocks, data.y_train, diag_reg_args(config)
    nngp = gp_posterior(b.nngp_train, b.nngp_cross, b.nngp_diag, y, **reg)
    ntk = ntk_ensemble(
        b.ntk_train, b.ntk_cross, b.nngp_train, b.nngp_cross, b.nngp_diag, y, times, **reg
    )

    arrays = {
        "x_train": data.x_train,
        "y_train": data.y_train,
        "x_test": data.x_test,
        "y_test": data.y_test,
        "x_grid": x_grid,
        "nngp_mean": nngp.mean[:g],
        "nngp_std": nngp.std[:g],
        "ntk_mean": ntk.mean[0, :g],
        "ntk_std": ntk.std[0, :g],
        "times": np.asarray(config.times, dtype=float),
        "ntk_mean_t": ntk.mean[1 : 1 + len(config.times), :g],
        "ntk_std_t": ntk.std[1 : 1 + len(config.times), :g],
    }
    # The test metrics use the band as drawn (ntk_band: nngp draws the NNGP sd around the NTK mean).
    ntk_band_std = nngp.std if config.ntk_band == "nngp" else ntk.std[0]
    summary: dict = {
        "n_train": data.n_train,
        "n_test": data.n_test,
        "noise": data.noise,
        "diag_reg": config.diag_reg,
        "diag_reg_relative": config.diag_reg_relative,
        "ntk_band": config.ntk_band,
    }
    methods = {"nngp": (nngp.mean, nngp.std), "ntk": (ntk.mean[0], ntk_band_std)}
    if config.ntk_gp:
        gp = gp_posterior(b.ntk_train, b.ntk_cross, b.ntk_diag, y, name="NTK", **reg)
        arrays["ntkgp_mean"], arrays["ntkgp_std"] = gp.mean[:g], gp.std[:g]
        methods["ntk_gp"] = (gp.mean, gp.std)

    if ens.size:  # the NTK ensemble at the networks' time is the last row
        ens_arrays, ens_summary, ens_warnings, e_pred = compare_trained_ensemble(
            arch, config, data, x_grid, x_eval, blocks, eta, ntk.mean[-1], ntk.std[-1],
            net_rng, stats_rng,
        )  # fmt: skip
        arrays.update(ens_arrays)
        summary.update(ens_summary)
        summary["ntk_t_vs_inf_max_abs_mean"] = float(
            np.max(np.abs(ntk.mean[-1, :g] - ntk.mean[0, :g]))
        )
        warnings.extend(ens_warnings)
        methods["ensemble"] = e_pred
    for name, (mean, std) in methods.items():
        summary[f"rmse_{name}"], summary[f"coverage_{name}"] = band_metrics(
            mean[g:], std[g:], data.y_test, data.noise
        )
    return Result(arrays, summary, warnings)


_LABELS = {"nngp": "NNGP", "ntk": "NTK", "ntk_gp": "NTK-GP", "ensemble": "trained networks"}


def report(result: Result) -> list[str]:
    """RMSE and 95% coverage of each method on the test points; the ensemble's agreement."""
    s = result.summary
    names = [k for k in _LABELS if f"rmse_{k}" in s]
    lines = []
    if s.get("n_test", 0):
        lines.append("test RMSE: " + ", ".join(f"{_LABELS[k]} {s[f'rmse_{k}']:.4f}" for k in names))
        lines.append(
            f"test targets inside the 95% band (noise sd {s['noise']:g} included): "
            + ", ".join(f"{_LABELS[k]} {s[f'coverage_{k}']:.0%}" for k in names)
        )
    if "ensemble_time" in s:
        lines.append(
            f"trained networks: {s['ensemble_size']} x width {s['ensemble_width']}, "
            f"{s['ensemble_steps']} steps of {s['ensemble_learning_rate']:.4g} "
            f"(t = {s['ensemble_time']:.4g}), final train loss {s['ensemble_final_loss']:.2e}"
        )
        lines.append(
            f"vs the NTK ensemble at that t: largest differences {s['ensemble_mean_max_abs_diff']:.3f}"
            f" (mean), {s['ensemble_std_max_abs_diff']:.3f} (sd); where its band is wide"
            f" ({s['ensemble_z_points']} grid points), rms z of the mean {s['ensemble_mean_z_rms']:.2f} "
            f"(99% limit {s['ensemble_mean_z_rms_q99']:.2f}), of the sd "
            f"{s['ensemble_std_z_rms']:.2f} (99% limit {s['ensemble_std_z_rms_q99']:.2f})"
        )
    return lines
