"""What the status page and ``/status.json`` show: assembled from the state database, the
products store, the products' in-memory snapshots, the JSOC request counters and the outbox
(no SQL here: each store answers for itself). The badge's rules are in
:mod:`heliowatch.daemon.status_rules`; the document's schema is ``docs/schemas/status.schema.json``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from heliowatch.daemon.config import Config
from heliowatch.daemon.metrics import Metrics
from heliowatch.daemon.state import StateStore
from heliowatch.daemon.status_rules import (
    JsocWindow,
    Reason,
    alert_reason,
    epoch_notice,
    jsoc_reason,
    product_reasons,
    series_reason,
    stale_after_s,
    synthetic_notes,
    utc_second,
    worst,
)
from heliowatch.daemon.wiring import App
from heliowatch.models.core import jsonio
from heliowatch.models.core.times import Clock, SystemClock, iso_utc, unix_from_iso
from heliowatch.pipelines.frames import Source
from heliowatch.pipelines.gaps import cadence_of, coverage
from heliowatch.pipelines.products.emergence import EmergenceProduct
from heliowatch.pipelines.products.jets import JetsProduct
from heliowatch.pipelines.products.regions import RegionsProduct
from heliowatch.pipelines.standin.archive import ReplayClock
from heliowatch.pipelines.store.products import ProductStore

__all__ = ["StatusInputs", "StatusView", "coverage_by_source"]

#: How much of the flare-forecast history the page plots (seconds of the daemon's clock).
HISTORY_S = 86400.0


def _coverage(state: StateStore, sources: list[Source], now: float, window_s: float) -> dict[str, float]:
    out = {}
    for src in sources:
        times = state.ingested_times(src.series, since_utc=iso_utc(now - window_s, millis=True), wavelength=src.wavelength)
        out[src.name] = coverage([unix_from_iso(t) for t in times], now=now, cadence_s=cadence_of(src), window_s=window_s)
    return out


def coverage_by_source(app: App, *, window_s: float = 86400.0) -> dict[str, float]:
    """Per source: the fraction of the last ``window_s`` of cadence slots with an ingested record."""
    return _coverage(app.state, [ing.source for ing in app.ingestors], app.clock.now(), window_s)


def _version() -> str:
    try:
        return version("heliowatch")
    except PackageNotFoundError:
        return "0+unknown"


@dataclass
class StatusInputs:
    """Everything the status is read from (a running daemon's :class:`~heliowatch.daemon.wiring.App`,
    or a state database and products store on their own, as the tests build them).

    Parameters
    ----------
    cfg : Config
    clock : Clock
        The daemon's clock (archive time in a replay).
    state : StateStore
    store : ProductStore
    sources : list of Source
        The series the daemon polls.
    products : list
        The running products (their in-memory snapshots feed the jet and emergence panels).
    metrics : Metrics or None
        JSOC request counters.
    outbox : object or None
        The alert outbox (``recent(n)``); None without alerts.
    replay_clock : ReplayClock or None
        In a replay: ages are measured on its compressed timeline.
    source : str
        ``replay`` or the JSOC URL.
    """

    cfg: Config
    clock: Clock
    state: StateStore
    store: ProductStore
    sources: list[Source]
    products: list[Any] = field(default_factory=list)
    metrics: Metrics | None = None
    outbox: Any = None
    replay_clock: ReplayClock | None = None
    source: str = ""

    @classmethod
    def of_app(cls, app: App) -> StatusInputs:
        """The inputs of a running daemon."""
        return cls(
            cfg=app.cfg,
            clock=app.clock,
            state=app.state,
            store=app.store,
            sources=[ing.source for ing in app.ingestors],
            products=list(app.products),
            metrics=app.metrics,
            outbox=app.alerts.outbox if app.alerts is not None else None,
            replay_clock=app.replay_clock,
            source="replay" if app.standin is not None else app.cfg.jsoc.server,
        )


class StatusView:
    """The status document of a running daemon.

    Parameters
    ----------
    app : App or StatusInputs
    healthy : callable
        Whether the scheduler's health tick runs.
    once : bool
        A ``--once`` run has no scheduler: its tick is not checked.
    wall : Clock or None
        The wall clock of the page's generation time (the system's by default).
    """

    def __init__(
        self,
        app: App | StatusInputs,
        *,
        healthy: Callable[[], bool],
        once: bool = False,
        wall: Clock | None = None,
    ) -> None:
        self.inputs = app if isinstance(app, StatusInputs) else StatusInputs.of_app(app)
        self.healthy = healthy
        self.once = once
        self.wall: Clock = wall or SystemClock()
        self.jsoc = JsocWindow(60.0 * self.inputs.cfg.status.jsoc_error_window_minutes, self.inputs.clock.monotonic())
        # The products name a frame's picture before it is written; the page shows the newest that exists.
        self._shown: dict[str, tuple[str, str | None] | None] = {"quicklook": None, "emergence": None}

    def _existing(self, which: str, path: str | None, t: str | None) -> tuple[str, str | None] | None:
        if path and Path(path).exists():
            self._shown[which] = (path, t)
        return self._shown[which]

    def _age(self, t_utc: str, now: float) -> float:
        t = unix_from_iso(t_utc)
        rc = self.inputs.replay_clock
        return rc.elapsed(t) if rc is not None else now - t

    def snapshot(self) -> dict[str, Any]:
        """The status as a JSON-able dict (``docs/schemas/status.schema.json``)."""
        inp = self.inputs
        cfg = inp.cfg.status
        now = inp.clock.now()
        series = self._series(now)
        history = self._history(now)
        latest = inp.store.latest("flare_forecast", limit=1)
        fd_row = latest[0]["payload"] if latest else None
        quicklook = self._quicklook()
        jets: dict[str, Any] | None = None
        emergence: dict[str, Any] | None = None
        for p in inp.products:
            if isinstance(p, JetsProduct):
                jets = _jets_panel(p, now)
            elif isinstance(p, EmergenceProduct):
                emergence = _emergence_panel(p)
                shown = self._existing("emergence", emergence["map_png"], emergence["frame_time_utc"])
                emergence["map_png"] = shown[0] if shown else None
        alerts = inp.outbox.recent(10) if inp.outbox is not None else []
        doc: dict[str, Any] = {
            "schema_version": jsonio.SCHEMA_VERSION,
            "generated_utc": utc_second(iso_utc(self.wall.now())),
            "clock_utc": utc_second(iso_utc(now)),
            "replay": inp.replay_clock is not None,
            "version": _version(),
            "source": inp.source,
            "full_disk": _full_disk(fd_row),
            "regions": [_region(r) for r in (fd_row or {}).get("regions") or []],
            "full_disk_24h": history,
            "series": series,
            "quicklook": quicklook[0] if quicklook else None,
            "quicklook_time_utc": quicklook[1] if quicklook else None,
            "alerts": [
                {"created_utc": utc_second(a["created_utc"]), **{k: str(a[k]) for k in ("kind", "subject", "status")}}
                for a in alerts
            ],
            "jets": jets,
            "emergence": emergence,
            "links": {"metrics": "/metrics", "status_json": "/status.json"},
        }
        jsoc = self.jsoc.update(inp.metrics.jsoc_outcomes() if inp.metrics is not None else {}, inp.clock.monotonic())
        doc["jsoc"] = {
            "window_s": self.jsoc.window_s,
            "requests": sum(jsoc.values()),
            "errors": sum(v for k, v in jsoc.items() if k != "ok"),
            "by_outcome": jsoc,
        }
        reasons: list[Reason] = []
        if not (self.once or self.healthy()):
            reasons.append(Reason("down", "scheduler", "scheduler", "the scheduler's health tick has stopped"))
        for s in series:
            r = series_reason(s["name"], s["age_s"], s["stale_after_s"])
            if r is not None:
                reasons.append(r)
        r = jsoc_reason(jsoc, ratio=cfg.jsoc_error_ratio, window_s=self.jsoc.window_s)
        reasons += [r] if r is not None else []
        reasons += product_reasons(doc)
        r = alert_reason(alerts)
        reasons += [r] if r is not None else []
        state = worst(reasons)
        notes = synthetic_notes(doc)
        rc = inp.replay_clock
        if rc is not None and rc.finished():
            notes.append(
                {
                    "subject": "replay",
                    "message": f"the replay archive ended at {utc_second(iso_utc(rc.end))}: no new records will come",
                }
            )
        observed = [(f"{s['name']} newest record", s["last_record_utc"]) for s in series]
        observed += [
            ("magnetogram shown", doc["quicklook_time_utc"]),
            ("flare forecast shown", (doc["full_disk"] or {}).get("issue_time")),
        ]
        doc.update(
            state=state,
            healthy=state == "healthy",
            reasons=[x.as_dict() for x in reasons],
            notes=notes,
            epochs=epoch_notice(observed, cfg.epoch_mix_hours),
        )
        return jsonio.strict(doc)

    def _series(self, now: float) -> list[dict[str, Any]]:
        inp = self.inputs
        counts = inp.state.frame_counts()
        rejects: dict[str, int] = {}
        for r in inp.state.reject_summary():
            rejects[r["series"]] = rejects.get(r["series"], 0) + 1
        cover = _coverage(inp.state, inp.sources, now, 86400.0)
        out = []
        for src in inp.sources:
            hw = inp.state.high_water(src.name)
            latest = inp.state.frames(src.series, limit=1)
            last = utc_second(hw[0]) if hw else None
            age = round(self._age(last, now), 1) if last else None
            limit = stale_after_s(src.kind, inp.cfg.status)
            out.append(
                {
                    "name": src.name,
                    "series": src.series,
                    "kind": src.kind,
                    "last_record_utc": last,
                    "age_s": age,
                    "stale_after_s": limit,
                    "stale": limit is not None and (age is None or age > limit),
                    "latency_s": latest[0]["latency_s"] if latest else None,
                    "records": counts.get(src.series, 0),
                    "rejected": rejects.get(src.series, 0),
                    "coverage_24h": None if math.isnan(cover[src.name]) else round(cover[src.name], 4),
                }
            )
        return out

    def _history(self, now: float) -> list[dict[str, Any]]:
        """Full-disk probabilities issued in the last 24 h of the daemon's clock, oldest first."""
        since = iso_utc(now - HISTORY_S)
        rows = [r for r in self.inputs.store.latest("flare_forecast", limit=500) if str(r["t_utc"]) >= since]
        out = []
        for r in reversed(rows):
            p = r["payload"]
            out.append(
                {"issue_time": utc_second(p.get("issue_time") or r["t_utc"]), **{k: p.get(k) for k in ("p_c", "p_m", "p_x")}}
            )
            out[-1]["degraded"] = bool(p.get("degraded"))
        return out

    def _quicklook(self) -> tuple[str, str | None] | None:
        """The newest annotated magnetogram that exists: the region product's, else the store's."""
        for p in self.inputs.products:
            if isinstance(p, RegionsProduct):
                return self._existing("quicklook", p.latest.quicklook, utc_second(p.latest.frame_time_utc))
        for row in self.inputs.store.latest("region", limit=20):
            path = row["payload"].get("quicklook_png")
            if path and Path(path).exists():
                return self._existing("quicklook", path, utc_second(row["t_utc"]))
        return self._shown["quicklook"]


def _full_disk(p: dict[str, Any] | None) -> dict[str, Any] | None:
    if not p:
        return None
    out = {k: v for k, v in p.items() if k not in ("regions", "export")}
    for k in ("issue_time", "start_window", "end_window"):
        out[k] = utc_second(p.get(k))
    return out


def _region(r: dict[str, Any]) -> dict[str, Any]:
    keys = ("harpnum", "noaa_ar", "mtwilson", "p_c", "p_m", "p_x", "hgs_lat", "hgs_lon", "method", "degraded", "missing", "cnn")
    return {**{k: r.get(k) for k in keys}, "t_rec_utc": utc_second(r.get("t_rec_utc"))}


def _emergence_panel(p: EmergenceProduct) -> dict[str, Any]:
    snap = p.latest
    keys = ("patch_id", "position", "probability", "method", "lead_time_class")
    return {
        "frame_time_utc": utc_second(snap.frame_time_utc),
        "frames": snap.frames,
        "patches": snap.patches,
        "skipped": snap.skipped,
        "windows_scored": snap.windows_scored,
        "warnings": snap.warnings,
        "method": snap.method,
        "threshold": p.threshold,
        "max_probability": snap.max_probability,
        "synthetic_model": snap.synthetic_model,
        "rejected": dict(snap.rejected),
        "restarts": snap.restarts,
        "verification": snap.verification,
        "map_png": snap.map_png,
        "recent": [
            {"t_mid_utc": utc_second(w.get("t_mid_utc")), **{k: w.get(k) for k in keys}} for w in reversed(snap.recent_warnings)
        ],
    }


def _jets_panel(p: JetsProduct, now: float) -> dict[str, Any]:
    snap = p.latest
    recent = list(snap.events)[-10:]
    return {
        "frame_time_utc": utc_second(snap.frame_time_utc),
        "frames": snap.frames,
        "rejected": dict(snap.rejected),
        "late": snap.late,
        "detectors": snap.detectors,
        "synthetic_model": p.synthetic_model,
        "events_per_hour_24h": round(snap.events_per_hour(unix_from_iso(snap.frame_time_utc) if snap.frame_time_utc else now), 3),
        "seconds_per_frame": round(sum(snap.seconds.values()), 3) if snap.seconds else None,
        "max_probability": snap.max_probability,
        "window_reason": snap.window_reason,
        "degraded": list(snap.degraded),
        "recent": [
            {"peak_utc": utc_second(e.get("peak_utc")), **{k: e.get(k) for k in ("key", "position", "probability", "detectors")}}
            for e in reversed(recent)
        ],
    }
