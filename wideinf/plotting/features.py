"""Figure of ``wideinf features``: perfect vs random features under minimum-norm regression.

One figure (``<name>.png``), three panels:

(a) the perfect share ``s = P / (P + R)`` against N (log x) for every p, simulation (mean
    +- 1.96 standard errors over seeds) and the theory ``pN / (pN + 1 - p)``;
(b) the N at which the share crosses 1/2 against the complexity ``C = log2(1/p)`` (log y):
    measured, the min-norm theory ``(1 - p) / p = 2^C - 1`` and a Bayesian learner's
    ``log2((1 - p) / p) ~ C``;
(c) test accuracy on fresh inputs against N, with its Gaussian approximation.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from . import add_caption, plt

__all__ = ["plot", "p_label"]

TITLES = (
    "(a) Share of the fit carried by the perfect features",
    "(b) Data needed for the perfect features to dominate",
    "(c) Test accuracy on fresh inputs",
)


def p_label(p: float, c: float) -> str:
    """``p = 1/8 (C = 3)`` for simple fractions, else ``p = 0.3 (C = 1.74)``."""
    frac = Fraction(p).limit_denominator(4096)
    text = f"{frac.numerator}/{frac.denominator}" if abs(float(frac) - p) < 1e-12 else f"{p:.3g}"
    return f"p = {text} (C = {c:.3g})"


def _colors(n: int):
    cmap = plt.get_cmap("viridis")
    return [cmap(0.9 * i / max(n - 1, 1)) for i in range(n)]


def plot(result, config) -> dict:
    """``{"": Figure}`` from ``result.arrays`` (see ``wideinf.experiments.features.run``)."""
    a = result.arrays
    ns, ps, c = a["N"], a["p"], a["complexity"]
    n_seeds = config.n_seeds
    se = a["perfect_share_sd"] / math.sqrt(n_seeds)  # (B, A)
    colors = _colors(len(ps))
    fig, axes = plt.subplots(1, 3, figsize=(17, 5.2))
    fig.subplots_adjust(left=0.05, right=0.99, bottom=0.11, top=0.87, wspace=0.2)

    ax = axes[0]
    for b in range(len(ps)):
        ax.plot(a["n_fine"], a["theory_share_fine"][b], color=colors[b], lw=1.2, alpha=0.8)
        ax.errorbar(ns, a["perfect_share"][b], yerr=1.96 * se[b], fmt="o", ms=3.5, color=colors[b])
    ax.axhline(0.5, color="0.4", ls=":", lw=1)
    ax.text(ns[-1], 0.515, "P = R", color="0.3", fontsize=8, ha="right")
    ax.errorbar([], [], yerr=[], fmt="o", ms=3.5, color="0.3", label="simulation")
    ax.plot([], [], color="0.3", lw=1.2, label="theory pN / (pN + 1 - p)")
    ax.set_xscale("log")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("training set size N")
    ax.set_ylabel("perfect share s = P / (P + R)")
    ax.legend(fontsize=8, loc="lower right", title="colour: p, as keyed in (c)", title_fontsize=8)

    ax = axes[1]
    ax.plot(
        a["c_fine"], a["n_star_theory_fine"], color="C3", lw=1.5,
        label="min-norm regression, theory (1 - p)/p = $2^C - 1$",
    )  # fmt: skip
    ax.plot(
        a["c_fine"], a["n_star_bayes_fine"], color="C0", lw=1.5, ls="--",
        label="Bayesian learner, $\\log_2((1-p)/p) \\approx C$",
    )  # fmt: skip
    n_star_err = 1.96 * a["n_star_sd"] / math.sqrt(n_seeds)  # (B,)
    for b in np.flatnonzero(np.isfinite(a["n_star"])):
        ax.errorbar(
            c[b], a["n_star"][b], yerr=n_star_err[b], fmt="o", color=colors[b], ms=6,
            mec="k", mew=0.6,
        )  # fmt: skip
    ax.errorbar(
        [], [], yerr=[], fmt="o", color="0.5", mec="k", mew=0.6, ms=6,
        label="measured: where the mean share crosses 1/2",
    )  # fmt: skip
    ax.set_yscale("log")
    top = max(np.nanmax(a["n_star_theory_fine"]), np.nanmax(a["n_star"], initial=1.0))
    ax.set_ylim(0.5, 2 * top)
    ax.set_xlabel("complexity C = $\\log_2(1/p)$ (bits)")
    ax.set_ylabel("N* (perfect share reaches 1/2)")
    ax.legend(fontsize=8, loc="upper left")

    ax = axes[2]
    err = a["test_accuracy_sd"] / math.sqrt(n_seeds)
    for b, p in enumerate(ps):
        ax.plot(ns, a["test_accuracy_theory"][b], color=colors[b], lw=1.2, alpha=0.8)
        ax.errorbar(
            ns, a["test_accuracy"][b], yerr=1.96 * err[b], fmt="o", ms=3.5, color=colors[b],
            label=p_label(p, c[b]),
        )  # fmt: skip
    ax.plot([], [], color="k", lw=1.2, label="Gaussian approx. $\\Phi(p\\sqrt{NM/(1-p)})$")
    ax.set_xscale("log")
    ax.set_ylim(0.45, 1.02)
    ax.set_xlabel("training set size N")
    ax.set_ylabel(f"test accuracy ({config.n_test} fresh inputs per seed)")
    ax.legend(fontsize=7.5, loc="lower right", framealpha=0.9)

    for ax, title in zip(axes, TITLES):
        ax.set_title(title, fontsize=11)
        ax.grid(True, which="major", alpha=0.3)
    fig.suptitle(
        "Perfect vs random features under minimum-norm regression (the essay's toy model)",
        fontsize=13,
    )
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
    add_caption(fig, caption)
    return {"": fig}
