"""The infinite-width core: kernel state, quadrature and the one recursion over layers."""

from .core import Kernel, accuracy_warnings

__all__ = ["Kernel", "accuracy_warnings"]
