"""The region product: every new full-disk magnetogram's active regions, classified, tracked,
named after NOAA's and the JSOC's catalogues, drawn and cut out.

Per magnetogram, in three steps (the :class:`~heliowatch.pipelines.products.base.SplitProduct`
form, so a backfill can run the expensive ones on workers):

1. :meth:`RegionsProduct.analyse` (pure, expensive): the frame prepared, regions detected and
   classified;
2. :meth:`RegionsProduct.advance` (stateful, cheap, in time order): tracking from the previous
   frame, NOAA numbers from the newest SRS issued before the frame, HARP numbers from the SHARP
   records the flare product has published in the catalogue, the classes each track had;
3. :meth:`RegionsProduct.finish` (pure, expensive): the annotated quicklook, a FITS + PNG
   cutout per region, one store record per region and the new-delta alerts.

The tracker's state is saved with every processed frame and restored after a restart, so track
ids continue as if the daemon had never stopped.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from heliowatch.models.core.times import Clock, SystemClock, parse_iso
from heliowatch.models.core.vocabulary import MTWILSON_CLASSES, ProductKind, RecordKind
from heliowatch.models.regions.classify import LIMB_GUARD_DEG, classify_regions
from heliowatch.models.regions.detect import DetectedRegion, to_json
from heliowatch.models.regions.frame import Frame
from heliowatch.models.regions.loaders import Detector
from heliowatch.models.regions.tracking import Tracker
from heliowatch.models.runtime.runtime import Runtime
from heliowatch.pipelines.alert_rules import Rules
from heliowatch.pipelines.cutouts import cutouts
from heliowatch.pipelines.errors import SourceUnavailable
from heliowatch.pipelines.exports import ExportSettings, event_files, hgs_extent
from heliowatch.pipelines.frames import VerifiedFrame
from heliowatch.pipelines.products.base import Artifact, Batch, Catalogue, ProductRecord, run_split
from heliowatch.pipelines.quicklook import quicklook_png
from heliowatch.pipelines.regions import identify, preprocess
from heliowatch.pipelines.srs import SRSFeed, SRSReport

__all__ = ["RegionAnalysis", "RegionPlan", "RegionSummary", "RegionsProduct", "RegionsSnapshot"]

log = structlog.get_logger(__name__)


@dataclass
class RegionAnalysis:
    """The pure part of one magnetogram's work: the prepared frame and its classified detections."""

    frame: Frame
    regions: list[DetectedRegion]

    @property
    def summary(self) -> RegionSummary:
        """The detections without their pixel masks (what tracking and naming need)."""
        return RegionSummary(self.frame.t_rec_utc, [dataclasses.replace(r, _slices=None, _mask=None) for r in self.regions])


@dataclass
class RegionSummary:
    """One frame's detections, light enough to send between processes."""

    t_rec_utc: str
    regions: list[DetectedRegion]


@dataclass
class RegionPlan:
    """What the stateful step decided for one frame's detections (in their order)."""

    t_rec_utc: str
    track_ids: list[int | None]
    identities: list[dict[str, Any]]
    prior_classes: list[str | None]


@dataclass
class RegionsSnapshot:
    """What the metrics and the status page show of the latest magnetogram."""

    frame_time_utc: str | None = None
    by_class: dict[str, int] = field(default_factory=lambda: dict.fromkeys(MTWILSON_CLASSES, 0))
    quicklook: str | None = None
    regions: list[dict[str, Any]] = field(default_factory=list)


class RegionsProduct:
    """Active regions of every magnetogram.

    Parameters
    ----------
    detector : callable
        ``Frame -> regions`` (the SMART-like baseline or the CNN detector).
    detector_model, classifier_model : str
        What products say made them.
    classifier : Runtime or None
        The CNN classifier; None for the rules.
    srs : SRSFeed or None
        NOAA's Solar Region Summaries (None: no NOAA numbers).
    catalogue : Catalogue
        Shared with the other products (HARPs in, regions out).
    outputs : pathlib.Path
        The output directory (payloads carry absolute paths of the files written there).
    rules : Rules
        Alert thresholds.
    srs_match_deg : float
        A detection this close to an SRS region gets its number.
    limb_guard_deg : float
        No Mt. Wilson class beyond this central-meridian distance (``regions.limb_guard_deg``).
    clock : Clock or None
        Used to pace SWPC fetches of the SRS.
    exports : ExportSettings or None
        Who the HEK ``AR`` events and VOEvents of every region in every frame say made them.
    """

    name = ProductKind.REGIONS.value
    consumes = frozenset({"magnetogram"})
    warmup_records = 0  # the tracker's state is saved, not replayed

    def __init__(
        self,
        *,
        detector: Detector,
        detector_model: str,
        classifier: Runtime | None,
        classifier_model: str,
        srs: SRSFeed | None,
        catalogue: Catalogue,
        outputs: Path,
        rules: Rules,
        srs_match_deg: float = 6.0,
        limb_guard_deg: float = LIMB_GUARD_DEG,
        clock: Clock | None = None,
        exports: ExportSettings | None = None,
    ) -> None:
        self.detector = detector
        self.detector_model = detector_model
        self.classifier = classifier
        self.classifier_model = classifier_model
        self.srs = srs
        self.catalogue = catalogue
        self.outputs = outputs
        self.rules = rules
        self.srs_match_deg = srs_match_deg
        self.limb_guard_deg = limb_guard_deg
        self.clock: Clock = clock or SystemClock()
        self.exports = exports or ExportSettings()
        self.tracker = Tracker()
        self.latest = RegionsSnapshot()

    # -- 1. the pure, expensive part -----------------------------------------------------------
    def analyse(self, frame: VerifiedFrame) -> RegionAnalysis:
        """Prepare the frame, detect and classify its regions."""
        fr = preprocess(frame.segment("magnetogram"))
        regions = self.detector(fr)
        classify_regions(fr, regions, cnn=self.classifier, limb_guard_deg=self.limb_guard_deg)
        return RegionAnalysis(frame=fr, regions=regions)

    def process(self, frames: Sequence[VerifiedFrame]) -> Batch:
        """Analyse, advance and finish, in one process."""
        return run_split(self, frames)

    # -- 2. the stateful, cheap part -----------------------------------------------------------
    def advance(self, frames: Sequence[VerifiedFrame], summaries: Sequence[RegionSummary]) -> list[RegionPlan]:
        """Track and name the detections of each frame, in time order."""
        plans = []
        for s in sorted(summaries, key=lambda s: s.t_rec_utc):
            t, regions = s.t_rec_utc, s.regions
            prior = self.tracker.update(regions, t)
            srs = self._srs_for(t)
            harps = self.catalogue.harps(t, max_hours=6.0)
            idents = [identify(r, t, srs=srs, sharps=harps, max_deg=self.srs_match_deg) for r in regions]
            plans.append(
                RegionPlan(
                    t_rec_utc=t,
                    track_ids=[r.track_id for r in regions],
                    identities=idents,
                    prior_classes=[prior.get(r.track_id or 0) for r in regions],
                )
            )
            published = [
                {
                    "hgs_lat": r.hgs_lat,
                    "hgs_lon": r.hgs_lon,
                    "mtwilson": r.mtwilson,  # empty: no class (outcome says why)
                    "outcome": r.outcome,
                    "noaa_ar": sf["noaa_ar"],
                    "harpnum": sf["harpnum"],
                    "track_id": r.track_id,
                    "class_probs": r.class_probs,
                }
                for r, sf in zip(regions, idents, strict=True)
            ]
            self.catalogue.publish_regions(t, published)
            self.latest = RegionsSnapshot(
                frame_time_utc=t,
                by_class={c: sum(r.mtwilson == c for r in regions) for c in MTWILSON_CLASSES},
                quicklook=str(self.outputs / _quicklook_rel(t)),
                regions=published,
            )
        return plans

    def state(self) -> dict[str, Any]:
        """The tracker's state and the detections published in the catalogue (saved with every processed frame)."""
        return {**self.tracker.state(), "catalogue_regions": self.catalogue.entries("regions")}

    def restore(self, state: dict[str, Any]) -> None:
        """Continue tracking from a saved state, the catalogue's detections with it (the flare and
        emergence products read them: after a restart they must find what an unbroken run had)."""
        self.catalogue.replace("regions", list(state.get("catalogue_regions", [])))
        self.tracker.restore(state)

    def _srs_for(self, t_utc: str) -> SRSReport | None:
        """The newest SRS issued before ``t_utc`` (fetching SWPC's first when due), or None."""
        if self.srs is None:
            return None
        try:
            self.srs.refresh(self.clock.monotonic())
        except (SourceUnavailable, OSError) as e:  # the feed is an add-on: regions are still issued without it
            log.warning("srs_fetch_failed", url=self.srs.url, error=str(e)[:200])
        try:
            return self.srs.latest_issued(parse_iso(t_utc))
        except (OSError, ValueError) as e:
            log.warning("srs_unreadable", dir=str(self.srs.root), error=str(e)[:200])
            return None

    # -- 3. the pure, expensive rest -----------------------------------------------------------
    def finish(self, analyses: Sequence[RegionAnalysis], plans: Sequence[RegionPlan]) -> Batch:
        """Quicklooks, cutouts, records and alerts of the frames."""
        by_time = {p.t_rec_utc: p for p in plans}
        batch = Batch()
        for an in sorted(analyses, key=lambda a: a.frame.t_rec_utc):
            batch.extend(self._frame_batch(an, by_time[an.frame.t_rec_utc]))
        return batch

    def _frame_batch(self, an: RegionAnalysis, plan: RegionPlan) -> Batch:
        frame, regions = an.frame, an.regions
        t = frame.t_rec_utc
        for r, tid, sf in zip(regions, plan.track_ids, plan.identities, strict=True):
            r.track_id, r.noaa_ar = tid, sf["noaa_ar"]
        stamp = t[:19].replace(":", "")
        ql_rel = _quicklook_rel(t)
        files = [Artifact(ql_rel, quicklook_png(frame.source, regions=regions, frame=frame))]
        cut_dir = Path("regions") / t[:10]
        cut_paths = []
        for c in cutouts(frame, regions, stem=f"region-{stamp}"):
            files.append(Artifact(cut_dir / f"{c.stem}.fits", c.fits))
            entry: dict[str, str | None] = {"fits": str(self.outputs / cut_dir / f"{c.stem}.fits"), "png": None}
            if c.png is not None:
                files.append(Artifact(cut_dir / f"{c.stem}.png", c.png))
                entry["png"] = str(self.outputs / cut_dir / f"{c.stem}.png")
            cut_paths.append(entry)
        quicklook = str(self.outputs / ql_rel)
        model = f"detector: {self.detector_model}; classifier: {self.classifier_model}"
        records, alerts = [], []
        for r, sf, cut, prior in zip(regions, plan.identities, cut_paths, plan.prior_classes, strict=True):
            sl = r._slices if r._slices is not None else (slice(0, 0), slice(0, 0))
            inside = r._mask if r._mask is not None else False
            payload = {
                **to_json(r),
                **sf,
                # The region's own pixels give its HEK bounding box and position errors.
                **hgs_extent(np.where(inside, frame.geo.lat[sl], np.nan), np.where(inside, frame.geo.lon[sl], np.nan)),
                "cutout_fits": cut["fits"],
                "cutout_png": cut["png"],
                "quicklook_png": quicklook,
                "t_rec_utc": t,
                "model": model,
            }
            for rel, data in event_files(RecordKind.REGION.value, payload, self.exports):
                files.append(Artifact(rel, data))
                payload["hek_json" if rel.name.endswith(".hek.json") else "voevent_xml"] = str(self.outputs / rel)
            name = f"NOAA {payload['noaa_ar']}" if payload.get("noaa_ar") else f"track {r.track_id}"
            records.append(ProductRecord(RecordKind.REGION.value, f"{t}|{r.track_id}", t, payload, region=name))
            alerts += self.rules.region_alerts({**payload, "id": r.track_id}, prior)
        log.info("regions", t_rec_utc=t, count=len(regions), classes=[r.mtwilson for r in regions], quicklook=quicklook)
        return Batch(records=records, files=files, alerts=alerts, alerts_at=parse_iso(t).astimezone(dt.UTC))


def _quicklook_rel(t_rec_utc: str) -> Path:
    return Path("quicklook") / f"regions-{t_rec_utc[:19].replace(':', '')}.png"
