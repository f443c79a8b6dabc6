"""Incremental ingest of one JSOC source: query what is new, fetch it safely, record it.

One :class:`Ingestor` per source (magnetogram, SHARP, AIA). A poll:

1. queries the keywords of records since the series' high-water mark (minus a reorder
   window for AIA, whose NRT frames arrive out of time order) or, on a first run, since
   ``lookback_hours`` ago;
2. drops records already ingested or finally rejected (natural key: series + record name);
3. skips records with a non-zero QUALITY word (counted, never retried);
4. exports and downloads each remaining record's segments, verifies every file, moves it
   into the frame store and records it together with the new high-water mark in one
   transaction; a file that fails verification is retried on later polls, up to a limit;
5. hands the new frames to the product pipelines registered for the source.

Keyword values from the query are kept in a JSON sidecar next to each file and merged
into the header on read (:func:`load_frame`), since ``as-is`` files carry no keywords.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from heliowatch.daemon.errors import DataRejected, SourceUnavailable
from heliowatch.daemon.logs import get_logger
from heliowatch.daemon.state import FrameRecord, StateStore
from heliowatch.pipelines.fitsio import FitsFrame, read_fits, utc_to_tai_string
from heliowatch.pipelines.jsoc import SOURCE_KEYS, JsocClient, RemoteRecord

__all__ = ["IngestedFrame", "Ingestor", "PollResult", "Source", "load_frame"]

log = get_logger(__name__)

#: A record that fails verification this many times is given up (and counted).
MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class Source:
    """One thing to poll: a series, its segments and (for AIA) one wavelength."""

    kind: str  # magnetogram | sharp | aia
    series: str
    segments: tuple[str, ...]
    wavelength: int | None = None
    reorder_window_s: float = 0.0

    @property
    def name(self) -> str:
        """A bounded, human-readable id used as a job name and metric label."""
        return f"{self.series}:{self.wavelength}" if self.wavelength else self.series

    def recordset(self, start_tai: str, end_tai: str) -> str:
        """The record set of this source between two TAI times."""
        window = f"[{start_tai}-{end_tai}]"
        if self.kind == "sharp":
            return f"{self.series}[]{window}"
        if self.kind == "aia":
            return f"{self.series}{window}[? WAVELNTH={self.wavelength} ?]"
        return f"{self.series}{window}"


@dataclass
class IngestedFrame:
    """A record whose segment files are verified and recorded."""

    source: Source
    record: RemoteRecord
    paths: dict[str, Path]
    latency_s: float | None


@dataclass
class PollResult:
    """What one poll did (one summary log event per poll)."""

    source: str
    found: int = 0
    new: int = 0
    ingested: int = 0
    skipped_quality: int = 0
    rejected: int = 0
    remaining: int = 0
    frames: list[IngestedFrame] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Counts as a dict for the log line."""
        return {k: v for k, v in self.__dict__.items() if k != "frames"}


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _unix(iso: str) -> float:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def local_name(record: str) -> str:
    """JSOC-style file stem of a record: ``hmi.sharp_cea_720s_nrt[377][2011.02.15_02:00:00_TAI]``
    becomes ``hmi.sharp_cea_720s_nrt.377.20110215_020000_TAI``."""
    series = record.split("[")[0]
    pks = [p.replace(".", "").replace(":", "").replace("-", "") for p in re.findall(r"\[([^\]]*)\]", record)]
    return _safe(".".join([series, *pks]))


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


class Ingestor:
    """Polls one :class:`Source` into the frame store.

    Parameters
    ----------
    source : Source
    client : JsocClient
    state : StateStore
    frames_dir : pathlib.Path
        Root of the frame store (``<state_dir>/frames``).
    clock : callable
        Returns "now" as Unix seconds (the replay clock in a replay).
    metrics : heliowatch.daemon.metrics.Metrics or None
    lookback_hours, max_records : float, int
        First-poll window and per-poll cap.
    """

    def __init__(
        self,
        source: Source,
        client: JsocClient,
        state: StateStore,
        frames_dir: Path,
        *,
        clock: Callable[[], float] = time.time,
        metrics: Any = None,
        lookback_hours: float = 6.0,
        max_records: int = 200,
        first_start: float | None = None,
    ) -> None:
        self.source = source
        self.client = client
        self.state = state
        self.frames_dir = Path(frames_dir)
        self.clock = clock
        self.metrics = metrics
        self.lookback_s = lookback_hours * 3600
        self.max_records = max_records
        # A replay starts at the beginning of its archive, whatever the replay clock says by the
        # time the first poll runs.
        self.first_start = first_start
        self.handlers: list[Callable[[list[IngestedFrame]], None]] = []

    def _window(self) -> tuple[str, str]:
        now = self.clock()
        hw = self.state.high_water(self.source.name)
        if hw:
            start = _unix(hw[0]) - self.source.reorder_window_s
        elif self.first_start is not None:
            start = self.first_start
        else:
            start = now - self.lookback_s
        retry = self.state.oldest_retry(self.source.series)
        if retry is not None:
            start = min(start, _unix(retry))
        # Look a little ahead of "now": JSOC slots are labelled by T_REC, not arrival time.
        return utc_to_tai_string(_iso(start)), utc_to_tai_string(_iso(now + 3600))

    def poll(self) -> PollResult:
        """Run one poll; see the module docstring.

        Raises
        ------
        SourceUnavailable
            When the JSOC cannot be queried at all (the scheduler counts the failed run
            and the next poll starts from the same high-water mark).
        """
        src = self.source
        res = PollResult(source=src.name)
        start, end = self._window()
        records = self.client.query(src.recordset(start, end), SOURCE_KEYS[src.kind])
        res.found = len(records)
        known = self.state.known_records(src.series, (r.name for r in records))
        given_up = self.state.final_rejects(src.series)
        fresh = sorted(
            (r for r in records if r.name not in known and r.name not in given_up),
            key=lambda r: (r.t_rec_utc, r.fsn or 0, r.harpnum or 0),
        )
        res.new = len(fresh)
        res.remaining = max(0, len(fresh) - self.max_records)
        for rec in fresh[: self.max_records]:
            if rec.quality is None or rec.quality != 0:
                self._reject(rec, "quality", final=True, detail=f"QUALITY={rec.quality!r}")
                res.skipped_quality += 1
                continue
            try:
                frame = self._ingest(rec)
            except DataRejected as e:
                self._reject(rec, e.reason, final=False, detail=str(e))
                res.rejected += 1
                continue
            except SourceUnavailable as e:
                # The export or a download failed after retries: try again next poll.
                self._reject(rec, "download", final=False, detail=str(e))
                res.rejected += 1
                continue
            res.ingested += 1
            res.frames.append(frame)
        if self.metrics is not None:
            self.metrics.last_poll.labels(src.name).set(time.time())
        if res.frames:
            for handler in self.handlers:
                handler(res.frames)
        log.info("poll", **res.summary())
        return res

    def _reject(self, rec: RemoteRecord, reason: str, *, final: bool, detail: str) -> None:
        attempts = self.state.note_reject(
            rec.series, rec.name, reason, t_rec_utc=rec.t_rec_utc, final=final, max_attempts=MAX_ATTEMPTS
        )
        if self.metrics is not None:
            self.metrics.rejected.labels(self.source.name, reason).inc()
        log.warning("record_rejected", record=rec.name, reason=reason, attempts=attempts, final=final, detail=detail[:300])

    def _ingest(self, rec: RemoteRecord) -> IngestedFrame:
        src = self.source
        segs = ",".join(src.segments)
        pairs = self.client.export_urls(f"{rec.name}{{{segs}}}")
        if not pairs:
            msg = f"{rec.name}: the export listed no files"
            raise DataRejected(msg, "download")
        day = rec.t_rec_utc[:10]
        target_dir = self.frames_dir / _safe(src.series) / day
        paths: dict[str, Path] = {}
        items: list[FrameRecord] = []
        latency = self._latency(rec)
        for recseg, url in pairs:
            seg = recseg.rsplit("{", 1)[-1].rstrip("}")
            dest = target_dir / f"{local_name(rec.name)}.{seg}.fits"
            self.client.download(url, dest, series=src.series)
            dest.with_suffix(".keywords.json").write_text(json.dumps(_jsonable(rec.keywords), sort_keys=True))
            size, digest = self.client.file_digest(dest)
            paths[seg] = dest
            items.append(
                FrameRecord(
                    series=src.series,
                    record=rec.name,
                    segment=seg,
                    t_rec_utc=rec.t_rec_utc,
                    quality=rec.quality or 0,
                    path=str(dest),
                    size=size,
                    sha256=digest,
                    fsn=rec.fsn,
                    wavelength=rec.wavelength,
                    harpnum=rec.harpnum,
                    latency_s=latency,
                )
            )
        self.state.record_frames(items, hw_key=src.name)
        if self.metrics is not None:
            m = self.metrics
            m.ingested.labels(src.name).inc()
            m.download_bytes.labels(src.name).inc(sum(i.size for i in items))
            if latency is not None:
                m.latency.labels(src.name).observe(latency)
            m.last_record.labels(src.name).set(_unix(rec.t_rec_utc))
        return IngestedFrame(source=src, record=rec, paths=paths, latency_s=latency)

    def _latency(self, rec: RemoteRecord) -> float | None:
        """Record time to availability: JSOC's DATE (processing time) minus T_REC."""
        t_rec = _unix(rec.t_rec_utc)
        if rec.date_utc:
            lat = _unix(rec.date_utc) - t_rec
            if lat >= 0:
                return lat
        lat = self.clock() - t_rec
        return lat if lat >= 0 else None


def _jsonable(kw: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in kw.items():
        if isinstance(v, float) and v != v:  # NaN is not JSON
            out[k] = None
        else:
            out[k] = v
    return out


def load_frame(path: Path | str) -> FitsFrame:
    """Read an ingested frame with the queried keywords merged into its header.

    ``as-is`` exports carry no keywords in the FITS header (drms tutorial); the query's
    values, saved beside the file at ingest, fill the gaps. Header values already in the
    file win, except where the file's value is missing.
    """
    p = Path(path)
    frame = read_fits(p)
    side = p.with_suffix(".keywords.json")
    if side.exists():
        for k, v in json.loads(side.read_text()).items():
            if v is None or len(k) > 8:
                continue
            if k not in frame.header or frame.header[k] in ("", None):
                frame.header[k] = v
    return frame
