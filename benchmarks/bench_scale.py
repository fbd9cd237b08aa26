"""Chunked kernels and CG regression at scale (wideinf.scale), on this machine.

    python benchmarks/bench_scale.py kernel --n 20000 60000     # wall time, throughput, memory
    python benchmarks/bench_scale.py workers --n 20000           # 1 worker against 2
    python benchmarks/bench_scale.py regression --n 1000 4000 16000 60000   # MNIST-1D accuracy

Kernels: two hidden ReLU layers, float32, inputs of dimension 40 (MNIST-1D when the mnist1d
package is installed, else Gaussian points), chunks of 4096, a local cluster of single-threaded
workers. Stores go to --dir (default: a temporary folder on /work) and are deleted afterwards
unless --keep. Results are printed as Markdown tables for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from wideinf import scale
from wideinf.architecture import Architecture

ARCH = {"layers": ["dense", "relu", "dense", "relu", "dense"], "W_std": 1.4, "b_std": 0.1}


def mnist1d(n_train: int, n_test: int = 1000, seed: int = 0):
    """MNIST-1D with n_train + n_test samples (its generator, offline), standardised."""
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError:
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((n_train + n_test, 40))
        return x[:n_train], rng.integers(0, 10, n_train), x[n_train:], rng.integers(0, 10, n_test)
    args = get_dataset_args()
    args.num_samples = int((n_train + n_test) / args.train_split) + 1
    args.seed = seed
    data = make_dataset(args)
    x = np.concatenate([data["x"], data["x_test"]])[: n_train + n_test]
    y = np.concatenate([data["y"], data["y_test"]])[: n_train + n_test]
    mean, sd = x[:n_train].mean(0), x[:n_train].std(0)
    x = (x - mean) / sd
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def peak_worker_rss(client) -> float:
    """Largest peak resident memory of any worker process, GB (ru_maxrss is in KB)."""
    peaks = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return max(peaks.values()) / 1e6


def kernel_run(x, out: Path, n_workers: int):
    """Time one chunked kernel on a fresh local cluster; returns (seconds, peak RSS GB)."""
    from distributed import Client, LocalCluster

    arch = Architecture.from_dict(ARCH)
    with (
        LocalCluster(
            n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        t0 = time.perf_counter()
        scale.chunked_kernel(
            arch, x, out=out, chunk=4096, dtype=np.float32, scheduler=cluster.scheduler_address
        )
        seconds = time.perf_counter() - t0
        return seconds, peak_worker_rss(client)


def bench_kernel(ns, workdir: Path, keep: bool):
    print(
        "| N | workers | wall (s) | entries/s/core (both kernels) | peak RSS/worker (GB) | store (GB) |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for n in ns:
        x, *_ = mnist1d(n, 0)
        out = workdir / f"K{n}.zarr"
        seconds, rss = kernel_run(x, out, 2)
        entries = n * n
        size = 2 * entries * 4 / 1e9
        print(f"| {n} | 2 | {seconds:.1f} | {entries / seconds / 2:.3g} | {rss:.2f} | {size:.1f} |")
        if not keep:
            shutil.rmtree(out)


def bench_workers(n, workdir: Path):
    x, *_ = mnist1d(n, 0)
    times = {}
    for w in (1, 2):
        out = workdir / f"W{w}.zarr"
        times[w], _ = kernel_run(x, out, w)
        shutil.rmtree(out)
    eff = times[1] / (2 * times[2])
    print("| N | 1 worker (s) | 2 workers (s) | speed-up | parallel efficiency |")
    print("|---:|---:|---:|---:|---:|")
    print(f"| {n} | {times[1]:.1f} | {times[2]:.1f} | {times[1] / times[2]:.2f} | {eff:.0%} |")


def bench_regression(ns, workdir: Path, keep: bool, in_memory_below: int = 8000):
    """MNIST-1D test accuracy of the NNGP mean against N, CG on the store above a size."""
    import dask
    from distributed import Client, LocalCluster

    arch = Architecture.from_dict(ARCH)
    n_max = max(ns)
    x_all, y_all, x_test, y_test = mnist1d(n_max, 1000)
    print(
        "| N | solver | iterations | residual | solve (s) | kernels (s) | peak RSS/worker (GB) "
        "| test accuracy |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    # The solve holds the kernel's block rows in the workers' memory (7.2 GB per worker at
    # N = 60,000 in float32): raise the limit and turn off Dask's spilling to disk for it.
    with (
        dask.config.set(
            {"distributed.worker.memory.target": False, "distributed.worker.memory.spill": False}
        ),
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            memory_limit="10GiB",
        ) as cluster,
    ):
        address = cluster.scheduler_address
        for n in ns:
            x, y = x_all[:n], y_all[:n]
            targets = np.eye(10)[y] - 0.1  # one-hot, centred (Lee et al. 2018)
            t0 = time.perf_counter()
            if n < in_memory_below:
                k = arch.kernel(x).nngp
                k_cross = arch.kernel(x_test, x).nngp
                t_kernel = time.perf_counter() - t0
                t0 = time.perf_counter()
                alpha, info = scale.solve(k, targets, 1e-4, rank=min(n, 1000))
                mean = k_cross @ alpha
                solver = "CG (in memory)"
            else:
                train, cross = workdir / f"R{n}.zarr", workdir / f"C{n}.zarr"
                scale.chunked_kernel(arch, x, out=train, dtype=np.float32, scheduler=address)
                scale.chunked_kernel(
                    arch, x_test, x, out=cross, dtype=np.float32, scheduler=address
                )
                t_kernel = time.perf_counter() - t0
                t0 = time.perf_counter()
                alpha, info = scale.solve(
                    train, targets, 1e-4, rank=1000, tol=1e-4, scheduler=address, hold=True
                )
                mean = scale.cross_multiply(cross, alpha, scheduler=address)
                solver = "CG (Zarr, Dask)"
                if not keep:
                    shutil.rmtree(train)
                    shutil.rmtree(cross)
            t_solve = time.perf_counter() - t0
            accuracy = float(np.mean(np.argmax(mean, axis=1) == y_test))
            with Client(address) as client:
                rss = peak_worker_rss(client)
            print(
                f"| {n} | {solver} | {info.iterations} | {info.residual.max():.1e} | "
                f"{t_solve:.1f} | {t_kernel:.1f} | {rss:.2f} | {accuracy:.3f} |",
                flush=True,
            )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["kernel", "workers", "regression"])
    parser.add_argument("--n", type=int, nargs="+", default=[20000])
    parser.add_argument("--dir", default=None)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    workdir = Path(args.dir or tempfile.mkdtemp(prefix="wideinf-bench-", dir="/work"))
    workdir.mkdir(parents=True, exist_ok=True)
    if args.what == "kernel":
        bench_kernel(args.n, workdir, args.keep)
    elif args.what == "workers":
        bench_workers(args.n[0], workdir)
    else:
        bench_regression(args.n, workdir, args.keep)
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
