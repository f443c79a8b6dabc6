"""The flare product: a forecast issue for every SHARP cadence.

The SHARP records of one T_REC make one issue: a forecast per region (each record read into
the forecaster's input in :meth:`FlaresProduct.analyse`), the Mt. Wilson class of the region
detected at the same place and time (from the catalogue), occlusion maps for regions above
the threshold (made with the seed CNN, whose card says whether it is synthetic), the full-disk
forecast, its JSON and CCMC exports, the ledger rows live verification scores later, one
store record per region and per issue, and the flare alerts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import structlog

from heliowatch.models.core.times import Clock, SystemClock
from heliowatch.models.core.vocabulary import ProductKind, RecordKind
from heliowatch.models.flares.cnn import occlusion_map, occlusion_png, prepare_patch
from heliowatch.models.flares.forecaster import EventHistory, FlareForecaster, FullDiskForecast, RegionForecast, SharpInput
from heliowatch.models.regions.tracking import match_position
from heliowatch.models.runtime.runtime import Runtime
from heliowatch.pipelines.alert_rules import Rules
from heliowatch.pipelines.events import EventSource
from heliowatch.pipelines.exports import ExportSettings
from heliowatch.pipelines.flare_exports import export_files
from heliowatch.pipelines.frames import VerifiedFrame
from heliowatch.pipelines.products.base import Artifact, Batch, Catalogue, LedgerEntry, ProductRecord, run_split
from heliowatch.pipelines.sharp import sharp_input

__all__ = ["FlareAnalysis", "FlaresProduct", "FlaresSnapshot"]

log = structlog.get_logger(__name__)


@dataclass
class FlareAnalysis:
    """One SHARP record's forecast and its occlusion map (if any)."""

    forecast: RegionForecast
    files: list[Artifact]

    @property
    def summary(self) -> RegionForecast:
        """The forecast (the issue is assembled from the forecasts of one T_REC)."""
        return self.forecast


@dataclass
class FlaresSnapshot:
    """The latest issue, for metrics and the status page."""

    latest: FullDiskForecast | None = None
    issues: int = 0
    issued_at: float = 0.0  # wall time of the latest issue (staleness alerts)


class FlaresProduct:
    """Flare forecasts from SHARP records.

    Parameters
    ----------
    forecaster : FlareForecaster
        The shipped (or retrained) models.
    events : EventSource or None
        GOES events (flare history); None degrades forecasts.
    catalogue : Catalogue
        Regions in (their classes), HARPs out.
    outputs : pathlib.Path
        Output directory; issues go to ``<outputs>/forecasts/<YYYY-MM-DD>/``.
    rules : Rules
        Alert thresholds.
    cnn : Runtime or None
        The CNN whose probability each region records, and of the occlusion maps (None: neither).
    occlusion_threshold : float
        Regions with P(>=M) at or above it get an occlusion map.
    occlusion_maps : {"operational", "always", "never"}
        Draw maps only when the CNN's card says it is operational, always, or never: a map
        takes ~0.7 s, and one from a synthetic-trained CNN explains no real forecast.
    clock : Clock or None
        When an issue was made (the system clock by default).
    exports : ExportSettings or None
        The model id of the CCMC Flare Scoreboard files of every issue.
    """

    name = ProductKind.FLARES.value
    consumes = frozenset({"sharp"})
    warmup_records = 0

    def __init__(
        self,
        *,
        forecaster: FlareForecaster,
        events: EventSource | None,
        catalogue: Catalogue,
        outputs: Path,
        rules: Rules,
        cnn: Runtime | None = None,
        occlusion_threshold: float = 0.5,
        occlusion_maps: str = "operational",
        clock: Clock | None = None,
        exports: ExportSettings | None = None,
    ) -> None:
        self.forecaster = forecaster
        self.exports = exports or ExportSettings()
        self.events = events
        self.catalogue = catalogue
        self.outputs = outputs
        self.rules = rules
        self.cnn = cnn
        self.threshold = occlusion_threshold
        self.draw_maps = cnn is not None and (
            occlusion_maps == "always" or (occlusion_maps == "operational" and bool(cnn.info["operational"]))
        )
        if cnn is not None and not self.draw_maps and occlusion_maps == "operational":
            log.info("occlusion_maps_off", cnn=cnn.info["name"], reason="its card says not operational (flares.occlusion_maps)")
        self.clock: Clock = clock or SystemClock()
        self.snapshot = FlaresSnapshot()

    def analyse(self, frame: VerifiedFrame) -> FlareAnalysis:
        """One SHARP record's forecast (its header from the LOS segment, else Br), with the CNN's view."""
        primary = frame.segment("magnetogram", "Br")
        inp = sharp_input(primary, frame.segments, file=str(primary.path))
        issue = pd.Timestamp(inp.t_rec_utc[:19])
        events = self.events.events() if self.events is not None else None
        history = EventHistory(events) if events is not None else None
        forecast = self.forecaster.forecast_region(inp, history, issue)
        files: list[Artifact] = []
        if inp.patch is not None and self.cnn is not None:
            try:
                files = self._explain(inp, forecast, Path("forecasts") / issue.strftime("%Y-%m-%d"))
            except (ValueError, RuntimeError) as e:
                log.warning("cnn_explanation_failed", harpnum=forecast.harpnum, error=str(e)[:300])
        return FlareAnalysis(forecast=forecast, files=files)

    def process(self, frames: Sequence[VerifiedFrame]) -> Batch:
        """Analyse, advance and finish the records of one T_REC, in one process."""
        return run_split(self, frames)

    def advance(self, frames: Sequence[VerifiedFrame], summaries: Sequence[RegionForecast]) -> Batch:
        """One issue per T_REC among the forecasts, in time order: classes, full disk, exports, alerts."""
        by_time: dict[str, list[RegionForecast]] = {}
        for r in summaries:
            by_time.setdefault(r.t_rec_utc, []).append(r)
        batch = Batch()
        for t_rec, group in sorted(by_time.items()):
            batch.extend(self._issue(group, pd.Timestamp(t_rec[:19])))
        return batch

    def finish(self, analyses: Sequence[FlareAnalysis], plan: Batch) -> Batch:
        """The issue's batch with the occlusion maps drawn in :meth:`analyse`."""
        for a in analyses:
            plan.files += a.files
        return plan

    def _issue(self, regions: list[RegionForecast], issue_time: pd.Timestamp) -> Batch:
        events = self.events.events() if self.events is not None else None
        history = EventHistory(events) if events is not None else None
        self._attach_classes(regions)
        day = Path("forecasts") / issue_time.strftime("%Y-%m-%d")
        fd = self.forecaster.full_disk(regions, history, issue_time)
        exports = [Artifact(day / name, data) for name, data in export_files(fd, self.exports)]
        rows: list[tuple[str, str, float, int | None]] = [("full_disk", "C", fd.p_c, None), ("full_disk", "M", fd.p_m, None)]
        for r in regions:
            if r.noaa_ar:
                rows += [(f"noaa:{r.noaa_ar}", "C", r.p_c, r.noaa_ar), (f"noaa:{r.noaa_ar}", "M", r.p_m, r.noaa_ar)]
        records = [
            ProductRecord(
                RecordKind.FLARE_FORECAST.value,
                fd.issue_time,
                fd.issue_time,
                {**asdict(fd), "export": str(self.outputs / exports[0].path)},
            )
        ]
        for r in regions:
            rid = f"NOAA {r.noaa_ar}" if r.noaa_ar else f"HARP {r.harpnum}"
            records.append(
                ProductRecord(RecordKind.FLARE_REGION.value, f"{fd.issue_time}|{rid}", fd.issue_time, asdict(r), region=rid)
            )
        self.catalogue.publish_harps(
            [
                {"harpnum": r.harpnum, "noaa_ar": r.noaa_ar, "hgs_lat": r.hgs_lat, "hgs_lon": r.hgs_lon, "t_rec_utc": r.t_rec_utc}
                for r in regions
            ]
        )
        self.snapshot = FlaresSnapshot(latest=fd, issues=self.snapshot.issues + 1, issued_at=self.clock.now())
        log.info(
            "flare_forecast",
            issue_time=fd.issue_time,
            regions=len(regions),
            p_m_full_disk=fd.p_m,
            p_c_full_disk=fd.p_c,
            degraded=fd.degraded,
            export=str(self.outputs / exports[0].path),
        )
        return Batch(
            records=records,
            files=exports,
            # Alert buckets follow the data's time, so a replay rate-limits as live operation would.
            alerts=self.rules.flare_alerts(fd),
            alerts_at=issue_time.to_pydatetime().replace(tzinfo=dt.UTC),
            ledger=[LedgerEntry(fd.issue_time, fd.end_window, rows)],
        )

    def state(self) -> dict[str, Any]:
        """The HARPs published in the catalogue (saved with every processed T_REC)."""
        return {"catalogue_harps": self.catalogue.entries("harps")}

    def restore(self, state: dict[str, Any]) -> None:
        """The catalogue's HARPs back after a restart: the region and emergence products name and
        place their detections by them, as they did before the restart."""
        self.catalogue.replace("harps", list(state.get("catalogue_harps", [])))

    def _attach_classes(self, regions: list[RegionForecast]) -> None:
        """Give each forecast region the Mt. Wilson class of the detected region at its place and time."""
        for r in regions:
            if r.hgs_lat is None or r.hgs_lon is None:
                continue
            detected = self.catalogue.regions(r.t_rec_utc, max_hours=3.0)
            hit = match_position(r.hgs_lat, r.hgs_lon, r.t_rec_utc, detected)
            if hit is not None:
                r.mtwilson = str(hit.get("mtwilson") or "")  # "" also when the region has no class (limb, no spot group)

    def _explain(self, inp: SharpInput, r: RegionForecast, out_dir: Path) -> list[Artifact]:
        rt = self.cnn
        assert rt is not None
        assert inp.patch is not None
        canvas = prepare_patch(inp.patch, lat=inp.lat)
        p_cnn = float(rt.predict(canvas[None, None])[0, 0])
        r.cnn = {"p": round(p_cnn, 4), **rt.info}
        if r.p_m < self.threshold or not self.draw_maps:
            return []
        _, sens = occlusion_map(rt.predict, canvas)
        name = f"occlusion-harp{r.harpnum}-{r.t_rec_utc[:19].replace(':', '').replace('-', '')}.png"
        tag = "synthetic-trained" if rt.info["synthetic"] else ("untrained" if not rt.info["trained"] else "real-data")
        title = (
            f"HARP {r.harpnum} NOAA {r.noaa_ar} {r.t_rec_utc[:16]}  P(>=M)={r.p_m:.2f}"
            f"  CNN {rt.info['name']} ({tag}) p={p_cnn:.2f}"
        )
        r.occlusion_png = str(self.outputs / out_dir / name)
        return [Artifact(out_dir / name, occlusion_png(canvas, sens, title=title))]
