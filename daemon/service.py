"""The daemon: jobs, signals, the systemd watchdog and the replay drain. Nothing else.

Everything it runs is built by :mod:`heliowatch.daemon.wiring`. APScheduler 3.x with
in-memory jobs re-added at every start (stack-notes A2): the state database, not a
persistent job store, is what makes a restart resume where it stopped. Each source is one
interval job (a cheap keyword-only query, every minute by default) with ``coalesce=True``,
``max_instances=1`` and an explicit ``misfire_grace_time``; when a record is due (its
predecessor's T_REC + the cadence + the latency seen so far) one extra poll is scheduled for
that moment. A poll's new frames go to the fan-out; records some product has not processed
(a crash, a failing product) are offered again at start and after every poll (with
``--once``, in one time order with what it polls, as an unbroken run would see them). A
health tick feeds the systemd watchdog only while the scheduler really runs. SIGTERM/SIGINT stop the
scheduler after the running polls finish. A wall-clock step (seen as a change of the wall clock
against the monotonic one) moves every job's next run by the step, so a step back never freezes
the polls; a local write that fails (a full disk, a read-only state directory) is one counted
line, and the daemon goes on (``--once`` ends with it).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import signal
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import structlog
from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobEvent
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler

from heliowatch.daemon import sdnotify
from heliowatch.daemon.config import Config
from heliowatch.daemon.errors import ConfigError
from heliowatch.daemon.secrets import mask_url
from heliowatch.daemon.status import StatusView, coverage_by_source
from heliowatch.daemon.statuspage import StatusServer
from heliowatch.daemon.wiring import App, build
from heliowatch.models.core.times import iso_utc, unix_from_iso
from heliowatch.pipelines.errors import DeliveryError, LocalIOError, SourceUnavailable, local_io_error
from heliowatch.pipelines.fanout import DispatchReport
from heliowatch.pipelines.frames import VerifiedFrame
from heliowatch.pipelines.ingest import MAX_ATTEMPTS, Ingestor, PollResult

__all__ = ["Daemon", "RunSummary", "heliowatch_version"]

log = structlog.get_logger(__name__)

#: A change of the wall clock against the monotonic clock bigger than this (s) is a clock step.
CLOCK_STEP_S = 2.0

#: While local writes keep failing (a full disk), one ``local_io_error`` line per op this often (s); all are counted.
LOCAL_IO_LOG_EVERY_S = 60.0

#: The series' cadences (s): when the next record of a source is due.
CADENCE_S = {"magnetogram": 720.0, "sharp": 720.0, "aia": 12.0}


def heliowatch_version() -> str:
    """The installed version."""
    try:
        return version("heliowatch")
    except PackageNotFoundError:
        return "0+unknown"


@dataclass
class RunSummary:
    """What a run did, written to ``<outputs>/run-summary.json`` at exit."""

    started_utc: str
    finished_utc: str
    polls: int
    ingested: dict[str, int]
    skipped_quality: dict[str, int]
    rejected: dict[str, int]
    processed: dict[str, int]
    product_failures: dict[str, int]
    frames_dir: str
    state_url: str
    metrics_file: str
    ingest_log: str
    #: Rejects parked after their attempts, per series, at the end of the run (`heliowatch rejects --requeue`).
    deferred: dict[str, int] = field(default_factory=dict)


class Daemon:
    """The heliowatch daemon.

    Parameters
    ----------
    app : App
        Everything the daemon runs (from :func:`heliowatch.daemon.wiring.build`).
    once : bool
        Process what is available and return instead of polling forever.
    keep_running : bool
        In a replay, keep polling after the archive is exhausted (like a live daemon).
    """

    def __init__(self, app: App, *, once: bool = False, keep_running: bool = False) -> None:
        self.app = app
        self.cfg = app.cfg
        self.once = once
        self.keep_running = keep_running
        self.metrics = app.metrics
        self.stop_event = threading.Event()
        # One event: a stop also ends a dispatch between units rather than after a whole poll's frames.
        app.fanout.stop = self.stop_event
        self.http: StatusServer | None = None
        self.metrics_port: int | None = None
        self._results: list[PollResult] = []
        self._dispatched = DispatchReport()
        self._lock = threading.Lock()
        self._last_tick = 0.0
        self._drained: set[str] = set()
        self._latency: dict[str, list[float]] = {}
        self._sched: BackgroundScheduler | None = None
        # op -> (monotonic time of its last local_io_error line, failures since): one line a minute, not one a poll.
        self._io_failing: dict[str, tuple[float, int]] = {}
        # Per source since the last poll_summary line: polls, errors, new, ingested, rejected.
        self._poll_counts: dict[str, dict[str, int]] = {}
        self.status = StatusView(app, healthy=self.healthy, once=once)

    @classmethod
    def from_config(cls, cfg: Config, *, once: bool = False, fault: str | None = None, keep_running: bool = False) -> Daemon:
        """Build everything from ``cfg`` (:func:`heliowatch.daemon.wiring.build`) and the daemon around it."""
        return cls(build(cfg, once=once, fault=fault), once=once, keep_running=keep_running)

    # -- jobs -------------------------------------------------------------------------------
    def _dispatch(self, frames: list[VerifiedFrame]) -> None:
        if self.once:
            # What a crash left unprocessed goes with the new frames, in one time order: offered
            # apart (before the polls, or after the new frames), a product would see the others'
            # results in another order than an unbroken run (a region named without its HARP).
            frames = frames + self.app.fanout.pending(self.app.sources, exclude=frames)
        report = self.app.fanout.dispatch(frames)
        report.add(self.app.fanout.recover(self.app.sources))
        with self._lock:
            self._dispatched.add(report)
        if self.app.verifier is not None and any(f.kind == "sharp" for f in frames):
            self.app.verifier.run()

    def _poll_job(self, ing: Ingestor) -> PollResult | None:
        name = ing.source.name
        t0 = time.monotonic()
        try:
            res = ing.poll()
        except SourceUnavailable as e:
            self.metrics.job_runs.labels(name, "error").inc()
            log.error("poll_failed", source=name, error=str(e)[:500])
            self._count_poll(name, errors=1)
            return None
        except LocalIOError as e:
            self.metrics.job_runs.labels(name, "error").inc()
            self._count_poll(name, errors=1)
            self._local_io_failed(e, source=name)
            if self.once:
                raise
            return None
        finally:
            self.metrics.job_duration.labels(name).observe(time.monotonic() - t0)
        self.metrics.job_runs.labels(name, "ok").inc()
        self._count_poll(name, new=res.new, ingested=res.ingested, rejected=res.rejected)
        dispatched = True
        if not self.once:
            try:
                self._dispatch(res.frames)
            except LocalIOError as e:
                # What was ingested stays recorded and unprocessed: recover() offers it after a later poll.
                self._local_io_failed(e, source=name)
                dispatched = False
            else:
                self._local_io_ok()
            self._schedule_due(ing, res)
        with self._lock:
            self._results.append(res)
            # Drained: the archive is over and nothing is left to try, not even a reject still
            # waiting for its next attempt (a deferred one has run out of attempts: it is not waited for).
            finished = self.app.replay_clock is not None and self.app.replay_clock.finished()
            if finished and res.remaining == 0 and res.retrying == 0 and dispatched:
                self._drained.add(name)
        return res

    def _local_io_failed(self, e: LocalIOError, **where: str) -> None:
        """A count and (at most once a minute per op while it lasts) one line for a local write that failed.

        The caller decides whether to go on; a later successful poll logs ``local_io_recovered``.
        """
        self.metrics.local_io_errors.labels(e.op).inc()
        now = time.monotonic()
        with self._lock:
            last, quiet = self._io_failing.get(e.op, (-math.inf, 0))
            due = now - last >= LOCAL_IO_LOG_EVERY_S
            self._io_failing[e.op] = (now, 0) if due else (last, quiet + 1)
        if due:
            # `unlogged`: the failures of this op since its previous line.
            log.error("local_io_error", op=e.op, error=str(e)[:500], will_retry=not self.once, unlogged=quiet, **where)

    def _local_io_ok(self) -> None:
        """After a poll that wrote what it had: the end of a full-disk (or read-only) episode, logged once."""
        with self._lock:
            ended, self._io_failing = self._io_failing, {}
        if ended:
            log.info("local_io_recovered", ops=sorted(ended))

    def _guarded(self, job: Callable[[], object], name: str) -> Callable[[], None]:
        """``job`` for the scheduler: a local write failure is one counted line, not a job traceback."""

        def run() -> None:
            try:
                job()
            except LocalIOError as e:
                self.metrics.job_runs.labels(name, "error").inc()
                self._local_io_failed(e, job=name)

        return run

    def _count_poll(self, source: str, **counts: int) -> None:
        with self._lock:
            c = self._poll_counts.setdefault(source, dict.fromkeys(("polls", "errors", "new", "ingested", "rejected"), 0))
            c["polls"] += 1
            for k, v in counts.items():
                c[k] += v

    def _poll_summary(self) -> None:
        """One info line for the polls since the last (a poll that finds nothing new logs at debug only)."""
        with self._lock:
            counts, self._poll_counts = self._poll_counts, {}
        if counts:
            log.info("poll_summary", minutes=self.cfg.logging.poll_summary_minutes, sources=counts)

    def _schedule_due(self, ing: Ingestor, res: PollResult) -> None:
        """One extra poll when the source's next record is due (T_REC + cadence + typical latency)."""
        if self._sched is None or not res.frames or not self.cfg.schedule.due_poll:
            return
        lat = self._latency.setdefault(ing.source.name, [])
        lat += [f.latency_s for f in res.frames if f.latency_s is not None]
        del lat[:-50]
        newest = max(unix_from_iso(f.t_rec_utc) for f in res.frames)
        due = newest + CADENCE_S[ing.source.kind] + (statistics.median(lat) if lat else 0.0)
        wait_s = (due - self.app.clock.now()) / self.app.speed
        interval = self._intervals()[ing.source.kind] / self.app.speed
        if 0 < wait_s < interval:
            run_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=wait_s + 1.0 / self.app.speed)
            self._sched.add_job(
                self._poll_job, "date", args=[ing], run_date=run_at, id=f"{ing.source.name}:due", replace_existing=True
            )

    def _deliver_alerts(self) -> None:
        """Deliver the outbox; while running live, also check for stale data."""
        alerts = self.app.alerts
        if alerts is None:
            return
        # Staleness is judged against a live JSOC only: a replay archive has gaps by design.
        if not self.once and self.app.standin is None:
            now = dt.datetime.fromtimestamp(self.app.clock.now(), dt.UTC)
            last = {}
            for ing in self.app.ingestors:
                hw = self.app.state.high_water(ing.source.name)
                if hw:
                    last[ing.source.name] = unix_from_iso(hw[0])
            alerts.raise_alerts(self.app.rules.stale_alerts(last, now), now=now)
        alerts.deliver()

    def _coverage(self) -> None:
        for name, value in coverage_by_source(self.app).items():
            if value == value:  # NaN before any record: no sample rather than a misleading zero
                self.metrics.coverage.labels(name).set(value)

    def _retention(self) -> None:
        n = self.app.store.purge(older_than_days=self.cfg.store.retention_days)
        if n:
            log.info("retention", purged=n, older_than_days=self.cfg.store.retention_days)

    def _tick(self) -> None:
        self._last_tick = time.monotonic()
        self.metrics.heartbeat.set(self.app.clock.now())

    def _on_event(self, event: JobEvent) -> None:
        outcome = "missed" if event.code == EVENT_JOB_MISSED else "overlapping"
        self.metrics.job_runs.labels(event.job_id, outcome).inc()
        log.warning("job_not_run", job=event.job_id, outcome=outcome)

    def healthy(self) -> bool:
        """True while the health tick has run recently (the watchdog's condition)."""
        return time.monotonic() - self._last_tick < 3 * self.cfg.daemon.heartbeat_s

    def _intervals(self) -> dict[str, float]:
        s = self.cfg.schedule
        return {"magnetogram": s.magnetogram_interval_s, "sharp": s.sharp_interval_s, "aia": s.aia_interval_s}

    # -- running ----------------------------------------------------------------------------
    def run(self) -> RunSummary:
        """Run until stopped (or, with ``once``, until what is available is processed)."""
        started = iso_utc(self.app.clock.now())
        try:
            self._serve_status()
            self.metrics.info.info(
                {"version": heliowatch_version(), "server": "replay" if self.app.standin else self.cfg.jsoc.server}
            )
            # The alert rules mute their "data too old" checks in a replay (archive times).
            self.metrics.replay.set(1.0 if self.app.replay_clock is not None else 0.0)
            try:
                self._recover()
            except LocalIOError as e:
                # Nothing can be written now: a daemon goes on polling (and retries), --once ends here.
                self._local_io_failed(e, step="recover")
                if self.once:
                    raise
            if self.once:
                self._run_once()
            else:
                self._run_forever()
        finally:
            summary = self._finish(started)
        return summary

    def _serve_status(self) -> None:
        if not self.cfg.metrics.enabled:
            return
        m = self.cfg.metrics
        try:
            self.http = StatusServer(
                self.metrics.http_body, self.status.snapshot, host=m.host, port=m.port, page=self.cfg.status.enabled
            )
        except OSError as e:
            msg = (
                f"cannot listen on {m.host}:{m.port} ({e.strerror or e}): is another heliowatch running? "
                "stop it, or set metrics.port to a free port (0 picks one)"
            )
            raise ConfigError(msg, ("metrics", "port")) from e
        self.metrics_port = self.http.port
        log.info("metrics_serving", url=f"http://{m.host}:{self.metrics_port}/metrics", status_page=self.cfg.status.enabled)

    def _recover(self) -> None:
        """The outbox in step with the maildir, products' saved states back, then the records
        ingested before a crash but not processed by every product."""
        if self.app.alerts is not None:
            try:
                self.app.alerts.recover()
            except DeliveryError as e:  # an orphan that cannot be removed delays no alert: it is only debris
                log.warning("maildir_recovery_failed", error=str(e)[:300])
        self.app.fanout.restore()
        if self.once:
            return  # --once offers them with what it polls (see _dispatch)
        report = self.app.fanout.recover(self.app.sources)
        with self._lock:
            self._dispatched.add(report)

    def _run_once(self) -> None:
        frames: list[VerifiedFrame] = []
        for ing in self.app.ingestors:
            while not self.stop_event.is_set():
                res = self._poll_job(ing)
                if res is None:
                    # What a crash left is still processed (as a daemon's start would), then the run ends.
                    with self._lock:
                        self._dispatched.add(self.app.fanout.recover(self.app.sources))
                    msg = f"JSOC unavailable while polling {ing.source.name}; nothing more can be done in --once mode"
                    raise SourceUnavailable(msg)
                frames += res.frames
                if res.remaining == 0:
                    break
        # Every source polled first, then the products in time order across sources: each
        # product sees what the others knew at that time, whatever order the sources came in.
        log.info("processing", records=len(frames), products=[p.name for p in self.app.products])
        try:
            self._dispatch(frames)
        except LocalIOError as e:
            self._local_io_failed(e, step="processing")
            raise
        if self.stop_event.is_set():
            return  # stopped: ending the streams now would close a jet still being observed
        # A --once run ends the stream: a jet still going on is recorded as it stands.
        self.app.fanout.end_streams()
        self._coverage()
        if self.app.verifier is not None:
            self.app.verifier.run()
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
        self._sched = sched
        sched.add_listener(self._on_event, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
        s = self.cfg.schedule
        intervals = self._intervals()
        now = dt.datetime.now(dt.UTC)
        for ing in self.app.ingestors:
            interval = max(0.5, intervals[ing.source.kind] / self.app.speed)
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
        if self.app.alerts is not None:
            every = self.cfg.alerts.deliver_interval_s
            sched.add_job(
                self._guarded(self._deliver_alerts, "alerts"),
                "interval",
                seconds=every,
                id="alerts",
                next_run_time=now,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=max(1, int(every / 2)),
            )
        if self.app.verifier is not None:
            verify = self._guarded(self.app.verifier.run, "verify")
            sched.add_job(verify, "interval", seconds=600, id="verify", coalesce=True, max_instances=1)
        retention = self._guarded(self._retention, "retention")
        sched.add_job(retention, "interval", hours=6, id="retention", next_run_time=now, coalesce=True, max_instances=1)
        sched.add_job(
            self._guarded(self._coverage, "coverage"),
            "interval",
            seconds=max(1.0, 600 / self.app.speed),
            id="coverage",
            coalesce=True,
            max_instances=1,
        )
        hb = self.cfg.daemon.heartbeat_s
        sched.add_job(self._tick, "interval", seconds=hb, id="heartbeat", next_run_time=now, coalesce=True, max_instances=1)
        # Wall-clock minutes, also in a fast replay: the summary is for the person reading the log.
        every = self.cfg.logging.poll_summary_minutes * 60
        sched.add_job(self._poll_summary, "interval", seconds=every, id="poll_summary", coalesce=True, max_instances=1)
        self._install_signals()
        sched.start()
        self.metrics.up.set(1)
        sdnotify.notify(f"READY=1\nSTATUS=polling {len(self.app.ingestors)} source(s)")
        log.info("daemon_started", sources=[i.source.name for i in self.app.ingestors])
        wd = sdnotify.watchdog_interval_s()
        wait = min(hb, wd) if wd else hb
        offset = time.time() - time.monotonic()
        try:
            while not self.stop_event.wait(timeout=min(wait, 1.0)):
                offset = self._check_clock(sched, offset)
                if wd and self.healthy():
                    sdnotify.notify("WATCHDOG=1")
                if self._replay_done():
                    log.info("replay_finished")
                    break
        finally:
            self.metrics.up.set(0)
            sdnotify.notify("STOPPING=1\nSTATUS=stopping")
            sched.shutdown(wait=True)
            self._sched = None
            self._poll_summary()
            if self.app.alerts is not None:
                self._guarded(self.app.alerts.deliver, "alerts")()  # what the last polls raised

    def _check_clock(self, sched: BackgroundScheduler, offset: float) -> float:
        """Re-align the jobs after a wall-clock step; returns the current wall - monotonic offset.

        APScheduler keeps its run times in wall-clock time: stepped back 2 h, it would wait 2 h
        for the next poll; stepped forward, it would count every job missed. The monotonic clock
        never steps, so a change of ``time.time() - time.monotonic()`` is a step: every job's next
        run is moved by it (kept within one interval of now), which keeps the schedule where it was
        in monotonic time. The step is logged and counted (``heliowatch_clock_steps_total``).
        """
        now_offset = time.time() - time.monotonic()
        step = now_offset - offset
        if abs(step) < CLOCK_STEP_S:
            return now_offset  # compared sample to sample: a step is instant, a slew is not one
        self.metrics.clock_steps.inc()
        log.warning("clock_step", step_s=round(step, 1), wall_utc=iso_utc(time.time()), jobs_realigned=len(sched.get_jobs()))
        now = dt.datetime.now(dt.UTC)
        for job in sched.get_jobs():
            if job.next_run_time is None:
                continue  # paused
            run_at = job.next_run_time + dt.timedelta(seconds=step)
            interval = getattr(job.trigger, "interval", None)
            if isinstance(interval, dt.timedelta):
                # The scheduler may have run the job already on the stepped clock: never later than one interval from now.
                run_at = min(run_at, now + interval)
            try:
                sched.modify_job(job.id, next_run_time=max(run_at, now))
            except JobLookupError:
                pass  # a one-off (due) poll that ran meanwhile
        return now_offset

    def _replay_done(self) -> bool:
        if self.app.standin is None or self.keep_running:
            return False
        with self._lock:
            return all(i.source.name in self._drained for i in self.app.ingestors)

    def _write_output(self, path: Path, data: bytes) -> None:
        """Write one of the run's own files; on a full disk or a read-only directory one counted line instead."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        except OSError as e:
            err = local_io_error(e, "outputs", path)
            if err is None:
                raise
            self._local_io_failed(err)

    def _finish(self, started: str) -> RunSummary:
        ingested: dict[str, int] = {}
        skipped: dict[str, int] = {}
        rejected: dict[str, int] = {}
        for r in self._results:
            ingested[r.source] = ingested.get(r.source, 0) + r.ingested
            skipped[r.source] = skipped.get(r.source, 0) + r.skipped_quality
            rejected[r.source] = rejected.get(r.source, 0) + r.rejected
        outputs = self.app.outputs
        metrics_file = outputs / "metrics.prom"
        self._write_output(metrics_file, self.metrics.exposition())
        summary = RunSummary(
            started_utc=started,
            finished_utc=iso_utc(self.app.clock.now()),
            polls=len(self._results),
            ingested=ingested,
            skipped_quality=skipped,
            rejected=rejected,
            processed=dict(self._dispatched.processed),
            product_failures=dict(self._dispatched.failed),
            frames_dir=str((self.cfg.daemon.state_dir / "frames").resolve()),
            state_url=mask_url(self.cfg.state_url),
            metrics_file=str(metrics_file.resolve()),
            ingest_log=str((outputs / "ingest.jsonl").resolve()),
            deferred={k: v["deferred"] for k, v in self.app.state.reject_counts().items() if v["deferred"]},
        )
        self._write_output(outputs / "run-summary.json", json.dumps(asdict(summary), indent=2).encode())
        log.info("run_finished", **{k: v for k, v in asdict(summary).items() if k != "state_url"})
        if self.http is not None:
            self.http.stop()
        self.app.close()
        return summary


def summary_lines(summary: RunSummary, *, alerts_to: str, state: str) -> list[str]:
    """The human summary ``heliowatch run`` prints."""
    out = Path(summary.metrics_file).parent
    total = sum(summary.ingested.values())
    return [
        f"heliowatch: {total} record(s) ingested in {summary.polls} poll(s): "
        + ", ".join(f"{k}={v}" for k, v in sorted(summary.ingested.items())),
        f"  skipped for QUALITY: {sum(summary.skipped_quality.values())}, "
        f"rejected (will retry): {sum(summary.rejected.values())}",
        *(
            [f"  deferred after {MAX_ATTEMPTS} attempts: {sum(summary.deferred.values())} (heliowatch rejects --requeue)"]
            if summary.deferred
            else []
        ),
        "  processed: " + (", ".join(f"{k}={v}" for k, v in sorted(summary.processed.items())) or "nothing new"),
        *([f"  product failures (retried later): {summary.product_failures}"] if summary.product_failures else []),
        f"  frames:        {summary.frames_dir}",
        f"  ingest log:    {summary.ingest_log}",
        f"  metrics:       {summary.metrics_file}",
        f"  run summary:   {out / 'run-summary.json'}",
        f"  forecasts:     {out / 'forecasts'}",
        f"  alerts:        {alerts_to}",
        f"  state:         {state}",
    ]
