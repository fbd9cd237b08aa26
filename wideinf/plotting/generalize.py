"""Figures of ``wideinf generalize``: heat maps of the learned functions and their scaling.

A (``<name>.png``): rows are the widths then the infinite-width limits, columns the seeds, one
diverging colour scale. B (``<name>_scaling.png``): against width, the spread across seeds and
the distances to the limits, smoothness, and every network's final training loss.
"""

from __future__ import annotations

import textwrap

import numpy as np

from ..stats import widest_half
from . import add_caption, architecture_text, finish_axes, plt, slope_label
from .generalize_params import plot_parameterizations

__all__ = ["plot"]

LIMIT_LABELS = {
    "ntk": ("NTK limit", r"$\Theta(x, X)\,\Theta^{-1} y$: all layers trained, $t \to \infty$"),
    "nngp": ("NNGP limit", r"$K(x, X)\,K^{-1} y$: readout-only training"),
    "features": (
        "feature limit",
        r"$k(x, X)\,k^{-1} y$, $k = E[\phi\phi]$ of the last hidden layer: "
        "readout-only limit in standard parameterization",
    ),
}
_COLORS = {"spread": "k", "ntk": "C2", "nngp": "C0", "features": "C4"}
_INIT_TEXT = {
    "centered": "Each panel is the learned part f(x) - f_init(x) (centered training): the "
    "random initial function is O(1) at every width and would otherwise hide the convergence.",
    "zero_readout": "Networks start with a zero readout, so f_init = 0.",
    "standard": "Each panel is the raw network f(x), random initial function included: only the "
    "average over seeds tends to the limit, single networks do not.",
}


def _limits_shown(result) -> list[str]:
    """NTK and NNGP always; the feature limit when it is the one the networks should reach."""
    return list(LIMIT_LABELS)[: 3 if result.summary.get("matching_limit") == "features" else 2]


def _describe(config) -> str:
    return (
        f"{architecture_text(config.architecture)}; "
        f"{'all layers' if config.training.layers == 'all' else 'readout only'} trained by "
        f"full-batch gradient descent to loss {config.training.loss_tol:g}"
    )


def _grid_figure(rows: int, cols: int, title: str, panel: float = 1.1, gap: float = 0.06):
    """``rows x cols`` square panels (inches), a colour bar axis on the right, a wrapped title."""
    left, right, bottom = 0.35, 1.0, 0.1
    width = left + cols * (panel + gap) + right
    title = textwrap.fill(title, max(40, int(11 * width)), break_on_hyphens=False)
    top = 0.33 + 0.22 * (title.count("\n") + 1)
    height = top + rows * (panel + gap) + bottom
    fig, axes = plt.subplots(rows, cols, figsize=(width, height), squeeze=False)
    fig.subplots_adjust(
        left=left / width, right=(left + cols * (panel + gap) - gap) / width,
        bottom=bottom / height, top=1 - top / height, wspace=gap / panel, hspace=gap / panel,
    )  # fmt: skip
    bar_height = min(4.0, 0.6 * rows * panel)
    cax = fig.add_axes(
        ((left + cols * (panel + gap) + 0.1) / width, 0.5 - bar_height / (2 * height),
         0.15 / width, bar_height / height)
    )  # fmt: skip
    fig.suptitle(title, y=1 - 0.1 / height, va="top", fontsize=12)
    return fig, axes, cax


def _heatmaps(result, config):
    a, s = result.arrays, result.summary
    widths, f = a["widths"], a["predictions"]  # (W,), (W, S, G)
    axis, x_train, y_train = a["grid_axis"], a["x_train"], a["y_train"]
    shown = _limits_shown(result)
    limits = [a[f"{k}_limit"] for k in shown]
    # One colour scale for everything; outliers of the narrowest nets saturate (arrows).
    values = np.concatenate([f.ravel()] + limits)
    vmax = max(float(np.percentile(np.abs(values), 99.5)), float(np.max(np.abs(y_train))))
    extend = "both" if np.max(np.abs(values)) > vmax else "neither"
    title = f"Fits to {len(y_train)} points across widths and seeds, and the infinite-width limits"
    # A width's row has one image per seed; a limit's row has one, then its formula.
    row_images = [*f, *([limit] for limit in limits)]
    row_names = [f"n = {w}" for w in widths] + [LIMIT_LABELS[k][0] for k in shown]
    fig, axes, cax = _grid_figure(len(row_images), f.shape[1], title)
    extent = (axis[0], axis[-1], axis[0], axis[-1])
    style = {"cmap": "RdBu_r", "vmin": -vmax, "vmax": vmax, "origin": "lower", "extent": extent}
    for i, (images, ax_row) in enumerate(zip(row_images, axes)):
        for j, ax in enumerate(ax_row):
            ax.set(xticks=[], yticks=[])
            if j >= len(images):
                ax.axis("off")
                if j == 1:
                    ax.text(0.0, 0.5, LIMIT_LABELS[shown[i - len(f)]][1], transform=ax.transAxes,
                            va="center", ha="left", fontsize=9)  # fmt: skip
                continue
            image = ax.imshow(images[j].reshape(len(axis), -1), **style)
            for label, marker in ((1.0, "o"), (-1.0, "s")):
                pts = x_train[np.sign(y_train) == label]
                ax.scatter(pts[:, 0], pts[:, 1], s=22, marker=marker, c="C3" if label > 0 else "C0",
                           edgecolors="k", linewidths=0.8, zorder=3)  # fmt: skip
            if i == 0:
                ax.set_title(f"seed {j + 1}", fontsize=9)
            if j == 0:
                ax.set_ylabel(row_names[i], fontsize=9)
    fig.colorbar(image, cax=cax, extend=extend, label="learned function")
    match = s.get("matching_limit", "ntk")
    standard = s.get("init_output") == "standard"
    who = "The average over seeds (not each network)" if standard else "Each network"
    add_caption(
        fig,
        f"Rows: hidden width n, then the infinite-width mean predictors; columns: seeds. "
        f"Square [{axis[0]:g}, {axis[-1]:g}]^2; circles label +1, squares -1. "
        f"{_describe(config)}. {_INIT_TEXT.get(s.get('init_output'), '')} "
        f"{who} should tend to the {LIMIT_LABELS[match][0]}. "
        f"Colours saturate at +-{vmax:.2f}. A reconstruction: the essay's settings are unpublished.",
        x=0.02, y=0.0, width=max(60, int(14 * fig.get_figwidth())),
    )  # fmt: skip
    return fig


def _scaling(result, config):
    a, s = result.arrays, result.summary
    widths = a["widths"]  # (W,)
    match = s.get("matching_limit", "ntk")
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(15, 5))
    half = widest_half(len(widths)).start  # where the slopes were fitted

    ax1.loglog(widths, a["spread"], "o-", color=_COLORS["spread"],
               label="spread across seeds" + slope_label(s, "spread"))  # fmt: skip
    for name in _limits_shown(result):
        d = a[f"dist_{name}"]  # (W, S)
        rms = np.sqrt(np.mean(d * d, axis=1))  # (W,)
        err = np.std(d, axis=1, ddof=1) / np.sqrt(d.shape[1])
        label = f"RMS distance to {LIMIT_LABELS[name][0]}" + slope_label(s, f"dist_{name}")
        label += "  [matching]" if name == match else ""
        ax1.errorbar(widths, rms, yerr=err, fmt="s--" if name != match else "s-",
                     color=_COLORS[name], capsize=2, label=label)  # fmt: skip
    ref = np.sqrt(np.mean(a[f"dist_{match}"][half] ** 2))
    guide = ref * np.sqrt(widths[half] / widths)
    ax1.loglog(widths, guide, ":", color="0.5", label=r"$\propto n^{-1/2}$")
    ax1.axvspan(widths[half], widths[-1], color="0.93", zorder=0, label="fit range (widest half)")
    lo, hi = ax1.get_ylim()  # the new top leaves room for the legend above the curves
    finish_axes(
        ax1, xlabel="hidden width n", ylabel="RMS over the grid", ylim=(lo, hi * (hi / lo) ** 0.6),
        title="Consistency and convergence", legend={"fontsize": 7, "loc": "upper right"},
    )  # fmt: skip

    gn = a["gradient_norm"]  # (W, S)
    ax2.errorbar(widths, gn.mean(axis=1), yerr=gn.std(axis=1, ddof=1), fmt="o-", color="k",
                 capsize=2, label="finite networks (mean ± sd over seeds)")  # fmt: skip
    for name in _limits_shown(result):
        value = a["limit_gradient_norm"][list(LIMIT_LABELS).index(name)]
        ax2.axhline(value, color=_COLORS[name], ls="--", label=LIMIT_LABELS[name][0])
    finish_axes(
        ax2, xscale="log", xlabel="hidden width n", ylabel=r"mean $|\nabla f|$ over the grid",
        title="Smoothness (lower is smoother)", legend={"fontsize": 7},
    )  # fmt: skip

    loss = a["train_loss"]  # (W, S)
    tol = config.training.loss_tol
    ww = np.repeat(widths[:, None], loss.shape[1], axis=1)
    ok = loss <= tol
    floor = np.where(np.isfinite(loss) & (loss > 0), loss, np.nan)
    ax3.scatter(ww[ok], floor[ok], s=12, color="C2", label="reached the tolerance")
    if (~ok).any():
        ax3.scatter(ww[~ok], np.where(np.isfinite(loss[~ok]), loss[~ok], 10 * tol), s=20,
                    marker="x", color="C3", label="missed it")  # fmt: skip
    ax3.axhline(tol, color="k", ls=":", label=f"tolerance {tol:g}")
    finish_axes(
        ax3, xscale="log", yscale="log", xlabel="hidden width n", ylabel="final training loss",
        title="Every network's final loss", legend={"fontsize": 7},
    )  # fmt: skip

    fig.suptitle(
        "Spread across seeds, distance to the infinite-width limits and smoothness, against width",
        fontsize=12,
    )
    fig.tight_layout()
    add_caption(
        fig,
        f"{_describe(config)}; {loss.shape[1]} seeds per width, grid {len(a['grid_axis'])}^2. "
        f"{_INIT_TEXT.get(s.get('init_output'), '')} Spread: RMS over the grid of the sd across "
        f"seeds. Distances: RMS over the grid, then over seeds (bars: standard error). Slopes: "
        f"least squares on log-log over the shaded widest half, ± the bootstrap "
        f"standard error over seeds; the fluctuations of a width-n network's kernel are O(n^-1/2) "
        f"(Lee et al. 2019), hence the guide. Smoothness: mean gradient norm by central "
        f"differences on the grid.",
        x=0.02, y=-0.01, width=190,
    )  # fmt: skip
    return fig


def plot(result, config) -> dict:
    """``{"": heat maps (Figure A), "scaling": scaling with width (Figure B)}``, and
    ``"parameterizations"`` (Figure C, :mod:`.generalize_params`) when several were trained."""
    figures = {"": _heatmaps(result, config), "scaling": _scaling(result, config)}
    if len(result.arrays.get("parameterizations", ())) > 1:
        figures["parameterizations"] = plot_parameterizations(result, config)
    return figures
