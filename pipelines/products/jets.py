"""The jet product: every AIA 304 A frame of the disk and limb watched for coronal jets.

Per frame, in the three steps of the product interface:

1. :meth:`JetsProduct.analyse` (pure, the expensive part that needs no history): the frame
   checked and calibrated (:mod:`heliowatch.pipelines.aia_calibration`: DN/s, north up,
   pooled to 1.8"/px once, on arrival);
2. :meth:`JetsProduct.advance` (stateful, in time order): the
   :class:`~heliowatch.models.jets.stream.JetStream` (reordering, the network over cached
   tile features, the physics baseline, event merging); it returns the events closed and
   announced by the frame, with cutouts of the frames around them;
3. :meth:`JetsProduct.finish` (pure): a movie strip (PNG), an animated GIF and a
   base-difference overview per event, one store record per closed event (natural key: the
   event's key), HEK ``CJ`` JSON and a VOEvent, and a jet alert with the strip attached when
   a jet is first confirmed (the record follows when it ends).

A rejected frame (not 304 A, no exposure, wrong shape or units, all NaN) is refused with a
one-line reason and counted; the stream goes on. The stream's memory (30 pooled frames and the
cached features) is not saved: after a restart the product replays the last frames it
processed (their files are on disk) without writing anything, and continues with the
detections it had not yet closed (saved with every frame).
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from heliowatch.models.core.times import iso_from_unix, parse_iso
from heliowatch.models.core.vocabulary import ProductKind, RecordKind
from heliowatch.models.jets.events import JetEvent
from heliowatch.models.jets.stream import EventCutout, JetStream, StepResult, StreamParams
from heliowatch.models.runtime.runtime import Runtime
from heliowatch.pipelines.aia_calibration import Calibrated, CalibrationTables, Registration, calibrate
from heliowatch.pipelines.alert_rules import Rules
from heliowatch.pipelines.alerts import Alert
from heliowatch.pipelines.errors import DataRejected
from heliowatch.pipelines.exports import ExportSettings, event_files
from heliowatch.pipelines.frames import Source, VerifiedFrame, reload
from heliowatch.pipelines.jet_media import gif_bytes, overview_png, strip_png
from heliowatch.pipelines.products.base import Artifact, Batch, ProductRecord, run_split

__all__ = ["JetAnalysis", "JetPlan", "JetsProduct", "JetsSnapshot", "jet_network"]

log = structlog.get_logger(__name__)


@dataclass
class JetAnalysis:
    """One frame calibrated (or the reason it was refused)."""

    key: str
    t_rec_utc: str
    calibrated: Calibrated | None
    rejected: DataRejected | None = None

    @property
    def summary(self) -> JetAnalysis:
        """The analysis itself: the stream needs the pooled pixels (7 MB for a full disk)."""
        return self


@dataclass
class JetPlan:
    """What the stream decided for a unit: events closed and announced, with their cutouts."""

    closed: list[tuple[JetEvent, EventCutout | None]] = field(default_factory=list)
    announced: list[tuple[JetEvent, EventCutout | None]] = field(default_factory=list)
    #: Keys of the closed events whose alert went out when they were announced.
    alerted: set[str] = field(default_factory=set)
    windows: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class JetsSnapshot:
    """What the metrics and the status page show of the jet product."""

    frame_time_utc: str | None = None
    frames: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    late: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    n_tiles: int = 0
    detectors: list[str] = field(default_factory=list)
    max_probability: float | None = None
    window_reason: str = ""
    events: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=200))
    degraded: list[str] = field(default_factory=list)

    def events_per_hour(self, now_unix: float, hours: float = 24.0) -> float:
        """Closed events per hour over the last ``hours`` of data time."""
        recent = [e for e in self.events if now_unix - float(e["t_unix"]) <= hours * 3600]
        return len(recent) / hours


class _Net:
    """The network as the stream's two callables, over a pair of runtimes."""

    def __init__(self, encoder: Runtime, head: Runtime) -> None:
        self.encoder, self.head = encoder, head

    def encode(self, tiles: np.ndarray) -> np.ndarray:
        return self.encoder.predict(tiles.astype(np.float32, copy=False))

    def classify(self, feats: np.ndarray) -> np.ndarray:
        return self.head.predict(feats.astype(np.float32, copy=False)).reshape(-1)


def jet_network(encoder: Runtime, head: Runtime) -> tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]:
    """The stream's ``(encoder, head)`` callables over two runtimes (which must come from one training run).

    Raises
    ------
    heliowatch.models.core.errors.ModelError
        If the two cards name different training runs.
    """
    from heliowatch.models.jets.network import check_same_run  # noqa: PLC0415  (imports torch: only where the network runs)

    check_same_run(encoder.card, head.card)
    net = _Net(encoder, head)
    return net.encode, net.classify


class JetsProduct:
    """Coronal jets in AIA 304 A frames.

    Parameters
    ----------
    params : StreamParams
        Windows, thresholds and event closing.
    encoder, head : Runtime or None
        The network (both or neither); None runs the baseline alone.
    use_baseline : bool
        Run the physics baseline (the default).
    tables : CalibrationTables
        aiapy's tables (refreshed daily when ``fetch_tables``).
    fetch_tables : bool
        Try to fetch the tables from the JSOC (off in replay).
    register : {"pooled", "aiapy"}
        Where a roll is undone.
    outputs : pathlib.Path
        The output directory.
    rules : Rules
        The jet alert threshold.
    warmup_frames : int
        Frames replayed after a restart (the window and the baseline's background).
    exports : ExportSettings or None
        Who the HEK ``CJ`` events and VOEvents of closed jets say made them.
    """

    name = ProductKind.JETS.value
    consumes = frozenset({"aia"})

    def __init__(
        self,
        *,
        params: StreamParams,
        encoder: Runtime | None,
        head: Runtime | None,
        outputs: Path,
        rules: Rules,
        use_baseline: bool = True,
        tables: CalibrationTables | None = None,
        fetch_tables: bool = False,
        register: Registration = "pooled",
        warmup_frames: int | None = None,
        exports: ExportSettings | None = None,
    ) -> None:
        self.params = params
        self.exports = exports or ExportSettings()
        self.encoder_rt, self.head_rt = encoder, head
        enc, hd = jet_network(encoder, head) if encoder is not None and head is not None else (None, None)
        self._enc, self._head = enc, hd
        self.use_baseline = use_baseline
        self.outputs = outputs
        self.rules = rules
        self.tables = tables or CalibrationTables(None)
        self.fetch_tables = fetch_tables
        self.register: Registration = register
        self.warmup_records = warmup_frames if warmup_frames is not None else 2 * params.length + 4
        self.stream = self._new_stream()
        self.latest = JetsSnapshot(detectors=list(self.stream.detectors))
        self._recent: deque[dict[str, Any]] = deque(maxlen=self.warmup_records)
        self.synthetic_model = bool(
            encoder is not None and (encoder.info["synthetic"] or (head is not None and head.info["synthetic"]))
        )

    def _new_stream(self) -> JetStream:
        return JetStream(self.params, encoder=self._enc, head=self._head, use_baseline=self.use_baseline)

    @property
    def model_info(self) -> dict[str, Any]:
        """What every jet product says made it."""
        nets = [rt.info for rt in (self.encoder_rt, self.head_rt) if rt is not None]
        return {
            "detectors": list(self.stream.detectors),
            "network": nets,
            "threshold": self.params.threshold,
            "synthetic_model": self.synthetic_model,
            "baseline": "physics baseline (no training)" if self.use_baseline else None,
        }

    # -- 1. pure -------------------------------------------------------------------------------
    def analyse(self, frame: VerifiedFrame) -> JetAnalysis:
        """Check and calibrate the frame (a refused frame is an analysis with its reason)."""
        seg = frame.segment("image_lev1", "image")
        if self.fetch_tables:
            self.tables.refresh(parse_iso(frame.t_rec_utc).timestamp())
        try:
            cal = calibrate(seg, tables=self.tables, register=self.register)
        except DataRejected as e:
            return JetAnalysis(frame.key, frame.t_rec_utc, None, e)
        return JetAnalysis(frame.key, frame.t_rec_utc, cal)

    def process(self, frames: Sequence[VerifiedFrame]) -> Batch:
        """Analyse, advance and finish, in one process."""
        return run_split(self, frames)

    # -- 2. stateful -----------------------------------------------------------------------------
    def advance(self, frames: Sequence[VerifiedFrame], summaries: Sequence[JetAnalysis]) -> JetPlan:
        """Feed the frames to the stream in time order; the plan holds the events it closed and announced."""
        plan = JetPlan()
        for fr, an in sorted(zip(frames, summaries, strict=True), key=lambda x: x[1].t_rec_utc):
            self._recent.append(
                {
                    "record": fr.key,
                    "t_rec_utc": fr.t_rec_utc,
                    "series": fr.source.series,
                    "wavelength": fr.source.wavelength,
                    "segments": list(fr.source.segments),
                    "paths": {k: str(v) for k, v in fr.paths.items()},
                }
            )
            for res in self._feed(an):
                self._collect(plan, res)
                plan.windows.append(_window_json(res))
        return plan

    def _collect(self, plan: JetPlan, res: StepResult) -> None:
        plan.announced += res.announced
        for ev, cut in res.events:
            plan.closed.append((ev, cut))
            if self.stream.was_announced(ev.key):
                plan.alerted.add(ev.key)
            self.latest.events.append(
                {
                    "t_unix": parse_iso(ev.peak_utc).timestamp(),
                    "key": ev.key,
                    "peak_utc": ev.peak_utc,
                    "position": ev.base_hpc_arcsec,
                    "probability": ev.probability,
                    "detectors": ev.detectors,
                }
            )

    def _feed(self, an: JetAnalysis) -> list[StepResult]:
        snap = self.latest
        if an.rejected is not None or an.calibrated is None:
            reason = an.rejected.reason if an.rejected is not None else "invalid"
            snap.rejected[reason] += 1
            log.warning("jet_frame_rejected", record=an.key, reason=reason, error=str(an.rejected)[:200])
            return []
        cal = an.calibrated
        results = self.stream.push(cal.frame, degraded=cal.degraded)
        snap.frames += 1
        snap.frame_time_utc = iso_from_unix(cal.frame.t_unix)
        snap.late = self.stream.late
        snap.degraded = list(cal.degraded)
        snap.n_tiles = len(self.stream.grid) if self.stream.grid is not None else 0
        for res in results:
            snap.seconds = {**cal.seconds, **res.seconds}
            if res.window is not None:
                snap.window_reason = res.window.reason
                snap.max_probability = (
                    float(np.max(res.probabilities)) if res.probabilities is not None and res.probabilities.size else None
                )
        return results

    def state(self) -> dict[str, Any]:
        """Open detections and the frames to replay after a restart (saved with every frame)."""
        return {"stream": self.stream.state(), "recent": list(self._recent)}

    def restore(self, state: dict[str, Any]) -> None:
        """Replay the recent frames silently, then continue with the saved open detections."""
        self.stream = self._new_stream()
        replayed = 0
        for r in state.get("recent", []):
            src = Source("aia", r["series"], tuple(r["segments"]), wavelength=r.get("wavelength"))
            try:
                fr = reload(src, r["record"], r["t_rec_utc"], {k: Path(v) for k, v in r["paths"].items()})
            except (DataRejected, OSError) as e:
                log.warning("jet_replay_unreadable", record=r["record"], error=str(e)[:200])
                continue
            an = self.analyse(fr)
            if an.calibrated is not None:
                self.stream.push(an.calibrated.frame, degraded=an.calibrated.degraded)  # results dropped: already written
                replayed += 1
            self._recent.append(r)
        self.stream.restore(state.get("stream", {}))
        self.latest = JetsSnapshot(detectors=list(self.stream.detectors))
        log.info("jet_stream_restored", replayed=replayed, pending=len(state.get("stream", {}).get("pending", [])))

    def end_of_stream(self) -> Batch:
        """Close everything still open (the end of a backfill range or of ``--once``)."""
        plan = JetPlan()
        for res in self.stream.finish():
            self._collect(plan, res)
        return self.finish([], plan)

    # -- 3. pure -------------------------------------------------------------------------------
    def finish(self, analyses: Sequence[JetAnalysis], plan: JetPlan) -> Batch:
        """Pictures, records, HEK/VOEvent files and alerts of the plan's events."""
        batch = Batch()
        announced_keys = set()
        for ev, cut in plan.announced:
            files, paths = self._media(ev, cut, provisional=True)
            batch.files += files
            payload = self._payload(ev, paths, provisional=True)
            batch.alerts += self._alerts(payload)
            announced_keys.add(ev.key)
            log.info(
                "jet_announced",
                key=ev.key,
                base_hpc=ev.base_hpc_arcsec,
                probability=round(ev.probability, 3),
                detectors=ev.detectors,
            )
        for ev, cut in plan.closed:
            files, paths = self._media(ev, cut, provisional=False)
            batch.files += files
            payload = self._payload(ev, paths, provisional=False)
            for rel, data in event_files(RecordKind.JET.value, payload, self.exports):
                batch.files.append(Artifact(rel, data))
                payload["hek_json" if rel.name.endswith(".hek.json") else "voevent_xml"] = str(self.outputs / rel)
            batch.records.append(ProductRecord(RecordKind.JET.value, ev.key, ev.peak_utc, payload))
            if ev.key not in announced_keys and ev.key not in plan.alerted:
                batch.alerts += self._alerts(payload)
            log.info(
                "jet_event",
                key=ev.key,
                start=ev.start_utc,
                end=ev.end_utc,
                base_hpc=ev.base_hpc_arcsec,
                probability=round(ev.probability, 3),
                detectors=ev.detectors,
                degraded=ev.degraded,
            )
        times = [parse_iso(e.peak_utc) for e, _ in plan.closed + plan.announced]
        if times:
            batch.alerts_at = max(times).astimezone(dt.UTC)
        return batch

    def _media(self, ev: JetEvent, cut: EventCutout | None, *, provisional: bool) -> tuple[list[Artifact], dict[str, str | None]]:
        paths: dict[str, str | None] = {"strip_png": None, "movie_gif": None, "overview_png": None}
        if cut is None or len(cut.frames) == 0:
            return [], paths
        d = Path("jets") / ev.start_utc[:10]
        stem = ev.key + ("-early" if provisional else "")
        files = [Artifact(d / f"{stem}-strip.png", strip_png(cut, ev, synthetic_model=self.synthetic_model))]
        paths["strip_png"] = str(self.outputs / d / f"{stem}-strip.png")
        if not provisional:
            files.append(Artifact(d / f"{stem}.gif", gif_bytes(cut, ev)))
            files.append(Artifact(d / f"{stem}-overview.png", overview_png(cut, ev, synthetic_model=self.synthetic_model)))
            paths["movie_gif"] = str(self.outputs / d / f"{stem}.gif")
            paths["overview_png"] = str(self.outputs / d / f"{stem}-overview.png")
        return files, paths

    def _payload(self, ev: JetEvent, paths: dict[str, str | None], *, provisional: bool) -> dict[str, Any]:
        d = ev.as_dict()
        where = (
            f"HGS {ev.hgs_lat:+.1f} {ev.hgs_lon:+.1f}"
            if math.isfinite(ev.hgs_lat) and math.isfinite(ev.hgs_lon)
            else f'off the limb at ({ev.base_hpc_arcsec[0]:+.0f}", {ev.base_hpc_arcsec[1]:+.0f}")'
        )
        return {
            **d,
            **paths,
            "id": ev.key,
            "time_utc": ev.start_utc,
            "position": where,
            "provisional": provisional,
            "model": self.model_info,
            "synthetic_model": self.synthetic_model,
            "calibration": {"tables": dict(self.tables.problem) or "pointing and degradation tables loaded"},
        }

    def _alerts(self, payload: dict[str, Any]) -> list[Alert]:
        return self.rules.jet_alerts(payload)


def _window_json(res: StepResult) -> dict[str, Any]:
    w = res.window
    return {
        "t_end_utc": iso_from_unix(res.t_unix) if math.isfinite(res.t_unix) else None,
        "late": res.late,
        "ready": bool(w.ready) if w is not None else False,
        "n_frames": int(w.n_frames) if w is not None else 0,
        "n_filled": int(w.n_filled) if w is not None else 0,
        "reason": (w.reason if w is not None else "no network") if res.probabilities is None else "",
        "degraded": bool(w.degraded) if w is not None else False,
        "max_probability": float(np.max(res.probabilities)) if res.probabilities is not None and res.probabilities.size else None,
    }
