"""YAML configs -> validated frozen dataclasses. The only module that reads YAML.

Every config class is a frozen dataclass whose fields all have defaults. :func:`build` checks a
mapping against it: unknown keys (with a "did you mean"), wrong types, NaN, and values outside
the bounds declared in each field's metadata (``setting(default, ge=..., le=..., ...)``) are
rejected with a :class:`ConfigError` naming the file, the key and what would be valid.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import operator
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .errors import ConfigError

__all__ = [
    "ConfigError",
    "Width",
    "setting",
    "build",
    "to_plain",
    "load_yaml",
    "apply_overrides",
    "parse_set_option",
    "LayerConfig",
    "ArchitectureConfig",
    "ExperimentConfig",
]

# A hidden width: a positive integer, or infinity (written inf, .inf or infinity).
Width = typing.Annotated[float, "width"]

_INF_WORDS = {"inf", ".inf", "infinity", "+inf", "+.inf", "+infinity"}
_SIGNED_INF_WORDS = _INF_WORDS | {"-inf", "-.inf"}


def setting(default, *, help: str = "", **bounds):
    """A dataclass field with a default, a help text and bounds (ge, gt, le, lt, min_len).

    ``scalar_ok=True`` lets a list-valued key also take a single string (one item).
    """
    metadata = {"help": help, **bounds}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: default.copy(), metadata=metadata)
    return field(default=default, metadata=metadata)


def parse_width(value, where: str = "width") -> float:
    """A positive integer or infinity (``inf``, ``.inf``, ``infinity``) -> float."""
    if isinstance(value, str) and value.strip().lower() in _INF_WORDS:
        return math.inf
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: expected a positive integer or inf, got {value!r}")
    if math.isinf(value) and value > 0:
        return math.inf
    if math.isnan(value) or value < 1 or value != int(value):
        raise ConfigError(f"{where}: expected a positive integer or inf, got {value!r}")
    return float(int(value))


_BOUNDS = {
    "ge": (operator.ge, ">="),
    "gt": (operator.gt, ">"),
    "le": (operator.le, "<="),
    "lt": (operator.lt, "<"),
}
# Scalar type -> (the Python types a YAML value of it may have, what an error message calls it).
_SCALARS = {
    bool: ((bool,), "true or false"),
    int: ((int,), "an integer"),
    float: ((int, float), "a number"),
    str: ((str,), "a string"),
}


def _check_bounds(value, meta: dict, where: str):
    for key, (ok, sign) in _BOUNDS.items():
        if key in meta and isinstance(value, (int, float)) and not ok(value, meta[key]):
            raise ConfigError(f"{where}: must be {sign} {meta[key]}, got {value!r}")
    if "min_len" in meta and isinstance(value, tuple) and len(value) < meta["min_len"]:
        raise ConfigError(f"{where}: needs at least {meta['min_len']} item(s), got {len(value)}")
    if "max_len" in meta and isinstance(value, tuple) and len(value) > meta["max_len"]:
        raise ConfigError(f"{where}: takes at most {meta['max_len']} item(s), got {len(value)}")


def _convert(value, tp, where: str, meta: dict):
    """Convert a YAML value to the annotated type ``tp`` or raise ConfigError."""
    origin = typing.get_origin(tp)
    if tp is Width:
        return parse_width(value, where)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return None if value is None else _convert(value, args[0], where, meta)
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            hint = _did_you_mean(str(value), [str(c) for c in choices])
            valid = ", ".join(repr(c) for c in choices)
            raise ConfigError(f"{where}: {value!r} is not one of {valid}{hint}")
        return value
    if origin in (tuple, list):
        if isinstance(value, str) and meta.get("scalar_ok"):
            value = [value]  # `key: l2` for `key: [l2]`
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        item_meta = {k: b for k, b in meta.items() if k != "min_len"}
        items = tuple(
            _convert(v, args[0] if args else Any, f"{where}[{i}]", item_meta)
            for i, v in enumerate(value)
        )
        _check_bounds(items, meta, where)
        return items
    if dataclasses.is_dataclass(tp):
        if hasattr(tp, "from_raw"):
            return tp.from_raw(value, where)
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return build(tp, value, where)
    if tp not in _SCALARS:
        raise TypeError(f"unsupported config type {tp!r} at {where}")
    if tp is int and isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        value = int(value)
    if tp is float and isinstance(value, str) and value.strip().lower() in _SIGNED_INF_WORDS:
        value = float(value.strip().lower().replace(".inf", "inf"))
    accepted, name = _SCALARS[tp]
    if not isinstance(value, accepted) or (isinstance(value, bool) and tp is not bool):
        raise ConfigError(f"{where}: expected {name}, got {value!r}")
    if tp is float:
        value = float(value)
        if math.isnan(value) or (math.isinf(value) and not meta.get("allow_inf")):
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
    _check_bounds(value, meta, where)
    return value


def _did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _unknown(where: str, what: str, word, valid, valid_word: str = "valid") -> ConfigError:
    hint = _did_you_mean(str(word), valid)
    listed = ", ".join(valid) or "none"
    return ConfigError(f"{where}: unknown {what} {word!r}{hint}; {valid_word}: {listed}")


def build(cls, data: dict, where: str = "config"):
    """Build the frozen dataclass ``cls`` from a mapping, validating every key and value."""
    loc, data = where.rstrip(":"), {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigError(f"{loc}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    values = {}
    for key, value in data.items():
        if key not in fields:
            raise _unknown(loc, "key", key, fields, "valid keys")
        sub = f"{where} {key}" if where.endswith(":") else f"{where}.{key}"  # file: key, block.key
        values[key] = _convert(value, hints[key], sub, dict(fields[key].metadata))
    try:
        obj = cls(**values)
    except TypeError as exc:  # a required key is missing
        raise ConfigError(f"{loc}: {exc}") from None
    if hasattr(obj, "validate"):
        obj.validate(loc)
    return obj


def to_plain(obj):
    """Dataclasses -> plain dicts/lists/floats for YAML output (infinity stays ``inf``)."""
    if hasattr(obj, "to_raw"):
        return obj.to_raw()
    if dataclasses.is_dataclass(obj):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    return obj


def load_yaml(path) -> dict:
    """Read a YAML mapping with ``yaml.safe_load``; every failure is a one-line ConfigError."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, expected a YAML file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}: invalid YAML{line}: {problem}") from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected a mapping of keys at the top, got {type(data).__name__}"
        )
    return data


def parse_set_option(text: str) -> tuple[list[str], Any]:
    """``"a.b=value"`` -> (["a", "b"], value parsed as YAML)."""
    import yaml

    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {text!r}: expected key=value, e.g. --set seed=3")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return [k.strip() for k in key.split(".")], value


def apply_overrides(data: dict, overrides: dict | list) -> dict:
    """Deep-merge ``overrides`` (a mapping, or a list of (path, value)) into a copy of ``data``."""
    out = copy.deepcopy(data)
    items = overrides.items() if isinstance(overrides, dict) else overrides
    for key, value in items:
        path = key if isinstance(key, list) else [key]
        target = out
        for part in path[:-1]:
            if not isinstance(target.get(part), dict):
                target[part] = {}
            target = target[part]
        last = path[-1]
        if isinstance(value, dict) and isinstance(target.get(last), dict):
            target[last] = apply_overrides(target[last], value)
        else:
            target[last] = copy.deepcopy(value)
    return out


# ----------------------------------------------------------------------------- architecture

_DENSE_PARAMS = ("W_std", "b_std")


@dataclass(frozen=True)
class LayerConfig:
    """One layer: ``kind`` is ``dense`` or an activation name; ``params`` its settings."""

    kind: str
    params: tuple[tuple[str, float], ...] = ()

    def get(self, key, default=None):
        return dict(self.params).get(key, default)

    def to_raw(self):
        return {self.kind: dict(self.params)} if self.params else self.kind

    @classmethod
    def from_raw(cls, raw, where: str) -> LayerConfig:
        """Parse ``name`` or ``{name: {parameter: value}}``, checking names and values."""
        from .activations import ACTIVATION_NAMES, activation_parameters

        if isinstance(raw, str):
            name, params = raw, {}
        elif isinstance(raw, dict) and len(raw) == 1:
            name, params = next(iter(raw.items()))
            params = {} if params is None else params
            if not isinstance(params, dict):
                raise ConfigError(
                    f"{where}: parameters of {name!r} must be a mapping, got {params!r}"
                )
        else:
            raise ConfigError(
                f"{where}: expected a layer name or a one-key mapping like {{dense: {{W_std: 2.0}}}}, "
                f"got {raw!r}"
            )
        if not isinstance(name, str):
            raise ConfigError(f"{where}: layer name must be a string, got {name!r}")
        valid = ("dense",) + ACTIVATION_NAMES
        if name not in valid:
            raise _unknown(where, "layer", name, valid)
        allowed = _DENSE_PARAMS if name == "dense" else tuple(activation_parameters(name))
        checked = []
        for key, value in params.items():
            if key not in allowed:
                raise _unknown(f"{where}.{name}", "parameter", key, allowed)
            sub = f"{where}.{name}.{key}"
            value = _convert(value, float, sub, {"ge": 0} if key in _DENSE_PARAMS else {})
            checked.append((key, value))
        return cls(name, tuple(checked))


@dataclass(frozen=True)
class ArchitectureConfig:
    """The YAML ``architecture:`` block (docs/theory.md, "Conventions"; README)."""

    layers: tuple[LayerConfig, ...] = ()
    W_std: float = setting(1.0, ge=0.0, le=1e3, help="default weight std of every dense layer")
    b_std: float = setting(0.0, ge=0.0, le=1e3, help="default bias std of every dense layer")
    parameterization: Literal["ntk", "standard"] = "ntk"

    @classmethod
    def from_raw(cls, raw, where: str = "architecture") -> ArchitectureConfig:
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: expected a mapping with a 'layers' list, got {raw!r}")
        if raw.get("layers") is None:
            raise ConfigError(f"{where}: missing key 'layers', e.g. layers: [dense, relu, dense]")
        return build(cls, raw, where)

    def validate(self, where: str = "architecture"):
        kinds = [layer.kind for layer in self.layers]
        if not kinds:
            raise ConfigError(f"{where}.layers: is empty; e.g. layers: [dense, relu, dense]")
        if kinds[0] != "dense":
            raise ConfigError(f"{where}.layers: must start with dense (got {kinds[0]!r})")
        if kinds[-1] != "dense":
            raise ConfigError(
                f"{where}.layers: must end with a dense readout layer (got {kinds[-1]!r})"
            )
        for i in range(1, len(kinds)):
            if kinds[i] != "dense" and kinds[i - 1] != "dense":
                raise ConfigError(
                    f"{where}.layers[{i}]: activation {kinds[i]!r} must follow a dense layer, "
                    f"not {kinds[i - 1]!r}"
                )

    def to_raw(self):
        return {f.name: to_plain(getattr(self, f.name)) for f in dataclasses.fields(self)}


# ----------------------------------------------------------------------------- experiments


@dataclass(frozen=True)
class ExperimentConfig:
    """Keys every experiment config has; each experiment subclasses it with its own keys."""

    experiment: str = ""
    name: str = ""
    description: str = ""
    seed: int = setting(0, ge=0, le=2**32 - 1, help="seed of every random draw")
    config_dir: str = setting(
        "", help="folder that data files are relative to (default: the config's)"
    )
