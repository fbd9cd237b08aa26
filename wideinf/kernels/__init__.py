"""The infinite-width core: kernel state, closed-form duals, quadrature and the recursion."""

from .core import Kernel, activation_kernel, dense_kernel, input_kernel

__all__ = ["Kernel", "input_kernel", "dense_kernel", "activation_kernel"]
