"""Figures from saved results: matplotlib only, no computation.

One module per experiment, ``wideinf.plotting.<module>``, with ``plot(result, config)``
returning ``{suffix: Figure}``. This package sets a deterministic, non-interactive backend.
"""

from __future__ import annotations

import io
import textwrap

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from ..config import to_plain  # noqa: E402

plt.rcParams["svg.hashsalt"] = "wideinf"  # stable SVG ids across runs

__all__ = ["figure_bytes", "plt", "CAPTION_FONTSIZE", "architecture_text", "add_caption"]

CAPTION_FONTSIZE = 8


def figure_bytes(fig, fmt: str, dpi: int = 120) -> bytes:
    """Render a figure to PNG/SVG/PDF bytes with no date or timestamp in the file."""
    metadata = {"png": {"Software": None}, "svg": {"Date": None}, "pdf": {"CreationDate": None}}
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi, metadata=metadata.get(fmt), bbox_inches="tight")
    return buf.getvalue()


def add_caption(fig, text: str, *, x: float = 0.01, y: float = 0.0, width: int = 190, ha="left"):
    """The caption under a figure: ``text`` wrapped at ``width`` characters, top at ``(x, y)``."""
    fig.text(x, y, textwrap.fill(text, width), ha=ha, va="top", fontsize=CAPTION_FONTSIZE)


_LAYER_NAMES = {
    "dense": "Dense",
    "relu": "ReLU",
    "leaky_relu": "LeakyReLU",
    "gabor": "Gabor",
    "erf": "Erf",
    "gelu": "GeLU",
    "abs": "Abs",
}


def architecture_text(arch_cfg) -> str:
    """One line for a figure's title: ``Dense → Gabor → ..., W_std 1.5, ...``."""
    raw = to_plain(arch_cfg)
    names = []
    for layer in raw["layers"]:
        names.append(layer if isinstance(layer, str) else next(iter(layer)))
    chain = " → ".join(_LAYER_NAMES.get(n, n) for n in names)
    return (
        f"{chain}, W_std {raw['W_std']:g}, b_std {raw['b_std']:g}, "
        f"{raw['parameterization']} parameterization"
    )
