"""Figure C of ``wideinf generalize`` (``<name>_parameterizations.png``): the parameterizations.

Drawn when a sweep trains more than one parameterization (``parameterizations: [ntk, mup]``).
Top row, against width: (a) how far the last hidden layer's features move in training,
``||h_T - h_0|| / ||h_0||``, on log-log axes with fitted slopes and an ``n^-1/2`` guide; (b) the
RMS distance to the NTK limit, of single networks and of the seed average, and the spread
across seeds; (c) smoothness. Bottom row, at the
widest width: the seed-average learned function of each parameterization, the NTK limit, and
each one's difference from the limit.
"""

from __future__ import annotations

import numpy as np

from ..stats import widest_half
from . import add_caption, architecture_text, plt, slope_label

__all__ = ["plot_parameterizations", "NAMES"]

NAMES = {
    "ntk": "NTK parameterization",
    "standard": "standard parameterization",
    "mup": "muP (maximal update)",
}
_SHORT = {"ntk": "NTK param.", "standard": "standard param.", "mup": "muP"}
_COLORS = {"ntk": "C0", "standard": "C1", "mup": "C3"}
_CMAP = "RdBu_r"


def _label(name: str, summary) -> str:
    if name == "mup" and summary.get("mup_base_width") is not None:
        return f"{NAMES[name]}, base width {summary['mup_base_width']}"
    return NAMES[name]


def _movement_panel(ax, a, s, names, widths):
    for name in names:
        move = a[f"feature_movement_{name}"]  # (W, S)
        if not np.all(move > 0):
            continue  # readout-only training: the features do not move
        lo, mid, hi = np.percentile(move, [25, 50, 75], axis=1)
        ax.errorbar(widths, mid, yerr=(mid - lo, hi - mid), fmt="o-", capsize=2,
                    color=_COLORS[name],
                    label=_label(name, s) + slope_label(s, f"feature_movement_{name}"))  # fmt: skip
    half = widest_half(len(widths)).start
    ref = a[f"feature_movement_{names[0]}"]
    if np.all(ref > 0):
        level = np.median(ref[half:], axis=1)[0]
        ax.loglog(widths, level * np.sqrt(widths[half] / widths), ":", color="0.5",
                  label=r"$\propto n^{-1/2}$ (lazy training)")  # fmt: skip
    ax.axvspan(widths[half], widths[-1], color="0.93", zorder=0, label="fit range")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("hidden width n")
    ax.set_ylabel(r"$\|h_T - h_0\| / \|h_0\|$ (median, quartiles)")
    ax.set_title("(a) Feature movement of the last hidden layer", fontsize=10)
    ax.legend(fontsize=7, loc="lower left")


def _distance_panel(ax, a, s, names, widths):
    for name in names:
        d = a[f"dist_ntk_{name}"]  # (W, S)
        ax.loglog(widths, np.sqrt(np.mean(d * d, axis=1)), "s-", color=_COLORS[name],
                  label=f"{NAMES[name]}: to the NTK limit" + slope_label(s, f"dist_ntk_{name}"))  # fmt: skip
        ax.loglog(widths, a[f"spread_{name}"], "o--", color=_COLORS[name], alpha=0.6,
                  label=f"{NAMES[name]}: spread across seeds")  # fmt: skip
        mean = a[f"predictions_{name}"].mean(axis=1) - a["ntk_limit"]  # (W, G)
        ax.loglog(widths, np.sqrt(np.mean(mean * mean, axis=1)), "^:", color=_COLORS[name],
                  label=f"{NAMES[name]}: seed average to the NTK limit")  # fmt: skip
    ax.set_xlabel("hidden width n")
    ax.set_ylabel("RMS over the grid")
    ax.set_title("(b) Distance to the NTK limit, and spread", fontsize=10)
    # Room for the legend below the curves.
    lo, hi = ax.get_ylim()
    ax.set_ylim(lo / (hi / lo) ** 0.5, hi)
    ax.legend(fontsize=7, loc="lower left")


def _smoothness_panel(ax, a, names, widths):
    for name in names:
        gn = a[f"gradient_norm_{name}"]  # (W, S)
        ax.errorbar(widths, gn.mean(axis=1), yerr=gn.std(axis=1, ddof=1), fmt="o-", capsize=2,
                    color=_COLORS[name], label=NAMES[name])  # fmt: skip
    ax.axhline(a["limit_gradient_norm"][0], color="k", ls="--", label="NTK limit")
    ax.set_xscale("log")
    ax.set_xlabel("hidden width n")
    ax.set_ylabel(r"mean $|\nabla f|$ over the grid")
    ax.set_title("(c) Smoothness (lower is smoother)", fontsize=10)
    ax.legend(fontsize=7)


def _heatmap_row(fig, grid_spec, a, names):
    axis, g = a["grid_axis"], len(a["grid_axis"])
    width = a["widths"][-1]
    means = {name: a[f"predictions_{name}"][-1].mean(axis=0) for name in names}  # each (G,)
    limit = a["ntk_limit"]
    panels = [(f"{_SHORT[n]}, n = {width}\nmean of seeds", means[n], "f") for n in names]
    panels.append(("NTK limit\n(infinite width)", limit, "f"))
    panels += [
        (f"{_SHORT[n]}, n = {width}\nminus the NTK limit", means[n] - limit, "d") for n in names
    ]
    vmax = max(float(np.max(np.abs(v))) for _, v, kind in panels if kind == "f")
    dmax = max(float(np.max(np.abs(v))) for _, v, kind in panels if kind == "d")
    extent = (axis[0], axis[-1], axis[0], axis[-1])
    sub = grid_spec.subgridspec(1, len(panels), wspace=0.08)
    images = {}
    for i, (title, values, kind) in enumerate(panels):
        ax = fig.add_subplot(sub[0, i])
        scale = vmax if kind == "f" else dmax
        images[kind] = ax.imshow(values.reshape(g, g), cmap=_CMAP, vmin=-scale, vmax=scale,
                                 origin="lower", extent=extent)  # fmt: skip
        pts, labels = a["x_train"], a["y_train"]
        ax.scatter(pts[:, 0], pts[:, 1], s=14, c=np.where(labels > 0, "C3", "C0"),
                   edgecolors="k", linewidths=0.6)  # fmt: skip
        ax.set_title(title, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    return images, vmax, dmax


def plot_parameterizations(result, config):
    """Figure C (module docstring) from the arrays of :func:`wideinf.experiments.generalize.run`."""
    a, s = result.arrays, result.summary
    names = [str(n) for n in a["parameterizations"]]
    widths = a["widths"]  # (W,)
    fig = plt.figure(figsize=(16, 8.6))
    outer = fig.add_gridspec(2, 1, height_ratios=(1.3, 1.0), hspace=0.3,
                             left=0.05, right=0.98, top=0.92, bottom=0.1)  # fmt: skip
    top = outer[0].subgridspec(1, 3, wspace=0.25)
    _movement_panel(fig.add_subplot(top[0, 0]), a, s, names, widths)
    _distance_panel(fig.add_subplot(top[0, 1]), a, s, names, widths)
    _smoothness_panel(fig.add_subplot(top[0, 2]), a, names, widths)
    images, vmax, dmax = _heatmap_row(fig, outer[1], a, names)
    fig.suptitle(
        "Parameterizations of the same networks: do the features move, and where does training go?",
        fontsize=12,
    )
    base = s.get("mup_base_width")
    mup_text = (
        f"muP (Yang & Hu 2021; Tensor Programs V, Table 3) equals the standard "
        f"parameterization at its base width {base} and scales the readout's initial variance "
        f"by {base}/n and the learning rates of the input layer and hidden biases by n/{base}, "
        f"of the readout by {base}/n. "
        if "mup" in names
        else ""
    )
    add_caption(
        fig,
        f"{architecture_text(config.architecture)}; every parameterization starts from the same "
        f"draws and is trained by full-batch gradient descent (learning rate "
        f"{config.training.lr_factor:g} x N / the largest eigenvalue of the tangent kernel it "
        f"follows) to loss "
        f"{config.training.loss_tol:g}, centered as in Figure A. {mup_text}"
        f"Feature movement: Frobenius norms over the grid and the units of the last hidden "
        f"layer; slopes fitted on log-log over the shaded widest half, ± the bootstrap standard "
        f"error over seeds. Bottom: colours of the functions saturate at ±{vmax:.2f}, of the "
        f"differences at ±{dmax:.3f}.",
        x=0.02, y=0.0, width=230,
    )  # fmt: skip
    return fig
