"""The daily full-disk backtest with SHARP-keyword regions, on a small synthetic Sun.

Synthetic region-days: regions cross the disk at 13.2 deg/day with a hidden flare
productivity; the SRS class carries none of it, the synthetic keyword ``K`` most of it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from heliowatch.models.flares.backtest import BacktestResult, backtest_frames, match_keywords
from heliowatch.models.flares.climatology import region_pairs
from heliowatch.models.flares.disk import P_MAX, P_MIN, DiskModel, choose_threshold, visible_fraction, yesterday_class

START, END, CUT = "2015-01-01", "2015-03-31", "2014-12-31"


def _sun(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(SRS region-days, GOES events, keyword region-days) of 2013-01 .. 2015-03."""
    rng = np.random.default_rng(seed)
    days = pd.date_range("2013-01-01", END, freq="D")
    srs, events, live = [], [], []
    noaa = 11000
    for d in days:
        if rng.random() < 0.45:
            noaa += 1
            live.append([noaa, float(rng.uniform(-80, -30)), float(rng.normal(0, 1.2))])
        live = [r for r in live if r[1] <= 90]
        for r in live:
            n_c, n_m = rng.poisson(np.exp(r[2] - 0.3)), rng.poisson(np.exp(1.5 * r[2] - 3.0))
            for n, scale in ((n_c, 1e-6), (n_m, 1e-5)):
                for _ in range(n):
                    t = d + pd.Timedelta(minutes=int(rng.integers(0, 1440)))
                    events.append({"start": t, "flux": scale * rng.uniform(1, 9), "noaa_ar": r[0]})
            srs.append(
                {
                    "noaa_ar": r[0],
                    "day": d,
                    "McIntosh": str(rng.choice(["BXO", "CAO", "DAI", "EKC"])),
                    "MAGTYPE": "BETA",
                    "AREA": 100.0,
                    "Longitude": r[1],
                    "C+": float(n_c + n_m),
                    "M+": float(n_m),
                    "X+": 0.0,
                    "strength": r[2],
                }
            )
            r[1] += 13.2
    region_days = pd.DataFrame(srs)
    ev = pd.DataFrame(events).sort_values("start").reset_index(drop=True)
    ev["goes_class"] = np.where(ev["flux"] >= 1e-5, "M", "C")
    # Keyword rows: forecast day D = SRS day + 1, where the region was within 70 deg; labels of D.
    pairs = region_pairs(region_days)
    vis = pairs[pairs["Longitude"] + 13.2 < 70]
    kw = pd.DataFrame(
        {
            "harpnum": vis["noaa_ar"].to_numpy() - 5000,
            "noaa_ar": vis["noaa_ar"].to_numpy(),
            "noaa_ars": vis["noaa_ar"].astype(str).to_numpy(),
            "day": vis["forecast_day"].to_numpy(),
            "K": vis["strength"].to_numpy() + rng.normal(0, 0.3, len(vis)),
            "y_c": (vis["C+"] > 0).astype(int).to_numpy(),
            "y_m": (vis["M+"] > 0).astype(int).to_numpy(),
        }
    )
    return pairs, ev, kw


class _KeywordModel:
    def __init__(self, rows: pd.DataFrame, level: str) -> None:
        self.lr = LogisticRegression().fit(rows[["K"]].to_numpy(), rows["y_m" if level == "M" else "y_c"].to_numpy())

    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.lr.predict_proba(rows[["K"]].to_numpy())[:, 1])


def _keyword_fit(rows: pd.DataFrame, level: str, cutoff: pd.Timestamp) -> _KeywordModel:
    assert pd.to_datetime(rows["day"]).max() <= cutoff  # the backtest hands over training rows only
    return _KeywordModel(rows, level)


@pytest.fixture(scope="module")
def sun() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    return _sun()


@pytest.fixture(scope="module")
def keyword_run(sun: tuple) -> BacktestResult:
    pairs, ev, kw = sun
    return backtest_frames(pairs, ev, start=START, end=END, train_until=CUT, keywords=kw, keyword_fit=_keyword_fit)


def test_keyword_regions_use_the_keyword_model_and_sharpen_the_disk_forecast(sun: tuple, keyword_run: BacktestResult) -> None:
    pairs, ev, _ = sun
    clim = backtest_frames(pairs, ev, start=START, end=END, train_until=CUT)
    keyw = keyword_run
    assert len(keyw.forecasts) == 90 and list(keyw.forecasts.columns) == ["VALID_DATE", "C1+", "M1+"]
    src = keyw.scores["M1+"]["region_sources_test"]
    assert src["keywords"] > 0 and src["region-class"] > 0  # regions beyond 70 deg fall back to the SRS class
    assert clim.scores["M1+"]["region_sources_test"] == {"region-class": sum(src.values())}
    # The keyword carries the regions' productivity; the SRS class does not.
    assert keyw.scores["M1+"]["heliowatch"]["auc"] > clim.scores["M1+"]["heliowatch"]["auc"]
    assert keyw.scores["M1+"]["brier_decomposition"]["resolution"] > clim.scores["M1+"]["brier_decomposition"]["resolution"]
    p = keyw.forecasts[["C1+", "M1+"]].to_numpy()
    assert (p >= P_MIN).all() and (p <= P_MAX).all() and (keyw.forecasts["C1+"] >= keyw.forecasts["M1+"]).all()
    sc = keyw.scores["M1+"]
    assert sc["heliowatch @ threshold"]["threshold"] == sc["threshold"]["value"] == keyw.limb["M"]["threshold"]
    assert sc["onset_days"]["n"] <= sc["heliowatch"]["events"]


def test_nothing_of_the_test_period_reaches_the_fitted_model_or_the_threshold(sun: tuple, keyword_run: BacktestResult) -> None:
    pairs, ev, kw = sun
    a = keyword_run
    # Rewrite the outcome of the last test day (its flares and its region labels): only the scores may change.
    last = pd.Timestamp(END)
    ev2 = ev[ev["start"].dt.normalize() != last]
    ev2 = pd.concat(
        [ev2, pd.DataFrame({"start": [last + pd.Timedelta(hours=3)], "flux": [5e-4], "noaa_ar": [1], "goes_class": ["X"]})]
    )
    pairs2, kw2 = pairs.copy(), kw.copy()
    pairs2.loc[pairs2["forecast_day"] == last, ["C+", "M+"]] = 9.0
    kw2.loc[kw2["day"] == last, ["y_c", "y_m"]] = 1
    b = backtest_frames(pairs2, ev2, start=START, end=END, train_until=CUT, keywords=kw2, keyword_fit=_keyword_fit)
    pd.testing.assert_frame_equal(a.forecasts, b.forecasts)
    assert a.limb == b.limb  # disk parameters and thresholds
    assert b.scores["M1+"]["heliowatch"]["events"] >= a.scores["M1+"]["heliowatch"]["events"]


def test_a_harp_of_two_srs_regions_counts_once() -> None:
    d = pd.Timestamp("2016-03-02")
    pairs = pd.DataFrame({"forecast_day": [d, d, d, d - pd.Timedelta(days=1)], "noaa_ar": [12500, 12501, 12502, 12500]})
    kw = pd.DataFrame({"day": [d, d, d], "noaa_ars": ["12500,12501", "12503", "12500"], "harpnum": [6000, 6001, 6002]})
    m = match_keywords(pairs, kw)
    assert m["kw_row"].tolist() == [0, 0, -1, -1]  # 12500 in two HARPs: the first; 12503 is in no SRS of D-1
    assert m["duplicate"].tolist() == [False, True, False, False]
    assert match_keywords(pairs, None)["kw_row"].eq(-1).all()


def test_the_test_period_must_follow_the_cutoff(sun: tuple) -> None:
    pairs, ev, _ = sun
    with pytest.raises(ValueError, match="leak"):
        backtest_frames(pairs, ev, start="2014-12-01", end=END, train_until=CUT)


def test_rotation_counts_a_region_for_its_time_on_the_disk() -> None:
    f = visible_fraction(np.array([-40.0, 76.8, 83.4, 90.0, 120.0, np.nan]))
    assert f == pytest.approx([1.0, 1.0, 0.5, 0.0, 0.0, 1.0])
    dm = DiskModel("M", a=-4.0, b_activity=0.0, b_yesterday=0.0, hazard=1.0)
    quiet = dm.combine(np.array([0.0]), np.array([0.0]), np.array([0.0]))[0]
    behind = dm.combine(np.array([0.0 * np.log1p(-0.9)]), np.array([0.0]), np.array([0.0]))[0]  # f = 0
    half = dm.combine(np.array([0.5 * np.log1p(-0.9)]), np.array([0.0]), np.array([0.0]))[0]
    assert behind == quiet < half < 0.9
    assert yesterday_class(np.array([0.0, 1e-6, 1e-5, 2e-3])) == pytest.approx([0.0, 1.0, 2.0, 3.5])


def test_disk_model_fit_recovers_the_limb_term_and_never_says_0_or_1() -> None:
    rng = np.random.default_rng(1)
    n = 3000
    act, yest = rng.poisson(20, n).astype(float), rng.uniform(0, 3, n)
    ls = np.log1p(-rng.uniform(0, 0.6, n))
    true = DiskModel("M", a=-3.5, b_activity=0.4, b_yesterday=0.6, hazard=0.7)
    y = (rng.random(n) < true.combine(ls, act, yest)).astype(int)
    fit = DiskModel.fit("M", ls, act, yest, y)
    assert fit.hazard == pytest.approx(0.7, abs=0.2) and fit.b_yesterday == pytest.approx(0.6, abs=0.25)
    extreme = fit.combine(np.array([-50.0, 0.0]), np.array([1e4, 0.0]), np.array([3.5, 0.0]))
    assert extreme[0] == P_MAX and 0 < extreme[1] < 1
    assert DiskModel.from_json(fit.to_json()) == fit


def test_threshold_is_the_max_tss_one() -> None:
    y = np.array([0, 0, 0, 0, 1, 1, 0, 1])
    p = np.array([0.05, 0.1, 0.2, 0.3, 0.35, 0.6, 0.62, 0.9])
    assert choose_threshold(y, p) == pytest.approx(0.31)  # lowest threshold catching all 3 events with 0 false alarms below
