"""The daemon: sources, scheduler, state, metrics, replay and systemd glue in one process.

APScheduler 3.x with in-memory jobs re-added at every start (stack-notes A2): the state
database, not a persistent job store, is what makes a restart resume where it stopped.
Each source is one interval job with ``coalesce=True``, ``max_instances=1`` and an
explicit ``misfire_grace_time``; a health tick feeds the systemd watchdog only while the
scheduler really runs. SIGTERM/SIGINT stop the scheduler after the running polls finish.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobEvent
from apscheduler.schedulers.background import BackgroundScheduler

from heliowatch.daemon import sdnotify
from heliowatch.daemon.config import Config
from heliowatch.daemon.errors import ConfigError, SourceUnavailable, UsageError
from heliowatch.daemon.logs import get_logger
from heliowatch.daemon.metrics import Metrics
from heliowatch.daemon.state import StateStore, utcnow_iso
from heliowatch.pipelines.ingest import IngestedFrame, Ingestor, PollResult, Source
from heliowatch.pipelines.jsoc import JsocClient, RetryPolicy

__all__ = ["Daemon", "RunSummary", "demo_archive_path", "open_replay"]

log = get_logger(__name__)

REPLAY_EMAIL = "replay@heliowatch.invalid"


def demo_archive_path() -> Path:
    """The archive bundled with heliowatch (real SHARP patches + synthetic frames)."""
    return Path(str(resources.files("heliowatch.pipelines").joinpath("data/demo_archive")))


def open_replay(archive: str, *, latency_s: float, speed: float, max_gap_s: float, fault: str | None = None) -> Any:
    """Start a JSOC stand-in with a replay clock over ``archive`` ("demo" or a directory).

    Returns
    -------
    heliowatch.pipelines.standin.server.StandinServer
        Already serving on 127.0.0.1 (its ``clock`` attribute is the replay clock).
    """
    from heliowatch.pipelines.standin.archive import Archive, ReplayClock  # noqa: PLC0415
    from heliowatch.pipelines.standin.faults import FaultSpec  # noqa: PLC0415
    from heliowatch.pipelines.standin.server import StandinServer  # noqa: PLC0415

    root = demo_archive_path() if archive == "demo" else Path(archive)
    if not root.is_dir():
        msg = f"replay archive {root} is not a directory (use 'demo' for the bundled one)"
        raise UsageError(msg)
    try:
        faults = FaultSpec.parse(fault)
    except ValueError as e:
        raise UsageError(str(e)) from e
    arch = Archive(root, latency_s=latency_s, aia_out_of_order_s=faults.aia_out_of_order, seed=faults.seed)
    if not arch.records:
        msg = f"replay archive {root} holds no FITS files named like JSOC exports (<series>.<keys>.<segment>.fits)"
        raise UsageError(msg)
    clock = ReplayClock(arch.visibility_times(), speed=speed, max_gap_s=max_gap_s)
    return StandinServer(arch, faults=faults, clock=clock).start()


@dataclass
class RunSummary:
    """What a run did, written to ``<outputs>/run-summary.json`` at exit."""

    started_utc: str
    finished_utc: str
    polls: int
    ingested: dict[str, int]
    skipped_quality: dict[str, int]
    rejected: dict[str, int]
    frames_dir: str
    state_url: str
    metrics_file: str
    ingest_log: str


class Daemon:
    """The heliowatch daemon.

    Parameters
    ----------
    cfg : Config
        Validated configuration.
    once : bool
        Process what is available and return instead of polling forever.
    fault : str or None
        Fault spec for the replay stand-in (tests and drills).
    keep_running : bool
        In a replay, keep polling after the archive is exhausted (like a live daemon).
    """

    def __init__(self, cfg: Config, *, once: bool = False, fault: str | None = None, keep_running: bool = False) -> None:
        self.cfg = cfg
        self.once = once
        self.fault = fault
        self.keep_running = keep_running
        self.metrics = Metrics()
        self.stop_event = threading.Event()
        self.standin: Any = None
        self.ingestors: list[Ingestor] = []
        self.handlers: list[Callable[[list[IngestedFrame]], None]] = []
        self._results: list[PollResult] = []
        self._results_lock = threading.Lock()
        self._last_tick = 0.0
        self._drained: set[str] = set()
        self.metrics_port: int | None = None
        self.state: StateStore | None = None
        self.flare_job: Any = None
        self.alert_center: Any = None
        self.store: Any = None
        self.http: Any = None
        self.quicklook: Path | None = None
        self.tracker: Any = None
        self.region_cnn: Any = None
        self.region_model = ""
        self.region_detect: Any = None
        self.region_detector_model = ""
        self.srs_feed: Any = None
        self._clock: Callable[[], float] = time.time

    # -- set-up -----------------------------------------------------------------------------
    @property
    def outputs(self) -> Path:
        """Directory of product files (absolute: products record paths to each other)."""
        return self.cfg.daemon.outputs.resolve()

    def _sources(self) -> list[Source]:
        j = self.cfg.jsoc
        out = []
        if "magnetogram" in j.enabled_sources:
            out.append(Source("magnetogram", j.magnetogram_series, (j.magnetogram_segment,)))
        if "sharp" in j.enabled_sources:
            out.append(Source("sharp", j.sharp_series, tuple(j.sharp_segments)))
        if "aia" in j.enabled_sources:
            # NRT AIA arrives out of time order; re-query the last 30 min (deduplicated on record).
            out += [Source("aia", j.aia_series, (j.aia_segment,), wavelength=w, reorder_window_s=1800) for w in j.aia_wavelengths]
        return out

    def _setup(self) -> None:
        cfg = self.cfg
        cfg.daemon.state_dir.mkdir(parents=True, exist_ok=True)
        self.outputs.mkdir(parents=True, exist_ok=True)
        self.state = StateStore(cfg.state_url)
        server = cfg.jsoc.server
        email = cfg.jsoc.email.reveal()
        clock: Callable[[], float] = time.time
        speed = 1.0
        if server == "replay":
            r = cfg.replay
            self.standin = open_replay(r.archive, latency_s=r.latency_s, speed=r.speed, max_gap_s=r.max_gap_s, fault=self.fault)
            if self.once:
                self.standin.clock.jump_to_end()
            server, clock, speed = self.standin.url, self.standin.clock.now, r.speed
            email = email or REPLAY_EMAIL
            log.info(
                "replay_started",
                archive=r.archive,
                url=server,
                speed=speed,
                records=sum(map(len, self.standin.archive.records.values())),
            )
        self.speed = speed
        self._clock = clock
        j = cfg.jsoc
        self.client = JsocClient(
            server,
            email=email,
            timeout_s=j.timeout_s,
            retry=RetryPolicy(retries=j.retries, base_s=j.backoff_base_s, max_s=j.backoff_max_s),
            metrics=self.metrics,
            max_file_bytes=int(j.max_file_mb * 1024 * 1024),
            export_wait_s=j.export_wait_s,
        )
        sources = self._sources()
        if self.standin is not None:
            present = set(self.standin.archive.series_names())
            for s in [s for s in sources if s.series not in present]:
                log.warning("source_not_in_archive", series=s.series)
            sources = [s for s in sources if s.series in present]
        self._check_sources(sources)
        self.metrics.init_series([s.name for s in sources])
        self.metrics.info.info({"version": _version(), "server": "replay" if self.standin else cfg.jsoc.server})
        try:
            import torch  # noqa: PLC0415

            self.metrics.cuda_available.set(float(torch.cuda.is_available()))
        except ImportError:
            self.metrics.cuda_available.set(0.0)
        frames_dir = cfg.daemon.state_dir / "frames"
        self._setup_products()
        flare_job = self._flare_job(clock) if cfg.flares.enabled else None
        for s in sources:
            ing = Ingestor(
                s,
                self.client,
                self.state,
                frames_dir,
                clock=clock,
                metrics=self.metrics,
                lookback_hours=j.lookback_hours,
                max_records=j.max_records_per_poll,
                first_start=self.standin.clock.start - 3600 if self.standin is not None else None,
            )
            ing.handlers.append(self._log_frames)
            if s.kind == "sharp" and flare_job is not None:
                ing.handlers.append(flare_job.on_frames)
            if s.kind == "magnetogram":
                ing.handlers.append(self._quicklook)
            ing.handlers.extend(self.handlers)
            self.ingestors.append(ing)
        if cfg.metrics.enabled:
            from heliowatch.daemon.statuspage import StatusServer  # noqa: PLC0415

            self.http = StatusServer(
                self.metrics.registry, self.status, host=cfg.metrics.host, port=cfg.metrics.port, page=cfg.status.enabled
            )
            self.metrics_port = self.http.port
            log.info(
                "metrics_serving", url=f"http://{cfg.metrics.host}:{self.metrics_port}/metrics", status_page=cfg.status.enabled
            )

    def _setup_products(self) -> None:
        """Products store, alert outbox and rules."""
        from heliowatch.pipelines.alert_rules import Rules  # noqa: PLC0415
        from heliowatch.pipelines.alerts import AlertCenter, Transport  # noqa: PLC0415
        from heliowatch.pipelines.store import ProductStore  # noqa: PLC0415

        assert self.state is not None
        cfg = self.cfg
        self.store = ProductStore(cfg.store.url or self.state.engine)
        a = cfg.alerts
        self.rules = Rules(**a.rules.__dict__)
        self.alert_center = None
        if a.transport != "none":
            smtp = a.smtp
            transport = Transport(
                kind=a.transport,
                maildir=cfg.maildir.resolve(),
                host=smtp.host,
                port=smtp.port,
                starttls=smtp.starttls,
                username=smtp.username,
                password=smtp.password.reveal(),
                timeout_s=smtp.timeout_s,
                cafile=smtp.cafile,
            )
            self.alert_center = AlertCenter(
                self.state.engine,
                transport,
                sender=a.sender,
                recipients=list(a.recipients),
                list_id=a.list_id,
                dedup_window_s=a.dedup_window_minutes * 60,
                digest_threshold=a.digest_threshold,
                retry_base_s=a.retry_base_s,
                retry_max_s=a.retry_max_s,
                metrics=self.metrics,
            )

    def _quicklook(self, frames: list[IngestedFrame]) -> None:
        """Regions of every new magnetogram: detect, classify, track, store, alert; annotated quicklook."""
        from heliowatch.pipelines.cutouts import write_cutouts  # noqa: PLC0415
        from heliowatch.pipelines.quicklook import render_magnetogram  # noqa: PLC0415
        from heliowatch.pipelines.regions import Tracker, classify_regions, preprocess, to_json  # noqa: PLC0415

        if self.tracker is None:
            from heliowatch.pipelines.regions import region_classifier, region_detector  # noqa: PLC0415

            self.tracker = Tracker()
            m = self.cfg.models
            self.region_cnn, self.region_model = region_classifier(
                m.region_classifier, export_dir=self.cfg.export_dir, metrics=self.metrics, backend=m.backend
            )
            self.region_detect, self.region_detector_model = region_detector(
                m.region_detector, export_dir=self.cfg.export_dir, metrics=self.metrics, backend=m.backend
            )
            self.srs_feed = self._srs_feed()
        for fr in sorted(frames, key=lambda f: f.record.t_rec_utc):
            seg = next(iter(fr.paths.values()))
            try:
                frame = preprocess(seg)
                regions = self.region_detect(frame)
                classify_regions(frame, regions, cnn=self.region_cnn)
                prior = self.tracker.update(regions, frame.t_rec_utc)
                idents = self._identities(regions, frame.t_rec_utc)
                for r, sf in zip(regions, idents, strict=True):
                    r.noaa_ar = sf["noaa_ar"]
                stamp = frame.t_rec_utc[:19].replace(":", "")
                png = render_magnetogram(seg, self.outputs / "quicklook" / f"regions-{stamp}.png", regions=regions, frame=frame)
                cutouts = write_cutouts(frame, regions, self.outputs / "regions" / frame.t_rec_utc[:10], stem=f"region-{stamp}")
            except Exception as e:
                log.warning("regions_failed", record=fr.record.name, error=str(e)[:300])
                continue
            self.quicklook = png
            alerts = []
            for r, sf, cut in zip(regions, idents, cutouts, strict=True):
                payload = {
                    **to_json(r),
                    **sf,
                    "cutout_fits": cut["fits"],
                    "cutout_png": cut.get("png"),
                    "quicklook_png": str(png),
                    "t_rec_utc": frame.t_rec_utc,
                    "model": f"detector: {self.region_detector_model}; classifier: {self.region_model}",
                }
                name = f"NOAA {payload['noaa_ar']}" if payload.get("noaa_ar") else f"track {r.track_id}"
                self.store.put("region", f"{frame.t_rec_utc}|{r.track_id}", frame.t_rec_utc, payload, region=name)
                self.metrics.products.labels("region").inc()
                alerts += self.rules.region_alerts({**payload, "id": r.track_id}, prior.get(r.track_id or 0))
            from heliowatch.models.synthetic.regions import MTWILSON_CLASSES  # noqa: PLC0415

            for cls in MTWILSON_CLASSES:
                self.metrics.regions_on_disk.labels(cls).set(sum(r.mtwilson == cls for r in regions))
            self.metrics.region_frame_time.set(dt.datetime.fromisoformat(frame.t_rec_utc.replace("Z", "+00:00")).timestamp())
            if self.alert_center is not None and alerts:
                self.alert_center.raise_alerts(alerts, now=dt.datetime.fromisoformat(frame.t_rec_utc.replace("Z", "+00:00")))
            log.info(
                "regions",
                t_rec_utc=frame.t_rec_utc,
                count=len(regions),
                classes=[r.mtwilson for r in regions],
                quicklook=str(png),
            )

    def _srs_feed(self) -> Any:
        """The SRS source of the region product, or None (``regions.srs_source = 'none'``)."""
        from heliowatch.pipelines.srs import SRSFeed  # noqa: PLC0415

        g = self.cfg.regions
        if g.srs_source == "replay":
            return SRSFeed(self.standin.archive.root / "srs") if self.standin is not None else None
        if g.srs_source == "dir":
            return SRSFeed(self.cfg.srs_dir)
        if g.srs_source == "swpc":
            return SRSFeed(self.cfg.srs_dir, url=g.srs_url, refresh_s=g.srs_refresh_s)
        return None

    def _srs_for(self, t_utc: str) -> Any:
        """The newest SRS issued before ``t_utc`` (fetching SWPC's first when due), or None."""
        if self.srs_feed is None:
            return None
        try:
            self.srs_feed.refresh(self._clock())
        except Exception as e:  # the feed is an add-on: regions are still issued without it
            log.warning("srs_fetch_failed", url=self.srs_feed.url, error=str(e)[:200])
        try:
            return self.srs_feed.latest_issued(dt.datetime.fromisoformat(t_utc.replace("Z", "+00:00")))
        except Exception as e:
            log.warning("srs_unreadable", dir=str(self.srs_feed.root), error=str(e)[:200])
            return None

    def _identities(self, regions: list[Any], t_utc: str) -> list[dict[str, Any]]:
        """NOAA number, NOAA's own class and HARP of each detection of one frame (one SRS lookup and
        one query of the recent SHARP records per frame)."""
        from heliowatch.pipelines.regions import identify  # noqa: PLC0415

        srs = self._srs_for(t_utc)
        sharps = [p["payload"] for p in self.store.latest("flare_region", limit=300)] if self.store is not None else []
        return [identify(r, t_utc, srs=srs, sharps=sharps, max_deg=self.cfg.regions.srs_match_deg) for r in regions]

    def _deliver_alerts(self) -> None:
        """Deliver the outbox; while running live, also check for stale data."""
        if self.alert_center is None:
            return
        # Staleness is judged against a live JSOC only: a replay archive has gaps by design.
        if not self.once and self.standin is None and self.state is not None:
            now = dt.datetime.fromtimestamp(self._clock(), dt.UTC)
            last = {}
            for ing in self.ingestors:
                hw = self.state.high_water(ing.source.name)
                if hw:
                    last[ing.source.name] = dt.datetime.fromisoformat(hw[0].replace("Z", "+00:00")).timestamp()
            self.alert_center.raise_alerts(self.rules.stale_alerts(last, now), now=now)
        self.alert_center.deliver()

    def status(self) -> dict[str, Any]:
        """What the status page and /status.json show."""
        fd = self.flare_job.latest if self.flare_job is not None else None
        health = []
        if self.state is not None:
            counts = self.state.frame_counts()
            rejects: dict[str, int] = {}
            for r in self.state.reject_summary():
                rejects[r["series"]] = rejects.get(r["series"], 0) + 1
            for ing in self.ingestors:
                hw = self.state.high_water(ing.source.name)
                latest = self.state.frames(ing.source.series, limit=1)
                health.append(
                    {
                        "series": ing.source.name,
                        "last_record_utc": hw[0] if hw else None,
                        "latency_s": latest[0]["latency_s"] if latest else None,
                        "records": counts.get(ing.source.series, 0),
                        "rejected": rejects.get(ing.source.series, 0),
                    }
                )
        alerts = []
        if self.alert_center is not None:
            import sqlalchemy as sa  # noqa: PLC0415

            from heliowatch.pipelines.alerts import outbox  # noqa: PLC0415

            with self.alert_center.engine.connect() as c:
                q = (
                    sa.select(outbox.c.created_utc, outbox.c.kind, outbox.c.subject, outbox.c.status)
                    .order_by(outbox.c.id.desc())
                    .limit(10)
                )
                alerts = [dict(r._mapping) for r in c.execute(q)]
        from dataclasses import asdict  # noqa: PLC0415

        return {
            "version": _version(),
            "source": "replay" if self.standin is not None else self.cfg.jsoc.server,
            "healthy": self.healthy() or self.once,
            "full_disk": {k: v for k, v in asdict(fd).items() if k != "regions"} if fd else None,
            "regions": [asdict(r) for r in fd.regions] if fd else [],
            "health": health,
            "alerts": alerts,
            "quicklook": str(self.quicklook) if self.quicklook else None,
        }

    def _flare_job(self, clock: Callable[[], float]) -> Any:
        """The flare product, with its event source."""
        from heliowatch.pipelines.events import EventSource  # noqa: PLC0415
        from heliowatch.pipelines.flare_job import FlareJob  # noqa: PLC0415

        f = self.cfg.flares
        events = None
        if f.event_source == "replay" and self.standin is not None:
            files = sorted((self.standin.archive.root / "events").glob("*.json"))
            events = EventSource(files=files, clock=clock) if files else None
        elif f.event_source == "files":
            events = EventSource(files=[Path(p) for p in f.event_files], clock=clock)
        elif f.event_source == "swpc":
            events = EventSource(
                url=f.event_url, cache=self.cfg.daemon.state_dir / "events" / "swpc-xray-flares.json", refresh_s=f.event_refresh_s
            )
        if events is None:
            log.warning("flare_events_unavailable", source=f.event_source, effect="forecasts marked degraded")
        self.flare_job = FlareJob(
            self.outputs,
            self.state,
            events,
            export_dir=self.cfg.export_dir,
            occlusion_threshold=f.occlusion_threshold,
            cnn_model=f.cnn_model,
            verification_days=f.verification_days,
            metrics=self.metrics,
            backend=self.cfg.models.backend,
            store=self.store,
            alerts=self.alert_center,
            rules=self.rules,
        )
        return self.flare_job

    def _check_sources(self, sources: list[Source]) -> None:
        """series_struct check at start-up: a missing series or keyword is a config error."""
        field_of = {"magnetogram": "magnetogram_series", "sharp": "sharp_series", "aia": "aia_series"}
        for s in {s.series: s for s in sources}.values():
            try:
                self.client.check_series(s.series, keys=["T_REC", "QUALITY"], segments=s.segments)
            except SourceUnavailable as e:
                if "lacks" in str(e) or "does not exist" in str(e):
                    raise ConfigError(str(e), ("jsoc", field_of[s.kind])) from e
                # The JSOC is down: keep going; polls retry and the metrics show it.
                log.warning("startup_check_deferred", series=s.series, error=str(e)[:300])

    def _log_frames(self, frames: list[IngestedFrame]) -> None:
        """Append one line per ingested record to ``<outputs>/ingest.jsonl``."""
        path = self.outputs / "ingest.jsonl"
        if self.store is not None:
            for fr in frames:
                self.store.put(
                    "data_health",
                    f"{fr.source.name}|{fr.record.name}",
                    fr.record.t_rec_utc,
                    {"series": fr.source.name, "record": fr.record.name, "latency_s": fr.latency_s, "quality": fr.record.quality},
                )
                self.metrics.products.labels("data_health").inc()
        with open(path, "a") as f:
            for fr in frames:
                line = {
                    "series": fr.source.series,
                    "record": fr.record.name,
                    "t_rec_utc": fr.record.t_rec_utc,
                    "wavelength": fr.record.wavelength,
                    "harpnum": fr.record.harpnum,
                    "latency_s": fr.latency_s,
                    "files": {k: str(v) for k, v in fr.paths.items()},
                }
                f.write(json.dumps(line) + "\n")

    # -- jobs -------------------------------------------------------------------------------
    def _poll_job(self, ing: Ingestor) -> PollResult | None:
        name = ing.source.name
        t0 = time.monotonic()
        try:
            res = ing.poll()
        except SourceUnavailable as e:
            self.metrics.job_runs.labels(name, "error").inc()
            log.error("poll_failed", source=name, error=str(e)[:500])
            return None
        finally:
            self.metrics.job_duration.labels(name).observe(time.monotonic() - t0)
        self.metrics.job_runs.labels(name, "ok").inc()
        with self._results_lock:
            self._results.append(res)
            if self.standin is not None and self.standin.clock.finished() and res.remaining == 0:
                self._drained.add(name)
        return res

    def _tick(self) -> None:
        self._last_tick = time.monotonic()
        self.metrics.heartbeat.set(time.time())

    def _on_event(self, event: JobEvent) -> None:
        outcome = "missed" if event.code == EVENT_JOB_MISSED else "overlapping"
        self.metrics.job_runs.labels(event.job_id, outcome).inc()
        log.warning("job_not_run", job=event.job_id, outcome=outcome)

    def healthy(self) -> bool:
        """True while the health tick has run recently (the watchdog's condition)."""
        return time.monotonic() - self._last_tick < 3 * self.cfg.daemon.heartbeat_s

    # -- running ----------------------------------------------------------------------------
    def run(self) -> RunSummary:
        """Run until stopped (or, with ``once``, until what is available is processed)."""
        started = utcnow_iso()
        self._setup()
        try:
            if self.once:
                self._run_once()
            else:
                self._run_forever()
        finally:
            summary = self._finish(started)
        return summary

    def _run_once(self) -> None:
        for ing in self.ingestors:
            while not self.stop_event.is_set():
                res = self._poll_job(ing)
                if res is None:
                    msg = f"JSOC unavailable while polling {ing.source.name}; nothing more can be done in --once mode"
                    raise SourceUnavailable(msg)
                if res.remaining == 0:
                    break
        self._deliver_alerts()

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def stop(signum: int, _: Any) -> None:
            log.info("signal", signal=signal.Signals(signum).name)
            self.stop_event.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)

    def _run_forever(self) -> None:
        sched = BackgroundScheduler(timezone=dt.UTC)
        sched.add_listener(self._on_event, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
        s = self.cfg.schedule
        intervals = {"magnetogram": s.magnetogram_interval_s, "sharp": s.sharp_interval_s, "aia": s.aia_interval_s}
        now = dt.datetime.now(dt.UTC)
        for ing in self.ingestors:
            interval = max(0.5, intervals[ing.source.kind] / self.speed)
            sched.add_job(
                self._poll_job,
                "interval",
                args=[ing],
                seconds=interval,
                id=ing.source.name,
                name=ing.source.name,
                misfire_grace_time=max(1, int(interval * s.misfire_grace_fraction)),
                coalesce=True,
                max_instances=1,
                next_run_time=now,
                replace_existing=True,
            )
        if self.alert_center is not None:
            every = self.cfg.alerts.deliver_interval_s
            sched.add_job(
                self._deliver_alerts,
                "interval",
                seconds=every,
                id="alerts",
                next_run_time=now,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=max(1, int(every / 2)),
            )
        hb = self.cfg.daemon.heartbeat_s
        sched.add_job(self._tick, "interval", seconds=hb, id="heartbeat", next_run_time=now, coalesce=True, max_instances=1)
        self._install_signals()
        sched.start()
        self.metrics.up.set(1)
        sdnotify.notify(f"READY=1\nSTATUS=polling {len(self.ingestors)} source(s)")
        log.info("daemon_started", sources=[i.source.name for i in self.ingestors])
        wd = sdnotify.watchdog_interval_s()
        wait = min(hb, wd) if wd else hb
        try:
            while not self.stop_event.wait(timeout=min(wait, 1.0)):
                if wd and self.healthy():
                    sdnotify.notify("WATCHDOG=1")
                if self._replay_done():
                    log.info("replay_finished")
                    break
        finally:
            self.metrics.up.set(0)
            sdnotify.notify("STOPPING=1\nSTATUS=stopping")
            sched.shutdown(wait=True)
            if self.alert_center is not None:
                self.alert_center.deliver()  # what the last polls raised

    def _replay_done(self) -> bool:
        if self.standin is None or self.keep_running:
            return False
        with self._results_lock:
            return all(i.source.name in self._drained for i in self.ingestors)

    def _finish(self, started: str) -> RunSummary:
        assert self.state is not None
        ingested: dict[str, int] = {}
        skipped: dict[str, int] = {}
        rejected: dict[str, int] = {}
        for r in self._results:
            ingested[r.source] = ingested.get(r.source, 0) + r.ingested
            skipped[r.source] = skipped.get(r.source, 0) + r.skipped_quality
            rejected[r.source] = rejected.get(r.source, 0) + r.rejected
        metrics_file = self.outputs / "metrics.prom"
        metrics_file.write_bytes(self.metrics.exposition())
        summary = RunSummary(
            started_utc=started,
            finished_utc=utcnow_iso(),
            polls=len(self._results),
            ingested=ingested,
            skipped_quality=skipped,
            rejected=rejected,
            frames_dir=str((self.cfg.daemon.state_dir / "frames").resolve()),
            state_url=self.cfg.state_url,
            metrics_file=str(metrics_file.resolve()),
            ingest_log=str((self.outputs / "ingest.jsonl").resolve()),
        )
        (self.outputs / "run-summary.json").write_text(json.dumps(summary.__dict__, indent=2))
        log.info("run_finished", **{k: v for k, v in summary.__dict__.items() if k != "state_url"})
        if self.http is not None:
            self.http.stop()
        if self.standin is not None:
            self.standin.stop()
        self.state.close()
        return summary


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    try:
        return version("heliowatch")
    except PackageNotFoundError:
        return "0+unknown"
