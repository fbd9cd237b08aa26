"""Infinite-width networks against finite ones and standard learners, on real data.

Protocol (the same for every method, data set and split):

1. Each split seed draws a random train / validation / test split (stratified by class; a data
   set with its own test set, MNIST-1D, keeps it and the seed draws the validation rows from its
   training set). Every method sees the same split.
2. Inputs are standardized with the mean and sd of the training rows. Classification targets
   are one-hot columns, regression targets are standardized with the training rows.
3. Each method fits on the training rows for every point of its hyperparameter grid
   (:mod:`wideinf.experiments.benchmark_methods`) and predicts the validation and test rows.
4. The grid point with the best validation score is chosen (accuracy, or RMSE for regression;
   the first in grid order on a tie) from the validation labels alone; only then is its test
   score computed. No choice ever looks at a test label.
5. Reported: mean and sd over the splits of the test accuracy (RMSE for regression).

Finite networks train on at most ``finite.max_train`` of the training rows (their cost); the
width study (panel b) compares them, on those same rows, with their exact infinite-width limit
at the same gradient-flow time t = steps x learning rate: the NTK mean for NTK-parameterized
networks, and for standard-parameterized ones the limit in which only the readout learns
(regression on the last layer's random features, the essay's picture).
"""

from __future__ import annotations

import difflib
import math
import zlib
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..config import ExperimentConfig, setting
from ..datasets import NAMES, RealData, load, read_table
from ..errors import ConfigError
from ..progress import progress
from . import Result
from . import benchmark_methods as bm
from .benchmark_protocol import Split, as_outputs, make_split, score, select

__all__ = ["Config", "METHODS", "LABELS", "evaluate", "load_all", "run", "report"]

METHODS = (
    "nngp", "ntk", "mlp_ntk", "mlp_standard", "logistic", "svm_rbf", "random_forest", "gp_rbf",
    "majority",
)  # fmt: skip
LABELS = {
    "nngp": "NNGP (inf. width)",
    "ntk": "NTK (inf. width)",
    "mlp_ntk": "MLP, NTK param.",
    "mlp_standard": "MLP, standard param.",
    "logistic": "logistic regression",
    "svm_rbf": "RBF SVM",
    "random_forest": "random forest",
    "gp_rbf": "GP, RBF kernel",
    "majority": "majority class / mean",
}
_PARAMS = {"mlp_ntk": "ntk", "mlp_standard": "standard"}


@dataclass(frozen=True)
class CsvConfig:
    """Your own data: a CSV with a header, numeric features and a target column."""

    file: str = setting("", help="CSV file, relative to the config's folder ('' for none)")
    target: str = setting("", help="name of the target column")
    task: Literal["classification", "regression"] = "classification"


@dataclass(frozen=True)
class KernelGrid:
    """The grid of the NNGP and NTK predictors of ReLU MLPs (no marginal likelihood)."""

    depth: tuple[int, ...] = setting((1, 2, 3, 5), ge=1, le=10, min_len=1, help="hidden layers")
    W_std: tuple[float, ...] = setting((math.sqrt(2),), gt=0, le=10, min_len=1)
    b_std: tuple[float, ...] = setting((0.0, 0.5), ge=0, le=10, min_len=1)
    diag_reg: tuple[float, ...] = setting(
        (1e-4, 1e-3, 1e-2, 1e-1, 1.0), ge=0, le=1e3, min_len=1, help="relative to trace / N"
    )


@dataclass(frozen=True)
class FiniteConfig:
    """Finite ReLU MLPs trained by full-batch gradient descent on the one-hot targets."""

    depth: int = setting(1, ge=1, le=10, help="hidden layers")
    W_std: float = setting(math.sqrt(2), gt=0, le=10)
    b_std: float = setting(0.1, ge=0, le=10)
    widths: tuple[int, ...] = setting((64, 256, 1024), ge=1, le=65536, min_len=1)
    steps: int = setting(200, ge=1, le=100_000, help="gradient descent steps")
    record_every: int = setting(20, ge=1, le=100_000, help="steps between recorded outputs")
    lr_factor: float = setting(1.0, gt=0, lt=2, help="learning rate x lambda_max(NTK) / N")
    center: bool = setting(True, help="subtract each network's initial function")
    max_train: int = setting(500, ge=0, le=100_000, help="training rows used (0: all)")


@dataclass(frozen=True)
class Config(ExperimentConfig):
    """``wideinf benchmark``: see the module docstring and experiments/benchmark_small_data.yaml."""

    datasets: tuple[str, ...] = setting(NAMES, max_len=32, help="shipped data sets by name")
    csv: CsvConfig = setting(CsvConfig(), help="your own data set (file + target column)")
    methods: tuple[str, ...] = setting(METHODS, min_len=1, max_len=len(METHODS))
    n_splits: int = setting(4, ge=2, le=100, help="random splits (seeds); sd over them")
    val_fraction: float = setting(0.2, gt=0, lt=1, help="validation share of the rows")
    test_fraction: float = setting(0.2, gt=0, lt=1, help="test share (data sets without one)")
    max_train: int = setting(0, ge=0, le=100_000, help="cap on training rows (0: all)")
    width_study: str = setting("mnist1d", help="data set of panel (b), 'csv', or '' for none")
    kernels: KernelGrid = setting(KernelGrid())
    finite: FiniteConfig = setting(FiniteConfig())

    def validate(self, where: str = "config"):
        for key, values, valid in (("datasets", self.datasets, NAMES), ("methods", self.methods, METHODS)):  # fmt: skip
            for v in values:
                if v not in valid:
                    close = difflib.get_close_matches(str(v), valid, n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    raise ConfigError(
                        f"{where}.{key}: unknown {v!r}{hint}; valid: {', '.join(valid)}"
                    )
            if len(set(values)) != len(values):
                raise ConfigError(f"{where}.{key}: contains a repeated name")
        if not self.datasets and not self.csv.file:
            raise ConfigError(f"{where}.datasets: is empty and no csv.file is given")
        if self.csv.file and not self.csv.target:
            raise ConfigError(f"{where}.csv.target: name the target column of {self.csv.file}")
        if self.val_fraction + self.test_fraction >= 1:
            raise ConfigError(f"{where}: val_fraction + test_fraction must be below 1")
        study = self.width_study
        if study and study not in self.datasets and not (study == "csv" and self.csv.file):
            raise ConfigError(
                f"{where}.width_study: {study!r} is not among the data sets; "
                f"use one of {', '.join(self.datasets)}, 'csv' or ''"
            )


# ----------------------------------------------------------------------------- the methods


def _kernel_grids(config: Config, split: Split, x_eval) -> dict[str, bm.Grid]:
    """NNGP and NTK predictions over depth x W_std x b_std x diag_reg."""
    g = config.kernels
    preds = {"nngp": [], "ntk": []}
    labels = []
    for depth in g.depth:
        for w in g.W_std:
            for b in g.b_std:
                arch = bm.relu_mlp(depth, w, b)
                out = bm.infinite_width_predict(arch, split.x_train, split.targets(), x_eval, g.diag_reg)  # fmt: skip
                for kind in preds:
                    preds[kind].append(as_outputs(out[kind], split))  # (R, M)
                labels += [f"depth={depth} W_std={w:.3g} b_std={b:g} diag_reg={r:g}" for r in g.diag_reg]  # fmt: skip
    return {kind: bm.Grid(np.concatenate(p), tuple(labels)) for kind, p in preds.items()}


def _finite_grids(config: Config, split: Split, x_eval, seed_key) -> dict[str, dict]:
    """Finite MLPs of every width, both parameterizations: grid = width x recorded step."""
    f = config.finite
    rows = f.max_train or None
    x_tr, targets = split.x_train[:rows], split.targets(rows)
    out = {}
    for method, param in _PARAMS.items():
        if method not in config.methods:
            continue
        arch = bm.relu_mlp(f.depth, f.W_std, f.b_std, param)
        preds, labels, finals, times = [], [], [], []
        for width in f.widths:
            rng = np.random.default_rng([*seed_key, width])  # same draws in both parameterizations
            outputs, steps, eta, _ = bm.train_finite(
                arch, width, x_tr, targets, x_eval, f.steps, f.record_every, f.lr_factor,
                f.center, rng,
            )  # fmt: skip
            preds.append(as_outputs(outputs, split))  # (T, M)
            labels += [f"width={width} step={s}" for s in steps]
            finals.append(preds[-1][-1])
            times.append(eta * f.steps)
        limit = bm.infinite_width_predict(arch, x_tr, targets, x_eval, (0.0,), time=float(np.mean(times)))  # fmt: skip
        out[method] = {
            "grid": bm.Grid(np.concatenate(preds), tuple(labels)),
            "final": np.stack(finals),  # (W, M) outputs at the last step
            "limit": as_outputs(limit["ntk"][0], split),  # (M,)
            "time": float(np.mean(times)),
        }
    return out


def _majority(split: Split, m: int) -> bm.Grid:
    if split.classification:
        value = np.bincount(split.y_train, minlength=split.n_classes).argmax()
    else:
        value = split.y_train.mean()
    return bm.Grid(np.full((1, m), value), ("training majority / mean",))


def evaluate(config: Config, data: RealData, split: Split, seed_key) -> tuple[dict, dict]:
    """Every method on one split: ``{method: (val score, test score, choice label)}`` and the
    width-study outputs of the finite networks."""
    x_eval = np.vstack([split.x_val, split.x_test])  # (V + M, d)
    n_val = len(split.x_val)
    grids: dict[str, bm.Grid | None] = {}
    if {"nngp", "ntk"} & set(config.methods):
        grids.update(_kernel_grids(config, split, x_eval))
    finite = _finite_grids(config, split, x_eval, seed_key)
    grids.update({m: v["grid"] for m, v in finite.items()})
    # scikit-learn sees class labels, or the standardized regression targets (SVR's epsilon
    # and the GP's noise are on that scale); its predictions go back to the data's scale.
    y_fit = split.y_train if split.classification else split.targets()[:, 0]
    for method in bm.SKLEARN_METHODS:
        if method in config.methods:
            grid = bm.sklearn_grid(method, split.classification, split.x_train, y_fit, x_eval, seed_key[0])  # fmt: skip
            if grid is not None and not split.classification:
                grid = bm.Grid(as_outputs(grid.predictions[..., None], split), grid.labels)
            grids[method] = grid
    grids["majority"] = _majority(split, len(x_eval))
    results = {}
    for method in config.methods:
        grid = grids.get(method)
        if grid is None:
            continue
        g = select(grid.predictions[:, :n_val], split.y_val, split.classification)
        val = score(grid.predictions[g, :n_val], split.y_val, split.classification)
        # The test labels are read here, after the choice, and nowhere before.
        test = score(grid.predictions[g, n_val:], split.y_test, split.classification)
        results[method] = (val, test, grid.labels[g])
    return results, finite


# ----------------------------------------------------------------------------- the experiment


def load_all(config: Config) -> list[RealData]:
    """The configured data sets, loaded (and every bad input reported) before any fitting."""
    from pathlib import Path

    out = [load(name) for name in config.datasets]
    if config.csv.file:
        path = Path(config.csv.file)
        if not path.is_absolute():
            path = Path(config.config_dir or ".") / path
        out.append(read_table(path, config.csv.target, config.csv.task))
    return out


def run(config: Config, rng: np.random.Generator) -> Result:
    """Every data set x method x split; see the module docstring.

    Arrays (D data sets, P methods, S splits, W widths, Q = 2 parameterizations):
    ``datasets`` (D,), ``tasks`` (D,), ``methods`` (P,), ``test_score``, ``val_score`` (D, P, S)
    (NaN where a method does not apply), ``choice`` (D, P, S) the chosen grid point's label,
    ``n_train``, ``n_val``, ``n_test`` (D,); width study: ``widths`` (W,), ``study_params``
    (Q,), ``study_accuracy`` and ``study_agreement`` (Q, W, S) at the last step,
    ``study_limit_accuracy`` (Q, S) of the infinite-width limit at the same time,
    ``study_time`` (Q, S), ``study_n_train`` ().
    """
    datas = load_all(config)
    seeds = rng.integers(0, 2**32, size=config.n_splits)  # one fixed seed per split
    splits = [
        [
            make_split(
                data,
                config.val_fraction,
                config.test_fraction,
                config.max_train,
                np.random.default_rng([int(s), zlib.crc32(data.name.encode())]),
            )
            for s in seeds
        ]
        for data in datas
    ]  # fmt: skip  (every split is made, and checked, before any fitting)
    d_len, p_len, s_len = len(datas), len(config.methods), config.n_splits
    test = np.full((d_len, p_len, s_len), np.nan)
    val = np.full((d_len, p_len, s_len), np.nan)
    choice = np.full((d_len, p_len, s_len), "", dtype=object)
    study_name = "" if not config.width_study else (datas[-1].name if config.width_study == "csv" else config.width_study)  # fmt: skip
    params = [p for m, p in _PARAMS.items() if m in config.methods]
    w_len = len(config.finite.widths)
    study = {k: np.full((len(params), w_len, s_len), np.nan) for k in ("accuracy", "agreement")}
    limit_acc, study_time = (
        np.full((len(params), s_len), np.nan),
        np.full((len(params), s_len), np.nan),
    )
    bar = progress(total=d_len * s_len, desc="benchmark")
    try:
        for i, data in enumerate(datas):
            for s in range(s_len):
                split = splits[i][s]
                key = (int(seeds[s]), zlib.crc32(data.name.encode()))
                results, finite = evaluate(config, data, split, key)
                for j, method in enumerate(config.methods):
                    if method in results:
                        val[i, j, s], test[i, j, s], choice[i, j, s] = results[method]
                if data.name == study_name and split.classification:
                    for q, method in enumerate(m for m in _PARAMS if m in config.methods):
                        fin, n_val = finite[method], len(split.x_val)
                        final, lim = fin["final"][:, n_val:], fin["limit"][n_val:]  # test rows
                        study["accuracy"][q, :, s] = np.mean(final == split.y_test, axis=1)
                        study["agreement"][q, :, s] = np.mean(final == lim, axis=1)
                        limit_acc[q, s] = np.mean(lim == split.y_test)
                        study_time[q, s] = fin["time"]
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    arrays = {
        "datasets": np.array([d.name for d in datas]),
        "tasks": np.array([d.task for d in datas]),
        "methods": np.array(config.methods),
        "test_score": test,
        "val_score": val,
        "choice": choice.astype(str),
        "n_train": np.array([len(sp[0].y_train) for sp in splits], dtype=float),
        "n_val": np.array([len(sp[0].y_val) for sp in splits], dtype=float),
        "n_test": np.array([len(sp[0].y_test) for sp in splits], dtype=float),
        "widths": np.array(config.finite.widths, dtype=float),
        "study_params": np.array(params),
        "study_accuracy": study["accuracy"],
        "study_agreement": study["agreement"],
        "study_limit_accuracy": limit_acc,
        "study_time": study_time,
        "study_n_train": np.array(float(config.finite.max_train or np.nan)),
        "study_dataset": np.array(study_name),
    }
    return Result(arrays=arrays, summary=_summary(arrays), warnings=[])


def _summary(a) -> dict:
    out = {}
    for i, name in enumerate(a["datasets"]):
        for j, method in enumerate(a["methods"]):
            scores = a["test_score"][i, j]
            if np.isfinite(scores).all():
                out[f"{name}.{method}.mean"] = round(float(scores.mean()), 4)
                out[f"{name}.{method}.sd"] = round(float(scores.std(ddof=1)), 4)
    for q, param in enumerate(a["study_params"]):
        if np.isfinite(a["study_agreement"][q]).any():
            out[f"study.{param}.agreement_widest"] = round(float(np.mean(a["study_agreement"][q, -1])), 4)  # fmt: skip
    return out


def report(result: Result) -> list[str]:
    """The results table: test accuracy (RMSE for regression), mean +- sd over the splits."""
    a = result.arrays
    methods = list(a["methods"])
    head = f"{'data set':<15}" + "".join(f"{m:>16}" for m in methods)
    lines = ["test accuracy (RMSE for regression): mean +- sd over splits", head]
    for i, name in enumerate(a["datasets"]):
        cells = []
        for j in range(len(methods)):
            s = a["test_score"][i, j]
            cells.append(f"{'-':>16}" if not np.isfinite(s).all() else f"{s.mean():>9.3f} +-{s.std(ddof=1):5.3f}")  # fmt: skip
        lines.append(f"{name + (' (RMSE)' if a['tasks'][i] == 'regression' else ''):<15}" + "".join(cells))  # fmt: skip
    widths = a["widths"].astype(int)
    for q, param in enumerate(a["study_params"]):
        if not np.isfinite(a["study_accuracy"][q]).any():
            continue
        acc, agree = a["study_accuracy"][q].mean(axis=1), a["study_agreement"][q].mean(axis=1)
        lines.append(
            f"{a['study_dataset']}, {param} param., width: "
            + ", ".join(f"{w}: acc {x:.3f} agree {y:.3f}" for w, x, y in zip(widths, acc, agree))
            + f"; limit acc {np.nanmean(a['study_limit_accuracy'][q]):.3f}"
        )
    return lines
