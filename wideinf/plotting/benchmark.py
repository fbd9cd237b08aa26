"""Figure of ``wideinf benchmark``: real data, infinite vs finite width vs standard learners.

One figure (``<name>.png``):

(a) one panel per data set: the test accuracy (RMSE for regression) of every method, mean +- sd
    over the splits, the chosen hyperparameters never having seen a test label;
(b) the width study: test accuracy of the finite networks against their width, NTK and standard
    parameterization, beside their infinite-width limits at the same training time (lines);
(c) agreement of the finite networks' predicted labels with those of their limit.
"""

from __future__ import annotations

import textwrap

import numpy as np

from . import CAPTION_FONTSIZE, plt

__all__ = ["plot", "COLORS", "TITLES"]

TITLES = (
    "(b) Finite networks against width",
    "(c) Agreement with the infinite-width predictor",
)
COLORS = {
    "nngp": "C0",
    "ntk": "C3",
    "mlp_ntk": "C1",
    "mlp_standard": "C2",
    "logistic": "0.45",
    "svm_rbf": "C4",
    "random_forest": "C5",
    "gp_rbf": "C9",
    "majority": "0.7",
}
_PARAM_COLORS = {"ntk": "C1", "standard": "C2"}


def plot(result, config) -> dict:
    """``{"": Figure}`` from ``result.arrays`` (see ``wideinf.experiments.benchmark.run``)."""
    a = result.arrays
    names, methods = list(a["datasets"]), list(a["methods"])
    study = bool(len(a["study_params"])) and np.isfinite(a["study_accuracy"]).any()
    fig = plt.figure(figsize=(max(15, 2.6 * len(names)), 10.5 if study else 5.2))
    rows = 2 if study else 1
    grid = fig.add_gridspec(rows, len(names), height_ratios=[1, 1.05][:rows], hspace=0.42)
    fig.subplots_adjust(left=0.1, right=0.99, top=0.92, bottom=0.12 if study else 0.2)
    ypos = np.arange(len(methods))[::-1]
    for i, name in enumerate(names):
        ax = fig.add_subplot(grid[0, i])
        scores = a["test_score"][i]  # (P, S)
        for j, method in enumerate(methods):
            s = scores[j]
            if np.isfinite(s).all():
                ax.errorbar(
                    s.mean(), ypos[j], xerr=s.std(ddof=1), fmt="o", ms=5, capsize=2,
                    color=COLORS.get(method, "k"),
                )  # fmt: skip
        ax.set_yticks(ypos, [_label(m, config) for m in methods] if i == 0 else [])
        ax.set_ylim(-0.6, len(methods) - 0.4)
        regression = a["tasks"][i] == "regression"
        ax.set_xlabel("test RMSE (lower is better)" if regression else "test accuracy")
        n = (int(a["n_train"][i]), int(a["n_val"][i]), int(a["n_test"][i]))
        ax.set_title(f"{name}\ntrain/val/test {n[0]}/{n[1]}/{n[2]}", fontsize=9.5)
        ax.grid(True, axis="x", alpha=0.3)
    fig.text(0.01, 0.975, "(a) Test score per data set and method", fontsize=11, weight="bold")
    if study:
        _width_panels(fig, grid, a)
    fig.suptitle(
        "Do infinitely wide networks generalise poorly on real tasks? "
        "Infinite-width predictors vs finite networks vs standard learners",
        fontsize=12.5,
        y=1.0,
    )
    fig.text(
        0.01, 0.0, textwrap.fill(_caption(a, config), 230), ha="left", va="top",
        fontsize=CAPTION_FONTSIZE,
    )  # fmt: skip
    return {"": fig}


def _label(method: str, config) -> str:
    from ..experiments.benchmark import LABELS

    capped = method.startswith("mlp_") and config.finite.max_train
    return LABELS.get(method, method) + (" *" if capped else "")


def _width_panels(fig, grid, a):
    row = grid[1, :].subgridspec(1, 2, wspace=0.22)  # room for the right panel's label
    ax_acc, ax_agree = fig.add_subplot(row[0]), fig.add_subplot(row[1])
    widths = a["widths"]
    name = str(a["study_dataset"])
    methods = list(a["methods"])
    i = list(a["datasets"]).index(name)
    for q, param in enumerate(a["study_params"]):
        color = _PARAM_COLORS.get(str(param), "k")
        acc, agree = a["study_accuracy"][q], a["study_agreement"][q]  # (W, S)
        label = f"finite, {param} param."
        ax_acc.errorbar(widths, acc.mean(1), yerr=acc.std(1, ddof=1), fmt="o-", color=color,
                        capsize=3, label=label)  # fmt: skip
        ax_agree.errorbar(widths, agree.mean(1), yerr=agree.std(1, ddof=1), fmt="o-",
                          color=color, capsize=3, label=label)  # fmt: skip
        limit = np.nanmean(a["study_limit_accuracy"][q])
        what = "NTK" if param == "ntk" else "readout-only (standard) limit"
        ax_acc.axhline(limit, color=color, ls="--", lw=1.2, label=f"infinite width: {what}")
    for method, ls in (("ntk", ":"), ("nngp", "-.")):
        if method in methods:
            s = a["test_score"][i, methods.index(method)]
            ax_acc.axhline(
                s.mean(), color="0.35", ls=ls, lw=1.2,
                label=f"{method.upper()}, tuned, all {int(a['n_train'][i])} training rows",
            )  # fmt: skip
    n_rows = a["study_n_train"]
    rows = f"{int(n_rows)} training rows" if np.isfinite(n_rows) else "all training rows"
    ax_acc.set_ylabel(f"{name} test accuracy")
    ax_agree.set_ylabel("fraction of test labels equal to the limit's")
    ax_agree.set_ylim(0, 1.02)
    ax_agree.axhline(1.0, color="0.6", lw=0.8)
    for ax, title in zip((ax_acc, ax_agree), TITLES):
        ax.set_xscale("log", base=2)
        ax.set_xticks(widths, [str(int(w)) for w in widths])
        ax.set_xlabel(f"hidden width (networks trained on {rows})")
        ax.set_title(title, fontsize=11)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7.5, loc="best", framealpha=0.85)


def _caption(a, config) -> str:
    f, k = config.finite, config.kernels
    time = np.nanmean(a["study_time"]) if np.isfinite(a["study_time"]).any() else float("nan")
    w_std = ", ".join(f"{w:.4g}" for w in k.W_std)
    finite = (
        f"Finite MLPs: depth {f.depth}, widths {list(f.widths)}, one network per class, "
        f"full-batch gradient descent on the mean squared error for {f.steps} steps at rate "
        f"{f.lr_factor:g} N / lambda_max(NTK), "
        + ("each network's initial function subtracted (centred), " if f.center else "")
        + "width and step chosen on validation"
        + (f"; * trained on at most {f.max_train} training rows (their cost). " if f.max_train else ". ")
    )  # fmt: skip
    return (
        f"Protocol: {config.n_splits} random train/validation/test splits with fixed seeds "
        f"(validation {config.val_fraction:g}, test {config.test_fraction:g} of the rows, "
        "stratified; MNIST-1D keeps its own 1000 test rows and the seed draws the validation "
        "rows), the same splits for every method. Every method chooses its hyperparameters "
        "on the validation rows only and is scored once on the test rows: mean +- sd over "
        "the splits. Inputs standardized with the training rows; classes as one-hot targets. "
        f"NNGP/NTK: ReLU MLPs, a grid over depth {list(k.depth)}, W_std [{w_std}], "
        f"b_std {list(k.b_std)}, relative diag_reg {list(k.diag_reg)} (no marginal "
        "likelihood). "
        + finite
        + "scikit-learn: logistic regression, RBF SVM, random forest over small grids; GP "
        "regression with an RBF kernel by marginal likelihood (regression only). "
        f"(b, c) The finite networks at their last step (t = {time:.3g}) against their exact "
        "limit at the same t on the same rows: the NTK mean for NTK parameterization, the "
        "readout-only regression on random features for standard parameterization."
    )
