"""Figures drawn safely from any thread: ``matplotlib.figure.Figure`` with the Agg canvas, never pyplot.

pyplot keeps global state (the current figure, the backend) that job threads would share; a
:class:`~matplotlib.figure.Figure` made directly owns its canvas and nothing else.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

__all__ = ["new_figure", "png_bytes", "save_png"]


def new_figure(figsize: tuple[float, float], *, dpi: int = 100) -> Any:
    """A new Figure on its own Agg canvas."""
    # matplotlib is an optional heavy import: loaded only when something is drawn.
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415  (matplotlib: heavy, loaded only when drawing)
    from matplotlib.figure import Figure  # noqa: PLC0415  (matplotlib: heavy, loaded only when drawing)

    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def png_bytes(fig: Any, **kwargs: Any) -> bytes:
    """The figure as PNG bytes (``savefig`` keyword arguments pass through)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", **kwargs)
    return buf.getvalue()


def save_png(fig: Any, path: Path, **kwargs: Any) -> Path:
    """Write the figure as PNG atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(png_bytes(fig, **kwargs))
    tmp.replace(path)
    return path
