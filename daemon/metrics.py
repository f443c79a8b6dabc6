"""Prometheus metrics of the daemon, in one registry per daemon instance.

Labels are bounded: series names come from the config, endpoints and outcomes from short
fixed vocabularies. Times are values (``*_timestamp_seconds``), never labels. The HTTP
endpoint binds to 127.0.0.1 unless configured otherwise (prometheus-client defaults to
0.0.0.0).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from prometheus_client.exposition import start_http_server
from prometheus_client.registry import Collector

__all__ = ["Metrics"]


class _Callbacks(Collector):
    """Scrape-time metrics from product state (Synapse's LaterGauge pattern).

    A failing callback is logged and skipped: a broken product never breaks ``/metrics``.
    """

    def __init__(self) -> None:
        self.callbacks: list[Callable[[], Iterable[Any]]] = []

    def collect(self) -> Iterable[Any]:
        from heliowatch.daemon.logs import get_logger  # noqa: PLC0415

        for cb in list(self.callbacks):
            try:
                yield from cb()
            except Exception as e:
                get_logger(__name__).warning(
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
        self.info = Info("heliowatch_build", "heliowatch version and data source", registry=r)
        self.up = Gauge("heliowatch_up", "1 while the scheduler is healthy", registry=r)
        self.heartbeat = Gauge("heliowatch_heartbeat_timestamp_seconds", "Unix time of the last health tick", registry=r)
        self.ingested = Counter(
            "heliowatch_ingested_records_total", "Records fetched, verified and recorded", ["series"], registry=r
        )
        self.rejected = Counter(
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
        self.alerts_sent = Counter("heliowatch_alerts_sent_total", "Alert mails delivered", ["kind"], registry=r)
        self.alert_failures = Counter(
            "heliowatch_alert_delivery_failures_total", "Failed alert delivery attempts", ["kind"], registry=r
        )
        self.alert_last_success = Gauge(
            "heliowatch_alert_last_delivery_timestamp_seconds", "Unix time of the last delivered alert", registry=r
        )
        self.products = Counter("heliowatch_products_total", "Products written to the store", ["product"], registry=r)
        self.regions_on_disk = Gauge(
            "heliowatch_regions_on_disk",
            "Active regions on the latest magnetogram, by Mt. Wilson class",
            ["mtwilson"],
            registry=r,
        )
        self.region_frame_time = Gauge(
            "heliowatch_region_frame_timestamp_seconds", "T_REC (UTC, Unix) of the latest magnetogram with regions", registry=r
        )
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
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._callbacks = _Callbacks()
        r.register(self._callbacks)

    def add_collector(self, callback: Callable[[], Iterable[Any]]) -> None:
        """Register ``callback() -> metric families``, evaluated at every scrape."""
        self._callbacks.callbacks.append(callback)

    def init_series(self, series: list[str]) -> None:
        """Pre-create the per-series children so dashboards show zeros, not gaps."""
        for s in series:
            self.ingested.labels(s)
            self.download_bytes.labels(s)
            for reason in ("quality", "truncated", "corrupt", "checksum", "size", "download"):
                self.rejected.labels(s, reason)

    def serve(self, host: str, port: int) -> int:
        """Start the /metrics endpoint in a thread; return the bound port."""
        self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        return int(self._server.server_port)

    def shutdown(self) -> None:
        """Stop the endpoint if it runs."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def exposition(self) -> bytes:
        """The current metrics in Prometheus text format."""
        return generate_latest(self.registry)
