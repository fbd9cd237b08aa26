"""Time ``wideinf benchmark`` (shipped config), quick and full, in fresh processes.

Prints one Markdown table row per run: wall-clock and CPU seconds (user + system of the child
process and its BLAS threads), peak memory, and the load average before and after, since on a
shared machine the wall-clock time says more about the neighbours than about the code.

    python benchmarks/bench_benchmark.py            # quick, then full
    python benchmarks/bench_benchmark.py --quick    # quick only
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time


def _run(quick: bool) -> dict:
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "wideinf.cli", "benchmark", "--out", out, "--quiet"]
        cmd += ["--quick"] if quick else []
        load0 = os.getloadavg()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "mode": "quick" if quick else "full",
        "wall": wall,
        "cpu": cpu,
        "peak_mb": after.ru_maxrss / 1024,
        "load": f"{load0[0]:.1f} -> {os.getloadavg()[0]:.1f}",
    }


def main(argv) -> None:
    modes = [True] if "--quick" in argv else [True, False]
    blas = os.environ.get("OPENBLAS_NUM_THREADS", "unset")
    print(f"cores: {os.cpu_count()}, OPENBLAS_NUM_THREADS: {blas}")
    print("| mode | wall (s) | CPU (s) | peak (MB) | load average (1 min) |")
    print("|---|---:|---:|---:|---|")
    for quick in modes:
        r = _run(quick)
        print(
            f"| {r['mode']} | {r['wall']:.1f} | {r['cpu']:.1f} | {r['peak_mb']:.0f} | {r['load']} |"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
