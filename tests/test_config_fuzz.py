"""Random mutations of every shipped config: the loader accepts them or names the problem.

For every shipped config, hypothesis picks a key anywhere in the nested mapping (the `quick:`
overrides included) and deletes it, renames it, or replaces its value with a wrong type, a
negative, zero, NaN, huge number, an empty list or a bad file path. Loading must then either
succeed or raise ConfigError with one line of text — never any other exception.
"""

import math
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wideinf.config import ConfigError
from wideinf.runner import load_config

SHIPPED = sorted((Path(__file__).resolve().parents[1] / "experiments").glob("*.yaml"))

BAD_VALUES = [
    "abc",
    -1,
    -1e9,
    0,
    0.0,
    math.nan,
    math.inf,
    -math.inf,
    1e12,
    10**15,
    [],
    {},
    [1, "x"],
    None,
    True,
    "/no/such/file.csv",
    {"file": "/no/such/file.csv"},
    "inf",
    [-1],
    [0],
    [math.nan],
]


def _paths(tree, prefix=()):
    """Every key path of a nested mapping (lists are leaves)."""
    for key, value in tree.items():
        yield prefix + (key,)
        if isinstance(value, dict):
            yield from _paths(value, prefix + (key,))


def _mutate(raw, path, action, value):
    import copy

    out = copy.deepcopy(raw)
    parent = out
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    if action == "delete":
        del parent[last]
    elif action == "rename":
        parent[f"{last}_typo"] = parent.pop(last)
    else:
        parent[last] = value
    return out


@pytest.mark.parametrize("config", SHIPPED, ids=[p.stem for p in SHIPPED])
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_mutated_configs_load_or_fail_with_one_line(config, data, tmp_path):
    raw = yaml.safe_load(config.read_text())
    paths = sorted(_paths(raw), key=str)
    path = data.draw(st.sampled_from(paths))
    action = data.draw(st.sampled_from(["delete", "rename", "replace", "replace", "replace"]))
    value = data.draw(st.sampled_from(BAD_VALUES))
    mutated = _mutate(raw, path, action, value)
    target = tmp_path / config.name
    target.write_text(yaml.safe_dump(mutated))
    quick = data.draw(st.booleans())
    try:
        load_config(target, quick=quick)
    except ConfigError as exc:
        message = str(exc)
        assert message and "\n" not in message and "Traceback" not in message


@pytest.mark.parametrize("config", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_configs_load_in_both_modes(config):
    for quick in (False, True):
        spec, cfg = load_config(config, quick=quick)
        assert cfg.name == config.stem or cfg.name
        assert spec.command == yaml.safe_load(config.read_text())["experiment"]
