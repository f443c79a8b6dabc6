"""Quicklook PNGs of full-disk magnetograms (north up, a colour bar in Gauss).

The region pipeline draws its boxes and classes on top of the same rendering.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from heliowatch.models.measures import bin_mean
from heliowatch.pipelines.ingest import load_frame

__all__ = ["north_up", "render_magnetogram"]


def north_up(data: np.ndarray, crota2: float) -> np.ndarray:
    """Rotate a frame so solar north is up (HMI stores CROTA2 ~ 180; exact multiples of 90 only)."""
    k = round((crota2 % 360) / 90) % 4
    return np.rot90(data, k=k) if k else data


def render_magnetogram(path: Path, out_png: Path, *, max_side: int = 1024, regions: Any = None, frame: Any = None) -> Path:
    """Render a magnetogram north up, binned by an integer factor to <= ``max_side``.

    With ``regions`` (and the preprocessed ``frame`` they were found on) each region is boxed
    and labelled with its id, Mt. Wilson class and confidence.
    """
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fits_frame = load_frame(path)
    d = north_up(fits_frame.data.astype(np.float32), float(fits_frame.keyword("CROTA2", 0.0) or 0.0))
    f = max(1, int(np.ceil(max(d.shape) / max_side)))
    if f > 1:
        d = bin_mean(d, f, ignore_nan=True)
    fig, ax = plt.subplots(figsize=(7, 6.4), dpi=100)
    im = ax.imshow(d, cmap="gray", vmin=-1000, vmax=1000, origin="lower", interpolation="nearest")
    title = f"{fits_frame.keyword('TELESCOP', 'SDO/HMI')} LOS magnetogram {fits_frame.keyword('T_REC', '')} (north up)"
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    if regions and frame is not None:
        from matplotlib.patches import Rectangle  # noqa: PLC0415

        scale = frame.factor / f  # processed-frame pixels -> rendered pixels
        for r in regions:
            sy, sx = r._slices
            x0, y0 = sx.start * scale, sy.start * scale
            w, h = (sx.stop - sx.start) * scale, (sy.stop - sy.start) * scale
            color = "tab:red" if "delta" in r.mtwilson else "tab:orange"
            ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), w, h, fill=False, ec=color, lw=1.4))
            ax.text(
                x0,
                y0 + h + 3,
                f"{r.id} {r.mtwilson} ({r.confidence:.2f})",
                color=color,
                fontsize=8,
                bbox={"facecolor": "black", "alpha": 0.5, "pad": 1, "edgecolor": "none"},
            )
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02, label="B_LOS (G)")
    out_png.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_png.with_name(out_png.name + ".tmp.png")
    fig.savefig(tmp, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(out_png)
    return out_png
