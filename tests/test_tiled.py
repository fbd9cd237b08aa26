"""The tiled, threaded kernel against the plain whole-matrix recursion (the same recursion)."""

import math

import numpy as np
import pytest

from wideinf import Architecture
from wideinf.activations import CLOSED_FORM
from wideinf.kernels.core import point_recursion, recursion
from wideinf.kernels.tiled import tiled_kernel

# Every closed form, with non-default parameters where it has them, and smooth ones (series).
ACTIVATIONS = [
    "relu",
    {"leaky_relu": {"alpha": 0.2}},
    "abs",
    "erf",
    "gelu",
    "gabor",
    {"sin": {"a": 1.3, "b": 0.7, "c": 0.4}},
    {"cos": {"b": 1.5}},
    "identity",
    "tanh",
    "softplus",
]


def _name(act):
    return act if isinstance(act, str) else next(iter(act))


def _arch(act, parameterization="ntk"):
    return Architecture.from_dict(
        {
            "layers": ["dense", act, {"dense": {"W_std": 1.2, "b_std": 0.3}}, act, "dense"],
            "W_std": 1.5,
            "b_std": 0.05,
            "parameterization": parameterization,
        }
    )


def _points(rng, n, d=3):
    x = rng.normal(size=(n, d))
    if n >= 6:
        x[3] = x[2]  # duplicate: correlation exactly 1 off the diagonal
        x[5] = -x[1]  # antipodal: correlation -1
    return x


def _assert_close(tiled, ref):
    # Results equal the reference to 1e-12 (relative to the largest entry).
    for name in ("nngp", "ntk"):
        a, b = getattr(tiled, name), getattr(ref, name)
        assert a.shape == b.shape and a.dtype == np.float64
        scale = max(1.0, float(np.abs(b).max()))
        assert np.abs(a - b).max() <= 1e-12 * scale, name


def test_every_closed_form_is_covered():
    assert {_name(a) for a in ACTIVATIONS} >= set(CLOSED_FORM)


@pytest.mark.parametrize("width", [math.inf, 50.0])
@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
@pytest.mark.parametrize("act", ACTIVATIONS, ids=_name)
def test_tiled_equals_reference(act, parameterization, width, rng):
    arch = _arch(act, parameterization)
    n1, n2 = 23, 17
    x1, x2 = _points(rng, n1), _points(rng, n2)
    steps = arch.kernel_steps(3, width)
    for tile in (4, 7):  # tiles that do not divide the sizes
        for other in (None, x2):
            tiled = tiled_kernel(x1, other, steps, parameterization, tile=tile)
            ref = recursion(x1, other, steps, parameterization)
            _assert_close(tiled, ref)
            np.testing.assert_array_equal(tiled.var1, ref.var1)
            np.testing.assert_array_equal(tiled.var2, ref.var2)
            assert tiled.symmetric == (other is None)
            if other is None:
                # The diagonal is the variance recursion's, to the last bit, and the kernel
                # is exactly symmetric.
                np.testing.assert_array_equal(np.diag(tiled.nngp), np.diag(ref.nngp))
                np.testing.assert_array_equal(np.diag(tiled.nngp), ref.var1)
                np.testing.assert_array_equal(np.diag(tiled.ntk), np.diag(ref.ntk))
                np.testing.assert_array_equal(tiled.nngp, tiled.nngp.T)
                np.testing.assert_array_equal(tiled.ntk, tiled.ntk.T)


@pytest.mark.parametrize("act", ["relu", "gabor", "tanh"])
def test_single_point(act, rng):
    arch = _arch(act)
    x = rng.normal(size=(1, 4))
    k, ref = arch.kernel(x), arch.kernel(x, method="reference")
    assert k.nngp.shape == (1, 1)
    np.testing.assert_array_equal(k.nngp, ref.nngp)
    np.testing.assert_array_equal(k.ntk, ref.ntk)
    cross = arch.kernel(x, rng.normal(size=(5, 4)))
    assert cross.nngp.shape == (1, 5)


def test_zero_variance_points_match_reference(rng):
    # x = 0 with no first-layer bias: a zero-variance row, where the ReLU angle is 0/0.
    arch = Architecture.from_dict(
        {
            "layers": [{"dense": {"b_std": 0.0}}, "relu", "dense", "relu", "dense"],
            "W_std": 1.4,
            "b_std": 0.1,
            "parameterization": "standard",
        }
    )
    x = rng.normal(size=(11, 2))
    x[4] = 0.0
    y = np.vstack([np.zeros((1, 2)), rng.normal(size=(3, 2))])
    for width in (math.inf, 30.0):
        for other in (None, y):
            k = arch.kernel(x, other, width=width)
            ref = arch.kernel(x, other, width=width, method="reference")
            _assert_close(k, ref)
            assert np.all(np.isfinite(k.ntk))


def test_thread_count_does_not_change_a_bit(rng):
    # Big enough to be shared among threads: the result does not depend on how many there are
    # (the tile size changes only the BLAS rounding of the Gram matrix).
    arch = _arch("gelu")
    x = rng.normal(size=(530, 5))
    steps = arch.kernel_steps(5)
    for tile in (64, 100):
        one = tiled_kernel(x, None, steps, tile=tile, workers=1)
        for workers in (2, 3):
            k = tiled_kernel(x, None, steps, tile=tile, workers=workers)
            np.testing.assert_array_equal(k.nngp, one.nngp)
            np.testing.assert_array_equal(k.ntk, one.ntk)
        _assert_close(one, recursion(x, None, steps))
    y = rng.normal(size=(470, 5))
    cross = tiled_kernel(x, y, steps, tile=64, workers=2)
    _assert_close(cross, recursion(x, y, steps))


def test_wide_inputs_take_the_whole_gram_matrix_at_once(rng):
    # d large: one BLAS product for the Gram matrix instead of one per tile; same numbers.
    arch = _arch("relu")
    x, y = rng.normal(size=(40, 3000)), rng.normal(size=(9, 3000))
    steps = arch.kernel_steps(3000)
    for other in (None, y):
        _assert_close(tiled_kernel(x, other, steps, tile=16), recursion(x, other, steps))


def test_architecture_uses_the_tiled_path_by_default(rng):
    arch = _arch("relu")
    x = rng.normal(size=(30, 3))
    k = arch.kernel(x)
    steps = arch.kernel_steps(3)
    np.testing.assert_array_equal(k.nngp, tiled_kernel(x, None, steps).nngp)
    _assert_close(k, arch.kernel(x, method="reference"))
    with pytest.raises(ValueError, match="method"):
        arch.kernel(x, method="fast")
    with pytest.raises(ValueError, match="float64"):
        arch.kernel(x, dtype=np.float32, method="reference")


def test_point_recursion_is_the_diagonal(rng):
    arch = _arch("erf", "standard")
    x = rng.normal(size=(8, 3))
    steps = arch.kernel_steps(3, 40.0)
    pts = point_recursion(x, steps, "standard")
    ref = recursion(x, None, steps, "standard")
    np.testing.assert_array_equal(pts.var, np.diag(ref.nngp))
    np.testing.assert_array_equal(pts.ntk, np.diag(ref.ntk))
    assert len(pts.pre_activation) == 2


# Documented float32 error (wideinf/kernels/tiled.py): relative to the largest entry, the NNGP
# within 1e-5 everywhere, the NTK within 1e-5 on well-separated points and within 2e-3 on
# nearly parallel ones.
@pytest.mark.parametrize("act", ["relu", "erf", "gelu", "gabor", "sin", "tanh"])
def test_float32_within_documented_error(act, rng):
    arch = _arch(act)
    x = rng.normal(size=(40 if act != "tanh" else 12, 16))
    k32, k64 = arch.kernel(x, dtype=np.float32), arch.kernel(x)
    for name in ("nngp", "ntk"):
        a, b = getattr(k32, name), getattr(k64, name)
        assert a.dtype == np.float32
        assert np.abs(a - b).max() <= 1e-5 * np.abs(b).max(), name
    assert k32.var1.dtype == np.float32
    # A dense 1-D grid: neighbours are nearly parallel after the first layer.
    grid = np.linspace(-3, 3, 301 if act != "tanh" else 41)[:, None]
    k32, k64 = arch.kernel(grid, dtype=np.float32), arch.kernel(grid)
    assert np.abs(k32.nngp - k64.nngp).max() <= 1e-5 * np.abs(k64.nngp).max()
    assert np.abs(k32.ntk - k64.ntk).max() <= 2e-3 * np.abs(k64.ntk).max()


def test_kernel_command_does_not_load_matplotlib(tmp_path):
    # `wideinf kernel` starts fast: the kernel path imports no plotting.
    import subprocess
    import sys

    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(50, 3)))
    (tmp_path / "arch.yaml").write_text("architecture:\n  layers: [dense, relu, dense]\n")
    code = (
        "import sys\n"
        "from wideinf.kernel_command import compute_and_save\n"
        f"compute_and_save({str(tmp_path / 'arch.yaml')!r}, {str(tmp_path / 'x.npy')!r}, None,"
        f" {str(tmp_path / 'k.npz')!r})\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('matplotlib', 'tqdm')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert (tmp_path / "k.npz").exists()
