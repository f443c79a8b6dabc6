"""The stand-in's archive: a directory of FITS files indexed by their real headers.

Files are named the way JSOC's default ``filenamefmt`` names them,
``<series>.<pk values...>.<segment>.fits`` (e.g.
``hmi.sharp_cea_720s.377.20110215_020000_TAI.Br.fits``): the series and segment come from
the name, the primekey and keyword values from the header. An optional ``standin.toml`` in
the directory adds names a series is also served under (``[serve_as]``, so real definitive
SHARPs can stand in for the NRT series in a replay) and a provenance note.

:class:`ReplayClock` is the time warp: a record "appears" when the replay clock passes its
``T_REC`` plus the simulated latency, so a replay advances like the live JSOC does.
"""

from __future__ import annotations

import itertools
import math
import random
import re
import threading
import time
import tomllib
import warnings
from bisect import bisect_right
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from astropy.io import fits
from astropy.time import Time

from heliowatch.pipelines.fitsio import header_value
from heliowatch.pipelines.standin.recordset import KeySelector, RecordSet, RecordSetError

__all__ = ["SERIES_PRIMEKEYS", "Archive", "ArchiveRecord", "ReplayClock", "demo_archive_path"]

#: Primekeys of the series heliowatch uses (drms tests; stack-notes A1.5).
SERIES_PRIMEKEYS: dict[str, list[str]] = {
    "hmi.M_720s": ["T_REC", "CAMERA"],
    "hmi.M_720s_nrt": ["T_REC", "CAMERA"],
    "hmi.sharp_cea_720s": ["HARPNUM", "T_REC"],
    "hmi.sharp_cea_720s_nrt": ["HARPNUM", "T_REC"],
    "hmi.sharp_720s": ["HARPNUM", "T_REC"],
    "hmi.sharp_720s_nrt": ["HARPNUM", "T_REC"],
    "aia.lev1": ["T_REC", "FSN"],
    "aia.lev1_nrt2": ["T_REC", "FSN"],
    "aia.lev1_euv_12s": ["T_REC", "WAVELNTH"],
}


def demo_archive_path() -> Path:
    """The archive bundled with heliowatch (real SHARP patches + synthetic frames)."""
    return Path(str(resources.files("heliowatch.pipelines").joinpath("data/demo_archive")))


TIME_KEYS = frozenset({"T_REC", "T_OBS", "DATE", "DATE-OBS", "DATE_OBS", "T_REC_EPOCH", "T_OBS_EPOCH"})

# FITS structure, compression and checksum cards are not DRMS keywords.
_STRUCTURAL = re.compile(
    r"^(SIMPLE|BITPIX|NAXIS\d*|EXTEND|XTENSION|PCOUNT|GCOUNT|TFIELDS|TTYPE\d+|TFORM\d+|Z\w*|CHECKSUM|DATASUM|"
    r"COMMENT|HISTORY|BLANK|BZERO|BSCALE|)$"
)

_JSOC_TIME = re.compile(r"^(\d{4})\.(\d\d)\.(\d\d)_(\d\d):(\d\d)(?::(\d\d(?:\.\d*)?))?_?(TAI|UTC|UT)?$")


def jsoc_time_to_unix(text: str) -> float:
    """Convert a JSOC or ISO time string to Unix seconds (UTC), honouring its scale."""
    s = text.strip()
    m = _JSOC_TIME.match(s)
    if m:
        y, mo, d, hh, mm, ss, scale = m.groups()
        iso = f"{y}-{mo}-{d}T{hh}:{mm}:{ss or '00'}"
        t = Time(iso, scale="tai" if scale == "TAI" else "utc")
    else:
        t = Time(s.rstrip("Z"), scale="utc")
    return float(t.utc.unix)


def unix_to_jsoc_tai(ts: float) -> str:
    """Unix seconds (UTC) to JSOC's ``YYYY.MM.DD_hh:mm:ss_TAI``."""
    return str(Time(ts, format="unix", scale="utc").tai.strftime("%Y.%m.%d_%H:%M:%S_TAI"))


@dataclass
class ArchiveRecord:
    """One DRMS record: its primekey values, keywords and segment files."""

    series: str
    pkeys: tuple[str, ...]
    keywords: dict[str, Any]
    segments: dict[str, Path] = field(default_factory=dict)
    t_rec_unix: float = 0.0
    recnum: int = 0
    extra_delay_s: float = 0.0

    @property
    def name(self) -> str:
        """The record name JSOC prints, e.g. ``hmi.sharp_cea_720s_nrt[377][2011.02.15_02:00:00_TAI]``."""
        return self.series + "".join(f"[{v}]" for v in self.pkeys)


class ReplayClock:
    """Archive time as a replay advances, with long gaps compressed.

    Parameters
    ----------
    times : list of float
        Unix times (UTC) at which records become visible.
    speed : float
        Archive seconds per wall-clock second.
    max_gap_s : float
        A gap between consecutive visibility times longer than this is compressed to it.
    """

    def __init__(self, times: list[float], *, speed: float = 60.0, max_gap_s: float = 3600.0) -> None:
        ts = sorted(set(times)) or [time.time()]
        self._archive = ts
        virt = [0.0]
        for a, b in itertools.pairwise(ts):
            virt.append(virt[-1] + min(b - a, max_gap_s))
        self._virtual = virt
        self.max_gap_s = max_gap_s
        self.speed = speed
        self._lock = threading.Lock()
        self._wall0 = time.monotonic()
        self._virt0 = 0.0
        self._frozen: float | None = None

    @property
    def end(self) -> float:
        """Archive time of the last visibility event."""
        return self._archive[-1]

    @property
    def start(self) -> float:
        """Archive time of the first visibility event."""
        return self._archive[0]

    def _virt_to_archive(self, v: float) -> float:
        if v <= 0:
            return self._archive[0] + v
        i = bisect_right(self._virtual, v) - 1
        if i >= len(self._virtual) - 1:
            # The replay is over: time stops one gap after the last record (no runaway clock).
            return self._archive[-1] + min(v - self._virtual[-1], self.max_gap_s)
        v0, v1 = self._virtual[i], self._virtual[i + 1]
        a0, a1 = self._archive[i], self._archive[i + 1]
        return a0 + (a1 - a0) * (v - v0) / (v1 - v0) if v1 > v0 else a1

    def now(self) -> float:
        """Current archive time (Unix seconds, UTC)."""
        with self._lock:
            if self._frozen is not None:
                return self._frozen
            v = self._virt0 + (time.monotonic() - self._wall0) * self.speed
        return self._virt_to_archive(v)

    def monotonic(self) -> float:
        """Wall-clock monotonic seconds (intervals between polls are real time, scaled by the caller)."""
        return time.monotonic()

    def restart(self) -> None:
        """Start the replay afresh from its first record (when the daemon is ready: building
        products, loading and exporting models take wall time the replay must not skip)."""
        with self._lock:
            self._wall0 = time.monotonic()
            self._virt0 = 0.0

    def freeze_at(self, archive_time: float) -> None:
        """Stop the clock at ``archive_time`` (tests, ``--once``)."""
        with self._lock:
            self._frozen = archive_time

    def jump_to_end(self) -> None:
        """Make every record visible (``--once`` replays)."""
        self.freeze_at(self.end + 1.0)

    def finished(self) -> bool:
        """Whether the clock has passed the last record."""
        return self.now() >= self.end

    def _archive_to_virt(self, t: float) -> float:
        a, v = self._archive, self._virtual
        if t <= a[0]:
            return t - a[0]
        i = bisect_right(a, t) - 1
        if i >= len(a) - 1:
            return v[-1] + min(t - a[-1], self.max_gap_s)
        return v[i] + (v[i + 1] - v[i]) * (t - a[i]) / (a[i + 1] - a[i])

    def elapsed(self, since: float) -> float:
        """Replay seconds from archive time ``since`` to now, with the archive's gaps compressed
        as the replay plays them (how old a record is to someone watching the replay)."""
        return self._archive_to_virt(self.now()) - self._archive_to_virt(since)


class Archive:
    """The records of a directory of FITS files, by series.

    Parameters
    ----------
    root : pathlib.Path
        Directory scanned recursively for ``*.fits``.
    latency_s : float
        Simulated JSOC latency added to each record's T_REC to get its visibility time.
    aia_out_of_order_s : float
        Extra random delay (seeded) for AIA records, so they arrive out of time order.
    latency_jitter_s : float
        Extra random delay (seeded, uniform in 0..this) for every record: the JSOC's processing
        time varies, so records do not appear in step with any poll schedule.
    seed : int
        Seed of that randomness.
    """

    def __init__(
        self,
        root: Path,
        *,
        latency_s: float = 0.0,
        aia_out_of_order_s: float = 0.0,
        latency_jitter_s: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            msg = f"archive directory {self.root} does not exist"
            raise FileNotFoundError(msg)
        self.latency_s = latency_s
        self.serve_as: dict[str, list[str]] = {}
        self.provenance = ""
        manifest = self.root / "standin.toml"
        if manifest.exists():
            meta = tomllib.loads(manifest.read_text())
            self.serve_as = {k: list(v) for k, v in meta.get("serve_as", {}).items()}
            self.provenance = meta.get("provenance", "")
        self.records: dict[str, list[ArchiveRecord]] = {}
        self._by_path: dict[str, tuple[ArchiveRecord, str]] = {}
        self._scan()
        rng = random.Random(seed)
        for series, recs in self.records.items():
            for r in recs:
                if aia_out_of_order_s and series.startswith("aia."):
                    r.extra_delay_s = rng.uniform(0, aia_out_of_order_s)
                if latency_jitter_s:
                    r.extra_delay_s += rng.uniform(0, latency_jitter_s)

    # -- indexing ---------------------------------------------------------------------------
    def _scan(self) -> None:
        index: dict[tuple[str, tuple[str, ...]], ArchiveRecord] = {}
        for path in sorted(self.root.rglob("*.fits")):
            parts = path.name.split(".")
            if len(parts) < 4:
                continue
            series, segment = f"{parts[0]}.{parts[1]}", parts[-2]
            pkeys_names = SERIES_PRIMEKEYS.get(series)
            if pkeys_names is None:
                continue
            header = _read_header(path)
            pk = tuple(str(_format_pkey(k, header_value(header, k))) for k in pkeys_names)
            for name in [series, *self.serve_as.get(series, [])]:
                key = (name, pk)
                rec = index.get(key)
                if rec is None:
                    kw = _keywords(header)
                    rec = ArchiveRecord(series=name, pkeys=pk, keywords=kw)
                    t = kw.get("T_REC")
                    rec.t_rec_unix = jsoc_time_to_unix(t) if isinstance(t, str) else 0.0
                    index[key] = rec
                rec.segments[segment] = path
        recnum = 1000
        for (series, _), rec in sorted(index.items(), key=lambda kv: (kv[0][0], kv[1].t_rec_unix, kv[0][1])):
            recnum += 1
            rec.recnum = recnum
            self.records.setdefault(series, []).append(rec)
            for seg in rec.segments:
                self._by_path[self.sum_path(rec, seg)] = (rec, seg)

    @staticmethod
    def sum_path(rec: ArchiveRecord, segment: str) -> str:
        """The SUMS-like path JSOC gives a segment file (``/SUM1/D1001/S00000/Br.fits``)."""
        return f"/SUM{rec.recnum % 7 + 1}/D{rec.recnum}/S00000/{segment}.fits"

    def file_for(self, sum_path: str) -> tuple[ArchiveRecord, str, Path] | None:
        """Resolve a SUMS path back to its record, segment and file."""
        hit = self._by_path.get("/" + sum_path.lstrip("/"))
        if hit is None:
            return None
        rec, seg = hit
        return rec, seg, rec.segments[seg]

    # -- queries ----------------------------------------------------------------------------
    def resolve(self, series: str) -> str | None:
        """The archive's spelling of a series name (DRMS names are case-insensitive)."""
        if series in self.records:
            return series
        low = series.lower()
        return next((name for name in self.records if name.lower() == low), None)

    def series_names(self) -> list[str]:
        """Names of the series in the archive."""
        return sorted(self.records)

    def visible_at(self, rec: ArchiveRecord) -> float:
        """When a record appears at the (simulated) JSOC."""
        return rec.t_rec_unix + self.latency_s + rec.extra_delay_s

    def visibility_times(self) -> list[float]:
        """All visibility times, for the replay clock."""
        return [self.visible_at(r) for recs in self.records.values() for r in recs]

    def select(self, rs: RecordSet, *, now: float | None = None) -> list[ArchiveRecord]:
        """Records matching a record set, in primekey order, among those visible at ``now``."""
        name = self.resolve(rs.series)
        if name is None:
            msg = f"series {rs.series} does not exist"
            raise RecordSetError(msg)
        rs.series = name
        recs = self.records[name]
        pk_names = SERIES_PRIMEKEYS[_base_series(rs.series, self.serve_as)]
        if len(rs.keys) > len(pk_names):
            msg = f"too many primekey brackets for {rs.series} (primekeys {','.join(pk_names)})"
            raise RecordSetError(msg)
        cand = [r for r in recs if now is None or self.visible_at(r) <= now]
        for i, sel in enumerate(rs.keys):
            cand = _apply_selector(cand, i, pk_names[i], sel)
        for flt in rs.filters:
            cand = [r for r in cand if flt.matches(r.keywords.get(flt.key))]
        return sorted(cand, key=lambda r: tuple(_sort_key(k, v, r) for k, v in zip(pk_names, r.pkeys, strict=True)))


def _base_series(series: str, serve_as: dict[str, list[str]]) -> str:
    if series in SERIES_PRIMEKEYS:
        return series
    for base, aliases in serve_as.items():
        if series in aliases:
            return base
    return series


def _sort_key(name: str, value: str, rec: ArchiveRecord) -> Any:
    if name == "T_REC":
        return rec.t_rec_unix
    try:
        return float(value)
    except ValueError:
        return math.inf


def _pk_number(name: str, value: str) -> float:
    if name in TIME_KEYS:
        return jsoc_time_to_unix(value)
    return float(value)


def _apply_selector(recs: list[ArchiveRecord], i: int, name: str, sel: KeySelector) -> list[ArchiveRecord]:
    if sel.kind == "all" or not recs:
        return recs

    def val(r: ArchiveRecord) -> float:
        return r.t_rec_unix if name == "T_REC" else _pk_number(name, r.pkeys[i])

    if sel.kind in ("last", "first"):
        target = max(val(r) for r in recs) if sel.kind == "last" else min(val(r) for r in recs)
        return [r for r in recs if abs(val(r) - target) < 0.5]
    try:
        if sel.kind == "values":
            wanted = [_pk_number(name, v) for v in sel.values]
            return [r for r in recs if any(abs(val(r) - w) < 0.5 for w in wanted)]
        lo = _pk_number(name, sel.lo) if sel.lo is not None else -math.inf
        hi = lo + sel.duration_s if sel.duration_s is not None else (_pk_number(name, sel.hi) if sel.hi else math.inf)
    except ValueError as e:
        msg = f"bad value for primekey {name}: {e}"
        raise RecordSetError(msg) from e
    # A JSOC duration [t/1h] is half-open; an explicit range [a-b] includes b.
    inclusive_hi = sel.duration_s is None
    out = [r for r in recs if lo <= val(r) and (val(r) <= hi if inclusive_hi else val(r) < hi)]
    if sel.cadence_s:
        out = [r for r in out if (val(r) - lo) % sel.cadence_s < 0.5 or sel.cadence_s - (val(r) - lo) % sel.cadence_s < 0.5]
    return out


def _format_pkey(name: str, value: Any) -> Any:
    if value is None:
        msg = f"primekey {name} is missing"
        raise ValueError(msg)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value.strip() if isinstance(value, str) else value


def _read_header(path: Path) -> fits.Header:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with fits.open(path, lazy_load_hdus=True) as hdul:
            for h in hdul:
                if h.header.get("ZNAXIS", h.header.get("NAXIS", 0)):
                    return h.header.copy()
            return hdul[0].header.copy()


def _keywords(header: fits.Header) -> dict[str, Any]:
    out: dict[str, Any] = {}
    # Real JSOC headers carry cards astropy "fixes" with a VerifyWarning ('nan' reals).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for card in header.cards:
            k = card.keyword
            if not k or _STRUCTURAL.match(k) or k in out:
                continue
            out[k] = header_value(header, k)
    return out
