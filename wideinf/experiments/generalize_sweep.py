"""One width of a ``wideinf generalize`` sweep: draw, train and evaluate S networks.

A :class:`Scheme` is a parameterization of the finite networks: ``ntk`` and ``standard``
(:mod:`wideinf.parameters`) and ``mup``, the maximal-update parameterization, which is the
standard network with a rescaled readout and per-layer learning rates (:mod:`wideinf.mup`).
Every scheme draws network j of width n from the same stream ``default_rng([base, n, j])``, so
the three start from the same function (standard weights are the NTK ones times their scales;
muP shrinks only the readout) and, at muP's base width, muP and standard are the same networks
trained the same way.

Besides the learned function on the grid, :func:`train_width` measures how far the features
move: ``||h_T - h_0|| / ||h_0||``, the Frobenius norms over grid points and units of the last
hidden layer's activations ``h`` before (0) and after (T) training. In NTK and standard
parameterization it falls like n^-1/2 (lazy training; Jacot et al. 2018, arXiv:1806.07572);
in muP it stays of order one (Yang & Hu 2021, arXiv:2011.14522).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .. import mup
from .. import networks as nets
from ..architecture import Architecture
from ..stats import fit_power_law
from ..training import train
from .ensemble import init_per_stream, step_size

__all__ = [
    "PARAMETERIZATIONS",
    "Scheme",
    "make_scheme",
    "train_width",
    "feature_movement",
    "rms",
    "gradient_norm",
    "spread",
    "slopes",
]

PARAMETERIZATIONS = ("ntk", "standard", "mup")
# Activations per block of grid points when evaluating (seeds x points x width); blocks
# of about 8 MB stay in cache and are several times faster than larger ones.
_EVAL_BLOCK = 2**20


@dataclass(frozen=True)
class Scheme:
    """How the finite networks of one sweep are parameterized, drawn and trained.

    Attributes
    ----------
    name : {"ntk", "standard", "mup"}
    arch : Architecture
        The finite network's architecture (in standard parameterization for ``mup``).
    base_width : float or None
        muP's base width ``n_0``; None for the other schemes.
    """

    name: str
    arch: Architecture
    base_width: float | None = None

    def init(self, d_in: int, width: int, rngs) -> nets.Params:
        """S networks, network j from ``rngs[j]`` alone."""
        params = init_per_stream(self.arch, d_in, width, rngs)
        return params if self.base_width is None else mup.to_mup(params, self.base_width)

    def multipliers(self, params) -> tuple | None:
        """Per-layer learning-rate multipliers (muP), or None (one rate for every layer)."""
        if self.base_width is None:
            return None
        return mup.mup_multipliers(params.dims, self.base_width)


def make_scheme(name: str, arch: Architecture, base_width: float) -> Scheme:
    """The scheme ``name`` for the layers of ``arch`` (its own parameterization is ignored)."""
    if name == arch.parameterization:
        return Scheme(name, arch)
    standard = mup.standard_architecture(arch)
    if name == "standard":
        return Scheme(name, standard)
    if name == "mup":
        return Scheme(name, standard, float(base_width))
    return Scheme(name, Architecture(arch.layers, "ntk", arch.config))


def _zero_readout(params):
    """The same parameters with the readout's weights and bias set to zero."""
    weights = params.weights[:-1] + (np.zeros_like(params.weights[-1]),)
    biases = params.biases[:-1] + (np.zeros_like(params.biases[-1]),)
    return replace(params, weights=weights, biases=biases)


def _tangent_kernel(scheme: Scheme, params, x_train, training) -> np.ndarray:
    """The tangent kernel that training follows, one (N, N) per network: (S, N, N).

    The raw kernel ``J M J^T`` of the trained parameters in the units of the learning rate,
    ``M`` the per-layer learning-rate multipliers (identity but in muP): all layers, the
    empirical NTK (times the width in standard parameterization and muP, where
    ``empirical_ntk`` reports ``Theta / n``); readout only, ``m_w s_w^2 phi . phi + m_b s_b^2``
    with the readout's scales (``W_std^2 / n`` and ``b_std^2`` in NTK parameterization, 1 and 1
    in standard parameterization and muP) and multipliers ``(m_w, m_b)``.
    """
    arch = scheme.arch
    standard = arch.parameterization == "standard"
    n_last = params.weights[-1].shape[1]
    rates = scheme.multipliers(params)
    if training.layers == "readout":
        phi = nets.features(arch, params, x_train)  # (S, N, n_L)
        gram = np.matmul(phi, phi.transpose(0, 2, 1))  # (S, N, N)
        readout = arch.dense_layers[-1]
        sw2, sb2 = (1.0, 1.0) if standard else (readout.W_std**2 / n_last, readout.b_std**2)
        if rates is not None:
            sw2, sb2 = rates[-1][0] * sw2, rates[-1][1] * sb2
        return sw2 * gram + sb2
    theta = nets.empirical_ntk(arch, params, x_train, multipliers=rates)
    return theta * (n_last if standard else 1.0)


def _evaluate(arch, params, x, width: int, n_networks: int) -> np.ndarray:
    """``forward`` over blocks of points so that (S, block, width) stays small; -> (S, G)."""
    block = max(1, _EVAL_BLOCK // (n_networks * width))
    parts = [nets.forward(arch, params, x[i : i + block]) for i in range(0, len(x), block)]
    return np.concatenate(parts, axis=1)  # (S, G)


def feature_movement(arch, before, after, x, width: int) -> np.ndarray:
    """``||h_after - h_before||_F / ||h_before||_F`` of the last hidden layer on x, shape (S,).

    ``h`` (S, G, n_L) is the readout's input at the G points x (G, d), accumulated over blocks
    of points so that (S, block, width) stays small.
    """
    s = before.n_networks
    block = max(1, _EVAL_BLOCK // (s * width))
    moved, size = np.zeros(s), np.zeros(s)  # (S,) sums of squares
    for i in range(0, len(x), block):
        h0 = nets.features(arch, before, x[i : i + block])  # (S, B, n_L)
        h1 = nets.features(arch, after, x[i : i + block])
        moved += np.sum((h1 - h0) ** 2, axis=(1, 2))
        size += np.sum(h0 * h0, axis=(1, 2))
    return np.sqrt(moved / size)


def train_width(config, scheme: Scheme, x_train, y_train, grid_x, width: int, base: int) -> dict:
    """Train ``config.seeds`` networks of one width; the learned functions on the grid and
    diagnostics: ``f`` (S, G), ``loss``, ``steps``, ``movement`` (S,) and ``lr``.

    Network j is drawn from its own stream ``default_rng([base, width, j])``; the learning
    rate is ``lr_factor * N / lambda_max`` of the tangent kernel training follows.
    """
    training, arch = config.training, scheme.arch
    rngs = [np.random.default_rng([base, width, j]) for j in range(config.seeds)]
    params = scheme.init(x_train.shape[1], width, rngs)
    if training.init_output == "zero_readout":
        params = _zero_readout(params)
    n = len(y_train)
    target = np.broadcast_to(y_train, (config.seeds, n)).copy()  # (S, N)
    if training.init_output == "centered":
        # Training f - f_init on y is training f on y + f_init(X): the same gradients.
        target = target + nets.forward(arch, params, x_train)  # (S, N)
    lr = step_size(_tangent_kernel(scheme, params, x_train, training), training.lr_factor)
    out = train(
        arch, params, x_train, target, lr, training.max_steps,
        readout_only=training.layers == "readout", tol=training.loss_tol,
        record_every=training.max_steps, quiet=True, multipliers=scheme.multipliers(params),
    )  # fmt: skip
    f_grid = _evaluate(arch, out.params, grid_x, width, config.seeds)  # (S, G)
    if training.init_output == "centered":
        f_grid = f_grid - _evaluate(arch, params, grid_x, width, config.seeds)
    loss = 0.5 * np.mean((out.f_train - target) ** 2, axis=1)  # (S,)
    return {
        "f": f_grid,
        "loss": loss,
        "steps": np.asarray(out.steps_taken),
        "movement": feature_movement(arch, params, out.params, grid_x, width),
        "lr": lr,
    }


# ----------------------------------------------------------------------------- metrics


def rms(a: np.ndarray, axis=-1) -> np.ndarray:
    return np.sqrt(np.mean(a * a, axis=axis))


def gradient_norm(f: np.ndarray, g: int, h: float) -> np.ndarray:
    """Mean |grad f| over the grid by central differences; f (..., g * g) -> (...)."""
    grid = f.reshape(f.shape[:-1] + (g, g))
    d2, d1 = np.gradient(grid, h, axis=(-2, -1))
    return np.mean(np.hypot(d1, d2), axis=(-2, -1))


def spread(f: np.ndarray) -> np.ndarray:
    """Across-seed spread: RMS over the grid of the seeds' sd; f (..., W, S, G) -> (..., W)."""
    return np.sqrt(np.mean(np.var(f, axis=-2, ddof=1), axis=-1))


def slopes(widths, f, limits: dict, rng) -> dict[str, tuple[float, float]]:
    """Log-log slopes of the spread and of each distance over the widest half, with their
    bootstrap standard errors over seeds (:func:`wideinf.stats.fit_power_law`); f (W, S, G)."""
    metrics = {"spread": spread}
    for name, lim in limits.items():
        metrics[f"dist_{name}"] = lambda sample, lim=lim: rms(rms(sample - lim))  # (..., W)
    fits = {key: fit_power_law(widths, f, rng, statistic) for key, statistic in metrics.items()}
    return {key: (fit.slope, fit.se) for key, fit in fits.items()}
