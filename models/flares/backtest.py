"""Daily full-disk backtest in the protocol of Leka et al. (2019, ApJS 243:36).

For every day D in the test period a forecast is issued at D 00:00 UT for flares starting
within [D 00:00, D+1 00:00), using only what was known before the issue time:

- the regions of the NOAA SRS issued on day D-1 and their flares on day D-1;
- the flare history of the whole disk (flares of at least the level in the previous 27 days).

Per region: the region-class climatology with persistence
(:class:`~heliowatch.models.flares.climatology.RegionClimatology`). Full disk:
``1 - (1 - p_limb) * prod(1 - p_i)``, where ``p_limb`` covers flares from regions at or
behind the limb and regions not yet numbered (a known ~15 % of M+ flare days); it is a
logistic function of recent disk activity, fitted by maximum likelihood on training days.
Everything is fitted on days up to ``train_until``; the test period is run once.

Output: CSV ``VALID_DATE,C1+,M1+`` (one row per day, probabilities 0..1). Scoring: TSS and
HSS at 0.5, BSS against the test sample's climatology, ROC AUC, against event days derived
from the GOES event lists, next to one-day persistence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from heliowatch.models import skill
from heliowatch.models.flares.climatology import RegionClimatology, load_region_days, region_pairs
from heliowatch.models.flares.events import event_days, load_events

__all__ = ["PUBLISHED", "BacktestResult", "run_backtest"]

_FLUX = {"C": 1e-6, "M": 1e-5}

#: The operational bar of Leka et al. (2019), M1.0+, 2016-2017, 00 UT issue.
PUBLISHED = {
    "one-day persistence TSS@0.5": 0.44,
    "best BSS (NOAA/SWPC)": 0.33,
    "best ROC AUC (Met Office MOSWOC)": 0.89,
}


@dataclass
class BacktestResult:
    """The forecasts and their scores."""

    forecasts: pd.DataFrame
    scores: dict[str, dict[str, Any]]
    limb: dict[str, tuple[float, float]]

    def table(self) -> str:
        """Scores as a table, with the published anchors."""
        lines = [f"{'level':<6}{'forecast':<26}{'days':>6}{'events':>8}{'TSS@0.5':>9}{'HSS@0.5':>9}{'BSS':>8}{'AUC':>7}"]
        for level in ("C1+", "M1+"):
            for name in ("heliowatch", "one-day persistence", "climatology (train)"):
                s = self.scores[level][name]
                lines.append(
                    f"{level:<6}{name:<26}{s['n']:>6}{s['events']:>8}{s['tss']:>9.3f}{s['hss']:>9.3f}{s['bss']:>8.3f}{s['auc']:>7.3f}"
                )
        lines.append("published, M1.0+ 2016-2017 (Leka et al. 2019): " + "; ".join(f"{k} {v}" for k, v in PUBLISHED.items()))
        return "\n".join(lines)


def _activity(events: pd.DataFrame, days: pd.DatetimeIndex, flux: float) -> np.ndarray:
    """Flares of at least ``flux`` in the 27 days before each day (known at its 00 UT)."""
    ev = events[events["flux"] >= flux * (1 - 1e-9)]["start"].dt.normalize().value_counts().sort_index()
    daily = ev.reindex(pd.date_range(days.min() - pd.Timedelta(days=28), days.max()), fill_value=0)
    roll = daily.rolling(27, min_periods=1).sum().shift(1).fillna(0)
    return roll.reindex(days).to_numpy(float)


def _fit_limb(prod_term: np.ndarray, act: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Maximum-likelihood (a, b) of p_limb = sigmoid(a + b log1p(activity))."""
    z = np.log1p(act)

    def nll(w: np.ndarray) -> float:
        pl = 1 / (1 + np.exp(-(w[0] + w[1] * z)))
        p = np.clip(1 - (1 - pl) * prod_term, 1e-6, 1 - 1e-6)
        return float(-np.sum(y * np.log(p) + (1 - y) * np.log(1 - p)))

    r = minimize(nll, np.array([-3.0, 0.5]), method="Nelder-Mead", options={"xatol": 1e-4, "fatol": 1e-6, "maxiter": 2000})
    return float(r.x[0]), float(r.x[1])


def _disk_products(pairs: pd.DataFrame, p: np.ndarray, days: pd.DatetimeIndex) -> np.ndarray:
    """prod(1 - p_i) over the regions forecast for each day (1 where there are none)."""
    s = pd.Series(np.log1p(-np.clip(p, 0, 1 - 1e-9)), index=pairs["forecast_day"].to_numpy())
    return np.exp(s.groupby(level=0).sum().reindex(days, fill_value=0.0).to_numpy())


def run_backtest(
    hayes_dir: Path,
    event_files: list[Path],
    *,
    start: str,
    end: str,
    train_until: str,
    out_csv: Path | None = None,
) -> BacktestResult:
    """Fit on days <= ``train_until``, forecast every day in [``start``, ``end``], score."""
    cutoff = pd.Timestamp(train_until)
    test_days = pd.date_range(start, end, freq="D")
    if test_days.min() <= cutoff:
        msg = f"test period starts {start}, before the training cutoff {train_until}: that would leak"
        raise ValueError(msg)
    pairs = region_pairs(load_region_days(hayes_dir))
    events = load_events(event_files)
    first_event = events["start"].min().normalize()
    train_days = pd.date_range(max(first_event + pd.Timedelta(days=28), pairs["forecast_day"].min()), cutoff, freq="D")
    out = pd.DataFrame({"VALID_DATE": test_days.strftime("%Y-%m-%d")})
    scores: dict[str, dict[str, Any]] = {}
    limb: dict[str, tuple[float, float]] = {}
    for level in ("C", "M"):
        clim = RegionClimatology.fit(pairs, level, cutoff=cutoff)
        flux = _FLUX[level]
        edays = event_days(events, min_flux=flux)
        # Limb term, fitted on training days only.
        tr_pairs = pairs[pairs["forecast_day"].isin(train_days)]
        prod_tr = _disk_products(tr_pairs, clim.predict(tr_pairs), train_days)
        y_tr = np.array([d in edays for d in train_days], float)
        a, b = _fit_limb(prod_tr, _activity(events, train_days, flux), y_tr)
        limb[level] = (a, b)
        te_pairs = pairs[pairs["forecast_day"].isin(test_days)]
        prod_te = _disk_products(te_pairs, clim.predict(te_pairs), test_days)
        p_limb = 1 / (1 + np.exp(-(a + b * np.log1p(_activity(events, test_days, flux)))))
        p = 1 - (1 - p_limb) * prod_te
        col = f"{level}1+"
        out[col] = np.round(p, 4)
        y = np.array([d in edays for d in test_days], int)
        persistence = np.array([(d - pd.Timedelta(days=1)) in edays for d in test_days], float)
        clim_rate = float(y_tr.mean())
        scores[col] = {
            "heliowatch": skill.score(y, p).as_dict(),
            "one-day persistence": skill.score(y, persistence).as_dict(),
            "climatology (train)": skill.score(y, np.full(len(y), clim_rate)).as_dict(),
            "reliability": skill.reliability(y, p),
            "limb_term": {"a": a, "b": b, "mean_p_limb": float(p_limb.mean())},
        }
    # Coherence: a day with an M flare has a C-or-greater flare, so P(>=C) >= P(>=M). The two
    # levels are fitted separately and their limb terms can cross on quiet days; lift C1+.
    lifted = out["C1+"] < out["M1+"]
    out["C1+"] = np.maximum(out["C1+"], out["M1+"])
    if lifted.any():
        y_c = np.array([d in event_days(events, min_flux=1e-6) for d in test_days], int)
        scores["C1+"]["heliowatch"] = skill.score(y_c, out["C1+"].to_numpy()).as_dict()
        scores["C1+"]["reliability"] = skill.reliability(y_c, out["C1+"].to_numpy())
        scores["C1+"]["coherence_lifted_days"] = int(lifted.sum())
    if out_csv is not None:
        out_csv.parent.mkdir(parents=True, exist_ok=True)
        out[["VALID_DATE", "C1+", "M1+"]].to_csv(out_csv, index=False)
    if any(math.isnan(v) for v in out[["C1+", "M1+"]].to_numpy().ravel()):
        msg = "a forecast is missing: every day must have one"
        raise RuntimeError(msg)
    return BacktestResult(out, scores, limb)
