"""Incremental ingest of one JSOC source: query what is new, fetch it safely, record it.

One :class:`Ingestor` per source (magnetogram, SHARP, AIA). A poll:

1. queries the keywords of records since the series' high-water mark (minus a reorder
   window for AIA, whose NRT frames arrive out of time order) or, on a first run, since
   ``lookback_hours`` ago: a keyword-only query, cheap enough to run every minute;
2. drops records already ingested, finally rejected or deferred (natural key: series + record
   name), and those still waiting out their retry backoff;
3. skips records with a non-zero QUALITY word (counted, never retried);
4. exports and downloads each remaining record's segments (hashed while they stream), verifies
   and reads every file once, moves it into the frame store and records it together with the
   new high-water mark in one transaction; a record whose transfer or file fails is retried on
   later polls with exponential backoff (:class:`RetryBackoff`: 2 min doubling to 1 h, about 3 h
   over :data:`MAX_ATTEMPTS` attempts), then *deferred*: parked, never given up, until
   ``heliowatch rejects --requeue`` or the gap audit re-queues it. Only a bad QUALITY word is final;
5. returns the new :class:`~heliowatch.pipelines.frames.VerifiedFrame` objects. It does not
   run the products: the daemon's fan-out does, and marks each (product, record) processed.

Keyword values from the query are merged into each segment's header and kept in a JSON
sidecar next to each file, since ``as-is`` files carry no keywords.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import structlog

from heliowatch.models.core.times import Clock, SystemClock, iso_from_unix, unix_from_iso, utc_to_tai_string
from heliowatch.pipelines.errors import DataRejected, SourceUnavailable, local_io_error
from heliowatch.pipelines.frames import Source, VerifiedFrame, merge_keywords, sidecar_keywords
from heliowatch.pipelines.jsoc import SOURCE_KEYS, JsocClient, RemoteRecord

__all__ = ["MAX_ATTEMPTS", "FrameRecord", "IngestObserver", "IngestState", "Ingestor", "PollResult", "RetryBackoff", "local_name"]

log = structlog.get_logger(__name__)

#: A record whose transfer or file fails this many times is deferred (kept for a re-queue, not retried by polls).
MAX_ATTEMPTS = 8


@dataclass(frozen=True)
class RetryBackoff:
    """How long a rejected record waits before its next attempt: ``base_s`` doubling per attempt up
    to ``max_s`` (archive seconds), divided by ``speed`` (a replay's clock speed) into real seconds.

    Measured on the monotonic clock and held in memory: a restart retries at its first poll.
    """

    base_s: float = 120.0
    max_s: float = 3600.0
    speed: float = 1.0

    def delay(self, attempts: int) -> float:
        """Real seconds to wait after the ``attempts``-th failure."""
        return min(self.max_s, self.base_s * 2 ** max(0, attempts - 1)) / self.speed


@dataclass(frozen=True)
class FrameRecord:
    """One verified segment file of one record, ready to be recorded."""

    series: str
    record: str
    segment: str
    t_rec_utc: str
    quality: int
    path: str
    size: int
    sha256: str
    fsn: int | None = None
    wavelength: int | None = None
    harpnum: int | None = None
    latency_s: float | None = None


class IngestState(Protocol):
    """What ingest needs of the state database (the daemon's state store implements it)."""

    def high_water(self, series: str) -> tuple[str, int | None] | None:
        """``(t_rec_utc, fsn)`` of the newest ingested record of a source, or None."""
        ...

    def known_records(self, series: str, records: list[str]) -> set[str]:
        """The subset of ``records`` already ingested."""
        ...

    def final_rejects(self, series: str) -> set[str]:
        """Records that will not be retried."""
        ...

    def deferred_rejects(self, series: str) -> set[str]:
        """Records parked after their attempts (retried only once re-queued)."""
        ...

    def retryable_among(self, series: str, records: list[str]) -> set[str]:
        """The subset of ``records`` that are rejects still to be retried."""
        ...

    def oldest_retry(self, series: str) -> str | None:
        """T_REC (UTC) of the oldest record still to be retried."""
        ...

    def note_reject(self, series: str, record: str, reason: str, *, t_rec_utc: str, final: bool, max_attempts: int) -> int:
        """Count a failed attempt; returns the attempt count."""
        ...

    def record_frames(self, items: list[FrameRecord], *, hw_key: str | None = None) -> int:
        """Record the segment files of one record and advance the high-water mark, atomically."""
        ...


class IngestObserver(Protocol):
    """What ingest reports (the daemon's metrics implement it)."""

    def ingested(self, source: str, *, nbytes: int, latency_s: float | None, t_rec_unix: float) -> None:
        """One record of ``source`` was ingested."""
        ...

    def rejected(self, source: str, reason: str) -> None:
        """One record was refused for ``reason``."""
        ...

    def polled(self, source: str, at: float) -> None:
        """A poll of ``source`` finished at Unix time ``at``."""
        ...


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
    #: Rejects waiting out their backoff (not tried this poll).
    waiting: int = 0
    #: Records at the source still to be retried after this poll (waiting or just failed again).
    retrying: int = 0
    #: Records that ran out of attempts in this poll.
    deferred: int = 0
    frames: list[VerifiedFrame] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Counts as a dict for the log line."""
        return {k: v for k, v in self.__dict__.items() if k != "frames"}


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
    state : IngestState
    frames_dir : pathlib.Path
        Root of the frame store (``<state_dir>/frames``).
    clock : Clock
        "Now" (the replay clock in a replay).
    observer : IngestObserver or None
    lookback_hours, max_records : float, int
        First-poll window and per-poll cap.
    first_start : float or None
        Where a first poll starts (a replay starts at the beginning of its archive).
    ingest_log : pathlib.Path or None
        Append one JSON line per ingested record here.
    max_pixels : int or None
        Refuse files declaring more pixels than this (``read_fits``'s default when None).
    backoff : RetryBackoff or None
        Spacing of the attempts at a rejected record; None retries it at every poll.
    """

    def __init__(
        self,
        source: Source,
        client: JsocClient,
        state: IngestState,
        frames_dir: Path,
        *,
        clock: Clock | None = None,
        observer: IngestObserver | None = None,
        lookback_hours: float = 6.0,
        max_records: int = 200,
        first_start: float | None = None,
        ingest_log: Path | None = None,
        max_pixels: int | None = None,
        backoff: RetryBackoff | None = None,
    ) -> None:
        self.source = source
        self.client = client
        self.state = state
        self.frames_dir = Path(frames_dir)
        self.clock: Clock = clock or SystemClock()
        self.observer = observer
        self.lookback_s = lookback_hours * 3600
        self.max_records = max_records
        self.first_start = first_start
        self.ingest_log = ingest_log
        self.max_pixels = max_pixels
        self.backoff = backoff
        # Record -> monotonic time before which it is not tried again.
        self._retry_at: dict[str, float] = {}

    def _window(self) -> tuple[str, str]:
        now = self.clock.now()
        hw = self.state.high_water(self.source.name)
        if hw:
            start = unix_from_iso(hw[0]) - self.source.reorder_window_s
        elif self.first_start is not None:
            start = self.first_start
        else:
            start = now - self.lookback_s
        retry = self.state.oldest_retry(self.source.series)
        if retry is not None:
            start = min(start, unix_from_iso(retry))
        # Look a little ahead of "now": JSOC slots are labelled by T_REC, not arrival time.
        return utc_to_tai_string(iso_from_unix(start)), utc_to_tai_string(iso_from_unix(now + 3600))

    def poll(self) -> PollResult:
        """Run one poll; see the module docstring.

        Raises
        ------
        SourceUnavailable
            When the JSOC cannot be queried at all (the scheduler counts the failed run
            and the next poll starts from the same high-water mark).
        LocalIOError
            When a file or the state database cannot be written here (a full disk, a
            read-only state directory): the poll stops at that record, which is not counted
            as a reject and is fetched again by a later poll.
        """
        src = self.source
        res = PollResult(source=src.name)
        start, end = self._window()
        records = self.client.query(src.recordset(start, end), SOURCE_KEYS[src.kind])
        res.found = len(records)
        known = self.state.known_records(src.series, [r.name for r in records])
        parked = self.state.final_rejects(src.series) | self.state.deferred_rejects(src.series)
        mono = self.clock.monotonic()
        waiting = {r.name for r in records if self._retry_at.get(r.name, mono) > mono}
        fresh = sorted(
            (r for r in records if r.name not in known and r.name not in parked and r.name not in waiting),
            key=lambda r: (r.t_rec_utc, r.fsn or 0, r.harpnum or 0),
        )
        res.waiting = len(waiting - known - parked)
        res.new = len(fresh)
        res.remaining = max(0, len(fresh) - self.max_records)
        for rec in fresh[: self.max_records]:
            outcome, frame = self.fetch(rec)
            if outcome == "quality":
                res.skipped_quality += 1
            elif frame is None:
                res.rejected += 1
                res.deferred += int(rec.name not in self._retry_at)
            else:
                res.ingested += 1
                res.frames.append(frame)
        res.retrying = len(self.state.retryable_among(src.series, [r.name for r in records]))
        if self.observer is not None:
            self.observer.polled(src.name, self.clock.now())
        if res.new or res.rejected:
            log.info("poll", **res.summary())
        else:
            log.debug("poll", **res.summary())
        return res

    def fetch(self, rec: RemoteRecord, *, hw_key: str | None = None, note: bool = True) -> tuple[str, VerifiedFrame | None]:
        """Export, download, verify and record one record (``hw_key``: the high-water mark to move;
        a backfill uses its own, so the live one never moves for past data). With ``note=False`` a
        failure is only returned, not counted as a reject (the caller retries at once).

        Returns
        -------
        (outcome, frame)
            ``("ok", frame)``, or ``(reason, None)`` when the record was rejected (``quality``:
            never retried; any other reason: retried later).
        """
        if rec.quality is None or rec.quality != 0:
            self._reject(rec, "quality", final=True, detail=f"QUALITY={rec.quality!r}")
            return "quality", None
        try:
            return "ok", self._ingest(rec, hw_key=hw_key)
        except DataRejected as e:
            if note:
                self._reject(rec, e.reason, final=False, detail=str(e))
            return e.reason, None
        except SourceUnavailable as e:
            # The export or a download failed after retries: try again later.
            if note:
                self._reject(rec, "download", final=False, detail=str(e))
            return "download", None
        except OSError as e:
            # A sidecar or the ingest log on a full disk or a read-only store: this machine's
            # fault, not the record's, so no reject is noted; the poll stops and the record is
            # fetched again (or, if already recorded, offered to the products again) later.
            err = local_io_error(e, "frames")
            if err is None:
                raise
            raise err from e

    def _reject(self, rec: RemoteRecord, reason: str, *, final: bool, detail: str) -> None:
        attempts = self.state.note_reject(
            rec.series, rec.name, reason, t_rec_utc=rec.t_rec_utc, final=final, max_attempts=MAX_ATTEMPTS
        )
        deferred = not final and attempts >= MAX_ATTEMPTS
        retry_in: float | None = None
        if final or deferred:
            self._retry_at.pop(rec.name, None)
        else:
            retry_in = self.backoff.delay(attempts) if self.backoff is not None else 0.0
            self._retry_at[rec.name] = self.clock.monotonic() + retry_in
        if self.observer is not None:
            self.observer.rejected(self.source.name, reason)
        log.warning(
            "record_rejected",
            record=rec.name,
            reason=reason,
            attempts=attempts,
            final=final,
            deferred=deferred,
            retry_in_s=None if retry_in is None else round(retry_in, 1),
            detail=detail[:300],
        )

    def _ingest(self, rec: RemoteRecord, *, hw_key: str | None = None) -> VerifiedFrame:
        src = self.source
        segs = ",".join(src.segments)
        pairs = self.client.export_urls(f"{rec.name}{{{segs}}}")
        if not pairs:
            msg = f"{rec.name}: the export listed no files"
            raise DataRejected(msg, "download")
        day = rec.t_rec_utc[:10]
        target_dir = self.frames_dir / _safe(src.series) / day
        paths: dict[str, Path] = {}
        segments = {}
        items: list[FrameRecord] = []
        latency = self._latency(rec)
        for recseg, url in pairs:
            seg = recseg.rsplit("{", 1)[-1].rstrip("}")
            dest = target_dir / f"{local_name(rec.name)}.{seg}.fits"
            got = self.client.download(url, dest, max_pixels=self.max_pixels)
            sidecar_keywords(dest, rec.keywords)
            paths[seg] = dest
            segments[seg] = merge_keywords(got.frame, rec.keywords)
            items.append(
                FrameRecord(
                    series=src.series,
                    record=rec.name,
                    segment=seg,
                    t_rec_utc=rec.t_rec_utc,
                    quality=rec.quality or 0,
                    path=str(dest),
                    size=got.size,
                    sha256=got.sha256,
                    fsn=rec.fsn,
                    wavelength=rec.wavelength,
                    harpnum=rec.harpnum,
                    latency_s=latency,
                )
            )
        self.state.record_frames(items, hw_key=hw_key or src.name)
        self._retry_at.pop(rec.name, None)
        if self.observer is not None:
            self.observer.ingested(
                src.name, nbytes=sum(i.size for i in items), latency_s=latency, t_rec_unix=unix_from_iso(rec.t_rec_utc)
            )
        frame = VerifiedFrame(source=src, record=rec, paths=paths, segments=segments, latency_s=latency)
        self._log(frame)
        return frame

    def _log(self, fr: VerifiedFrame) -> None:
        if self.ingest_log is None:
            return
        line = {
            "series": fr.source.series,
            "record": fr.record.name,
            "t_rec_utc": fr.record.t_rec_utc,
            "wavelength": fr.record.wavelength,
            "harpnum": fr.record.harpnum,
            "latency_s": fr.latency_s,
            "files": {k: str(v) for k, v in fr.paths.items()},
        }
        self.ingest_log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.ingest_log, "a") as f:
            f.write(json.dumps(line) + "\n")

    def _latency(self, rec: RemoteRecord) -> float | None:
        """Record time to availability: JSOC's DATE (processing time) minus T_REC."""
        t_rec = unix_from_iso(rec.t_rec_utc)
        if rec.date_utc:
            lat = unix_from_iso(rec.date_utc) - t_rec
            if lat >= 0:
                return lat
        lat = self.clock.now() - t_rec
        return lat if lat >= 0 else None
