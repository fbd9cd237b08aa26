"""Chunked kernels on Dask and Zarr, and conjugate-gradient regression (wideinf.scale)."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest
import scipy.linalg
from click.testing import CliRunner

pytest.importorskip("distributed")
pytest.importorskip("zarr")

from wideinf import scale  # noqa: E402
from wideinf.architecture import Architecture  # noqa: E402
from wideinf.cli import main  # noqa: E402
from wideinf.scale import store  # noqa: E402

ARCH = {"layers": ["dense", "relu", "dense", "erf", "dense"], "W_std": 1.4, "b_std": 0.1}


@pytest.fixture(scope="module")
def cluster():
    """Two single-threaded worker processes, as on this 2-core machine."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as local:
        yield local


@pytest.fixture
def arch():
    return Architecture.from_dict(ARCH)


def points(n, d=5, seed=0):
    return np.random.default_rng(seed).standard_normal((n, d))


def read(path):
    nngp, ntk = store.open_arrays(path)
    return nngp[:], ntk[:]


@pytest.mark.parametrize("second", [False, True])
def test_store_equals_in_memory_kernel(cluster, arch, tmp_path, second):
    # 230 rows in chunks of 64: ragged last blocks, diagonal and off-diagonal blocks.
    x1 = points(230)
    x2 = points(170, seed=1) if second else None
    out = tmp_path / "K.zarr"
    meta = scale.chunked_kernel(arch, x1, x2, out, chunk=64, scheduler=cluster.scheduler_address)
    k = arch.kernel(x1, x2)
    nngp, ntk = read(out)
    assert np.max(np.abs(nngp - k.nngp)) <= 1e-12 * np.max(np.abs(k.nngp))
    assert np.max(np.abs(ntk - k.ntk)) <= 1e-12 * np.max(np.abs(k.ntk))
    assert meta["blocks_computed"] == (12 if second else 10)
    assert store.read_meta(out)["complete"] is True
    assert not store.partial_path(out).exists()
    if not second:  # exactly symmetric with the exact diagonal
        assert np.array_equal(nngp, nngp.T)
        assert np.array_equal(np.diag(nngp), k.var1)


def test_float32_store(cluster, arch, tmp_path):
    x = points(150)
    out = tmp_path / "K.zarr"
    scale.chunked_kernel(
        arch, x, out=out, chunk=64, dtype=np.float32, scheduler=cluster.scheduler_address
    )
    nngp, _ = read(out)
    assert nngp.dtype == np.float32
    k = arch.kernel(x, dtype=np.float32)
    assert np.array_equal(nngp, k.nngp)


@pytest.mark.parametrize("hold", [False, True])
def test_float32_store_products_are_float64(cluster, arch, tmp_path, hold):
    # A float32 store's entries are widened to float64 before multiplying, so a product equals
    # the float64 product of the stored entries to float64 rounding (n eps |K| |v|, Higham,
    # Accuracy and Stability, eq. 3.5), held in the workers' memory or read from disk.
    from wideinf.scale.blocks import StoreOperator

    x = points(150)
    out = tmp_path / "K.zarr"
    scale.chunked_kernel(
        arch, x, out=out, chunk=64, dtype=np.float32, scheduler=cluster.scheduler_address
    )
    k = read(out)[0].astype(np.float64)
    v = np.random.default_rng(3).standard_normal((150, 4))
    with StoreOperator(out, "nngp", cluster.scheduler_address, hold=hold) as op:
        assert op.hold is hold
        products = [op.matvec(v), op.matvec(v)]  # the same vector twice: its own key each time
    bound = 150 * np.finfo(np.float64).eps * (np.abs(k) @ np.abs(v))
    for product in products:
        assert np.all(np.abs(product - k @ v) <= bound)


def test_store_operator_holds_what_fits(cluster, arch, tmp_path):
    from wideinf.scale.blocks import StoreOperator

    out = tmp_path / "K.zarr"
    scale.chunked_kernel(arch, points(100), out=out, chunk=64, scheduler=cluster.scheduler_address)
    with StoreOperator(out, "nngp", cluster.scheduler_address) as op:
        assert op.hold is True  # 80 kB against the workers' gigabytes


def test_interrupted_run_resumes_to_the_same_store(cluster, arch, tmp_path):
    x = points(300)
    reference = tmp_path / "ref.zarr"
    scale.chunked_kernel(arch, x, out=reference, chunk=64, scheduler=cluster.scheduler_address)
    out = tmp_path / "K.zarr"
    calls = []

    def stop_after_three(i, j):
        calls.append((i, j))
        if len(calls) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        scale.chunked_kernel(
            arch,
            x,
            out=out,
            chunk=64,
            scheduler=cluster.scheduler_address,
            on_block=stop_after_three,
        )
    assert not out.exists()  # nothing at the output path until complete
    finished = store.done_blocks(store.partial_path(out))
    assert len(finished) >= 3
    time.sleep(0.5)  # let cancelled tasks settle
    meta = scale.chunked_kernel(
        arch, x, out=out, chunk=64, scheduler=cluster.scheduler_address, resume=True
    )
    assert meta["blocks_resumed"] >= 3
    assert meta["blocks_resumed"] + meta["blocks_computed"] == 15
    for a, b in zip(read(out), read(reference)):
        assert np.array_equal(a, b)


def test_resume_of_another_kernel_starts_afresh(cluster, arch, tmp_path):
    out = tmp_path / "K.zarr"
    partial = store.partial_path(out)
    store.create(partial, (10, 10), 4, np.float64, {"description": "something else"})
    meta = scale.chunked_kernel(
        arch, points(100), out=out, chunk=64, scheduler=cluster.scheduler_address, resume=True
    )
    assert meta["blocks_resumed"] == 0 and meta["blocks_computed"] == 3


def test_worker_killed_during_the_run(cluster, arch, tmp_path):
    """A worker lost mid-run: Dask reschedules its blocks and the store is still right."""
    from distributed import Client

    x = points(400)
    out = tmp_path / "K.zarr"
    partial = store.partial_path(out)

    def kill_one_worker():
        deadline = time.time() + 30
        while time.time() < deadline and len(store.done_blocks(partial)) < 2:
            time.sleep(0.01)
        with Client(cluster.scheduler_address) as client:
            victim = sorted(client.scheduler_info()["workers"])[0]
            try:
                client.run(os._exit, 1, workers=[victim])
            except Exception:  # the connection to the dying worker closes mid-call
                pass

    killer = threading.Thread(target=kill_one_worker)
    killer.start()
    try:
        scale.chunked_kernel(arch, x, out=out, chunk=32, scheduler=cluster.scheduler_address)
    except Exception:  # a clean failure is allowed: then nothing at the output path
        killer.join()
        assert not out.exists()
        return
    killer.join()
    k = arch.kernel(x)
    nngp, ntk = read(out)
    assert np.max(np.abs(nngp - k.nngp)) <= 1e-12 * np.max(np.abs(k.nngp))
    assert np.max(np.abs(ntk - k.ntk)) <= 1e-12 * np.max(np.abs(k.ntk))
    cluster.wait_for_workers(2, timeout=30)


def test_cg_predictions_equal_cholesky(cluster, arch, tmp_path):
    """N = 3000: CG on the store's kernel against the in-memory Cholesky solve, to 1e-6."""
    rng = np.random.default_rng(3)
    x, x_test = points(3000, d=8, seed=3), points(200, d=8, seed=4)
    y = np.stack([np.sin(x[:, 0]) + 0.1 * rng.standard_normal(3000), np.cos(x[:, 1])], axis=1)
    train, cross = tmp_path / "train.zarr", tmp_path / "cross.zarr"
    address = cluster.scheduler_address
    scale.chunked_kernel(arch, x, out=train, chunk=1024, scheduler=address)
    scale.chunked_kernel(arch, x_test, x, out=cross, chunk=1024, scheduler=address)
    alpha, info = scale.solve(train, y, 1e-3, tol=1e-10, scheduler=address)
    mean = scale.cross_multiply(cross, alpha, scheduler=address)

    k, k_cross = arch.kernel(x).nngp, arch.kernel(x_test, x).nngp
    lam = 1e-3 * np.trace(k) / len(k)
    exact = k_cross @ scipy.linalg.solve(k + lam * np.eye(len(k)), y, assume_a="pos")
    assert info.converged and info.regularizer == pytest.approx(lam, rel=1e-12)
    assert np.max(np.abs(mean - exact)) <= 1e-6 * np.max(np.abs(exact))


def test_nystrom_preconditioner_cuts_iterations(arch):
    x = points(800, d=4)
    k = arch.kernel(x).nngp
    y = np.sin(x[:, 0])
    _, plain = scale.solve(k, y, 1e-4, rank=0, maxiter=5000)
    a, pre = scale.solve(k, y, 1e-4, rank=200)
    exact = scipy.linalg.solve(k + pre.regularizer * np.eye(800), y, assume_a="pos")
    assert pre.iterations < plain.iterations / 3
    assert np.max(np.abs(a - exact)) <= 1e-6 * np.max(np.abs(exact))


# ------------------------------------------------------------------ the command line


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def arch_file(tmp_path):
    path = tmp_path / "arch.yaml"
    path.write_text("architecture:\n  layers: [dense, relu, dense]\n  W_std: 1.5\n")
    return path


def test_kernel_command_writes_a_store(cluster, tmp_path):
    np.save(tmp_path / "x.npy", points(100))
    out = tmp_path / "K.zarr"
    result = invoke(
        "kernel", arch_file(tmp_path), "--x1", tmp_path / "x.npy", "--out", out,
        "--chunk", "40", "--scheduler", cluster.scheduler_address, "--quiet",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    arch = Architecture.from_yaml(arch_file(tmp_path))
    assert np.allclose(read(out)[0], arch.kernel(points(100)).nngp, rtol=0, atol=1e-13)


def test_unreachable_scheduler_fails_in_one_line(tmp_path):
    np.save(tmp_path / "x.npy", points(10))
    t0 = time.perf_counter()
    result = invoke(
        "kernel", arch_file(tmp_path), "--x1", tmp_path / "x.npy", "--out", tmp_path / "K.zarr",
        "--scheduler", "tcp://127.0.0.1:9",
    )  # fmt: skip
    assert time.perf_counter() - t0 < 10
    assert result.exit_code == 2
    assert "cannot reach the Dask scheduler" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "K.zarr").exists()


def test_output_that_is_not_a_store_is_refused(tmp_path):
    np.save(tmp_path / "x.npy", points(10))
    other = tmp_path / "K.zarr"
    other.mkdir()
    (other / "precious.txt").write_text("keep me")
    result = invoke("kernel", arch_file(tmp_path), "--x1", tmp_path / "x.npy", "--out", other)
    assert result.exit_code == 2 and "not a wideinf kernel store" in result.output
    assert (other / "precious.txt").read_text() == "keep me"


def test_too_little_disk_is_refused_before_starting(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**6, 10**6, 1000))
    np.save(tmp_path / "x.npy", points(100))
    out = tmp_path / "K.zarr"
    result = invoke("kernel", arch_file(tmp_path), "--x1", tmp_path / "x.npy", "--out", out)
    assert result.exit_code == 2 and "GB free" in result.output
    assert not out.exists() and not store.partial_path(out).exists()


def test_in_memory_kernel_too_large_points_to_zarr(tmp_path, monkeypatch):
    from wideinf import networks

    monkeypatch.setattr(networks, "available_memory", lambda: 10**5)
    np.save(tmp_path / "x.npy", points(200))
    result = invoke(
        "kernel", arch_file(tmp_path), "--x1", tmp_path / "x.npy", "--out", tmp_path / "K.npz"
    )
    assert result.exit_code == 2
    assert "GB" in result.output and "--out K.zarr" in result.output
    assert not (tmp_path / "K.npz").exists()


def test_missing_extra_is_named(monkeypatch, tmp_path):
    import builtins

    real_import = builtins.__import__

    def no_zarr(name, *args, **kwargs):
        if name == "zarr":
            raise ImportError("no zarr")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_zarr)
    np.save(tmp_path / "x.npy", points(10))
    result = invoke(
        "kernel", arch_file(tmp_path), "--x1", tmp_path / "x.npy", "--out", tmp_path / "K.zarr"
    )
    assert result.exit_code == 2 and "pip install 'wideinf[scale]'" in result.output


def test_experiments_run_on_the_cluster(cluster, tmp_path):
    """`wideinf all --scheduler`: experiments as tasks on the workers, the same table."""
    from wideinf.batch import run_many
    from wideinf.runner import shipped_dir

    lines = []
    failed = run_many(
        [str(shipped_dir() / "fig2_generated.yaml"), str(tmp_path / "missing.yaml")],
        out=str(tmp_path / "out"), seed=None, quick=True, formats=("png",), sets=(),
        quiet=True, jobs=1, echo=lines.append, scheduler=cluster.scheduler_address,
    )  # fmt: skip
    assert failed == ["missing"]
    assert (tmp_path / "out" / "fig2_generated.npz").stat().st_size > 0
    assert any("1 ok, 1 failed" in line for line in lines)
