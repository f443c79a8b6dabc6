"""What the status page and ``/status.json`` show: assembled from the products' snapshots, the
state database and the outbox (no SQL here: each store answers for itself)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from heliowatch.daemon.wiring import App
from heliowatch.models.core.times import iso_utc, unix_from_iso
from heliowatch.pipelines.gaps import cadence_of, coverage
from heliowatch.pipelines.products.emergence import EmergenceProduct
from heliowatch.pipelines.products.flares import FlaresProduct
from heliowatch.pipelines.products.jets import JetsProduct
from heliowatch.pipelines.products.regions import RegionsProduct

__all__ = ["StatusView", "coverage_by_source"]


def coverage_by_source(app: App, *, window_s: float = 86400.0) -> dict[str, float]:
    """Per source: the fraction of the last ``window_s`` of cadence slots with an ingested record."""
    now = app.clock.now()
    out = {}
    for ing in app.ingestors:
        src = ing.source
        times = app.state.ingested_times(src.series, since_utc=iso_utc(now - window_s, millis=True), wavelength=src.wavelength)
        out[src.name] = coverage([unix_from_iso(t) for t in times], now=now, cadence_s=cadence_of(src), window_s=window_s)
    return out


def _version() -> str:
    try:
        return version("heliowatch")
    except PackageNotFoundError:
        return "0+unknown"


class StatusView:
    """The status dict of a running daemon.

    Parameters
    ----------
    app : App
    healthy : callable
        Whether the scheduler's health tick runs.
    once : bool
        A ``--once`` run counts as healthy (it has no scheduler).
    """

    def __init__(self, app: App, *, healthy: Callable[[], bool], once: bool = False) -> None:
        self.app = app
        self.healthy = healthy
        self.once = once
        # The products name a frame's picture before it is written; the page shows the newest that exists.
        self._shown: dict[str, str | None] = {"quicklook": None, "emergence": None}

    def _existing(self, which: str, path: str | None) -> str | None:
        if path and Path(path).exists():
            self._shown[which] = path
        return self._shown[which]

    def snapshot(self) -> dict[str, Any]:
        """The status as a JSON-able dict."""
        app = self.app
        fd = None
        quicklook = None
        jets: dict[str, Any] | None = None
        emergence: dict[str, Any] | None = None
        for p in app.products:
            if isinstance(p, FlaresProduct):
                fd = p.snapshot.latest
            elif isinstance(p, RegionsProduct):
                quicklook = self._existing("quicklook", p.latest.quicklook)
            elif isinstance(p, JetsProduct):
                jets = _jets_panel(p, app.clock.now())
            elif isinstance(p, EmergenceProduct):
                emergence = _emergence_panel(p)
                emergence["map_png"] = self._existing("emergence", emergence["map_png"])
        counts = app.state.frame_counts()
        rejects: dict[str, int] = {}
        for r in app.state.reject_summary():
            rejects[r["series"]] = rejects.get(r["series"], 0) + 1
        health = []
        cover = coverage_by_source(app)
        for ing in app.ingestors:
            hw = app.state.high_water(ing.source.name)
            latest = app.state.frames(ing.source.series, limit=1)
            health.append(
                {
                    "series": ing.source.name,
                    "last_record_utc": hw[0] if hw else None,
                    "latency_s": latest[0]["latency_s"] if latest else None,
                    "records": counts.get(ing.source.series, 0),
                    "rejected": rejects.get(ing.source.series, 0),
                    "coverage_24h": None if math.isnan(cover[ing.source.name]) else round(cover[ing.source.name], 4),
                }
            )
        alerts = app.alerts.outbox.recent(10) if app.alerts is not None else []
        return {
            "version": _version(),
            "source": "replay" if app.standin is not None else app.cfg.jsoc.server,
            "healthy": self.healthy() or self.once,
            "full_disk": {k: v for k, v in asdict(fd).items() if k != "regions"} if fd else None,
            "regions": [asdict(r) for r in fd.regions] if fd else [],
            "health": health,
            "alerts": [{k: a[k] for k in ("created_utc", "kind", "subject", "status")} for a in alerts],
            "quicklook": quicklook,
            "jets": jets,
            "emergence": emergence,
        }


def _emergence_panel(p: EmergenceProduct) -> dict[str, Any]:
    snap = p.latest
    keys = ("patch_id", "t_mid_utc", "position", "probability", "method", "lead_time_class")
    return {
        "frame_time_utc": snap.frame_time_utc,
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
        "recent": [{k: w.get(k) for k in keys} for w in reversed(snap.recent_warnings)],
    }


def _jets_panel(p: JetsProduct, now: float) -> dict[str, Any]:
    snap = p.latest
    recent = list(snap.events)[-10:]
    return {
        "frame_time_utc": snap.frame_time_utc,
        "frames": snap.frames,
        "rejected": dict(snap.rejected),
        "late": snap.late,
        "detectors": snap.detectors,
        "synthetic_model": p.synthetic_model,
        "events_per_hour_24h": round(snap.events_per_hour(unix_from_iso(snap.frame_time_utc) if snap.frame_time_utc else now), 3),
        "seconds_per_frame": round(sum(snap.seconds.values()), 3) if snap.seconds else None,
        "max_probability": snap.max_probability,
        "window_reason": snap.window_reason,
        "degraded": snap.degraded,
        "recent": [{k: e.get(k) for k in ("key", "peak_utc", "position", "probability", "detectors")} for e in reversed(recent)],
    }
