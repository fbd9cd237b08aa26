"""Finite networks trained by gradient descent, against the NTK ensemble at their time.

The check behind ``wideinf compare-ntk``'s trained networks: S networks trained for ``steps``
steps of ``eta`` should follow the NTK ensemble at ``t = steps * eta`` (Lee et al. 2019,
arXiv:1902.06720); their mean and sd are compared through z-scores (docs/theory.md, "Monte
Carlo agreement of trained ensembles").
"""

from __future__ import annotations

import math

import numpy as np

from ..architecture import Architecture
from ..errors import NumericalError
from ..networks import init_params
from ..predict import ntk_ensemble, ntk_train_loss
from ..stats import z_score
from ..training import train
from .ensemble import stored_step

__all__ = ["train_ensemble", "compare_trained_ensemble", "ensemble_z_scores", "rms_z_quantile"]

_Z_POINTS = 1000  # grid points at most in the ensemble's z-scores
_Z_BAND_FRACTION = 0.1  # ... where the NTK sd is at least this fraction of its largest


def diag_reg_args(config) -> dict:
    """The ``diag_reg`` keyword arguments of :mod:`wideinf.predict` that ``config`` sets."""
    return {"diag_reg": config.diag_reg, "diag_reg_relative": config.diag_reg_relative}


def train_ensemble(
    arch: Architecture, x_train: np.ndarray, y_train: np.ndarray, x_eval: np.ndarray, *,
    size: int, width: int, learning_rate: float, steps: int, rng: np.random.Generator,
):  # fmt: skip
    """Train S = ``size`` independently initialised networks for ``steps`` steps.

    ``learning_rate`` is in the kernel's units, time ``t = steps * learning_rate``
    (:func:`wideinf.experiments.ensemble.stored_step`). Returns the outputs at ``x_eval``
    (S, M), the training loss (S, R) at the R recorded steps, and those steps (R,).
    """
    eta = stored_step(arch, learning_rate, width)
    params = init_params(arch, x_train.shape[1], width, size, rng)
    res = train(
        arch, params, x_train, y_train, eta, steps, x_eval=x_eval, record_every=max(1, steps // 200)
    )
    f_eval = np.asarray(res.f_eval, dtype=float)  # (S, M)
    if not np.all(np.isfinite(f_eval)) or not np.all(np.isfinite(res.loss)):
        raise NumericalError(
            f"gradient descent diverged at learning rate {learning_rate:g}; lower "
            "ensemble.learning_rate (or leave it unset for N / largest NTK eigenvalue)"
        )
    return f_eval, np.asarray(res.loss), np.asarray(res.steps_recorded)


def compare_trained_ensemble(
    arch, config, data, x_grid, x_eval, blocks, eta, mu_t, sd_t, net_rng, stats_rng
):
    """Train the finite networks and compare them with the NTK ensemble at their time.

    ``mu_t``, ``sd_t`` (G + m,): the NTK ensemble at ``t = steps * eta`` on the grid and the
    test points. Returns (arrays, summary, warnings, (mean, sd) of the networks (G + m,)).
    """
    ens, reg = config.ensemble, diag_reg_args(config)
    g = x_grid.shape[0]
    t_ens = ens.steps * eta
    f_eval, loss, recorded = train_ensemble(
        arch, data.x_train, data.y_train, x_eval, size=ens.size, width=ens.width,
        learning_rate=eta, steps=ens.steps, rng=net_rng,
    )  # fmt: skip
    e_mean, e_std = f_eval.mean(axis=0), f_eval.std(axis=0, ddof=1)  # (G + m,)
    arrays = {
        "ensemble_mean": e_mean[:g],
        "ensemble_std": e_std[:g],
        "ensemble_time": np.asarray(t_ens),
        "ntk_mean_ensemble_time": mu_t[:g],
        "ntk_std_ensemble_time": sd_t[:g],
        "ensemble_loss": loss.mean(axis=0),  # (R,)
        "ensemble_loss_steps": recorded,  # (R,)
        "ntk_loss": ntk_train_loss(
            blocks.ntk_train, blocks.nngp_train, data.y_train, recorded * eta, **reg
        ),  # (R,)
    }
    # z-scores where the NTK band is wide (near the training points, where its sd is a few
    # thousandths, the networks' O(n^-1/2) departures from their linearization dominate the
    # Monte Carlo error), on at most _Z_POINTS grid points; 99% limits from the correlation
    sub = np.unique(np.linspace(0, g - 1, min(g, _Z_POINTS)).round().astype(int))
    sub = sub[sd_t[sub] >= _Z_BAND_FRACTION * sd_t[:g].max()]  # (G',)
    z_mean, z_std = ensemble_z_scores(e_mean[sub], e_std[sub], mu_t[sub], sd_t[sub], ens.size)
    q_mean, q_std = _rms_z_limits(arch, data, x_grid[sub], blocks, sub, t_ens, config, stats_rng)
    summary = {
        "ensemble_size": ens.size,
        "ensemble_width": ens.width,
        "ensemble_learning_rate": eta,
        "ensemble_steps": ens.steps,
        "ensemble_time": t_ens,
        "ensemble_final_loss": float(loss[:, -1].mean()),
        "ensemble_mean_z_rms": float(np.sqrt(np.mean(z_mean**2))),
        "ensemble_std_z_rms": float(np.sqrt(np.mean(z_std**2))),
        "ensemble_z_points": int(sub.size),
        "ensemble_mean_max_abs_diff": float(np.max(np.abs(e_mean[:g] - mu_t[:g]))),
        "ensemble_std_max_abs_diff": float(np.max(np.abs(e_std[:g] - sd_t[:g]))),
        "ensemble_mean_z_rms_q99": q_mean,
        "ensemble_std_z_rms_q99": q_std,
    }
    warnings = []
    if summary["ensemble_mean_z_rms"] > q_mean or summary["ensemble_std_z_rms"] > q_std:
        warnings.append(
            "the trained networks differ from the NTK ensemble by more than their Monte Carlo "
            f"error: rms z of the mean {summary['ensemble_mean_z_rms']:.2f} (99% limit "
            f"{q_mean:.2f}), of the sd {summary['ensemble_std_z_rms']:.2f} (99% limit "
            f"{q_std:.2f}); try a larger width or a smaller learning rate"
        )
    return arrays, summary, warnings, (e_mean, e_std)


def ensemble_z_scores(e_mean, e_std, mu, sd, size: int):
    """z-scores of an S-network ensemble's mean and sd against the NTK ensemble's (G,) each.

    ``z_mean = (e_mean - mu) / (sd / sqrt(S))``; ``z_sd = (e_std - sd) / (sd / sqrt(2 (S-1)))``
    (the large-S standard error of a Gaussian sample sd). Points where ``sd`` is below 1e-12
    of its maximum are left out. All arrays shape (G,).
    """
    keep = sd > 1e-12 * max(float(sd.max()), np.finfo(float).tiny)
    z_mean = z_score(e_mean[keep], mu[keep], sd[keep] / math.sqrt(size))
    z_std = z_score(e_std[keep], sd[keep], sd[keep] / math.sqrt(2 * (size - 1)))
    return z_mean, z_std


def rms_z_quantile(corr: np.ndarray, level: float, rng: np.random.Generator, draws=20_000):
    """Quantile of ``sqrt(mean_i z_i^2)`` for ``z ~ N(0, corr)``, corr (G, G) a correlation matrix.

    ``mean z^2 = (1/G) sum_k lambda_k chi2_1`` over the eigenvalues of ``corr``, simulated with
    ``draws`` draws (neighbouring grid points are strongly correlated, so the rms z of one
    ensemble fluctuates far more than for G independent points).
    """
    lam = np.clip(np.linalg.eigvalsh(corr), 0.0, None)  # (G,)
    lam = lam[lam > 1e-12 * lam.sum()]  # (k,)
    q = (rng.standard_normal((draws, lam.size)) ** 2) @ lam / corr.shape[0]  # (draws,)
    return float(np.sqrt(np.quantile(q, level)))


def _rms_z_limits(arch, data, x_sub, blocks, sub, t, config, rng) -> tuple[float, float]:
    """99% limits of the rms z of an ensemble's mean and sd at the grid points ``x_sub`` (rows
    ``sub`` of the evaluation blocks), from the NTK ensemble's correlation R at time t (the
    sample sds of a Gaussian field correlate as R**2)."""
    b = blocks
    cov = ntk_ensemble(
        b.ntk_train, b.ntk_cross[sub], b.nngp_train, b.nngp_cross[sub], arch.kernel(x_sub).nngp,
        data.y_train, [t], **diag_reg_args(config),
    ).cov[0]  # (G, G)  # fmt: skip
    sd = np.sqrt(np.clip(np.diag(cov), 0.0, None))  # (G,)
    keep = sd > 1e-12 * max(float(sd.max()), np.finfo(float).tiny)
    corr = cov[np.ix_(keep, keep)] / np.outer(sd[keep], sd[keep])  # (G', G')
    return rms_z_quantile(corr, 0.99, rng), rms_z_quantile(corr**2, 0.99, rng)
