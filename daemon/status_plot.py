"""The status page's small plot: full-disk P(>=C), P(>=M), P(>=X) of the last 24 h of issues.

Drawn on a :func:`~heliowatch.models.core.figures.new_figure` (never pyplot: the HTTP server
answers from several threads) and cached on the history it was drawn from.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Sequence
from typing import Any

from heliowatch.models.core.figures import new_figure, png_bytes
from heliowatch.models.core.times import parse_iso

__all__ = ["FullDiskPlot", "full_disk_png"]

_LEVELS = (("p_c", "P(\u2265C)", "tab:orange"), ("p_m", "P(\u2265M)", "tab:red"), ("p_x", "P(\u2265X)", "tab:purple"))


def full_disk_png(history: Sequence[dict[str, Any]], *, end_utc: str) -> bytes:
    """PNG of the full-disk probabilities in ``history`` (``issue_time``, ``p_c``, ``p_m``, ``p_x``,
    ``degraded``; oldest first) over the 24 h before ``end_utc``; degraded issues drawn hollow.

    Raises
    ------
    ValueError
        If ``history`` is empty (the page shows no plot then).
    """
    if not history:
        msg = "no full-disk forecast in the last 24 h"
        raise ValueError(msg)
    end = parse_iso(end_utc).replace(tzinfo=None)
    t = [parse_iso(h["issue_time"]).replace(tzinfo=None) for h in history]
    fig = new_figure((5.6, 2.2), dpi=100)
    ax = fig.subplots()
    for key, label, color in _LEVELS:
        y = [h.get(key) for h in history]
        ax.plot(t, y, "-", color=color, lw=1.2, label=label)
        full = [(ti, yi) for ti, yi, h in zip(t, y, history, strict=True) if not h.get("degraded")]
        hollow = [(ti, yi) for ti, yi, h in zip(t, y, history, strict=True) if h.get("degraded")]
        if full:
            ax.plot(*zip(*full, strict=True), "o", color=color, ms=3.5)
        if hollow:
            ax.plot(*zip(*hollow, strict=True), "o", mfc="white", mec=color, ms=4)
    ax.set_xlim(end - dt.timedelta(hours=24), end)
    ax.set_ylim(0, 1)
    ax.set_ylabel("probability", fontsize=8)
    ax.set_xlabel(f"UTC, 24 h to {end_utc} (hollow: degraded)", fontsize=8)
    ax.tick_params(labelsize=7)
    # matplotlib is loaded by new_figure already; its date formatter keeps the axis in UTC hours.
    from matplotlib.dates import DateFormatter  # noqa: PLC0415  (matplotlib: heavy, loaded only when drawing)

    ax.xaxis.set_major_formatter(DateFormatter("%H:%M"))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", ncol=3, frameon=False)
    return png_bytes(fig, bbox_inches="tight")


class FullDiskPlot:
    """The plot of the newest history, redrawn only when the history changes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple[Any, ...] | None = None
        self._png = b""

    def png(self, history: Sequence[dict[str, Any]], *, end_utc: str) -> bytes:
        """The PNG of ``history`` (see :func:`full_disk_png`)."""
        # The window's end moves with the clock; redrawing each minute is enough for a 24 h axis.
        key = (tuple((h["issue_time"], h.get("p_c"), h.get("p_m"), h.get("p_x")) for h in history), end_utc[:16])
        with self._lock:
            if key != self._key:
                self._png = full_disk_png(history, end_utc=end_utc)
                self._key = key
            return self._png
