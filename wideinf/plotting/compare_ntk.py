"""Blog Figure 2: NNGP and NTK predictions, with trained finite networks over them.

Main figure (``<name>.png``): as the original for 1-D inputs (means with +- 1.96 sd bands,
train and test points); for several input dimensions, each method's mean and 95% band against
the test targets. Second figure (``<name>_time.png``, 1-D inputs): the NTK ensemble's mean
along training time, and the trained networks against the NTK ensemble at their time.
"""

from __future__ import annotations

import numpy as np

from . import CAPTION_FONTSIZE, finish_axes, plt, viridis

__all__ = ["plot", "TITLE"]

TITLE = "Comparison of the NNGP and NTK outputs"
_Z = 1.96
_ENSEMBLE_COLOR = "C3"


def plot(result, config) -> dict:
    """``{"": main figure, "time": training-time figure}`` from a compare-ntk Result."""
    a = result.arrays
    one_d = a["x_grid"].shape[1] == 1
    figures = {"": _main_1d(result, config) if one_d else _main_nd(result, config)}
    if one_d and (np.asarray(a["times"]).size > 0 or "ensemble_mean" in a):
        figures["time"] = _time_figure(result, config)
    return figures


def _filled_band(ax, x, mean, sd, color, label):
    ax.plot(x, mean, color=color, lw=2, label=label)
    ax.fill_between(x, mean - _Z * sd, mean + _Z * sd, color=color, alpha=0.3, lw=0)


def _line_band(ax, x, mean, sd, color, ls, label, lw=(1.6, 1.0)):
    ax.plot(x, mean, color=color, ls=ls, lw=lw[0], label=label)
    for edge in (mean - _Z * sd, mean + _Z * sd):
        ax.plot(x, edge, color=color, ls=ls, lw=lw[1])


def _ensemble_band(ax, x, a, result, config):
    size = result.summary.get("ensemble_size", config.ensemble.size)
    width = result.summary.get("ensemble_width", config.ensemble.width)
    t = float(np.asarray(a["ensemble_time"]))
    label = f"Trained networks ({size} × width {width}, t = {t:.3g}): mean ± 1.96 sd"
    _line_band(ax, x, a["ensemble_mean"], a["ensemble_std"], _ENSEMBLE_COLOR, "--", label)


def _train_points(ax, a, size):
    ax.scatter(a["x_train"][:, 0], a["y_train"], s=size, color="k", zorder=5, label="Train points")


def _main_1d(result, config):
    a = result.arrays
    x = a["x_grid"][:, 0]  # (G,)
    # fixed margins (the saved figure is cropped to its content): cheaper than a layout engine
    fig, ax = plt.subplots(figsize=(10, 5.6))

    _filled_band(ax, x, a["nngp_mean"], a["nngp_std"], "C0", "Mean predictions, NNGP")
    _filled_band(ax, x, a["ntk_mean"], a[f"{config.ntk_band}_std"], "C2", "Mean predictions, NTK")
    if "ntkgp_mean" in a:
        m, sd = a["ntkgp_mean"], a["ntkgp_std"]
        ax.plot(x, m - _Z * sd, color="C4", ls=":", lw=1.5, label="95% band, NTK-GP")
        ax.plot(x, m + _Z * sd, color="C4", ls=":", lw=1.5)
    if "ensemble_mean" in a:
        mu_t, sd_t = a["ntk_mean_ensemble_time"], a["ntk_std_ensemble_time"]
        gap = max(np.max(np.abs(mu_t - a["ntk_mean"])), np.max(np.abs(sd_t - a["ntk_std"])))
        if gap > 0.01:  # the networks stopped short of t = inf: show the NTK where they are
            t = float(np.asarray(a["ensemble_time"]))
            label = f"NTK ensemble at the networks' t = {t:.3g}: mean ± 1.96 sd"
            _line_band(ax, x, mu_t, sd_t, "C2", ":", label, lw=(1.8, 1.4))
        _ensemble_band(ax, x, a, result, config)
    _train_points(ax, a, 60)
    if a["x_test"].shape[0]:
        ax.scatter(
            a["x_test"][:, 0], a["y_test"], s=22, color="C1", edgecolors="k", lw=0.6,
            zorder=4, label="Test points",
        )  # fmt: skip
    finish_axes(
        ax, xlim=(x[0], x[-1]), title=TITLE, xlabel="x", ylabel="f(x)",
        legend={"loc": "best", "fontsize": CAPTION_FONTSIZE + 1, "framealpha": 0.85},
    )  # fmt: skip
    _add_caption(ax, result, config)
    return fig


def _add_caption(ax, result, config):
    """The caption under the axes' x label (the saved figure is cropped to its content)."""
    s = result.summary
    reg = f"diag_reg {config.diag_reg:g}" + (" × trace/N" if config.diag_reg_relative else "")
    band = (
        "the NTK band uses the NNGP posterior sd, as in the original figure"
        if config.ntk_band == "nngp"
        else "the NTK band is the sd of the infinite ensemble of networks trained to t = ∞"
    )
    lines = [f"Bands: mean ± 1.96 sd of f (95%, without observation noise); {band}; {reg}."]
    names = [("nngp", "NNGP"), ("ntk", "NTK"), ("ntk_gp", "NTK-GP"), ("ensemble", "trained")]
    have = [(k, lab) for k, lab in names if f"rmse_{k}" in s and s.get("n_test")]
    if have:
        rmse = ", ".join(f"{lab} {s[f'rmse_{k}']:.3f}" for k, lab in have)
        cov = ", ".join(f"{lab} {s[f'coverage_{k}']:.0%}" for k, lab in have)
        lines.append(
            f"Test RMSE: {rmse}. Test targets inside the 95% band with noise sd "
            f"{s.get('noise', 0):g} added: {cov}."
        )
    if "ensemble_time" in s:
        lines.append(
            f"Trained networks: full-batch gradient descent, {s['ensemble_steps']} steps of "
            f"{s['ensemble_learning_rate']:.3g}. Against the NTK ensemble at the same t, where "
            f"its band is wide: rms z of the mean {s['ensemble_mean_z_rms']:.2f}, of the sd "
            f"{s['ensemble_std_z_rms']:.2f} (99% Monte Carlo limits "
            f"{s['ensemble_mean_z_rms_q99']:.2f}, {s['ensemble_std_z_rms_q99']:.2f})."
        )
    ax.annotate(
        "\n".join(lines), xy=(0, 0), xycoords="axes fraction", xytext=(-40, -36),
        textcoords="offset points", ha="left", va="top", fontsize=CAPTION_FONTSIZE, wrap=True,
    )  # fmt: skip


def _main_nd(result, config):
    """Inputs of several dimensions: predicted mean +- 1.96 sd against each test target."""
    a = result.arrays
    fig, ax = plt.subplots(figsize=(6.5, 6))
    y = a["y_test"] if a["x_test"].shape[0] else a["y_train"]
    methods = [("nngp", "C0", "NNGP"), ("ntk", "C2", "NTK")]
    if "ensemble_mean" in a:
        methods.append(("ensemble", _ENSEMBLE_COLOR, "trained networks"))
    offsets = np.linspace(-0.01, 0.01, len(methods)) * (np.ptp(y) or 1.0)
    for (key, color, label), dx in zip(methods, offsets):
        std = a[f"{config.ntk_band}_std"] if key == "ntk" else a[f"{key}_std"]
        ax.errorbar(
            y + dx, a[f"{key}_mean"], yerr=_Z * std, fmt="o", ms=3, color=color, alpha=0.7,
            label=f"Mean predictions, {label}",
        )  # fmt: skip
    lo, hi = float(np.min(y)), float(np.max(y))
    ax.plot([lo, hi], [lo, hi], color="0.4", lw=1, ls="--", label="prediction = target")
    finish_axes(
        ax, title=TITLE, xlabel="Test target y" if a["x_test"].shape[0] else "Train target y",
        ylabel="Prediction (mean ± 1.96 sd)",
        legend={"loc": "upper left", "fontsize": CAPTION_FONTSIZE + 1},
    )  # fmt: skip
    _add_caption(ax, result, config)
    return fig


def _time_figure(result, config):
    a, s = result.arrays, result.summary
    x = a["x_grid"][:, 0]  # (G,)
    has_ens = "ensemble_mean" in a
    ncols = 3 if has_ens else 1
    fig, axes = plt.subplots(
        1, ncols, figsize=(6.2 * ncols if not has_ens else 17, 4.8), squeeze=False,
        gridspec_kw={"width_ratios": [1, 1, 0.7][:ncols]},
    )  # fmt: skip
    fig.subplots_adjust(wspace=0.22)
    ax = axes[0, 0]
    times = np.asarray(a["times"], dtype=float)
    axis_labels = {"xlabel": "x", "ylabel": "f(x)", "xlim": (x[0], x[-1])}
    for t, mean, color in zip(times, a["ntk_mean_t"], viridis(times.size)):
        ax.plot(x, mean, color=color, lw=1.4, label="t = ∞" if np.isinf(t) else f"t = {t:.4g}")
    ax.plot(x, a["ntk_mean"], color="C2", lw=2.4, label="t = ∞")
    _train_points(ax, a, 40)
    finish_axes(
        ax, title="NTK ensemble mean during training (gradient flow)", **axis_labels,
        legend={"loc": "best", "fontsize": CAPTION_FONTSIZE, "ncol": 2},
    )  # fmt: skip
    if has_ens:
        t_ens = float(np.asarray(a["ensemble_time"]))
        ax = axes[0, 1]
        mu, sd = a["ntk_mean_ensemble_time"], a["ntk_std_ensemble_time"]
        _filled_band(ax, x, mu, sd, "C2", f"NTK ensemble at t = {t_ens:.3g}: mean ± 1.96 sd")
        _ensemble_band(ax, x, a, result, config)
        _train_points(ax, a, 40)
        title = (
            f"Trained networks vs the NTK ensemble at t = {t_ens:.3g}\n"
            f"rms z: mean {s['ensemble_mean_z_rms']:.2f}, sd {s['ensemble_std_z_rms']:.2f} "
            f"(99% limits {s['ensemble_mean_z_rms_q99']:.2f}, {s['ensemble_std_z_rms_q99']:.2f})"
        )
        finish_axes(
            ax, title=title, title_size=10, **axis_labels, legend={"loc": "upper center",
            "bbox_to_anchor": (0.5, -0.13), "fontsize": CAPTION_FONTSIZE},
        )  # fmt: skip

        ax = axes[0, 2]
        eta = s.get("ensemble_learning_rate", np.nan)
        t_rec = np.asarray(a["ensemble_loss_steps"], dtype=float) * eta
        label = "Trained networks (mean)"
        ax.plot(t_rec, a["ensemble_loss"], color=_ENSEMBLE_COLOR, ls="--", lw=1.6, label=label)
        ax.plot(t_rec, a["ntk_loss"], color="C2", lw=1.6, label="NTK ensemble (expected)")
        finish_axes(
            ax, yscale="log", xlabel="t = steps × learning rate",
            ylabel="train loss (1/2N) Σ (f − y)²", title="Training loss", title_size=10,
            legend={"loc": "best", "fontsize": CAPTION_FONTSIZE},
        )  # fmt: skip
    return fig
