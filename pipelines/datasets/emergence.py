"""The emergence classifiers' real training set (SDO/HEAR-like), built from ``hmi.M_720s`` through the JSOC.

As Dhuri et al. (2020) built theirs on the HEAR survey: for every catalogued emerging region an
85x85 Postel patch at 1.4 Mm/px (about 10 x 10 deg) centred on the region and tracked at the
Carrington rate, averaged over 410-min windows centred 24.5, 19.2, 13.9, 8.5 and 3.2 h before the
emergence time (pre-emergence, PE, label 1); for every region one control (non-emergence, NE,
label 0): the same patch (same latitude and Carrington longitude, hence the same Stonyhurst position
to within about a degree, the wobble of L0 over a synodic rotation) one Carrington rotation
(27.2753 d) earlier, or later, or two away, the first of them where the SRS catalogue lists no
region within ``exclusion_deg`` from the start of the windows to two days after the control's
reference time, with the same windows.

Where the lists come from (:func:`find_lists`):

- the regions: the Kasapis et al. / SOLARED list (``noaa``, ``srs_first_date``, ``srs_first_lat``,
  ``srs_first_lon``);
- the emergence time and position: the Debrecen sunspot-group birth of that NOAA number
  (``births="refine"``, the default: the first white-light sighting, a median 0.74 d before the first
  SRS listing) when one lies within 5 days before to 1 day after the first listing and within 5 deg
  of its latitude, else the first SRS listing itself (00 UT of ``srs_first_date``, its Carrington
  longitude from the SRS catalogue: an upper bound of the emergence time). The manifest says which,
  per region. ``births="add"`` also adds every SDO-era Debrecen birth with a plain NOAA number first
  seen within 0.5 solar radii of disc centre (an emergence on the disk, not a region rotating in);
  ``births="off"`` ignores the births;
- the controls: checked against the NOAA SRS catalogue (and the list itself); a control whose days
  the catalogue does not cover is not used.

Frames: for each series (a region's PE patch, or its control) the windows it needs, their slots on
the ``T_REC`` grid (720 s, TAI), merged where windows overlap, are exported as one record set per span
(``hmi.M_720s[<start>/<n>s(@<cadence>s)][? QUALITY=0 ?]{magnetogram}``, a ``url_quick`` export of the
files as stored) and downloaded **one frame at a time**: each frame is verified and read by the
client, its patch cut, the file deleted, before the next is fetched, so at most one full-disk frame
is ever held. ``cadence_s`` > 720 subsamples the windows (a real site saves data: a 410-min window
at 720 s is 34 frames of about 13 MB). Frames the client refuses (:class:`DataRejected`), that fail
the header checks or whose patch reaches the limb are counted per window and skipped; a window with
less than ``min_fraction`` of its cadence slots is dropped, with the reason, in the manifest (and not
retried: the JSOC has no more data there). Averaging is the product's
:class:`~heliowatch.models.emergence.averaging.PatchAverager`.

Every sample also carries the average of the window one stride (320 min) earlier, its
``previous``: the unsigned-flux trend of the MTOT baseline needs it. Where that window is one of the
sample windows it is reused; otherwise (the earliest time) one more window is fetched.

Split (by region and by time): a region and its controls form one group, never split; groups are
ordered by time and cut, only where no group straddles the cut, into train (earliest ~60 % of the
series), validation (~20 %) and test (the latest): every test date is later than every training
date and no region is on two sides.

Layout (what :func:`load_emergence_dataset` and ``heliowatch train emergence-fcn --data`` read):
``manifest.json`` (recipe, the lists' SHA-256, regions, samples with label, hours before emergence,
split, frame counts; dropped samples with reasons) and one ``<id>.npz`` per sample holding ``data``
and ``previous`` (85 x 85 float32, Gauss, line-of-sight field as observed; NaN where no data) and
its ``meta`` (JSON text). Built samples are skipped on a rerun, so an interrupted build resumes and
a finished one downloads nothing.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import math
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import structlog
from scipy import ndimage

from heliowatch.models import measures
from heliowatch.models.core.errors import UsageError
from heliowatch.models.core.times import iso_utc, parse_iso, unix_from_iso, utc_to_tai_string
from heliowatch.models.emergence.averaging import AveragingConfig, PatchAverager, WindowAverage
from heliowatch.models.emergence.patches import DiskWCS, PatchGrid, pixel_coordinates
from heliowatch.pipelines.errors import DataRejected, SourceUnavailable
from heliowatch.pipelines.fitsio import parse_quality
from heliowatch.pipelines.jsoc import JsocClient

__all__ = [
    "KIND",
    "MANIFEST",
    "SEED_TIMES_BEFORE_H",
    "EmergenceLists",
    "EmergingRegion",
    "SrsCatalogue",
    "build_emergence_dataset",
    "find_lists",
    "is_emergence_set",
    "is_region_list",
    "load_emergence_dataset",
    "read_regions",
    "recorded_options",
    "time_split",
    "tracked_patch",
]

log = structlog.get_logger(__name__)

MANIFEST = "manifest.json"
KIND = "heliowatch emergence training set"
#: The seed's window centres before emergence, hours (Dhuri et al. 2020).
SEED_TIMES_BEFORE_H = (24.5, 19.2, 13.9, 8.5, 3.2)
#: Mean synodic Carrington rotation, days: a patch fixed in Carrington coordinates is back at the
#: same Stonyhurst position after this long.
SYNODIC_ROTATION_D = 27.2753
#: hmi.M_720s's T_REC grid: step and epoch (T_REC_step, T_REC_epoch; TAI).
SLOT_S = 720.0
_SLOT_EPOCH_TAI = dt.datetime(1993, 1, 1)
#: Frames heliowatch's ingest also refuses: any QUALITY bit set (HMI flags eclipses, calibration
#: sequences, missing data). Asked of the JSOC in the record set, so those frames are never sent.
QUALITY_FILTER = "[? QUALITY=0 ?]"

REGION_COLUMNS = ("noaa", "srs_first_date", "srs_first_lat", "srs_first_lon")
BIRTH_COLUMNS = ("NOAA", "date_utc", "carrington_lon_deg", "lat_deg", "dist_sun_disc")
SRS_COLUMNS = ("date", "id", "number", "carrington_longitude", "latitude", "filter_reason")
_BIRTH_MATCH_DAYS = (-5.0, 1.0)  # a birth this many days around the first SRS listing is the region's
_BIRTH_MATCH_LAT = 5.0
_SDO_START = dt.datetime(2010, 5, 1, tzinfo=dt.UTC)
_ADD_MAX_DIST = 0.5  # births="add": first seen within this many solar radii of disc centre
_MERGE_H = 0.25  # a window this close to a previous-window time is reused as it


# -- the lists ------------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class EmergenceLists:
    """The list files a build reads.

    Attributes
    ----------
    regions : Path
        Emerging regions in the Kasapis format (``noaa, srs_first_date, srs_first_lat, srs_first_lon``).
    srs : Path
        The NOAA SRS catalogue (``srs_processed_catalog*.csv``): Carrington positions, control checks.
    births : Path or None
        The Debrecen sunspot-group births (``sunspots_births*.csv``), optional.
    """

    regions: Path
    srs: Path
    births: Path | None = None

    def sha256(self) -> dict[str, str]:
        """``{file name: SHA-256}`` of the lists used (recorded in the manifest)."""
        files = [self.regions, self.srs, *([self.births] if self.births else [])]
        return {p.name: _sha256(p) for p in files}


def _header(path: Path) -> list[str]:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return [h.strip() for h in next(csv.reader(f), [])]
    except (OSError, UnicodeDecodeError, csv.Error):
        return []


def _region_csv(directory: Path) -> Path | None:
    return next((p for p in sorted(directory.glob("*.csv")) if set(REGION_COLUMNS) <= set(_header(p))), None)


def is_region_list(path: Path) -> bool:
    """Whether ``path`` is (or is a directory holding) an emerging-region list in the Kasapis format."""
    p = Path(path)
    if p.is_file():
        return set(REGION_COLUMNS) <= set(_header(p))
    return p.is_dir() and _region_csv(p) is not None


def is_emergence_set(path: Path) -> bool:
    """Whether ``path`` holds a built set (a manifest; :func:`load_emergence_dataset` checks its kind)."""
    return (Path(path) / MANIFEST).is_file()


def _first(patterns: str, dirs: Sequence[Path]) -> Path | None:
    for d in dirs:
        hit = next(iter(sorted(d.glob(patterns))), None) if d.is_dir() else None
        if hit is not None:
            return hit
    return None


def find_lists(path: Path) -> EmergenceLists:
    """The lists of a build: ``path`` is the region list (or its directory); the SRS catalogue and the
    Debrecen births are looked for beside it and in the sibling folders of the shared data
    (``srs-catalog-1996-2022/``, ``debrecen-sunspot-births/``).

    Raises
    ------
    UsageError
        If there is no region list in the Kasapis format or no SRS catalogue.
    """
    p = Path(path)
    if p.is_file():
        regions, home = p, p.parent
    elif p.is_dir():
        found = _region_csv(p)
        if found is None:
            msg = f"{p}: no emerging-region list (a CSV with columns {', '.join(REGION_COLUMNS)})"
            raise UsageError(msg)
        regions, home = found, p
    else:
        msg = f"{p}: no such file or directory (expected the emerging-region list)"
        raise UsageError(msg)
    srs = _first("srs_processed_catalog*.csv", [home, home / "srs-catalog-1996-2022", home.parent / "srs-catalog-1996-2022"])
    if srs is None:
        msg = f"{home}: no SRS catalogue (srs_processed_catalog*.csv here or in ../srs-catalog-1996-2022/): controls need it"
        raise UsageError(msg)
    births = _first("sunspots_births*.csv", [home, home / "debrecen-sunspot-births", home.parent / "debrecen-sunspot-births"])
    return EmergenceLists(regions=regions, srs=srs, births=births)


def _read_csv(path: Path, needed: Sequence[str], what: str) -> list[tuple[int, dict[str, str]]]:
    """Rows with their line numbers; UsageError if the file is unreadable or lacks a column."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            head = [h.strip() for h in (reader.fieldnames or [])]
            missing = [c for c in needed if c not in head]
            if missing:
                msg = f"{path}: not {what}: missing column(s) {', '.join(missing)} (got {', '.join(head[:8]) or 'nothing'})"
                raise UsageError(msg)
            return [(i + 2, {(k or "").strip(): (v or "").strip() for k, v in row.items()}) for i, row in enumerate(reader)]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        msg = f"{path}: cannot read {what} ({e})"
        raise UsageError(msg) from e


def _num(row: dict[str, str], key: str, path: Path, line: int) -> float:
    try:
        v = float(row[key])
    except ValueError:
        msg = f"{path} line {line}: {key} {row[key]!r} is not a number"
        raise UsageError(msg) from None
    if not math.isfinite(v):
        msg = f"{path} line {line}: {key} is not finite"
        raise UsageError(msg)
    return v


def _sep_deg(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle separation of two heliographic points, deg (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return math.degrees(2 * math.asin(min(1.0, math.sqrt(a))))


@dataclass
class SrsCatalogue:
    """The NOAA SRS region-days (sections I and IA) by date, for positions and control checks.

    Attributes
    ----------
    by_date : dict
        ``{YYYY-MM-DD: [(number, lat, carrington_lon), ...]}`` (positions at 00 UT).
    covered : set of str
        Days the catalogue holds a successfully read SRS for.
    """

    by_date: dict[str, list[tuple[str, float, float]]] = field(default_factory=dict)
    covered: set[str] = field(default_factory=set)

    @classmethod
    def read(cls, path: Path) -> SrsCatalogue:
        """Read ``srs_processed_catalog*.csv`` (UsageError if it is not one)."""
        cat = cls()
        for line, row in _read_csv(path, SRS_COLUMNS, "an SRS catalogue"):
            day = row["date"][:10]
            try:
                dt.date.fromisoformat(day)
            except ValueError:
                msg = f"{path} line {line}: date {row['date']!r} is not YYYY-MM-DD"
                raise UsageError(msg) from None
            if "load_unsuccessful" not in row["filter_reason"]:
                cat.covered.add(day)
            # Section II regions are returning plage, not listed regions; numbers 0 mark empty days.
            if row["id"] not in ("I", "IA") or row["number"] in ("", "0"):
                continue
            try:
                lat, lon = float(row["latitude"]), float(row["carrington_longitude"])
            except ValueError:
                continue  # a region-day without a position cannot exclude a control
            if math.isfinite(lat) and math.isfinite(lon):
                cat.by_date.setdefault(day, []).append((row["number"], lat, lon % 360.0))
        return cat

    def carrington_lon(self, number: str, day: str) -> float | None:
        """Carrington longitude of region ``number`` on ``day`` (None if not listed)."""
        return next((lon for n, _, lon in self.by_date.get(day, []) if n == number), None)

    def covers(self, first: dt.date, last: dt.date) -> bool:
        """Whether every day from ``first`` to ``last`` has an SRS in the catalogue."""
        n = (last - first).days
        return all((first + dt.timedelta(days=i)).isoformat() in self.covered for i in range(n + 1))

    def near(self, lat: float, lon: float, first: dt.date, last: dt.date, radius_deg: float) -> list[str]:
        """Regions listed within ``radius_deg`` of (``lat``, Carrington ``lon``) on any day from ``first`` to ``last``."""
        hits: set[str] = set()
        for i in range((last - first).days + 1):
            for n, la, lo in self.by_date.get((first + dt.timedelta(days=i)).isoformat(), []):
                if _sep_deg(lat, lon, la, lo) <= radius_deg:
                    hits.add(n)
        return sorted(hits)


@dataclass(frozen=True)
class EmergingRegion:
    """One emergence: time (UTC ISO), heliographic latitude and Carrington longitude (deg), and where they come from."""

    noaa: str
    t_emergence_utc: str
    lat: float
    carrington_lon: float
    source: str

    @property
    def t_s(self) -> float:
        """Emergence time, Unix seconds."""
        return unix_from_iso(self.t_emergence_utc)


@dataclass(frozen=True)
class _Birth:
    t: dt.datetime
    lat: float
    lon: float
    dist: float


def _read_births(path: Path) -> dict[str, _Birth]:
    out: dict[str, _Birth] = {}
    for line, row in _read_csv(path, BIRTH_COLUMNS, "a Debrecen sunspot-birth list"):
        noaa = row["NOAA"]
        if not noaa.isdigit():  # DPD sub-groups (11158m) and Greenwich groups (GPR82) are not NOAA regions
            continue
        try:
            t = parse_iso(row["date_utc"])
        except ValueError:
            msg = f"{path} line {line}: date_utc {row['date_utc']!r} is not an ISO time"
            raise UsageError(msg) from None
        lat, lon = _num(row, "lat_deg", path, line), _num(row, "carrington_lon_deg", path, line) % 360.0
        out[noaa] = _Birth(t, lat, lon, _num(row, "dist_sun_disc", path, line))
    return out


def read_regions(
    lists: EmergenceLists, *, births: str = "refine", srs: SrsCatalogue | None = None
) -> tuple[list[EmergingRegion], list[dict[str, str]]]:
    """The emerging regions of the lists, earliest first, and those that cannot be used (with the reason).

    Parameters
    ----------
    lists : EmergenceLists
        The list files.
    births : {"refine", "add", "off"}
        Use the Debrecen births to sharpen the emergence times (see the module notes), also add the
        on-disk SDO-era births as regions, or ignore them.
    srs : SrsCatalogue or None
        The catalogue of ``lists.srs`` if already read.

    Raises
    ------
    UsageError
        For a bad ``births`` mode, a list without the expected columns, or a row whose NOAA number,
        date or position cannot be read (the message names the file and line).
    """
    if births not in ("refine", "add", "off"):
        msg = f"births must be 'refine', 'add' or 'off' (got {births!r})"
        raise UsageError(msg)
    srs = srs if srs is not None else SrsCatalogue.read(lists.srs)
    born = _read_births(lists.births) if lists.births is not None and births != "off" else {}
    out: dict[str, EmergingRegion] = {}
    skipped: list[dict[str, str]] = []
    for line, row in _read_csv(lists.regions, REGION_COLUMNS, "an emerging-region list (Kasapis format)"):
        noaa = row["noaa"]
        if not noaa.isdigit():
            msg = f"{lists.regions} line {line}: noaa {noaa!r} is not a NOAA region number"
            raise UsageError(msg)
        if not row["srs_first_date"]:
            skipped.append({"noaa": noaa, "reason": "no first SRS listing in the list"})
            continue
        try:
            day = dt.date.fromisoformat(row["srs_first_date"][:10])
        except ValueError:
            msg = f"{lists.regions} line {line}: srs_first_date {row['srs_first_date']!r} is not YYYY-MM-DD"
            raise UsageError(msg) from None
        lat = _num(row, "srs_first_lat", lists.regions, line)
        _num(row, "srs_first_lon", lists.regions, line)  # checked: a list with garbage positions is a bad list
        t_srs = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
        b = born.get(noaa)
        if b is not None:
            lag_d = (b.t - t_srs).total_seconds() / 86400
            if not (_BIRTH_MATCH_DAYS[0] <= lag_d <= _BIRTH_MATCH_DAYS[1] and abs(b.lat - lat) <= _BIRTH_MATCH_LAT):
                b = None
        if b is not None:
            src = f"Debrecen birth ({-lag_d:.2f} d before the first SRS listing)"
            out[noaa] = EmergingRegion(noaa, iso_utc(b.t), b.lat, b.lon, src)
            continue
        lon = srs.carrington_lon(noaa, day.isoformat())
        if lon is None:
            skipped.append(
                {"noaa": noaa, "reason": f"no Carrington longitude: not in the SRS catalogue on {day} nor a matching birth"}
            )
            continue
        out[noaa] = EmergingRegion(
            noaa, iso_utc(t_srs), lat, lon, "first SRS listing (00 UT; an upper bound of the emergence time)"
        )
    if births == "add":
        for noaa, b in born.items():
            if noaa not in out and b.t >= _SDO_START and b.dist <= _ADD_MAX_DIST:
                out[noaa] = EmergingRegion(noaa, iso_utc(b.t), b.lat, b.lon, f"Debrecen birth on the disk (r = {b.dist:.2f})")
    return sorted(out.values(), key=lambda r: (r.t_emergence_utc, r.noaa)), skipped


# -- geometry ---------------------------------------------------------------------------------------


def tracked_patch(
    data: np.ndarray, wcs: DiskWCS, lat_deg: float, carrington_lon_deg: float, grid: PatchGrid | None = None
) -> tuple[np.ndarray | None, float, float, str]:
    """The Postel patch centred on (``lat_deg``, ``carrington_lon_deg``) in one full-disk frame.

    The same projection and resampling as the product's grid patches
    (:func:`~heliowatch.models.emergence.patches.extract_patches`: integer block mean to about half a
    patch pixel, then one bilinear sample per patch pixel; the same limb and valid-pixel rules of
    ``grid``), for a centre that is not a grid point: a catalogued region's own position.

    Returns
    -------
    patch : ndarray (size, size) float32 or None
        LOS field in Gauss, north up, west right; None if the patch cannot be used.
    hgs_lon, mu_centre : float
        Stonyhurst longitude and mu of the centre in this frame.
    reason : str
        Why the patch is None (empty otherwise).
    """
    g = grid or PatchGrid()
    # As extract_patches' _auto_bin: the largest factor keeping a binned pixel at most ~half a patch pixel.
    f = max(1, math.floor(g.mm_per_px / (2 * wcs.mm_per_px_centre) + 0.25))
    img = np.asarray(data, dtype=np.float32)
    if f > 1:
        img = measures.bin_mean(img, f)
    w = wcs.binned(f)
    lat, dlon = g.offsets(lat_deg)
    rows, cols, mu = pixel_coordinates(lat, carrington_lon_deg + dlon, w)
    c = g.size // 2
    hgs = (carrington_lon_deg - wcs.crln_obs + 180.0) % 360.0 - 180.0 + wcs.hgln_obs
    mu_c = float(mu[c, c])
    if mu_c <= 0:
        return None, hgs, mu_c, "centre behind the limb"
    if float(mu.min()) < g.min_mu:
        return None, hgs, mu_c, f"reaches the limb (min mu {float(mu.min()):.3f} < {g.min_mu:g})"
    ok = mu > 0
    vals = ndimage.map_coordinates(
        img,
        [np.where(ok, rows, -10.0).ravel(), np.where(ok, cols, -10.0).ravel()],
        order=1,
        mode="constant",
        cval=np.nan,
        prefilter=False,
    ).reshape(mu.shape)
    valid = float(np.isfinite(vals).mean())
    if valid < g.min_valid:
        return None, hgs, mu_c, f"too few valid pixels ({100 * valid:.1f} % < {100 * g.min_valid:.0f} %)"
    return vals.astype(np.float32), hgs, mu_c, ""


# -- the plan: series, windows, controls, split -----------------------------------------------------


@dataclass(frozen=True)
class _Series:
    """One tracked patch over its windows: a region's PE series or one of its controls."""

    sid: str
    group: str
    label: int
    rotation: int
    t_ref_s: float
    lat: float
    carrington_lon: float


@dataclass
class _Window:
    key: str
    hours: float
    sample: bool
    previous: str | None = None


def _hkey(h: float) -> str:
    return f"{h:04.1f}"


def _windows(times_before_h: Sequence[float], stride_h: float) -> dict[str, _Window]:
    """Sample windows at ``times_before_h``, each with its previous window (one stride earlier; reused if a sample window)."""
    win = {_hkey(h): _Window(_hkey(h), float(h), True) for h in times_before_h}
    for w in [w for w in win.values() if w.sample]:
        hp = w.hours + stride_h
        match = next((v.key for v in win.values() if v.sample and abs(v.hours - hp) <= _MERGE_H), None)
        if match is None:
            match = _hkey(hp)
            win.setdefault(match, _Window(match, hp, False))
        w.previous = match
    return win


def _bounds(s: _Series, w: _Window, window_s: float) -> tuple[float, float]:
    c = s.t_ref_s - w.hours * 3600.0
    return c - window_s / 2, c + window_s / 2


def _controls(
    region: EmergingRegion,
    regions: Sequence[EmergingRegion],
    srs: SrsCatalogue,
    *,
    n: int,
    rotations: Sequence[int],
    span_before_s: float,
    exclusion_deg: float,
) -> tuple[list[int], list[dict[str, Any]]]:
    """The rotations (of ``rotations``, in order) at which a control of ``region`` is clean, and why others are not."""
    chosen: list[int] = []
    rejected: list[dict[str, Any]] = []
    for k in rotations:
        if len(chosen) >= n:
            break
        t_c = region.t_s + k * SYNODIC_ROTATION_D * 86400
        first = dt.datetime.fromtimestamp(t_c - span_before_s, dt.UTC).date()
        last = dt.datetime.fromtimestamp(t_c + 2 * 86400, dt.UTC).date()
        if not srs.covers(first, last):
            rejected.append({"rotation": k, "reason": f"the SRS catalogue does not cover {first} .. {last}"})
            continue
        listed = srs.near(region.lat, region.carrington_lon, first, last, exclusion_deg)
        emerging = [
            r.noaa
            for r in regions
            if t_c - span_before_s <= r.t_s <= t_c + 2 * 86400
            and _sep_deg(region.lat, region.carrington_lon, r.lat, r.carrington_lon) <= exclusion_deg
        ]
        if listed or emerging:
            who = ", ".join(sorted({*listed, *emerging}))
            rejected.append({"rotation": k, "reason": f"region(s) {who} within {exclusion_deg:g} deg between {first} and {last}"})
            continue
        chosen.append(k)
    return chosen, rejected


def time_split(spans: dict[str, tuple[float, float, int]], fractions: tuple[float, float] = (0.6, 0.2)) -> dict[str, str]:
    """Split groups in time: ``{group: "train" | "validation" | "test"}``.

    Parameters
    ----------
    spans : dict
        ``{group: (first time, last time, weight)}`` (any time scale; weight: its series).
    fractions : tuple
        Target shares of the weight for train and validation (the rest is test).

    Groups are ordered by their first time and cut only where every earlier group ends before the
    next begins, at the clean cuts nearest the targets: every test time is after every validation
    time, which is after every training time, and a group is never split.
    """
    order = sorted(spans, key=lambda g: (spans[g][0], g))
    n = len(order)
    cum = np.cumsum([0] + [spans[g][2] for g in order])
    total = float(cum[-1]) or 1.0
    ends = np.maximum.accumulate([spans[g][1] for g in order]) if n else np.zeros(0)
    clean = [i for i in range(1, n) if ends[i - 1] < spans[order[i]][0]]

    def nearest(target: float, after: int) -> int | None:
        cand = [i for i in clean if i > after]
        return min(cand, key=lambda i: (abs(cum[i] / total - target), i)) if cand else None

    i1 = nearest(fractions[0], 0)
    i2 = nearest(fractions[0] + fractions[1], i1) if i1 is not None else None
    out = {}
    for i, g in enumerate(order):
        out[g] = "train" if i1 is None or i < i1 else ("validation" if i2 is not None and i < i2 else "test")
    return out


# -- frames -----------------------------------------------------------------------------------------

_REC_TIME = re.compile(r"\[(\d{4})\.(\d\d)\.(\d\d)_(\d\d):(\d\d):(\d\d)(?:\.\d*)?_TAI\]")


def _tai_s(t_unix: float) -> float:
    """TAI seconds since hmi's T_REC epoch of a Unix (UTC) time."""
    s = utc_to_tai_string(iso_utc(t_unix, millis=True))
    return (dt.datetime.strptime(s[:-4], "%Y.%m.%d_%H:%M:%S.%f") - _SLOT_EPOCH_TAI).total_seconds()


def _tai_text(tai_s: float) -> str:
    return (_SLOT_EPOCH_TAI + dt.timedelta(seconds=tai_s)).strftime("%Y.%m.%d_%H:%M:%S_TAI")


def _record_tai(rec: str) -> float:
    m = _REC_TIME.search(rec)
    if m is None:
        return math.inf  # unknown: sorted last, placed by its header time
    y, mo, d, hh, mm, ss = (int(v) for v in m.groups())
    return (dt.datetime(y, mo, d, hh, mm, ss) - _SLOT_EPOCH_TAI).total_seconds()


def _spans(bounds: list[tuple[float, float]]) -> list[tuple[int, int]]:
    """Slot ranges ``[a, b)`` on the T_REC grid covering the windows ``[start, end)`` (Unix), merged where they touch."""
    ranges = sorted((math.ceil(_tai_s(a) / SLOT_S - 1e-9), math.ceil(_tai_s(b) / SLOT_S - 1e-9)) for a, b in bounds)
    out: list[list[int]] = []
    for a, b in ranges:
        if b <= a:
            continue
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


@dataclass
class _WindowResult:
    average: WindowAverage | None
    reason: str
    rejected: int = 0
    unusable: int = 0


def _frame_patch(
    client: JsocClient, url: str, path: Path, rec: str, s: _Series, grid: PatchGrid
) -> tuple[float, np.ndarray | None, float, float, str]:
    """Download one frame, check it and cut the series' patch: ``(t_unix, patch or None, hgs_lon, mu_centre, why)``.

    The file is deleted and the full-disk frame released on return, before the next download.
    """
    try:
        got = client.download(url, path)
        try:
            q = parse_quality(got.frame.keyword("QUALITY", 0))
        except ValueError:
            q = -1
        if q != 0:
            msg = f"{rec}: QUALITY {q:#x} (the record set asked for QUALITY=0)"
            raise DataRejected(msg, "quality")
        wcs = DiskWCS.from_header(got.frame.header, name=rec)
        t = unix_from_iso(wcs.t_rec_utc)
        patch, hgs, mu_c, why = tracked_patch(got.frame.data, wcs, s.lat, s.carrington_lon, grid)
    finally:
        path.unlink(missing_ok=True)
    return t, patch, hgs, mu_c, why


def _fetch(
    client: JsocClient,
    s: _Series,
    wins: dict[str, _Window],
    *,
    series: str,
    window_s: float,
    cadence_s: float,
    min_fraction: float,
    grid: PatchGrid,
    totals: dict[str, int],
) -> dict[str, _WindowResult]:
    """Download the frames of windows ``wins`` of one series one at a time; average each window's patches."""
    bounds = {k: _bounds(s, w, window_s) for k, w in wins.items()}
    # One averager per window (stride = window: only window 0 of each grid): the windows of a
    # series need not lie on one grid; a gap inside a window is a missing frame, not a restart.
    avg = {
        k: PatchAverager(
            AveragingConfig(
                window_s=window_s,
                stride_s=window_s,
                cadence_s=cadence_s,
                min_fraction=min_fraction,
                max_gap_s=window_s + cadence_s,
                anchor_s=b[0],
            )
        )
        for k, b in bounds.items()
    }
    stats = {k: {"rejected": 0, "unusable": 0} for k in wins}
    step = "" if cadence_s == SLOT_S else f"@{cadence_s:g}s"
    with tempfile.TemporaryDirectory(prefix="heliowatch-emergence-") as tmp:
        for a, b in _spans(list(bounds.values())):
            ds = f"{series}[{_tai_text(a * SLOT_S)}/{(b - a) * SLOT_S:g}s{step}]{QUALITY_FILTER}{{magnetogram}}"
            for rec, url in sorted(client.export_urls(ds), key=lambda p: _record_tai(p[0])):
                try:
                    t, patch, hgs, mu_c, why = _frame_patch(client, url, Path(tmp) / "frame.fits", rec, s, grid)
                except (DataRejected, UsageError, ValueError) as e:
                    totals["rejected"] += 1
                    log.info("emergence_frame_refused", series=s.sid, record=rec, error=str(e)[:200])
                    # A refused frame is charged to the windows its record name places it in.
                    t_rec = _record_tai(rec)
                    for k, (lo, hi) in bounds.items():
                        if math.isfinite(t_rec) and _tai_s(lo) <= t_rec < _tai_s(hi):
                            stats[k]["rejected"] += 1
                    continue
                totals["read"] += 1
                if patch is None:
                    totals["unusable"] += 1
                    log.info("emergence_patch_unusable", series=s.sid, record=rec, reason=why)
                meta = np.array([[s.lat, s.carrington_lon, hgs, mu_c]])
                for k, (lo, hi) in bounds.items():
                    if not lo <= t < hi:
                        continue
                    if patch is None:
                        stats[k]["unusable"] += 1
                    else:
                        avg[k].add(t, [k], patch[None], meta=meta)
    out: dict[str, _WindowResult] = {}
    for k in wins:
        st = avg[k].flush()
        r = stats[k]
        if st.completed:
            out[k] = _WindowResult(st.completed[0], "", r["rejected"], r["unusable"])
        else:
            # The averager appends "incomplete at the end of the data" on flush: true of every window here.
            why = st.dropped[0][2].split(";")[0] if st.dropped else f"no usable frame of ~{window_s / cadence_s:.0f}"
            extra = ", ".join(f"{v} {n}" for n, v in r.items() if v)
            out[k] = _WindowResult(None, why + (f" ({extra})" if extra else ""), r["rejected"], r["unusable"])
    return out


# -- the build --------------------------------------------------------------------------------------


def _write_sample(path: Path, data: np.ndarray, previous: np.ndarray, meta: dict[str, Any]) -> None:
    tmp = path.with_name(path.stem + ".part.npz")
    np.savez_compressed(tmp, data=data.astype(np.float32), previous=previous.astype(np.float32), meta=np.array(json.dumps(meta)))
    tmp.replace(path)


def _read_meta(path: Path) -> dict[str, Any]:
    with np.load(path, allow_pickle=False) as z:
        meta: dict[str, Any] = json.loads(str(z["meta"]))
    return meta


def _plan(
    regions: list[EmergingRegion],
    srs: SrsCatalogue,
    wins: dict[str, _Window],
    window_s: float,
    *,
    controls: int,
    rotations: Sequence[int],
    exclusion_deg: float,
) -> tuple[list[_Series], list[dict[str, Any]]]:
    """Every series to build (each region's PE series and its clean controls), in time order; the regions' manifest entries."""
    span_before_s = max(w.hours for w in wins.values()) * 3600 + window_s / 2
    plan: list[_Series] = []
    entries: list[dict[str, Any]] = []
    for reg in regions:
        plan.append(_Series(f"{reg.noaa}_PE", reg.noaa, 1, 0, reg.t_s, reg.lat, reg.carrington_lon))
        chosen, rejected = _controls(
            reg, regions, srs, n=controls, rotations=rotations, span_before_s=span_before_s, exclusion_deg=exclusion_deg
        )
        refs = {rot: reg.t_s + rot * SYNODIC_ROTATION_D * 86400 for rot in chosen}
        plan += [_Series(f"{reg.noaa}_NE{rot:+d}", reg.noaa, 0, rot, t, reg.lat, reg.carrington_lon) for rot, t in refs.items()]
        entries.append(
            {
                "noaa": reg.noaa,
                "t_emergence_utc": reg.t_emergence_utc,
                "lat": reg.lat,
                "carrington_lon": reg.carrington_lon,
                "source": reg.source,
                "controls": [{"rotation": rot, "t_ref_utc": iso_utc(t)} for rot, t in refs.items()],
                "controls_rejected": rejected,
            }
        )
    plan.sort(key=lambda s: (s.t_ref_s, s.sid))
    return plan, entries


def _sample_meta(sample_id: str, s: _Series, w: _Window, wr: _WindowResult, prev: _WindowResult | None) -> dict[str, Any]:
    """The manifest entry of one built sample (kept in its npz, so a rerun rebuilds the manifest without the JSOC)."""
    wa = wr.average
    if wa is None:
        msg = f"{sample_id}: no average to describe"
        raise ValueError(msg)
    pa = prev.average if prev is not None else None
    return {
        "id": sample_id,
        "series": s.sid,
        "region": s.group,
        "label": s.label,
        "kind": "PE" if s.label else "NE",
        "rotation": s.rotation,
        "hours_before": w.hours,
        "t_ref_utc": iso_utc(s.t_ref_s),
        "t_start_utc": iso_utc(wa.t_start_s),
        "t_end_utc": iso_utc(wa.t_end_s),
        "t_mid_utc": iso_utc(wa.t_mid_s),
        "lat": s.lat,
        "carrington_lon": s.carrington_lon,
        "hgs_lon": round(wa.hgs_lon, 3),
        "mu_centre": round(wa.mu_centre, 4),
        "n_frames": wa.n_frames,
        "n_expected": wa.n_expected,
        "frames_rejected": wr.rejected,
        "frames_unusable": wr.unusable,
        "previous_n_frames": pa.n_frames if pa is not None else 0,
        "previous_reason": "" if pa is not None else (prev.reason if prev is not None else "no previous window"),
    }


def build_emergence_dataset(
    client: JsocClient,
    lists: Path | EmergenceLists,
    out: Path,
    *,
    series: str = "hmi.M_720s",
    times_before_h: Sequence[float] = SEED_TIMES_BEFORE_H,
    window_min: float = 410.0,
    stride_min: float = 320.0,
    cadence_s: float = SLOT_S,
    min_fraction: float = 0.7,
    controls: int = 1,
    rotations: Sequence[int] = (-1, 1, -2, 2),
    exclusion_deg: float = 10.0,
    births: str = "refine",
    limit: int | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> dict[str, Any]:
    """Build (or resume) the set in ``out`` from the lists and the JSOC (see the module notes).

    Parameters
    ----------
    client : JsocClient
        The JSOC (or the stand-in).
    lists : Path or EmergenceLists
        The region list or its directory (:func:`find_lists`), or the lists themselves.
    out : Path
        The set's directory (created; built samples in it are kept).
    series : str
        Full-disk LOS magnetogram series.
    times_before_h : sequence of float
        Window centres before emergence, hours (the seed's five by default).
    window_min, stride_min : float
        Averaging window length and the spacing of a window from its previous one, minutes.
    cadence_s : float
        Frames used inside a window: every 720 s (all) or a multiple of it (subsampled).
    min_fraction : float
        Smallest fraction of a window's cadence slots with a usable frame for it to be kept.
    controls : int
        Controls per region (0: none).
    rotations : sequence of int
        Rotations tried for a control, in order (-1: one rotation before the emergence).
    exclusion_deg : float
        A control must have no listed region within this distance of its centre.
    births : {"refine", "add", "off"}
        Use of the Debrecen births (:func:`read_regions`).
    limit : int or None
        Build only the first ``limit`` regions (earliest first).
    progress : callable or None
        ``(series done, series total, series id)``.

    Returns
    -------
    dict
        The manifest (also written to ``out/manifest.json``).

    Raises
    ------
    UsageError
        For bad lists or parameters, or an ``out`` built with other parameters.
    SourceUnavailable
        If the JSOC cannot be reached at all (nothing was built).
    """
    lists = lists if isinstance(lists, EmergenceLists) else find_lists(Path(lists))
    if cadence_s < SLOT_S or abs(cadence_s / SLOT_S - round(cadence_s / SLOT_S)) > 1e-9:
        msg = f"cadence_s must be a multiple of {SLOT_S:g} s, the T_REC step of {series} (got {cadence_s:g})"
        raise UsageError(msg)
    if not times_before_h or min(times_before_h) <= 0 or window_min <= 0 or stride_min <= 0:
        msg = "times_before_h must be positive hours, window_min and stride_min positive minutes"
        raise UsageError(msg)
    if window_min * 60 < cadence_s:
        msg = f"a window of {window_min:g} min holds no frame at {cadence_s:g} s"
        raise UsageError(msg)
    window_s, stride_h = window_min * 60.0, stride_min / 60.0
    grid = PatchGrid()
    recipe = {
        "series": series,
        "segment": "magnetogram",
        "record_filter": QUALITY_FILTER,
        "times_before_h": [float(h) for h in times_before_h],
        "window_min": float(window_min),
        "stride_min": float(stride_min),
        "cadence_s": float(cadence_s),
        "min_fraction": float(min_fraction),
        "patch": {"size": grid.size, "mm_per_px": grid.mm_per_px, "field": "los", "tracking": "Carrington rate"},
        "controls": int(controls),
        "rotations": [int(k) for k in rotations],
        "exclusion_deg": float(exclusion_deg),
        "births": births,
    }
    out.mkdir(parents=True, exist_ok=True)
    final_drops: dict[str, dict[str, Any]] = {}
    if (out / MANIFEST).exists():
        try:
            old = json.loads((out / MANIFEST).read_text())
        except json.JSONDecodeError:
            old = {}
        if old.get("kind") != KIND or old.get("recipe") != recipe:
            msg = f"{out} holds a set built with other parameters (or not an emergence set): build into another directory"
            raise UsageError(msg)
        final_drops = {d["id"]: d for d in old.get("dropped", []) if d.get("final")}

    srs = SrsCatalogue.read(lists.srs)
    regions, regions_skipped = read_regions(lists, births=births, srs=srs)
    if limit is not None:
        regions = regions[:limit]
    wins = _windows(times_before_h, stride_h)
    plan, region_entries = _plan(
        regions, srs, wins, window_s, controls=controls, rotations=rotations, exclusion_deg=exclusion_deg
    )
    spans: dict[str, tuple[float, float, int]] = {}
    for s in plan:
        lo = min(_bounds(s, w, window_s)[0] for w in wins.values())
        hi = max(_bounds(s, w, window_s)[1] for w in wins.values())
        a, b, n = spans.get(s.group, (lo, hi, 0))
        spans[s.group] = (min(a, lo), max(b, hi), n + 1)
    split = time_split(spans)
    manifest: dict[str, Any] = {
        "kind": KIND,
        "recipe": recipe,
        "split_rule": "by region (a region and its controls together) and by time: groups ordered in time and cut where"
        " none straddles the cut, ~60 % of the series train, ~20 % validation, the latest test",
        "lists": lists.sha256(),
        "regions": region_entries,
        "regions_skipped": regions_skipped,
        "samples": [],
        "dropped": [],
        "skipped": [],
        "frames": {"read": 0, "rejected": 0, "unusable": 0},
    }
    sample_keys = [k for k, w in wins.items() if w.sample]
    built = 0
    for i, s in enumerate(plan):
        ids = {k: f"{s.sid}_{k}h" for k in sample_keys}
        todo = [k for k in sample_keys if not (out / f"{ids[k]}.npz").exists() and ids[k] not in final_drops]
        if todo:
            need = {k: wins[k] for k in todo}
            need.update({p: wins[p] for k in todo if (p := wins[k].previous) is not None})
            try:
                res = _fetch(
                    client,
                    s,
                    need,
                    series=series,
                    window_s=window_s,
                    cadence_s=cadence_s,
                    min_fraction=min_fraction,
                    grid=grid,
                    totals=manifest["frames"],
                )
            except (SourceUnavailable, TimeoutError) as exc:
                if built == 0 and i == 0:
                    raise
                manifest["skipped"].append({"series": s.sid, "reason": str(exc)[:200]})
                log.warning("emergence_series_skipped", series=s.sid, error=str(exc)[:200])
                res = {}
            for k in todo if res else []:
                wr, prev = res[k], res.get(wins[k].previous or "")
                if wr.average is None:
                    final_drops[ids[k]] = {
                        "id": ids[k],
                        "series": s.sid,
                        "hours_before": wins[k].hours,
                        "reason": wr.reason,
                        "final": True,
                    }
                    continue
                meta = _sample_meta(ids[k], s, wins[k], wr, prev)
                blank = np.full(wr.average.data.shape, np.nan, np.float32)
                prev_data = prev.average.data if prev is not None and prev.average is not None else blank
                _write_sample(out / f"{ids[k]}.npz", wr.average.data, prev_data, meta)
        for k in sample_keys:
            npz = out / f"{ids[k]}.npz"
            if npz.exists():
                manifest["samples"].append({**_read_meta(npz), "split": split[s.group]})
                built += 1
            elif ids[k] in final_drops:
                manifest["dropped"].append({**final_drops[ids[k]], "split": split[s.group]})
        if progress:
            progress(i + 1, len(plan), s.sid)
        _summarise(manifest)
        _write_manifest(out, manifest)
    return manifest


def _summarise(manifest: dict[str, Any]) -> None:
    counts: dict[str, dict[str, int]] = {}
    for e in manifest["samples"]:
        c = counts.setdefault(e["split"], {"PE": 0, "NE": 0})
        c[e["kind"]] += 1
    manifest["counts"] = counts
    manifest["dates"] = {
        part: [min(e["t_start_utc"] for e in rows), max(e["t_end_utc"] for e in rows)]
        for part in ("train", "validation", "test")
        if (rows := [e for e in manifest["samples"] if e["split"] == part])
    }
    manifest["split_regions"] = {
        part: sorted({e["region"] for e in manifest["samples"] if e["split"] == part}) for part in ("train", "validation", "test")
    }


def _write_manifest(out: Path, manifest: dict[str, Any]) -> None:
    tmp = out / (MANIFEST + ".part")
    tmp.write_text(json.dumps(manifest, indent=2))
    tmp.replace(out / MANIFEST)


def recorded_options(out: Path) -> dict[str, Any]:
    """The build parameters recorded in ``out``'s manifest, as keyword arguments of :func:`build_emergence_dataset`.

    A resumed build must use the parameters the set was started with (the builder refuses others);
    empty when ``out`` holds no emergence set.
    """
    try:
        manifest = json.loads((Path(out) / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    if not isinstance(manifest, dict) or manifest.get("kind") != KIND:
        return {}
    recipe = manifest.get("recipe", {})
    keys = ("series", "times_before_h", "window_min", "stride_min", "cadence_s", "min_fraction", "controls", "rotations")
    return {k: recipe[k] for k in (*keys, "exclusion_deg", "births") if k in recipe}


def load_emergence_dataset(root: Path) -> dict[str, Any]:
    """The built set as the arrays the emergence trainer uses.

    Returns
    -------
    dict
        ``x`` and ``previous`` (n, 85, 85) float32 Gauss (NaN where no data; ``previous`` all-NaN
        where the sample has no previous window), ``y`` (1 PE, 0 NE), ``region`` (group index: a
        region and its controls), ``split`` (0 train, 1 validation, 2 test), ``hours_before``,
        ``mu_centre``, ``ids`` and ``regions`` (NOAA numbers, by index), ``root`` and ``manifest``.

    Raises
    ------
    UsageError
        If ``root`` holds no emergence manifest, a sample file is missing, or a split is empty.
    """
    man = Path(root) / MANIFEST
    if not man.exists():
        msg = f"{root}: no {MANIFEST} (build the set with `heliowatch train emergence-fcn --data LISTS`)"
        raise UsageError(msg)
    try:
        manifest = json.loads(man.read_text())
    except json.JSONDecodeError as e:
        msg = f"{man}: not valid JSON ({e})"
        raise UsageError(msg) from e
    if manifest.get("kind") != KIND:
        msg = f"{root}: not an emergence training set (manifest kind {manifest.get('kind')!r})"
        raise UsageError(msg)
    samples = manifest["samples"]
    parts = {"train": 0, "validation": 1, "test": 2}
    empty = [p for p in parts if not any(e["split"] == p for e in samples)]
    if empty:
        msg = f"{root}: the {', '.join(empty)} split(s) are empty ({len(samples)} samples built)"
        raise UsageError(msg)
    groups = sorted({e["region"] for e in samples})
    gi = {g: i for i, g in enumerate(groups)}
    xs, ps = [], []
    for entry in samples:
        path = Path(root) / f"{entry['id']}.npz"
        if not path.exists():
            msg = f"{root}: sample {entry['id']} is in the manifest but {path.name} is missing (rebuild the set)"
            raise UsageError(msg)
        with np.load(path, allow_pickle=False) as z:
            xs.append(np.asarray(z["data"], np.float32))
            ps.append(np.asarray(z["previous"], np.float32))
    return {
        "x": np.stack(xs),
        "previous": np.stack(ps),
        "y": np.array([int(e["label"]) for e in samples], np.int64),
        "region": np.array([gi[e["region"]] for e in samples], np.int64),
        "split": np.array([parts[e["split"]] for e in samples], np.int64),
        "hours_before": np.array([float(e["hours_before"]) for e in samples]),
        "mu_centre": np.array([float(e["mu_centre"]) for e in samples]),
        "ids": [e["id"] for e in samples],
        "regions": groups,
        "root": str(root),
        "manifest": manifest,
    }
