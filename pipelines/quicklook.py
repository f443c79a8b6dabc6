"""Quicklook PNGs of full-disk magnetograms (north up, a colour bar in Gauss).

The region product draws its boxes and classes on top of the same rendering. Drawn on a
``Figure`` with its own Agg canvas (never pyplot), so job threads can draw at once.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from heliowatch.models.core.figures import new_figure, png_bytes
from heliowatch.models.core.image import Image
from heliowatch.models.core.times import iso_utc, tai_to_utc, unix_from_iso
from heliowatch.models.measures import bin_mean

__all__ = ["greek", "north_up", "quicklook_png"]


def north_up(data: np.ndarray, crota2: float) -> np.ndarray:
    """Rotate a frame so solar north is up (HMI stores CROTA2 ~ 180; exact multiples of 90 only)."""
    k = round((crota2 % 360) / 90) % 4
    return np.rot90(data, k=k) if k else data


def quicklook_png(image: Image, *, max_side: int = 1024, regions: Any = None, frame: Any = None) -> bytes:
    """PNG of a magnetogram north up, binned by an integer factor to <= ``max_side``.

    With ``regions`` (and the preprocessed ``frame`` they were found on) each region is boxed
    (red when delta-class) and labelled with its id, NOAA number when matched, Mt. Wilson class
    in Greek with its probability, and the detection confidence. Labels are moved off one another.
    """
    fits_frame = image
    d = north_up(fits_frame.data.astype(np.float32), float(fits_frame.keyword("CROTA2", 0.0) or 0.0))
    f = max(1, int(np.ceil(max(d.shape) / max_side)))
    if f > 1:
        d = bin_mean(d, f, ignore_nan=True)
    fig = new_figure((7, 6.4), dpi=100)
    ax = fig.subplots()
    im = ax.imshow(d, cmap="gray", vmin=-1000, vmax=1000, origin="lower", interpolation="nearest")
    title = f"{fits_frame.keyword('TELESCOP', 'SDO/HMI')} LOS magnetogram {_t_rec_utc(fits_frame)} (north up)"
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    if regions and frame is not None:
        _annotate(fig, ax, regions, frame, f)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02, label="B_LOS (G)")
    return png_bytes(fig, bbox_inches="tight")


def _t_rec_utc(image: Image) -> str:
    """T_REC as the status page and the tables write it (UTC, ``YYYY-MM-DDTHH:MM:SSZ``), not JSOC's TAI string."""
    t = str(image.keyword("T_REC", "") or "")
    try:
        return iso_utc(round(unix_from_iso(tai_to_utc(t))))
    except ValueError:
        return t


_GREEK = {"alpha": "\u03b1", "beta": "\u03b2", "gamma": "\u03b3", "delta": "\u03b4"}


def greek(mtwilson: str) -> str:
    """``'beta-gamma-delta'`` -> the forecaster's shorthand."""
    return "".join(_GREEK.get(p, p) for p in mtwilson.split("-")) if mtwilson else "?"


def _annotate(fig: Any, ax: Any, regions: Any, frame: Any, f: int) -> None:
    """Boxes and labels of the regions (boxes from ``bbox_px``, north up); labels avoid boxes,
    each other and the image edge."""
    # matplotlib is an optional heavy import: loaded only when drawing.
    from matplotlib.patches import Rectangle  # noqa: PLC0415  (matplotlib: heavy, loaded only when drawing)

    ny, nx = frame.shape_file
    renderer = fig.canvas.get_renderer()
    boxes = []
    for r in sorted(regions, key=lambda r: -r.usflux_mx):
        x0, y0, x1, y1 = r.bbox_px
        if frame.rot_k == 2:  # file pixels -> north-up pixels
            x0, x1, y0, y1 = nx - x1, nx - x0, ny - y1, ny - y0
        color = "tab:red" if "delta" in r.mtwilson else "tab:orange"
        patch = ax.add_patch(Rectangle((x0 / f - 0.5, y0 / f - 0.5), (x1 - x0) / f, (y1 - y0) / f, fill=False, ec=color, lw=1.4))
        boxes.append((r, (x0 / f, y0 / f, x1 / f, y1 / f), color, patch))
    frame_ext = ax.get_window_extent(renderer)
    placed = [b[3].get_window_extent(renderer) for b in boxes]
    for r, (x0, y0, x1, y1), color, _patch in boxes:
        name = f"#{r.id}" + (f" AR {r.noaa_ar}" if getattr(r, "noaa_ar", None) else "")
        p = r.class_probs.get(r.mtwilson) if r.class_probs else None
        text = f"{name}  {greek(r.mtwilson)}" + (f" {p:.0%}" if p is not None else "") + f"  det {r.confidence:.2f}"
        t = ax.text(
            x0, y1 + 3, text, color=color, fontsize=7.5, bbox={"facecolor": "black", "alpha": 0.6, "pad": 1, "edgecolor": "none"}
        )
        best = None
        for dy in (y1 + 3, y0 - 14, y1 + 17, y0 - 28, y1 + 31, y0 - 42):
            for x, ha in ((x0, "left"), (x1, "right")):
                t.set_position((x, dy))
                t.set_horizontalalignment(ha)
                ext = t.get_window_extent(renderer).padded(3)  # room for the label's background
                inside = ext.x0 >= frame_ext.x0 and ext.x1 <= frame_ext.x1 and ext.y0 >= frame_ext.y0 and ext.y1 <= frame_ext.y1
                if inside and not any(ext.overlaps(o) for o in placed):
                    best = (x, dy, ha)
                    break
            if best:
                break
        x, dy, ha = best or (x0, y1 + 3, "left")
        t.set_position((x, dy))
        t.set_horizontalalignment(ha)
        placed.append(t.get_window_extent(renderer).padded(3))
