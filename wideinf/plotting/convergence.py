"""Figure of ``wideinf convergence``: four log-log panels against the hidden width n.

Medians over networks with interquartile bands, fitted lines over the widest half with their
slopes in the legends, and n^-1/2 reference lines; the panels are ``SCALING_TITLES``.
"""

from __future__ import annotations

import numpy as np

from . import add_caption, architecture_text, finish_axes, plt, viridis

__all__ = ["plot", "SCALING_TITLES"]

SCALING_TITLES = (
    "(a) Empirical kernels at initialisation",
    "(b) Lazy training: the NTK and the function stay linear",
    "(c) Relative change of each layer's weights",
    "(d) Trained network vs its linearisation",
)


def _band(ax, widths, values, color, label, ls="-", marker="o", band=True):
    """Median line with markers and the interquartile band; values (W, S)."""
    q1, med, q3 = np.percentile(values, [25, 50, 75], axis=1)
    if band:
        ax.fill_between(widths, q1, q3, color=color, alpha=0.18, lw=0)
    ax.plot(widths, med, ls=ls, marker=marker, ms=4, color=color, lw=1.4, label=label)


def _fit(a, name, key, j=None) -> float:
    value = a[f"{name}_{key}"]
    return float(value if j is None else value[j])


def _fitted(ax, widths, a, values, key, color, name, j=None, exponent=-0.5):
    """``values`` (W, S) as :func:`_band`, labelled ``name`` then ``(slope ...)``; the fitted
    power law over the fit range, and an n^exponent line through its start."""
    _band(ax, widths, values, color, f"{name}({_slope_text(a, key, j)})")
    lo, hi = a["fit_widths"]
    n = np.geomspace(lo, hi, 20)
    slope, intercept = _fit(a, "slope", key, j), _fit(a, "intercept", key, j)
    ax.plot(n, np.exp(intercept) * n**slope, color=color, lw=3, alpha=0.35, solid_capstyle="butt")
    start = np.exp(intercept) * lo**slope
    ls = ":" if exponent == -0.5 else "--"
    ax.plot(n, start * (n / lo) ** exponent, color="0.35", lw=1, ls=ls)


def _slope_text(a, key, j=None) -> str:
    return f"slope {_fit(a, 'slope', key, j):+.2f} $\\pm$ {_fit(a, 'se', key, j):.2f}"


def _log_panel(ax, widths, ylabel, title, per_layer=False):
    """Log-log axes against the width, labels and the legend with the keys of the reference
    lines (n^-1 too ``per_layer``, else the fit's): the last call on a panel."""
    ax.plot([], [], color="0.35", lw=1, ls=":", label="$\\propto n^{-1/2}$ from the fit's start")
    if per_layer:
        ax.plot([], [], color="0.35", lw=1, ls="--", label="$\\propto n^{-1}$ from the fit's start")
    else:
        ax.plot([], [], color="0.5", lw=3, alpha=0.5, label="fit over the widest half")
    ax.set_xscale("log", base=2)
    finish_axes(
        ax, yscale="log", xlim=(widths[0] / 1.3, widths[-1] * 1.3), xlabel="hidden width n",
        ylabel=ylabel, title=title, title_size=11, legend={"fontsize": 8, "loc": "lower left"},
        grid={"which": "major", "color": "0.9", "lw": 0.6},
    )  # fmt: skip


def plot(result, config) -> dict:
    """``{"": Figure}`` from ``result.arrays`` (see ``wideinf.experiments.convergence``)."""
    a = result.arrays
    widths = np.asarray(a["widths"], dtype=float)
    s = a["nngp_rel_err"].shape[1]
    fig, axes = plt.subplots(2, 2, figsize=(13, 10))
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.17, top=0.93, wspace=0.22, hspace=0.3)
    title = "Finite networks approach the infinite-width limit"
    fig.suptitle(f"{title}  —  {architecture_text(config.architecture)}", fontsize=12)

    ax = axes[0, 0]
    kernels = (("nngp", "C0", "NNGP"), ("ntk", "C2", "NTK"))
    for key, color, name in kernels:
        _fitted(ax, widths, a, a[f"{key}_rel_err"], key, color, f"{name} ")
    if "variant_nngp_rel_err" in a:
        label = config.variant.label if config.variant is not None else "variant"
        for key, color, name in kernels:
            vkey = f"variant_{key}"
            text = f"{name}, {label} network ({_slope_text(a, vkey)})"
            _band(ax, widths, a[f"{vkey}_rel_err"], color, text, ls="--", marker="s", band=False)
    _log_panel(
        ax, widths, "relative error $\\|\\hat K - K\\|_F \\,/\\, \\|K\\|_F$", SCALING_TITLES[0]
    )

    ax = axes[0, 1]
    for key, color, name in (
        ("ntk_change", "C3", "NTK change $\\|\\Theta_T - \\Theta_0\\|_F / \\|\\Theta_0\\|_F$\n"),
        ("linearization_gap", "C4", "gap $\\max_t \\mathrm{RMS}_x |f_t - f^{lin}_t|$\n"),
    ):
        _fitted(ax, widths, a, a[key], key, color, name)
    _log_panel(ax, widths, "relative NTK change;  output gap", SCALING_TITLES[1])

    ax = axes[1, 0]
    wc = a["weight_change"]  # (W, S, L)
    n_layers = wc.shape[2]
    hidden = [f"hidden layer {j + 1} (n x n) " for j in range(1, n_layers - 1)]
    layer_names = ["input layer (d x n) ", *hidden, "readout (n x 1) "]
    for j, color in enumerate(viridis(n_layers, 0.85)):
        # Expected exponent: -1 for an n x n matrix, -1/2 for the input and readout layers.
        exponent = -1.0 if 0 < j < n_layers - 1 else -0.5
        _fitted(ax, widths, a, wc[:, :, j], "weight_change", color, layer_names[j], j, exponent)
    _log_panel(ax, widths, "$\\|W_T - W_0\\|_F \\,/\\, \\|W_0\\|_F$", SCALING_TITLES[2], True)

    ax = axes[1, 1]
    xg = a["x_grid"]
    for i, color in ((0, "C1"), (len(widths) - 1, "C0")):
        n = int(widths[i])
        ax.plot(xg, a["f_trained"][i], color=color, lw=2, label=f"network, n = {n}")
        ax.plot(
            xg, a["f_linearized"][i], color=color, lw=1.4, ls="--", label=f"linearised, n = {n}"
        )
    fine = np.linspace(xg[0], xg[-1], 300)
    ax.plot(fine, np.sin(fine), color="0.6", lw=1, ls=":", label="target sin(x)")
    ax.scatter(a["x_train"], a["y_train"], color="C1", edgecolor="black", zorder=5, s=28,
               label="train points")  # fmt: skip
    finish_axes(
        ax, xlabel="x", ylabel="f(x) after training", title=SCALING_TITLES[3], title_size=11,
        legend={"fontsize": 8, "loc": "lower right"},
    )  # fmt: skip

    t = config.train
    caption = (
        f"Medians over {s} networks per width, bands from the first to the third quartile; thick "
        f"pale lines are least-squares fits of log median on log n over n = "
        f"{int(a['fit_widths'][0])}..{int(a['fit_widths'][1])} (slope $\\pm$ bootstrap standard "
        f"error). (a) Empirical kernels of freshly initialised networks against the analytic "
        f"NNGP K and NTK on {len(xg)} inputs in [{xg[0]:g}, {xg[-1]:g}]: averages over n units, "
        f"they fluctuate as n^-1/2. (b) Each network is trained by full-batch gradient descent "
        f"({t.steps} steps, learning rate {t.learning_rate:g}) on {len(a['x_train'])} points of "
        f"sin(x); its linearisation around the initial weights takes the same steps through the "
        f"network's NTK at initialisation. Lee et al. (2019) bound both curves by O(n^-1/2); with "
        f"a ReLU in the network they fall at about that rate, while for smooth activations only "
        f"they fall faster, as 1/n (Dyer & Gur-Ari 2020). (c) In NTK parameterization each "
        f"layer's gradient has O(1) Frobenius norm, so the input and readout layers (n weights "
        f"of size 1, norm sqrt(n)) move by O(n^-1/2) relative to their initial norm, and a hidden "
        f"n x n matrix (norm n), which holds almost all the parameters, by only O(1/n). (d) The "
        f"network (solid) and its linearisation (dashed) after training, network 0 of the "
        f"narrowest and the widest width, on the grid of (a)."
    )
    add_caption(fig, caption, y=0.105, width=200)
    return {"": fig}
