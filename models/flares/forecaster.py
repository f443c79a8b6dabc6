"""Operational flare forecasts: per region and full disk, calibrated, degraded rather than skipped.

Per region (a SHARP record), the first tier whose inputs exist is used:

1. ``keywords+history``: the region-level models ``flare-region-keywords-{m,c}``
   (:mod:`heliowatch.models.flares.region_model`) on the record's header keywords, the region's
   flare history from the event feed and its SRS class where known; fitted and calibrated on the
   every-region-every-day SHARP keyword sample, so on operational base rates. They beat the
   SHARP-feature model on held-out HARPs and years (docs/evaluation.md);
2. ``keywords-reduced+history``: ``flare-region-reduced-{m,c}``, the same on USFLUX, AREA_ACR,
   MEANGBZ and R_VALUE only, when the record lacks other keywords (the synthetic demo records);
   not degraded, but the keywords it lacked are listed in ``missing``;
   without an event feed both run as ``keywords`` / ``keywords-reduced`` with no flare history
   (degraded);
3. ``sharp+history``: mean of the calibrated logistic and gradient-boosted SHARP-feature models
   (line-of-sight quantities, computed from the segments when the header lacks them), with the
   log-odds of an M/X flare in the region's last 24 h; ``sharp`` without an event feed;
4. ``region-class``: the McIntosh/Mt. Wilson climatology with persistence (needs the SRS class);
5. ``persistence``: the region's M/X flares yesterday (no usable SHARP quantities, e.g. at the
   limb or for a patch without data);
6. ``climatology``: the base rate.

Any tier below the first two marks the forecast ``degraded`` and lists what was missing.
P(>=C) comes from the C-level model in the first two tiers; otherwise, and P(>=X) always, from
the region's P(>=M) through relations fitted on the NOAA region-days. Every region probability
is kept in [0.001, 0.99] (P(>=X) >= 0.0001): no forecast is exactly 0 or 1.
Full disk (``flare-full-disk``, :mod:`heliowatch.models.flares.disk`): ``1 - (1 - p_limb)
prod(1 - p_i)^(h f_i)``, each region counted for its time on the disk before the west limb, the
limb / not-yet-numbered term driven by the last 27 days of disk activity and yesterday's largest
flare, and a categorical ``warning_m`` at the M1+ threshold chosen on 2010-2015. Every forecast
carries the model names and versions.

Pure computation on :class:`SharpInput` (read from SHARP files by
:mod:`heliowatch.pipelines.sharp`); exports are :mod:`heliowatch.pipelines.flare_exports`.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from heliowatch.models import registry
from heliowatch.models.core.errors import ModelError
from heliowatch.models.flares.climatology import RegionClimatology
from heliowatch.models.flares.disk import P_MAX, P_MIN, DiskModel, visible_fraction, yesterday_class
from heliowatch.models.flares.features import FeatureModel, contributions
from heliowatch.models.flares.region_days import HISTORY, HISTORY_AGG, history_features
from heliowatch.models.flares.region_model import CEILING, FLOOR, FULL_KEYWORDS, REDUCED_KEYWORDS, RegionModel

__all__ = [
    "HEADER_KEYS",
    "LIMB_LON_DEG",
    "REGION_MODELS",
    "SHARP_KEYS",
    "EventHistory",
    "FlareForecaster",
    "FullDiskForecast",
    "RegionForecast",
    "SharpInput",
]

#: Beyond this central-meridian distance SHARP quantities are unreliable (projection effects).
LIMB_LON_DEG = 70.0
#: The LOS SHARP quantities the models were trained on (SMARP-compatible keyword names).
SHARP_KEYS = ("USFLUXL", "AREA", "MEANGBL", "R_VALUE")
#: The SHARP header keywords the region-level models read (the JSOC query asks for them).
HEADER_KEYS = tuple(FULL_KEYWORDS)
#: tier -> level -> shipped region model
REGION_MODELS = {
    "keywords": {"M": "flare-region-keywords-m", "C": "flare-region-keywords-c"},
    "keywords-reduced": {"M": "flare-region-reduced-m", "C": "flare-region-reduced-c"},
}
_KEYWORD_SETS = {"keywords": FULL_KEYWORDS, "keywords-reduced": REDUCED_KEYWORDS}
#: P(>=X) is kept at or above this (its 4-decimal rounding never reads 0).
_X_FLOOR = 1e-4


@dataclass
class SharpInput:
    """What the forecaster needs of one SHARP record."""

    harpnum: int | None
    noaa_ar: int | None
    t_rec_utc: str
    lat: float | None
    lon: float | None
    keywords: dict[str, float]
    file: str = ""
    missing: list[str] = field(default_factory=list)
    srs: dict[str, Any] | None = None  # {"McIntosh", "MAGTYPE", "AREA", "Longitude"} when an SRS class is known
    patch: np.ndarray | None = None  # LOS (or Br) field in G, for the CNN and occlusion maps
    noaa_ars: list[int] = field(default_factory=list)  # every NOAA number of the HARP (NOAA_ARS), first = noaa_ar
    computed: list[str] = field(default_factory=list)  # keywords computed from the segments, not read from the header


@dataclass
class RegionForecast:
    """One region's forecast (the ``forecast --json`` schema)."""

    file: str
    harpnum: int | None
    noaa_ar: int | None
    t_rec_utc: str
    hgs_lat: float | None
    hgs_lon: float | None
    p_c: float
    p_m: float
    p_x: float
    degraded: bool
    method: str
    missing: list[str]
    models: list[dict[str, str]]
    contributions: dict[str, float] = field(default_factory=dict)
    cnn: dict[str, Any] | None = None
    occlusion_png: str | None = None
    mtwilson: str = ""  # from the regions product at the same place and time, if any


@dataclass
class FullDiskForecast:
    """The full-disk forecast of one issue."""

    issue_time: str
    start_window: str
    end_window: str
    p_c: float
    p_m: float
    p_x: float
    p_limb_m: float
    regions: list[RegionForecast]
    degraded: bool
    missing: list[str]
    models: list[dict[str, str]]
    threshold_m: float | None = None  # the categorical M1+ decision threshold of flare-full-disk (None: no such model)
    warning_m: bool | None = None  # p_m >= threshold_m


class EventHistory:
    """Flare history from the event feed, as known at a time."""

    def __init__(self, events: pd.DataFrame) -> None:
        self.events = events

    def region_mx(self, noaa_ar: int | None, t: pd.Timestamp, hours: float) -> float:
        """1 if the region had an M/X flare starting in ``[t - hours, t)``, else 0."""
        if noaa_ar is None:
            return 0.0
        e = self.events
        sel = (e["noaa_ar"] == noaa_ar) & (e["start"] < t) & (e["start"] >= t - pd.Timedelta(hours=hours)) & (e["flux"] >= 1e-5)
        return float(bool(sel.any()))

    def region_features(self, noaa_ars: list[int], t: pd.Timestamp) -> dict[str, float]:
        """The region model's flare-history inputs (:data:`~heliowatch.models.flares.region_days.HISTORY`)
        over the NOAA regions ``noaa_ars`` at ``t``; no region: no flare history."""
        if not noaa_ars:
            return history_features(self.events.iloc[:0], pd.Series([0]), pd.Series([t])).iloc[0].to_dict()
        h = history_features(self.events, pd.Series(noaa_ars), pd.Series([t] * len(noaa_ars)))
        return {c: float(h[c].agg(HISTORY_AGG[c])) for c in HISTORY}

    def activity(self, t: pd.Timestamp, min_flux: float) -> float:
        """Flares of at least ``min_flux`` on the disk in the 27 days before ``t``."""
        e = self.events
        return float(((e["start"] < t) & (e["start"] >= t - pd.Timedelta(days=27)) & (e["flux"] >= min_flux * (1 - 1e-9))).sum())


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _first_with(name: str, roots: tuple[Path, ...]) -> Path:
    for r in roots:
        if (r / f"{name}.json").exists():
            return r / name
    return roots[-1] / name


def _keyword_row(inp: SharpInput, history: EventHistory | None, issue: pd.Timestamp) -> pd.DataFrame:
    """One region-day row (the columns of :func:`~heliowatch.models.flares.region_days.build_region_days`)."""
    row: dict[str, Any] = {k: inp.keywords.get(k, float("nan")) for k in HEADER_KEYS}
    ars = inp.noaa_ars or ([inp.noaa_ar] if inp.noaa_ar else [])
    if history is not None:
        row.update(history.region_features(ars, issue))
    if inp.srs is not None:
        row.update(
            srs_mcintosh=str(inp.srs.get("McIntosh") or ""),
            srs_magtype=str(inp.srs.get("MAGTYPE") or ""),
            srs_area=_num(inp.srs.get("AREA")),
            srs_lon=_num(inp.srs.get("Longitude")),
        )
    return pd.DataFrame([row])


class FlareForecaster:
    """Loads the shipped flare models and issues forecasts.

    Parameters
    ----------
    weights_dir : pathlib.Path or None
        Where the flare models live (the package's ``models/weights`` by default).
    """

    def __init__(self, weights_dir: Path | None = None) -> None:
        root = weights_dir or registry.weights_dir()
        try:
            self.logistic, c1 = FeatureModel.load(root / "flare-sharp-logistic")
            self.gbm, c2 = FeatureModel.load(root / "flare-sharp-gbm")
            clim = json.loads((root / "flare-region-climatology.json").read_text())
        except (OSError, KeyError, json.JSONDecodeError) as e:
            msg = (
                f"flare models missing or unreadable in {root}: {e}"
                " (rebuild with `heliowatch train flare-features` / `flare-climatology`)"
            )
            raise ModelError(msg) from e
        self.cards = {c["name"]: c for c in (c1, c2, clim["card"])}
        self.persistence = clim["persistence"]
        self.history_logodds = clim["history_logodds"]
        self.region_m = RegionClimatology.from_json(clim["levels"]["M"]["region"])
        self.limb = {lvl: clim["levels"][lvl]["limb"] for lvl in ("C", "M")}
        self.from_m = clim["from_m"]
        # flare-full-disk is optional: without it full_disk uses the climatology's limb term.
        self.disk: dict[str, DiskModel] | None = None
        if (root / "flare-full-disk.json").exists():
            try:
                fd = json.loads((root / "flare-full-disk.json").read_text())
                self.disk = {lvl: DiskModel.from_json(fd["levels"][lvl]) for lvl in ("C", "M")}
            except (OSError, KeyError, TypeError, json.JSONDecodeError) as e:
                msg = f"full-disk model {root / 'flare-full-disk.json'} unreadable: {e}"
                raise ModelError(msg) from e
            self.cards[fd["card"]["name"]] = fd["card"]
        # Region models: retrained ones beside the feature models first, else the shipped ones;
        # a tier whose models are absent is skipped (the next tier serves).
        self.region: dict[str, dict[str, RegionModel]] = {}
        for tier, names in REGION_MODELS.items():
            try:
                models = {lvl: RegionModel.load(_first_with(name, (root, registry.weights_dir()))) for lvl, name in names.items()}
            except ModelError:
                continue
            self.region[tier] = models
            for name, m in zip(names.values(), models.values(), strict=True):
                self.cards[name] = m.card

    def _ver(self, name: str) -> dict[str, str]:
        c = self.cards[name]
        return {"name": name, "version": c["version"], "training": "synthetic" if c["training"].get("synthetic") else "real"}

    def _level(self, p_m: float, lvl: str) -> float:
        r = self.from_m[lvl]
        q = min(max(p_m, 1e-5), 1 - 1e-5)
        z = r["coef"] * math.log(q / (1 - q)) + r["intercept"]
        return 1 / (1 + math.exp(-z))

    def forecast_region(self, inp: SharpInput, history: EventHistory | None, issue: pd.Timestamp) -> RegionForecast:
        """One region's forecast, from the best tier whose inputs exist."""
        missing: list[str] = []
        models: list[dict[str, str]] = []
        contrib: dict[str, float] = {}
        at_limb = inp.lon is not None and abs(inp.lon) > LIMB_LON_DEG
        have_sharp = all(k in inp.keywords for k in SHARP_KEYS) and not at_limb
        if at_limb:
            missing.append(f"SHARP quantities unreliable at the limb (|lon| {abs(inp.lon or 0):.0f} > {LIMB_LON_DEG:.0f} deg)")
        if history is None:
            missing.append("flare history (no event feed: taken as no recent flare)")
        hist24 = history.region_mx(inp.noaa_ar, issue, 24) if history else 0.0
        tier = None if at_limb else next((t for t in self.region if all(k in inp.keywords for k in _KEYWORD_SETS[t])), None)
        p_c: float | None = None
        noted: list[str] = []  # listed, but not a degradation
        if tier is not None:
            row = _keyword_row(inp, history, issue)
            m_model, c_model = self.region[tier]["M"], self.region[tier]["C"]
            p_m, p_c = float(m_model.predict(row)[0]), float(c_model.predict(row)[0])
            models += [self._ver(REGION_MODELS[tier]["M"]), self._ver(REGION_MODELS[tier]["C"])]
            contrib = {k: v for k, v in m_model.logistic_terms(row)[0].items() if abs(v) >= 0.05}
            # The record's own notes concern the LOS quantities and the patch, which this tier does not read.
            noted += inp.missing
            lacking = [k for k in HEADER_KEYS if k not in inp.keywords]
            if lacking:
                noted.append(f"SHARP keywords not in the record: {', '.join(lacking)} (reduced keyword model)")
            computed = [k for k in _KEYWORD_SETS[tier] if k in inp.computed]
            if computed:
                missing.append(f"header {', '.join(computed)} missing: computed from the record's segments")
            method = f"{tier}+history" if history is not None else tier
        elif have_sharp:
            k = inp.keywords
            x = np.array([[math.log10(max(k["USFLUXL"], 1e15)), math.log10(max(k["AREA"], 1.0)), k["MEANGBL"], k["R_VALUE"]]])
            p_m = float(0.5 * (self.logistic.predict(x)[0] + self.gbm.predict(x)[0]))
            models += [self._ver("flare-sharp-logistic"), self._ver("flare-sharp-gbm")]
            contrib = contributions(self.logistic, x)[0]
            if self.region:
                missing.append("SHARP header keywords for the region-level model")
            if history is not None:
                q = min(max(p_m, 1e-5), 1 - 1e-5)
                z = math.log(q / (1 - q)) + self.history_logodds * hist24
                p_m = 1 / (1 + math.exp(-z))
                contrib["flare_history_24h"] = self.history_logodds * hist24
                method = "sharp+history"
            else:
                method = "sharp"
        elif inp.srs is not None:
            srs = pd.DataFrame([{**inp.srs, "prev_C+": 0.0, "prev_M+": hist24, "prev_X+": 0.0}])
            p_m = float(self.region_m.predict(srs)[0])
            method = "region-class"
            models.append(self._ver("flare-region-climatology"))
        elif history is not None:
            p_m = self.persistence["mx_yesterday"] if hist24 else self.persistence["none_yesterday"]
            method = "persistence"
        else:
            p_m = self.persistence["base_rate"]
            method = "climatology"
        if tier is None:
            missing = [*inp.missing, *missing]
        if not any(m["name"] == "flare-region-climatology" for m in models):
            models.append(self._ver("flare-region-climatology"))  # the C and X relations
        p_m = min(max(p_m, FLOOR), CEILING)
        p_c = min(max(p_c if p_c is not None else self._level(p_m, "C"), p_m, FLOOR), CEILING)
        p_x = min(max(self._level(p_m, "X"), _X_FLOOR), p_m)
        return RegionForecast(
            file=inp.file,
            harpnum=inp.harpnum,
            noaa_ar=inp.noaa_ar,
            t_rec_utc=inp.t_rec_utc,
            hgs_lat=inp.lat,
            hgs_lon=inp.lon,
            p_c=round(p_c, 4),
            p_m=round(p_m, 4),
            p_x=round(p_x, 4),
            degraded=method not in ("keywords+history", "keywords-reduced+history") or bool(missing),
            method=method,
            missing=missing + noted,
            models=models,
            contributions={k: round(v, 4) for k, v in contrib.items()},
        )

    def full_disk(self, regions: list[RegionForecast], history: EventHistory | None, issue: pd.Timestamp) -> FullDiskForecast:
        """Combine region forecasts with the limb term into the full-disk forecast.

        With the ``flare-full-disk`` model (:class:`~heliowatch.models.flares.disk.DiskModel`):
        each region counts for the part of the 24 h it stays on the disk, its hazard scaled as
        fitted, plus the limb / not-yet-numbered term of the last 27 days' disk activity and the
        largest flare on the disk in the last 24 h; ``warning_m`` is ``p_m >= threshold_m``.
        Without it: ``1 - (1 - p_limb) prod(1 - p_i)`` with the climatology's activity-only limb term.
        """
        missing = []
        out = {}
        models = [self._ver("flare-region-climatology")]
        lons = np.array([np.nan if r.hgs_lon is None else r.hgs_lon for r in regions], float)
        for lvl, flux in (("C", 1e-6), ("M", 1e-5)):
            ps = np.clip(np.array([r.p_c if lvl == "C" else r.p_m for r in regions], float), P_MIN, P_MAX)
            if self.disk is not None:
                dm = self.disk[lvl]
                if history is not None:
                    e = history.events
                    last = e[(e["start"] < issue) & (e["start"] >= issue - pd.Timedelta(hours=24))]["flux"]
                    act = history.activity(issue, flux)
                    yest = float(yesterday_class(np.array([last.max() if len(last) else 0.0]))[0])
                else:
                    act, yest = dm.info["mean_activity_train"], dm.info["mean_yesterday_train"]
                ls = float(np.sum(visible_fraction(lons) * np.log1p(-ps)))
                p = float(dm.combine(np.array([ls]), np.array([act]), np.array([yest]))[0])
                out[lvl] = (p, float(dm.p_limb(np.array([act]), np.array([yest]))[0]))
            else:
                lim = self.limb[lvl]
                act = history.activity(issue, flux) if history else lim["mean_activity"]
                p_limb = 1 / (1 + math.exp(-(lim["a"] + lim["b"] * math.log1p(act))))
                out[lvl] = (1 - (1 - p_limb) * float(np.prod(1 - ps)), p_limb)
        if history is None:
            missing.append("disk flare history (limb term at its training mean)")
        if self.disk is not None:
            models.append(self._ver("flare-full-disk"))
        # X regions count for their time on the disk as well (no fitted hazard scale at X).
        frac = visible_fraction(lons) if self.disk is not None else np.ones(len(regions))
        px = np.clip(np.array([r.p_x for r in regions], float), P_MIN, P_MAX)
        p_x = 1 - float(np.exp(np.sum(frac * np.log1p(-px)))) * (1 - self._level(out["M"][1], "X"))
        p_m = round(min(max(out["M"][0], P_MIN), P_MAX), 4)
        threshold = self.disk["M"].threshold if self.disk is not None else None
        start = issue.to_pydatetime().replace(tzinfo=dt.UTC)
        return FullDiskForecast(
            issue_time=start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            start_window=start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            end_window=(start + dt.timedelta(hours=24)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            p_c=round(min(max(out["C"][0], p_m), P_MAX), 4),
            p_m=p_m,
            p_x=round(min(max(p_x, P_MIN), p_m), 4),
            p_limb_m=round(out["M"][1], 4),
            regions=regions,
            degraded=any(r.degraded for r in regions) or bool(missing),
            missing=missing,
            models=models,
            threshold_m=threshold,
            warning_m=None if threshold is None else bool(p_m >= threshold),
        )
