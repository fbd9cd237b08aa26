"""How depth shapes an infinitely wide network: the order-to-chaos phase diagram and its uses.

The network is ``[dense, phi] * L + dense`` with every dense layer at ``sigma_w^2 = W_std^2``,
``sigma_b^2 = b_std^2`` (NTK parameterization). The theory, the fixed point q*, the slope chi_1 of
the correlation map and the depth scales xi_q, xi_c, is in :mod:`.propagation` (Poole et al.
2016, arXiv:1606.05340; Schoenholz et al. 2017, arXiv:1611.01232). This experiment computes:

(a) chi_1 over a (sigma_w^2, sigma_b^2) grid, and the critical line chi_1 = 1 solved by Brent's
    method for every sigma_b^2 (not read off the grid);
(b) xi_q and xi_c against sigma_w^2 at ``sigma_b2_fixed``, and xi_c *measured*: the rate at which
    two inputs' correlation converges through ``max_depth`` layers of the exact layer-by-layer
    NNGP, fitted over ``fit_depths``;
(c) test accuracy of the NNGP posterior mean and of the NTK predictor (the mean of infinitely wide
    networks trained to convergence, Lee et al. 2019) on scikit-learn's digits over (depth,
    sigma_w^2): Lee et al. 2018 (arXiv:1711.00165) found the best NNGP along the critical line,
    and Schoenholz et al. that signals survive about 6 xi_c layers (Xiao et al. 2020,
    arXiv:1912.13053, for the NTK). Each sigma_w^2 column's kernels are computed once, layer by
    layer, with a prediction at every depth;
(d) the output correlation of two inputs in sampled finite networks of width ``finite_width``
    against the exact one, at ``finite_depths`` and ``finite_sigma_w2``.

Data for (c): the 8x8 digits (1797 images, 10 classes), split at random into ``n_train`` training
and ``n_test`` test images; pixels centred by the training mean, then every image scaled to
``|x|^2 / d = 1`` (so all points share the variance recursion the phase diagram describes);
targets one-hot minus 1/10 (Lee et al. 2018); prediction = argmax of the 10 regression outputs.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from ..blas import one_blas_thread
from ..config import ExperimentConfig, setting
from ..errors import ConfigError, WideinfError
from ..progress import progress
from . import Result
from . import propagation as P

__all__ = ["Config", "run", "report", "load_digits", "accuracy_over_depth", "finite_correlations"]

N_CLASSES = 10
# Points of the fine sigma_w^2 grid of the depth-scale curves.
_FINE = 400
_DIGITS = 1797
# Working memory of one block of sampled finite networks (their weights).
_NETWORK_BYTES = 256 * 2**20


@dataclass(frozen=True)
class Config(ExperimentConfig):
    """``wideinf depth``: see the module docstring and experiments/depth_phase.yaml."""

    activation: str = setting("tanh", help="activation of every hidden layer")
    sigma_w2_min: float = setting(0.25, gt=0.0, le=100.0, help="smallest sigma_w^2 = W_std^2")
    sigma_w2_max: float = setting(4.0, gt=0.0, le=100.0, help="largest sigma_w^2")
    n_sigma_w2: int = setting(25, ge=3, le=401, help="sigma_w^2 grid points (every panel)")
    sigma_b2_min: float = setting(0.0, ge=0.0, le=100.0, help="smallest sigma_b^2 = b_std^2")
    sigma_b2_max: float = setting(0.3, ge=0.0, le=100.0, help="largest sigma_b^2")
    n_sigma_b2: int = setting(31, ge=2, le=401, help="sigma_b^2 grid points (phase diagram)")
    sigma_b2_fixed: float = setting(0.05, ge=0.0, le=100.0, help="sigma_b^2 of panels b-d")
    max_depth: int = setting(120, ge=2, le=2000, help="layers of the correlation recursion")
    fit_depths: tuple[int, ...] = setting(
        (20, 100), ge=0, min_len=2, max_len=2, help="depth window of the measured xi_c"
    )
    initial_correlation: float = setting(0.5, gt=-1.0, lt=1.0, help="c of the two inputs")
    depths: tuple[int, ...] = setting(
        (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96),
        ge=1, le=2000, min_len=1, max_len=64, help="depths of the accuracy panel",
    )  # fmt: skip
    n_train: int = setting(250, ge=10, le=1500, help="digits training images")
    n_test: int = setting(250, ge=10, le=1500, help="digits test images")
    diag_reg: float = setting(1e-4, ge=0.0, le=1.0, help="relative diagonal regularizer")
    finite_width: int = setting(512, ge=1, le=8192, help="hidden width of the sampled networks")
    n_networks: int = setting(32, ge=2, le=10000, help="sampled networks per (sigma_w^2, depth)")
    finite_depths: tuple[int, ...] = setting(
        (1, 4, 12), ge=1, le=200, min_len=1, max_len=8, help="depths of the finite networks"
    )
    finite_sigma_w2: tuple[float, ...] = setting(
        (0.75, 1.75, 3.0), gt=0.0, le=100.0, min_len=1, max_len=6, help="their sigma_w^2"
    )

    def validate(self, where: str = "config"):
        from ..activations import ACTIVATION_NAMES

        if self.activation not in ACTIVATION_NAMES:
            raise ConfigError(
                f"{where}.activation: unknown {self.activation!r}; valid: "
                f"{', '.join(ACTIVATION_NAMES)}"
            )
        if self.activation == "identity":
            raise ConfigError(f"{where}.activation: identity has no phase transition; pick another")
        for lo, hi in (("sigma_w2_min", "sigma_w2_max"), ("sigma_b2_min", "sigma_b2_max")):
            if getattr(self, lo) >= getattr(self, hi):
                raise ConfigError(f"{where}.{lo}: must be below {hi}")
        start, stop = self.fit_depths
        if not start < stop <= self.max_depth - 1:
            raise ConfigError(
                f"{where}.fit_depths: need start < stop <= max_depth - 1 = {self.max_depth - 1}, "
                f"got {list(self.fit_depths)}"
            )
        if stop - start < 10:
            raise ConfigError(f"{where}.fit_depths: the window needs at least 10 layers")
        for key in ("depths", "finite_depths"):
            values = getattr(self, key)
            if any(b <= a for a, b in zip(values, values[1:])):
                raise ConfigError(f"{where}.{key}: must be strictly increasing, got {values}")
        if self.n_train + self.n_test > _DIGITS:
            raise ConfigError(
                f"{where}.n_train: n_train + n_test must be at most {_DIGITS} (the digits)"
            )


# ----------------------------------------------------------------------------- data


def load_digits(n_train: int, n_test: int, rng: np.random.Generator):
    """The digits split, centred and normalised as in the module docstring.

    Returns x_train (n_train, 64), y_train (n_train,), x_test (n_test, 64), y_test (n_test,);
    labels are integers 0..9. One permutation drawn from ``rng`` chooses the split.
    """
    try:
        from sklearn.datasets import load_digits as sk_digits
    except ImportError:
        raise WideinfError(
            "wideinf depth needs scikit-learn for its digits data: pip install scikit-learn"
        ) from None
    data = sk_digits()
    order = rng.permutation(data.data.shape[0])
    train, test = order[:n_train], order[n_train : n_train + n_test]
    x = data.data.astype(float)
    x -= x[train].mean(axis=0)  # (64,) training mean
    norms = np.sqrt(np.einsum("ij,ij->i", x, x) / x.shape[1])  # (1797,) |x| / sqrt(d)
    x /= np.where(norms > 0, norms, 1.0)[:, None]
    return x[train], data.target[train], x[test], data.target[test]


# ----------------------------------------------------------------------------- panels


def phase_diagram(act, w2, b2):
    """chi_1 (B, W), q* (B, W), the residual and flags of the fixed point; w2 (W,), b2 (B,)."""
    fp = P.fixed_point(act, w2[None, :], b2[:, None])
    return P.chi_1(act, w2[None, :], fp.q_finite), fp


def depth_scale_curves(act, w2, b2: float) -> dict:
    """xi_q and xi_c on a grid of sigma_w^2 at one sigma_b^2 (the curves of panel b). Each (F,)."""
    fp = P.fixed_point(act, w2, b2)
    xi_c, _, _ = P.correlation_depth_scale(act, w2, b2, fp, P.chi_1(act, w2, fp.q_finite))
    xi_q = np.where(fp.diverged, np.nan, P.depth_scale(P.variance_slope(act, w2, fp.q_finite)))
    return {"sigma_w2_fine": w2, "xi_c_fine": xi_c, "xi_q_fine": xi_q}


def critical_line(act, w2, b2, chi1):
    """sigma_w^2 where chi_1 = 1 for each sigma_b^2, bracketed by the grid's first crossing."""
    out = np.full(b2.shape, np.nan)
    for i, b in enumerate(b2):
        above = np.flatnonzero(chi1[i] >= 1.0)
        if above.size and above[0] > 0:
            j = above[0]
            out[i] = P.critical_sigma_w2(act, float(b), float(w2[j - 1]), float(w2[j]))
    return out


def accuracy_over_depth(act, w2, b2: float, depths, data, diag_reg: float):
    """NNGP and NTK test accuracy (D,) of one sigma_w^2 column, one recursion for all depths.

    The NTK predictor is the mean of infinitely wide networks trained by gradient flow to
    convergence, ``Theta*X ThetaXX^-1 y`` (Lee et al. 2019), computed as the GP posterior mean
    with the NTK as kernel (the two are the same formula; the tests check it).
    """
    x_train, y_train, x_test, y_test = data
    x = np.vstack([x_train, x_test])  # (R, d), training points first
    d = x.shape[1]
    k0 = w2 * (x @ x_train.T) / d + b2  # (R, n) first dense layer
    v0 = w2 * np.einsum("ij,ij->i", x, x) / d + b2  # (R,)
    targets = np.eye(N_CLASSES)[y_train] - 1.0 / N_CLASSES  # (n, 10)
    acc = {"nngp": [], "ntk": []}
    for _, k, _, ntk, _ in P.deep_kernels(act, w2, b2, k0, v0, depths):
        for name, mat in (("nngp", k), ("ntk", ntk)):
            means = _class_means(mat, targets, diag_reg, name.upper())  # (n_test, 10)
            acc[name].append(np.mean(np.argmax(means, axis=1) == y_test))
    return np.array(acc["nngp"]), np.array(acc["ntk"])


def _class_means(mat, targets, diag_reg: float, name: str) -> np.ndarray:
    """Posterior means (M, C) of every class from the (N + M, N) kernel block: one Cholesky
    factor for all C classes, and no variances (the accuracy needs only the means)."""
    from ..predict import gp_posterior

    n = targets.shape[0]
    return gp_posterior(mat[:n], mat[n:], None, targets, diag_reg=diag_reg, name=name).mean


def _pair(c0: float) -> np.ndarray:
    """Two inputs in R^2 with ``|x|^2 / d = 1`` and ``x1 . x2 / d = c0``. Shape (2, 2)."""
    return math.sqrt(2.0) * np.array([[1.0, 0.0], [c0, math.sqrt(1.0 - c0 * c0)]])


def _correlation(k) -> np.ndarray:
    return k[..., 0, 1] / np.sqrt(k[..., 0, 0] * k[..., 1, 1])


def finite_correlations(act, w2: float, b2: float, depth: int, width: int, n_networks, c0, rng):
    """Output correlations of two inputs in ``n_networks`` sampled networks, and the exact one.

    Returns (per-network correlations (S,), exact correlation from
    :meth:`Architecture.kernel`). Networks are sampled in blocks to bound memory.
    """
    from ..architecture import Architecture, Dense, Nonlinearity
    from ..networks import empirical_nngp, init_params

    w_std, b_std = math.sqrt(w2), math.sqrt(b2)
    layers = [Dense(w_std, b_std), Nonlinearity(act)] * depth + [Dense(w_std, b_std)]
    arch = Architecture(layers)
    x = _pair(c0)
    exact = float(_correlation(arch.kernel(x).nngp))
    per_network = 8 * (depth * width * width + 2 * width)
    block = max(1, min(n_networks, _NETWORK_BYTES // per_network))
    corr = []
    for start in range(0, n_networks, block):
        params = init_params(arch, 2, width, min(block, n_networks - start), rng)
        corr.append(_correlation(empirical_nngp(arch, params, x)))  # (s,)
    return np.concatenate(corr), exact


# ----------------------------------------------------------------------------- run


def run(config: Config, rng: np.random.Generator) -> Result:
    """All four panels; arrays named as in the contract of experiments/depth_phase.yaml."""
    with one_blas_thread():
        return _run(config, rng)


def _run(config: Config, rng: np.random.Generator) -> Result:
    from ..activations import make_activation

    act = make_activation(config.activation)
    w2 = np.linspace(config.sigma_w2_min, config.sigma_w2_max, config.n_sigma_w2)  # (W,)
    b2 = np.linspace(config.sigma_b2_min, config.sigma_b2_max, config.n_sigma_b2)  # (B,)
    bf = config.sigma_b2_fixed
    seconds = {}

    t0 = time.perf_counter()
    chi1, fp = phase_diagram(act, w2, b2)  # (B, W)
    critical = critical_line(act, w2, b2, chi1)  # (B,)
    seconds["phase_diagram"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    fpf = P.fixed_point(act, w2, bf)  # (W,)
    chi1_f = P.chi_1(act, w2, fpf.q_finite)
    critical_f = critical_line(act, w2, np.array([bf]), chi1_f[None, :])[0]
    xi_c, c_star, chi_c = P.correlation_depth_scale(act, w2, bf, fpf, chi1_f)
    chi_q = P.variance_slope(act, w2, fpf.q_finite)
    xi_q = np.where(fpf.diverged, np.nan, P.depth_scale(chi_q))
    q_run = np.where(fpf.diverged, np.nan, fpf.q)
    corr = np.full((w2.size, config.max_depth + 1), np.nan)
    finite_q = ~fpf.diverged & (fpf.q > 0)  # q* = 0 (no bias, ordered): no correlation to follow
    if finite_q.any():
        corr[finite_q] = P.correlations_through_depth(
            act, w2[finite_q], np.full(finite_q.sum(), bf), q_run[finite_q],
            config.initial_correlation, config.max_depth,
        )  # fmt: skip
    xi_meas = P.measured_depth_scale(corr, *config.fit_depths)
    fine = depth_scale_curves(act, np.linspace(w2[0], w2[-1], _FINE), bf)
    seconds["depth_scales"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    data = load_digits(config.n_train, config.n_test, rng)
    acc_nngp = np.empty((len(config.depths), w2.size))
    acc_ntk = np.empty_like(acc_nngp)
    for j in progress(range(w2.size), total=w2.size, desc="depth: accuracy"):
        acc_nngp[:, j], acc_ntk[:, j] = accuracy_over_depth(
            act, w2[j], bf, config.depths, data, config.diag_reg
        )
    seconds["accuracy"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    fw, fd = np.array(config.finite_sigma_w2), np.array(config.finite_depths)
    f_mean = np.empty((fw.size, fd.size))
    f_sd, f_exact = np.empty_like(f_mean), np.empty_like(f_mean)
    for i, w in enumerate(fw):
        for j, depth in enumerate(fd):
            c, f_exact[i, j] = finite_correlations(
                act, w, bf, int(depth), config.finite_width, config.n_networks,
                config.initial_correlation, rng,
            )  # fmt: skip
            f_mean[i, j], f_sd[i, j] = c.mean(), c.std(ddof=1)
    x = _pair(config.initial_correlation)
    k1 = fw[:, None, None] * (x @ x.T / 2) + bf  # (F, 2, 2) first layer
    curve = np.empty((fw.size, fd.max() + 1))
    for depth, k, _, _, _ in P.deep_kernels(
        act, fw, np.full(fw.size, bf), k1, np.diagonal(k1, axis1=1, axis2=2),
        range(int(fd.max()) + 1), with_ntk=False,
    ):  # fmt: skip
        curve[:, depth] = _correlation(k)
    seconds["finite"] = time.perf_counter() - t0

    arrays = {
        "sigma_w2": w2,
        "sigma_b2": b2,
        "chi1": chi1,
        "q_star": fp.q,
        "q_star_residual": fp.residual,
        "variance_diverges": fp.diverged,
        "critical_sigma_w2": critical,
        "sigma_b2_fixed": np.array(bf),
        "critical_sigma_w2_fixed": np.array(critical_f),
        "chi1_fixed": chi1_f,
        "q_star_fixed": fpf.q,
        "chi_q": chi_q,
        "xi_q": xi_q,
        "c_star": c_star,
        "chi_c": chi_c,
        "xi_c": xi_c,
        "xi_c_measured": xi_meas,
        **fine,
        "correlation_layers": np.arange(config.max_depth + 1),
        "correlation": corr,
        "fit_depths": np.array(config.fit_depths),
        "depths": np.array(config.depths),
        "accuracy_nngp": acc_nngp,
        "accuracy_ntk": acc_ntk,
        "finite_sigma_w2": fw,
        "finite_depths": fd,
        "finite_chi1": P.chi_1(act, fw, P.fixed_point(act, fw, bf).q_finite),
        "finite_correlation": f_mean,
        "finite_correlation_sd": f_sd,
        "finite_exact": f_exact,
        "finite_curve_layers": np.arange(fd.max() + 1),
        "finite_curve": curve,
    }
    summary, warnings = _summarise(config, arrays, fp, fpf, seconds)
    return Result(arrays=arrays, summary=summary, warnings=warnings)


def xi_checked(arrays, fit_depths) -> np.ndarray:
    """Where measuring xi_c is meaningful: 2 <= xi_c and the window spans >= 6 xi_c. (W,) bool."""
    start, stop = fit_depths
    xi = arrays["xi_c"]
    return np.isfinite(xi) & (xi >= 2.0) & (xi <= (stop - start) / 6.0)


def _summarise(config, a, fp, fpf, seconds):
    checked = xi_checked(a, config.fit_depths)
    rel = np.abs(a["xi_c_measured"] / a["xi_c"] - 1.0)
    ordered = a["chi1_fixed"] < 1
    se = a["finite_correlation_sd"] / math.sqrt(config.n_networks)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, (a["finite_correlation"] - a["finite_exact"]) / se, 0.0)
    best = np.unravel_index(np.argmax(a["accuracy_nngp"]), a["accuracy_nngp"].shape)
    best_ntk = np.unravel_index(np.argmax(a["accuracy_ntk"]), a["accuracy_ntk"].shape)
    curve_at = a["finite_curve"][:, a["finite_depths"]]
    summary = {
        "activation": config.activation,
        "fixed_point_max_residual": float(np.nanmax(np.r_[fp.residual.ravel(), fpf.residual])),
        "fixed_point_all_converged": bool(fp.converged.all() and fpf.converged.all()),
        "critical_sigma_w2_at_fixed_sigma_b2": float(a["critical_sigma_w2_fixed"]),
        "xi_c_checked_ordered": int((checked & ordered).sum()),
        "xi_c_checked_chaotic": int((checked & ~ordered).sum()),
        "xi_c_max_rel_error": float(np.max(rel[checked], initial=0.0)),
        "finite_max_abs_z": float(np.max(np.abs(z))),
        "finite_exact_vs_recursion_max_diff": float(np.max(np.abs(curve_at - a["finite_exact"]))),
        "best_nngp_accuracy": float(a["accuracy_nngp"][best]),
        "best_nngp_at": f"depth {a['depths'][best[0]]}, sigma_w2 {a['sigma_w2'][best[1]]:.4g}",
        "best_ntk_accuracy": float(a["accuracy_ntk"][best_ntk]),
        "best_ntk_at": f"depth {a['depths'][best_ntk[0]]}, sigma_w2 {a['sigma_w2'][best_ntk[1]]:.4g}",
        **{f"seconds_{k}": round(v, 2) for k, v in seconds.items()},
    }
    warnings = []
    if not summary["fixed_point_all_converged"]:
        warnings.append("the variance map's fixed point did not converge at some grid points")
    if np.isnan(a["critical_sigma_w2"]).any():
        warnings.append(
            "chi_1 does not cross 1 inside the sigma_w2 range for some sigma_b2; widen it"
        )
    if summary["xi_c_max_rel_error"] > 0.02:
        warnings.append(
            f"measured xi_c differs from -1/log chi by {summary['xi_c_max_rel_error']:.1%} "
            "where it is checked"
        )
    if summary["finite_max_abs_z"] > 4:
        warnings.append(
            f"finite networks differ from the exact correlation by "
            f"{summary['finite_max_abs_z']:.1f} standard errors"
        )
    return summary, warnings


def report(result: Result) -> list[str]:
    """Critical point, depth-scale check, finite networks and the best accuracies."""
    s = result.summary
    return [
        f"activation {s['activation']}: critical sigma_w^2 = "
        f"{s['critical_sigma_w2_at_fixed_sigma_b2']:.10g} at the fixed sigma_b^2; "
        f"fixed point residual <= {s['fixed_point_max_residual']:.1e}",
        f"xi_c measured from the layer-by-layer NNGP vs -1/log chi: max relative error "
        f"{s['xi_c_max_rel_error']:.2e} at {s['xi_c_checked_ordered']} ordered and "
        f"{s['xi_c_checked_chaotic']} chaotic points",
        f"finite networks vs exact correlation: max |z| = {s['finite_max_abs_z']:.2f}",
        f"best test accuracy: NNGP {s['best_nngp_accuracy']:.3f} ({s['best_nngp_at']}), "
        f"NTK {s['best_ntk_accuracy']:.3f} ({s['best_ntk_at']})",
    ]
