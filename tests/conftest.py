"""Shared test helpers."""

import os

# One BLAS thread per test process: the suite runs many small products, where a second
# thread costs more in synchronisation than it saves (and spins badly on a loaded machine).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
