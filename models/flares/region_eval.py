"""Held-out evaluation of the region-level keyword model against the current SHARP-feature model.

Rows: the region-days of :func:`~heliowatch.models.flares.region_days.build_region_days`
(every numbered HARP within 70 deg, every day, issued at 00 UT, label: a flare of the level
from the HARP's NOAA regions within 24 h).

Splits
------
- **By HARP**: GroupKFold (5 folds) over the HARPs of the training years (forecast days up to
  2015-12-31); each fold is forecast by models fitted, and calibrated out of fold, on the other
  four.
- **By time**: fitted on days up to 2015-12-31, tested on 2016-01-01 .. 2019-05-31; HARPs with
  rows on both sides of the cut are **dropped** from the test set.

Models, on the same held-out rows: the new model (logistic and boosted trees, full keyword set
and the reduced set of the synthetic records), and the current ``sharp+history`` tier of
:class:`~heliowatch.models.flares.forecaster.FlareForecaster` (the mean of the shipped
``flare-sharp-logistic`` and ``flare-sharp-gbm`` plus its history log-odds for an M flare in the
last 24 h). The current model reads the line-of-sight USFLUXL/AREA/MEANGBL the keyword tarball
lacks: it is fed USFLUX (vector B_z flux) for USFLUXL, AREA_ACR for AREA and R_VALUE, and
MEANGBL is left missing so that the model imputes its own training median (20.7 G). Its P(>=C)
is its P(>=M) through the shipped level relation, as in the forecaster. It was fitted on the Sun
et al. set, whose HARPs include the test HARPs, so it is not held out in that sense (an advantage
to it). Scores: TSS and HSS at 0.5, BSS against the test rows' own climatology, ROC AUC,
reliability (:mod:`heliowatch.models.skill`).

Which kind ships is decided by the mean BSS over the HARP folds (training years only); the time
split is not used for any choice.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold

from heliowatch.models import skill
from heliowatch.models.core import jsonio
from heliowatch.models.flares.features import FeatureModel
from heliowatch.models.flares.region_model import FULL_KEYWORDS, LEVELS, REDUCED_KEYWORDS, RegionModel

__all__ = [
    "CUTOFF",
    "TEST_END",
    "VARIANTS",
    "current_model",
    "evaluate_region_models",
    "format_region_report",
    "harp_folds",
    "harp_oof",
    "save_region_report",
    "skill_card",
    "time_split",
]

CUTOFF = pd.Timestamp("2015-12-31")
TEST_END = pd.Timestamp("2019-05-31")
#: variant name -> (kind, keywords)
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "keywords (logistic)": ("logistic", FULL_KEYWORDS),
    "keywords (gbm)": ("gbm", FULL_KEYWORDS),
    "reduced (logistic)": ("logistic", REDUCED_KEYWORDS),
    "reduced (gbm)": ("gbm", REDUCED_KEYWORDS),
}
CURRENT = "current sharp+history"
_KEYS = ("tss", "hss", "bss", "auc")
_ACTIVE = (2012, 2015)
_QUIET = (2016, 2019)


def current_model(days: pd.DataFrame, weights_dir: Path) -> dict[str, np.ndarray]:
    """P(>=M) and P(>=C) of the current ``sharp+history`` tier for each region-day.

    Parameters
    ----------
    days : DataFrame
        Region-days with USFLUX, AREA_ACR, R_VALUE and ``n_m_24h``.
    weights_dir : Path
        Holds ``flare-sharp-logistic``, ``flare-sharp-gbm`` and ``flare-region-climatology.json``.

    Returns
    -------
    dict
        ``{"M": p_m, "C": p_c}``.
    """
    logistic, _ = FeatureModel.load(weights_dir / "flare-sharp-logistic")
    gbm, _ = FeatureModel.load(weights_dir / "flare-sharp-gbm")
    clim = json.loads((weights_dir / "flare-region-climatology.json").read_text())
    x = np.column_stack(
        [
            np.log10(np.clip(days["USFLUX"].to_numpy(float), 1e15, None)),
            np.log10(np.clip(days["AREA_ACR"].to_numpy(float), 1.0, None)),
            np.full(len(days), np.nan),  # MEANGBL: the model's training median
            days["R_VALUE"].to_numpy(float),
        ]
    )
    p = 0.5 * (logistic.predict(x) + gbm.predict(x))
    q = np.clip(p, 1e-5, 1 - 1e-5)
    z = np.log(q / (1 - q)) + clim["history_logodds"] * (days["n_m_24h"].to_numpy(float) > 0)
    p_m = 1 / (1 + np.exp(-z))
    r = clim["from_m"]["C"]
    qm = np.clip(p_m, 1e-5, 1 - 1e-5)
    p_c = np.maximum(1 / (1 + np.exp(-(r["coef"] * np.log(qm / (1 - qm)) + r["intercept"]))), p_m)
    return {"M": p_m, "C": p_c}


def _scores(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    s = skill.score(y, p, threshold=0.5)
    return {"n": len(y), "events": int(y.sum()), "tss": s.tss, "hss": s.hss, "bss": s.bss, "auc": s.auc}


def harp_folds(days: pd.DataFrame, n_folds: int = 5, *, cutoff: pd.Timestamp = CUTOFF) -> np.ndarray:
    """Fold number (0 .. n-1) of each row up to ``cutoff``, grouped by HARP; -1 for later rows."""
    fold = np.full(len(days), -1)
    train = (pd.to_datetime(days["day"]) <= cutoff).to_numpy()
    idx = np.flatnonzero(train)
    groups = days["harpnum"].to_numpy()[idx]
    for k, (_, b) in enumerate(GroupKFold(n_splits=n_folds).split(idx, groups=groups)):
        fold[idx[b]] = k
    return fold


def harp_oof(days: pd.DataFrame, fold: np.ndarray, level: str, kind: str, keywords: list[str]) -> np.ndarray:
    """Out-of-fold forecasts of the rows with ``fold >= 0``, each from a model fitted on the other folds (NaN elsewhere)."""
    p = np.full(len(days), np.nan)
    for k in range(fold.max() + 1):
        te = fold == k
        m = RegionModel.fit(days[(fold >= 0) & ~te], level, cutoff=pd.Timestamp.max, kind=kind, keywords=keywords)
        p[te] = m.predict(days[te])
    return p


def skill_card(days: pd.DataFrame, level: str, kind: str, keywords: list[str], *, cutoff: pd.Timestamp) -> dict[str, Any]:
    """Held-out skill of a recipe for its model card: 5 HARP folds of the rows up to ``cutoff`` and,
    where later rows exist, the time split after it (HARPs spanning the cut dropped)."""
    col = LEVELS[level][0]
    d = pd.to_datetime(days["day"])
    fold = harp_folds(days, cutoff=cutoff)
    p = harp_oof(days, fold, level, kind, keywords)
    y = days[col].to_numpy(int)
    rows = [_scores(y[fold == k], p[fold == k]) for k in range(fold.max() + 1)]
    out: dict[str, Any] = {
        "evaluation": "5-fold GroupKFold by HARP on region-days up to the cutoff; TSS/HSS at 0.5; BSS vs the fold's climatology",
        **{k: _mean_std([r[k] for r in rows]) for k in _KEYS},
        "per_fold": rows,
    }
    test = time_split(days, cutoff=cutoff)
    if test.sum() and len(np.unique(y[test])) > 1:
        m = RegionModel.fit(days, level, cutoff=cutoff, kind=kind, keywords=keywords)
        out["time_split"] = {
            "test": f"{d[test].min().date()} .. {d[test].max().date()}, HARPs spanning the cut dropped",
            **_scores(y[test], m.predict(days[test])),
        }
    return out


def time_split(days: pd.DataFrame, *, cutoff: pd.Timestamp = CUTOFF) -> np.ndarray:
    """Test rows of the time split: after ``cutoff`` up to 2019-05-31, HARPs spanning the cut dropped."""
    d = pd.to_datetime(days["day"])
    early = set(days.loc[d <= cutoff, "harpnum"])
    return ((d > cutoff) & (d <= TEST_END) & ~days["harpnum"].isin(early)).to_numpy()


def evaluate_region_models(
    days: pd.DataFrame,
    weights_dir: Path,
    *,
    variants: dict[str, tuple[str, list[str]]] | None = None,
    progress: Any = None,
) -> dict[str, Any]:
    """Scores per level, model, HARP fold and the time split, with pooled reliability curves.

    Returns
    -------
    dict
        ``sample`` (counts, per-year rates), ``levels[level]`` with ``per_fold``, ``harp_cv``
        (mean, std), ``pooled_harp``, ``time_split``, ``active_2012_2015`` (pooled HARP-fold
        forecasts of those years), ``quiet_2016_2019`` (the time split), ``reliability_harp`` and
        ``reliability_time``; ``choice`` (the kind chosen per level and keyword set by the HARP-fold
        BSS).
    """
    variants = variants or VARIANTS
    fold = harp_folds(days)
    test_t = time_split(days)
    year = pd.to_datetime(days["day"]).dt.year.to_numpy()
    cur = current_model(days, weights_dir)
    steps = len(LEVELS) * len(variants) * 6
    done = 0
    out: dict[str, Any] = {"sample": _sample(days, fold, test_t), "levels": {}, "choice": {}}
    for level, (col, _) in LEVELS.items():
        y = days[col].to_numpy(int)
        oof = {n: np.full(len(days), np.nan) for n in [*variants, CURRENT]}
        timep: dict[str, np.ndarray] = {CURRENT: cur[level][test_t]}
        for name, (kind, kws) in variants.items():
            oof[name] = harp_oof(days, fold, level, kind, kws)
            timep[name] = RegionModel.fit(days, level, cutoff=CUTOFF, kind=kind, keywords=kws).predict(days[test_t])
            done += 6
            if progress:
                progress(done, steps, f"{level} {name}")
        oof[CURRENT][fold >= 0] = cur[level][fold >= 0]
        per_fold = {n: [_scores(y[fold == k], p[fold == k]) for k in range(fold.max() + 1)] for n, p in oof.items()}
        tr = fold >= 0
        active = tr & (year >= _ACTIVE[0]) & (year <= _ACTIVE[1])
        harp_cv = {n: {k: _mean_std([r[k] for r in rows]) for k in _KEYS} for n, rows in per_fold.items()}
        res: dict[str, Any] = {
            "per_fold": per_fold,
            "harp_cv": harp_cv,
            "pooled_harp": {n: _scores(y[tr], p[tr]) for n, p in oof.items()},
            "active_2012_2015": {n: _scores(y[active], p[active]) for n, p in oof.items()},
            "time_split": {n: _scores(y[test_t], p) for n, p in timep.items()},
            "reliability_harp": {n: skill.reliability(y[tr], p[tr]) for n, p in oof.items()},
            "reliability_time": {n: skill.reliability(y[test_t], p) for n, p in timep.items()},
        }
        res["quiet_2016_2019"] = res["time_split"]
        out["levels"][level] = res
        for kws_name in ("keywords", "reduced"):
            cands = [n for n in variants if n.startswith(kws_name)]
            if cands:
                best = max(cands, key=lambda n: harp_cv[n]["bss"]["mean"])
                out["choice"][f"{kws_name}-{level}"] = variants[best][0]
    return out


def _mean_std(v: list[float]) -> dict[str, float]:
    a = np.asarray(v, float)
    return {"mean": float(np.nanmean(a)), "std": float(np.nanstd(a))}


def _sample(days: pd.DataFrame, fold: np.ndarray, test_t: np.ndarray) -> dict[str, Any]:
    d = pd.to_datetime(days["day"])
    early = set(days.loc[d <= CUTOFF, "harpnum"])
    late = set(days.loc[(d > CUTOFF) & (d <= TEST_END), "harpnum"])
    per_year = []
    for yr, g in days.groupby(d.dt.year):
        per_year.append(
            {
                "year": int(yr),
                "region_days": len(g),
                "harps": int(g["harpnum"].nunique()),
                "rate_c": float(g["y_c"].mean()),
                "rate_m": float(g["y_m"].mean()),
            }
        )
    return {
        "region_days": len(days),
        "harps": int(days["harpnum"].nunique()),
        "first_day": str(d.min().date()),
        "last_day": str(d.max().date()),
        "train_rows": int((fold >= 0).sum()),
        "train_harps": int(days.loc[fold >= 0, "harpnum"].nunique()),
        "time_test_rows": int(test_t.sum()),
        "time_test_harps": int(days.loc[test_t, "harpnum"].nunique()),
        "spanning_harps_dropped": len(early & late),
        "srs_listed_fraction": float(days["srs_area"].notna().mean()),
        "per_year": per_year,
    }


def _f(x: float) -> str:
    return "   nan" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:6.3f}"


def format_region_report(res: dict[str, Any]) -> str:
    """The report as text tables (what ``heliowatch evaluate flare-regions`` prints)."""
    s = res["sample"]
    lines = [
        "Region-level flare models on SHARP keyword time series: every numbered HARP within 70 deg, every day, 00 UT issue",
        f"sample: {s['region_days']} region-days of {s['harps']} HARPs, {s['first_day']} .. {s['last_day']};"
        f" SRS of the previous day listed on {100 * s['srs_listed_fraction']:.0f} % of them",
        f"by HARP: 5 GroupKFold folds over the {s['train_harps']} HARPs of days <= 2015-12-31 ({s['train_rows']} rows)",
        f"by time: fitted on days <= 2015-12-31, tested on 2016-01-01 .. 2019-05-31: {s['time_test_rows']} rows of"
        f" {s['time_test_harps']} HARPs ({s['spanning_harps_dropped']} HARPs spanning the cut dropped)",
        "",
        "events per year (fraction of region-days with a flare of the level within 24 h)",
        f"{'year':>6}{'rows':>7}{'HARPs':>7}{'>=C':>8}{'>=M':>8}",
    ]
    for r in s["per_year"]:
        lines.append(f"{r['year']:>6}{r['region_days']:>7}{r['harps']:>7}{100 * r['rate_c']:>7.1f}%{100 * r['rate_m']:>7.1f}%")
    head = f"{'model':<26}" + "".join(f"{k:>16}" for k in _KEYS)
    for level, lv in res["levels"].items():
        lines += ["", f"== >= {level}1.0 within 24 h ==", "by HARP (mean +- std over 5 folds)", head, "-" * len(head)]
        for n, st in lv["harp_cv"].items():
            lines.append(f"{n:<26}" + "".join(f"{st[k]['mean']:>10.3f}+-{st[k]['std']:<4.3f}" for k in _KEYS))
        lines.append("per fold (tss / hss / bss / auc; events)")
        for n, rows in lv["per_fold"].items():
            cells = [
                f"f{i}: {_f(r['tss'])}/{_f(r['hss'])}/{_f(r['bss'])}/{_f(r['auc'])} ({r['events']})" for i, r in enumerate(rows)
            ]
            lines.append(f"  {n:<24}" + "  ".join(cells))
        for title, key in (
            ("active years 2012-2015 (pooled HARP-fold forecasts)", "active_2012_2015"),
            ("time split, quiet years 2016-01 .. 2019-05", "time_split"),
        ):
            first = next(iter(lv[key].values()))
            lines += [
                f"{title}: {first['n']} rows, {first['events']} events",
                f"{'model':<26}" + "".join(f"{k:>8}" for k in _KEYS),
            ]
            for n, sc in lv[key].items():
                lines.append(f"{n:<26}" + "".join(f"{_f(sc[k]):>8}" for k in _KEYS))
    lines += ["", "chosen kind by mean HARP-fold BSS: " + ", ".join(f"{k}: {v}" for k, v in res["choice"].items())]
    return "\n".join(lines)


def save_region_report(res: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write ``flare-regions-eval.{json,txt}`` and the reliability diagrams (HARP folds and time split, >=M and >=C)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    j = out_dir / "flare-regions-eval.json"
    j.write_text(jsonio.dumps({"schema_version": jsonio.SCHEMA_VERSION, **res}, indent=2))
    t = out_dir / "flare-regions-eval.txt"
    t.write_text(format_region_report(res) + "\n")
    written = [j, t]
    for level, lv in res["levels"].items():
        for split, key, title in (
            ("harp", "reliability_harp", "by HARP, pooled over 5 folds (<= 2015)"),
            ("time", "reliability_time", "time split, 2016-01 .. 2019-05"),
        ):
            png = out_dir / f"flare-regions-reliability-{level.lower()}-{split}.png"
            written.append(skill.reliability_plot(lv[key], png, title=f"region-days, >={level}1.0 in 24 h, {title}"))
    return written
