"""AIA 304 A frames made ready for the jet detectors: checked, calibrated, pooled, north up.

The one module that imports aiapy (an import-linter contract keeps it so): the 0.10 / 0.12 API
differences (stack-notes A7.4) stay here. A level-1 frame becomes a "level 1.5-like" pooled
frame at 1.8"/px in DN/s:

1. **checks** (:func:`check_304`): 304 A, a positive exposure, a 2-D image of a usable size,
   DN units (or, for the command line only, the ``rendered`` levels of a movie), not all NaN.
   Anything else is :class:`~heliowatch.pipelines.errors.DataRejected` with a one-line reason
   and a bounded reason code, so one bad frame is counted and the stream goes on;
2. **pointing**: ``aiapy.calibrate.update_pointing`` from the master pointing table for a
   full-resolution frame (aiapy refuses anything else); without a table the header's pointing
   is used and the frame is flagged ``degraded`` (positions may be off by an arcsec or two);
3. **pooling**: a block mean (3x3 for 0.6"/px; 2x2 for the 0.9"/px Solar Jet Hunter movies)
   *before* anything that touches every pixel, so the rest costs a ninth;
4. **exposure and degradation**: one scalar per frame, ``1 / (EXPTIME x degradation)``, the
   degradation factor from aiapy's correction table where there is one (the detectors
   normalise per tile and per noise level, so a missing table changes no detection: it is
   noted, not flagged);
5. **registration** to north up: AIA's roll (CROTA2) is a few hundredths of a degree, under
   half a pooled pixel at the limb, so the exact geometry is carried instead of resampling;
   a larger roll is undone on the pooled image (order-1 interpolation about the disk
   centre), or at full resolution by ``aiapy.calibrate.register`` with ``register="aiapy"``.

Tables (:class:`CalibrationTables`) are read from a local directory and refreshed from the
network at most daily; a refresh that fails keeps the previous tables and says why.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import astropy.units as u
import numpy as np
import structlog
from astropy.table import QTable
from astropy.time import Time
from scipy import ndimage

from heliowatch.models.core.times import unix_from_iso
from heliowatch.models.jets.frames import PooledFrame, rsun_arcsec_for
from heliowatch.models.measures import RSUN_REF_M, bin_mean
from heliowatch.pipelines.errors import DataRejected
from heliowatch.pipelines.fitsio import FitsFrame

__all__ = [
    "FULL_FRAME",
    "TARGET_ARCSEC_PER_PX",
    "Calibrated",
    "CalibrationTables",
    "calibrate",
    "check_304",
    "pool_factor",
]

log = structlog.get_logger(__name__)

#: The pooled plate scale the detectors work at (0.6"/px pooled 3x3).
TARGET_ARCSEC_PER_PX = 1.8
#: AIA's full frame, the only size aiapy's pointing update accepts.
FULL_FRAME = (4096, 4096)
#: Smallest side accepted (a 120" movie at 0.9"/px is 133 px; below ~60 pooled px no jet fits).
MIN_SIDE_PX = 64
#: A roll below this leaves every pixel within a quarter pooled pixel of its place at 1.2 R_sun.
_ROLL_TOLERANCE_DEG = 0.02
_DN_UNITS = {"dn", "dn/s", "dn s-1", "dn/sec", "dn/pix", "dn/px", "counts", "dn / s", "dn/(s)", ""}
_RENDERED = "rendered"

Registration = Literal["pooled", "aiapy"]


@dataclass
class Calibrated:
    """A calibrated, pooled frame and what was (and was not) done to it.

    Attributes
    ----------
    frame : PooledFrame
        North up, DN/s (or the movie's levels for a rendered frame), ~1.8"/px.
    degraded : list of str
        Why positions or values may be less accurate than a full calibration would give
        (empty when nothing was missing).
    notes : dict
        ``pointing``, ``degradation``, ``registration``, ``units``: what each step did.
    seconds : dict
        Time per step (``calibrate``, ``pool``), for the benchmark and the metrics.
    """

    frame: PooledFrame
    degraded: list[str] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def _num(frame: FitsFrame, key: str) -> float | None:
    v = frame.keyword(key)
    if isinstance(v, bool) or v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def check_304(frame: FitsFrame, *, allow_rendered: bool = False, wavelength: int = 304) -> str:
    """Refuse a frame the jet product cannot use; return its units (``dn`` or ``rendered``).

    Parameters
    ----------
    frame : FitsFrame
        A verified FITS frame (from :func:`heliowatch.pipelines.fitsio.read_fits`).
    allow_rendered : bool
        Accept the 0..255 levels of a movie (``BUNIT = 'rendered'``), which have no exposure:
        the command line does, the daemon does not.
    wavelength : int
        The channel required (Angstrom).

    Raises
    ------
    DataRejected
        With reason ``wavelength``, ``exposure``, ``shape``, ``units``, ``all_nan`` or ``wcs``.
    """
    name = frame.path.name
    wl = _num(frame, "WAVELNTH")
    if wl is None or round(wl) != wavelength:
        msg = f"{name}: not a {wavelength} A frame (WAVELNTH = {frame.keyword('WAVELNTH')!r})"
        raise DataRejected(msg, reason="wavelength")
    data = frame.data
    if data.ndim != 2 or min(data.shape) < MIN_SIDE_PX or max(data.shape) > FULL_FRAME[0]:
        msg = f"{name}: image of shape {data.shape} is not a 2-D 304 frame of {MIN_SIDE_PX}..{FULL_FRAME[0]} px a side"
        raise DataRejected(msg, reason="shape")
    bunit = str(frame.keyword("BUNIT", "") or "").strip().lower()
    units = _RENDERED if bunit == _RENDERED else "dn"
    if bunit == _RENDERED and not allow_rendered:
        msg = f"{name}: rendered display levels (BUNIT = 'rendered'), not DN: the daemon needs calibrated frames"
        raise DataRejected(msg, reason="units")
    if bunit != _RENDERED and bunit not in _DN_UNITS:
        msg = f"{name}: BUNIT = {frame.keyword('BUNIT')!r} is not DN or DN/s"
        raise DataRejected(msg, reason="units")
    exptime = _num(frame, "EXPTIME")
    if units == "dn" and (exptime is None or exptime <= 0):
        msg = f"{name}: exposure time is {frame.keyword('EXPTIME')!r} (must be > 0 s)"
        raise DataRejected(msg, reason="exposure")
    for k in ("CDELT1", "CDELT2", "CRPIX1", "CRPIX2"):
        if _num(frame, k) is None:
            msg = f"{name}: no usable {k} (the frame has no helioprojective WCS)"
            raise DataRejected(msg, reason="wcs")
    c1, c2 = _num(frame, "CDELT1") or 0.0, _num(frame, "CDELT2") or 0.0
    if not (c1 > 0 and math.isclose(abs(c1), abs(c2), rel_tol=1e-2)):
        msg = f"{name}: pixels are not square and positive (CDELT1 {c1}, CDELT2 {c2})"
        raise DataRejected(msg, reason="wcs")
    if not np.isfinite(data).any():
        msg = f"{name}: every pixel is NaN"
        raise DataRejected(msg, reason="all_nan")
    return units


def pool_factor(arcsec_per_px: float) -> int:
    """Block size that brings a plate scale nearest to 1.8"/px (1 for frames already that coarse)."""
    return max(1, round(TARGET_ARCSEC_PER_PX / arcsec_per_px))


class CalibrationTables:
    """aiapy's master pointing table and degradation correction table, cached on disk.

    Parameters
    ----------
    directory : pathlib.Path or None
        Where ``pointing.ecsv`` and ``correction.ecsv`` live (None: no tables).
    """

    POINTING = "pointing.ecsv"
    CORRECTION = "correction.ecsv"

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory
        self.pointing: Any = None  # astropy QTable
        self.correction: Any = None
        self.problem: dict[str, str] = {}
        self._refreshed_at = -math.inf
        if directory is not None:
            self.load()

    def load(self) -> None:
        """Read the tables present in the directory (a missing or unreadable one is None, with the reason kept)."""

        for attr, fname in (("pointing", self.POINTING), ("correction", self.CORRECTION)):
            path = (self.directory or Path()) / fname
            if self.directory is None or not path.exists():
                self.problem[attr] = f"no {attr} table in {self.directory}"
                continue
            try:
                setattr(self, attr, QTable.read(path, format="ascii.ecsv"))
                self.problem.pop(attr, None)
            except (OSError, ValueError, KeyError) as e:
                self.problem[attr] = f"{path} unreadable: {str(e)[:120]}"
                log.warning("aia_table_unreadable", path=str(path), error=str(e)[:200])

    def refresh(self, t_unix: float, *, now_monotonic: float | None = None, every_s: float = 86400.0) -> bool:
        """Fetch fresh tables around ``t_unix`` from the JSOC (at most every ``every_s``).

        A failure (no network, the JSOC down) keeps whatever tables were loaded and records
        the reason; it never raises. Returns whether anything new was written.
        """
        now = time.monotonic() if now_monotonic is None else now_monotonic
        if self.directory is None or now - self._refreshed_at < every_s:
            return False
        self._refreshed_at = now
        from aiapy.calibrate.util import get_correction_table, get_pointing_table  # noqa: PLC0415  (aiapy and sunpy.map are heavy: loaded when a frame is calibrated)

        wrote = False
        self.directory.mkdir(parents=True, exist_ok=True)
        fetchers: list[tuple[str, str, Callable[[], Any]]] = [
            (
                "pointing",
                self.POINTING,
                lambda: get_pointing_table(
                    "jsoc", time_range=(Time(t_unix - 86400, format="unix"), Time(t_unix + 86400, format="unix"))
                ),
            ),
            ("correction", self.CORRECTION, lambda: get_correction_table("jsoc")),
        ]
        for attr, fname, fetch in fetchers:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    table = fetch()
                tmp = self.directory / (fname + ".part")
                table.write(tmp, format="ascii.ecsv", overwrite=True)
                tmp.replace(self.directory / fname)
                setattr(self, attr, table)
                self.problem.pop(attr, None)
                wrote = True
            except Exception as e:
                self.problem[attr] = (
                    f"{attr} table could not be fetched: {str(e).splitlines()[0][:120] if str(e) else type(e).__name__}"
                )
                log.warning("aia_table_fetch_failed", table=attr, error=str(e)[:200])
        return wrote


def _sunpy_map(data: np.ndarray, frame: FitsFrame) -> Any:
    import sunpy.map  # noqa: PLC0415  (aiapy and sunpy.map are heavy: loaded when a frame is calibrated)

    header = {k: v for k, v in frame.header.items() if k not in ("COMMENT", "HISTORY", "")}
    header.setdefault("WAVEUNIT", "angstrom")  # some exports drop it; sunpy needs it for the channel
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sunpy warns about missing observer keys on some cutouts
        return sunpy.map.Map(data, header)


def _degradation(t_unix: float, tables: CalibrationTables) -> float | None:
    if tables.correction is None:
        return None
    from aiapy.calibrate import degradation  # noqa: PLC0415  (aiapy and sunpy.map are heavy: loaded when a frame is calibrated)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            q = degradation(304 * u.angstrom, Time(t_unix, format="unix"), correction_table=tables.correction)
        d = float(np.ravel(q.to_value(u.dimensionless_unscaled))[0])
    except (ValueError, KeyError, IndexError) as e:
        tables.problem["correction"] = f"no degradation entry for the frame's time ({str(e)[:80]})"
        return None
    return d if math.isfinite(d) and d > 0 else None


def _pointing(frame: FitsFrame, tables: CalibrationTables) -> tuple[dict[str, float] | None, str]:
    """The pointing keywords from the master pointing table, or None and why not."""
    if frame.data.shape != FULL_FRAME:
        return None, "header (a cutout: the pointing table applies to full frames)"
    if tables.pointing is None:
        return None, tables.problem.get("pointing", "no pointing table")
    from aiapy.calibrate import update_pointing  # noqa: PLC0415  (aiapy and sunpy.map are heavy: loaded when a frame is calibrated)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = update_pointing(_sunpy_map(frame.data, frame), pointing_table=tables.pointing)
    except (IndexError, KeyError, ValueError) as e:
        return None, f"no pointing table entry for this frame ({str(e).splitlines()[0][:100]})"
    return {k.upper(): float(m.meta[k]) for k in ("crpix1", "crpix2", "cdelt1", "cdelt2", "crota2")}, "master pointing table"


def calibrate(
    frame: FitsFrame,
    *,
    tables: CalibrationTables | None = None,
    allow_rendered: bool = False,
    register: Registration = "pooled",
) -> Calibrated:
    """Check, calibrate and pool one AIA 304 frame (steps in the module docstring).

    Parameters
    ----------
    frame : FitsFrame
        A verified level-1 304 frame (full disk or a cutout; any plate scale).
    tables : CalibrationTables or None
        aiapy's tables (None: none; the frame is flagged where it matters).
    allow_rendered : bool
        Accept movie levels (``BUNIT = 'rendered'``): no exposure normalisation, flagged.
    register : {"pooled", "aiapy"}
        Where a roll is undone: on the pooled image (default) or by ``aiapy.calibrate.register``
        at full resolution (three times slower, for comparison).

    Returns
    -------
    Calibrated

    Raises
    ------
    DataRejected
        From :func:`check_304`, or for a frame without a usable time or observer.
    """
    t0 = time.perf_counter()
    tables = tables or CalibrationTables(None)
    units = check_304(frame, allow_rendered=allow_rendered)
    name = frame.path.name
    t_text = frame.keyword("T_OBS") or frame.keyword("DATE-OBS") or frame.keyword("T_REC")
    try:
        t_unix = unix_from_iso(str(t_text).replace("_TAI", "").replace("Z", ""))
    except ValueError:
        msg = f"{name}: no usable observation time (T_OBS / DATE-OBS = {t_text!r})"
        raise DataRejected(msg, reason="time") from None
    degraded: list[str] = []
    notes: dict[str, str] = {"units": "DN/s" if units == "dn" else "rendered levels (normalised per sequence)"}

    pointing, how = _pointing(frame, tables)
    wcs = {k: _num(frame, k) or 0.0 for k in ("CRPIX1", "CRPIX2", "CDELT1", "CDELT2", "CRVAL1", "CRVAL2", "CROTA2")}
    if pointing is not None:
        wcs.update(pointing)
        # aiapy's table gives the Sun's centre in CCD pixels: the reference value is disk centre.
        wcs["CRVAL1"] = wcs["CRVAL2"] = 0.0
    elif frame.data.shape == FULL_FRAME:
        degraded.append(f"pointing: {how}")
    notes["pointing"] = how

    data = frame.data
    if register == "aiapy" and abs(wcs["CROTA2"]) > _ROLL_TOLERANCE_DEG and units == "dn":
        from aiapy.calibrate import register as aia_register  # noqa: PLC0415  (aiapy and sunpy.map are heavy: loaded when a frame is calibrated)

        m = _sunpy_map(np.asarray(data, dtype=np.float32), frame)
        for key, v in wcs.items():
            m.meta[key.lower()] = v
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = aia_register(m, order=1, missing=np.nan)
        data = np.asarray(m.data, dtype=np.float32)
        wcs.update({key: float(m.meta[key.lower()]) for key in ("CRPIX1", "CRPIX2", "CDELT1", "CDELT2", "CRVAL1", "CRVAL2")})
        wcs["CROTA2"] = 0.0
        notes["registration"] = "aiapy.calibrate.register (full resolution, order 1)"
    t1 = time.perf_counter()

    k = pool_factor(abs(wcs["CDELT1"]))
    pooled = (
        bin_mean(np.asarray(data, dtype=np.float32), k, ignore_nan=not bool(np.isfinite(data).all()))
        if k > 1
        else np.array(data, dtype=np.float32)
    )
    pooled = pooled.astype(np.float32, copy=False)
    t2 = time.perf_counter()

    if units == "dn":
        scale = 1.0 / float(_num(frame, "EXPTIME") or 1.0)
        deg = _degradation(t_unix, tables)
        if deg is None:
            notes["degradation"] = f"not corrected ({tables.problem.get('correction', 'no correction table')})"
        else:
            scale /= deg
            notes["degradation"] = f"corrected (factor {deg:.3f})"
        pooled *= np.float32(scale)
    else:
        notes["degradation"] = "not applicable (rendered levels)"

    cdelt = abs(wcs["CDELT1"]) * k
    # The centre of pooled pixel j is raw pixel k*j + (k-1)/2 (0-based), i.e. k*j + (k+1)/2 in FITS.
    x0 = wcs["CRVAL1"] + ((k + 1) / 2 - wcs["CRPIX1"]) * abs(wcs["CDELT1"])
    y0 = wcs["CRVAL2"] + ((k + 1) / 2 - wcs["CRPIX2"]) * abs(wcs["CDELT2"])
    roll = wcs["CROTA2"]
    if abs(roll) > _ROLL_TOLERANCE_DEG:
        # Rotation about the reference pixel, where the world coordinate is CRVAL whatever the roll.
        ref = ((wcs["CRPIX1"] - (k + 1) / 2) / k, (wcs["CRPIX2"] - (k + 1) / 2) / k)
        pooled = _derotate(pooled, roll, ref)
        notes["registration"] = f"roll of {roll:.3f} deg undone on the pooled image (order 1)"
    else:
        notes.setdefault("registration", f"none needed (roll {roll:.3f} deg)")

    dsun = _num(frame, "DSUN_OBS") or 1.496e11
    if not 1.3e11 < dsun < 1.7e11:
        msg = f"{name}: DSUN_OBS = {dsun} m is not an SDO distance"
        raise DataRejected(msg, reason="wcs")
    rsun_ref = _num(frame, "RSUN_REF") or RSUN_REF_M
    rsun = _num(frame, "RSUN_OBS") or rsun_arcsec_for(dsun) * rsun_ref / RSUN_REF_M
    flags = ("rendered",) if units == _RENDERED else ()
    pf = PooledFrame(
        data=pooled,
        t_unix=t_unix,
        arcsec_per_px=cdelt,
        x0_arcsec=x0,
        y0_arcsec=y0,
        rsun_arcsec=rsun,
        b0_deg=_num(frame, "CRLT_OBS") or _num(frame, "HGLT_OBS") or 0.0,
        l0_deg=_num(frame, "CRLN_OBS") or 0.0,
        dsun_m=dsun,
        flags=flags,
    )
    t3 = time.perf_counter()
    return Calibrated(frame=pf, degraded=degraded, notes=notes, seconds={"calibrate": (t1 - t0) + (t3 - t2), "pool": t2 - t1})


def _derotate(img: np.ndarray, roll_deg: float, ref_px: tuple[float, float]) -> np.ndarray:
    """Rotate a pooled image north up about its reference pixel ``(x, y)``; the grid keeps its size."""
    a = math.radians(roll_deg)
    # FITS CROTA2: world offsets are pixel offsets rotated by +roll, so the north-up output pixel
    # at offset (u, v) samples the input at R(-roll) (u, v); the matrix acts on (row, column).
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    centre = np.array([ref_px[1], ref_px[0]])
    offset = centre - rot @ centre
    finite = np.isfinite(img)
    filled = np.where(finite, img, 0.0).astype(np.float32)
    out = ndimage.affine_transform(filled, rot, offset=offset, order=1, mode="constant", cval=np.nan, prefilter=False)
    cover = ndimage.affine_transform(
        finite.astype(np.float32), rot, offset=offset, order=1, mode="constant", cval=0.0, prefilter=False
    )
    return np.where(cover > 0.5, out / np.maximum(cover, 1e-6), np.nan).astype(np.float32)
