"""The infinite-width core: kernel state, the one recursion over layers, and the smooth duals."""

from .core import Kernel

__all__ = ["Kernel"]
