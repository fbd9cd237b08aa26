"""The blog's network, shared as the default architecture of the experiments that redraw it."""

from ..config import ArchitectureConfig

__all__ = ["BLOG_ARCHITECTURE"]

# Dense(1.5, 0.05) -> Gabor -> Dense(1.5, 0.05) -> ReLU -> Dense(1.5, 0.05), NTK parameterization
# (the network of both figures of the blog post).
BLOG_ARCHITECTURE = ArchitectureConfig.from_raw(
    {
        "layers": ["dense", "gabor", "dense", "relu", "dense"],
        "W_std": 1.5,
        "b_std": 0.05,
        "parameterization": "ntk",
    }
)
