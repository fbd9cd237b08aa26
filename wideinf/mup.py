"""The maximal-update parameterization (muP) of finite MLPs, stated against a base width.

In NTK and standard parameterization every layer of a wide network moves only O(n^-1/2)
in training: the features freeze and the network is a kernel machine (Jacot et al. 2018,
arXiv:1806.07572). muP (Yang & Hu 2021, "Feature Learning in Infinite-Width Neural
Networks", arXiv:2011.14522) scales the initial variances and the per-layer learning rates
so that every layer's features change by O(1) at any width. We use the form of Yang et al.
2021 (Tensor Programs V, arXiv:2203.03466), Table 3 (SGD): muP is the standard
parameterization (``z = y @ W + b``, the scales inside the stored parameters; see
:mod:`wideinf.parameters`) with some variances and learning rates multiplied by powers of
the width multiplier ``m = n / n_0`` of a stated *base width* ``n_0``:

=====================  ==============================  ====================
parameter              initial variance                SGD learning rate
=====================  ==============================  ====================
input weights (d, n)   ``W_std^2 / d`` (as standard)   ``eta * m``
hidden biases          ``b_std^2`` (as standard)       ``eta * m``
hidden weights (n, n)  ``W_std^2 / n`` (as standard)   ``eta``
readout weights (n, 1) ``W_std^2 / n * (1 / m)``       ``eta / m``
readout bias           ``b_std^2`` (as standard)       ``eta``
=====================  ==============================  ====================

Every factor is 1 at ``n = n_0``: there muP *is* the standard parameterization, draw for draw.
Table 3 states the powers of n up to constants; the base width fixes the constants. The rule
behind the table, which also covers unequal hidden widths (as the ``mup`` package's MuSGD
applies it): with ``fan_in_mult`` and ``fan_out_mult`` the ratios of a layer's fan-in and
fan-out to their base values (1 for the input dimension and the single output), a weight's
rate is multiplied by ``fan_out_mult / fan_in_mult``, a bias's by ``fan_out_mult``, and the
readout's initial variance is divided by its ``fan_in_mult``.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from .architecture import Architecture
from .errors import ConfigError
from .networks import Params, empirical_ntk

__all__ = [
    "standard_architecture",
    "width_ratios",
    "mup_multipliers",
    "readout_scale",
    "to_mup",
    "mup_tangent_kernel",
]


def standard_architecture(arch: Architecture) -> Architecture:
    """The same layers in standard parameterization: the finite network muP starts from."""
    return Architecture(arch.layers, "standard", arch.config)


def _check_base(base_width) -> float:
    if isinstance(base_width, bool) or not (
        isinstance(base_width, (int, float, np.integer, np.floating))
        and math.isfinite(base_width)
        and base_width >= 1
    ):
        raise ConfigError(f"base_width: expected a number >= 1, got {base_width!r}")
    return float(base_width)


def width_ratios(dims, base_width) -> tuple[tuple[float, float], ...]:
    """``(fan_in_mult, fan_out_mult)`` of each dense layer for layer sizes ``(d, n_1, ..., 1)``.

    A hidden width ``n`` has the ratio ``n / base_width``; the input dimension and the output
    stay as they are at every width (ratio 1).
    """
    base = _check_base(base_width)
    ratios = [1.0] + [n / base for n in dims[1:-1]] + [1.0]  # one per layer size
    return tuple(zip(ratios[:-1], ratios[1:]))


def mup_multipliers(dims, base_width) -> tuple[tuple[float, float], ...]:
    """Per-layer (weight, bias) learning-rate multipliers of muP under SGD (module table).

    Weights ``fan_out_mult / fan_in_mult``, biases ``fan_out_mult``: ``(m, m)`` for the input
    layer, ``(1, m)`` for a hidden layer of equal widths, ``(1 / m, 1)`` for the readout.
    For :func:`wideinf.networks.descent_step` and :func:`wideinf.training.train`.
    """
    return tuple((out / inp, out) for inp, out in width_ratios(dims, base_width))


def readout_scale(dims, base_width) -> float:
    """The factor ``1 / sqrt(fan_in_mult)`` on the readout's standard-parameterized weights."""
    return 1.0 / math.sqrt(width_ratios(dims, base_width)[-1][0])


def to_mup(params: Params, base_width) -> Params:
    """muP networks from standard-parameterized ones drawn as usual: the readout rescaled.

    Parameters
    ----------
    params : Params
        S networks in standard parameterization (``init_params`` of a standard architecture).
    base_width : float
        ``n_0`` (>= 1).

    Returns
    -------
    Params sharing every array but the readout's weights, ``W_L * sqrt(n_0 / n_L)``.
    """
    scale = readout_scale(params.dims, base_width)
    readout = params.weights[-1] * scale  # (S, n_L, 1); a new array when scale == 1 too
    return replace(params, weights=params.weights[:-1] + (readout,))


def mup_tangent_kernel(arch: Architecture, params: Params, x, base_width) -> np.ndarray:
    """The kernel ``J M J^T`` that muP gradient descent follows, (S, N, N), on x (N, d).

    ``M`` holds the learning-rate multipliers of :func:`mup_multipliers`, so one step changes
    the outputs by ``-eta (J M J^T) dL/df`` to first order. ``arch`` is the standard
    architecture (:func:`standard_architecture`), whose ``empirical_ntk`` reports ``/ n_L``.
    """
    if arch.parameterization != "standard":
        raise ConfigError("mup_tangent_kernel: expects the standard architecture of the network")
    rates = mup_multipliers(params.dims, base_width)
    return empirical_ntk(arch, params, x, multipliers=rates) * params.weights[-1].shape[1]
