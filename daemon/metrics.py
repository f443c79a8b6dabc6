"""Prometheus metrics of the daemon, in one registry per daemon instance (the one module that
imports ``prometheus_client``).

The lower layers never see this module: they report through small observer Protocols
(:class:`~heliowatch.pipelines.ingest.IngestObserver`, :class:`~heliowatch.pipelines.jsoc.JsocObserver`,
:class:`~heliowatch.pipelines.fanout.FanOutObserver`, :class:`~heliowatch.pipelines.alerts.AlertObserver`,
:class:`~heliowatch.models.runtime.base.RuntimeObserver`), which :class:`Metrics` implements, and
products expose plain snapshots that scrape-time collectors turn into metric families.
Labels are bounded: series names come from the config, endpoints and outcomes from short
fixed vocabularies. Times are values (``*_timestamp_seconds``), never labels.

Counters a dashboard or an alert reads exist at 0 from the start for every label value known
then (a counter born at 1 hides its first increment from ``increase()``, and a panel shows
"No data" instead of 0). The registry also carries the standard ``process_*`` and
``python_info`` collectors: memory, CPU and open files of a daemon that holds torch models.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from heliowatch.models.core.times import unix_from_iso
from heliowatch.models.core.vocabulary import MTWILSON_CLASSES
from heliowatch.pipelines.alerts import KINDS as ALERT_KINDS

__all__ = ["Metrics"]


class _Callbacks(Collector):
    """Scrape-time metrics from product state (Synapse's LaterGauge pattern).

    A failing callback is logged and skipped: a broken product never breaks ``/metrics``.
    """

    def __init__(self) -> None:
        self.callbacks: list[Callable[[], Iterable[Any]]] = []

    def collect(self) -> Iterable[Any]:
        for cb in list(self.callbacks):
            try:
                yield from cb()
            except Exception as e:
                structlog.get_logger(__name__).warning(
                    "metrics_callback_failed", callback=getattr(cb, "__qualname__", str(cb)), error=str(e)[:200]
                )


_LATENCY_BUCKETS = (60, 300, 600, 900, 1800, 3600, 5400, 7200, 10800, 21600, 43200, 86400)
_DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class Metrics:
    """All health metrics of one daemon.

    Parameters
    ----------
    registry : prometheus_client.CollectorRegistry, optional
        A fresh registry by default, so several daemons (tests) never share series.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        # The default registry has these; a private one needs them added (process_* is Linux-only:
        # elsewhere the collector yields nothing).
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        self.info = Info("heliowatch_build", "heliowatch version and data source", registry=r)
        self.up = Gauge("heliowatch_up", "1 while the scheduler is healthy", registry=r)
        self.replay = Gauge(
            "heliowatch_replay",
            "1 while the daemon replays an archive (its data times are archive times, not now)",
            registry=r,
        )
        self.heartbeat = Gauge("heliowatch_heartbeat_timestamp_seconds", "Unix time of the last health tick", registry=r)
        self.ingested_records = Counter(
            "heliowatch_ingested_records_total", "Records fetched, verified and recorded", ["series"], registry=r
        )
        self.rejected_records = Counter(
            "heliowatch_rejected_records_total",
            "Records refused (bad QUALITY, truncated or corrupt file, ...)",
            ["series", "reason"],
            registry=r,
        )
        self.download_bytes = Counter(
            "heliowatch_download_bytes_total", "Bytes of verified files downloaded", ["series"], registry=r
        )
        self.latency = Histogram(
            "heliowatch_data_latency_seconds",
            "Time from a record's T_REC to its availability to heliowatch",
            ["series"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.last_record = Gauge(
            "heliowatch_last_record_timestamp_seconds", "T_REC (UTC, Unix) of the newest ingested record", ["series"], registry=r
        )
        self.last_poll = Gauge(
            "heliowatch_last_poll_timestamp_seconds", "Unix time of the last successful poll", ["series"], registry=r
        )
        self.jsoc_requests = Counter(
            "heliowatch_jsoc_requests_total", "JSOC requests by endpoint and outcome", ["endpoint", "outcome"], registry=r
        )
        self.jsoc_retries = Counter("heliowatch_jsoc_retries_total", "JSOC request retries", ["endpoint"], registry=r)
        self.job_duration = Histogram(
            "heliowatch_job_duration_seconds", "Duration of scheduled job runs", ["job"], buckets=_DURATION_BUCKETS, registry=r
        )
        self.job_runs = Counter(
            "heliowatch_job_runs_total",
            "Scheduled job runs by outcome (ok, error, missed, overlapping)",
            ["job", "outcome"],
            registry=r,
        )
        self.alerts_sent = Counter(
            "heliowatch_alerts_sent_total", "Alert messages delivered (channel: mail, webhook)", ["kind", "channel"], registry=r
        )
        self.alert_failures = Counter(
            "heliowatch_alert_delivery_failures_total", "Failed alert deliveries (retried)", ["kind", "channel"], registry=r
        )
        self.alerts_refused = Counter(
            "heliowatch_alerts_refused_total",
            "Alert messages a receiver refused for good (a webhook's 4xx): not retried",
            ["kind", "channel"],
            registry=r,
        )
        self.alert_last_success = Gauge(
            "heliowatch_alert_last_delivery_timestamp_seconds", "Unix time of the last delivered alert", registry=r
        )
        self.products = Counter("heliowatch_products_total", "Products written to the store", ["product"], registry=r)
        self.backend_fallbacks = Counter(
            "heliowatch_model_backend_fallbacks_total", "Inference backends that failed to load", ["model", "backend"], registry=r
        )
        self.backend_in_use = Gauge(
            "heliowatch_model_backend_info", "1 for the backend serving each model", ["model", "backend"], registry=r
        )
        self.cuda_available = Gauge("heliowatch_cuda_available", "1 if a CUDA device is visible to the daemon", registry=r)
        self.inference_seconds = Histogram(
            "heliowatch_inference_seconds", "Model inference time per call", ["model"], buckets=_DURATION_BUCKETS, registry=r
        )
        self.coverage = Gauge(
            "heliowatch_series_coverage_ratio",
            "Fraction of the last 24 h of a series' cadence slots with an ingested record",
            ["series"],
            registry=r,
        )
        self.product_failures = Counter(
            "heliowatch_product_failures_total", "Units of input a product raised on (retried later)", ["product"], registry=r
        )
        self.local_io_errors = Counter(
            "heliowatch_local_io_errors_total",
            "Local writes that failed for want of space or permission (op: frames, state, outputs); retried",
            ["op"],
            registry=r,
        )
        for op in ("frames", "state", "outputs"):
            self.local_io_errors.labels(op)
        self.clock_steps = Counter(
            "heliowatch_clock_steps_total",
            "Wall-clock steps (an NTP step, a manual change) the scheduler was re-aligned after",
            registry=r,
        )
        self.product_seconds = Histogram(
            "heliowatch_product_seconds",
            "Time a product took for one unit of input",
            ["product"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self._callbacks = _Callbacks()
        r.register(self._callbacks)

    # -- observer protocols of the lower layers ------------------------------------------------
    def ingested(self, source: str, *, nbytes: int, latency_s: float | None, t_rec_unix: float) -> None:
        """IngestObserver: one record ingested."""
        self.ingested_records.labels(source).inc()
        self.download_bytes.labels(source).inc(nbytes)
        if latency_s is not None:
            self.latency.labels(source).observe(latency_s)
        self.last_record.labels(source).set(t_rec_unix)

    def rejected(self, source: str, reason: str) -> None:
        """IngestObserver: one record refused."""
        self.rejected_records.labels(source, reason).inc()

    def polled(self, source: str, at: float) -> None:
        """IngestObserver: a poll finished."""
        self.last_poll.labels(source).set(at)

    def jsoc_request(self, endpoint: str, outcome: str) -> None:
        """JsocObserver: one request."""
        self.jsoc_requests.labels(endpoint, outcome).inc()

    def jsoc_retry(self, endpoint: str) -> None:
        """JsocObserver: one retry."""
        self.jsoc_retries.labels(endpoint).inc()

    def jsoc_outcomes(self) -> dict[str, float]:
        """JSOC requests so far by outcome (``ok``, ``timeout``, ``http_5xx``, ...), all endpoints summed."""
        out: dict[str, float] = {}
        for family in self.jsoc_requests.collect():
            for s in family.samples:
                if s.name.endswith("_total"):
                    out[s.labels["outcome"]] = out.get(s.labels["outcome"], 0.0) + s.value
        return out

    def product_ran(self, product: str, seconds: float) -> None:
        """FanOutObserver: one unit processed."""
        self.product_seconds.labels(product).observe(seconds)

    def product_failed(self, product: str) -> None:
        """FanOutObserver: one unit failed."""
        self.product_failures.labels(product).inc()

    def records_written(self, kind: str, n: int) -> None:
        """FanOutObserver: new store records."""
        self.products.labels(kind).inc(n)

    def alert_sent(self, kind: str, at: float, channel: str = "mail") -> None:
        """AlertObserver: one message delivered on ``channel``."""
        self.alerts_sent.labels(kind, channel).inc()
        self.alert_last_success.set(at)

    def alert_failed(self, kind: str, channel: str = "mail") -> None:
        """AlertObserver: one delivery attempt failed (it will be retried)."""
        self.alert_failures.labels(kind, channel).inc()

    def alert_refused(self, kind: str, channel: str) -> None:
        """AlertObserver: a receiver refused a message for good."""
        self.alerts_refused.labels(kind, channel).inc()

    def backend_selected(self, model: str, backend: str) -> None:
        """RuntimeObserver: ``backend`` serves ``model``."""
        self.backend_in_use.labels(model, backend).set(1)

    def backend_failed(self, model: str, backend: str) -> None:
        """RuntimeObserver: a backend could not be loaded."""
        self.backend_fallbacks.labels(model, backend).inc()

    def inference(self, model: str, seconds: float) -> None:
        """RuntimeObserver: one inference call."""
        self.inference_seconds.labels(model).observe(seconds)

    def add_collector(self, callback: Callable[[], Iterable[Any]]) -> None:
        """Register ``callback() -> metric families``, evaluated at every scrape."""
        self._callbacks.callbacks.append(callback)

    def init_series(self, series: list[str]) -> None:
        """Pre-create the per-series children so dashboards show zeros, not gaps."""
        for s in series:
            self.ingested_records.labels(s)
            self.download_bytes.labels(s)
            for reason in ("quality", "truncated", "corrupt", "checksum", "size", "download"):
                self.rejected_records.labels(s, reason)

    def init_products(self, products: list[str]) -> None:
        """Pre-create the per-product children."""
        for p in products:
            self.product_failures.labels(p)

    def init_alerts(self, channels: Iterable[str]) -> None:
        """Pre-create the alert counters of every kind on each configured channel (mail, webhook)."""
        for channel in channels:
            for kind in ALERT_KINDS:
                self.alerts_sent.labels(kind, channel)
                self.alert_failures.labels(kind, channel)
                self.alerts_refused.labels(kind, channel)

    def exposition(self) -> bytes:
        """The current metrics in Prometheus text format."""
        return generate_latest(self.registry)

    def http_body(self) -> tuple[bytes, str]:
        """``/metrics``: the exposition and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    # -- scrape-time collectors of product snapshots -------------------------------------------
    def watch_regions(self, snapshot: Callable[[], Any]) -> None:
        """Regions on the latest magnetogram by class, and its time (``snapshot()`` -> RegionsSnapshot)."""

        def collect() -> list[Any]:
            snap = snapshot()
            g = GaugeMetricFamily(
                "heliowatch_regions_on_disk", "Active regions on the latest magnetogram, by Mt. Wilson class", labels=["mtwilson"]
            )
            for cls in MTWILSON_CLASSES:
                g.add_metric([cls], float(snap.by_class.get(cls, 0)))
            fams = [g]
            if snap.frame_time_utc:
                fams.append(
                    GaugeMetricFamily(
                        "heliowatch_region_frame_timestamp_seconds",
                        "T_REC (UTC, Unix) of the latest magnetogram with regions",
                        value=unix_from_iso(snap.frame_time_utc),
                    )
                )
            return fams

        self.add_collector(collect)

    def watch_flares(self, snapshot: Callable[[], Any]) -> None:
        """Per-region and full-disk probabilities of the latest issue (``snapshot()`` -> FlaresSnapshot)."""
        self.add_collector(lambda: _flare_families(snapshot()))

    def watch_jets(self, snapshot: Callable[[], Any], *, clock: Any) -> None:
        """The jet product: events per hour, frames behind, inference time, detectors (``snapshot()`` -> JetsSnapshot)."""
        self.add_collector(lambda: _jet_families(snapshot(), float(clock.now())))

    def watch_emergence(self, snapshot: Callable[[], Any]) -> None:
        """The emergence product: patches, scored windows, warnings, live verification (``snapshot()`` -> EmergenceSnapshot)."""
        self.add_collector(lambda: _emergence_families(snapshot()))

    def watch_verification(self, verifier: Any) -> None:
        """Rolling verification scores (``verifier.scores``, ``verifier.pending``)."""
        self.add_collector(lambda: _verification_families(verifier.scores, verifier.pending))

    def watch_outbox(self, pending: Callable[[], int]) -> None:
        """Depth of the alert outbox."""
        self.add_collector(
            lambda: [GaugeMetricFamily("heliowatch_alert_outbox_depth", "Alerts waiting in the outbox", value=float(pending()))]
        )


def _flare_families(snap: Any) -> list[Any]:
    fd = snap.latest
    if fd is None:
        return []
    fams: list[Any] = []
    g = GaugeMetricFamily(
        "heliowatch_flare_probability", "P(flare >= level in 24 h) per region", labels=["harpnum", "noaa_ar", "level"]
    )
    for r in fd.regions:
        for level, p in (("C", r.p_c), ("M", r.p_m), ("X", r.p_x)):
            g.add_metric([str(r.harpnum or ""), str(r.noaa_ar or ""), level], p)
    fams.append(g)
    pos = GaugeMetricFamily(
        "heliowatch_region_position_degrees",
        "Stonyhurst position of each region (flux-weighted)",
        labels=["harpnum", "noaa_ar", "coord"],
    )
    for r in fd.regions:
        for coord, v in (("lat", r.hgs_lat), ("lon", r.hgs_lon)):
            if v is not None:
                pos.add_metric([str(r.harpnum or ""), str(r.noaa_ar or ""), coord], v)
    fams.append(pos)
    cls = GaugeMetricFamily(
        "heliowatch_region_class_info",
        "1 for each region's Mt. Wilson class (rule-based baseline)",
        labels=["harpnum", "noaa_ar", "mtwilson"],
    )
    for r in fd.regions:
        if r.mtwilson:
            cls.add_metric([str(r.harpnum or ""), str(r.noaa_ar or ""), r.mtwilson], 1.0)
    fams.append(cls)
    d = GaugeMetricFamily("heliowatch_flare_full_disk_probability", "Full-disk P(flare >= level in 24 h)", labels=["level"])
    for level, p in (("C", fd.p_c), ("M", fd.p_m), ("X", fd.p_x)):
        d.add_metric([level], p)
    fams.append(d)
    fams.append(
        GaugeMetricFamily("heliowatch_flare_forecast_degraded", "1 if the latest issue is degraded", value=float(fd.degraded))
    )
    fams.append(
        GaugeMetricFamily(
            "heliowatch_last_forecast_timestamp_seconds", "Wall time of the latest issue", value=float(snap.issued_at)
        )
    )
    return fams


def _emergence_families(snap: Any) -> list[Any]:
    def gauge(name: str, doc: str, value: float | None) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, doc, value=float("nan") if value is None else float(value))

    v = snap.verification or {}
    fams: list[Any] = [
        gauge("heliowatch_emergence_frames_processed", "Magnetograms through the emergence product since start", snap.frames),
        gauge("heliowatch_emergence_patches", "Tracked patches in the latest magnetogram", snap.patches),
        gauge(
            "heliowatch_emergence_patches_skipped",
            "Grid points of the latest magnetogram skipped (limb, missing data)",
            snap.skipped,
        ),
        gauge("heliowatch_emergence_windows_scored", "Patch averaging windows scored since start", snap.windows_scored),
        gauge("heliowatch_emergence_warnings", "Emergence warnings issued since start", snap.warnings),
        gauge("heliowatch_emergence_averaging_restarts", "Averaging restarts after data gaps since start", snap.restarts),
        gauge(
            "heliowatch_emergence_max_probability", "Highest P(emergence within 24 h) of the latest windows", snap.max_probability
        ),
        gauge(
            "heliowatch_emergence_warnings_pending",
            "Warnings not yet verified (no new region yet, within the time)",
            v.get("pending"),
        ),
        gauge(
            "heliowatch_emergence_hit_rate", "Verified warnings followed by a new region or HARP, last 30 days", v.get("hit_rate")
        ),
        gauge(
            "heliowatch_emergence_false_alarms_per_day",
            "Warnings with no new region or HARP within the verification time, per day (last 30 days)",
            v.get("false_alarms_per_day"),
        ),
        gauge(
            # Base units (promtool check metrics): the dashboard divides by 3600.
            "heliowatch_emergence_median_lead_seconds",
            "Median time from warning to the new region (hits, 30 days)",
            None if v.get("median_lead_h") is None else 3600.0 * v["median_lead_h"],
        ),
        gauge(
            "heliowatch_emergence_synthetic_model",
            "1 while the classifiers are trained on synthetic data",
            float(snap.synthetic_model),
        ),
    ]
    rej = GaugeMetricFamily(
        "heliowatch_emergence_frames_rejected", "Magnetograms refused by the emergence product", labels=["reason"]
    )
    for reason, n in sorted(snap.rejected.items()):
        rej.add_metric([reason], float(n))
    fams.append(rej)
    if snap.frame_time_utc:
        fams.append(
            gauge(
                "heliowatch_emergence_frame_timestamp_seconds",
                "T_REC of the latest magnetogram",
                unix_from_iso(snap.frame_time_utc),
            )
        )
    return fams


#: AIA's 304 A cadence: "frames behind" is the data's age in frames of it.
_AIA_CADENCE_S = 12.0


def _jet_families(snap: Any, now: float) -> list[Any]:
    fams: list[Any] = []
    rate = GaugeMetricFamily("heliowatch_jet_events_per_hour", "Jet events recorded per hour over the last 24 h of data")
    t_ref = unix_from_iso(snap.frame_time_utc) if snap.frame_time_utc else now
    rate.add_metric([], snap.events_per_hour(t_ref))
    fams.append(rate)
    fams.append(
        GaugeMetricFamily(
            "heliowatch_jet_frames_processed", "304 A frames through the jet detectors since start", value=float(snap.frames)
        )
    )
    rej = GaugeMetricFamily(
        "heliowatch_jet_frames_rejected", "304 A frames refused by the jet product, by reason", labels=["reason"]
    )
    for reason, n in sorted(snap.rejected.items()):
        rej.add_metric([reason], float(n))
    fams.append(rej)
    fams.append(
        GaugeMetricFamily(
            "heliowatch_jet_frames_late",
            "304 A frames that came after newer ones were processed (dropped)",
            value=float(snap.late),
        )
    )
    # NaN before the first frame: the dashboard's series exists and says "no frame yet".
    behind = max(0.0, now - unix_from_iso(snap.frame_time_utc)) / _AIA_CADENCE_S if snap.frame_time_utc else float("nan")
    fams.append(
        GaugeMetricFamily("heliowatch_jet_frames_behind", "Age of the newest processed 304 A frame, in 12 s frames", value=behind)
    )
    if snap.frame_time_utc:
        fams.append(
            GaugeMetricFamily(
                "heliowatch_jet_frame_timestamp_seconds",
                "Time (UTC, Unix) of the newest processed 304 A frame",
                value=unix_from_iso(snap.frame_time_utc),
            )
        )
    st = GaugeMetricFamily("heliowatch_jet_stage_seconds", "Time per stage of the latest 304 A frame", labels=["stage"])
    for stage, sec in sorted(snap.seconds.items()):
        st.add_metric([stage], float(sec))
    fams.append(st)
    if snap.n_tiles and "encoder" in snap.seconds:
        fams.append(
            GaugeMetricFamily(
                "heliowatch_jet_encoder_seconds_per_tile",
                "Encoder time per tile of the latest frame",
                value=snap.seconds["encoder"] / snap.n_tiles,
            )
        )
    fams.append(GaugeMetricFamily("heliowatch_jet_tiles", "Tiles of the jet network's grid", value=float(snap.n_tiles)))
    det = GaugeMetricFamily("heliowatch_jet_detector_enabled", "1 for each jet detector in use", labels=["detector"])
    for d in ("baseline", "convlstm"):
        det.add_metric([d], 1.0 if d in snap.detectors else 0.0)
    fams.append(det)
    # NaN until the first full window: the series exists (the dashboard and the rules can name it)
    # but says "no probability yet" rather than 0.
    max_p = float("nan") if snap.max_probability is None else float(snap.max_probability)
    fams.append(GaugeMetricFamily("heliowatch_jet_max_probability", "Highest tile probability of the latest window", value=max_p))
    fams.append(
        GaugeMetricFamily(
            "heliowatch_jet_calibration_degraded",
            "1 if the latest 304 A frame's calibration was incomplete",
            value=float(bool(snap.degraded)),
        )
    )
    return fams


def _verification_families(scores: dict[tuple[str, str], dict[str, Any]], pending: int) -> list[Any]:
    v = GaugeMetricFamily(
        "heliowatch_flare_verification", "Rolling verification of issued forecasts", labels=["scope", "level", "score"]
    )
    rel = GaugeMetricFamily(
        "heliowatch_flare_reliability",
        "Observed event frequency per forecast-probability bin (rolling)",
        labels=["scope", "level", "bin"],
    )
    for (scope, level), s in scores.items():
        # TSS and BSS need events and non-events among the scored forecasts; before that they are
        # undefined (skill.tss and skill.bss return 0.0 there), and a 0.0 would read as "no skill".
        defined = 0 < int(s["events"]) < int(s["n"])
        for k in ("tss", "bss", "brier", "n", "events"):
            value = float(s[k]) if defined or k not in ("tss", "bss") else float("nan")
            v.add_metric([scope, level, k], value)
        for mean_p, observed, _count in s["reliability"]:
            rel.add_metric([scope, level, f"{min(int(mean_p * 5), 4) / 5:.1f}"], observed)
    return [
        v,
        rel,
        GaugeMetricFamily(
            "heliowatch_flare_forecasts_pending_verification", "Forecasts whose window is open", value=float(pending)
        ),
    ]
