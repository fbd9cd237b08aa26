"""wideinf: exact infinite-width NNGP and NTK kernels of MLPs, and the finite networks beside them.

>>> import numpy as np, wideinf
>>> arch = wideinf.Architecture.from_dict({"layers": ["dense", "relu", "dense"], "W_std": 1.5})
>>> arch.kernel(np.linspace(-1, 1, 5)[:, None]).ntk.shape
(5, 5)
"""

__version__ = "0.2.0"

__all__ = ["Architecture", "Kernel", "__version__"]


def __getattr__(name):
    # Lazy, so that `wideinf --help` does not import numpy or scipy.
    if name == "Architecture":
        from .architecture import Architecture

        return Architecture
    if name == "Kernel":
        from .kernels import Kernel

        return Kernel
    raise AttributeError(f"module 'wideinf' has no attribute {name!r}")
