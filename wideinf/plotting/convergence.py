"""Figures of ``wideinf convergence``.

``mode: scaling`` (one figure, four panels, log-log against the hidden width n):

(a) relative Frobenius error of the empirical NNGP and NTK at initialisation;
(b) lazy training: relative change of the empirical NTK, and the largest gap between the
    trained network and its linearisation;
(c) relative change of each layer's weight matrix;
(d) the trained network and its linearisation at the narrowest and widest width.

Medians over networks with interquartile bands, fitted lines over the widest half with their
slopes in the legends, and n^-1/2 reference lines.

``mode: circle`` (Jacot et al. 2018, Figure 1): ``Theta(x0, x)`` on the unit circle against the
angle, at initialisation and after training, per width, with the analytic limit; and a second
panel with the change during training.
"""

from __future__ import annotations

import textwrap

import numpy as np

from . import CAPTION_FONTSIZE, plt

__all__ = ["plot", "SCALING_TITLES", "CIRCLE_TITLES"]

SCALING_TITLES = (
    "(a) Empirical kernels at initialisation",
    "(b) Lazy training: the NTK and the function stay linear",
    "(c) Relative change of each layer's weights",
    "(d) Trained network vs its linearisation",
)
CIRCLE_TITLES = (
    "NTK on the unit circle at initialisation and after training",
    "Change of the NTK during training",
)


def plot(result, config) -> dict:
    """``{"": Figure}`` from ``result.arrays`` (see ``wideinf.experiments.convergence``)."""
    if config.mode == "circle":
        return {"": _circle(result, config)}
    return {"": _scaling(result, config)}


# ----------------------------------------------------------------------------- scaling


def _band(ax, widths, values, color, label, ls="-", marker="o", band=True):
    """Median line with markers and the interquartile band; values (W, S)."""
    q1, med, q3 = np.percentile(values, [25, 50, 75], axis=1)
    if band:
        ax.fill_between(widths, q1, q3, color=color, alpha=0.18, lw=0)
    ax.plot(widths, med, ls=ls, marker=marker, ms=4, color=color, lw=1.4, label=label)
    return med


def _fitted(ax, a, key, color):
    """The fitted power law over the fit range, and an n^-1/2 line through its start."""
    lo, hi = a["fit_widths"]
    n = np.geomspace(lo, hi, 20)
    slope, intercept = float(a[f"slope_{key}"]), float(a[f"intercept_{key}"])
    ax.plot(n, np.exp(intercept) * n**slope, color=color, lw=3, alpha=0.35, solid_capstyle="butt")
    start = np.exp(intercept) * lo**slope
    ax.plot(n, start * (n / lo) ** -0.5, color="0.35", lw=1, ls=":")


def _slope_text(a, key) -> str:
    return f"slope {float(a[f'slope_{key}']):+.2f} $\\pm$ {float(a[f'se_{key}']):.2f}"


def _log_axes(ax, widths):
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlim(widths[0] / 1.3, widths[-1] * 1.3)
    ax.set_xlabel("hidden width n")
    ax.grid(True, which="major", color="0.9", lw=0.6)


def _reference_legend(ax):
    ax.plot([], [], color="0.35", lw=1, ls=":", label="$\\propto n^{-1/2}$ from the fit's start")
    ax.plot([], [], color="0.5", lw=3, alpha=0.5, label="fit over the widest half")


def _scaling(result, config):
    a = result.arrays
    widths = np.asarray(a["widths"], dtype=float)
    s = a["nngp_rel_err"].shape[1]
    fig, axes = plt.subplots(2, 2, figsize=(13, 10))
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.17, top=0.93, wspace=0.22, hspace=0.3)
    fig.suptitle(
        f"Finite networks approach the infinite-width limit  —  {_arch_text(config.architecture)}",
        fontsize=12,
    )

    ax = axes[0, 0]
    for key, color, name in (("nngp", "C0", "NNGP"), ("ntk", "C2", "NTK")):
        _band(ax, widths, a[f"{key}_rel_err"], color, f"{name} ({_slope_text(a, key)})")
        _fitted(ax, a, key, color)
    if "variant_nngp_rel_err" in a:
        label = config.variant.label if config.variant is not None else "variant"
        for key, color, name in (("nngp", "C0", "NNGP"), ("ntk", "C2", "NTK")):
            vkey = f"variant_{key}"
            _band(
                ax, widths, a[f"{vkey}_rel_err"], color,
                f"{name}, {label} network ({_slope_text(a, vkey)})", ls="--", marker="s",
                band=False,
            )  # fmt: skip
    _reference_legend(ax)
    _log_axes(ax, widths)
    ax.set_ylabel("relative error $\\|\\hat K - K\\|_F \\,/\\, \\|K\\|_F$")
    ax.set_title(SCALING_TITLES[0], fontsize=11)
    ax.legend(fontsize=8, loc="lower left")

    ax = axes[0, 1]
    for key, color, name in (
        ("ntk_change", "C3", "NTK change $\\|\\Theta_T - \\Theta_0\\|_F / \\|\\Theta_0\\|_F$"),
        ("linearization_gap", "C4", "gap $\\max_t \\mathrm{RMS}_x |f_t - f^{lin}_t|$"),
    ):
        _band(ax, widths, a[key], color, f"{name}\n({_slope_text(a, key)})")
        _fitted(ax, a, key, color)
    _reference_legend(ax)
    _log_axes(ax, widths)
    ax.set_ylabel("relative NTK change;  output gap")
    ax.set_title(SCALING_TITLES[1], fontsize=11)
    ax.legend(fontsize=8, loc="lower left")

    ax = axes[1, 0]
    wc = a["weight_change"]  # (W, S, L)
    n_layers = wc.shape[2]
    for j in range(n_layers):
        color = plt.get_cmap("viridis")(0.85 * j / max(n_layers - 1, 1))
        name = _layer_name(j, n_layers)
        slope, se = float(a["slope_weight_change"][j]), float(a["se_weight_change"][j])
        _band(ax, widths, wc[:, :, j], color, f"{name} (slope {slope:+.2f} $\\pm$ {se:.2f})")
        n = np.geomspace(*a["fit_widths"], 20)
        fit = np.exp(float(a["intercept_weight_change"][j])) * n**slope
        ax.plot(n, fit, color=color, lw=3, alpha=0.35)
    lo, hi = a["fit_widths"]
    n = np.geomspace(lo, hi, 20)
    for j in range(n_layers):
        # Expected exponent: -1 for an n x n matrix, -1/2 for the input and readout layers.
        hidden = 0 < j < n_layers - 1
        start = np.exp(float(a["intercept_weight_change"][j])) * lo ** float(
            a["slope_weight_change"][j]
        )
        ax.plot(n, start * (n / lo) ** (-1.0 if hidden else -0.5), color="0.35", lw=1,
                ls="--" if hidden else ":")  # fmt: skip
    ax.plot([], [], color="0.35", lw=1, ls=":", label="$\\propto n^{-1/2}$ from the fit's start")
    ax.plot([], [], color="0.35", lw=1, ls="--", label="$\\propto n^{-1}$ from the fit's start")
    _log_axes(ax, widths)
    ax.set_ylabel("$\\|W_T - W_0\\|_F \\,/\\, \\|W_0\\|_F$")
    ax.set_title(SCALING_TITLES[2], fontsize=11)
    ax.legend(fontsize=8, loc="lower left")

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
    ax.scatter(
        a["x_train"],
        a["y_train"],
        color="C1",
        edgecolor="black",
        zorder=5,
        s=28,
        label="train points",
    )
    ax.set_xlabel("x")
    ax.set_ylabel("f(x) after training")
    ax.set_title(SCALING_TITLES[3], fontsize=11)
    ax.legend(fontsize=8, loc="lower right")

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
    fig.text(
        0.01, 0.105, textwrap.fill(caption, 200), ha="left", va="top", fontsize=CAPTION_FONTSIZE
    )
    return fig


def _layer_name(j: int, n_layers: int) -> str:
    if j == 0:
        return "input layer (d x n)"
    if j == n_layers - 1:
        return "readout (n x 1)"
    return f"hidden layer {j + 1} (n x n)"


_LAYER_NAMES = {
    "dense": "Dense",
    "relu": "ReLU",
    "leaky_relu": "LeakyReLU",
    "gabor": "Gabor",
    "erf": "Erf",
    "gelu": "GeLU",
    "abs": "Abs",
}


def _arch_text(arch_cfg) -> str:
    from ..config import to_plain

    raw = to_plain(arch_cfg)
    names = []
    for layer in raw["layers"]:
        names.append(layer if isinstance(layer, str) else next(iter(layer)))
    chain = " → ".join(_LAYER_NAMES.get(n, n) for n in names)
    return (
        f"{chain}, W_std {raw['W_std']:g}, b_std {raw['b_std']:g}, "
        f"{raw['parameterization']} parameterization"
    )


# ----------------------------------------------------------------------------- circle


def _circle(result, config):
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
    fig.suptitle(
        f"Neural tangent kernel of finite networks  —  {_arch_text(config.architecture)}",
        fontsize=12,
    )
    colors = ["C0", "C3", "C2", "C1", "C4", "C5"]

    ax = axes[0]
    for i, width in enumerate(widths):
        color, n = colors[i % len(colors)], int(width)
        for k, r in enumerate(rows_of[i]):
            ax.plot(gamma, a["ntk_init"][r], color=color, lw=0.9, alpha=0.75,
                    label=f"n = {n}, t = 0" if k == 0 else None)  # fmt: skip
            ax.plot(gamma, a["ntk_trained"][r], color=color, lw=0.9, ls="--", alpha=0.75,
                    label=f"n = {n}, t = {time:g}" if k == 0 else None)  # fmt: skip
    ax.plot(gamma, a["ntk_limit"], color="black", lw=2.2, label="n = ∞ (analytic)")
    ax.set_xlim(gamma[0], gamma[-1])
    ax.set_xticks(ticks, tick_labels)
    ax.set_xlabel("$\\gamma$, with $x = (\\cos\\gamma, \\sin\\gamma)$")
    ax.set_ylabel("$\\Theta(x_0, x)$,  $x_0 = (1, 0)$")
    ax.set_title(CIRCLE_TITLES[0], fontsize=11)
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(True, color="0.92", lw=0.6)

    ax = axes[1]
    for i, width in enumerate(widths):
        color = colors[i % len(colors)]
        for k, r in enumerate(rows_of[i]):
            ax.plot(gamma, a["ntk_trained"][r] - a["ntk_init"][r], color=color, lw=0.9,
                    alpha=0.75, label=f"n = {int(width)}" if k == 0 else None)  # fmt: skip
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xlim(gamma[0], gamma[-1])
    ax.set_xticks(ticks, tick_labels)
    ax.set_xlabel("$\\gamma$")
    ax.set_ylabel(f"$\\Theta_{{t={time:g}}}(x_0, x) - \\Theta_0(x_0, x)$")
    ax.set_title(CIRCLE_TITLES[1], fontsize=11)
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(True, color="0.92", lw=0.6)

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
    fig.text(
        0.01, 0.13, textwrap.fill(caption, 190), ha="left", va="top", fontsize=CAPTION_FONTSIZE
    )
    return fig
