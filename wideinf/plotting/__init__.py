"""Figures from saved results: matplotlib only, no computation.

One module per experiment, ``wideinf.plotting.<module>``, with ``plot(result, config)``
returning ``{suffix: Figure}``. This package sets a deterministic, non-interactive backend.
"""

from __future__ import annotations

import io
import math
import textwrap

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from ..config import to_plain  # noqa: E402

plt.rcParams["svg.hashsalt"] = "wideinf"  # stable SVG ids across runs

__all__ = [
    "figure_bytes",
    "plt",
    "CAPTION_FONTSIZE",
    "architecture_text",
    "add_caption",
    "finish_axes",
    "viridis",
    "slope_label",
]

CAPTION_FONTSIZE = 8


def figure_bytes(fig, fmt: str) -> bytes:
    """Render a figure to PNG/SVG/PDF bytes at 120 dpi, with no date or timestamp in the file."""
    metadata = {"png": {"Software": None}, "svg": {"Date": None}, "pdf": {"CreationDate": None}}
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=120, metadata=metadata.get(fmt), bbox_inches="tight")
    return buf.getvalue()


def add_caption(fig, text: str, *, x: float = 0.01, y: float = 0.0, width: int = 190, ha="left"):
    """The caption under a figure: ``text`` wrapped at ``width`` characters, top at ``(x, y)``."""
    fig.text(x, y, textwrap.fill(text, width), ha=ha, va="top", fontsize=CAPTION_FONTSIZE)


def finish_axes(ax, *, title_size=None, grid=None, legend=None, **props):
    """Label a panel in one call, after its last labelled artist.

    ``props`` go to ``ax.set`` in order (``xscale`` before ``xlim``); ``title_size`` sets the
    title's font size; ``grid`` and ``legend`` are keyword mappings for ``ax.grid(True, ...)``
    and ``ax.legend``.
    """
    if title_size is not None:
        ax.set_title(props.pop("title"), fontsize=title_size)
    ax.set(**props)
    if grid is not None:
        ax.grid(True, **grid)
    if legend is not None:
        ax.legend(**legend)


def viridis(n: int, top: float = 0.9) -> list:
    """``n`` colours evenly spaced on viridis from 0 to ``top``."""
    cmap = plt.get_cmap("viridis")
    return [cmap(top * i / max(n - 1, 1)) for i in range(n)]


def slope_label(summary, key: str) -> str:
    """`` (slope -0.49 ± 0.05)`` from ``summary["slope_<key>"]`` and its sd, else ``""``."""
    slope, sd = summary.get(f"slope_{key}"), summary.get(f"slope_{key}_sd")
    if slope is None:
        return ""
    if sd is None or not math.isfinite(sd):
        return f" (slope {slope:+.2f})"
    return f" (slope {slope:+.2f} ± {sd:.2f})"


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
    names = [layer if isinstance(layer, str) else next(iter(layer)) for layer in raw["layers"]]
    chain = " → ".join(_LAYER_NAMES.get(n, n) for n in names)
    return (
        f"{chain}, W_std {raw['W_std']:g}, b_std {raw['b_std']:g}, "
        f"{raw['parameterization']} parameterization"
    )
