"""The NTK of finite networks on the unit circle, before and after training (Jacot et al. 2018).

``wideinf ntk-circle`` reproduces Figure 1 of Jacot, Gabriel & Hongler 2018 (arXiv:1806.07572):
the empirical ``Theta(x0, x)``, ``x0 = (1, 0)``, ``x = (cos g, sin g)``, of ``n_networks``
networks per width, at initialisation and after gradient descent on N standard normal 2-D
inputs with target ``y = x1 x2``, beside the analytic limit.

Arrays (the ``<name>.npz`` contract), one row per network (``n_networks`` may differ between
widths): ``widths`` (W,), ``gamma`` (G,), ``ntk_limit`` (G,) the analytic ``Theta(x0, x)``,
``network_width`` (R,) each row's width, ``ntk_init``, ``ntk_trained`` (R, G) the empirical
``Theta(x0, x)`` before and after training, ``ntk_rel_err`` (R,) its relative error against the
analytic kernel at initialisation, ``ntk_change`` (R,) its relative change in training,
``loss_initial``, ``loss_final`` (R,), ``x_train`` (N, 2), ``y_train`` (N,).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..architecture import Architecture
from ..config import ArchitectureConfig, ExperimentConfig, Width, setting
from ..errors import ConfigError
from ..stats import relative_error
from . import Result
from .ensemble import TrainConfig, check_widths, each_block, lazy_run

__all__ = ["Config", "run", "report"]

# Jacot et al.'s network: L = 4 layers (3 hidden), ReLU, beta = 0.1.
_JACOT = ArchitectureConfig.from_raw(
    {"layers": ["dense", "relu"] * 3 + ["dense"], "W_std": 1.0, "b_std": 0.1}
)


@dataclass(frozen=True)
class Config(ExperimentConfig):
    """Settings of ``wideinf ntk-circle`` (YAML keys of the same names)."""

    architecture: ArchitectureConfig = _JACOT
    widths: tuple[Width, ...] = setting(
        (500.0, 10000.0), min_len=1, max_len=12, help="hidden widths n (finite, increasing)"
    )
    n_networks: tuple[int, ...] = setting(
        (10, 3), ge=1, le=1000, min_len=1, help="networks per width: one count, or one per width"
    )
    angles: int = setting(61, ge=3, le=721, help="points g on the circle in [-pi, pi] (x0: g = 0)")
    train: TrainConfig = setting(
        TrainConfig(learning_rate=4.0, steps=50), help="gradient descent on y = x1 x2"
    )

    def validate(self, where: str = "config"):
        if len(self.n_networks) not in (1, len(self.widths)):
            raise ConfigError(
                f"{where}.n_networks: give one count, or one per width ({len(self.widths)}), "
                f"got {len(self.n_networks)}"
            )
        check_widths(self.architecture, 2, self.widths, where)

    def counts(self) -> tuple[int, ...]:
        """Networks per width, one entry per width."""
        return self.n_networks * (len(self.widths) if len(self.n_networks) == 1 else 1)


def run(config: Config, rng: np.random.Generator) -> Result:
    """Run the experiment; see the module docstring for the arrays."""
    arch = Architecture.from_config(config.architecture)
    widths = np.array(config.widths)  # (W,)
    counts = config.counts()
    t = config.train
    gamma = np.linspace(-np.pi, np.pi, config.angles)  # (G,)
    x0 = np.array([[1.0, 0.0]])  # (1, 2)
    xc = np.stack([np.cos(gamma), np.sin(gamma)], axis=1)  # (G, 2)
    x_eval = np.vstack([x0, xc])  # (1 + G, 2)
    data_rng, *width_rngs = rng.spawn(len(widths) + 1)
    x_train = data_rng.standard_normal((t.points, 2))  # (N, 2)
    y_train = x_train[:, 0] * x_train[:, 1]  # (N,)

    keys = ("ntk_init", "ntk_trained", "ntk_rel_err", "ntk_change", "loss_initial", "loss_final")
    rows = {k: [] for k in (*keys, "network_width")}
    for _, width, sl, params in each_block(arch, 2, widths.astype(int), counts, width_rngs):
        if sl.start == 0:
            ref = arch.kernel(x0, xc, width=width).ntk[0]  # (G,)
        res = lazy_run(arch, params, x_eval, x_train, y_train, t, width)
        del params
        row0, row_t = res["theta0"][:, 0, 1:], res["theta_t"][:, 0, 1:]  # (S_b, G) each
        rel_err = relative_error(row0[:, None], ref[None])
        change = relative_error(row_t[:, None], row0[:, None])
        values = (row0, row_t, rel_err, change, res["loss_initial"], res["loss_final"])
        for key, value in zip(keys, values, strict=True):
            rows[key].append(value)
        rows["network_width"].append(np.full(row0.shape[0], float(width)))
    arrays = {
        "widths": widths,
        "gamma": gamma,
        "ntk_limit": arch.kernel(x0, xc).ntk[0],  # (G,), infinite width
        **{k: np.concatenate(v) for k, v in rows.items()},
        "x_train": x_train,
        "y_train": y_train,
    }
    summary = {"widths": ", ".join(str(int(w)) for w in widths), "networks": list(counts)}
    for width in widths.astype(int):
        pick = arrays["network_width"] == width
        for key in ("ntk_rel_err", "ntk_change"):
            summary[f"median_{key}_w{width}"] = round(float(np.median(arrays[key][pick])), 4)
    return Result(arrays, summary, [])


def report(result: Result) -> list[str]:
    """Per width: the median error of ``Theta(x0, .)`` at initialisation and its change."""
    s = result.summary
    return [
        f"width {w}: median error of Theta(x0, .) at init {s[f'median_ntk_rel_err_w{w}']:.3f}, "
        f"change in training {s[f'median_ntk_change_w{w}']:.3f}"
        for w in s["widths"].split(", ")
    ]
