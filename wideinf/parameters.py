"""Parameters of finite networks: the ensemble container, its shapes and count, sampling, flat views.

An ensemble of S networks is one set of arrays with a leading axis S. What a dense layer stores
and computes in either parameterization: :func:`layer_scales`, :func:`init_params` and
docs/theory.md, "Conventions".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .architecture import Dense, Nonlinearity
from .errors import ConfigError
from .memory import FLOAT_BYTES, check_memory

__all__ = [
    "Params",
    "check_multipliers",
    "dense_blocks",
    "hidden_widths",
    "layer_scales",
    "parameter_count",
    "parameter_bytes",
    "init_params",
    "ravel_params",
    "unravel_params",
]

PARAMETERIZATIONS = ("ntk", "standard")


def _count(dims) -> int:
    """``P = sum_l (n_{l-1} + 1) n_l`` for layer sizes ``dims = (d, n_1, ..., n_L, 1)``."""
    return sum((n_in + 1) * n_out for n_in, n_out in zip(dims[:-1], dims[1:]))


@dataclass(frozen=True)
class Params:
    """Parameters of an ensemble of S networks (stored as :func:`init_params` draws them).

    Attributes
    ----------
    weights : tuple of ndarray, each shape (S, n_in, n_out)
        One per dense layer, input layer first; the readout has ``n_out = 1``.
    biases : tuple of ndarray, each shape (S, n_out)
    """

    weights: tuple
    biases: tuple

    @property
    def n_networks(self) -> int:
        return self.weights[0].shape[0]

    @property
    def d_in(self) -> int:
        return self.weights[0].shape[1]

    @property
    def widths(self) -> tuple[int, ...]:
        """Hidden widths (the output size of every dense layer but the readout)."""
        return tuple(w.shape[2] for w in self.weights[:-1])

    @property
    def dims(self) -> tuple[int, ...]:
        """Layer sizes ``(d, n_1, ..., n_L, 1)``."""
        return (self.d_in, *self.widths, 1)

    @property
    def n_params(self) -> int:
        """Parameters per network (see :func:`parameter_count`)."""
        return _count(self.dims)

    def take(self, index) -> Params:
        """The networks ``index`` (a slice or integer array) of the ensemble."""
        return Params(tuple(w[index] for w in self.weights), tuple(b[index] for b in self.biases))

    def copy(self) -> Params:
        return Params(tuple(w.copy() for w in self.weights), tuple(b.copy() for b in self.biases))


# --------------------------------------------------------------------------- structure
def check_multipliers(multipliers, n_layers: int) -> tuple | None:
    """Per-layer learning-rate multipliers: ``n_layers`` positive (weight, bias) pairs, or None."""
    if multipliers is None:
        return None
    pairs = tuple(tuple(float(m) for m in pair) for pair in multipliers)
    shaped = len(pairs) == n_layers and all(len(pair) == 2 for pair in pairs)
    if not (shaped and all(math.isfinite(m) and m > 0 for pair in pairs for m in pair)):
        raise ConfigError(
            f"multipliers: expected one (weight, bias) pair of positive numbers per dense layer "
            f"({n_layers}), got {multipliers!r}"
        )
    return pairs


def dense_blocks(arch) -> list[tuple[Dense, list]]:
    """The architecture as ``[(Dense, [activations that follow it]), ...]``, readout last."""
    blocks: list[tuple[Dense, list]] = []
    for layer in arch.layers:
        if isinstance(layer, Dense):
            blocks.append((layer, []))
        elif isinstance(layer, Nonlinearity):
            if not blocks:
                raise ConfigError("architecture: the first layer must be dense")
            blocks[-1][1].append(layer.activation)
        else:
            raise ConfigError(f"architecture: unknown layer {layer!r}")
    if not blocks or blocks[-1][1]:
        raise ConfigError("architecture: the last layer must be dense (the readout)")
    if arch.parameterization not in PARAMETERIZATIONS:
        raise ConfigError(
            f"unknown parameterization {arch.parameterization!r}; valid: ntk, standard"
        )
    return blocks


def hidden_widths(arch, width) -> tuple[int, ...]:
    """Hidden widths, one per dense layer before the readout, from one width or one per layer."""
    n_hidden = len(dense_blocks(arch)) - 1
    values = [width] * n_hidden if np.ndim(width) == 0 else list(width)
    if len(values) != n_hidden:
        raise ConfigError(
            f"width: the architecture has {n_hidden} hidden layer(s) "
            f"but {len(values)} width(s) were given"
        )
    for v in values:
        number = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
        if not (number and math.isfinite(v) and v >= 1 and v == int(v)):
            raise ConfigError(f"width: a finite network needs positive integer widths, got {v!r}")
    return tuple(int(v) for v in values)


def layer_scales(arch, dense: Dense, n_in: int) -> tuple[float, float]:
    """``(sw, sb)`` of a dense layer with fan-in ``n_in``: ``(W_std / sqrt(n_in), b_std)`` in NTK
    parameterization, ``(1, 1)`` in standard (the scales are in the stored parameters)."""
    if arch.parameterization == "standard":
        return 1.0, 1.0
    return dense.W_std / math.sqrt(n_in), dense.b_std


def parameter_count(arch, d_in: int, width) -> int:
    """Parameters of one network, ``P = sum_l (n_{l-1} + 1) n_l``, for input dimension d_in.

    Examples
    --------
    >>> from wideinf.architecture import Architecture
    >>> parameter_count(Architecture.from_dict({"layers": ["dense", "relu", "dense"]}), 2, 3)
    13
    """
    return _count((int(d_in), *hidden_widths(arch, width), 1))


def parameter_bytes(arch, d_in: int, width, n_networks: int = 1) -> int:
    """Bytes of the float64 parameters of ``n_networks`` networks: ``8 S P``."""
    return FLOAT_BYTES * int(n_networks) * parameter_count(arch, d_in, width)


# --------------------------------------------------------------------------- init
def init_params(arch, d_in: int, width, n_networks: int, rng: np.random.Generator) -> Params:
    """Sample S = ``n_networks`` networks for inputs of dimension ``d_in``.

    For each dense layer in order, ``W`` (S, n_in, n_out) then ``b`` (S, n_out) are drawn from
    ``rng`` as standard normals (scaled by ``W_std / sqrt(n_in)`` and ``b_std`` in standard
    parameterization). ``width``: as :func:`hidden_widths`.
    """
    widths = hidden_widths(arch, width)
    if int(d_in) < 1 or int(n_networks) < 1:
        raise ConfigError(f"need d_in >= 1 and n_networks >= 1, got {d_in} and {n_networks}")
    dims = (int(d_in), *widths, 1)
    check_memory(
        parameter_bytes(arch, d_in, widths, n_networks),
        f"{n_networks} network(s) of width {'x'.join(map(str, widths)) or '-'}",
    )
    weights, biases = [], []
    for (dense, _), n_in, n_out in zip(dense_blocks(arch), dims[:-1], dims[1:]):
        W = rng.standard_normal((n_networks, n_in, n_out))  # (S, n_in, n_out)
        b = rng.standard_normal((n_networks, n_out))  # (S, n_out)
        if arch.parameterization == "standard":
            W *= dense.W_std / math.sqrt(n_in)
            b *= dense.b_std
        weights.append(W)
        biases.append(b)
    return Params(tuple(weights), tuple(biases))


# --------------------------------------------------------------------------- flat views
def _in_order(params: Params) -> list:
    """W_1, b_1, W_2, b_2, ...: the order of the flat views."""
    return [a for pair in zip(params.weights, params.biases) for a in pair]


def ravel_params(params: Params) -> np.ndarray:
    """All parameters of each network in one row, shape (S, P): W_1, b_1, W_2, b_2, ..."""
    return np.concatenate([a.reshape(params.n_networks, -1) for a in _in_order(params)], axis=1)


def unravel_params(flat, like: Params) -> Params:
    """Inverse of :func:`ravel_params`, shaped like ``like``; flat (S, P)."""
    flat = np.asarray(flat, dtype=float)
    arrays = _in_order(like)
    ends = np.cumsum([a[0].size for a in arrays])
    if ends[-1] != flat.shape[1]:
        raise ConfigError(f"expected {ends[-1]} parameters per network, got {flat.shape[1]}")
    parts = np.split(flat, ends[:-1], axis=1)
    parts = [p.reshape((len(flat), *a.shape[1:])).copy() for p, a in zip(parts, arrays)]
    return Params(tuple(parts[0::2]), tuple(parts[1::2]))
