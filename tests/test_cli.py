"""The command line: help texts, the kernel command, and one-line errors with exit code 2."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from wideinf.cli import main

ROOT = Path(__file__).resolve().parents[1]
ARCH = ROOT / "experiments" / "fig1_gabor_relu.yaml"


def _invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def _commands():
    return sorted(main.commands)


@pytest.mark.parametrize("name", _commands())
def test_every_command_has_help_with_an_example_and_is_in_the_readme(name):
    result = _invoke(name, "--help")
    assert result.exit_code == 0
    assert "Example:" in result.output
    assert f"wideinf {name}" in result.output
    assert f"wideinf {name}" in (ROOT / "README.md").read_text()


def test_version():
    from wideinf import __version__

    assert __version__ in _invoke("--version").output


def test_kernel_command_writes_the_contract(tmp_path, rng):
    x1, x2 = rng.normal(size=(6, 1)), rng.normal(size=(4, 1))
    np.save(tmp_path / "a.npy", x1)
    np.savetxt(tmp_path / "b.csv", x2, delimiter=",")
    out = tmp_path / "K.npz"
    result = _invoke(
        "kernel", ARCH, "--x1", tmp_path / "a.npy", "--x2", tmp_path / "b.csv", "--out", out
    )
    assert result.exit_code == 0, result.output
    assert "6x4" in result.output
    from wideinf import Architecture

    expected = Architecture.from_yaml(ARCH).kernel(x1, x2)
    with np.load(out) as saved:
        assert sorted(saved.files) == ["nngp", "ntk"]
        np.testing.assert_allclose(saved["nngp"], expected.nngp, rtol=1e-12)
        np.testing.assert_allclose(saved["ntk"], expected.ntk, rtol=1e-12)
    # Without --x2 the kernel is square.
    assert _invoke("kernel", ARCH, "--x1", tmp_path / "a.npy", "--out", out).exit_code == 0
    with np.load(out) as saved:
        assert saved["nngp"].shape == (6, 6)


def _write(path, text):
    path.write_text(text)
    return path


BAD_ARCHS = {
    "unknown key": (
        "architecture:\n  layers: [dense, relu, dense]\n  W_sdt: 1.0\n",
        "did you mean 'W_std'",
    ),
    "unknown activation": (
        "architecture:\n  layers: [dense, rleu, dense]\n",
        "did you mean 'relu'",
    ),
    "negative std": ("architecture:\n  layers: [dense, relu, dense]\n  b_std: -0.1\n", "b_std"),
    "empty layers": ("architecture:\n  layers: []\n", "empty"),
    "no readout": ("architecture:\n  layers: [dense, relu]\n", "must end with a dense"),
    "wrong type": (
        "architecture:\n  layers: [dense, relu, dense]\n  W_std: big\n",
        "expected a number",
    ),
    "bad parameter": (
        "architecture:\n  layers: [dense, {leaky_relu: {beta: 1}}, dense]\n",
        "alpha",
    ),
    "nan": ("architecture:\n  layers: [dense, relu, dense]\n  W_std: .nan\n", "finite"),
    "two activations": (
        "architecture:\n  layers: [dense, relu, tanh, dense]\n",
        "must follow a dense",
    ),
    "bad parameterization": (
        "architecture:\n  layers: [dense, relu, dense]\n  parameterization: ntkk\n",
        "did you mean 'ntk'",
    ),
    "invalid yaml": ("architecture: [\n", "invalid YAML"),
    "no block": ("layers: [dense]\n", "architecture"),
}


@pytest.mark.parametrize("case", sorted(BAD_ARCHS))
def test_bad_architecture_is_one_line_exit_2(case, tmp_path, rng):
    text, needle = BAD_ARCHS[case]
    arch = _write(tmp_path / "arch.yaml", text)
    np.save(tmp_path / "x.npy", rng.normal(size=(3, 2)))
    result = _invoke("kernel", arch, "--x1", tmp_path / "x.npy", "--out", tmp_path / "K.npz")
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.output
    assert needle in lines[0]
    assert "Traceback" not in result.output
    assert not (tmp_path / "K.npz").exists()


def test_bad_arrays_are_one_line_exit_2(tmp_path):
    np.save(tmp_path / "nan.npy", np.array([[0.0], [np.nan]]))
    _write(tmp_path / "text.csv", "1,2\nfoo,3\n")
    np.save(tmp_path / "two.npy", np.ones((3, 2)))
    np.save(tmp_path / "one.npy", np.ones((3, 1)))
    cases = [
        (["--x1", tmp_path / "missing.npy"], "no such file"),
        (["--x1", tmp_path / "nan.npy"], "NaN"),
        (["--x1", tmp_path / "text.csv"], "cannot read"),
        (["--x1", tmp_path / "one.npy", "--x2", tmp_path / "two.npy"], "input dimension"),
    ]
    for args, needle in cases:
        result = _invoke("kernel", ARCH, *args, "--out", tmp_path / "K.npz")
        assert result.exit_code == 2, result.output
        assert needle in result.output and "Traceback" not in result.output


def test_unwritable_output_folder_is_one_line(tmp_path, rng):
    np.save(tmp_path / "x.npy", rng.normal(size=(3, 1)))
    blocker = _write(tmp_path / "file", "")
    result = _invoke("kernel", ARCH, "--x1", tmp_path / "x.npy", "--out", blocker / "K.npz")
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_real_process_prints_no_traceback(tmp_path):
    # The console script itself, not the test runner: exit code 2 and a single line on stderr.
    arch = _write(tmp_path / "arch.yaml", BAD_ARCHS["unknown activation"][0])
    proc = subprocess.run(
        [sys.executable, "-m", "wideinf.cli", "kernel", str(arch), "--x1", str(tmp_path / "x.npy")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


# ----------------------------------------------------------------------------- multi-value options


def _width_commands():
    from wideinf.experiments import EXPERIMENTS

    return sorted(
        spec.command
        for spec in EXPERIMENTS.values()
        if any(option.key == "widths" for option in spec.options)
    )


@pytest.mark.parametrize("command", _width_commands())
def test_widths_option_leaves_the_config_argument_alone(command, monkeypatch):
    """``--widths 8 64 NAME``: the shipped config name after the widths is the config."""
    from wideinf import cli

    seen = {}

    def fake_run_one(spec, config_path, *args):
        seen["config"], seen["extra"] = config_path, args[-1]

    monkeypatch.setattr(cli, "_run_one", fake_run_one)
    for values in (["8", "64"], ["8", "inf", ".inf"]):
        result = _invoke(command, "--widths", *values, "some_config", "--quick")
        assert result.exit_code == 0, result.output
        assert seen["config"] == "some_config"
        assert seen["extra"] == [f"widths=[{', '.join(values)}]"]
    # Formats stop at the first token that is not a format.
    result = _invoke(command, "--format", "png", "svg", "other_config")
    assert result.exit_code == 0 and seen["config"] == "other_config", result.output


def test_generalize_widths_then_shipped_config_name_runs(tmp_path):
    """The command of the bug report, end to end: the widths are 8 and 64."""
    from wideinf.config import load_yaml

    result = _invoke(
        "generalize", "--widths", "8", "64", "ensemble_prior_4point", "--quick", "--quiet",
        "--out", tmp_path, "--format", "png",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    meta = load_yaml(tmp_path / "ensemble_prior_4point.yaml")
    assert meta["config"]["widths"] == [8.0, 64.0]
