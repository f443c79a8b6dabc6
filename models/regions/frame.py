"""A full-disk LOS magnetogram prepared for region work: north up, binned, exact geometry.

Units and geometry are checked; the frame is rotated north up by an exact multiple of
90 deg (HMI stores CROTA2 ~ 180; the small remainder is kept in the geometry), binned by an
integer factor only (never resampled), and every pixel given its exact Stonyhurst position,
mu and surface area (:func:`heliowatch.models.measures.disk_geometry`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from heliowatch.models import measures
from heliowatch.models.core.errors import UsageError
from heliowatch.models.core.image import Image
from heliowatch.models.core.times import tai_to_utc

__all__ = ["Frame", "prepare_disk"]

_GAUSS_UNITS = {"gauss", "g", "mx/cm^2", "mx/cm2", "mx cm-2"}


@dataclass
class Frame:
    """A preprocessed full-disk frame: north up, binned, with per-pixel geometry."""

    data: np.ndarray
    geo: measures.DiskGeometry
    factor: int
    rot_k: int
    shape_file: tuple[int, int]
    t_rec_utc: str
    l0_deg: float
    path: str
    source: Any = None  # the image as read (file pixels, header): quicklooks and cutouts reuse it

    def to_file_bbox(self, y0: int, x0: int, y1: int, x1: int) -> list[int]:
        """A half-open box in this frame's grid -> ``[x0, y0, x1, y1]`` in the file's pixels."""
        f = self.factor
        ny, nx = self.shape_file
        fx0, fy0, fx1, fy1 = x0 * f, y0 * f, min(x1 * f, nx), min(y1 * f, ny)
        if self.rot_k == 2:
            fx0, fx1 = nx - fx1, nx - fx0
            fy0, fy1 = ny - fy1, ny - fy0
        return [int(fx0), int(fy0), int(fx1), int(fy1)]


def prepare_disk(image: Image, *, name: str = "frame", max_side: int = 1024) -> Frame:
    """Check and normalise a full-disk LOS magnetogram.

    Parameters
    ----------
    image : Image
        Pixels in Gauss and the header keywords (CTYPE1, BUNIT, CDELT1, CRPIX1/2, DSUN_OBS,
        CRLT_OBS, CRLN_OBS, CROTA2, T_REC).
    name : str
        How error messages name the input (its file name).
    max_side : int
        Bin by the smallest integer factor that brings the image to at most this side.

    Raises
    ------
    UsageError
        For an image that is not a full-disk magnetogram in Gauss or has no valid pixel.
    """
    kw = image.keyword
    if not str(kw("CTYPE1", "")).startswith("HPLN"):
        msg = f"{name}: not a full-disk frame (CTYPE1={kw('CTYPE1')!r}; expected HPLN-TAN)"
        raise UsageError(msg)
    unit = str(kw("BUNIT", "")).strip().lower()
    content = str(kw("CONTENT", "")).upper()
    if unit not in _GAUSS_UNITS:
        msg = f"{name}: BUNIT={kw('BUNIT')!r} is not a magnetic field unit (Gauss); not a magnetogram"
        raise UsageError(msg)
    if content and "MAGNETOGRAM" not in content:
        msg = f"{name}: CONTENT={content!r} is not a magnetogram"
        raise UsageError(msg)
    data = np.asarray(image.data).astype(np.float64)
    if data.ndim != 2:
        msg = f"{name}: expected a 2-D image, got shape {data.shape}"
        raise UsageError(msg)
    if not np.isfinite(data).any():
        msg = f"{name}: every pixel is NaN"
        raise UsageError(msg)
    values: dict[str, float] = {}
    for key in ("CDELT1", "CRPIX1", "CRPIX2", "DSUN_OBS", "CRLT_OBS"):
        v = kw(key)
        try:
            values[key] = float(v)
        except (TypeError, ValueError):
            values[key] = math.nan
        if not math.isfinite(values[key]):
            msg = f"{name}: keyword {key} is missing or not a number (needed for the disk geometry)"
            raise UsageError(msg)
    if values["CDELT1"] <= 0 or values["DSUN_OBS"] <= 0:
        msg = f"{name}: CDELT1 and DSUN_OBS must be positive"
        raise UsageError(msg)
    t_rec = kw("T_REC")
    try:
        t_rec_utc = tai_to_utc(str(t_rec)) if isinstance(t_rec, str) else ""
    except ValueError:
        t_rec_utc = ""
    if not t_rec_utc:
        msg = f"{name}: keyword T_REC is missing or not a time"
        raise UsageError(msg)
    try:
        crota = float(kw("CROTA2", 0.0) or 0.0)
    except (TypeError, ValueError):
        crota = math.nan
    if not math.isfinite(crota):
        msg = f"{name}: CROTA2 is not a number"
        raise UsageError(msg)
    k = round((crota % 360) / 90) % 4
    if k not in (0, 2):
        msg = f"{name}: CROTA2={crota:.1f} is not ~0 or ~180 deg"
        raise UsageError(msg)
    rest = crota - 90 * k
    ny, nx = data.shape
    crpix1, crpix2 = values["CRPIX1"], values["CRPIX2"]
    if k == 2:
        data = data[::-1, ::-1]
        crpix1, crpix2 = nx + 1 - crpix1, ny + 1 - crpix2
    f = max(1, math.ceil(max(data.shape) / max_side))
    if f > 1:
        data = measures.bin_mean(data, f, ignore_nan=True)
        crpix1, crpix2 = (crpix1 - 0.5) / f + 0.5, (crpix2 - 0.5) / f + 0.5
    geo = measures.disk_geometry(
        data.shape,
        cdelt_arcsec=values["CDELT1"] * f,
        crpix=(crpix1, crpix2),
        dsun_m=values["DSUN_OBS"],
        b0_deg=values["CRLT_OBS"],
        crota_deg=rest,
    )
    if not np.isfinite(geo.mu).any():
        # Every later measure is a median or a sum over the disk: with none there is nothing to detect.
        msg = f"{name}: no pixel of the image is on the solar disk (check CRPIX1/2, CDELT1 and DSUN_OBS)"
        raise UsageError(msg)
    try:
        l0 = float(kw("CRLN_OBS", 0.0) or 0.0)
    except (TypeError, ValueError):
        l0 = 0.0
    return Frame(
        data=np.where(np.isfinite(geo.mu), data, np.nan),
        geo=geo,
        factor=f,
        rot_k=k,
        shape_file=(ny, nx),
        t_rec_utc=t_rec_utc,
        l0_deg=l0 if math.isfinite(l0) else 0.0,
        path=name,
        source=image,
    )
