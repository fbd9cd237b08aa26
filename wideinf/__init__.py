"""wideinf: exact infinite-width NNGP and NTK kernels of MLPs, and the finite networks beside them.

>>> import numpy as np, wideinf
>>> arch = wideinf.Architecture.from_dict({"layers": ["dense", "relu", "dense"], "W_std": 1.5})
>>> arch.kernel(np.linspace(-1, 1, 5)[:, None]).ntk.shape
(5, 5)
"""

__version__ = "0.2.0"

__all__ = ["Architecture", "Kernel", "__version__"]


# Imported on first use, so that `wideinf --help` does not import numpy or scipy.
_LAZY = {"Architecture": ".architecture", "Kernel": ".kernels"}


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'wideinf' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(_LAZY[name], __name__), name)
