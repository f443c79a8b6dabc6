"""The emergence product: pre-emergence warnings from tracked patches of every full-disk magnetogram.

Per magnetogram, in the three steps of a :class:`~heliowatch.pipelines.products.base.SplitProduct`:

1. :meth:`EmergenceProduct.analyse` (pure, expensive): the frame's geometry read from its header
   and the whole Carrington grid of 85x85 Postel patches (1.4 Mm/px) cut in one resampling
   (:func:`~heliowatch.models.emergence.patches.extract_patches`);
2. :meth:`EmergenceProduct.advance` (stateful, cheap, in time order): the patches added to the
   running window averages; each window that closes is scored by both classifiers (the seed's
   FCN through the runtime, the MTOT discriminant); a patch that holds no known region (no
   detection of the region product, no HARP) and stays above the threshold for
   ``min_windows`` windows is warned about; earlier warnings are verified against the regions
   and HARPs that appear since (a hit when a new one appears there within ``verify_hours``);
3. :meth:`EmergenceProduct.finish` (pure): the probability map over the magnetogram (every
   frame), one store record per patch-window and per warning, HEK ``EF`` and VOEvent files and
   the alerts.

A restart replays the frames of the open windows from disk (``warmup_records``), so the
averages continue as if the daemon had never stopped; warnings, streaks and the verification
ledger are saved with every frame.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from heliowatch.models.core.errors import UsageError
from heliowatch.models.core.times import hours_between, iso_utc, parse_iso, unix_from_iso
from heliowatch.models.core.vocabulary import ProductKind, RecordKind
from heliowatch.models.emergence.averaging import AveragerStep, AveragingConfig, PatchAverager
from heliowatch.models.emergence.forecast import EmergenceForecaster, PatchForecast
from heliowatch.models.emergence.mtot import mtot_features
from heliowatch.models.emergence.patches import DiskWCS, PatchGrid, extract_patches
from heliowatch.pipelines.alert_rules import Rules
from heliowatch.pipelines.emergence_media import MapPatch, emergence_map_png
from heliowatch.pipelines.errors import DataRejected
from heliowatch.pipelines.exports import ExportSettings, event_files
from heliowatch.pipelines.fitsio import FitsFrame
from heliowatch.pipelines.frames import Source, VerifiedFrame, reload
from heliowatch.pipelines.products.base import Artifact, Batch, Catalogue, ProductRecord, run_split

__all__ = ["EmergenceAnalysis", "EmergencePlan", "EmergenceProduct", "EmergenceSnapshot", "EmergenceSummary"]

log = structlog.get_logger(__name__)

METHODS = ("emergence-fcn", "mtot-lda")


@dataclass
class EmergenceSummary:
    """One frame's patches (what the averaging needs), or why the frame was not used."""

    key: str
    t_rec_utc: str
    ids: list[str] = field(default_factory=list)
    data: np.ndarray | None = None  # (N, 85, 85) float32 Gauss
    meta: np.ndarray | None = None  # (N, 4): lat, Carrington lon, Stonyhurst lon, centre mu
    crln_obs: float = math.nan
    skipped: dict[str, str] = field(default_factory=dict)
    rejected: str | None = None


@dataclass
class EmergenceAnalysis:
    """The pure part of one magnetogram's work: its patches, and the image for the map."""

    summary: EmergenceSummary
    image: np.ndarray | None = None
    wcs: DiskWCS | None = None


@dataclass
class EmergencePlan:
    """What the stateful step decided for one frame."""

    t_rec_utc: str
    forecasts: list[PatchForecast] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    map_patches: list[MapPatch] = field(default_factory=list)
    dropped: int = 0
    restarted: bool = False
    ignored: str | None = None
    rejected: str | None = None
    n_patches: int = 0
    skipped: int = 0


@dataclass
class EmergenceSnapshot:
    """What the metrics and the status page show of the latest magnetogram."""

    frame_time_utc: str | None = None
    frames: int = 0
    patches: int = 0
    skipped: int = 0
    windows_scored: int = 0
    warnings: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    restarts: int = 0
    max_probability: float | None = None
    map_png: str | None = None
    recent_warnings: list[dict[str, Any]] = field(default_factory=list)
    verification: dict[str, Any] = field(default_factory=dict)
    method: str = "emergence-fcn"
    synthetic_model: bool = True
    seconds: dict[str, float] = field(default_factory=dict)


class EmergenceProduct:
    """Flux-emergence warnings from every full-disk magnetogram.

    Parameters
    ----------
    forecaster : EmergenceForecaster
        Both classifiers (its ``predict`` is the FCN's runtime; None: MTOT only).
    catalogue : Catalogue
        Regions and HARPs the other products know (no warning where one is).
    outputs : pathlib.Path
        The output directory.
    rules : Rules
        Alert thresholds.
    grid, averaging : PatchGrid, AveragingConfig
        The patch grid and the averaging windows.
    method : str
        Which classifier warns: ``emergence-fcn`` or ``mtot-lda``.
    threshold : float
        Probability a warning needs (0: the method's validation-chosen threshold).
    min_windows : int
        Windows in a row above the threshold before a warning.
    known_region_deg : float
        A region or HARP within this great-circle distance of a patch centre makes it known.
    verify_hours : float
        A warning with no new region or HARP near it within this time is a false alarm.
    model_info : dict
        What the products say made them (the FCN's runtime info, MTOT's provenance).
    synthetic_model : bool
        The classifiers were trained on synthetic (and semi-real) data: every output says so.
    exports : ExportSettings or None
        Who the HEK ``EF`` events and VOEvents of warnings say made them.
    """

    name = ProductKind.EMERGENCE.value
    consumes = frozenset({"magnetogram"})

    def __init__(
        self,
        *,
        forecaster: EmergenceForecaster,
        catalogue: Catalogue,
        outputs: Path,
        rules: Rules,
        grid: PatchGrid | None = None,
        averaging: AveragingConfig | None = None,
        method: str = "emergence-fcn",
        threshold: float = 0.0,
        min_windows: int = 1,
        known_region_deg: float = 7.0,
        verify_hours: float = 48.0,
        model_info: dict[str, Any] | None = None,
        synthetic_model: bool = True,
        exports: ExportSettings | None = None,
    ) -> None:
        if method not in METHODS:
            msg = f"emergence: method must be one of {', '.join(METHODS)} (got {method!r})"
            raise UsageError(msg)
        if method == "emergence-fcn" and forecaster.predict is None:
            msg = "emergence: method 'emergence-fcn' needs the network (a runtime for emergence-fcn)"
            raise UsageError(msg)
        self.forecaster = forecaster
        self.catalogue = catalogue
        self.outputs = outputs
        self.rules = rules
        self.grid = grid or PatchGrid()
        self.averaging = averaging or AveragingConfig()
        self.method = method
        own = forecaster.fcn_threshold if method == "emergence-fcn" else forecaster.mtot.threshold
        self.threshold = float(threshold or own)
        self.min_windows = int(min_windows)
        self.known_region_deg = float(known_region_deg)
        self.verify_hours = float(verify_hours)
        self.model_info = dict(model_info or {})
        self.synthetic_model = bool(synthetic_model)
        self.exports = exports or ExportSettings()
        # The frames of the open windows and of the previous window (MTOT's trend needs it).
        span = self.averaging.window_s + self.averaging.stride_s
        self.warmup_records = math.ceil(span / self.averaging.cadence_s) + 2
        self._new_state()

    def _new_state(self) -> None:
        self.averager = PatchAverager(self.averaging)
        self._recent: deque[dict[str, Any]] = deque(maxlen=self.warmup_records)
        self._streak: dict[str, int] = {}
        self._seen: list[dict[str, Any]] = []  # catalogue positions seen, for "known at the window start"
        self._flushed_k: int | None = None  # windows closed early by end_of_stream (not scored again)
        self._since: str | None = None  # first frame: the verification's time base
        self._latest: dict[str, dict[str, Any]] = {}  # patch -> its newest scored window (the map)
        self._pending: list[dict[str, Any]] = []  # warnings awaiting verification
        self._verified: list[dict[str, Any]] = []  # {"t", "hit", "lead_h"} of settled warnings
        self._crln_obs = math.nan
        self.latest = EmergenceSnapshot(method=self.method, synthetic_model=self.synthetic_model)

    # -- 1. pure -------------------------------------------------------------------------------
    def analyse(self, frame: VerifiedFrame) -> EmergenceAnalysis:
        """The frame's Carrington grid of tracked patches (a refused frame is an analysis with its reason)."""
        seg = frame.segment("magnetogram")
        try:
            return analyse_magnetogram(seg, self.grid, key=frame.key, t_rec_utc=frame.t_rec_utc)
        except (UsageError, DataRejected, ValueError) as e:
            return EmergenceAnalysis(EmergenceSummary(frame.key, frame.t_rec_utc, rejected=str(e)[:300]))

    def process(self, frames: Sequence[VerifiedFrame]) -> Batch:
        """Analyse, advance and finish, in one process."""
        return run_split(self, frames)

    # -- 2. stateful -----------------------------------------------------------------------------
    def advance(self, frames: Sequence[VerifiedFrame], summaries: Sequence[EmergenceSummary]) -> list[EmergencePlan]:
        """Average, score, warn and verify, frame by frame in time order."""
        plans = []
        for fr, s in sorted(zip(frames, summaries, strict=True), key=lambda x: x[1].t_rec_utc):
            self._recent.append(
                {
                    "record": fr.key,
                    "t_rec_utc": fr.t_rec_utc,
                    "series": fr.source.series,
                    "segments": list(fr.source.segments),
                    "paths": {k: str(v) for k, v in fr.paths.items()},
                }
            )
            plans.append(self.step(s))
        return plans

    def step(self, s: EmergenceSummary) -> EmergencePlan:
        """One frame's summary through the averaging, the classifiers, the warnings and the verification."""
        plan = EmergencePlan(t_rec_utc=s.t_rec_utc)
        snap = self.latest
        if s.rejected is not None or s.data is None:
            plan.rejected = s.rejected or "no patches"
            snap.rejected = Counter(
                {**snap.rejected, _reason_class(plan.rejected): snap.rejected[_reason_class(plan.rejected)] + 1}
            )
            log.warning("emergence_frame_rejected", record=s.key, reason=plan.rejected)
            return plan
        try:
            t_s = unix_from_iso(s.t_rec_utc)
        except ValueError:
            plan.rejected = f"frame time {s.t_rec_utc!r} is not a time"
            snap.rejected = Counter({**snap.rejected, "time": snap.rejected["time"] + 1})
            return plan
        step = self.averager.add(t_s, s.ids, s.data, meta=s.meta)
        self._crln_obs = s.crln_obs
        self._since = self._since or s.t_rec_utc
        self._remember(s.t_rec_utc, s.crln_obs)
        return self._scored(plan, step, s)

    def _remember(self, t_utc: str, crln_obs: float) -> None:
        """Keep the regions and HARPs known at this frame (Carrington positions taken now), for later windows."""
        if not math.isfinite(crln_obs):
            return
        for kind, entries in (
            ("region", self.catalogue.regions(t_utc, max_hours=0.2)),
            ("harp", self.catalogue.harps(t_utc, max_hours=1.0)),
        ):
            for e in entries:
                self._seen.append(
                    {
                        "kind": kind,
                        "t": e["t_rec_utc"],
                        "lat": float(e["hgs_lat"]),
                        "carrington_lon": (float(e["hgs_lon"]) + crln_obs) % 360.0,
                        "noaa_ar": e.get("noaa_ar"),
                        "harpnum": e.get("harpnum"),
                    }
                )
        keep_h = (self.averaging.window_s + self.averaging.stride_s) / 3600 + 6.0
        self._seen = [e for e in self._seen if hours_between(t_utc, e["t"]) <= keep_h]

    def end_of_stream(self) -> Batch:
        """Close the open windows (the end of a ``--once`` run, a backfill range or a file series): score
        the ones that hold enough frames."""
        t = self.latest.frame_time_utc
        if t is None:
            return Batch()
        step = self.averager.flush()
        plan = EmergencePlan(t_rec_utc=t)
        closed = [w.k for w in step.completed] + [k for _, k, _ in step.dropped]
        if closed:
            self._flushed_k = max(closed + ([self._flushed_k] if self._flushed_k is not None else []))
        if step.completed:
            s = EmergenceSummary(key="end", t_rec_utc=t, crln_obs=self._crln_obs)
            self._scored(plan, step, s, count_frame=False)
        plan.map_patches = []  # the last frame's map already stands; no new picture without a frame
        return self.finish([], [plan])

    def _scored(self, plan: EmergencePlan, step: AveragerStep, s: EmergenceSummary, *, count_frame: bool = True) -> EmergencePlan:
        snap = self.latest
        plan.ignored, plan.restarted, plan.dropped = step.ignored, step.restarted, len(step.dropped)
        plan.n_patches, plan.skipped = len(s.ids), len(s.skipped)
        if step.restarted:
            snap.restarts += 1
            log.warning("emergence_averaging_restarted", t_rec_utc=s.t_rec_utc, gap_h=round((step.gap_s or 0) / 3600, 2))
        if step.ignored:
            log.warning("emergence_frame_ignored", record=s.key, reason=step.ignored)
        completed = step.completed
        if self._flushed_k is not None and count_frame:
            # A restart replays the frames of windows an earlier end of stream already scored.
            completed = [w for w in completed if w.k > self._flushed_k]
        forecasts = self.forecaster.forecast(completed) if completed else []
        plan.forecasts = forecasts
        trends = _trends(completed)
        # The most probable patch of a region is the one warned about (its neighbours then stand down).
        for f, trend in sorted(zip(forecasts, trends, strict=True), key=lambda x: -self._p(x[0])):
            p = self._p(f)
            self._latest[f.patch_id] = {
                "lat": f.lat,
                "carrington_lon": f.carrington_lon,
                "p": p,
                "t_mid_utc": f.t_mid_utc,
                "alert": p >= self.threshold,
            }
            plan.warnings += self._warn(f, p, trend, s.t_rec_utc, s.crln_obs)
        self._verify(s.t_rec_utc, s.crln_obs)
        plan.map_patches = [
            MapPatch(v["lat"], v["carrington_lon"], v["p"], bool(v["alert"]))
            for v in self._latest.values()
            if hours_between(s.t_rec_utc, v["t_mid_utc"]) <= 2 * self.averaging.stride_s / 3600 + self.averaging.window_s / 3600
        ]
        if count_frame:
            snap.frame_time_utc = s.t_rec_utc
            snap.frames += 1
            snap.patches, snap.skipped = len(s.ids), len(s.skipped)
            snap.map_png = str(self.outputs / _map_rel(s.t_rec_utc))
        snap.windows_scored += len(forecasts)
        snap.warnings += len(plan.warnings)
        if forecasts:
            snap.max_probability = max(self._p(f) for f in forecasts)
        snap.recent_warnings = (snap.recent_warnings + plan.warnings)[-10:]
        snap.verification = self.verification()
        return plan

    def _p(self, f: PatchForecast) -> float:
        return float(f.p_fcn if self.method == "emergence-fcn" and f.p_fcn is not None else f.p_mtot)

    def _known_near(self, lat: float, carr_lon: float, t_utc: str, crln_obs: float) -> list[dict[str, Any]]:
        """Regions and HARPs the other products know within ``known_region_deg`` of a Carrington point."""
        near = []
        for kind, entries in (
            ("region", self.catalogue.regions(t_utc, max_hours=3.0)),
            ("harp", self.catalogue.harps(t_utc, max_hours=6.0)),
        ):
            for e in entries:
                # Entries are up to hours old; their Carrington longitude is taken with this frame's
                # L0 (an error of 0.55 deg per hour of age, well inside the match distance).
                d = _great_circle(lat, carr_lon, float(e["hgs_lat"]), float(e["hgs_lon"]) + crln_obs)
                if d <= self.known_region_deg:
                    near.append({"kind": kind, "noaa_ar": e.get("noaa_ar"), "harpnum": e.get("harpnum"), "t": e["t_rec_utc"]})
        return near

    def _warn(self, f: PatchForecast, p: float, trend: float, t_utc: str, crln_obs: float) -> list[dict[str, Any]]:
        if p < self.threshold:
            self._streak.pop(f.patch_id, None)
            return []
        # Windows in a row: a window with no contiguous predecessor (a gap, a dropped window, back
        # from the far side) starts the count again.
        self._streak[f.patch_id] = n = 1 if f.restarted else self._streak.get(f.patch_id, 0) + 1
        near = self._known_near(f.lat, f.carrington_lon, t_utc, crln_obs)
        before = [
            e
            for e in self._seen
            if hours_between(e["t"], f.t_start_utc) <= self.averaging.cadence_s / 3600
            and _great_circle(f.lat, f.carrington_lon, e["lat"], e["carrington_lon"]) <= self.known_region_deg
        ]
        # Known: numbered by NOAA (SRS, or a HARP's NOAA_AR), or seen when the window began.
        # A region first detected during the window is the emergence being warned about.
        known = [e for e in near if e["noaa_ar"]] + before
        if known or n < self.min_windows:
            return []
        if any(
            _great_circle(f.lat, f.carrington_lon, w["lat"], w["carrington_lon"])
            <= max(self.known_region_deg, 1.5 * self.grid.spacing_deg)
            and hours_between(f.t_mid_utc, w["t_mid_utc"]) < 24
            for w in self._pending
        ):
            return []  # this piece of Sun (or the overlapping patch beside it) is already warned about
        # Lead-time class: MTOT's trend tells flux already surfacing (within hours) from a quiet
        # precursor (the seed's 8-24 h range); the classifiers themselves only say "within 24 h".
        lead = "emerging now (< 8 h)" if math.isfinite(trend) and trend >= 0.1 else "within 24 h (8-24 h)"
        warning = {
            "id": f"{f.patch_id}-{f.t_mid_utc[:19].replace('-', '').replace(':', '')}Z",
            "patch_id": f.patch_id,
            "t_mid_utc": f.t_mid_utc,
            "time_utc": f.t_mid_utc,
            "end_utc": iso_utc(unix_from_iso(f.t_mid_utc) + 24 * 3600),
            "issued_utc": t_utc,
            "window": {"start_utc": f.t_start_utc, "end_utc": f.t_end_utc, "frames": f.n_frames, "expected": f.n_expected},
            "hgs_lat": round(f.lat, 2),
            "hgs_lon": round(f.hgs_lon, 2) if math.isfinite(f.hgs_lon) else None,
            "carrington_lon": round(f.carrington_lon, 2),
            "position": f"HGS {f.lat:+.1f} {f.hgs_lon:+.1f}, Carrington {f.carrington_lon:.1f}",
            "probability": round(p, 4),
            "p_fcn": None if f.p_fcn is None else round(f.p_fcn, 4),
            "p_mtot": round(f.p_mtot, 4),
            "method": self.method,
            "threshold": self.threshold,
            "windows_above": n,
            "lead_time_class": lead,
            "log_flux_trend": round(trend, 3) if math.isfinite(trend) else None,
            "degraded": f.n_frames < f.n_expected or f.restarted,
            "degraded_reasons": [
                r
                for r, on in (
                    (f"{f.n_expected - f.n_frames} of {f.n_expected} frames missing", f.n_frames < f.n_expected),
                    ("averaging restarted (no previous window: no flux trend)", f.restarted),
                )
                if on
            ],
            "synthetic_model": self.synthetic_model,
            "model": self.model_info,
        }
        self._pending.append(
            {
                "id": warning["id"],
                "patch_id": f.patch_id,
                "t_mid_utc": f.t_mid_utc,
                "issued_utc": t_utc,
                "lat": f.lat,
                "carrington_lon": f.carrington_lon,
                "seen": sorted({_ident(e) for e in near}),
            }
        )
        return [warning]

    def _verify(self, t_utc: str, crln_obs: float) -> None:
        """Settle pending warnings: a new region or HARP near one is a hit, ``verify_hours`` without one a miss."""
        still = []
        for w in self._pending:
            age_h = hours_between(t_utc, w["issued_utc"])
            near = self._known_near(w["lat"], w["carrington_lon"], t_utc, crln_obs) if math.isfinite(crln_obs) else []
            # A hit: NOAA numbers a region there, or a HARP appears, that was not there at the warning.
            new = [e for e in near if (e["noaa_ar"] or e["harpnum"]) and _ident(e) not in set(w.get("seen", []))]
            if age_h > 0 and new:
                self._verified.append({"t": t_utc, "hit": True, "lead_h": round(age_h, 2), "id": w["id"]})
                log.info("emergence_warning_verified", id=w["id"], lead_h=round(age_h, 1))
            elif age_h > self.verify_hours:
                self._verified.append({"t": t_utc, "hit": False, "lead_h": None, "id": w["id"]})
                log.info("emergence_warning_false_alarm", id=w["id"], after_h=round(age_h, 1))
            else:
                still.append(w)
        self._pending = still
        self._verified = [v for v in self._verified if hours_between(t_utc, v["t"]) <= 30 * 24]

    def verification(self) -> dict[str, Any]:
        """Rolling live verification over the last 30 days: hit rate, false alarms per day, median lead time."""
        hits = [v for v in self._verified if v["hit"]]
        misses = [v for v in self._verified if not v["hit"]]
        settled = len(hits) + len(misses)
        days = 30.0
        if self._verified and self._since:
            span = hours_between(max(v["t"] for v in self._verified), self._since) / 24
            days = min(30.0, max(span, 1.0 / 24))
        return {
            "settled": settled,
            "pending": len(self._pending),
            "hit_rate": len(hits) / settled if settled else None,
            "false_alarms_per_day": len(misses) / days if settled else None,
            "median_lead_h": statistics.median(v["lead_h"] for v in hits) if hits else None,
        }

    def state(self) -> dict[str, Any]:
        """Streaks, pending and settled warnings, and the frames to replay after a restart."""
        return {
            "recent": list(self._recent),
            "streak": dict(self._streak),
            "seen": list(self._seen),
            "flushed_k": self._flushed_k,
            "since": self._since,
            "pending": list(self._pending),
            "verified": list(self._verified),
            "latest": dict(self._latest),
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Rebuild the window averages from the recent frames on disk, then the saved warning state."""
        self._new_state()
        replayed = 0
        for r in state.get("recent", []):
            src = Source("magnetogram", r["series"], tuple(r["segments"]))
            # A frame that cannot be read back costs its windows a frame, never the start-up.
            try:
                fr = reload(src, r["record"], r["t_rec_utc"], {k: Path(v) for k, v in r["paths"].items()})
                s = self.analyse(fr).summary
                if s.data is not None:
                    self.averager.add(unix_from_iso(s.t_rec_utc), s.ids, s.data, meta=s.meta)  # windows already scored
                    replayed += 1
            except Exception as e:
                log.warning("emergence_replay_unreadable", record=r.get("record"), error=f"{type(e).__name__}: {str(e)[:200]}")
                continue
            self._recent.append(r)
        self._streak = {str(k): int(v) for k, v in state.get("streak", {}).items()}
        self._seen = list(state.get("seen", []))
        self._flushed_k = state.get("flushed_k")
        self._since = state.get("since")
        self._pending = list(state.get("pending", []))
        self._verified = list(state.get("verified", []))
        self._latest = dict(state.get("latest", {}))
        self.latest.verification = self.verification()
        log.info("emergence_restored", replayed=replayed, pending=len(self._pending))

    # -- 3. pure -------------------------------------------------------------------------------
    def finish(self, analyses: Sequence[EmergenceAnalysis], plans: Sequence[EmergencePlan]) -> Batch:
        """Maps, patch-window and warning records, HEK/VOEvent files and alerts."""
        by_time = {a.summary.t_rec_utc: a for a in analyses}
        batch = Batch()
        for plan in plans:
            batch.extend(self._frame_batch(by_time.get(plan.t_rec_utc), plan))
        return batch

    def _frame_batch(self, an: EmergenceAnalysis | None, plan: EmergencePlan) -> Batch:
        t = plan.t_rec_utc
        batch = Batch(alerts_at=parse_iso(t).astimezone(dt.UTC))
        if plan.rejected is not None:
            return batch
        map_path: str | None = None
        if an is not None and an.image is not None and an.wcs is not None:
            rel = _map_rel(t)
            title = (
                f"heliowatch emergence {t[:16]}Z  P(emergence < 24 h), {self.method}"
                f"{'  (trained on synthetic data)' if self.synthetic_model else ''}"
            )
            png = emergence_map_png(an.image, an.wcs, plan.map_patches, title=title, threshold=self.threshold)
            batch.files.append(Artifact(rel, png))
            map_path = str(self.outputs / rel)
        elif self.latest.map_png and Path(self.latest.map_png).exists():
            map_path = self.latest.map_png  # the windows closed at the end of the stream: the last frame's map
        for f in plan.forecasts:
            payload = {
                **f.to_dict(),
                "records": f.records(),
                "probability": self._p(f),
                "method": self.method,
                "threshold": self.threshold,
                "map_png": map_path,
                "synthetic_model": self.synthetic_model,
            }
            batch.records.append(ProductRecord(RecordKind.EMERGENCE.value, f"{f.t_mid_utc}|{f.patch_id}", f.t_mid_utc, payload))
        for w in plan.warnings:
            payload = {**w, "map_png": map_path}
            for rel, data in event_files(RecordKind.EMERGENCE_WARNING.value, payload, self.exports):
                batch.files.append(Artifact(rel, data))
                payload["hek_json" if rel.name.endswith(".hek.json") else "voevent_xml"] = str(self.outputs / rel)
            batch.records.append(
                ProductRecord(
                    RecordKind.EMERGENCE_WARNING.value, w["id"], w["t_mid_utc"], payload, region=f"patch {w['patch_id']}"
                )
            )
            batch.alerts += self.rules.emergence_alerts(payload)
            log.info(
                "emergence_warning",
                patch=w["patch_id"],
                position=w["position"],
                probability=w["probability"],
                method=w["method"],
                lead=w["lead_time_class"],
            )
        log.info(
            "emergence",
            t_rec_utc=t,
            patches=plan.n_patches,
            skipped=plan.skipped,
            windows_scored=len(plan.forecasts),
            warnings=len(plan.warnings),
            map_png=map_path,
        )
        return batch


def analyse_magnetogram(seg: FitsFrame, grid: PatchGrid, *, key: str, t_rec_utc: str) -> EmergenceAnalysis:
    """The tracked patches of one full-disk LOS magnetogram (Gauss).

    Raises
    ------
    UsageError
        If the header lacks the geometry the projection needs or the image is not 2-D.
    """
    data = np.asarray(seg.data)
    if data.ndim != 2:
        msg = f"{seg.path.name}: a full-disk magnetogram is a 2-D image (got shape {data.shape})"
        raise UsageError(msg)
    wcs = DiskWCS.from_header(seg, name=seg.path.name)
    img = data.astype(np.float32, copy=False)
    ps = extract_patches(img, wcs, grid)
    meta = (
        np.column_stack([ps.lat, ps.carrington_lon, ps.hgs_lon, ps.mu[:, ps.mu.shape[1] // 2, ps.mu.shape[2] // 2]])
        if len(ps)
        else np.zeros((0, 4))
    )
    summary = EmergenceSummary(
        key=key,
        t_rec_utc=t_rec_utc,
        ids=list(ps.ids),
        data=ps.data,
        meta=meta,
        crln_obs=wcs.crln_obs,
        skipped=dict(ps.skipped),
    )
    return EmergenceAnalysis(summary=summary, image=img, wcs=wcs)


def _trends(windows: Sequence[Any]) -> list[float]:
    """MTOT's log-flux trend of each window (NaN without a previous window)."""
    out = []
    for w in windows:
        if w.previous is None:
            out.append(math.nan)
            continue
        _, tr = mtot_features(w.data[None], w.previous[None])
        out.append(float(tr[0]))
    return out


def _ident(e: dict[str, Any]) -> str:
    """What names a catalogue entry across frames: its NOAA number, else its HARP, else its kind."""
    if e.get("noaa_ar"):
        return f"noaa:{e['noaa_ar']}"
    return f"harp:{e['harpnum']}" if e.get("harpnum") else f"{e['kind']}:unnamed"


def _reason_class(reason: str) -> str:
    """A bounded label for a rejection (metrics)."""
    r = reason.lower()
    for key, label in (("keyword", "geometry"), ("helioprojective", "geometry"), ("2-d", "shape"), ("patches", "no_patches")):
        if key in r:
            return label
    return "invalid"


def _great_circle(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2, dl = math.radians(lat1), math.radians(lat2), math.radians(lon2 - lon1)
    c = math.sin(p1) * math.sin(p2) + math.cos(p1) * math.cos(p2) * math.cos(dl)
    if not math.isfinite(c):
        return math.inf  # an unknown position is near nothing
    return math.degrees(math.acos(max(-1.0, min(1.0, c))))


def _map_rel(t_rec_utc: str) -> Path:
    return Path("emergence") / t_rec_utc[:10] / f"emergence-map-{t_rec_utc[:19].replace(':', '')}.png"
