"""Forward-mode derivatives: a dual-number array that numpy's ufuncs differentiate as they go.

A :class:`Dual` holds a value ``x`` of some shape S and P tangents ``dx`` of shape (P, *S): the
derivatives of x along P directions of parameter space. Every numpy ufunc applied to Duals
(``np.sqrt(q)``, ``a * b``, ``np.arctan2(s, c)``, ...) returns a Dual whose tangent follows the
chain rule, ``d f(x, y) = f_x dx + f_y dy``, with the partial derivatives of :data:`_RULES`.
So a closed form written once with numpy (a dual activation, a layer of the kernel recursion)
is differentiated as written, exactly up to rounding, with no second formula to keep in sync.

Conventions at the points where a derivative does not exist:

- a zero tangent times an infinite partial derivative is zero (``sqrt`` at 0 along a direction
  that stays at 0: the diagonal of a kernel, where ``q11 q22 - q12^2`` is identically 0);
- ``maximum``/``minimum`` at a tie take the mean of the two tangents (a subgradient);
- ``clip`` takes the tangent of the bound it clips to, and of its argument otherwise.

Only elementwise code is supported: ufuncs (``__call__``), ``np.clip``, ``np.where``,
``np.broadcast_arrays``, ``np.shape`` and indexing. Anything else (``np.asarray``, ``out=``
arguments, reductions) raises TypeError, so a formula outside this set fails loudly instead of
silently dropping its tangents.
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = ["Dual", "value_of", "tangent_of"]

_Operators = np.lib.mixins.NDArrayOperatorsMixin  # +, -, *, ..., ==, < as ufunc calls


class Dual(_Operators):
    """A value (shape S) with P tangents (shape (P, *S)).

    Python's operators are numpy's ufuncs (the mixin); ``a += b`` binds ``a`` to a new Dual.

    Parameters
    ----------
    value : array_like, shape S
    tangent : array_like, shape (P, *S) or broadcastable to it
    """

    __slots__ = ("value", "tangent")
    __array_priority__ = 1000  # ndarray's binary operators defer to ours
    __iadd__, __isub__, __imul__, __itruediv__, __ipow__ = (
        _Operators.__add__,
        _Operators.__sub__,
        _Operators.__mul__,
        _Operators.__truediv__,
        _Operators.__pow__,
    )  # no out= on a Dual (module docstring): in-place operators rebind instead

    def __init__(self, value, tangent):
        self.value = np.asarray(value, dtype=float)
        self.tangent = np.asarray(tangent, dtype=float)

    @classmethod
    def variable(cls, value, n_directions: int, direction: int) -> Dual:
        """``value`` with tangent 1 along ``direction`` and 0 along the others (a scalar input)."""
        tangent = np.zeros((n_directions,) + np.shape(value))
        tangent[direction] = 1.0
        return cls(value, tangent)

    # ------------------------------------------------------------------ array protocol
    @property
    def shape(self):
        return self.value.shape

    @property
    def ndim(self):
        return self.value.ndim

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        return Dual(self.value[key], _aligned(self.tangent, self.value.ndim)[(slice(None),) + key])

    def __array__(self, dtype=None, copy=None):
        raise TypeError("Dual: cannot become a plain array (its tangents would be lost)")

    def astype(self, dtype, copy=True):
        return Dual(self.value.astype(dtype, copy=copy), self.tangent.copy())

    def __repr__(self):
        return f"Dual(value={self.value!r}, tangent={self.tangent!r})"

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method != "__call__" or kwargs:
            raise TypeError(f"Dual supports plain ufunc calls only, not {ufunc.__name__}.{method}")
        values = [value_of(x) for x in inputs]
        if ufunc in _COMPARISONS:
            return ufunc(*values)
        rule = _RULES.get(ufunc) or _scipy_rules().get(ufunc)
        if rule is None:
            raise TypeError(f"Dual: no derivative rule for ufunc {ufunc.__name__}")
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            out, partials = rule(*values)
            return Dual(out, _chain(out, inputs, partials, ufunc in _SINGULAR))

    def __array_function__(self, func, types, args, kwargs):
        handler = _FUNCTIONS.get(func)
        if handler is None:
            raise TypeError(f"Dual: {func.__name__} is not supported (elementwise code only)")
        return handler(*args, **kwargs)


def value_of(x):
    """The value of a Dual, or x itself."""
    return x.value if isinstance(x, Dual) else x


def tangent_of(x, n_directions: int, ndim: int | None = None):
    """The tangent (P, *shape) of a Dual, or zeros for a constant; with ``ndim``, shaped
    (P, 1, ..., *shape) to broadcast against values of that many dimensions."""
    if isinstance(x, Dual):
        t = _aligned(x.tangent, x.value.ndim)
    else:
        t = np.zeros((n_directions,) + np.shape(x))
    if ndim is not None:
        t = t.reshape(t.shape[:1] + (1,) * (ndim - t.ndim + 1) + t.shape[1:])
    return t


# ----------------------------------------------------------------------------- chain rule


def _aligned(tangent, ndim):
    """Tangent reshaped to (P, *value.shape) exactly, the P axis first."""
    extra = ndim + 1 - tangent.ndim
    if extra > 0:  # a tangent stored as (P,) for a broadcast value
        tangent = tangent.reshape(tangent.shape[:1] + (1,) * extra + tangent.shape[1:])
    return tangent


class _Over:
    """A partial derivative ``1 / denom``, applied as ``dx / denom`` (exact where dx = denom)."""

    __slots__ = ("denom",)

    def __init__(self, denom):
        self.denom = denom


def _chain(out, inputs, partials, singular=False):
    """``sum_i partial_i * d input_i``, shape (P, *out.shape); zero tangents stay zero.

    ``partials`` holds, per input, a callable giving the partial derivative (evaluated only for
    Dual inputs, so constants cost nothing), an array, or an :class:`_Over`.
    """
    total = None
    ndim = np.ndim(out)
    for x, partial in zip(inputs, partials):
        if not isinstance(x, Dual):
            continue
        dx = x.tangent
        if dx.ndim != ndim + 1:
            dx = _aligned(dx, x.value.ndim)
            dx = dx.reshape(dx.shape[:1] + (1,) * (ndim - x.value.ndim) + dx.shape[1:])
        partial = partial() if callable(partial) else partial
        if isinstance(partial, _Over):
            term = dx / partial.denom
        elif isinstance(partial, float) and partial in (1.0, -1.0):
            term = dx if partial == 1.0 else -dx  # sums and differences: no product
        else:
            term = partial * dx
        if singular and not np.all(np.isfinite(term)):
            term = np.where(dx == 0, 0.0, term)  # 0 * inf = 0: the path stays where f is flat
        total = term if total is None else total + term
    if total.shape[1:] != np.shape(out):
        total = np.broadcast_to(total, total.shape[:1] + np.shape(out))
    return total


def _tie_split(a, b, pick_a):
    """Weights of a's and b's tangents for maximum/minimum: 1/0, 0/1, or 1/2 at a tie."""
    wa = np.where(a == b, 0.5, pick_a.astype(float))
    return wa, 1.0 - wa


def _power(a, b):
    out = np.power(a, b)
    return out, (
        lambda: b * np.power(a, b - 1.0),
        lambda: out * np.log(np.where(a > 0, a, 1.0)),
    )


def _sqrt(a):
    out = np.sqrt(a)
    return out, (_Over(2.0 * out),)


def _arctan2(y, x):
    r2 = x * x + y * y
    return np.arctan2(y, x), (lambda: _Over(r2 / x), lambda: _Over(-r2 / y))


def _maximum(a, b):
    wa, wb = _tie_split(a, b, a > b)
    return np.maximum(a, b), (wa, wb)


def _minimum(a, b):
    wa, wb = _tie_split(a, b, a < b)
    return np.minimum(a, b), (wa, wb)


def _exp(a):
    out = np.exp(a)
    return out, (out,)


# ufunc -> (values -> (output, partial derivative with respect to each input)); a partial is
# a callable (evaluated only when that input is a Dual), an array, or an _Over.
_RULES = {
    np.add: lambda a, b: (a + b, (1.0, 1.0)),
    np.subtract: lambda a, b: (a - b, (1.0, -1.0)),
    np.multiply: lambda a, b: (a * b, (lambda: b, lambda: a)),
    np.true_divide: lambda a, b: (a / b, (lambda: _Over(b), lambda: -a / (b * b))),
    np.negative: lambda a: (-a, (-1.0,)),
    np.positive: lambda a: (+a, (1.0,)),
    np.square: lambda a: (a * a, (lambda: 2.0 * a,)),
    np.power: _power,
    np.sqrt: _sqrt,
    np.exp: _exp,
    np.expm1: lambda a: (np.expm1(a), (lambda: np.exp(a),)),
    np.log: lambda a: (np.log(a), (lambda: _Over(a),)),
    np.log1p: lambda a: (np.log1p(a), (lambda: _Over(1.0 + a),)),
    np.sin: lambda a: (np.sin(a), (lambda: np.cos(a),)),
    np.cos: lambda a: (np.cos(a), (lambda: -np.sin(a),)),
    np.tanh: lambda a: (np.tanh(a), (lambda: 1.0 - np.tanh(a) ** 2,)),
    np.arcsin: lambda a: (np.arcsin(a), (lambda: _Over(np.sqrt(1.0 - a * a)),)),
    np.arccos: lambda a: (np.arccos(a), (lambda: _Over(-np.sqrt(1.0 - a * a)),)),
    np.arctan: lambda a: (np.arctan(a), (lambda: _Over(1.0 + a * a),)),
    np.arctan2: _arctan2,
    np.absolute: lambda a: (np.abs(a), (lambda: np.sign(a),)),
    np.maximum: _maximum,
    np.minimum: _minimum,
}

# Rules whose partial derivatives can be infinite (checked for the 0 * inf convention).
_SINGULAR = {np.power, np.sqrt, np.log, np.log1p, np.arcsin, np.arccos, np.arctan2}

_COMPARISONS = {np.less, np.less_equal, np.greater, np.greater_equal, np.equal, np.not_equal}


@functools.lru_cache(maxsize=1)
def _scipy_rules():
    import scipy.special

    return {
        scipy.special.erf: lambda a: (
            scipy.special.erf(a),
            (lambda: 2.0 / np.sqrt(np.pi) * np.exp(-a * a),),
        ),
    }


# ----------------------------------------------------------------------------- array functions


def _clip(a, lo, hi, **kwargs):
    if kwargs:
        raise TypeError("Dual: np.clip with keyword arguments is not supported")
    va, vlo, vhi = value_of(a), value_of(lo), value_of(hi)
    out = np.clip(va, vlo, vhi)
    below, above = va < vlo, va > vhi
    n = _directions(a, lo, hi)
    da, dlo, dhi = (tangent_of(x, n, out.ndim) for x in (a, lo, hi))
    tangent = np.where(below, dlo, np.where(above, dhi, da))
    return Dual(out, np.broadcast_to(tangent, (n,) + out.shape))


def _where(cond, a, b):
    cond = value_of(cond)
    n = _directions(a, b)
    out = np.where(cond, value_of(a), value_of(b))
    tangent = np.where(cond, tangent_of(a, n, out.ndim), tangent_of(b, n, out.ndim))
    return Dual(out, np.broadcast_to(tangent, (n,) + out.shape))


def _broadcast_arrays(*args, **kwargs):
    shape = np.broadcast_shapes(*(np.shape(value_of(a)) for a in args))
    n = _directions(*args)
    return [
        Dual(
            np.broadcast_to(value_of(a), shape),
            np.broadcast_to(tangent_of(a, n, len(shape)), (n,) + shape),
        )
        for a in args
    ]


def _directions(*args):
    return next(a.tangent.shape[0] for a in args if isinstance(a, Dual))


_FUNCTIONS = {
    np.clip: _clip,
    np.where: _where,
    np.broadcast_arrays: _broadcast_arrays,
    np.shape: lambda a: np.shape(value_of(a)),
    np.ndim: lambda a: np.ndim(value_of(a)),
}
