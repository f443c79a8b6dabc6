"""Daily full-disk backtest in the protocol of Leka et al. (2019, ApJS 243:36).

For every day D in the test period a forecast is issued at D 00:00 UT for flares starting
within [D 00:00, D+1 00:00), using only what was known before the issue time:

- the regions: the NOAA regions of the SRS issued on day D-1;
- per region, its probability from the region model: where the region has a SHARP keyword
  record before D 00 UT (a row of the region-day table of
  :mod:`~heliowatch.models.flares.region_days`), the keyword model; otherwise (beyond 70 deg,
  a HARP without a series, or ``region_model="climatology"``) the SRS region-class
  climatology with persistence
  (:class:`~heliowatch.models.flares.climatology.RegionClimatology`). A HARP that holds several
  SRS regions is counted once, and a NOAA region in two HARPs takes the first;
- the full disk (:class:`~heliowatch.models.flares.disk.DiskModel`): rotation carried to the
  end of the window, the term for regions at or behind the limb and not yet numbered, driven
  by the last 27 days of disk activity and yesterday's largest flare on the whole disk.

Everything is fitted on days up to ``train_until``: the region models on their rows, the disk
term on *out-of-fold* region forecasts of the training days (region models refitted with each
training year left out, so the disk term sees region forecasts as uncertain as those of the
test period), and the decision threshold as the maximum-TSS threshold of out-of-sample disk
forecasts of the training days (disk term also left-one-year-out). The test period is run once.

Output: CSV ``VALID_DATE,C1+,M1+`` (one row per day, probabilities 0..1). Scoring: TSS and
HSS at 0.5 and at the pre-chosen threshold, BSS against the test sample's climatology, ROC
AUC, the Brier decomposition, and the episode-onset days forecast P >= 0.5, against event days
derived from the GOES event lists, next to one-day persistence.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from heliowatch.models import skill
from heliowatch.models.core import jsonio
from heliowatch.models.flares.climatology import RegionClimatology, load_region_days, region_pairs
from heliowatch.models.flares.disk import (
    P_MAX,
    P_MIN,
    ROTATION_DEG_PER_DAY,
    DiskModel,
    choose_threshold,
    visible_fraction,
    yesterday_class,
)
from heliowatch.models.flares.events import event_days, load_events
from heliowatch.models.flares.region_model import RegionModel

__all__ = [
    "PUBLISHED",
    "BacktestResult",
    "RegionFit",
    "RegionPredictor",
    "backtest_frames",
    "climatology_fit",
    "keyword_fit",
    "match_keywords",
    "run_backtest",
    "write_disk_model",
]

_FLUX = {"C": 1e-6, "M": 1e-5}

#: The operational bar of Leka et al. (2019), M1.0+, 2016-2017, 00 UT issue.
PUBLISHED = {
    "one-day persistence TSS@0.5": 0.44,
    "best BSS (NOAA/SWPC)": 0.33,
    "best ROC AUC (Met Office MOSWOC)": 0.89,
}


class RegionPredictor(Protocol):
    """A fitted per-region model: P(flare of its level in the next 24 h) per row."""

    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        """One probability per row."""
        ...


#: ``fit(rows, level, cutoff) -> RegionPredictor``; ``rows`` are already restricted to training rows.
RegionFit = Callable[[pd.DataFrame, str, pd.Timestamp], RegionPredictor]


def climatology_fit(rows: pd.DataFrame, level: str, cutoff: pd.Timestamp) -> RegionPredictor:
    """The SRS region-class climatology on region pairs (:func:`region_pairs`)."""
    return RegionClimatology.fit(rows, level, cutoff=cutoff)


def keyword_fit(kind: str = "logistic") -> RegionFit:
    """The SHARP-keyword region model (:class:`~heliowatch.models.flares.region_model.RegionModel`) of ``kind``."""

    def fit(rows: pd.DataFrame, level: str, cutoff: pd.Timestamp) -> RegionPredictor:
        return RegionModel.fit(rows, level, cutoff=cutoff, kind=kind)

    return fit


@dataclass
class BacktestResult:
    """The forecasts and their scores."""

    forecasts: pd.DataFrame
    scores: dict[str, dict[str, Any]]
    limb: dict[str, dict[str, Any]]

    def table(self) -> str:
        """Scores as a table, with the published anchors."""
        head = f"{'level':<6}{'forecast':<26}{'days':>6}{'events':>8}" + "".join(
            f"{c:>9}" for c in ("TSS@0.5", "HSS@0.5", "TSS@thr", "HSS@thr")
        )
        head += f"{'BSS':>8}{'AUC':>7}"
        lines = [head]
        for level in ("C1+", "M1+"):
            for name in ("heliowatch", "one-day persistence", "climatology (train)"):
                s = self.scores[level][name]
                # Persistence and climatology are 0/1 or constant: their scores do not depend on the threshold.
                t = self.scores[level]["heliowatch @ threshold"] if name == "heliowatch" else s
                lines.append(
                    f"{level:<6}{name:<26}{s['n']:>6}{s['events']:>8}{s['tss']:>9.3f}{s['hss']:>9.3f}"
                    f"{t['tss']:>9.3f}{t['hss']:>9.3f}{s['bss']:>8.3f}{s['auc']:>7.3f}"
                )
        for level in ("C1+", "M1+"):
            sc = self.scores[level]
            d, o = sc["brier_decomposition"], sc["onset_days"]
            lines.append(
                f"{level}: threshold {sc['threshold']['value']:.2f} (max TSS, out-of-sample training days);"
                f" Brier {d['brier']:.4f}"
                f" = reliability {d['reliability']:.4f} - resolution {d['resolution']:.4f} + uncertainty {d['uncertainty']:.4f};"
                f" onset days {o['n']}, P>=0.5 on {o['p_ge_0.5']}, P>=threshold on {o['p_ge_threshold']}"
            )
        lines.append("published, M1.0+ 2016-2017 (Leka et al. 2019): " + "; ".join(f"{k} {v}" for k, v in PUBLISHED.items()))
        return "\n".join(lines)


def _activity(events: pd.DataFrame, days: pd.DatetimeIndex, flux: float) -> np.ndarray:
    """Flares of at least ``flux`` in the 27 days before each day (known at its 00 UT)."""
    ev = events[events["flux"] >= flux * (1 - 1e-9)]["start"].dt.normalize().value_counts().sort_index()
    daily = ev.reindex(pd.date_range(days.min() - pd.Timedelta(days=28), days.max()), fill_value=0)
    roll = daily.rolling(27, min_periods=1).sum().shift(1).fillna(0)
    return roll.reindex(days).to_numpy(float)


def _yesterday_max(events: pd.DataFrame, days: pd.DatetimeIndex) -> np.ndarray:
    """Largest peak flux of flares starting on the day before each day, anywhere on the disk (0: none)."""
    mx = events.groupby(events["start"].dt.normalize())["flux"].max()
    return mx.reindex(days - pd.Timedelta(days=1)).fillna(0.0).to_numpy(float)


def _fit_limb(prod_term: np.ndarray, act: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Maximum-likelihood (a, b) of p_limb = sigmoid(a + b log1p(activity)) (the climatology card's limb term)."""
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


def match_keywords(pairs: pd.DataFrame, keywords: pd.DataFrame | None) -> pd.DataFrame:
    """Join each SRS region-day to the keyword row of its HARP on the same forecast day.

    Parameters
    ----------
    pairs : DataFrame
        SRS region pairs (``forecast_day``, ``noaa_ar``; :func:`region_pairs`).
    keywords : DataFrame or None
        The region-day table (``day``, ``noaa_ars`` comma-separated); None: no keywords.

    Returns
    -------
    DataFrame
        Index of ``pairs``; ``kw_row``: the positional row of ``keywords`` (-1: none), and
        ``duplicate``: True for an SRS region whose HARP is already counted for another SRS
        region of that day (it must not count twice).
    """
    out = pd.DataFrame({"kw_row": -1, "duplicate": False}, index=pairs.index)
    if keywords is None or keywords.empty:
        return out
    ex = pd.DataFrame(
        {"day": pd.to_datetime(keywords["day"]).to_numpy(), "noaa": keywords["noaa_ars"].astype(str).str.split(",")}
    )
    ex["kw_row"] = np.arange(len(ex))
    ex = ex.explode("noaa")
    ex["noaa"] = pd.to_numeric(ex["noaa"], errors="coerce")
    ex = ex.dropna(subset=["noaa"]).astype({"noaa": np.int64}).drop_duplicates(["day", "noaa"])
    key = pd.DataFrame(
        {
            "day": pairs["forecast_day"].to_numpy(),
            "noaa": pairs["noaa_ar"].astype(np.int64).to_numpy(),
            "pos": np.arange(len(pairs)),
        }
    )
    m = key.merge(ex, on=["day", "noaa"], how="left").sort_values("pos")
    row = m["kw_row"].fillna(-1).astype(np.int64).to_numpy()
    out["kw_row"] = row
    out["duplicate"] = (row >= 0) & pd.Series(row).duplicated().to_numpy()
    return out


@dataclass
class _Inputs:
    pairs: pd.DataFrame
    keywords: pd.DataFrame | None
    match: pd.DataFrame
    keyword_fit: RegionFit | None


def _region_probs(
    inp: _Inputs, level: str, cutoff: pd.Timestamp, held_out_year: int | None, days: pd.DatetimeIndex
) -> pd.DataFrame:
    """Region forecasts for ``days``: models fitted on rows <= cutoff, without ``held_out_year``."""
    pf = inp.pairs["forecast_day"]
    tr = (pf <= cutoff) & ((pf.dt.year != held_out_year) if held_out_year is not None else True)
    clim = climatology_fit(inp.pairs[tr], level, cutoff)
    sel = pf.isin(days).to_numpy() & ~inp.match["duplicate"].to_numpy()
    rows = inp.pairs[sel]
    p = np.asarray(clim.predict(rows), float)
    source = np.full(len(rows), "region-class", dtype=object)
    if inp.keywords is not None and inp.keyword_fit is not None:
        kd = pd.to_datetime(inp.keywords["day"])
        ktr = (kd <= cutoff) & ((kd.dt.year != held_out_year) if held_out_year is not None else True)
        model = inp.keyword_fit(inp.keywords[ktr.to_numpy()], level, cutoff)
        kw_row = inp.match["kw_row"].to_numpy()[sel]
        has = kw_row >= 0
        if has.any():
            p[has] = np.asarray(model.predict(inp.keywords.iloc[kw_row[has]]), float)
            source[has] = "keywords"
    # The SRS position is that of D-1 00 UT; carry it to the issue time D 00 UT.
    lon = rows["Longitude"].astype(float).to_numpy() + ROTATION_DEG_PER_DAY
    return pd.DataFrame(
        {"forecast_day": rows["forecast_day"].to_numpy(), "p": np.clip(p, P_MIN, P_MAX), "lon": lon, "source": source}
    )


def _log_survival(r: pd.DataFrame, days: pd.DatetimeIndex) -> np.ndarray:
    """``sum_i f_i log(1 - p_i)`` per day (0 where no region is listed)."""
    v = visible_fraction(r["lon"].to_numpy()) * np.log1p(-r["p"].to_numpy(float))
    s = pd.Series(v, index=r["forecast_day"].to_numpy())
    return s.groupby(level=0).sum().reindex(days, fill_value=0.0).to_numpy(float)


def _onsets(edays: set[pd.Timestamp], days: pd.DatetimeIndex) -> np.ndarray:
    """Event days whose previous day had no event (a flaring episode starts)."""
    return np.array([d in edays and (d - pd.Timedelta(days=1)) not in edays for d in days])


def backtest_frames(
    pairs: pd.DataFrame,
    events: pd.DataFrame,
    *,
    start: str,
    end: str,
    train_until: str,
    keywords: pd.DataFrame | None = None,
    keyword_fit: RegionFit | None = None,
) -> BacktestResult:
    """The backtest on tables (see the module docstring); :func:`run_backtest` reads them from files.

    Parameters
    ----------
    pairs : DataFrame
        SRS region pairs (:func:`region_pairs`), the region set of every day.
    events : DataFrame
        GOES events (:func:`load_events`): labels, persistence and disk history.
    start, end, train_until : str
        Test period (inclusive) and the training cutoff; the test must start after the cutoff.
    keywords : DataFrame, optional
        The region-day table of SHARP keyword records before each issue (``day``, ``noaa_ars``
        and the columns ``keyword_fit`` needs). Without it every region uses the climatology.
    keyword_fit : RegionFit, optional
        Fits the keyword model on training rows of ``keywords``.

    Returns
    -------
    BacktestResult
        The daily ``VALID_DATE, C1+, M1+`` forecasts, the scores per level and the fitted disk
        models (with their thresholds) per level.

    Raises
    ------
    ValueError
        If the test period does not start after the cutoff, or the training days span one year.
    """
    cutoff = pd.Timestamp(train_until)
    test_days = pd.date_range(start, end, freq="D")
    if test_days.min() <= cutoff:
        msg = f"test period starts {start}, before the training cutoff {train_until}: that would leak"
        raise ValueError(msg)
    first_event = events["start"].min().normalize()
    train_days = pd.date_range(max(first_event + pd.Timedelta(days=28), pairs["forecast_day"].min()), cutoff, freq="D")
    years = sorted(set(train_days.year))
    if len(years) < 2:
        msg = f"training days {train_days.min().date()}..{cutoff.date()} span one year: the out-of-fold fits need two"
        raise ValueError(msg)
    inp = _Inputs(pairs, keywords, match_keywords(pairs, keywords), keyword_fit)
    yest_tr, yest_te = yesterday_class(_yesterday_max(events, train_days)), yesterday_class(_yesterday_max(events, test_days))
    out = pd.DataFrame({"VALID_DATE": test_days.strftime("%Y-%m-%d")})
    scores: dict[str, dict[str, Any]] = {}
    disk: dict[str, dict[str, Any]] = {}
    for level in ("C", "M"):
        flux = _FLUX[level]
        edays = event_days(events, min_flux=flux)
        y_tr = np.array([d in edays for d in train_days], float)
        act_tr, act_te = _activity(events, train_days, flux), _activity(events, test_days, flux)
        # Out-of-fold region forecasts of the training days, one training year held out at a time.
        oof = pd.concat([_region_probs(inp, level, cutoff, yr, train_days[train_days.year == yr]) for yr in years])
        ls_tr = _log_survival(oof, train_days)
        # Out-of-sample disk forecasts of the training days (disk term also left-one-year-out): the threshold.
        p_oos = np.zeros(len(train_days))
        for yr in years:
            k = train_days.year == yr
            dm = DiskModel.fit(level, ls_tr[~k], act_tr[~k], yest_tr[~k], y_tr[~k])
            p_oos[k] = dm.combine(ls_tr[k], act_tr[k], yest_tr[k])
        model = DiskModel.fit(level, ls_tr, act_tr, yest_tr, y_tr, cutoff=str(cutoff.date()))
        model.threshold = choose_threshold(y_tr, p_oos)
        final = _region_probs(inp, level, cutoff, None, test_days)
        p = model.combine(_log_survival(final, test_days), act_te, yest_te)
        p_limb = model.p_limb(act_te, yest_te)
        model.info = {
            "train_days": f"{train_days.min().date()}..{cutoff.date()}",
            "threshold_rule": "max TSS of out-of-sample forecasts of the training days"
            " (region and disk models left-one-year-out)",
            "training_out_of_sample": skill.score(y_tr, p_oos, threshold=model.threshold).as_dict(),
            "mean_p_limb_test": float(p_limb.mean()),
            # What the forecaster assumes when it has no event feed.
            "mean_activity_train": float(act_tr.mean()),
            "mean_yesterday_train": float(yest_tr.mean()),
        }
        disk[level] = model.to_json()
        col = f"{level}1+"
        out[col] = np.round(p, 4)
        y = np.array([d in edays for d in test_days], int)
        persistence = np.array([(d - pd.Timedelta(days=1)) in edays for d in test_days], float)
        scores[col] = {
            "persistence_and_climatology_reference": "one-day persistence; training-days event rate",
            "one-day persistence": skill.score(y, persistence).as_dict(),
            "climatology (train)": skill.score(y, np.full(len(y), float(y_tr.mean()))).as_dict(),
            "region_sources_test": {str(k): int(v) for k, v in final["source"].value_counts().items()},
        }
        _score_heliowatch(scores[col], y, out[col].to_numpy(float), model.threshold, _onsets(edays, test_days))
    # Coherence: a day with an M flare has a C-or-greater flare, so P(>=C) >= P(>=M). The two
    # levels are fitted separately and their limb terms can cross on quiet days; lift C1+.
    lifted = out["C1+"] < out["M1+"]
    out["C1+"] = np.maximum(out["C1+"], out["M1+"])
    ec = event_days(events, min_flux=_FLUX["C"])
    y_c = np.array([d in ec for d in test_days], int)
    _score_heliowatch(scores["C1+"], y_c, out["C1+"].to_numpy(float), disk["C"]["threshold"], _onsets(ec, test_days))
    scores["C1+"]["coherence_lifted_days"] = int(lifted.sum())
    if any(math.isnan(v) for v in out[["C1+", "M1+"]].to_numpy().ravel()):
        msg = "a forecast is missing: every day must have one"
        raise RuntimeError(msg)
    return BacktestResult(out, scores, disk)


def _score_heliowatch(into: dict[str, Any], y: np.ndarray, p: np.ndarray, threshold: float, onset: np.ndarray) -> None:
    into["heliowatch"] = skill.score(y, p).as_dict()
    into["heliowatch @ threshold"] = skill.score(y, p, threshold=threshold).as_dict()
    into["threshold"] = {"value": threshold, "chosen_on": "training days only (out-of-sample forecasts), max TSS"}
    into["reliability"] = skill.reliability(y, p)
    into["brier_decomposition"] = skill.brier_decomposition(y, p).as_dict()
    into["onset_days"] = {
        "n": int(onset.sum()),
        "p_ge_0.5": int((p[onset] >= 0.5).sum()),
        "p_ge_threshold": int((p[onset] >= threshold).sum()),
    }


def run_backtest(
    hayes_dir: Path,
    event_files: list[Path],
    *,
    start: str,
    end: str,
    train_until: str,
    out_csv: Path | None = None,
    keywords: pd.DataFrame | None = None,
    keyword_fit: RegionFit | None = None,
) -> BacktestResult:
    """Fit on days <= ``train_until``, forecast every day in [``start``, ``end``], score; write the CSV."""
    pairs = region_pairs(load_region_days(hayes_dir))
    res = backtest_frames(
        pairs, load_events(event_files), start=start, end=end, train_until=train_until, keywords=keywords, keyword_fit=keyword_fit
    )
    if out_csv is not None:
        out_csv.parent.mkdir(parents=True, exist_ok=True)
        res.forecasts[["VALID_DATE", "C1+", "M1+"]].to_csv(out_csv, index=False)
    return res


def write_disk_model(
    limb: dict[str, dict[str, Any]], path: Path, *, region_model: str, scores: dict[str, dict[str, Any]]
) -> Path:
    """Write the fitted full-disk models (C and M) with their card, as the forecaster loads them."""
    m = limb["M"]
    card = {
        "name": "flare-full-disk",
        "version": "1.0.0",
        "description": "Full-disk combination of region forecasts: rotation to the end of the window, hazard scale,"
        " limb / not-yet-numbered term on 27-day disk activity and yesterday's largest flare; decision thresholds",
        "training": {
            "kind": "supervised",
            "synthetic": False,
            "data": "GOES event lists (SWPC, HEK) for event days and disk history; out-of-fold region forecasts of the"
            f" training days from the {region_model} region model (NOAA SRS region-days, SHARP keyword region-days)",
            "train_days": m["info"].get("train_days", ""),
            "cutoff_date": m["cutoff"],
        },
        "operational": True,
        "skill": {
            lvl: {k: scores[lvl][k] for k in ("heliowatch", "heliowatch @ threshold", "brier_decomposition", "onset_days")}
            for lvl in ("C1+", "M1+")
            if lvl in scores
        }
        | {"test": "daily backtest after the cutoff, run once (docs/evaluation.md)"},
        "known_limits": [
            "the hazard scale is fitted to the region model named in training.data; another region model shifts it",
            "rotation uses a fixed 13.2 deg/day; regions without a position count as fully visible",
            "the threshold maximises TSS on training days (about 20 % M1+ event days); it is not re-tuned to quieter years",
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(jsonio.dumps({"levels": limb, "card": card}, indent=1) + "\n")
    return path
