"""Training recipes of the shipped flare models (``heliowatch train ...``).

- ``flare-features``: the SHARP-keyword models on all five folds of Sun et al. (2022):
  ``flare-sharp-logistic`` and ``flare-sharp-gbm``; each card carries the 5-fold (by HARP)
  skill of the same recipe.
- ``flare-climatology``: on the NOAA region-days (Hayes), which sample every region every day:
  per-level region-class climatology with persistence, the log-odds effect of an M/X flare in
  the previous 24 h (the history term added to SHARP forecasts), a persistence table, the
  relations that turn a region's P(>=M) into P(>=C) and P(>=X); and the full-disk limb term
  fitted on the GOES event lists.
- ``flare-regions``: the region-level models on the SHARP keyword time series (every numbered
  HARP every day), ``flare-region-keywords-{m,c}`` (all 17 header keywords) and
  ``flare-region-reduced-{m,c}`` (USFLUX, AREA_ACR, MEANGBZ, R_VALUE), with flare history and
  the previous day's SRS; each card carries the held-out skill of the same recipe.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from heliowatch.models import skill
from heliowatch.models.flares.backtest import _activity, _disk_products, _fit_limb
from heliowatch.models.flares.climatology import RegionClimatology, load_region_days, region_pairs
from heliowatch.models.flares.dataset import FEATURES, load_sharp_dataset
from heliowatch.models.flares.events import event_days, load_events
from heliowatch.models.flares.features import FeatureModel, transform
from heliowatch.models.flares.region_days import build_region_days
from heliowatch.models.flares.region_eval import skill_card
from heliowatch.models.flares.region_model import CEILING, FLOOR, FULL_KEYWORDS, REDUCED_KEYWORDS, RegionModel

__all__ = ["FEATURE_MODELS", "REGION_KINDS", "train_climatology", "train_feature_models", "train_region_models"]

#: shipped name -> (kind, features)
FEATURE_MODELS = {
    "flare-sharp-logistic": ("logistic", FEATURES),
    "flare-sharp-gbm": ("gbm", FEATURES),
}
_SUN2022 = (
    "Sun et al. 2022 (ApJ 931:163) SHARP set: 64,637 samples, 1,113 HARPs, 2010-11 .. 2020-12,"
    " MIT (GitHub ZeyuSun/flare-prediction-smarp)"
)


def _cv(kind: str, cols: list[int], x: np.ndarray, y: np.ndarray, folds: np.ndarray) -> dict[str, Any]:
    rows = []
    for f in np.unique(folds):
        te = folds == f
        m = FeatureModel.fit(kind, x[~te][:, cols], y[~te], folds[~te])
        rows.append(skill.score(y[te], m.predict(x[te][:, cols])).as_dict())
    keys = ["tss", "hss", "bss", "auc"]
    return {
        "evaluation": "5-fold cross-validation grouped by HARP; TSS/HSS at 0.5; BSS vs sample climatology",
        **{k: {"mean": float(np.mean([r[k] for r in rows])), "std": float(np.std([r[k] for r in rows]))} for k in keys},
        "caveat": "97 % of the set's negatives come from HARPs that never flare; operational skill is lower"
        " (see docs/evaluation.md)",
    }


def train_feature_models(data_dir: Path, out_dir: Path, *, progress: Any = None) -> list[Path]:
    """Fit and save the shipped SHARP-feature models; returns the written JSON files."""
    df = load_sharp_dataset(data_dir)
    x, y, folds = transform(df), df["label"].to_numpy(int), df["fold"].to_numpy()
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (kind, feats) in FEATURE_MODELS.items():
        cols = [FEATURES.index(f) for f in feats]
        cv = _cv(kind, cols, x, y, folds)
        model = FeatureModel.fit(kind, x[:, cols], y, folds)
        card = {
            "name": name,
            "version": "1.0.0",
            "description": "P(>=M flare within 24 h) of a SHARP region from its keywords",
            "architecture": {
                "class": "FeatureModel",
                "kind": kind,
                "features": feats,
                "calibration": "isotonic on out-of-fold scores",
            },
            "input": {
                "units": "USFLUXL Mx (log10), AREA uHem (log10), MEANGBL G/px, R_VALUE: the line-of-sight SHARP quantities"
                " (the Sun et al. columns USFLUX/MEANGBZ are these LOS keywords: MEANGBZ spans 9-43 there)",
            },
            "training": {
                "kind": "supervised",
                "synthetic": False,
                "data": _SUN2022,
                "cutoff_date": str(df["t_end"].max().date()),
            },
            "operational": True,
            "skill": cv,
            "known_limits": [
                "labels are M/X flares attributed to the HARP by its NOAA number; unnumbered regions have no labels",
                "SHARP quantities are unreliable beyond ~70 deg from the central meridian (projection)",
                "calibrated on the Sun et al. set, which keeps only pre-flare windows of flaring HARPs: probabilities"
                " for large complex regions run close to 1, higher than operational frequencies",
            ],
        }
        written.append(model.save(out_dir / name, card))
        if progress:
            progress(name)
    return written


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, 1e-5, 1 - 1e-5)
    return np.log(q / (1 - q))


def train_climatology(hayes_dir: Path, event_files: list[Path], out: Path, *, cutoff: str = "2018-12-31") -> Path:
    """Fit the region climatology (C and M), the limb term and the level relations; write JSON."""
    pairs = region_pairs(load_region_days(hayes_dir))
    cut = pd.Timestamp(cutoff)
    events = load_events(event_files)
    body: dict[str, Any] = {"cutoff_date": cutoff, "levels": {}}
    first = max(events["start"].min().normalize() + pd.Timedelta(days=28), pairs["forecast_day"].min())
    days = pd.date_range(first, cut, freq="D")
    for level, flux in (("C", 1e-6), ("M", 1e-5)):
        clim = RegionClimatology.fit(pairs, level, cutoff=cut)
        sub = pairs[pairs["forecast_day"].isin(days)]
        prod = _disk_products(sub, clim.predict(sub), days)
        y = np.array([d in event_days(events, min_flux=flux) for d in days], float)
        act = _activity(events, days, flux)
        a, b = _fit_limb(prod, act, y)
        body["levels"][level] = {"region": clim.to_json(), "limb": {"a": a, "b": b, "mean_activity": float(act.mean())}}
    # P(>=C) and P(>=X) from a region's P(>=M): logistic on logit(P_M) over the same region-days.
    tr = pairs[pairs["forecast_day"] <= cut]
    pm = RegionClimatology.from_json(body["levels"]["M"]["region"]).predict(tr)
    rel = {}
    for lvl in ("C+", "X+"):
        lr = LogisticRegression(max_iter=1000).fit(_logit(pm)[:, None], (tr[lvl] > 0).astype(int))
        rel[lvl[0]] = {"coef": float(lr.coef_[0][0]), "intercept": float(lr.intercept_[0])}
    body["from_m"] = rel
    # History term: the log-odds effect of an M/X flare yesterday, from the M-level logistic
    # layer (standardised coefficient / scale), and the persistence table of the same days.
    m_json = body["levels"]["M"]["region"]
    j = m_json["columns"].index("prev_M_any")
    body["history_logodds"] = float(m_json["coef"][j] / m_json["scale"][j])
    prev = tr["prev_M+"] > 0
    body["persistence"] = {
        "mx_yesterday": float((tr.loc[prev, "M+"] > 0).mean()),
        "none_yesterday": float((tr.loc[~prev, "M+"] > 0).mean()),
        "base_rate": float((tr["M+"] > 0).mean()),
    }
    body["card"] = {
        "name": "flare-region-climatology",
        "version": "1.0.0",
        "description": "Region-class (McIntosh, Mt. Wilson) flare climatology with persistence; full-disk limb term",
        "training": {
            "kind": "supervised",
            "synthetic": False,
            "data": "NOAA SRS region-days 1996-08 .. 2018-12 with GOES flare counts (Hayes, MIT); GOES event lists (SWPC, HEK)",
            "cutoff_date": cutoff,
        },
        "operational": True,
        "skill": "backtest 2016-2017 of the same recipe fitted to 2015-12-31: see docs/evaluation.md",
        "known_limits": [
            "needs the SRS class of the region; NOAA issues it once a day",
            "limb term depends on recent disk activity only",
        ],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(body, indent=1))
    return out


#: shipped name -> (level, kind, keywords); the kinds are those the held-out HARP folds of
#: ``heliowatch evaluate flare-regions`` favour (docs/evaluation.md).
REGION_KINDS: dict[str, tuple[str, str, list[str]]] = {
    "flare-region-keywords-m": ("M", "logistic", FULL_KEYWORDS),
    "flare-region-keywords-c": ("C", "logistic", FULL_KEYWORDS),
    "flare-region-reduced-m": ("M", "logistic", REDUCED_KEYWORDS),
    "flare-region-reduced-c": ("C", "logistic", REDUCED_KEYWORDS),
}
_KEYWORD_DATA = (
    "SHARP keywords (hmi.sharp_cea_720s, definitive) at 12-min cadence of the 1,335 NOAA-numbered HARPs 2010-05 .. 2019-05"
    " (GitHub lucaspauker/hmi-time-series-analysis, MIT), the last record before each 00 UT; flare history and labels from"
    " the SWPC (Hayes) and HEK GOES lists by NOAA region; the previous day's SRS (Hayes region-days, SRS catalogue 1996-2022)"
)


def train_region_models(
    data_dir: Path, out_dir: Path, *, until: str = "2015-12-31", cache_dir: Path | None = None, progress: Any = None
) -> list[Path]:
    """Fit and save the region-level keyword models (:data:`REGION_KINDS`); returns the written JSON files.

    Parameters
    ----------
    data_dir : Path
        The shared-data root (``sharp-keyword-timeseries/``, ``hayes-flare-ar/``, ``noaa-srs/``, ...).
    out_dir : Path
        Where the models are written.
    until : str
        Training cutoff (last forecast day used); the card's time split tests the days after it.
    cache_dir : Path, optional
        Cache of the built region-day table.
    """
    days = build_region_days(data_dir, cache_dir=cache_dir)
    cut = pd.Timestamp(until)
    d = pd.to_datetime(days["day"])
    late = ", ".join(f"{y}: {n}" for y, n in d[d > cut].dt.year.value_counts().sort_index().items())
    written = []
    for name, (level, kind, kws) in REGION_KINDS.items():
        model = RegionModel.fit(days, level, cutoff=cut, kind=kind, keywords=kws)
        sub = days[pd.to_datetime(days["day"]) <= cut]
        model.card = {
            "name": name,
            "version": "1.0.0",
            "description": f"P(>={level}1.0 flare within 24 h) of a SHARP region, issued at 00 UT from its last keyword record,"
            " its flare history and the previous day's SRS",
            "architecture": {
                "class": "RegionModel",
                "kind": kind,
                "keywords": kws,
                "features": model.features,
                "calibration": f"isotonic on out-of-fold scores (5 GroupKFold folds by HARP), clipped to [{FLOOR}, {CEILING}]",
            },
            "input": {
                "units": "SHARP header keywords as the JSOC computes them (USFLUX Mx, AREA_ACR uHem, TOTPOT erg/cm, ...;"
                " log10 of the extensive ones); flare counts of the HARP's NOAA regions in the last 24/72 h, log10 largest"
                " peak flux in 72 h, hours since the last M flare (cap 240); SRS area, Mt. Wilson delta/gamma, McIntosh"
                " classes and longitude of the previous day, with a missing indicator",
                "missing_keywords": "imputed with the training medians (the forecaster uses the reduced model instead)",
            },
            "training": {
                "kind": "supervised",
                "synthetic": False,
                "data": _KEYWORD_DATA,
                "cutoff_date": until,
                "region_days": len(sub),
                "harps": int(sub["harpnum"].nunique()),
                "events": int(sub[f"y_{level.lower()}"].sum()),
            },
            "operational": True,
            "skill": skill_card(days, level, kind, kws, cutoff=cut),
            "known_limits": [
                "trained on definitive hmi.sharp_cea_720s keywords; the NRT series (hmi.sharp_cea_720s_nrt) differs slightly",
                "only HARPs with a NOAA number and patch centre within 70 deg of central meridian are in the sample;"
                " unnumbered HARPs and limb regions are outside it (the forecaster falls back to other tiers at the limb)",
                "labels are GOES flares attributed to a NOAA region by SWPC; unattributed flares count for no region",
                "no earlier record of the HARP is used (no time derivatives): the daemon sees one record per issue",
                f"few region-days after the cutoff ({late}) and after 2017 few HARPs: the time-split scores are noisy",
            ],
        }
        written.append(model.save(out_dir / name))
        if progress:
            progress(name)
    return written
