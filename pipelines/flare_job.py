"""The daemon's flare product: a forecast issue for every SHARP cadence.

Registered as a handler of the SHARP source: the records of one T_REC make one issue. Each
issue writes its JSON and CCMC exports, occlusion maps for regions above the alert threshold
(made with the seed CNN, whose card says whether it is synthetic), goes into the
verification ledger, and feeds the scrape-time metrics.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pandas as pd
from prometheus_client.core import GaugeMetricFamily

from heliowatch.daemon.logs import get_logger
from heliowatch.daemon.state import StateStore
from heliowatch.pipelines.events import EventSource
from heliowatch.pipelines.flares import EventHistory, FlareForecaster, FullDiskForecast, read_sharp_record, write_exports
from heliowatch.pipelines.ingest import IngestedFrame
from heliowatch.pipelines.verification import Ledger

__all__ = ["FlareJob"]

log = get_logger(__name__)


class FlareJob:
    """Issue, export, explain and verify flare forecasts from ingested SHARP records.

    Parameters
    ----------
    outputs : pathlib.Path
        Product directory; issues go to ``<outputs>/forecasts/<YYYY-MM-DD>/``.
    state : StateStore
        Holds the verification ledger.
    events : EventSource or None
        GOES events (flare history and verification); None degrades forecasts.
    export_dir : pathlib.Path
        ONNX exports for the CNN runtime.
    occlusion_threshold : float
        Regions with P(>=M) at or above it get an occlusion map.
    cnn_model : str
        Registry name of the CNN used for occlusion maps ("" to disable).
    verification_days : float
        Window of the rolling verification scores.
    metrics : heliowatch.daemon.metrics.Metrics or None
    """

    def __init__(
        self,
        outputs: Path,
        state: StateStore,
        events: EventSource | None,
        *,
        export_dir: Path,
        occlusion_threshold: float = 0.5,
        cnn_model: str = "flare-cnn2",
        verification_days: float = 90.0,
        metrics: Any = None,
        backend: str = "auto",
        store: Any = None,
        alerts: Any = None,
        rules: Any = None,
    ) -> None:
        self.out = outputs / "forecasts"
        self.events = events
        self.forecaster = FlareForecaster()
        self.ledger = Ledger(state)
        self.export_dir = export_dir
        self.threshold = occlusion_threshold
        self.cnn_model = cnn_model
        self.days = verification_days
        self.metrics = metrics
        self.backend = backend
        self.store = store
        self.alerts = alerts
        self.rules = rules
        self._cnn: Any = None
        self.latest: FullDiskForecast | None = None
        self.latest_time = 0.0
        self.issues = 0
        self.scores: dict[tuple[str, str], dict[str, Any]] = {}
        if metrics is not None:
            metrics.add_collector(self.collect)

    def _runtime(self) -> Any:
        if self._cnn is None and self.cnn_model:
            from heliowatch.models.runtime.runtime import Runtime  # noqa: PLC0415

            self._cnn = Runtime(self.cnn_model, export_dir=self.export_dir, metrics=self.metrics, backend=self.backend)
        return self._cnn

    def on_frames(self, frames: list[IngestedFrame]) -> None:
        """Handler of the SHARP source: one issue per T_REC among ``frames``."""
        by_time: dict[str, list[IngestedFrame]] = {}
        for f in frames:
            by_time.setdefault(f.record.t_rec_utc, []).append(f)
        for t_rec, group in sorted(by_time.items()):
            paths = []
            for f in group:
                seg = "magnetogram" if "magnetogram" in f.paths else ("Br" if "Br" in f.paths else next(iter(f.paths)))
                paths.append(f.paths[seg])
            self.issue([read_sharp_record(p) for p in paths], pd.Timestamp(t_rec[:19]))

    def issue(self, inputs: list[Any], issue_time: pd.Timestamp) -> FullDiskForecast:
        """Forecast the regions, the disk; export, explain, record and verify."""
        events = self.events.events() if self.events is not None else None
        history = EventHistory(events) if events is not None else None
        regions = [self.forecaster.forecast_region(inp, history, issue_time) for inp in inputs]
        self._attach_classes(regions)
        day_dir = self.out / issue_time.strftime("%Y-%m-%d")
        for inp, r in zip(inputs, regions, strict=True):
            if inp.patch is None or not self.cnn_model:
                continue
            try:
                self._explain(inp, r, day_dir)
            except Exception as e:
                log.warning("cnn_explanation_failed", harpnum=r.harpnum, error=str(e)[:300])
        fd = self.forecaster.full_disk(regions, history, issue_time)
        paths = write_exports(fd, day_dir)
        rows: list[tuple[str, str, float, int | None]] = [("full_disk", "C", fd.p_c, None), ("full_disk", "M", fd.p_m, None)]
        for r in regions:
            if r.noaa_ar:
                rows += [(f"noaa:{r.noaa_ar}", "C", r.p_c, r.noaa_ar), (f"noaa:{r.noaa_ar}", "M", r.p_m, r.noaa_ar)]
        self.ledger.record(fd.issue_time, fd.end_window, rows)
        if self.store is not None:
            from dataclasses import asdict  # noqa: PLC0415

            self.store.put("flare_forecast", fd.issue_time, fd.issue_time, {**asdict(fd), "export": str(paths[0])})
            for r in regions:
                rid = f"NOAA {r.noaa_ar}" if r.noaa_ar else f"HARP {r.harpnum}"
                self.store.put("flare_region", f"{fd.issue_time}|{rid}", fd.issue_time, asdict(r), region=rid)
        if self.alerts is not None and self.rules is not None:
            # Alert buckets follow the data's time, so a replay rate-limits as live operation would.
            self.alerts.raise_alerts(self.rules.flare_alerts(fd), now=issue_time.to_pydatetime().replace(tzinfo=dt.UTC))
        self.latest = fd
        self.latest_time = dt.datetime.now(dt.UTC).timestamp()
        self.issues += 1
        self.verify()
        log.info(
            "flare_forecast",
            issue_time=fd.issue_time,
            regions=len(regions),
            p_m_full_disk=fd.p_m,
            p_c_full_disk=fd.p_c,
            degraded=fd.degraded,
            export=str(paths[0]),
        )
        return fd

    def _attach_classes(self, regions: list[Any]) -> None:
        """Give each forecast region the Mt. Wilson class of the detected region at its place and time."""
        if self.store is None:
            return
        from heliowatch.pipelines.regions import match_position  # noqa: PLC0415

        detected = [p["payload"] for p in self.store.latest("region", limit=300)]
        for r in regions:
            if r.hgs_lat is None or r.hgs_lon is None:
                continue
            hit = match_position(r.hgs_lat, r.hgs_lon, r.t_rec_utc, detected)
            if hit is not None:
                r.mtwilson = str(hit.get("mtwilson", ""))

    def _explain(self, inp: Any, r: Any, out_dir: Path) -> None:
        from heliowatch.models.flares.cnn import occlusion_map, prepare_patch, save_occlusion_png  # noqa: PLC0415

        rt = self._runtime()
        canvas = prepare_patch(inp.patch, lat=inp.lat)
        p_cnn = float(rt.predict(canvas[None, None])[0, 0])
        r.cnn = {"p": round(p_cnn, 4), **rt.info}
        if r.p_m >= self.threshold:
            _, sens = occlusion_map(rt.predict, canvas)
            name = f"occlusion-harp{r.harpnum}-{r.t_rec_utc[:19].replace(':', '').replace('-', '')}.png"
            tag = "synthetic-trained" if rt.info["synthetic"] else ("untrained" if not rt.info["trained"] else "real-data")
            title = (
                f"HARP {r.harpnum} NOAA {r.noaa_ar} {r.t_rec_utc[:16]}  P(>=M)={r.p_m:.2f}"
                f"  CNN {rt.info['name']} ({tag}) p={p_cnn:.2f}"
            )
            r.occlusion_png = str(save_occlusion_png(canvas, sens, out_dir / name, title=title))

    def verify(self) -> None:
        """Score past forecasts against the events known now."""
        if self.events is None:
            return
        horizon = self.events.horizon()
        self.ledger.verify(self.events.events(), horizon)
        self.scores = self.ledger.scores(days=self.days, now=horizon)

    def collect(self) -> list[Any]:
        """Scrape-time metric families (current regions only: departed regions simply vanish)."""
        fams: list[Any] = []
        if self.latest is not None:
            fd = self.latest
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
            d = GaugeMetricFamily(
                "heliowatch_flare_full_disk_probability", "Full-disk P(flare >= level in 24 h)", labels=["level"]
            )
            for level, p in (("C", fd.p_c), ("M", fd.p_m), ("X", fd.p_x)):
                d.add_metric([level], p)
            fams.append(d)
            fams.append(
                GaugeMetricFamily(
                    "heliowatch_flare_forecast_degraded", "1 if the latest issue is degraded", value=float(fd.degraded)
                )
            )
            fams.append(
                GaugeMetricFamily(
                    "heliowatch_last_forecast_timestamp_seconds", "Wall time of the latest issue", value=self.latest_time
                )
            )
        v = GaugeMetricFamily(
            "heliowatch_flare_verification", "Rolling verification of issued forecasts", labels=["scope", "level", "score"]
        )
        rel = GaugeMetricFamily(
            "heliowatch_flare_reliability",
            "Observed event frequency per forecast-probability bin (rolling)",
            labels=["scope", "level", "bin"],
        )
        for (scope, level), s in self.scores.items():
            for k in ("tss", "bss", "brier", "n", "events"):
                v.add_metric([scope, level, k], float(s[k]))
            for mean_p, observed, _count in s["reliability"]:
                rel.add_metric([scope, level, f"{min(int(mean_p * 5), 4) / 5:.1f}"], observed)
        fams += [v, rel]
        fams.append(
            GaugeMetricFamily(
                "heliowatch_flare_forecasts_pending_verification",
                "Forecasts whose window is open",
                value=float(self.ledger.pending()),
            )
        )
        return fams
