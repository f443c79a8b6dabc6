"""Operational flare forecasts: per region and full disk, calibrated, degraded rather than skipped.

Per region (a SHARP record), the first tier whose inputs exist is used:

1. ``sharp+history``: mean of the calibrated logistic and gradient-boosted SHARP-keyword
   models, with the log-odds of an M/X flare in the region's last 24 h (from the event feed)
   added as learned on the NOAA region-days;
2. ``sharp``: the same without the history term (no event feed);
3. ``region-class``: the McIntosh/Mt. Wilson climatology with persistence (needs the SRS class);
4. ``persistence``: the region's M/X flares yesterday (no usable SHARP quantities, e.g. at the
   limb or for a patch without data);
5. ``climatology``: the base rate.

Any tier below the first marks the forecast ``degraded`` and lists what was missing.
P(>=C) and P(>=X) come from the region's P(>=M) through relations fitted on the NOAA
region-days. Full disk: ``1 - (1 - p_limb) prod(1 - p_i)``, with the limb term driven by the
last 27 days of disk activity. Every forecast carries the model names and versions.

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
from heliowatch.models.flares.features import FeatureModel, contributions

__all__ = ["LIMB_LON_DEG", "SHARP_KEYS", "EventHistory", "FlareForecaster", "FullDiskForecast", "RegionForecast", "SharpInput"]

#: Beyond this central-meridian distance SHARP quantities are unreliable (projection effects).
LIMB_LON_DEG = 70.0
#: The LOS SHARP quantities the models were trained on (SMARP-compatible keyword names).
SHARP_KEYS = ("USFLUXL", "AREA", "MEANGBL", "R_VALUE")


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
        missing = list(inp.missing)
        models: list[dict[str, str]] = []
        contrib: dict[str, float] = {}
        at_limb = inp.lon is not None and abs(inp.lon) > LIMB_LON_DEG
        have_sharp = all(k in inp.keywords for k in SHARP_KEYS) and not at_limb
        if at_limb:
            missing.append(f"SHARP quantities unreliable at the limb (|lon| {abs(inp.lon or 0):.0f} > {LIMB_LON_DEG:.0f} deg)")
        if history is None:
            missing.append("flare history (no event feed)")
        hist24 = history.region_mx(inp.noaa_ar, issue, 24) if history else 0.0
        if have_sharp:
            k = inp.keywords
            x = np.array([[math.log10(max(k["USFLUXL"], 1e15)), math.log10(max(k["AREA"], 1.0)), k["MEANGBL"], k["R_VALUE"]]])
            p_m = float(0.5 * (self.logistic.predict(x)[0] + self.gbm.predict(x)[0]))
            models += [self._ver("flare-sharp-logistic"), self._ver("flare-sharp-gbm")]
            contrib = contributions(self.logistic, x)[0]
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
        if not any(m["name"] == "flare-region-climatology" for m in models):
            models.append(self._ver("flare-region-climatology"))  # the C and X relations
        return RegionForecast(
            file=inp.file,
            harpnum=inp.harpnum,
            noaa_ar=inp.noaa_ar,
            t_rec_utc=inp.t_rec_utc,
            hgs_lat=inp.lat,
            hgs_lon=inp.lon,
            p_c=round(max(self._level(p_m, "C"), p_m), 4),
            p_m=round(p_m, 4),
            p_x=round(min(self._level(p_m, "X"), p_m), 4),
            degraded=method != "sharp+history" or bool(missing),
            method=method,
            missing=missing,
            models=models,
            contributions={k: round(v, 4) for k, v in contrib.items()},
        )

    def full_disk(self, regions: list[RegionForecast], history: EventHistory | None, issue: pd.Timestamp) -> FullDiskForecast:
        """Combine region forecasts with the limb term into the full-disk forecast."""
        missing = []
        out = {}
        for lvl, flux in (("C", 1e-6), ("M", 1e-5)):
            lim = self.limb[lvl]
            act = history.activity(issue, flux) if history else lim["mean_activity"]
            p_limb = 1 / (1 + math.exp(-(lim["a"] + lim["b"] * math.log1p(act))))
            ps = [r.p_c if lvl == "C" else r.p_m for r in regions]
            out[lvl] = (1 - (1 - p_limb) * math.prod(1 - p for p in ps), p_limb)
        if history is None:
            missing.append("disk flare history (limb term at its training mean)")
        p_x = 1 - math.prod(1 - r.p_x for r in regions) * (1 - self._level(out["M"][1], "X"))
        start = issue.to_pydatetime().replace(tzinfo=dt.UTC)
        return FullDiskForecast(
            issue_time=start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            start_window=start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            end_window=(start + dt.timedelta(hours=24)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            p_c=round(out["C"][0], 4),
            p_m=round(out["M"][0], 4),
            p_x=round(p_x, 4),
            p_limb_m=round(out["M"][1], 4),
            regions=regions,
            degraded=any(r.degraded for r in regions) or bool(missing),
            missing=missing,
            models=[self._ver("flare-region-climatology")],
        )
