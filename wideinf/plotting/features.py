"""Figure of ``wideinf features``: perfect vs random features under minimum-norm regression.

Panels (``TITLES``; formulas in docs/features-l1.md): (a) the perfect share ``s = P / (P + R)``
against N, simulation (mean +- 1.96 standard errors over seeds) and theory
``pN / (pN + 1 - p)``; (b) N*, where s crosses 1/2, against ``C = log2(1/p)``; (c) test accuracy
on fresh inputs; and, when the run has the L1 fit, (d) its share ``p / (p + (1 - p) 2^(1-N))``,
with the L1 N* ``1 + log2((1 - p) / p)`` added to (b).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from . import add_caption, finish_axes, plt, viridis

__all__ = ["plot"]

TITLES = (
    "(a) Share of the fit carried by the perfect features",
    "(b) Data needed for the perfect features to dominate",
    "(c) Test accuracy on fresh inputs",
    "(d) The same share under minimum-L1-norm regression",
)


def p_label(p: float, c: float) -> str:
    """``p = 1/8 (C = 3)`` for simple fractions, else ``p = 0.3 (C = 1.74)``."""
    frac = Fraction(p).limit_denominator(4096)
    text = f"{frac.numerator}/{frac.denominator}" if abs(float(frac) - p) < 1e-12 else f"{p:.3g}"
    return f"p = {text} (C = {c:.3g})"


def plot(result, config) -> dict:
    """``{"": Figure}`` from ``result.arrays`` (see ``wideinf.experiments.features.run``)."""
    a = result.arrays
    ns, ps, c = a["N"], a["p"], a["complexity"]
    n_seeds = config.n_seeds
    colors = viridis(len(ps))
    with_l1 = "perfect_share_l1" in a
    if with_l1:
        fig, grid = plt.subplots(2, 2, figsize=(15, 10.4))
        fig.subplots_adjust(left=0.06, right=0.99, bottom=0.07, top=0.93, wspace=0.17, hspace=0.25)
        axes = grid.ravel()
    else:
        fig, axes = plt.subplots(1, 3, figsize=(17, 5.2))
        fig.subplots_adjust(left=0.05, right=0.99, bottom=0.11, top=0.87, wspace=0.2)

    _share_panel(axes[0], a, colors, n_seeds, "", "pN / (pN + 1 - p)", "s = P / (P + R)")
    axes[0].text(ns[-1], 0.515, "P = R", color="0.3", fontsize=8, ha="right")

    ax = axes[1]
    for key, color, ls, label in (
        ("n_star_theory", "C3", "-", "min-norm regression, theory (1 - p)/p = $2^C - 1$"),
        ("n_star_bayes", "C0", "--", "Bayesian learner, $\\log_2((1-p)/p) \\approx C$"),
    ):
        ax.plot(a["c_fine"], a[f"{key}_fine"], color=color, lw=1.5, ls=ls, label=label)
    _n_star_points(ax, a, "", n_seeds, colors, "o", 6, "measured: where the mean share crosses 1/2")
    if with_l1:
        ax.plot(
            a["c_fine"], a["n_star_l1_theory_fine"], color="C2", lw=1.5, ls="-.",
            label="min-L1 regression, theory $1 + \\log_2((1-p)/p)$",
        )  # fmt: skip
        label = "measured, L1: where the mean share crosses 1/2"
        _n_star_points(ax, a, "_l1", n_seeds, colors, "s", 5.5, label)
    top = max(np.nanmax(a["n_star_theory_fine"]), np.nanmax(a["n_star"], initial=1.0))
    finish_axes(
        ax, yscale="log", ylim=(0.5, 2 * top), xlabel="complexity C = $\\log_2(1/p)$ (bits)",
        ylabel="N* (perfect share reaches 1/2)", legend={"fontsize": 8, "loc": "upper left"},
    )  # fmt: skip

    ax = axes[2]
    err = a["test_accuracy_sd"] / math.sqrt(n_seeds)
    for b, p in enumerate(ps):
        ax.plot(ns, a["test_accuracy_theory"][b], color=colors[b], lw=1.2, alpha=0.8)
        ax.errorbar(
            ns, a["test_accuracy"][b], yerr=1.96 * err[b], fmt="o", ms=3.5, color=colors[b],
            label=p_label(p, c[b]),
        )  # fmt: skip
    ax.plot([], [], color="k", lw=1.2, label="Gaussian approx. $\\Phi(p\\sqrt{NM/(1-p)})$")
    finish_axes(
        ax, xscale="log", ylim=(0.45, 1.02), xlabel="training set size N",
        ylabel=f"test accuracy ({config.n_test} fresh inputs per seed)",
        legend={"fontsize": 7.5, "loc": "lower right", "framealpha": 0.9},
    )  # fmt: skip

    if with_l1:
        low = a["perfect_share_l1_min"].mean(axis=0)  # (A,) P(k = 0), nearly the same for every p
        axes[3].fill_between(
            ns, low, 1.0, color="0.6", alpha=0.18, lw=0, step=None,
            label="shares other L1 minimisers attain (mean over seeds)",
        )  # fmt: skip
        theory = "p / (p + (1 - p) $2^{1-N}$)"
        _share_panel(axes[3], a, colors, n_seeds, "_l1", theory, "of the least-L2 L1 minimiser")
    for ax, title in zip(axes, TITLES):
        ax.set_title(title, fontsize=11)
        ax.grid(True, which="major", alpha=0.3)
    title = "Perfect vs random features under minimum-norm regression (the essay's toy model)"
    fig.suptitle(title + (": L2 and L1" if with_l1 else ""), fontsize=13)
    caption = (
        f"Minimum-norm linear fit of N labels +-1 from M = {config.n_features} features, a "
        "fraction p of them perfect (equal to the labels) and the rest fair coin flips, solved "
        f"exactly through the N x N Gram matrix; points: mean over {n_seeds} seeds +- 1.96 "
        "standard errors. (a) The fit is s y from the perfect features plus (1 - s) y from the "
        "random ones; P and R are their lengths. The perfect features carry most of it only "
        "once pN > 1 - p. (b) So the data needed grows like 2^C with the complexity "
        "C = log2(1/p), where a Bayesian learner with prior p on the perfect feature needs "
        "about C labels. (c) On a fresh input the perfect features give s times the label and "
        "the random ones fresh coins, noise of sd ~ sqrt((1-p)N/M) / (pN + 1 - p): accuracy "
        "here is a finite-M effect (the noise vanishes as M grows), and the perfect features' "
        "influence on a prediction is the share s of panel (a)."
    )
    if with_l1:
        caption += (
            " (d) Minimum-L1-norm fit, weights tied between identical columns split by least L2 "
            "norm: interpolating with +-1 features costs ||w||_1 >= 1, reached only by columns "
            "equal to +-y on the training set, i.e. the pM perfect ones and the k random ones "
            "that match by chance, k ~ Binomial((1 - p)M, 2^(1-N)); each gets 1 / (pM + k). So "
            "the share is p / (p + (1 - p) 2^(1-N)) and N* = 1 + log2((1 - p)/p), one bit above "
            "the Bayesian line in (b). Shaded: other L1 minimisers give any share in [0, 1] while k > 0."
        )
    add_caption(fig, caption, width=235 if with_l1 else 190)
    return {"": fig}


def _n_star_points(ax, a, sfx, n_seeds, colors, marker, size, label):
    """Measured N* per p (+- 1.96 standard errors) in panel (b), and one legend key."""
    n_star = a[f"n_star{sfx}"]  # (B,)
    err = 1.96 * a[f"n_star{sfx}_sd"] / math.sqrt(n_seeds)  # (B,)
    for b in np.flatnonzero(np.isfinite(n_star)):
        ax.errorbar(
            a["complexity"][b], n_star[b], yerr=err[b], fmt=marker, color=colors[b], ms=size,
            mec="k", mew=0.6,
        )  # fmt: skip
    ax.errorbar([], [], yerr=[], fmt=marker, color="0.5", mec="k", mew=0.6, ms=size, label=label)


def _share_panel(ax, a, colors, n_seeds, sfx, theory, ylabel):
    """Panel (a), or (d) for ``sfx="_l1"`` (over the L2 theory, dashed): the share against N."""
    l1 = sfx == "_l1"
    marker = "s" if l1 else "o"
    se = a[f"perfect_share{sfx}_sd"] / math.sqrt(n_seeds)  # (B, A)
    for b, color in enumerate(colors):
        if l1:
            ax.plot(a["n_fine"], a["theory_share_fine"][b], color=color, lw=1, ls="--", alpha=0.5)
        ax.plot(a["n_fine"], a[f"theory_share{sfx}_fine"][b], color=color, lw=1.2, alpha=0.8)
        share = a[f"perfect_share{sfx}"][b]
        ax.errorbar(a["N"], share, yerr=1.96 * se[b], fmt=marker, ms=3.5, color=color)
    ax.axhline(0.5, color="0.4", ls=":", lw=1)
    label = "simulation, L1" if l1 else "simulation"
    ax.errorbar([], [], yerr=[], fmt=marker, ms=3.5, color="0.3", label=label)
    ax.plot([], [], color="0.3", lw=1.2, label=f"theory {theory}")
    if l1:
        ax.plot([], [], color="0.3", lw=1, ls="--", alpha=0.5, label="L2 theory of (a)")
    finish_axes(
        ax, xscale="log", ylim=(0, 1.02), xlabel="training set size N",
        ylabel=f"perfect share {ylabel}", legend={"fontsize": 8, "loc": "lower right",
        "title": "colour: p, as keyed in (c)", "title_fontsize": 8},
    )  # fmt: skip
