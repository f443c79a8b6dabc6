"""The emergence probability map: each patch's latest P(emergence within 24 h) over the magnetogram."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from heliowatch.models import measures
from heliowatch.models.core.figures import new_figure, png_bytes
from heliowatch.models.emergence.patches import DiskWCS, pixel_coordinates

__all__ = ["MapPatch", "emergence_map_png"]

_MAX_SIDE = 1024


@dataclass(frozen=True)
class MapPatch:
    """One patch on the map: its Carrington centre, probability, and whether it is above the threshold."""

    lat: float
    carrington_lon: float
    p: float
    above: bool


def emergence_map_png(
    image: np.ndarray, wcs: DiskWCS, patches: Sequence[MapPatch], *, title: str, threshold: float, half_size_deg: float = 5.0
) -> bytes:
    """The magnetogram (north up, +-500 G) with every scored patch drawn as its 10 x 10 deg outline.

    Outlines are coloured by probability (magma); patches above the warning threshold are drawn
    thick. Patches are placed with the same exact geometry the product cuts them with.

    Parameters
    ----------
    image : ndarray (ny, nx)
        The full-disk LOS field in Gauss, as stored (HMI's CROTA2 ~ 180 is undone for display).
    wcs : DiskWCS
        The frame's geometry.
    patches : sequence of MapPatch
    title : str
    threshold : float
        The warning threshold (shown in the colour bar).
    half_size_deg : float
        Half the patch side (5 deg for the seed's 85 x 1.4 Mm patches).
    """
    factor = max(1, int(np.ceil(max(image.shape) / _MAX_SIDE)))
    img = measures.bin_mean(np.asarray(image, np.float64), factor) if factor > 1 else np.asarray(image, np.float64)
    # North up for display: a frame stored with CROTA2 ~ 180 (HMI) is turned by half a turn.
    flip = abs(((wcs.crota2 + 180.0) % 360.0) - 180.0) > 90.0
    ny, nx = img.shape
    fig = new_figure((7.2, 7.6), dpi=110)
    ax = fig.add_axes((0.02, 0.08, 0.96, 0.86))
    shown = np.rot90(img, 2) if flip else img
    ax.imshow(np.nan_to_num(shown, nan=0.0), cmap="gray", vmin=-500, vmax=500, origin="lower", interpolation="nearest")
    cmap = _colormap()
    t = np.linspace(-half_size_deg, half_size_deg, 11)
    edge = np.concatenate(
        [
            np.column_stack([t, np.full_like(t, -half_size_deg)]),
            np.column_stack([np.full_like(t, half_size_deg), t]),
            np.column_stack([t[::-1], np.full_like(t, half_size_deg)]),
            np.column_stack([np.full_like(t, -half_size_deg), t[::-1]]),
        ]
    )
    for mp in sorted(patches, key=lambda m: m.p):
        lat = mp.lat + edge[:, 1]
        lon = mp.carrington_lon + edge[:, 0] / max(np.cos(np.radians(mp.lat)), 0.2)
        row, col, mu = pixel_coordinates(lat, lon, wcs)
        if np.any(mu <= 0):
            continue
        col, row = (col + 0.5) / factor - 0.5, (row + 0.5) / factor - 0.5
        if flip:
            col, row = nx - 1 - col, ny - 1 - row
        colour = cmap(float(np.clip(mp.p, 0, 1)))
        ax.plot(col, row, color=colour, lw=2.2 if mp.above else 0.8, alpha=0.95 if mp.above else 0.7)
    ax.set_xlim(-0.5, nx - 0.5)
    ax.set_ylim(-0.5, ny - 0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)
    cax = fig.add_axes((0.15, 0.04, 0.7, 0.02))
    grad = np.linspace(0, 1, 256)[None]
    cax.imshow(grad, aspect="auto", cmap=cmap, extent=(0, 1, 0, 1))
    cax.axvline(threshold, color="cyan", lw=1.5)
    cax.set_yticks([])
    cax.set_xlabel(f"P(emergence within 24 h); thick outline: at or above the warning threshold {threshold:.2f}", fontsize=8)
    cax.tick_params(labelsize=7)
    return png_bytes(fig)


def _colormap() -> Any:
    from matplotlib import colormaps  # noqa: PLC0415  (matplotlib: heavy, loaded only when drawing)

    return colormaps["magma"]
