"""`wideinf predict`: an infinitely wide network's predictions on a user's own tables.

Reads the tables (:mod:`wideinf.tabular`), checks them, infers the task, standardises,
optionally fits W_std, b_std and the noise by marginal likelihood (:mod:`wideinf.evidence`),
predicts (:func:`wideinf.infer.infer`), and writes PRED.csv and PRED.yaml atomically. Every
problem with the input is a one-line ConfigError (or ResourceError) before anything is written.
"""

from __future__ import annotations

import csv
import io
import math
import time as _time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ConfigError, ResourceError
from .kernel_command import _MEMORY_SHARE
from .memory import available_memory

__all__ = ["PredictOptions", "run_predict", "available_memory", "MAX_CLASSES_INFERRED"]

# A numeric target is taken for class labels when it has only integers and at most this many
# distinct values; otherwise it is a regression target (--task overrides either way).
MAX_CLASSES_INFERRED = 10


@dataclass(frozen=True)
class PredictOptions:
    """The options of ``wideinf predict`` (see its help)."""

    kernel: str = "nngp"
    time: float = math.inf
    diag_reg: float = 0.0
    task: str | None = None
    fit: tuple = ()
    float32: bool = False
    features: tuple = ()
    standardize: bool = True
    memory_limit: int | None = None  # bytes; None: what the machine has available


def run_predict(arch_path, train_path, test_path, target, out_path, options, echo=print):
    """Run ``wideinf predict`` and return the list of files written."""
    from . import __version__
    from .architecture import Architecture
    from .infer import infer
    from .tabular import Standardizer, align_features, features, read_table

    t0 = _time.perf_counter()
    timings = {}
    out_path = Path(out_path)
    if out_path.suffix.lower() != ".csv":
        raise ConfigError(f"--out {out_path}: expected a file name ending in .csv")
    if options.kernel != "ntk" and not math.isinf(options.time):
        raise ConfigError(f"--time applies to --kernel ntk only, not {options.kernel}")
    arch = Architecture.from_yaml(arch_path)
    train = read_table(train_path, "--train")
    test = read_table(test_path, "--test")
    target_col = train.resolve(target, "target")
    x_train, names = features(train, target_col, options.features)
    test_target = target_col if target_col in test.data else None
    x_test, _ = align_features(train, names, test, test_target, options.features)
    if train.n_rows < 2:
        raise ConfigError(f"{train.path}: {train.n_rows} data row(s); at least 2 are needed")
    task, labels, classes, why = _task(train, target_col, options.task)
    _check_memory(train.path, x_train.shape[0], x_test.shape[0], options)
    exact = options.diag_reg == 0 and "noise" not in options.fit
    if exact and not (options.kernel == "ntk" and not math.isinf(options.time)):
        _check_duplicates(train, x_train, options.kernel)
    echo(f"task: {task} ({why}; --task to override)")
    timings["read"] = _time.perf_counter() - t0

    scaler = Standardizer.fit(x_train) if options.standardize else None
    xs_train = scaler.transform(x_train) if scaler else x_train
    xs_test = scaler.transform(x_test) if scaler else x_test
    y_model, y_shift, y_scale = _targets(task, labels, classes, options.standardize)
    echo(_standardize_note(options.standardize, task, len(names)))

    diag_reg, relative, fit_report = options.diag_reg, True, None
    if options.fit:
        from .evidence import fit_hyperparameters

        t1 = _time.perf_counter()
        result = fit_hyperparameters(
            arch,
            xs_train,
            y_model,
            options.fit,
            kernel="ntk" if options.kernel == "ntk-gp" else "nngp",
            diag_reg=options.diag_reg,
        )
        arch = result.architecture
        if result.values["noise"] is not None:
            diag_reg, relative = result.values["noise"], False
        fit_report = _fit_report(result)
        echo("fit: " + ", ".join(f"{k} {v:.4g}" for k, v in fit_report["values"].items()) +
             f" (log marginal likelihood {result.initial_log_marginal_likelihood:.6g} -> "
             f"{result.log_marginal_likelihood:.6g}, {result.evaluations} evaluations, "
             f"{result.seconds:.1f} s)")  # fmt: skip
        timings["fit"] = _time.perf_counter() - t1

    t1 = _time.perf_counter()
    outcome = infer(
        arch, xs_train, y_model, xs_test, kernel=options.kernel, time=options.time,
        diag_reg=diag_reg, diag_reg_relative=relative,
        dtype=np.float32 if options.float32 else np.float64,
    )  # fmt: skip
    timings["predict"] = _time.perf_counter() - t1

    table = _output_table(task, outcome, classes, y_shift, y_scale)
    train_fit = _score(task, outcome.train_mean, labels, classes, y_shift, y_scale)
    test_fit = None
    if test_target is not None:
        from .tabular import target as read_target

        test_labels = read_target(test, test_target)
        test_fit = _score(task, outcome.mean, test_labels, classes, y_shift, y_scale)
    from .config import to_plain
    from .kernels.gradients import hyperparameters

    report = {
        "wideinf_version": __version__,
        "architecture": to_plain(arch.config) if arch.config else arch.describe(),
        "hyperparameters": {
            **hyperparameters(arch),
            "diag_reg": diag_reg,
            "diag_reg_relative": relative,
        },
        "kernel": options.kernel,
        "time": options.time if math.isfinite(options.time) else "inf",
        "task": task,
        "classes": [_plain(c) for c in classes] if classes is not None else None,
        "inputs": {
            "train": str(train.path), "test": str(test.path), "target": target_col,
            "features": list(names), "train_rows": int(x_train.shape[0]),
            "test_rows": int(x_test.shape[0]),
        },
        "standardized": _standardize_note(options.standardize, task, len(names)),
        "precision": "float32 kernels, float64 solve" if options.float32 else "float64",
        "log_marginal_likelihood": {
            "nngp": outcome.log_marginal_likelihood["nngp"],
            "ntk_gp": outcome.log_marginal_likelihood["ntk-gp"],
            "note": "of the model's targets (standardized / one-hot), noise = diag_reg",
        },
        "fit": fit_report,
        "train_fit": train_fit,
        "test_fit": test_fit,
    }  # fmt: skip
    files = _write(out_path, table, report, timings, t0)
    what = _describe(task, options)
    echo(
        f"train fit: {_fit_text(train_fit)}"
        + (f"; test: {_fit_text(test_fit)}" if test_fit else "")
    )
    echo(f"{out_path}: {len(table[1])} predictions ({what}); {files[1].name} beside it "
         f"({_time.perf_counter() - t0:.2f} s)")  # fmt: skip
    return files


# ----------------------------------------------------------------------------- checks


def _task(table, column, requested):
    """(task, labels (N,), classes or None, reason) from the target column."""
    from .tabular import target

    values = target(table, column)
    numeric = values.dtype.kind == "f"
    if requested == "regression" and not numeric:
        table.numeric(column)  # names the first cell that is not a number
    if requested is None:
        integers = numeric and bool(np.all(values == np.round(values)))
        distinct = np.unique(values).size
        if not numeric:
            requested, why = "classification", f"target {column!r} is not numeric"
        elif integers and distinct <= MAX_CLASSES_INFERRED:
            requested = "classification"
            why = f"target {column!r} has {distinct} distinct integer values"
        else:
            requested, why = "regression", f"target {column!r} is numeric"
    else:
        why = "as requested"
    if requested == "regression":
        return "regression", values, None, why
    classes = np.unique(values)
    if classes.size < 2:
        raise ConfigError(
            f"{table.path}: target column {column!r} has only one class "
            f"({_plain(classes[0])!r}); classification needs at least 2"
        )
    return "classification", values, classes, why


def _check_memory(path, n_train, n_test, options):
    from .infer import bytes_needed

    def need(float32):
        total = bytes_needed(n_train, n_test, options.kernel, options.time, float32)
        if options.fit:  # kernel, its 2 derivatives, the inverse and products, in float64
            total = max(total, 10 * n_train * n_train * 8)
        return total

    have = options.memory_limit or available_memory()
    if need(options.float32) <= _MEMORY_SHARE * have:
        return
    fits = int(n_train * math.sqrt(_MEMORY_SHARE * have / need(options.float32)))
    hint = ""
    if not options.float32 and need(True) <= _MEMORY_SHARE * have:
        hint = ", or --float32 (kernels in half the memory)"
    raise ResourceError(
        f"{path}: the kernels of {n_train} training and {n_test} test rows need about "
        f"{_gib(need(options.float32))} of memory but {_gib(have)} is available; use a random "
        f"subset of at most about {fits} training rows (memory grows as rows squared){hint}"
    )


def _gib(n):
    return f"{n / 2**30:.1f} GiB"


def _check_duplicates(table, x, kernel):
    _, first, inverse, counts = np.unique(
        x, axis=0, return_index=True, return_inverse=True, return_counts=True
    )
    if counts.max() < 2:
        return
    group = int(np.flatnonzero(counts > 1)[0])
    rows = np.flatnonzero(inverse.ravel() == group)[:2]
    name = {"nngp": "NNGP", "ntk": "NTK", "ntk-gp": "NTK"}[kernel]
    a, b = (int(r) for r in rows)
    if table.lines is not None:
        where = f"{table.path} lines {table.lines[a]} and {table.lines[b]}"
    else:
        where = f"{table.path} rows {a} and {b}"
    raise ConfigError(
        f"{where} have the same features, so the {name} train-train matrix is singular at "
        "--diag-reg 0; use --diag-reg 1e-6 or larger (or remove the duplicate rows)"
    )


# ----------------------------------------------------------------------------- targets, outputs


def _targets(task, labels, classes, standardize):
    """The model's targets, and the shift and scale that map its predictions back."""
    from .infer import one_hot

    if task == "classification":
        return one_hot(labels, classes), 0.0, 1.0
    if not standardize:
        return labels, 0.0, 1.0
    shift, scale = float(labels.mean()), float(labels.std())
    scale = scale if scale > 0 else 1.0
    return (labels - shift) / scale, shift, scale


def _standardize_note(standardize, task, d):
    if not standardize:
        return "features and targets as given (--no-standardize)"
    note = f"{d} feature column(s) standardized with the training mean and sd"
    if task == "regression":
        note += "; target too, predictions mapped back to its units"
    return note + " (--no-standardize to turn off)"


def _output_table(task, outcome, classes, shift, scale):
    """(header, rows) of PRED.csv."""
    sd = outcome.sd * scale  # (M,)
    if task == "regression":
        mean = outcome.mean * scale + shift  # (M,)
        columns = (mean, sd, mean - 1.96 * sd, mean + 1.96 * sd)
        return ["mean", "sd", "lower_95", "upper_95"], list(zip(*columns))
    scores = outcome.mean  # (M, C)
    predicted = classes[np.argmax(scores, axis=1)]
    header = ["predicted"] + [f"score_{_plain(c)}" for c in classes] + ["sd"]
    rows = [(_plain(p), *s, d) for p, s, d in zip(predicted, scores, sd)]
    return header, rows


def _score(task, mean, labels, classes, shift, scale):
    """RMSE and R^2 (regression) or accuracy (classification) of a mean against labels."""
    if task == "classification":
        predicted = classes[np.argmax(mean, axis=1)]
        return {"accuracy": float(np.mean(predicted == labels))}
    labels = np.asarray(labels, dtype=float)
    resid = mean * scale + shift - labels
    total = float(np.sum((labels - labels.mean()) ** 2))
    r2 = 1.0 - float(resid @ resid) / total if total > 0 else None
    return {"rmse": float(np.sqrt(np.mean(resid**2))), "r2": r2}


def _fit_text(fit):
    return ", ".join(f"{k} {v:.4g}" for k, v in fit.items() if v is not None)


def _fit_report(result):
    values = {k: v for k, v in result.values.items() if v is not None}
    return {
        "values": values,
        "log_marginal_likelihood": result.log_marginal_likelihood,
        "initial_log_marginal_likelihood": result.initial_log_marginal_likelihood,
        "evaluations": result.evaluations,
        "converged": result.converged,
        "message": result.message,
    }


def _describe(task, options):
    kind = {"nngp": "NNGP posterior", "ntk-gp": "NTK-GP", "ntk": "NTK ensemble"}[options.kernel]
    if options.kernel == "ntk" and math.isfinite(options.time):
        kind += f" at t = {options.time:g}"
    if task == "regression":
        return f"{kind}: mean, sd, 95% band"
    return f"{kind}: predicted class and per-class scores"


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def _write(out_path, table, report, timings, t0):
    from .io import StagedFiles, yaml_bytes

    header, rows = table
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([[_cell(v) for v in row] for row in rows])
    staged = StagedFiles(out_path.parent if str(out_path.parent) else ".")
    try:
        csv_file = staged.add(out_path.name, buffer.getvalue().encode("utf-8"))
        timings["total_before_write"] = _time.perf_counter() - t0
        report["timings_s"] = {k: round(v, 4) for k, v in timings.items()}
        yaml_file = staged.add(out_path.with_suffix(".yaml").name, yaml_bytes(report))
        staged.commit()
    finally:
        staged.discard()
    return [csv_file, yaml_file]


def _cell(value):
    return repr(float(value)) if isinstance(value, (float, np.floating)) else value
