"""Figure of ``wideinf depth``: the order-to-chaos phase diagram and where deep kernels learn.

One figure (``<name>.png``), four panels:

(a) chi_1 over (sigma_w^2, sigma_b^2), diverging at chi_1 = 1, with the critical line solved
    exactly and the sigma_b^2 of the other panels dashed;
(b) the depth scales xi_q and xi_c against sigma_w^2 (log y), with xi_c measured from the
    layer-by-layer NNGP as points;
(c) NNGP and NTK test accuracy on the digits over (sigma_w^2, depth), with the critical
    sigma_w^2 and the depth 6 xi_c;
(d) the output correlation of two inputs against depth: exact curves, and sampled finite
    networks (mean +- 1.96 standard errors).
"""

from __future__ import annotations

import math
import textwrap

import numpy as np
from matplotlib.colors import TwoSlopeNorm

from . import CAPTION_FONTSIZE, plt

__all__ = ["plot"]

TITLES = {
    "a": "(a) Phase diagram: slope $\\chi_1$ of the correlation map",
    "b": "(b) Depth scales at $\\sigma_b^2$ = {b:g}",
    "c": "(c) Test accuracy on digits, $\\sigma_b^2$ = {b:g}",
    "d": "(d) Correlation of two inputs, finite vs infinite width",
}


def _edges(centres, log: bool = False) -> np.ndarray:
    """Cell edges around increasing centres (geometric midpoints if ``log``). Shape (n + 1,)."""
    c = np.log(centres) if log else np.asarray(centres, dtype=float)
    if c.size == 1:
        e = np.array([c[0] - 0.5, c[0] + 0.5])
    else:
        mid = 0.5 * (c[1:] + c[:-1])
        e = np.concatenate([[2 * c[0] - mid[0]], mid, [2 * c[-1] - mid[-1]]])
    return np.exp(e) if log else e


def _phase(ax, a, bf):
    w2, b2, chi1 = a["sigma_w2"], a["sigma_b2"], a["chi1"]
    finite = chi1[np.isfinite(chi1)]
    lo, hi = min(finite.min(), 0.99), max(finite.max(), 1.01)
    mesh = ax.pcolormesh(
        _edges(w2), _edges(b2), chi1, cmap="RdBu_r", norm=TwoSlopeNorm(1.0, lo, hi),
        shading="flat", rasterized=True,
    )  # fmt: skip
    plt.colorbar(mesh, ax=ax, label="$\\chi_1 = \\sigma_w^2\\, E[\\phi'(\\sqrt{q^*} z)^2]$")
    ok = np.isfinite(a["critical_sigma_w2"])
    ax.plot(a["critical_sigma_w2"][ok], b2[ok], "k-", lw=2, label="critical line $\\chi_1 = 1$")
    ax.axhline(bf, color="k", ls="--", lw=1, label=f"$\\sigma_b^2$ = {bf:g} (panels b-d)")
    if a["variance_diverges"].any():
        ax.contourf(
            w2, b2, a["variance_diverges"].astype(float), levels=[0.5, 1.5], colors="none",
            hatches=["//"],
        )  # fmt: skip
        ax.plot([], [], " ", label="hatched: variance diverges")
    box = dict(boxstyle="round", fc="w", ec="none", alpha=0.8)
    ax.text(0.04, 0.92, "ordered $\\chi_1 < 1$", transform=ax.transAxes, fontsize=10,
            color="navy", bbox=box)  # fmt: skip
    ax.text(0.96, 0.92, "chaotic $\\chi_1 > 1$", transform=ax.transAxes, fontsize=10,
            color="darkred", ha="right", bbox=box)  # fmt: skip
    ax.set_xlim(w2[0], w2[-1])
    ax.set_ylim(b2[0], b2[-1])
    ax.set_xlabel("$\\sigma_w^2$ = W_std$^2$")
    ax.set_ylabel("$\\sigma_b^2$ = b_std$^2$")
    ax.legend(fontsize=8, loc="lower right", framealpha=0.9)


def _scales(ax, a, config):
    start, stop = a["fit_depths"]
    ax.plot(a["sigma_w2_fine"], a["xi_c_fine"], color="C3", lw=1.6,
            label="$\\xi_c = -1/\\log \\chi_c$ (theory)")  # fmt: skip
    ax.plot(a["sigma_w2_fine"], a["xi_q_fine"], color="C0", lw=1.6,
            label="$\\xi_q = -1/\\log \\chi_q$ (theory)")  # fmt: skip
    m = a["xi_c_measured"]
    ok = np.isfinite(m)
    ax.plot(a["sigma_w2"][ok], m[ok], "o", color="C3", mfc="white", ms=5,
            label=f"$\\xi_c$ measured: NNGP correlation, depths {start}-{stop}")  # fmt: skip
    crit = float(a["critical_sigma_w2_fixed"])
    if math.isfinite(crit):
        ax.axvline(crit, color="k", ls=":", lw=1)
        ax.text(crit, 0.02, f" critical $\\sigma_w^2$ = {crit:.4g}", transform=ax.get_xaxis_transform(),
                fontsize=8)  # fmt: skip
    ax.set_yscale("log")
    top = np.nanmax(np.r_[m[ok], a["xi_q_fine"], 10.0])
    finite_xi = a["xi_c_fine"][np.isfinite(a["xi_c_fine"])]
    ax.set_ylim(0.3, max(3 * top, min(finite_xi.max(), 1e3) if finite_xi.size else 10))
    ax.set_xlim(a["sigma_w2"][0], a["sigma_w2"][-1])
    ax.set_xlabel("$\\sigma_w^2$")
    ax.set_ylabel("depth scale (layers)")
    ax.legend(fontsize=8, loc="upper left")


def _accuracy(ax, a, key, label, cbar_ax=None):
    w2, depths = a["sigma_w2"], a["depths"]
    mesh = ax.pcolormesh(
        _edges(w2), _edges(depths, log=True), a[key], cmap="viridis", vmin=0.0, vmax=1.0,
        shading="flat", rasterized=True,
    )  # fmt: skip
    crit = float(a["critical_sigma_w2_fixed"])
    if math.isfinite(crit):
        ax.axvline(crit, color="w", ls=":", lw=1.5)
    ax.plot(a["sigma_w2_fine"], 6 * a["xi_c_fine"], color="w", ls="--", lw=1.5)
    ax.set_yscale("log")
    ax.set_ylim(_edges(depths, log=True)[[0, -1]])
    ticks = [d for d in depths if d in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)] or depths
    ax.set_yticks(ticks, [str(int(d)) for d in ticks])
    ax.minorticks_off()
    ax.set_xlim(w2[0], w2[-1])
    ax.set_xlabel("$\\sigma_w^2$")
    ax.text(0.03, 0.95, label, transform=ax.transAxes, color="w", fontsize=10, va="top",
            fontweight="bold")  # fmt: skip
    return mesh


def _finite(ax, a, config):
    layers, curve = a["finite_curve_layers"], a["finite_curve"]
    se = a["finite_correlation_sd"] / math.sqrt(config.n_networks)
    for i, w in enumerate(a["finite_sigma_w2"]):
        chi = a["finite_chi1"][i]
        phase = "ordered" if chi < 1 else "chaotic"
        color = f"C{i}"
        ax.plot(layers, curve[i], color=color, lw=1.4,
                label=f"$\\sigma_w^2$ = {w:g} ($\\chi_1$ = {chi:.2f}, {phase})")  # fmt: skip
        ax.errorbar(
            a["finite_depths"], a["finite_correlation"][i], yerr=1.96 * se[i], fmt="o",
            color=color, mec="k", mew=0.5, ms=5, capsize=2,
        )  # fmt: skip
    ax.errorbar([], [], yerr=[], fmt="o", color="0.5", mec="k", mew=0.5,
                label=f"width {config.finite_width}, {config.n_networks} networks")  # fmt: skip
    ax.plot([], [], color="0.3", label="infinite width (exact)")
    ax.set_xlabel("depth L (hidden layers)")
    ax.set_ylabel("output correlation $c^L$")
    ax.set_xlim(0, layers[-1] + 0.5)
    ax.legend(fontsize=8, loc="best")


def plot(result, config) -> dict:
    """``{"": Figure}`` from ``result.arrays`` (see ``wideinf.experiments.depth.run``)."""
    a = result.arrays
    bf = float(a["sigma_b2_fixed"])
    fig = plt.figure(figsize=(15, 11))
    outer = fig.add_gridspec(2, 2, left=0.06, right=0.98, bottom=0.1, top=0.93, hspace=0.28,
                             wspace=0.2)  # fmt: skip
    ax_a = fig.add_subplot(outer[0, 0])
    ax_b = fig.add_subplot(outer[0, 1])
    inner = outer[1, 0].subgridspec(1, 3, width_ratios=[1, 1, 0.06], wspace=0.08)
    ax_c1 = fig.add_subplot(inner[0])
    ax_c2 = fig.add_subplot(inner[1], sharey=ax_c1)
    ax_d = fig.add_subplot(outer[1, 1])

    _phase(ax_a, a, bf)
    _scales(ax_b, a, config)
    mesh = _accuracy(ax_c1, a, "accuracy_nngp", "NNGP")
    _accuracy(ax_c2, a, "accuracy_ntk", "NTK")
    ax_c1.set_ylabel("depth L (hidden layers)")
    plt.setp(ax_c2.get_yticklabels(), visible=False)
    fig.colorbar(mesh, cax=fig.add_subplot(inner[2]), label="test accuracy")
    ax_c1.plot([], [], color="w", ls="--", label="depth $6\\,\\xi_c$")
    ax_c1.plot([], [], color="w", ls=":", label="critical $\\sigma_w^2$")
    ax_c1.legend(fontsize=7.5, loc="lower left", facecolor="0.3", labelcolor="w", framealpha=0.8)
    _finite(ax_d, a, config)

    ax_a.set_title(TITLES["a"], fontsize=11)
    ax_b.set_title(TITLES["b"].format(b=bf), fontsize=11)
    ax_c1.set_title(TITLES["c"].format(b=bf), fontsize=11, loc="left")
    ax_d.set_title(TITLES["d"], fontsize=11)
    for ax in (ax_b, ax_d):
        ax.grid(True, which="major", alpha=0.3)
    fig.suptitle(
        f"How depth shapes an infinitely wide {config.activation} network: order, chaos and "
        "where deep kernels still learn",
        fontsize=13,
    )
    caption = (
        f"Networks [dense, {config.activation}] x L + dense, sigma_w^2 = W_std^2, sigma_b^2 = "
        "b_std^2. (a) From normalised inputs the pre-activation variance converges to q* = "
        "sigma_w^2 E[phi(sqrt(q*) z)^2] + sigma_b^2; chi_1 is the slope at c = 1 of the map "
        "that sends one layer's correlation of two inputs to the next. Below 1 (ordered) all "
        "inputs become perfectly correlated with depth, above 1 (chaotic) they decorrelate to "
        "c* < 1; the critical line is chi_1 = 1 solved exactly. (b) Two inputs' correlation "
        "converges to its limit as exp(-L / xi_c) and the variance as exp(-L / xi_q); xi_c "
        "diverges at the critical point. Points: the rate measured from the exact NNGP "
        f"recursion over depths {a['fit_depths'][0]}-{a['fit_depths'][1]} (near the critical "
        "point the approach is slower than exponential within that window). (c) Posterior mean "
        "of the NNGP and mean of infinitely wide networks trained to convergence (NTK), "
        f"{config.n_train} training and {config.n_test} test digits, relative diag_reg "
        f"{config.diag_reg:g}; chance is 0.1. Both degrade past about 6 xi_c layers (dashed) "
        "and learn at any depth tried near the critical line (dotted). (d) Output correlation "
        f"of two inputs (initial correlation {config.initial_correlation:g}) in sampled "
        f"networks of width {config.finite_width} (mean +- 1.96 standard errors over "
        f"{config.n_networks} networks) against the exact infinite-width recursion."
    )
    fig.text(0.01, 0.0, textwrap.fill(caption, 215), ha="left", va="top", fontsize=CAPTION_FONTSIZE)
    return {"": fig}
