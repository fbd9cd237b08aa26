"""Figure of ``wideinf ntk-circle`` (Jacot et al. 2018, Figure 1): the NTK on the unit circle.

Left: ``Theta(x0, x)`` against the angle at initialisation and after training, per width, with
the analytic limit; right: its change during training.
"""

from __future__ import annotations

import numpy as np

from . import add_caption, architecture_text, finish_axes, plt

__all__ = ["plot", "TITLES"]

TITLES = (
    "NTK on the unit circle at initialisation and after training",
    "Change of the NTK during training",
)


def plot(result, config) -> dict:
    """``{"": Figure}`` from ``result.arrays`` (see ``wideinf.experiments.ntk_circle``)."""
    a = result.arrays
    widths = np.asarray(a["widths"], dtype=float)
    gamma = a["gamma"]
    rows_of = [np.flatnonzero(a["network_width"] == w) for w in widths]
    t = config.train
    time = t.steps * t.learning_rate
    ticks = np.pi * np.array([-1, -0.5, 0, 0.5, 1])
    tick_labels = ["$-\\pi$", "$-\\pi/2$", "0", "$\\pi/2$", "$\\pi$"]
    fig, axes = plt.subplots(1, 2, figsize=(14, 5.6), gridspec_kw={"width_ratios": [1.6, 1]})
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.25, top=0.88, wspace=0.2)
    title = "Neural tangent kernel of finite networks"
    fig.suptitle(f"{title}  —  {architecture_text(config.architecture)}", fontsize=12)
    colors = ["C0", "C3", "C2", "C1", "C4", "C5"]
    for i, width in enumerate(widths):
        color, n = colors[i % len(colors)], int(width)
        labels = [f"n = {n}, t = 0", f"n = {n}, t = {time:g}", f"n = {n}"]
        for r in rows_of[i]:
            init, trained = a["ntk_init"][r], a["ntk_trained"][r]
            axes[0].plot(gamma, init, color=color, lw=0.9, alpha=0.75, label=labels[0])
            axes[0].plot(gamma, trained, color=color, lw=0.9, ls="--", alpha=0.75, label=labels[1])
            axes[1].plot(gamma, trained - init, color=color, lw=0.9, alpha=0.75, label=labels[2])
            labels = [None] * 3  # one legend entry per width
    axes[0].plot(gamma, a["ntk_limit"], color="black", lw=2.2, label="n = ∞ (analytic)")
    axes[1].axhline(0, color="black", lw=0.8)
    xlabels = ("$\\gamma$, with $x = (\\cos\\gamma, \\sin\\gamma)$", "$\\gamma$")
    ylabels = (
        "$\\Theta(x_0, x)$,  $x_0 = (1, 0)$",
        f"$\\Theta_{{t={time:g}}}(x_0, x) - \\Theta_0(x_0, x)$",
    )
    for ax, title, xlabel, ylabel in zip(axes, TITLES, xlabels, ylabels):
        finish_axes(
            ax, title=title, title_size=11, xlim=(gamma[0], gamma[-1]), xticks=ticks,
            xticklabels=tick_labels, xlabel=xlabel, ylabel=ylabel,
            grid={"color": "0.92", "lw": 0.6}, legend={"fontsize": 8, "loc": "upper right"},
        )  # fmt: skip

    counts = " and ".join(str(len(r)) for r in rows_of)
    spread = "; ".join(
        f"n = {int(w)}: error {np.median(a['ntk_rel_err'][r]):.3f}, change "
        f"{np.median(a['ntk_change'][r]):.3f}"
        for w, r in zip(widths, rows_of)
    )
    caption = (
        f"After Jacot et al. (2018), Figure 1: {counts} independently initialised networks of "
        f"widths {' and '.join(str(int(w)) for w in widths)}; solid: the empirical NTK at "
        f"initialisation, dashed: after {t.steps} steps of full-batch gradient descent with "
        f"learning rate {t.learning_rate:g} (time t = {time:g}) on {len(a['y_train'])} standard "
        f"normal inputs in R^2 with target y = x1 x2; black: the infinite-width NTK, which is "
        f"the finite kernels' mean at every width. The wider networks scatter less around it, "
        f"and their kernel moves less in training (the narrow ones' kernel grows). Median "
        f"relative error of the row Theta(x0, .) at initialisation, and its relative change in "
        f"training: {spread}."
    )
    add_caption(fig, caption, y=0.13)
    return {"": fig}
