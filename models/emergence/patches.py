"""Tracked Postel patches on a full-disk HMI magnetogram, all of one frame in one resampling.

The seed (Dhuri, Hanasoge, Birch & Schunker 2020, on the SDO/HEAR survey of Schunker et al.
2016) worked on 85x85 patches at 1.4 Mm/px (about 10 x 10 deg) in Postel (azimuthal
equidistant) projection, tracked at the Carrington rate. Here every patch is centred on a
point of a fixed **Carrington grid**, so a patch is the same piece of Sun in every frame and is
named by that grid point (:func:`patch_id`); which grid points are used in a frame depends on
where they are on the disk (central-meridian distance and latitude limits).

Geometry, exact and closed form (no full-disk reprojection):

1. patch pixel -> heliographic (Carrington) latitude/longitude: inverse Postel projection
   about the patch centre (north up, +x towards increasing longitude, i.e. west);
2. -> heliocentric Cartesian for an observer at distance ``DSUN_OBS`` and latitude
   ``CRLT_OBS`` (B0), with the longitude measured from the observer's Carrington longitude
   ``CRLN_OBS`` (Thompson 2006, A&A 449, 791, eq. 11);
3. -> the gnomonic (``HPLN-TAN``) intermediate world coordinates of the line of sight from
   the observer, rotated to the reference point (``CRVAL1/2``);
4. -> detector pixel through ``CDELT`` and the ``CROTA2`` rotation (FITS convention, 1-based
   ``CRPIX``).

The chain agrees with sunpy's coordinate frames (``HeliographicCarrington`` ->
``Helioprojective`` -> ``HMIMap.world_to_pixel``) to better than 1e-3 px
(``tests/models/test_emergence_patches.py``). The Carrington latitude and longitude of every
patch pixel are fixed over time, so they are computed once per grid latitude and cached; per
frame only steps 2-4 are evaluated, for all patches in one vectorised pass, and the image is
sampled once with :func:`scipy.ndimage.map_coordinates`.

Resampling (documented choice): the image is first block-averaged by an integer factor (2 for
HMI's 0.5"/px, giving ~0.73 Mm/px at disk centre: flux-conserving, no interpolation), then
sampled bilinearly at each 1.4 Mm patch pixel; ``supersample=s`` averages s x s bilinear
samples per patch pixel, which tends to the exact area average of the footprint. Bilinear
from the 2x-binned image weighs roughly the 4x4 native pixels that a 1.4 Mm pixel covers at
disk centre; towards the limb the footprint is foreshortened and the weight follows it.

Field: the seed used the line-of-sight field as observed (``field="los"``, default);
``field="radial"`` divides by mu (the radial-field approximation), which the caller may want
for patches far from disk centre. Every patch carries its per-pixel mu either way.

A patch is skipped, with the reason recorded, when its centre is behind the limb, any of its
pixels is beyond ``min_mu`` (it reaches the limb), or fewer than ``min_valid`` of its pixels have
finite data (missing data, the NaN off the disk).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from heliowatch.models import measures
from heliowatch.models.core.errors import UsageError
from heliowatch.models.core.times import tai_to_utc

__all__ = [
    "MM_PER_PX",
    "PATCH_SIZE",
    "DiskWCS",
    "PatchGrid",
    "PatchSet",
    "extract_patches",
    "parse_patch_id",
    "patch_id",
    "pixel_coordinates",
    "postel_offsets",
]

#: The seed's plate scale (Mm per patch pixel) and patch side (pixels): 85 x 1.4 Mm ~ 9.8 deg.
MM_PER_PX = 1.4
PATCH_SIZE = 85
_ARCSEC = math.pi / 180 / 3600


def patch_id(lat_deg: float, carrington_lon_deg: float) -> str:
    """The stable name of a Carrington grid point, e.g. ``C123.0N05.0`` or ``C005.0S40.0``."""
    lon = carrington_lon_deg % 360.0
    if round(lon, 1) >= 360.0:
        lon = 0.0
    return f"C{lon:05.1f}{'N' if lat_deg >= 0 else 'S'}{abs(lat_deg):04.1f}"


def parse_patch_id(pid: str) -> tuple[float, float]:
    """``(lat_deg, carrington_lon_deg)`` of a :func:`patch_id` string.

    Raises
    ------
    ValueError
        If ``pid`` is not of the form ``C<lon>N<lat>`` or ``C<lon>S<lat>``.
    """
    s = pid.strip()
    hemi = "N" if "N" in s else "S"
    if not s.startswith("C") or hemi not in s:
        msg = f"not a patch id: {pid!r} (expected e.g. C123.0N05.0)"
        raise ValueError(msg)
    lon_s, lat_s = s[1:].split(hemi, 1)
    try:
        lon, lat = float(lon_s), float(lat_s)
    except ValueError:
        msg = f"not a patch id: {pid!r} (expected e.g. C123.0N05.0)"
        raise ValueError(msg) from None
    return (lat if hemi == "N" else -lat), lon


def _float(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


@dataclass(frozen=True)
class DiskWCS:
    """The header values a full-disk helioprojective frame needs for the projection.

    Attributes
    ----------
    cdelt1, cdelt2 : float
        Plate scale, arcsec/px (HMI: 0.504 at 4096 px).
    crpix1, crpix2 : float
        Reference pixel, 1-based (FITS).
    dsun_obs : float
        Observer-Sun distance, m.
    crlt_obs : float
        Heliographic latitude of the observer (B0), deg.
    crln_obs : float
        Carrington longitude of the observer, deg: a point's longitude from the observer's
        meridian is ``carrington_lon - crln_obs``.
    crota2 : float
        Angle of solar north from the array's +y axis, deg (~180 for raw HMI frames). The
        image is used as stored: no flip is needed.
    crval1, crval2 : float
        Helioprojective coordinates of the reference pixel, arcsec (0 for HMI).
    hgln_obs : float
        Stonyhurst longitude of the observer, deg (0 for an Earth-like observer; only the
        reported Stonyhurst longitudes use it).
    rsun_ref : float
        Photospheric radius, m.
    t_rec_utc : str
        Time of the frame, UTC ISO 8601.
    """

    cdelt1: float
    crpix1: float
    crpix2: float
    dsun_obs: float
    crlt_obs: float
    crln_obs: float
    crota2: float = 0.0
    cdelt2: float | None = None
    crval1: float = 0.0
    crval2: float = 0.0
    hgln_obs: float = 0.0
    rsun_ref: float = measures.RSUN_REF_M
    t_rec_utc: str = ""

    @classmethod
    def from_header(cls, header: Mapping[str, Any] | Any, *, name: str = "frame") -> DiskWCS:
        """Read the values from a FITS header, a mapping, or an :class:`~heliowatch.models.core.image.Image`.

        ``T_REC`` (JSOC TAI) is converted to UTC; ``DATE-OBS`` is the fallback.

        Raises
        ------
        UsageError
            If a needed keyword (CDELT1, CRPIX1/2, DSUN_OBS, CRLT_OBS, CRLN_OBS) is missing or
            not a number, or the frame is not helioprojective.
        """
        get = header.keyword if hasattr(header, "keyword") else (lambda k, d=None: header.get(k, d))
        ctype = str(get("CTYPE1", "HPLN-TAN") or "HPLN-TAN")
        if not ctype.startswith("HPLN"):
            msg = f"{name}: not a helioprojective full-disk frame (CTYPE1={ctype!r}; expected HPLN-TAN)"
            raise UsageError(msg)
        vals: dict[str, float] = {}
        for key in ("CDELT1", "CRPIX1", "CRPIX2", "DSUN_OBS", "CRLT_OBS", "CRLN_OBS"):
            vals[key] = _float(get(key))
            if not math.isfinite(vals[key]):
                msg = f"{name}: keyword {key} is missing or not a number (needed for the patch projection)"
                raise UsageError(msg)
        if vals["CDELT1"] <= 0 or vals["DSUN_OBS"] <= 0:
            msg = f"{name}: CDELT1 and DSUN_OBS must be positive"
            raise UsageError(msg)
        optional = {k: _float(get(k, d)) for k, d in (("CROTA2", 0.0), ("CRVAL1", 0.0), ("CRVAL2", 0.0), ("HGLN_OBS", 0.0))}
        optional = {k: (v if math.isfinite(v) else 0.0) for k, v in optional.items()}
        cdelt2 = _float(get("CDELT2", vals["CDELT1"]))
        rsun = _float(get("RSUN_REF", measures.RSUN_REF_M))
        t = get("T_REC") or get("DATE-OBS") or ""
        try:
            t_utc = tai_to_utc(str(t)) if t else ""
        except ValueError:
            t_utc = ""
        return cls(
            cdelt1=vals["CDELT1"],
            cdelt2=cdelt2 if math.isfinite(cdelt2) and cdelt2 > 0 else None,
            crpix1=vals["CRPIX1"],
            crpix2=vals["CRPIX2"],
            dsun_obs=vals["DSUN_OBS"],
            crlt_obs=vals["CRLT_OBS"],
            crln_obs=vals["CRLN_OBS"] % 360.0,
            crota2=optional["CROTA2"],
            crval1=optional["CRVAL1"],
            crval2=optional["CRVAL2"],
            hgln_obs=optional["HGLN_OBS"],
            rsun_ref=rsun if math.isfinite(rsun) and rsun > 0 else measures.RSUN_REF_M,
            t_rec_utc=t_utc,
        )

    def binned(self, factor: int) -> DiskWCS:
        """The same frame block-averaged by ``factor`` (``measures.bin_mean``): CDELT x f, CRPIX moved."""
        if factor == 1:
            return self
        c2 = self.cdelt2 if self.cdelt2 is not None else self.cdelt1
        return DiskWCS(
            cdelt1=self.cdelt1 * factor,
            cdelt2=c2 * factor,
            crpix1=(self.crpix1 - 0.5) / factor + 0.5,
            crpix2=(self.crpix2 - 0.5) / factor + 0.5,
            dsun_obs=self.dsun_obs,
            crlt_obs=self.crlt_obs,
            crln_obs=self.crln_obs,
            crota2=self.crota2,
            crval1=self.crval1,
            crval2=self.crval2,
            hgln_obs=self.hgln_obs,
            rsun_ref=self.rsun_ref,
            t_rec_utc=self.t_rec_utc,
        )

    @property
    def mm_per_px_centre(self) -> float:
        """Plate scale at disk centre, Mm per image pixel."""
        return (self.dsun_obs - self.rsun_ref) * self.cdelt1 * _ARCSEC / 1e6


def postel_offsets(
    lat0_deg: float, size: int = PATCH_SIZE, mm_per_px: float = MM_PER_PX, rsun_m: float = measures.RSUN_REF_M
) -> tuple[np.ndarray, np.ndarray]:
    """Heliographic latitude and longitude offset of every pixel of a Postel patch centred at ``lat0_deg``.

    Row ``i`` runs northwards and column ``j`` westwards (increasing longitude); the centre
    pixel is ``((size - 1) / 2, (size - 1) / 2)``. A pixel at ``(dx, dy)`` Mm from the centre
    lies at great-circle distance ``rho = hypot(dx, dy) / R`` in the direction ``atan2(dx, dy)``
    from north (azimuthal equidistant: distances from the centre are true).

    Returns
    -------
    lat, dlon : ndarray (size, size), float64, degrees
        Latitude and the longitude offset from the centre's longitude.
    """
    c = (size - 1) / 2
    ax = (np.arange(size, dtype=np.float64) - c) * mm_per_px * 1e6 / rsun_m
    dx, dy = np.meshgrid(ax, ax)  # radians along the surface; dy[i, :] grows with i (north)
    rho = np.hypot(dx, dy)
    az = np.arctan2(dx, dy)
    p0 = math.radians(lat0_deg)
    sin_lat = math.sin(p0) * np.cos(rho) + math.cos(p0) * np.sin(rho) * np.cos(az)
    lat = np.arcsin(np.clip(sin_lat, -1, 1))
    dlon = np.arctan2(np.sin(az) * np.sin(rho), math.cos(p0) * np.cos(rho) - math.sin(p0) * np.sin(rho) * np.cos(az))
    return np.degrees(lat), np.degrees(dlon)


def pixel_coordinates(
    lat_deg: np.ndarray, carrington_lon_deg: np.ndarray, wcs: DiskWCS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact detector position of surface points given in Carrington coordinates.

    Parameters
    ----------
    lat_deg, carrington_lon_deg : ndarray
        Heliographic latitude and Carrington longitude on the sphere of radius ``RSUN_REF``.
    wcs : DiskWCS
        The frame's geometry.

    Returns
    -------
    row, col : ndarray (float64)
        0-based array coordinates in the stored image (``data[row, col]``); meaningless where
        ``mu <= 0``.
    mu : ndarray (float64)
        Cosine of the angle between the local normal and the direction to the observer;
        ``<= 0`` behind the limb.
    """
    lat = np.radians(lat_deg)
    dl = np.radians(np.asarray(carrington_lon_deg) - wcs.crln_obs)
    return _project(np.cos(lat), np.sin(lat), np.cos(dl), np.sin(dl), wcs)


def _project(
    cl: np.ndarray, sl: np.ndarray, cd: np.ndarray, sd: np.ndarray, wcs: DiskWCS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # Steps 2-4 of the module notes from cos/sin of latitude and of the longitude from the
    # observer's meridian.
    r, d = wcs.rsun_ref, wcs.dsun_obs
    b0 = math.radians(wcs.crlt_obs)
    # Heliocentric Cartesian (Thompson 2006, eq. 11): z towards the observer, y north in the sky.
    x = r * cl * sd
    y = r * (sl * math.cos(b0) - cl * cd * math.sin(b0))
    z = r * (sl * math.sin(b0) + cl * cd * math.cos(b0))
    w = d - z  # distance along the line of sight to the observer's plane
    dist = np.sqrt(x * x + y * y + w * w)
    mu = (z * d - r * r) / (r * dist)
    # Gnomonic (TAN) coordinates of the ray direction (x, y, w)/dist about the reference point
    # (CRVAL): rotate the reference direction onto the axis, then divide by the axial component.
    a0, d0 = wcs.crval1 * _ARCSEC, wcs.crval2 * _ARCSEC
    if a0 or d0:
        x1 = x * math.cos(a0) - w * math.sin(a0)
        w1 = x * math.sin(a0) + w * math.cos(a0)
        y2 = y * math.cos(d0) - w1 * math.sin(d0)
        w2 = y * math.sin(d0) + w1 * math.cos(d0)
        x, y, w = x1, y2, w2
    xi = np.degrees(x / w) * 3600.0  # arcsec
    eta = np.degrees(y / w) * 3600.0
    # FITS: world = CDELT * PC @ (p - CRPIX), PC the CROTA2 rotation (Calabretta & Greisen 2002, eq. 188).
    c1 = wcs.cdelt1
    c2 = wcs.cdelt2 if wcs.cdelt2 is not None else wcs.cdelt1
    rho = math.radians(wcs.crota2)
    m = np.array([[c1 * math.cos(rho), -c2 * math.sin(rho)], [c1 * math.sin(rho), c2 * math.cos(rho)]])
    inv = np.linalg.inv(m)
    col = inv[0, 0] * xi + inv[0, 1] * eta + wcs.crpix1 - 1.0
    row = inv[1, 0] * xi + inv[1, 1] * eta + wcs.crpix2 - 1.0
    return row, col, mu


@dataclass(frozen=True)
class PatchGrid:
    """The Carrington grid of patch centres and the rules for using a grid point in a frame.

    Attributes
    ----------
    spacing_deg : float
        Grid step in latitude and Carrington longitude. 5 deg (default) gives half-overlapping
        10-deg patches, so every point of the window is within ~3.5 deg of a patch centre;
        10 deg tiles the disk without overlap (4x fewer patches).
    max_lat_deg : float
        Largest |latitude| of a patch centre.
    max_cmd_deg : float
        Largest central-meridian distance (|Stonyhurst longitude|) of a patch centre.
    lon_origin_deg : float
        Carrington longitude of one grid column (the grid is ``lon_origin + k * spacing``).
    size, mm_per_px : int, float
        Patch side (pixels) and plate scale (Mm/px): 85 and 1.4 as the seed.
    min_valid : float
        Smallest fraction of pixels with finite data for a patch to be used.
    min_mu : float
        Every pixel must have at least this mu (a patch touching the limb is skipped).
    """

    spacing_deg: float = 5.0
    max_lat_deg: float = 40.0
    max_cmd_deg: float = 60.0
    lon_origin_deg: float = 0.0
    size: int = PATCH_SIZE
    mm_per_px: float = MM_PER_PX
    min_valid: float = 0.95
    min_mu: float = 0.1
    _cache: dict[float, tuple[np.ndarray, ...]] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.spacing_deg <= 0 or self.size < 8 or self.mm_per_px <= 0:
            got = f"spacing {self.spacing_deg}, size {self.size}, plate scale {self.mm_per_px}"
            msg = f"patch grid: spacing, size and plate scale must be positive (got {got})"
            raise UsageError(msg)
        if not 0 <= self.max_lat_deg < 90 or not 0 <= self.max_cmd_deg < 90:
            msg = f"patch grid: max_lat_deg and max_cmd_deg must be in [0, 90) (got {self.max_lat_deg}, {self.max_cmd_deg})"
            raise UsageError(msg)

    def offsets(self, lat0: float) -> tuple[np.ndarray, np.ndarray]:
        """Cached :func:`postel_offsets` of a grid latitude."""
        t = self._tables(lat0)
        return t[0], t[1]

    def _tables(self, lat0: float) -> tuple[np.ndarray, ...]:
        # lat, dlon (deg) and cos lat, sin lat, cos dlon, sin dlon of one grid latitude: fixed
        # over time (Carrington tracking), so a frame needs no trigonometry of its own.
        key = round(lat0, 6)
        if key not in self._cache:
            lat, dlon = postel_offsets(lat0, self.size, self.mm_per_px)
            la, dl = np.radians(lat), np.radians(dlon)
            self._cache[key] = (lat, dlon, np.cos(la), np.sin(la), np.cos(dl), np.sin(dl))
        return self._cache[key]

    def centres(self, crln_obs_deg: float) -> list[tuple[str, float, float, float]]:
        """Grid points inside the window for an observer at Carrington longitude ``crln_obs_deg``.

        Returns
        -------
        list of (patch_id, lat, carrington_lon, cmd)
            ``cmd`` is the longitude from the observer's meridian (Stonyhurst longitude minus
            the observer's), deg, in [-180, 180).
        """
        n_lat = math.floor(self.max_lat_deg / self.spacing_deg + 1e-9)
        lats = [k * self.spacing_deg for k in range(-n_lat, n_lat + 1)]
        n_lon = round(360.0 / self.spacing_deg)
        out = []
        for lat in lats:
            for k in range(n_lon):
                lon = (self.lon_origin_deg + k * self.spacing_deg) % 360.0
                cmd = (lon - crln_obs_deg + 180.0) % 360.0 - 180.0
                if abs(cmd) <= self.max_cmd_deg + 1e-9:
                    out.append((patch_id(lat, lon), lat, lon, cmd))
        out.sort(key=lambda r: (r[1], r[3]))
        return out


@dataclass
class PatchSet:
    """The patches of one frame.

    Attributes
    ----------
    t_rec_utc : str
        Time of the frame (UTC ISO 8601).
    ids : list of str
        Patch names (:func:`patch_id`), one per row of ``data``.
    lat, carrington_lon, hgs_lon : ndarray (N,)
        Centre of each patch: latitude, Carrington longitude (fixed over time) and Stonyhurst
        longitude in this frame (deg).
    data : ndarray (N, size, size), float32
        Field in Gauss (LOS, or LOS/mu if ``field == "radial"``), north up (row 0 south),
        west right; NaN where the image had no data.
    mu : ndarray (N, size, size), float32
        Per-pixel mu.
    valid_fraction : ndarray (N,)
        Fraction of finite pixels.
    skipped : dict
        ``{patch_id: reason}`` of the grid points in the window that were not used.
    field, mm_per_px : str, float
        What ``data`` holds and its plate scale.
    """

    t_rec_utc: str
    ids: list[str]
    lat: np.ndarray
    carrington_lon: np.ndarray
    hgs_lon: np.ndarray
    data: np.ndarray
    mu: np.ndarray
    valid_fraction: np.ndarray
    skipped: dict[str, str]
    field: str = "los"
    mm_per_px: float = MM_PER_PX

    def __len__(self) -> int:
        return len(self.ids)

    def index(self, pid: str) -> int:
        """Row of patch ``pid`` (ValueError if it is not in this frame)."""
        return self.ids.index(pid)


def _auto_bin(wcs: DiskWCS, mm_per_px: float) -> int:
    # The largest integer factor whose binned pixel stays at most about half a patch pixel at
    # disk centre: HMI 0.36 Mm/px -> 2 (0.73 Mm/px) for 1.4 Mm patches.
    return max(1, math.floor(mm_per_px / (2 * wcs.mm_per_px_centre) + 0.25))


def extract_patches(
    data: np.ndarray,
    wcs: DiskWCS,
    grid: PatchGrid | None = None,
    *,
    field: str = "los",
    bin_factor: int | None = None,
    order: int = 1,
    supersample: int = 1,
    only: list[str] | None = None,
) -> PatchSet:
    """Project every usable grid patch of one full-disk frame.

    Parameters
    ----------
    data : ndarray (ny, nx)
        The frame as stored (Gauss; NaN off the disk), any orientation: ``wcs`` says where
        north is. Pass the full-resolution image; it is block-averaged by ``bin_factor`` here.
    wcs : DiskWCS
        Its geometry (:meth:`DiskWCS.from_header`).
    grid : PatchGrid
        The grid and its rules (default: 5-deg grid, |lat| <= 40, |CMD| <= 60).
    field : {"los", "radial"}
        Line-of-sight field as observed (the seed's input) or LOS/mu.
    bin_factor : int or None
        Integer block-average before sampling; None picks 2 for 0.5"/px HMI (see module notes).
    order : int
        Spline order of the sampling (1: bilinear; 3: cubic, not flux-conserving).
    supersample : int
        Bilinear samples per patch pixel side, averaged (1: one sample at the pixel centre).
    only : list of str or None
        Restrict to these patch ids (others are neither projected nor reported).

    Returns
    -------
    PatchSet

    Raises
    ------
    UsageError
        For a bad ``field``, a non-2-D image or bad sampling parameters.
    """
    grid = grid or PatchGrid()
    if field not in ("los", "radial"):
        msg = f"field must be 'los' or 'radial' (got {field!r})"
        raise UsageError(msg)
    img = np.asarray(data)
    if img.ndim != 2:
        msg = f"expected a 2-D full-disk image, got shape {img.shape}"
        raise UsageError(msg)
    if supersample < 1 or order not in (0, 1, 3):
        msg = f"supersample must be >= 1 and order 0, 1 or 3 (got {supersample}, {order})"
        raise UsageError(msg)
    f = _auto_bin(wcs, grid.mm_per_px) if bin_factor is None else int(bin_factor)
    if f < 1:
        msg = f"bin_factor must be >= 1 (got {bin_factor})"
        raise UsageError(msg)
    if f > 1:
        # Plain block mean: a block touching the limb is NaN (off-disk NaN propagates), which is
        # what a patch crossing the limb should see; on-disk bad pixels are rare in HMI.
        img = measures.bin_mean(img.astype(np.float32, copy=False), f)
    else:
        img = img.astype(np.float32, copy=False)
    w = wcs.binned(f)
    centres = grid.centres(wcs.crln_obs)
    if only is not None:
        keep = set(only)
        centres = [c for c in centres if c[0] in keep]
    n, s = len(centres), grid.size
    skipped: dict[str, str] = {}
    if n == 0:
        return _empty(wcs, grid, field, skipped)
    cl, sl, cd, sd = (np.empty((n, s, s)) for _ in range(4))
    for i, (_, la, lo, _) in enumerate(centres):
        _, _, c_lat, s_lat, c_dl, s_dl = grid._tables(la)
        a = math.radians(lo - wcs.crln_obs)
        ca, sa = math.cos(a), math.sin(a)
        cl[i], sl[i] = c_lat, s_lat
        cd[i] = ca * c_dl - sa * s_dl  # cos(a + dlon)
        sd[i] = sa * c_dl + ca * s_dl  # sin(a + dlon)
    rows, cols, mu = _project(cl, sl, cd, sd, w)
    del cl, sl, cd, sd
    visible_centre = mu[:, s // 2, s // 2] > 0
    mu_min = mu.reshape(n, -1).min(axis=1)
    if supersample > 1:
        lat = np.stack([grid.offsets(c[1])[0] for c in centres])
        lon = np.stack([c[2] + grid.offsets(c[1])[1] for c in centres])
        vals = _supersampled(img, lat, lon, w, grid, supersample, order)
    else:
        ok = mu > 0
        vals = ndimage.map_coordinates(
            img,
            [np.where(ok, rows, -10.0).ravel(), np.where(ok, cols, -10.0).ravel()],
            order=order,
            mode="constant",
            cval=np.nan,
            prefilter=False,
        ).reshape(n, s, s)
        vals[~ok] = np.nan
    finite = np.isfinite(vals)
    valid = finite.reshape(n, -1).mean(axis=1)
    use = np.ones(n, bool)
    for i, (pid, *_rest) in enumerate(centres):
        if not visible_centre[i]:
            skipped[pid] = "centre behind the limb"
        elif mu_min[i] < grid.min_mu:
            skipped[pid] = f"reaches the limb (min mu {mu_min[i]:.3f} < {grid.min_mu:g})"
        elif valid[i] < grid.min_valid:
            skipped[pid] = f"too few valid pixels ({100 * valid[i]:.1f} % < {100 * grid.min_valid:.0f} %)"
        else:
            continue
        use[i] = False
    mu32 = mu[use].astype(np.float32)
    out = vals[use].astype(np.float32)
    if field == "radial":
        out = (out / np.maximum(mu32, 1e-3)).astype(np.float32)
    kept = [c for c, u in zip(centres, use, strict=True) if u]
    return PatchSet(
        t_rec_utc=wcs.t_rec_utc,
        ids=[c[0] for c in kept],
        lat=np.array([c[1] for c in kept], dtype=np.float64),
        carrington_lon=np.array([c[2] for c in kept], dtype=np.float64),
        hgs_lon=np.array([c[3] + wcs.hgln_obs for c in kept], dtype=np.float64),
        data=out,
        mu=mu32,
        valid_fraction=valid[use],
        skipped=skipped,
        field=field,
        mm_per_px=grid.mm_per_px,
    )


def _supersampled(
    img: np.ndarray, lat: np.ndarray, lon: np.ndarray, w: DiskWCS, grid: PatchGrid, s: int, order: int
) -> np.ndarray:
    # Sub-pixel offsets inside each patch pixel, as fractions of a pixel; the local Postel
    # scale is uniform to 0.1 % over a 10-deg patch, so the offsets are applied in degrees of
    # latitude and (cos lat-scaled) longitude around each pixel's own position.
    n, size, _ = lat.shape
    step = math.degrees(grid.mm_per_px * 1e6 / measures.RSUN_REF_M)
    acc = np.zeros((n, size, size))
    cnt = np.zeros((n, size, size))
    coslat = np.maximum(np.cos(np.radians(lat)), 1e-3)
    for a in range(s):
        for b in range(s):
            fy, fx = (a + 0.5) / s - 0.5, (b + 0.5) / s - 0.5
            r, c, m = pixel_coordinates(lat + fy * step, lon + fx * step / coslat, w)
            ok = m > 0
            v = ndimage.map_coordinates(
                img,
                [np.where(ok, r, -10.0).ravel(), np.where(ok, c, -10.0).ravel()],
                order=order,
                mode="constant",
                cval=np.nan,
                prefilter=False,
            ).reshape(n, size, size)
            v[~ok] = np.nan
            acc += np.nan_to_num(v)
            cnt += np.isfinite(v)
    with np.errstate(invalid="ignore"):
        return np.where(cnt == s * s, acc / np.maximum(cnt, 1), np.nan)


def _empty(wcs: DiskWCS, grid: PatchGrid, field: str, skipped: dict[str, str]) -> PatchSet:
    z = np.zeros(0)
    e = np.zeros((0, grid.size, grid.size), np.float32)
    return PatchSet(wcs.t_rec_utc, [], z, z.copy(), z.copy(), e, e.copy(), z.copy(), skipped, field, grid.mm_per_px)
