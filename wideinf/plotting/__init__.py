"""Figures from saved results: matplotlib only, no computation.

One module per experiment, ``wideinf.plotting.<module>``, with ``plot(result, config)``
returning ``{suffix: Figure}``. This package sets a deterministic, non-interactive backend.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

plt.rcParams["svg.hashsalt"] = "wideinf"  # stable SVG ids across runs

__all__ = ["figure_bytes", "plt", "CAPTION_FONTSIZE"]

CAPTION_FONTSIZE = 8


def figure_bytes(fig, fmt: str, dpi: int = 120) -> bytes:
    """Render a figure to PNG/SVG/PDF bytes with no date or timestamp in the file."""
    metadata = {"png": {"Software": None}, "svg": {"Date": None}, "pdf": {"CreationDate": None}}
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi, metadata=metadata.get(fmt), bbox_inches="tight")
    return buf.getvalue()
