"""A pooled AIA 304 A frame with its helioprojective geometry, and the coordinate helpers jets need.

The jet detectors work on frames at 1.8"/px: a full-disk 4096x4096 AIA image at 0.6"/px pooled
3x3 (1365x1365), or a 500x500 cutout pooled to 166x166 as in Charlet et al. A
:class:`PooledFrame` is north up with the FITS lower-left origin (row 0 is the south edge), so
helioprojective x grows with the column and y with the row.

Coordinates are exact: a point of the sky is turned into a Stonyhurst position by intersecting
its line of sight from the observer at ``dsun_m`` with the sphere of radius ``RSUN_REF`` (the
same ray-sphere geometry as :func:`heliowatch.models.measures.disk_geometry`), then rotating
by B0. A point beyond the limb has no Stonyhurst position (NaN); it has a position angle
(:func:`limb_position_angle`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from heliowatch.models.core.errors import UsageError
from heliowatch.models.measures import RSUN_REF_M, bin_mean

__all__ = [
    "AU_M",
    "PooledFrame",
    "carrington_lon",
    "hgs_to_hpc",
    "hpc_to_hgs",
    "km_per_arcsec",
    "limb_position_angle",
    "pool3",
    "position_angle",
    "robust_normalise",
    "rsun_arcsec_for",
]

#: One astronomical unit, metres.
AU_M = 1.495978707e11
_ARCSEC = math.pi / 180 / 3600

#: The quiet-Sun level (DN/s per pooled pixel) :func:`robust_normalise` maps a sequence's median to:
#: the level of the synthetic generators, a 2011-2016 AIA 304 quiet Sun.
QUIET_SUN_DN_S = 50.0


def rsun_arcsec_for(dsun_m: float) -> float:
    """Apparent photospheric radius (arcsec) seen from ``dsun_m`` (FITS RSUN_OBS)."""
    return math.degrees(math.asin(RSUN_REF_M / dsun_m)) * 3600


def km_per_arcsec(dsun_m: float) -> float:
    """Plane-of-sky kilometres per arcsec at the Sun's distance (725 km at 1 AU)."""
    return (dsun_m - RSUN_REF_M) * _ARCSEC / 1000 if dsun_m > RSUN_REF_M else 725.0


@dataclass
class PooledFrame:
    """One AIA 304 A frame at a fixed plate scale, north up, FITS lower-left origin.

    Attributes
    ----------
    data : numpy.ndarray
        2-D float32 in DN/s (or a DN/s-like scale, see :func:`robust_normalise`); NaN where
        there is no data. Row 0 is the south edge.
    t_unix : float
        Observation time, Unix seconds (UTC).
    arcsec_per_px : float
        Plate scale (1.8 for 3x3-pooled AIA).
    x0_arcsec, y0_arcsec : float
        Helioprojective x and y of the centre of pixel ``[0, 0]``.
    rsun_arcsec : float
        Apparent solar radius.
    b0_deg, l0_deg : float
        Heliographic latitude of the observer and Carrington longitude of disk centre.
    dsun_m : float
        Observer - Sun centre distance.
    valid : bool
        False for a frame the caller knows to be unusable (kept so the cadence stays visible).
    flags : tuple of str
        Notes about the frame (``"short_exposure"``, ``"rendered"``, ...).
    """

    data: np.ndarray
    t_unix: float
    arcsec_per_px: float
    x0_arcsec: float
    y0_arcsec: float
    rsun_arcsec: float
    b0_deg: float = 0.0
    l0_deg: float = 0.0
    dsun_m: float = 1.496e11
    valid: bool = True
    flags: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.data.ndim != 2:
            msg = f"a PooledFrame holds a 2-D image (got shape {self.data.shape})"
            raise UsageError(msg)
        if not self.arcsec_per_px > 0:
            msg = f"arcsec_per_px must be > 0 (got {self.arcsec_per_px})"
            raise UsageError(msg)

    @property
    def shape(self) -> tuple[int, int]:
        """``(ny, nx)``."""
        return (int(self.data.shape[0]), int(self.data.shape[1]))

    @property
    def km_per_px(self) -> float:
        """Plane-of-sky kilometres per pixel at the Sun's distance."""
        return km_per_arcsec(self.dsun_m) * self.arcsec_per_px

    def pixel_to_hpc(self, x: np.ndarray | float, y: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """Pixel (column ``x``, row ``y``; 0-based centres) -> helioprojective (tx, ty) in arcsec."""
        tx = self.x0_arcsec + np.asarray(x, dtype=np.float64) * self.arcsec_per_px
        ty = self.y0_arcsec + np.asarray(y, dtype=np.float64) * self.arcsec_per_px
        return tx, ty

    def hpc_to_pixel(self, tx: np.ndarray | float, ty: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """Helioprojective (tx, ty) in arcsec -> pixel (x, y), 0-based, fractional."""
        x = (np.asarray(tx, dtype=np.float64) - self.x0_arcsec) / self.arcsec_per_px
        y = (np.asarray(ty, dtype=np.float64) - self.y0_arcsec) / self.arcsec_per_px
        return x, y

    def radius_map(self) -> np.ndarray:
        """Distance of every pixel from disk centre in units of the solar radius (sky plane)."""
        ny, nx = self.shape
        tx = self.x0_arcsec + np.arange(nx, dtype=np.float32) * np.float32(self.arcsec_per_px)
        ty = self.y0_arcsec + np.arange(ny, dtype=np.float32) * np.float32(self.arcsec_per_px)
        return np.hypot(tx[None, :], ty[:, None]) / np.float32(self.rsun_arcsec)


def position_angle(dx: np.ndarray | float, dy: np.ndarray | float) -> np.ndarray:
    """Position angle (deg) of a sky-plane vector: counter-clockwise from solar north, 0 = north, 90 = east.

    Solar east is to the left (helioprojective x decreasing) in a north-up image, so a vector
    ``(dx, dy)`` in arcsec (or pixels of a north-up frame) has PA ``atan2(-dx, dy)``.
    """
    return np.degrees(np.arctan2(-np.asarray(dx, dtype=np.float64), np.asarray(dy, dtype=np.float64))) % 360.0


def limb_position_angle(tx: np.ndarray | float, ty: np.ndarray | float) -> np.ndarray:
    """Position angle (deg, from north through east) of a helioprojective point about disk centre."""
    return position_angle(tx, ty)


def hpc_to_hgs(
    tx: np.ndarray | float, ty: np.ndarray | float, frame: PooledFrame
) -> tuple[np.ndarray | float, np.ndarray | float]:
    """Helioprojective (arcsec) -> Stonyhurst (lat, lon) in degrees; NaN for a point off the disk.

    Parameters
    ----------
    tx, ty : float or array
        Helioprojective longitude and latitude, arcsec.
    frame : PooledFrame
        Supplies the observer: ``dsun_m`` and ``b0_deg``.

    Returns
    -------
    (lat, lon)
        Floats for scalar input, arrays otherwise. A line of sight that misses the sphere of
        radius RSUN_REF (beyond the limb) gives NaN: such a point has no Stonyhurst position.
    """
    scalar = np.ndim(tx) == 0 and np.ndim(ty) == 0
    ax = np.asarray(tx, dtype=np.float64) * _ARCSEC
    ay = np.asarray(ty, dtype=np.float64) * _ARCSEC
    d = frame.dsun_m
    dx = np.cos(ay) * np.sin(ax)
    dy = np.sin(ay)
    dz = -np.cos(ay) * np.cos(ax)
    od = d * dz
    disc = od * od - (d * d - RSUN_REF_M * RSUN_REF_M)
    on = disc >= 0
    t = -od - np.sqrt(np.where(on, disc, 0.0))
    px, py, pz = t * dx, t * dy, d + t * dz
    b0 = math.radians(frame.b0_deg)
    lat = np.degrees(np.arcsin(np.clip((py * math.cos(b0) + pz * math.sin(b0)) / RSUN_REF_M, -1, 1)))
    lon = np.degrees(np.arctan2(px, pz * math.cos(b0) - py * math.sin(b0)))
    lat = np.where(on, lat, np.nan)
    lon = np.where(on, lon, np.nan)
    if scalar:
        return float(lat), float(lon)
    return lat, lon


def hgs_to_hpc(
    lat: np.ndarray | float, lon: np.ndarray | float, frame: PooledFrame
) -> tuple[np.ndarray | float, np.ndarray | float]:
    """Stonyhurst (lat, lon) in degrees -> helioprojective (tx, ty) in arcsec (the exact inverse of :func:`hpc_to_hgs`).

    A point on the far side is returned too (it projects behind the disk); callers that need
    visibility check ``hpc_to_hgs`` of the result.
    """
    scalar = np.ndim(lat) == 0 and np.ndim(lon) == 0
    la = np.radians(np.asarray(lat, dtype=np.float64))
    lo = np.radians(np.asarray(lon, dtype=np.float64))
    b0 = math.radians(frame.b0_deg)
    # Stonyhurst vector (x towards west limb, y north, z towards the observer's meridian plane).
    sx = RSUN_REF_M * np.cos(la) * np.sin(lo)
    sy0 = RSUN_REF_M * np.sin(la)
    sz0 = RSUN_REF_M * np.cos(la) * np.cos(lo)
    # Rotate by B0 about x into the observer frame (the inverse of the rotation in hpc_to_hgs).
    py = sy0 * math.cos(b0) - sz0 * math.sin(b0)
    pz = sy0 * math.sin(b0) + sz0 * math.cos(b0)
    vx, vy, vz = sx, py, pz - frame.dsun_m
    tx = np.degrees(np.arctan2(vx, -vz)) * 3600
    ty = np.degrees(np.arcsin(vy / np.sqrt(vx * vx + vy * vy + vz * vz))) * 3600
    if scalar:
        return float(tx), float(ty)
    return tx, ty


def carrington_lon(lon_hgs: np.ndarray | float, frame: PooledFrame) -> np.ndarray | float:
    """Carrington longitude (deg, 0..360) of a Stonyhurst longitude on ``frame`` (NaN stays NaN)."""
    out = (np.asarray(lon_hgs, dtype=np.float64) + frame.l0_deg) % 360.0
    return float(out) if np.ndim(lon_hgs) == 0 else out


def pool3(image: np.ndarray) -> np.ndarray:
    """3x3 block mean (0.6"/px AIA -> 1.8"/px), float32; blocks with no finite pixel are NaN.

    Rows and columns that do not fill a block are dropped (4096 -> 1365, 500 -> 166).
    """
    a = np.asarray(image, dtype=np.float32)
    if a.ndim != 2 or min(a.shape) < 3:
        msg = f"pool3 needs a 2-D image of at least 3x3 pixels (got shape {a.shape})"
        raise UsageError(msg)
    return bin_mean(a, 3, ignore_nan=not bool(np.isfinite(a).all())).astype(np.float32)


def robust_normalise(cube: np.ndarray, *, level: float = QUIET_SUN_DN_S, black_percentile: float = 0.5) -> np.ndarray:
    """Put an uncalibrated sequence (rendered 0..255 levels, byte-scaled JP2) on a DN/s-like scale.

    One affine map for the whole sequence (never per frame, which would erase real brightenings
    and exposure steps alike): the ``black_percentile`` of all finite pixels becomes 0 (the
    rendering's black level and any pedestal), and the median of what is above it becomes
    ``level`` (a quiet-Sun 304 A level, DN/s per pooled pixel). Nothing non-linear is undone:
    the display stretch of a rendering is not recorded, and a monotonic stretch keeps where and
    when brightenings happen, which is what the baseline measures (its thresholds are in units
    of the local noise of the difference images, so they do not depend on the absolute scale).

    Parameters
    ----------
    cube : numpy.ndarray
        ``(T, ny, nx)`` sequence.
    level : float
        The value the sequence's median maps to.
    black_percentile : float
        Percentile taken as zero.

    Returns
    -------
    numpy.ndarray
        float32, same shape; values below the black level clip to 0.
    """
    a = np.asarray(cube, dtype=np.float32)
    if a.ndim != 3 or a.shape[0] < 1:
        msg = f"robust_normalise needs a (T, ny, nx) sequence (got shape {a.shape})"
        raise UsageError(msg)
    fin = a[np.isfinite(a)]
    if fin.size == 0:
        msg = "robust_normalise: the sequence has no finite pixel"
        raise UsageError(msg)
    black = float(np.percentile(fin, black_percentile))
    above = fin[fin > black]
    med = float(np.median(above)) - black if above.size else 0.0
    scale = level / med if med > 0 else 1.0
    return (np.clip(a - black, 0, None) * np.float32(scale)).astype(np.float32)
