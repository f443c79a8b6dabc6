"""NOAA SWPC Solar Region Summary (SRS): parsing, archives, the live feed, and matching.

The SRS is issued daily at 0030 UT. Report ``YYYYMMDDSRS.txt`` is compiled from the
observations of the previous UTC day, with region locations valid at 2400Z of that day
(= 00:00 of the issue day). Two ways of picking a report follow from that:

- :meth:`SRSArchive.latest_issued` for operations: the newest report issued before a time, so
  nothing from the future is used;
- :meth:`SRSArchive.describing_day` for evaluation: the report compiled from the observations of
  a time's UTC day (issued the next day), which is the class NOAA assigned for that day.

The parser is line-based and tolerant: real files carry "Corrected Copy" banners, correction
notes, missing columns (``Lo``, ``NN``, ``Mag Type``), "None" inside a section, and files cut
off after a header. ``sunpy.io.special.srs.read_srs`` fails on nine files of 2010-2019; this
parser reads all of them and reports what it skipped in ``SRSReport.skipped``.

NOAA numbers are printed with four digits; since region 10000 (June 2002) the full number is
the printed one plus 10000, which :func:`parse_srs` restores.
"""

from __future__ import annotations

import datetime as dt
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from heliowatch.models.regions.tracking import match_position
from heliowatch.pipelines import swpc
from heliowatch.pipelines.errors import DataRejected

__all__ = ["SRSArchive", "SRSFeed", "SRSRegion", "SRSReport", "fetch_latest", "match_noaa", "normalise_magtype", "parse_srs"]

_NAME = re.compile(r"(\d{8})SRS\.txt$")
_ISSUED = re.compile(r"Issued at (\d{4})Z on (\d{1,2}) (\w{3}) (\d{4})", re.IGNORECASE)
_ISSUED_PRODUCT = re.compile(r":Issued:\s*(\d{4}) (\w{3}) (\d{1,2}) (\d{4}) UTC", re.IGNORECASE)
_SPOT_LINE = re.compile(
    r"^(?P<nmbr>\d{4,5})\s+(?P<ns>[NS])(?P<lat>\d{2})(?P<ew>[EW])(?P<lon>\d{2,3})"
    r"(?:\s+(?P<lo>\d{3})(?!\d))?(?:\s+(?P<area>\d{4})(?!\d))?(?:\s+(?P<z>[A-Za-z]{3})(?![A-Za-z]))?"
    r"(?:\s+(?P<ll>\d{1,2})(?!\d))?(?:\s+(?P<nn>\d{1,3})(?!\d))?(?:\s+(?P<mag>[A-Za-z][A-Za-z-]*))?\s*$"
)
_PLAGE_LINE = re.compile(r"^(?P<nmbr>\d{4,5})\s+(?P<ns>[NS])(?P<lat>\d{2})(?P<ew>[EW])(?P<lon>\d{2,3})(?:\s+(?P<lo>\d{3}))?\s*$")
_MAX_BYTES = 200_000  # a real SRS is ~1-3 kB; anything far larger is not one

#: SRS spellings -> heliowatch's Mt. Wilson class names.
_MAGTYPES = {
    "alpha": "alpha",
    "beta": "beta",
    "gamma": "gamma",
    "beta-gamma": "beta-gamma",
    "delta": "delta",
    "beta-delta": "beta-delta",
    "beta-gamma-delta": "beta-gamma-delta",
    "gamma-delta": "gamma-delta",
    "alpha-gamma": "alpha-gamma",  # rare in old reports; kept verbatim
}


def normalise_magtype(text: str | None) -> str | None:
    """``'Beta-Gamma-Delta'`` -> ``'beta-gamma-delta'``; None for an empty or unknown class."""
    if not text:
        return None
    return _MAGTYPES.get(text.strip().lower())


@dataclass(frozen=True)
class SRSRegion:
    """One region of an SRS (section I: with spots; IA: H-alpha plage without spots)."""

    noaa: int
    lat: float  # heliographic latitude, deg, north > 0
    lon: float  # Stonyhurst longitude at the report's valid time, deg, west > 0
    carrington_lon: float | None
    area_uhem: float | None
    mcintosh: str | None
    extent_deg: float | None  # LL: longitudinal extent
    n_spots: int | None  # NN
    mtwilson: str | None
    spotted: bool = True


@dataclass
class SRSReport:
    """One daily report."""

    issued: dt.datetime  # UTC
    regions: list[SRSRegion] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # lines not understood (banners, notes)
    source: str = ""

    @property
    def valid(self) -> dt.datetime:
        """When the locations are valid: 2400Z of the observing day = 00:00 of the issue day."""
        return self.issued.replace(hour=0, minute=0, second=0, microsecond=0)

    @property
    def observing_day(self) -> dt.date:
        """The UTC day whose observations the report summarises."""
        return (self.valid - dt.timedelta(days=1)).date()

    def region(self, noaa: int) -> SRSRegion | None:
        """The region with this NOAA number (spotted regions first), or None."""
        hits = [r for r in self.regions if r.noaa == noaa]
        hits.sort(key=lambda r: not r.spotted)
        return hits[0] if hits else None


def _full_number(n: int, issued: dt.datetime) -> int:
    return n + 10000 if n < 10000 and issued >= dt.datetime(2002, 6, 14, tzinfo=dt.UTC) else n


def _issued(text: str, name: str) -> dt.datetime:
    m = _ISSUED.search(text)
    if m:
        hhmm, day, mon, year = m.groups()
        d = dt.datetime.strptime(f"{day} {mon} {year}", "%d %b %Y")
        return d.replace(hour=int(hhmm[:2]), minute=int(hhmm[2:]), tzinfo=dt.UTC)
    m = _ISSUED_PRODUCT.search(text)
    if m:
        year, mon, day, hhmm = m.groups()
        d = dt.datetime.strptime(f"{day} {mon} {year}", "%d %b %Y")
        return d.replace(hour=0, minute=30, tzinfo=dt.UTC)  # the product time, not the upload time
    msg = f"{name}: no 'Issued at HHMMZ on DD Mon YYYY' line; not an SRS"
    raise DataRejected(msg)


def parse_srs(text: str, name: str = "SRS") -> SRSReport:
    """Parse one SRS text.

    Raises
    ------
    DataRejected
        When the text has no issue line or no section I header (not an SRS).
    """
    issued = _issued(text, name)
    if not re.search(r"^I\.\s+Regions with Sunspots", text, re.MULTILINE | re.IGNORECASE):
        msg = f"{name}: no 'I.  Regions with Sunspots' section; not an SRS"
        raise DataRejected(msg)
    rep = SRSReport(issued=issued, source=name)
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith((":", "#")):
            continue
        head = line.split()[0].upper()
        if head in {"I.", "IA.", "II."}:
            section = head
            continue
        if head in {"NMBR", "NONE"} or section in {"", "II."}:
            continue
        m = (_SPOT_LINE if section == "I." else _PLAGE_LINE).match(line)
        if m is None:
            rep.skipped.append(line)
            continue
        g = m.groupdict()
        lat = float(g["lat"]) * (1 if g["ns"] == "N" else -1)
        lon = float(g["lon"]) * (1 if g["ew"] == "W" else -1)
        spotted = section == "I."
        rep.regions.append(
            SRSRegion(
                noaa=_full_number(int(g["nmbr"]), issued),
                lat=lat,
                lon=lon,
                carrington_lon=float(g["lo"]) if g.get("lo") else None,
                area_uhem=float(g["area"]) if spotted and g.get("area") else None,
                mcintosh=g["z"].capitalize() if spotted and g.get("z") else None,
                extent_deg=float(g["ll"]) if spotted and g.get("ll") else None,
                n_spots=int(g["nn"]) if spotted and g.get("nn") else None,
                mtwilson=normalise_magtype(g.get("mag")) if spotted else None,
                spotted=spotted,
            )
        )
    return rep


def _decode(raw: bytes, name: str) -> str:
    if len(raw) > _MAX_BYTES:
        msg = f"{name}: {len(raw)} bytes is too large for an SRS"
        raise DataRejected(msg)
    return raw.decode("ascii", errors="replace")


class SRSArchive:
    """Daily reports from a directory of ``YYYYMMDDSRS.txt`` files and/or yearly ``*.tar.gz``.

    Loose files win over tarball members of the same day, so corrected copies can be dropped
    next to the tarballs.
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            msg = f"SRS directory {self.root} does not exist"
            raise DataRejected(msg)
        self._where: dict[dt.date, tuple[Path, str | None]] = {}
        for tgz in sorted(self.root.glob("*.tar.gz")):
            with tarfile.open(tgz) as tf:
                for member in tf.getnames():
                    m = _NAME.search(member)
                    if m:
                        self._where[_day(m.group(1))] = (tgz, member)
        for txt in sorted(self.root.glob("*SRS.txt")):
            m = _NAME.search(txt.name)
            if m:
                self._where[_day(m.group(1))] = (txt, None)
        self._cache: dict[dt.date, SRSReport] = {}
        self._tars: dict[Path, tarfile.TarFile] = {}

    def __len__(self) -> int:
        return len(self._where)

    @property
    def days(self) -> list[dt.date]:
        """Issue days available, sorted."""
        return sorted(self._where)

    def report(self, issued_day: dt.date) -> SRSReport | None:
        """The report issued on this UTC day, or None when the archive lacks it."""
        if issued_day in self._cache:
            return self._cache[issued_day]
        where = self._where.get(issued_day)
        if where is None:
            return None
        path, member = where
        if member is None:
            raw = path.read_bytes()
            name = path.name
        else:
            tf = self._tars.get(path) or self._tars.setdefault(path, tarfile.open(path))
            fh = tf.extractfile(member)
            if fh is None:
                return None
            raw, name = fh.read(), f"{path.name}:{member}"
        rep = parse_srs(_decode(raw, name), name)
        self._cache[issued_day] = rep
        return rep

    def latest_issued(self, t: dt.datetime, *, max_age_days: int = 3) -> SRSReport | None:
        """The newest report issued at or before ``t`` (operations: no look-ahead)."""
        for back in range(max_age_days + 1):
            rep = self.report((t - dt.timedelta(days=back)).date())
            if rep is not None and rep.issued <= t:
                return rep
        return None

    def describing_day(self, t: dt.datetime) -> SRSReport | None:
        """The report compiled from the observations of ``t``'s UTC day (evaluation)."""
        return self.report(t.date() + dt.timedelta(days=1))

    def iter_reports(self, start: dt.date | None = None, end: dt.date | None = None) -> Iterator[SRSReport]:
        """Every report issued in ``[start, end]``, in order."""
        for d in self.days:
            if (start is None or d >= start) and (end is None or d <= end):
                rep = self.report(d)
                if rep is not None:
                    yield rep

    def close(self) -> None:
        """Close the open tarballs."""
        for tf in self._tars.values():
            tf.close()
        self._tars.clear()


def _day(yyyymmdd: str) -> dt.date:
    return dt.date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:]))


def match_noaa(lat: float, lon: float, t_utc: str, report: SRSReport, *, max_deg: float = 6.0) -> SRSRegion | None:
    """The SRS region nearest a detection, rotating the report's locations to ``t_utc``.

    Only spotted regions are considered: a detection of a magnetic region without spots is
    not an SRS section-I region, and plage locations are coarse.
    """
    valid = report.valid.isoformat().replace("+00:00", "Z")
    cands: list[dict[str, Any]] = [
        {"hgs_lat": r.lat, "hgs_lon": r.lon, "t_rec_utc": valid, "region": r} for r in report.regions if r.spotted
    ]
    hit = match_position(lat, lon, t_utc, cands, max_deg=max_deg, max_hours=72.0)
    return None if hit is None else hit["region"]


def fetch_latest(url: str, dest_dir: Path, *, timeout_s: float = 30.0) -> Path:
    """Download the current SRS (SWPC's ``text/srs.txt``) into ``dest_dir/YYYYMMDDSRS.txt``.

    The text is parsed before it is stored, so a truncated or wrong download never replaces a
    good report; the file is written to ``.part`` and renamed.
    """
    raw = swpc.fetch(url, timeout_s=timeout_s, max_bytes=_MAX_BYTES)
    rep = parse_srs(_decode(raw, url), url)
    dest_dir.mkdir(parents=True, exist_ok=True)
    out = dest_dir / f"{rep.issued:%Y%m%d}SRS.txt"
    part = out.with_suffix(".txt.part")
    part.write_bytes(raw)
    part.replace(out)
    return out


class SRSFeed:
    """The reports a running daemon sees: a directory, refreshed from SWPC when ``url`` is set.

    A failed fetch keeps the reports already on disk (logged by the caller). The directory is
    re-indexed when its modification time changes, so reports dropped in by another process
    (a cron job syncing SWPC's archive) are picked up without a restart.
    """

    def __init__(self, root: Path, *, url: str | None = None, refresh_s: float = 3600.0) -> None:
        self.root = root
        self.url = url
        self.refresh_s = refresh_s
        self._fetched_at: float | None = None
        self._archive: SRSArchive | None = None
        self._indexed: tuple[int, int] | None = None

    def refresh(self, now_s: float) -> Path | None:
        """Fetch the current report if ``url`` is set and the last fetch is older than ``refresh_s``.

        Raises
        ------
        FeedError, DataRejected
            When the feed is unreachable or returns something that is not an SRS.
        """
        if self.url is None or (self._fetched_at is not None and now_s - self._fetched_at < self.refresh_s):
            return None
        self._fetched_at = now_s
        return fetch_latest(self.url, self.root)

    def latest_issued(self, t: dt.datetime) -> SRSReport | None:
        """The newest report issued at or before ``t``; None when there is none (or no directory)."""
        if not self.root.is_dir():
            return None
        # Modification time and entry count: coarse file-system clocks can give two quick
        # writes the same mtime, never the same count.
        sig = (self.root.stat().st_mtime_ns, sum(1 for _ in self.root.iterdir()))
        if self._archive is None or sig != self._indexed:
            if self._archive is not None:
                self._archive.close()
            self._archive, self._indexed = SRSArchive(self.root), sig
        return self._archive.latest_issued(t)
