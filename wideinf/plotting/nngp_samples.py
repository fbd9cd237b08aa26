"""Blog Figure 1: sampled output functions (top) and the pair's output density (bottom).

One column per width; at infinite width the NNGP mean +- 1.96 sd band with GP draws on top, and
the exact NNGP 1- and 2-sigma ellipses on every bottom panel. Titles follow the original (less
its stray "at" in "output functions at @ inf hidden units").
"""

from __future__ import annotations

import math

import numpy as np

from . import CAPTION_FONTSIZE, add_caption, finish_axes, plt

__all__ = ["plot"]


def _units(width: float) -> str:
    return "inf" if math.isinf(width) else f"{int(width)}"


def plot(result, config) -> dict:
    """The 2 x W figure of blog Figure 1 from a :class:`~wideinf.experiments.Result`."""
    a = result.arrays
    widths = np.asarray(a["widths"], dtype=float)
    x = a["x_grid"]
    p1, p2 = (f"{v:g}" for v in a["pair_inputs"])
    axis = a["density_axis"]
    limit = float(axis[-1])
    n_cols = widths.size

    fig, axes = plt.subplots(2, n_cols, figsize=(4.6 * n_cols, 9.2), squeeze=False)
    fig.subplots_adjust(left=0.08, right=0.98, top=0.95, bottom=0.08, wspace=0.28, hspace=0.25)
    for col, width in enumerate(widths):
        label = "w" + _units(width)
        functions = a[f"functions_{label}"]  # (S, G)
        pairs = a[f"pair_{label}"]  # (S, 2)
        n_lines = min(int(config.n_lines), functions.shape[0])
        inf, last = math.isinf(width), col == n_cols - 1

        top = axes[0, col]
        if inf:
            band = 1.96 * a["nngp_sd"]  # (G,)
            top.fill_between(x, -band, band, color="C0", alpha=0.3, lw=0, label="mean ± 1.96 sd")
            top.plot(x, np.zeros_like(x), color="C0", lw=2, label="mean")
        top.set_prop_cycle(None)
        if n_lines:
            top.plot(x, functions[:n_lines].T, lw=1.0, alpha=0.75)
        sampled = "Distribution of" if inf else "Sampled"
        finish_axes(
            top, title=f"{sampled} output functions @ {_units(width)} hidden units", xlabel="x",
            ylabel="f(x)", xlim=(x[0], x[-1]),
            legend={"loc": "upper right", "fontsize": CAPTION_FONTSIZE + 1} if inf else None,
        )  # fmt: skip

        bottom = axes[1, col]
        bottom.scatter(pairs[:, 0], pairs[:, 1], s=5, color="C0", alpha=0.35, lw=0, rasterized=True)
        density = a[f"density_{label}"]  # (D, D)
        if np.isfinite(density).any() and np.nanmax(density) > 0:
            bottom.contour(axis, axis, density, levels=7, cmap="viridis", linewidths=1.1)
        for k, (ellipse, style) in enumerate(zip(a["nngp_ellipses"], ("--", ":"))):
            bottom.plot(*ellipse.T, style, color="black", lw=1.3, label=f"NNGP {k + 1}σ ellipse")
        g2, g2_se = a["excess_kurtosis"][col], a["excess_kurtosis_se"][col]
        bottom.text(
            0.03, 0.97, f"excess kurtosis\nx = {p1}: {g2[0]:+.2f} ± {g2_se[0]:.2f}\n"
            f"x = {p2}: {g2[1]:+.2f} ± {g2_se[1]:.2f}", transform=bottom.transAxes, va="top",
            ha="left", fontsize=CAPTION_FONTSIZE,
            bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.8, "lw": 0.5},
        )  # fmt: skip
        finish_axes(
            bottom, xlim=(-limit, limit), ylim=(-limit, limit), aspect="equal",
            title=f"Output density @ {_units(width)} hidden units",
            xlabel=f"Output at x = {p1}", ylabel=f"Output at x = {p2}",
            legend={"loc": "lower right", "fontsize": CAPTION_FONTSIZE} if last else None,
        )  # fmt: skip

    n_samples = a[f"pair_w{_units(widths[0])}"].shape[0]
    caption = (
        f"{result.summary.get('architecture', '')}. {n_samples} samples per column "
        f"({min(int(config.n_lines), n_samples)} functions drawn per top panel). Bottom: the "
        f"outputs at x = {p1} and x = {p2} with density contours (a kernel density estimate; "
        f"the exact Gaussian at infinite width); dashed and dotted, the exact NNGP 1σ and 2σ "
        f"ellipses. Excess kurtosis ± its standard error; a Gaussian gives 0 ± "
        f"{math.sqrt(24 / n_samples):.2f}."
    )
    add_caption(fig, caption, x=0.5, width=max(80, 62 * n_cols), ha="center")
    return {"": fig}
