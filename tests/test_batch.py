"""Batch commands and robust I/O: run, all, plot, reproducibility, interruption, bad outputs."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from wideinf.batch import run_many
from wideinf.cli import main

ROOT = Path(__file__).resolve().parents[1]
FIG1 = ROOT / "experiments" / "fig1_gabor_relu.yaml"


def _invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def fig1_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("fig1")
    result = _invoke("nngp-samples", "--quick", "--quiet", "--out", out)
    assert result.exit_code == 0, result.output
    return out


def test_outputs_are_complete(fig1_run):
    for ext in ("png", "svg", "npz", "yaml"):
        assert (fig1_run / f"fig1_gabor_relu.{ext}").stat().st_size > 0
    assert not list(fig1_run.glob("*.tmp")) and not list(fig1_run.glob(".*"))


def test_same_seed_gives_identical_arrays(fig1_run, tmp_path):
    assert _invoke("nngp-samples", "--quick", "--quiet", "--out", tmp_path).exit_code == 0
    with (
        np.load(fig1_run / "fig1_gabor_relu.npz") as a,
        np.load(tmp_path / "fig1_gabor_relu.npz") as b,
    ):
        assert a.files == b.files
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key])
    # PNG and SVG carry no timestamps: the same run gives the same files.
    for ext in ("png", "svg"):
        assert (fig1_run / f"fig1_gabor_relu.{ext}").read_bytes() == (
            tmp_path / f"fig1_gabor_relu.{ext}"
        ).read_bytes()


def test_another_seed_gives_other_arrays(fig1_run, tmp_path):
    assert (
        _invoke("nngp-samples", "--quick", "--quiet", "--seed", 1, "--out", tmp_path).exit_code == 0
    )
    with (
        np.load(fig1_run / "fig1_gabor_relu.npz") as a,
        np.load(tmp_path / "fig1_gabor_relu.npz") as b,
    ):
        assert not np.array_equal(a["functions_w4"], b["functions_w4"])


def test_plot_redraws_the_same_figure_from_saved_results(fig1_run, tmp_path):
    import matplotlib.image as mpimg

    result = _invoke("plot", fig1_run / "fig1_gabor_relu.npz", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    original = mpimg.imread(fig1_run / "fig1_gabor_relu.png")
    redrawn = mpimg.imread(tmp_path / "fig1_gabor_relu.png")
    assert original.shape == redrawn.shape
    assert np.abs(original - redrawn).mean() < 1e-3


def test_run_dispatches_on_the_experiment_key(tmp_path):
    result = _invoke("run", FIG1, "--quick", "--quiet", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "fig1_gabor_relu.npz").exists()


def test_run_many_goes_on_past_a_failure_and_reports_it(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("experiment: nngp-samples\nwidths: [-4]\n")
    lines = []
    failed = run_many(
        [str(broken), str(FIG1)],
        out=tmp_path / "out",
        seed=None,
        quick=True,
        formats=("png",),
        sets=(),
        quiet=True,
        jobs=1,
        echo=lines.append,
    )
    assert failed == ["broken"]
    assert (tmp_path / "out" / "fig1_gabor_relu.png").exists()
    table = "\n".join(lines)
    assert "broken" in table and "failed" in table and "1 ok, 1 failed" in table


def test_unknown_experiment_and_wrong_command(tmp_path):
    cfg = tmp_path / "x.yaml"
    cfg.write_text("experiment: nngp-sample\n")
    result = _invoke("run", cfg, "--out", tmp_path)
    assert result.exit_code == 1 and "did you mean 'nngp-samples'" in result.output
    cfg.write_text("experiment: features\n")
    result = _invoke("nngp-samples", cfg, "--out", tmp_path)
    assert result.exit_code == 2 and "wideinf features" in result.output


def test_unwritable_output_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = _invoke("nngp-samples", "--quick", "--out", blocker / "sub")
    assert result.exit_code == 2 and "cannot write" in result.output


def test_width_too_large_for_memory(tmp_path):
    result = _invoke("nngp-samples", "--quick", "--widths", "100000000", "--out", tmp_path)
    assert result.exit_code == 2, result.output
    assert "GiB" in result.output and "Traceback" not in result.output
    assert not list(tmp_path.iterdir())


def test_bad_set_option(tmp_path):
    result = _invoke("nngp-samples", "--quick", "--set", "n_sample=3", "--out", tmp_path)
    assert result.exit_code == 2 and "did you mean 'n_samples'" in result.output
    result = _invoke("nngp-samples", "--quick", "--set", "novalue", "--out", tmp_path)
    assert result.exit_code == 2 and "key=value" in result.output


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _wait_for_cpu_seconds(pid: int, seconds: float, timeout: float = 60.0) -> None:
    """Block until process ``pid`` has used ``seconds`` of CPU time (user + system)."""
    ticks = os.sysconf("SC_CLK_TCK")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            return
        if (int(fields[11]) + int(fields[12])) / ticks >= seconds:
            return
        time.sleep(0.05)


def test_ctrl_c_in_the_middle_of_all_leaves_earlier_outputs_intact(fig1_run, tmp_path):
    out = tmp_path / "figs"
    out.mkdir()
    for p in fig1_run.iterdir():
        (out / p.name).write_bytes(p.read_bytes())
    # Make the earlier outputs recognisably different from anything a new run would write.
    (out / "fig1_gabor_relu.png").write_bytes(b"earlier result")
    before = _snapshot(out)
    proc = subprocess.Popen(
        [sys.executable, "-m", "wideinf.cli", "all", "--quick", "--quiet", "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        # A shell starts background jobs with SIGINT ignored, and a child would inherit that:
        # restore the default so the child's Python turns Ctrl-C into KeyboardInterrupt.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    # Interrupt once the child has spent 1.5 s of CPU (imports done, well inside the first
    # experiment, which needs several seconds): CPU time, not wall time, so a busy machine
    # does not make the interrupt land during start-up.
    _wait_for_cpu_seconds(proc.pid, 1.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    after = _snapshot(out)
    # Nothing half-written, and every earlier file byte for byte as it was (the interrupt lands
    # in the first experiment alphabetically, long before fig1_gabor_relu is rewritten).
    assert not [name for name in after if name.endswith(".tmp") or name.startswith(".")]
    assert {name: after[name] for name in before} == before
    assert b"Traceback" not in err


SHIPPED = sorted((ROOT / "experiments").glob("*.yaml"))


@pytest.mark.parametrize("config", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_shipped_config_runs_in_quick_mode(config, tmp_path):
    result = _invoke("run", config, "--quick", "--quiet", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    for ext in ("png", "svg", "npz", "yaml"):
        assert (tmp_path / f"{config.stem}.{ext}").stat().st_size > 0


BAD_DATA = {
    "missing file": ("data: {file: nowhere.csv}\n", "no such file"),
    "unreadable file": ("data: {file: data.csv}\n", "data.csv"),
    "mismatched lengths": ("data: {file: short.csv}\n", "short.csv"),
    "NaN": ("data: {file: nan.csv}\n", "NaN"),
}


@pytest.mark.parametrize("case", sorted(BAD_DATA))
def test_bad_data_files_are_one_line_exit_2(case, tmp_path):
    (tmp_path / "data.csv").mkdir()  # a folder where a file is expected: unreadable
    (tmp_path / "short.csv").write_text("is_test,x,y\n0,1.0,2.0\n1,0.5\n")
    (tmp_path / "nan.csv").write_text("is_test,x,y\n0,1.0,nan\n1,0.5,0.1\n")
    text, needle = BAD_DATA[case]
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("experiment: compare-ntk\n" + text)
    result = _invoke("compare-ntk", cfg, "--quick", "--out", tmp_path / "out")
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0], result.output
    assert not (tmp_path / "out" / "cfg.npz").exists()
