"""An MLP as a sequence of layers, each with an infinite-width view (here, the exact kernel)
and a finite view (:mod:`wideinf.networks`), so that each can test the other."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .activations import Activation, make_activation
from .config import ArchitectureConfig
from .errors import ConfigError
from .kernels import Kernel
from .kernels.core import ActivationStep, DenseStep, recursion
from .kernels.tiled import tiled_kernel

__all__ = ["Dense", "Nonlinearity", "Architecture", "check_points"]


@dataclass(frozen=True)
class Dense:
    """Affine layer: ``z = W_std W y / sqrt(n_in) + b_std b`` (NTK parameterization)."""

    W_std: float
    b_std: float


@dataclass(frozen=True)
class Nonlinearity:
    """Elementwise activation layer."""

    activation: Activation


class Architecture:
    """A multilayer perceptron with one output.

    Parameters
    ----------
    layers : sequence of Dense | Nonlinearity
        Starts and ends with a Dense layer; every Nonlinearity follows a Dense layer.
    parameterization : {"ntk", "standard"}, default "ntk"
    """

    def __init__(
        self, layers, parameterization: str = "ntk", config: ArchitectureConfig | None = None
    ):
        self.layers = tuple(layers)
        self.parameterization = parameterization
        self.config = config

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_config(cls, cfg: ArchitectureConfig) -> Architecture:
        layers = []
        for layer in cfg.layers:
            if layer.kind == "dense":
                layers.append(Dense(layer.get("W_std", cfg.W_std), layer.get("b_std", cfg.b_std)))
            else:
                layers.append(Nonlinearity(make_activation(layer.kind, **dict(layer.params))))
        return cls(layers, cfg.parameterization, cfg)

    @classmethod
    def from_dict(cls, data: dict) -> Architecture:
        """From the contents of an ``architecture:`` block."""
        return cls.from_config(ArchitectureConfig.from_raw(data))

    @classmethod
    def from_yaml(cls, path) -> Architecture:
        """From a YAML file with a top-level ``architecture:`` block."""
        from .config import load_yaml

        data = load_yaml(path)
        if "architecture" not in data:
            raise ConfigError(f"{path}: no top-level 'architecture:' block")
        return cls.from_config(
            ArchitectureConfig.from_raw(data["architecture"], f"{path}: architecture")
        )

    # ------------------------------------------------------------------ structure
    @property
    def dense_layers(self) -> tuple[Dense, ...]:
        return tuple(layer for layer in self.layers if isinstance(layer, Dense))

    @property
    def n_hidden(self) -> int:
        """Number of hidden layers (dense layers before the readout)."""
        return len(self.dense_layers) - 1

    def describe(self) -> str:
        parts = []
        for layer in self.layers:
            if isinstance(layer, Dense):
                parts.append(f"Dense({layer.W_std:g}, {layer.b_std:g})")
            else:
                parts.append(layer.activation.name)
        return " -> ".join(parts) + f" [{self.parameterization}]"

    # ------------------------------------------------------------------ infinite view
    def kernel(
        self, x1, x2=None, width: float = math.inf, dtype=np.float64, *, method: str = "tiled",
        workers: int | None = None,
    ) -> Kernel:  # fmt: skip
        """Exact NNGP and NTK of the network's output.

        Parameters
        ----------
        x1 : array, shape (n1, d)
        x2 : array, shape (n2, d), optional
            Defaults to x1 (the result is then symmetric with an exact diagonal).
        width : float, default inf
            Hidden width n; in standard parameterization the NTK is reported as ``Theta / n``.
        dtype : {np.float64, np.float32}, default float64
            Precision of the computation and the result (float32: :mod:`wideinf.kernels.tiled`).
        method : {"tiled", "reference"}, default "tiled"
            :func:`wideinf.kernels.tiled.tiled_kernel` (cache-sized tiles, every core) or
            :func:`wideinf.kernels.core.recursion` (whole matrices, float64); equal to rounding.
        workers : int, optional
            Threads of the tiled method (default: every core this process may use).

        Returns
        -------
        Kernel with ``nngp`` and ``ntk`` of shape (n1, n2).
        """
        x1 = check_points(x1, name="x1", min_points=1)
        x2 = None if x2 is None else check_points(x2, name="x2", min_points=1)
        if x2 is not None and x2.shape[1] != x1.shape[1]:
            raise ConfigError(f"x1 has {x1.shape[1]} input dimension(s) but x2 has {x2.shape[1]}")
        steps = self.kernel_steps(x1.shape[1], width)
        if method == "tiled":
            return tiled_kernel(x1, x2, steps, self.parameterization, dtype=dtype, workers=workers)
        if method == "reference":
            if np.dtype(dtype) != np.float64:
                raise ValueError("method='reference' computes in float64 only")
            return recursion(x1, x2, steps, self.parameterization)
        raise ValueError(f"unknown method {method!r}; valid: 'tiled', 'reference'")

    def kernel_steps(self, d: int, width: float = math.inf) -> tuple:
        """The layers as kernel-recursion steps for inputs of dimension d at hidden width n."""
        steps = []
        first = True
        for layer in self.layers:
            if isinstance(layer, Dense):
                ratio, inv = self._standard_terms(first, d, width)
                steps.append(DenseStep(layer.W_std, layer.b_std, ratio, inv))
                first = False
            else:
                steps.append(ActivationStep(layer.activation))
        return tuple(steps)

    @staticmethod
    def _standard_terms(first: bool, d: int, width: float) -> tuple[float, float]:
        """(n_in / n, 1 / n) for a dense layer in standard parameterization."""
        if math.isinf(width):
            return (0.0 if first else 1.0), 0.0
        return (d / width if first else 1.0), 1.0 / width


def check_points(x, d: int | None = None, name: str = "x", *, min_points: int = 0) -> np.ndarray:
    """Points as a finite float array of shape (N, d), N >= ``min_points`` (1-D: d = 1)."""
    x = np.asarray(x, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] < min_points or x.shape[1] < 1 or d not in (None, x.shape[1]):
        least = f" with N >= {min_points}" if min_points else ""
        raise ConfigError(
            f"{name}: expected an array of shape (N, {d or 'd'}){least}, got {x.shape}"
        )
    if not np.all(np.isfinite(x)):
        raise ConfigError(f"{name}: contains NaN or infinite values")
    return x
