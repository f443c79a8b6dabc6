"""Synthetic bipoles: two circular uniform-field disks, as the seed papers used to probe CNNs.

Dhuri et al. (2019, 2020) fed their flare and emergence CNNs images of two uniform disks of
opposite polarity, varying radius, field strength, separation and order, to learn which
properties drive the output (total unsigned flux dominated). This reproduces that input
exactly: the field is ``+B`` inside one disk and ``-B`` inside the other, zero elsewhere.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from astropy.io import fits

from heliowatch.models.measures import cea_pixel_area_cm2

__all__ = ["synth_bipole"]


def synth_bipole(
    *,
    radius_px: float,
    field_g: float,
    separation_px: float,
    order: str = "positive-leading",
    size: int = 128,
    angle_deg: float = 0.0,
    cdelt_deg: float = 0.03,
) -> tuple[np.ndarray, fits.Header, dict[str, Any]]:
    """Two uniform disks of opposite polarity.

    Parameters
    ----------
    radius_px : float
        Disk radius in pixels (> 0).
    field_g : float
        |B| inside the disks, Gauss (> 0).
    separation_px : float
        Distance between the disk centres, pixels (>= 2 * radius so they do not overlap).
    order : {"positive-leading", "negative-leading"}
        Which polarity is on the west (+x, leading) side.
    size : int
        Image side, pixels.
    angle_deg : float
        Rotation of the bipole axis from east-west, counter-clockwise.

    Raises
    ------
    ValueError
        For non-physical parameters, with the parameter named.
    """
    if radius_px <= 0:
        msg = f"radius must be > 0 (got {radius_px})"
        raise ValueError(msg)
    if field_g <= 0:
        msg = f"field strength must be > 0 (got {field_g})"
        raise ValueError(msg)
    if separation_px < 2 * radius_px:
        msg = f"separation {separation_px} < 2 x radius {radius_px}: the disks would overlap"
        raise ValueError(msg)
    if order not in ("positive-leading", "negative-leading"):
        msg = f"order must be 'positive-leading' or 'negative-leading' (got {order!r})"
        raise ValueError(msg)
    if size < 8 or separation_px / 2 + radius_px > size / 2:
        msg = f"image size {size} cannot hold the bipole (needs > {2 * (separation_px / 2 + radius_px):.0f} px)"
        raise ValueError(msg)
    c = (size - 1) / 2
    a = math.radians(angle_deg)
    half = separation_px / 2
    lead = (c + half * math.cos(a), c + half * math.sin(a))
    follow = (c - half * math.cos(a), c - half * math.sin(a))
    sign = 1 if order == "positive-leading" else -1
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    img = np.zeros((size, size), np.float32)
    for (x, y), s in ((lead, sign), (follow, -sign)):
        img[(xx - x) ** 2 + (yy - y) ** 2 <= radius_px**2] = s * field_g
    area = cea_pixel_area_cm2(cdelt_deg)
    h = fits.Header()
    h["CTYPE1"], h["CTYPE2"] = "CRLN-CEA", "CRLT-CEA"
    h["CUNIT1"], h["CUNIT2"] = "degree", "degree"
    h["CDELT1"] = h["CDELT2"] = cdelt_deg
    h["CRPIX1"] = h["CRPIX2"] = (size + 1) / 2
    h["CRVAL1"] = h["CRVAL2"] = 0.0
    h["BUNIT"] = "Gauss"
    h["DATE-OBS"] = "2014-01-01T00:00:00.000"
    h["TELESCOP"] = "heliowatch synthetic bipole"
    npos = int((img > 0).sum())
    truth = {
        "radius_px": radius_px,
        "field_g": field_g,
        "separation_px": separation_px,
        "order": order,
        "angle_deg": angle_deg,
        "size": size,
        "leading_px": list(lead),
        "following_px": list(follow),
        "usflux_mx": float(np.abs(img).sum() * area),
        "pixels_per_disk": npos,
        "generator": {"name": "heliowatch.synth.bipole"},
    }
    return img, h, truth
