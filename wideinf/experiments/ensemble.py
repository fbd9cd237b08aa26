"""Ensembles of finite networks as the experiments build, check and train them.

One function per mechanism, shared by every experiment. The parameter count
(:mod:`wideinf.networks`) and the step size from the NTK (:mod:`wideinf.training`) are
re-exported here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import networks as nw
from ..architecture import Architecture
from ..config import ArchitectureConfig, setting
from ..errors import ConfigError
from ..networks import parameter_count
from ..progress import progress
from ..training import step_size
from .lazy import descend, linearized_path

# Parameters of one block of networks handled together (bytes).
BLOCK_BYTES = 64 * 2**20

__all__ = [
    "BLOG_ARCHITECTURE",
    "parameter_count",
    "check_width_list",
    "check_widths",
    "check_ensemble_size",
    "step_size",
    "stored_step",
    "init_per_stream",
    "network_blocks",
    "each_block",
    "TrainConfig",
    "lazy_run",
]

# Dense(1.5, 0.05) -> Gabor -> Dense(1.5, 0.05) -> ReLU -> Dense(1.5, 0.05), NTK parameterization:
# the network of both figures of the blog post, the default of the experiments that redraw it.
BLOG_ARCHITECTURE = ArchitectureConfig.from_raw(
    {"layers": ["dense", "gabor", "dense", "relu", "dense"], "W_std": 1.5, "b_std": 0.05}
)


def check_width_list(widths, where: str, finite: bool = True, increasing: bool = True) -> None:
    """A ConfigError at ``where[i]`` (e.g. ``file.yaml.widths[2]``) for the first width that is
    repeated, infinite (with ``finite``: the analytic limit is always shown), or below the one
    before it (with ``increasing``)."""
    for i, width in enumerate(widths):
        if finite and math.isinf(width):
            raise ConfigError(f"{where}[{i}]: must be finite (the analytic limit is always shown)")
        if width in widths[:i]:
            raise ConfigError(f"{where}[{i}]: {width:g} appears twice")
        if increasing and i and width < widths[i - 1]:
            raise ConfigError(f"{where}[{i}]: must increase, got {width:g} after {widths[i - 1]:g}")


def check_widths(
    arch_cfg, d_in: int, widths, where: str, limit_bytes=3 * 2**30, finite=True, increasing=True
) -> None:
    """Widths as :func:`check_width_list` says, each finite width's network's parameters at most
    ``limit_bytes`` (training holds two copies); ``where`` is the block holding ``widths``."""
    check_width_list(widths, f"{where}.widths", finite, increasing)
    arch = Architecture.from_config(arch_cfg)
    for i, width in enumerate(widths):
        size = 8 * parameter_count(arch, d_in, int(width)) if math.isfinite(width) else 0
        if size > limit_bytes:
            raise ConfigError(
                f"{where}.widths[{i}]: width {int(width)} needs {size / 2**30:.1f} GiB per network "
                f"(at most {limit_bytes / 2**30:.0f} GiB); use a smaller width"
            )


def check_ensemble_size(arch_cfg, d_in: int, width, count: int, limit: int, where: str) -> None:
    """A ConfigError at ``where`` if ``count`` networks of ``width`` hold over ``limit``
    parameters in all."""
    total = count * parameter_count(Architecture.from_config(arch_cfg), d_in, int(width))
    if total > limit:
        raise ConfigError(
            f"{where}: {count} networks of width {width:g} hold {total:,} parameters (at most "
            f"{limit:,}); use fewer networks or a smaller width"
        )


def stored_step(arch, eta: float, width: int) -> float:
    """The step on the stored parameters for a step ``eta`` in the kernel's units.

    ``eta`` in NTK parameterization; ``eta / n`` in standard parameterization, where the
    reported NTK is ``Theta / n`` (so the time is ``t = steps * eta`` in both).
    """
    return eta / width if arch.parameterization == "standard" else eta


def init_per_stream(arch, d_in: int, width: int, rngs) -> nw.Params:
    """S networks, network j drawn from ``rngs[j]`` alone (the same whatever else is drawn)."""
    nets = [nw.init_params(arch, d_in, width, 1, r) for r in rngs]
    return nw.Params(
        tuple(np.concatenate(ws) for ws in zip(*(p.weights for p in nets))),
        tuple(np.concatenate(bs) for bs in zip(*(p.biases for p in nets))),
    )


def network_blocks(arch, d_in: int, width: int, n_networks: int, block_bytes: int) -> list:
    """Slices of ``n_networks`` whose parameters take at most ``block_bytes`` (one at least)."""
    per = max(1, 8 * parameter_count(arch, d_in, width))
    size = max(1, min(n_networks, block_bytes // per))
    return [slice(a, min(n_networks, a + size)) for a in range(0, n_networks, size)]


def each_block(arch, d_in: int, widths, counts, rngs):
    """Blocks of freshly drawn networks, width by width, with a progress bar over networks.

    Yields ``(i, width, slice, params)``: networks ``slice`` of the ``counts[i]`` at
    ``widths[i]``, network j drawn from ``rngs[i].spawn(counts[i])[j]`` whatever the blocking.
    """
    bar = progress(total=int(sum(counts)), desc="networks")
    try:
        for i, (width, count) in enumerate(zip(widths, counts)):
            nets = rngs[i].spawn(count)
            for sl in network_blocks(arch, d_in, width, count, BLOCK_BYTES):
                yield i, width, sl, init_per_stream(arch, d_in, width, nets[sl])
                bar.update(sl.stop - sl.start)
    finally:
        bar.close()


@dataclass(frozen=True)
class TrainConfig:
    """Full-batch gradient descent on ``(1/2N) sum (f - y)^2``."""

    points: int = setting(8, ge=1, le=256, help="training inputs N")
    learning_rate: float = setting(
        1.0, gt=0.0, le=1e3, help="eta (eta / n is used in standard parameterization)"
    )
    steps: int = setting(40, ge=1, le=20_000, help="gradient steps; time t = steps * eta")


def lazy_run(arch, params, x_eval, x_train, y_train, train, width: int, record_every=None):
    """Train S networks (``params``) on x_train (N, d), y_train (N,) as ``train`` says.

    Returns ``theta0``, ``theta_t`` (S, M, M), the empirical NTK on ``x_eval`` (M, d) before and
    after training; ``loss_initial``, ``loss_final`` (S,); ``weight_change`` (S, L). With
    ``record_every``, beside the linearised networks, compared every this many steps and at the
    last: ``gap`` (S,), the largest RMS difference, and ``f_trained``, ``f_linearized`` (S, M).
    """
    linearize = record_every is not None
    m = x_eval.shape[0]
    x_all = np.vstack([x_eval, x_train]) if linearize else x_eval  # (M [+ N], d)
    theta_all = nw.empirical_ntk(arch, params, x_all)  # (S, M + N, M + N)
    eta = stored_step(arch, train.learning_rate, width)
    f0 = nw.forward(arch, params, x_all) if linearize else None  # (S, M + N)
    trace = descend(
        arch, params, x_train, y_train, eta, train.steps, x_record=x_eval,
        record_every=record_every if linearize else train.steps,
    )  # fmt: skip
    out = {
        "theta0": theta_all[:, :m, :m],
        "theta_t": nw.empirical_ntk(arch, trace.params, x_eval),  # (S, M, M)
        "loss_initial": trace.loss[:, 0],
        "loss_final": trace.loss[:, -1],
        "weight_change": trace.weight_change,
    }
    if linearize:
        # The reported kernel is Theta / n in standard parameterization, where eta / n is used,
        # so the kernel times the step size is learning_rate * Theta_reported in both.
        f_lin = linearized_path(
            theta_all[:, :m, m:], theta_all[:, m:, m:], f0[:, :m], f0[:, m:], y_train,
            train.learning_rate, trace.steps_recorded,
        )  # (S, T, M)  # fmt: skip
        out["gap"] = np.sqrt(np.mean((trace.f_path - f_lin) ** 2, axis=2)).max(axis=1)  # (S,)
        out["f_trained"] = trace.f_path[:, -1]
        out["f_linearized"] = f_lin[:, -1]
    return out
