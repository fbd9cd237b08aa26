"""Predictions on a data set against brute-force numpy: inverses, matrix exponentials."""

import math

import numpy as np
import pytest
from scipy.linalg import expm

from wideinf.architecture import Architecture
from wideinf.infer import bytes_needed, infer, one_hot

ARCH = {"layers": ["dense", "gabor", "dense", "relu", "dense"], "W_std": 1.5, "b_std": 0.05}


def _data(rng, n=12, m=5, columns=None):
    x = rng.standard_normal((n, 3))
    xs = rng.standard_normal((m, 3))
    shape = (n,) if columns is None else (n, columns)
    return x, rng.standard_normal(shape), xs


def _blocks(arch, x, xs):
    k = arch.kernel(np.vstack([x, xs]), method="reference")
    n = x.shape[0]
    return {
        "K": k.nngp[:n, :n], "Ks": k.nngp[n:, :n], "Kss": k.nngp[n:, n:],
        "T": k.ntk[:n, :n], "Ts": k.ntk[n:, :n], "Tss": k.ntk[n:, n:],
    }  # fmt: skip


def _brute(b, y, kernel, t, lam):
    """Lee et al. 2019 Eq. 16 and the GP posterior with np.linalg.inv and scipy's expm."""
    n = y.shape[0]
    if kernel in ("nngp", "ntk-gp"):
        k, ks, kss = (
            (b["K"], b["Ks"], b["Kss"]) if kernel == "nngp" else (b["T"], b["Ts"], b["Tss"])
        )
        inv = np.linalg.inv(k + lam * np.eye(n))
        return ks @ inv @ y, np.diag(kss - ks @ inv @ ks.T), k @ inv @ y
    theta = b["T"] + lam * np.eye(n)
    inv = np.linalg.inv(theta)
    flow = np.eye(n) if math.isinf(t) else np.eye(n) - expm(-theta * t / n)
    a = b["Ts"] @ inv @ flow
    cov = b["Kss"] + a @ b["K"] @ a.T - (a @ b["Ks"].T + b["Ks"] @ a.T)
    return a @ y, np.diag(cov), b["T"] @ inv @ flow @ y


@pytest.mark.parametrize(
    "kernel, t", [("nngp", math.inf), ("ntk-gp", math.inf), ("ntk", math.inf), ("ntk", 3.0)]
)
@pytest.mark.parametrize("columns", [None, 3])
def test_infer_equals_brute_force(rng, kernel, t, columns):
    arch = Architecture.from_dict(ARCH)
    x, y, xs = _data(rng, columns=columns)
    b = _blocks(arch, x, xs)
    lam = 1e-3 * np.trace(b["K"] if kernel == "nngp" else b["T"]) / len(x)
    out = infer(arch, x, y, xs, kernel=kernel, time=t, diag_reg=1e-3)
    mean, var, train_mean = _brute(b, y, kernel, t, lam)
    np.testing.assert_allclose(out.mean, mean, atol=1e-10, rtol=0)
    np.testing.assert_allclose(out.sd**2, var, atol=1e-10, rtol=0)
    np.testing.assert_allclose(out.train_mean, train_mean, atol=1e-10, rtol=0)


def test_evidence_of_both_kernels_is_reported(rng):
    arch = Architecture.from_dict(ARCH)
    x, y, xs = _data(rng)
    out = infer(arch, x, y, xs, diag_reg=1e-2)
    assert set(out.log_marginal_likelihood) == {"nngp", "ntk-gp"}
    assert all(np.isfinite(v) for v in out.log_marginal_likelihood.values())


def test_t_zero_is_the_prior_and_float32_is_close(rng):
    arch = Architecture.from_dict(ARCH)
    x, y, xs = _data(rng)
    prior = infer(arch, x, y, xs, kernel="ntk", time=0.0)
    np.testing.assert_array_equal(prior.mean, 0.0)
    np.testing.assert_allclose(prior.sd**2, np.diag(_blocks(arch, x, xs)["Kss"]), rtol=1e-12)
    exact = infer(arch, x, y, xs, diag_reg=1e-2)
    single = infer(arch, x, y, xs, diag_reg=1e-2, dtype=np.float32)
    # float32 kernels (~1e-7 relative) through a solve with condition number ~1e2-1e3
    np.testing.assert_allclose(single.mean, exact.mean, atol=1e-3)


def test_one_hot_targets_and_memory_estimate():
    np.testing.assert_array_equal(
        one_hot(np.array(["b", "a", "b"]), np.array(["a", "b"])),
        [[-0.1, 0.9], [0.9, -0.1], [-0.1, 0.9]],
    )
    assert bytes_needed(1000, 10, "nngp", math.inf, False) > 5 * 1000**2 * 8
    assert bytes_needed(1000, 10, "nngp", math.inf, True) < bytes_needed(
        1000, 10, "nngp", math.inf, False
    )
