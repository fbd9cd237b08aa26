"""Finite-width MLPs in numpy: init, forward, backprop and empirical NNGP/NTK.

The finite view of every :class:`~wideinf.architecture.Architecture`. An *ensemble* of S
independent networks is one set of arrays with a leading axis S; nothing loops over S in
Python except to bound memory (blocks of networks, see :data:`BLOCK_BYTES`).

Parameterizations (Neural Tangents' conventions; Jacot et al. 2018, arXiv:1806.07572;
Sohl-Dickstein et al. 2020, arXiv:2001.07301), for a dense layer with fan-in ``n_in``:

- ``"ntk"``: ``z = (W_std / sqrt(n_in)) y @ W + b_std b`` with ``W, b ~ N(0, 1)``; the stored
  (and trained) parameters are the standard normal ``W`` and ``b``.
- ``"standard"``: ``z = y @ W + b`` with ``W ~ N(0, W_std^2 / n_in)``, ``b ~ N(0, b_std^2)``;
  the stored parameters are ``W`` and ``b`` themselves. The NTK grows with the width, so
  :func:`empirical_ntk` reports ``Theta / n`` with ``n`` the readout's fan-in (the last hidden
  width), as :meth:`Architecture.kernel(x, width=n) <wideinf.architecture.Architecture.kernel>`
  does. Gradient descent with learning rate ``eta / n`` then follows the reported kernel with
  time ``t = steps * eta``.

The same generator state gives the same function in both parameterizations (the standard
weights are the NTK ones times their scales).

Gradient descent lives in :mod:`wideinf.training` and is re-exported here as :func:`train`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from .architecture import Dense, Nonlinearity
from .errors import ConfigError, ResourceError

__all__ = [
    "Params",
    "TrainResult",
    "hidden_widths",
    "init_params",
    "forward",
    "features",
    "gradients",
    "empirical_nngp",
    "empirical_ntk",
    "jacobian",
    "ravel_params",
    "unravel_params",
    "train",
    "memory_estimate",
    "available_memory",
    "check_memory",
    "BLOCK_BYTES",
]

# Working memory per block of networks (activations and their derivatives). The block size
# depends only on the shapes, never on the machine, so results are the same everywhere.
BLOCK_BYTES = 256 * 2**20
# Refuse requests above this fraction of the machine's available memory.
MEMORY_FRACTION = 0.8
_F8 = 8  # bytes per float64


@dataclass(frozen=True)
class Params:
    """Parameters of an ensemble of S networks (stored as in the module docstring).

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
    def n_params(self) -> int:
        """Parameters per network."""
        return sum(w[0].size + b[0].size for w, b in zip(self.weights, self.biases))

    def take(self, index) -> Params:
        """The networks ``index`` (a slice or integer array) of the ensemble."""
        return Params(tuple(w[index] for w in self.weights), tuple(b[index] for b in self.biases))

    def copy(self) -> Params:
        return Params(tuple(w.copy() for w in self.weights), tuple(b.copy() for b in self.biases))


# --------------------------------------------------------------------------- structure
def _blocks(arch) -> list[tuple[Dense, list]]:
    """The architecture as [(Dense, [activations that follow it]), ...]."""
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
    return blocks


def hidden_widths(arch, width) -> tuple[int, ...]:
    """Hidden widths, one per dense layer before the readout.

    Parameters
    ----------
    width : int or sequence of int
        One width for every hidden layer, or one per hidden layer.
    """
    n_hidden = len(_blocks(arch)) - 1
    if np.ndim(width) == 0:
        values = [width] * n_hidden
    else:
        values = list(width)
        if len(values) != n_hidden:
            raise ConfigError(
                f"width: the architecture has {n_hidden} hidden layer(s) "
                f"but {len(values)} width(s) were given"
            )
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise ConfigError(f"width: expected a positive integer, got {v!r}")
        if not math.isfinite(v) or v < 1 or v != int(v):
            raise ConfigError(f"width: a finite network needs positive integer widths, got {v!r}")
        out.append(int(v))
    return tuple(out)


def _scales(arch, dense: Dense, n_in: int) -> tuple[float, float]:
    """(weight scale, bias scale) applied in the forward pass."""
    if arch.parameterization == "ntk":
        return dense.W_std / math.sqrt(n_in), dense.b_std
    if arch.parameterization == "standard":
        return 1.0, 1.0
    raise ConfigError(f"unknown parameterization {arch.parameterization!r}; valid: ntk, standard")


def _points(x, d: int, name: str = "x") -> np.ndarray:
    x = np.asarray(x, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] != d:
        raise ConfigError(f"{name}: expected an array of shape (N, {d}), got {x.shape}")
    return x


# --------------------------------------------------------------------------- memory
def available_memory() -> int:
    """Bytes of memory available to a new allocation (``MemAvailable``), 0 if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0


def _gb(nbytes: float) -> str:
    return f"{nbytes / 2**30:.2f} GB" if nbytes >= 2**28 else f"{nbytes / 2**20:.0f} MB"


def check_memory(nbytes: float, what: str) -> None:
    """Raise :class:`ResourceError` if ``nbytes`` exceeds 80% of the available memory."""
    avail = available_memory()
    if avail and nbytes > MEMORY_FRACTION * avail:
        raise ResourceError(
            f"{what} needs about {_gb(nbytes)} of memory but this machine has "
            f"{_gb(avail)} available; use a smaller width, fewer networks or fewer points"
        )


def _sizes(dims) -> int:
    return sum(a * b + b for a, b in zip(dims[:-1], dims[1:]))


def memory_estimate(arch, d_in: int, width, n_networks: int, n_points: int) -> int:
    """Bytes to train an ensemble on ``n_points`` inputs (an upper bound for the other calls).

    Parameters and their trained copy (``2 S P``), and for each block of networks the
    activations and backpropagated derivatives of every layer (``4 N sum(widths)`` per network)
    plus its gradients (``P`` per network).
    """
    dims = (int(d_in), *hidden_widths(arch, width), 1)
    per_net = _per_network_bytes(dims, n_points) + _sizes(dims) * _F8
    return 2 * n_networks * _sizes(dims) * _F8 + _block_size(per_net, n_networks) * per_net


def _block_size(per_network_bytes: int, n_networks: int) -> int:
    return max(1, min(n_networks, BLOCK_BYTES // max(1, int(per_network_bytes))))


def _net_blocks(params: Params, per_network_bytes: int):
    s = params.n_networks
    step = _block_size(per_network_bytes, s)
    for start in range(0, s, step):
        yield slice(start, min(s, start + step))


# --------------------------------------------------------------------------- init
def init_params(arch, d_in: int, width, n_networks: int, rng: np.random.Generator) -> Params:
    """Sample S independent networks of an architecture.

    Parameters
    ----------
    arch : Architecture
    d_in : int
        Input dimension d.
    width : int or sequence of int
        Hidden width of every hidden layer, or one per hidden layer.
    n_networks : int
        Ensemble size S.
    rng : numpy.random.Generator
        The only source of randomness. For each dense layer in order, ``W`` (S, n_in, n_out)
        then ``b`` (S, n_out) are drawn as standard normals (scaled by ``W_std / sqrt(n_in)``
        and ``b_std`` in standard parameterization).

    Returns
    -------
    Params with weights (S, n_in, n_out) and biases (S, n_out).
    """
    widths = hidden_widths(arch, width)
    if int(d_in) < 1 or int(n_networks) < 1:
        raise ConfigError(f"need d_in >= 1 and n_networks >= 1, got {d_in} and {n_networks}")
    dims = (int(d_in), *widths, 1)
    check_memory(
        n_networks * _sizes(dims) * _F8,
        f"{n_networks} network(s) of width {'x'.join(map(str, widths)) or '-'}",
    )
    weights, biases = [], []
    for (dense, _), n_in, n_out in zip(_blocks(arch), dims[:-1], dims[1:]):
        W = rng.standard_normal((n_networks, n_in, n_out))  # (S, n_in, n_out)
        b = rng.standard_normal((n_networks, n_out))  # (S, n_out)
        if arch.parameterization == "standard":
            W *= dense.W_std / math.sqrt(n_in)
            b *= dense.b_std
        else:
            _scales(arch, dense, n_in)  # validates the parameterization
        weights.append(W)
        biases.append(b)
    return Params(tuple(weights), tuple(biases))


# --------------------------------------------------------------------------- forward/backward
def _check(arch, params: Params) -> list:
    blocks = _blocks(arch)
    if len(blocks) != len(params.weights):
        raise ConfigError(
            f"the parameters have {len(params.weights)} dense layer(s) "
            f"but the architecture has {len(blocks)}"
        )
    return blocks


def _forward_cache(arch, blocks, params: Params, x: np.ndarray):
    """Forward pass keeping what backprop needs.

    Returns f (S, N), inputs [y_k] (input of dense k: (N, d) for k = 0, else (S, N, n_in)),
    and pre [[z before each activation of block k]] (each (S, N, n_out)).
    """
    y = x  # (N, d)
    inputs, pre = [], []
    for (dense, acts), W, b in zip(blocks, params.weights, params.biases):
        sw, sb = _scales(arch, dense, W.shape[1])
        inputs.append(y)
        z = np.matmul(y, W)  # (S, N, n_out)
        z *= sw
        z += sb * b[:, None, :]
        zs = []
        for act in acts:
            zs.append(z)
            z = act.phi(z)
        pre.append(zs)
        y = z
    return y[..., 0], inputs, pre


def _backward(arch, blocks, params: Params, inputs, pre, delta: np.ndarray) -> list:
    """Backpropagate ``delta`` (S, N, 1) from the readout's output.

    Returns, per dense layer k, ``delta_k`` (S, N, n_out): the derivative of
    ``sum_i delta_i f(x_i)`` with respect to that layer's output z_k (before its activations),
    point by point (nothing is summed over N).
    """
    deltas = [None] * len(blocks)
    for k in range(len(blocks) - 1, -1, -1):
        dense, acts = blocks[k]
        for act, z in zip(reversed(acts), reversed(pre[k])):
            delta = delta * act.dphi(z)  # (S, N, n_out)
        deltas[k] = delta
        if k > 0:
            W = params.weights[k]
            sw, _ = _scales(arch, dense, W.shape[1])
            delta = np.matmul(delta, W.transpose(0, 2, 1))  # (S, N, n_in)
            delta *= sw
    return deltas


def _per_network_bytes(dims, n_points: int) -> int:
    """Working memory of a forward and backward pass of one network on ``n_points`` inputs."""
    if isinstance(dims, Params):
        dims = (dims.d_in, *dims.widths, 1)
    return 4 * n_points * sum(dims) * _F8


def forward(arch, params: Params, x) -> np.ndarray:
    """Outputs of every network of the ensemble.

    Parameters
    ----------
    arch : Architecture
    params : Params, S networks
    x : array, shape (N, d)

    Returns
    -------
    f : ndarray, shape (S, N)
    """
    blocks = _check(arch, params)
    x = _points(x, params.d_in)
    s, n = params.n_networks, x.shape[0]
    per_net = _per_network_bytes(params, n) // 2
    check_memory(s * n * _F8 + _block_size(per_net, s) * per_net, f"the outputs at {n} points")
    out = np.empty((s, n))  # (S, N)
    for sl in _net_blocks(params, per_net):
        out[sl] = _forward_cache(arch, blocks, params.take(sl), x)[0]
    return out


def features(arch, params: Params, x) -> np.ndarray:
    """The readout's input (last hidden layer's activations), shape (S, N, n_L)."""
    blocks = _check(arch, params)
    x = _points(x, params.d_in)
    n_l = params.weights[-1].shape[1]
    check_memory(params.n_networks * x.shape[0] * n_l * _F8, "the readout features")
    out = np.empty((params.n_networks, x.shape[0], n_l))  # (S, N, n_L)
    per_net = _per_network_bytes(params, x.shape[0]) // 2
    for sl in _net_blocks(params, per_net):
        _, inputs, _ = _forward_cache(arch, blocks, params.take(sl), x)
        last = inputs[-1]
        out[sl] = last if last.ndim == 3 else last[None]
    return out


def gradients(arch, params: Params, x, cotangent) -> Params:
    """Vector-Jacobian product ``sum_i cotangent_i df(x_i)/dtheta`` for every network.

    Parameters
    ----------
    x : array, shape (N, d)
    cotangent : array, shape (S, N) or (N,)

    Returns
    -------
    Params of gradients, shaped like ``params`` (with respect to the stored parameters).
    """
    blocks = _check(arch, params)
    x = _points(x, params.d_in)
    s, n = params.n_networks, x.shape[0]
    cot = np.broadcast_to(np.asarray(cotangent, dtype=float), (s, n))
    check_memory(2 * s * params.n_params * _F8, "the gradients")
    gw = [np.empty_like(w) for w in params.weights]
    gb = [np.empty_like(b) for b in params.biases]
    for sl in _net_blocks(params, _per_network_bytes(params, n)):
        sub = params.take(sl)
        _, inputs, pre = _forward_cache(arch, blocks, sub, x)
        deltas = _backward(arch, blocks, sub, inputs, pre, cot[sl][..., None])
        _accumulate(arch, blocks, sub, inputs, deltas, gw, gb, sl)
    return Params(tuple(gw), tuple(gb))


def _accumulate(arch, blocks, params, inputs, deltas, gw, gb, sl):
    """Gradients from per-point deltas: ``dW = sw y^T delta``, ``db = sb sum_i delta_i``.

    Written into ``gw[k][sl]`` and ``gb[k][sl]`` without temporaries of the weights' size.
    """
    for k, (dense, _) in enumerate(blocks):
        sw, sb = _scales(arch, dense, params.weights[k].shape[1])
        y = inputs[k]
        yt = y.T if y.ndim == 2 else y.transpose(0, 2, 1)  # (n_in, N) or (S, n_in, N)
        g = gw[k][sl]  # (S, n_in, n_out), a view
        np.matmul(yt, deltas[k], out=g)
        if sw != 1.0:
            g *= sw
        np.sum(deltas[k], axis=1, out=gb[k][sl])  # (S, n_out)
        if sb != 1.0:
            gb[k][sl] *= sb


# --------------------------------------------------------------------------- kernels
def empirical_nngp(arch, params: Params, x1, x2=None) -> np.ndarray:
    """Empirical NNGP: the readout's input features, scaled as the kernel.

    ``K_hat(x, x') = W_std^2 phi_L(x) . phi_L(x') / n_L + b_std^2`` with the readout layer's
    ``W_std``, ``b_std`` and ``n_L`` its fan-in: the output covariance over the readout's
    random weights given the features (Neal 1996; Lee et al. 2018, arXiv:1711.00165). Its mean
    over networks is the analytic NNGP (exactly for one hidden layer).

    Parameters
    ----------
    x1 : array, shape (N1, d)
    x2 : array, shape (N2, d), optional (defaults to x1; the result is then symmetric)

    Returns
    -------
    ndarray, shape (S, N1, N2)
    """
    blocks = _check(arch, params)
    readout = blocks[-1][0]
    x1 = _points(x1, params.d_in, "x1")
    x2v = x1 if x2 is None else _points(x2, params.d_in, "x2")
    s, n1, n2 = params.n_networks, x1.shape[0], x2v.shape[0]
    per_net = _per_network_bytes(params, n1 + n2) // 2 + 2 * n1 * n2 * _F8
    check_memory(
        s * n1 * n2 * _F8 + _block_size(per_net, s) * per_net,
        f"the empirical NNGP on {n1} x {n2} points",
    )
    n_l = params.weights[-1].shape[1]
    out = np.empty((s, n1, n2))  # (S, N1, N2)
    for sl in _net_blocks(params, per_net):
        sub = params.take(sl)
        f1 = _forward_cache(arch, blocks, sub, x1)[1][-1]
        f2 = f1 if x2 is None else _forward_cache(arch, blocks, sub, x2v)[1][-1]
        gram = np.matmul(f1, np.swapaxes(f2, -1, -2))  # (S, N1, N2) or (N1, N2)
        k = (readout.W_std**2 / n_l) * gram + readout.b_std**2
        if x2 is None:
            k = 0.5 * (k + np.swapaxes(k, -1, -2))
        out[sl] = k
    return out


def empirical_ntk(arch, params: Params, x1, x2=None) -> np.ndarray:
    """Empirical NTK ``J(x1) J(x2)^T``, layer by layer without the Jacobian.

    For dense layer l with input y_{l-1}, output z_l and scales ``(sw, sb)``
    (``(W_std / sqrt(n_in), b_std)`` in NTK parameterization, ``(1, 1)`` in standard),
    with ``delta_l(x) = df(x) / dz_l`` from backprop:
    ``Theta += sw^2 [y_{l-1}(x) . y_{l-1}(x')] [delta_l(x) . delta_l(x')]
    + sb^2 [delta_l(x) . delta_l(x')]`` (Jacot et al. 2018, arXiv:1806.07572).
    In standard parameterization the result is divided by the readout's fan-in n (the last
    hidden width) to match :meth:`Architecture.kernel(x, width=n)`; if the hidden widths
    differ, it is still the last one.

    Parameters
    ----------
    x1 : array, shape (N1, d)
    x2 : array, shape (N2, d), optional (defaults to x1; the result is then symmetric)

    Returns
    -------
    ndarray, shape (S, N1, N2)
    """
    blocks = _check(arch, params)
    x1 = _points(x1, params.d_in, "x1")
    x2v = x1 if x2 is None else _points(x2, params.d_in, "x2")
    s, n1, n2 = params.n_networks, x1.shape[0], x2v.shape[0]
    per_net = _per_network_bytes(params, n1 + n2) + 3 * n1 * n2 * _F8
    check_memory(
        s * n1 * n2 * _F8 + _block_size(per_net, s) * per_net,
        f"the empirical NTK on {n1} x {n2} points",
    )
    out = np.empty((s, n1, n2))  # (S, N1, N2)
    for sl in _net_blocks(params, per_net):
        sub = params.take(sl)
        ones1 = np.ones((sub.n_networks, n1, 1))
        _, in1, pre1 = _forward_cache(arch, blocks, sub, x1)
        d1 = _backward(arch, blocks, sub, in1, pre1, ones1)
        if x2 is None:
            in2, d2 = in1, d1
        else:
            _, in2, pre2 = _forward_cache(arch, blocks, sub, x2v)
            d2 = _backward(arch, blocks, sub, in2, pre2, np.ones((sub.n_networks, n2, 1)))
        theta = np.zeros((sub.n_networks, n1, n2))  # (S, N1, N2)
        for k, (dense, _) in enumerate(blocks):
            sw, sb = _scales(arch, dense, sub.weights[k].shape[1])
            dd = np.matmul(d1[k], d2[k].transpose(0, 2, 1))  # (S, N1, N2)
            yy = np.matmul(in1[k], np.swapaxes(in2[k], -1, -2))  # (S, N1, N2) or (N1, N2)
            theta += (sw * sw * yy + sb * sb) * dd
        if x2 is None:
            theta = 0.5 * (theta + theta.transpose(0, 2, 1))
        out[sl] = theta
    if arch.parameterization == "standard":
        out /= params.weights[-1].shape[1]
    return out


# --------------------------------------------------------------------------- flat views
def ravel_params(params: Params) -> np.ndarray:
    """All parameters of each network in one row, shape (S, P): W_1, b_1, W_2, b_2, ..."""
    s = params.n_networks
    parts = []
    for w, b in zip(params.weights, params.biases):
        parts += [w.reshape(s, -1), b.reshape(s, -1)]
    return np.concatenate(parts, axis=1)


def unravel_params(flat, like: Params) -> Params:
    """Inverse of :func:`ravel_params`, shaped like ``like``; flat (S, P)."""
    flat = np.asarray(flat, dtype=float)
    s = flat.shape[0]
    weights, biases, pos = [], [], 0
    for w, b in zip(like.weights, like.biases):
        for arr, out in ((w, weights), (b, biases)):
            size = arr[0].size
            out.append(flat[:, pos : pos + size].reshape((s, *arr.shape[1:])).copy())
            pos += size
    if pos != flat.shape[1]:
        raise ConfigError(f"expected {pos} parameters per network, got {flat.shape[1]}")
    return Params(tuple(weights), tuple(biases))


def jacobian(arch, params: Params, x) -> np.ndarray:
    """Explicit Jacobian ``df(x_i)/dtheta``, shape (S, N, P), one backprop per point.

    In the order of :func:`ravel_params`. Memory ``S N P``: for small networks (tests).
    """
    x = _points(x, params.d_in)
    s, n, p = params.n_networks, x.shape[0], params.n_params
    check_memory(2 * s * n * p * _F8, f"the explicit Jacobian ({s} x {n} x {p})")
    jac = np.empty((s, n, p))  # (S, N, P)
    for i in range(n):
        cot = np.zeros((s, n))
        cot[:, i] = 1.0
        jac[:, i] = ravel_params(gradients(arch, params, x, cot))
    return jac


# Gradient descent lives in training.py; imported last because it uses the functions above.
from .training import TrainResult, train  # noqa: E402
