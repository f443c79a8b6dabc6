"""The region-level keyword flare model: fit, calibration floors, persistence, and the forecaster's tiers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from heliowatch.models.core.errors import ModelError
from heliowatch.models.flares.forecaster import HEADER_KEYS, EventHistory, FlareForecaster, SharpInput
from heliowatch.models.flares.region_days import KEYWORDS
from heliowatch.models.flares.region_model import CEILING, FLOOR, REDUCED_KEYWORDS, RegionModel
from heliowatch.pipelines.jsoc import SOURCE_KEYS

CUT = pd.Timestamp("2015-12-31")


def _days(n: int = 1500, seed: int = 0) -> pd.DataFrame:
    """Region-days whose M flares follow log USFLUX and yesterday's flares (a learnable signal)."""
    rng = np.random.default_rng(seed)
    logf = rng.normal(21.5, 0.6, n)
    n_m = rng.poisson(0.1, n).astype(float)
    z = 2.5 * (logf - 22.3) + 1.5 * (n_m > 0)
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)
    d = pd.DataFrame({k: rng.normal(1.0, 0.1, n) for k in KEYWORDS})
    d["USFLUX"] = 10**logf
    d["TOTUSJH"] = 10 ** (logf - 19.0 + rng.normal(0, 0.1, n))
    d = d.assign(
        harpnum=rng.integers(1, 120, n),
        day=pd.Timestamp("2012-01-01") + pd.to_timedelta(rng.integers(0, 1400, n), unit="D"),
        n_c_24h=rng.poisson(0.5, n).astype(float),
        n_m_24h=n_m,
        n_c_72h=0.0,
        n_m_72h=n_m,
        logmax_72h=np.where(n_m > 0, -4.7, -7.0),
        c_yesterday=0.0,
        hours_since_m=np.where(n_m > 0, 12.0, 240.0),
        srs_mcintosh="",
        srs_magtype="",
        srs_area=np.nan,
        srs_lon=np.nan,
        y_m=y,
        y_c=np.maximum(y, (rng.random(n) < 0.2).astype(int)),
    )
    return d


@pytest.mark.parametrize("kind", ["logistic", "gbm"])
def test_fit_ranks_calibrates_and_round_trips(kind: str, tmp_path: Path) -> None:
    # Boosted trees: fewer rows and calibration folds, to keep the test fast.
    d = _days() if kind == "logistic" else _days(1200)
    m = RegionModel.fit(d, "M", cutoff=CUT, kind=kind, folds=5 if kind == "logistic" else 2)
    fresh = _days(600, seed=1)
    p = m.predict(fresh)
    big = fresh["USFLUX"] > 10**22.3
    assert p[big].mean() > 2 * p[~big].mean()
    # Out-of-fold isotonic calibration: the mean forecast matches the event rate of new rows.
    assert abs(p.mean() - fresh["y_m"].mean()) < 0.05
    path = m.save(tmp_path / "flare-region-test")
    back = RegionModel.load(tmp_path / "flare-region-test")
    np.testing.assert_allclose(back.predict(fresh), p)
    assert json.loads(path.read_text())["keywords"] == list(KEYWORDS)


def test_no_forecast_is_exactly_zero_or_one() -> None:
    d = _days()
    m = RegionModel.fit(d, "M", cutoff=CUT)
    extreme = d.head(3).copy()
    extreme["USFLUX"] = [1e19, 1e24, np.nan]  # tiny, huge, and missing (imputed)
    extreme["n_m_24h"] = [0.0, 20.0, 0.0]
    p = m.predict(extreme)
    assert p.min() >= FLOOR and p.max() <= CEILING
    assert p[1] == CEILING and p[0] == FLOOR


def test_only_training_days_are_used_and_bad_input_is_refused() -> None:
    d = _days()
    late = d.assign(day=pd.Timestamp("2017-01-01"))
    with pytest.raises(ModelError, match="single class"):
        RegionModel.fit(late, "M", cutoff=CUT)  # no row up to the cutoff
    with pytest.raises(ModelError, match="level"):
        RegionModel.fit(d, "X", cutoff=CUT)
    m = RegionModel.fit(d, "C", cutoff=CUT, keywords=REDUCED_KEYWORDS)
    assert m.card["n_train"] == len(d) and m.keywords == REDUCED_KEYWORDS


def test_the_jsoc_query_asks_for_every_model_keyword() -> None:
    assert set(HEADER_KEYS) <= set(SOURCE_KEYS["sharp"])


# -- the forecaster's tiers, with the shipped models ---------------------------------------------
@pytest.fixture(scope="module")
def forecaster() -> FlareForecaster:
    return FlareForecaster()


def _history() -> EventHistory:
    ev = pd.DataFrame(
        {
            "start": pd.to_datetime(["2017-09-06 08:57", "2017-09-06 11:53", "2017-09-05 10:00"]),
            "goes_class": ["X2.2", "X9.3", "C2.0"],
            "noaa_ar": pd.array([12673, 12673, 12673], dtype="Int64"),
            "flux": [2.2e-4, 9.3e-4, 2e-6],
        }
    )
    return EventHistory(ev)


_FULL = {
    "USFLUX": 4.5e22, "MEANGAM": 51.8, "MEANGBT": 180.0, "MEANGBZ": 126.4, "MEANGBH": 90.0, "MEANJZD": 0.5,
    "TOTUSJZ": 9e13, "MEANJZH": 0.01, "TOTUSJH": 7357.0, "ABSNJZH": 900.0, "SAVNCPP": 7.8e13, "MEANPOT": 21630.0,
    "TOTPOT": 1.76e24, "MEANSHR": 45.0, "SHRGT45": 47.2, "R_VALUE": 5.3, "AREA_ACR": 1718.0,
}  # fmt: skip
_QUIET = {
    "USFLUX": 3e20, "MEANGAM": 30.0, "MEANGBT": 100.0, "MEANGBZ": 60.0, "MEANGBH": 40.0, "MEANJZD": 0.1,
    "TOTUSJZ": 1e12, "MEANJZH": 0.0, "TOTUSJH": 20.0, "ABSNJZH": 2.0, "SAVNCPP": 1e11, "MEANPOT": 2000.0,
    "TOTPOT": 1e21, "MEANSHR": 20.0, "SHRGT45": 5.0, "R_VALUE": 0.0, "AREA_ACR": 20.0,
}  # fmt: skip


def test_keyword_tiers_come_first(forecaster: FlareForecaster) -> None:
    t = pd.Timestamp("2017-09-06T12:00")
    h = _history()
    big = forecaster.forecast_region(SharpInput(7115, 12673, "2017-09-06T11:59:23Z", -9.5, 36.0, dict(_FULL)), h, t)
    assert big.method == "keywords+history" and not big.degraded and big.missing == []
    assert {m["name"] for m in big.models} >= {"flare-region-keywords-m", "flare-region-keywords-c"}
    quiet = forecaster.forecast_region(SharpInput(9, 12680, "2017-09-06T11:59:23Z", 5.0, -20.0, dict(_QUIET)), h, t)
    assert big.p_m > 0.3 > 0.05 > quiet.p_m
    for r in (big, quiet):
        assert 0 < r.p_x <= r.p_m <= r.p_c < 1
    # A demo record: only the reduced keywords. Not degraded, but what it lacked is listed.
    red = {k: _FULL[k] for k in REDUCED_KEYWORDS}
    demo = forecaster.forecast_region(SharpInput(7115, 12673, "2017-09-06T11:59:23Z", -9.5, 36.0, red), h, t)
    assert demo.method == "keywords-reduced+history" and not demo.degraded
    assert "TOTPOT" in demo.missing[0] and {m["name"] for m in demo.models} >= {"flare-region-reduced-m"}
    # No event feed: the keyword model without history, degraded and said so.
    no_feed = forecaster.forecast_region(SharpInput(7115, 12673, "2017-09-06T11:59:23Z", -9.5, 36.0, dict(_FULL)), None, t)
    assert no_feed.method == "keywords" and no_feed.degraded and "flare history" in no_feed.missing[0]
    # Beyond 70 deg the keyword tiers stand aside.
    limb = forecaster.forecast_region(SharpInput(7115, 12673, "2017-09-06T11:59:23Z", -9.5, 80.0, dict(_FULL)), h, t)
    assert limb.method == "persistence" and limb.degraded


def test_history_features_follow_the_feed(forecaster: FlareForecaster) -> None:
    h = _history()
    f = h.region_features([12673], pd.Timestamp("2017-09-06T12:00"))
    assert f["n_m_24h"] == 2 and f["n_c_24h"] == 0 and f["c_yesterday"] == 1  # the X9.3 at 11:53 is before the issue
    assert f["hours_since_m"] == pytest.approx(7 / 60)
    before = h.region_features([12673], pd.Timestamp("2017-09-06T08:00"))
    assert before["n_m_24h"] == 0 and before["n_c_24h"] == 1
    assert h.region_features([], pd.Timestamp("2017-09-06T12:00"))["n_m_72h"] == 0


# -- the held-out evaluation ---------------------------------------------------------------------
def test_evaluation_scores_new_and_current_models_on_the_same_rows(tmp_path: Path) -> None:
    from heliowatch.models import registry
    from heliowatch.models.flares.region_eval import (
        FULL_KEYWORDS,
        evaluate_region_models,
        format_region_report,
        save_region_report,
    )

    d = _days(2000)  # one row a day, 2012-01-01 .. 2017-06-22
    d["day"] = pd.Timestamp("2012-01-01") + pd.to_timedelta(np.arange(len(d)), unit="D")
    d["harpnum"] = np.arange(len(d)) // 6  # six consecutive days per HARP: few HARPs span the 2015 cut
    res = evaluate_region_models(d, registry.weights_dir(), variants={"keywords (logistic)": ("logistic", FULL_KEYWORDS)})
    m = res["levels"]["M"]
    new, cur = m["time_split"]["keywords (logistic)"], m["time_split"]["current sharp+history"]
    assert new["n"] == cur["n"] == res["sample"]["time_test_rows"] > 0 and new["events"] == cur["events"]
    assert [r["n"] for r in m["per_fold"]["keywords (logistic)"]] == [r["n"] for r in m["per_fold"]["current sharp+history"]]
    assert sum(r["n"] for r in m["per_fold"]["keywords (logistic)"]) == res["sample"]["train_rows"]
    # The signal is in USFLUX and history, which the new model reads: it ranks better.
    assert m["harp_cv"]["keywords (logistic)"]["auc"]["mean"] > 0.7
    assert res["choice"] == {"keywords-C": "logistic", "keywords-M": "logistic"}
    assert "time split" in format_region_report(res)
    names = {p.name for p in save_region_report(res, tmp_path)}
    assert {"flare-regions-eval.json", "flare-regions-eval.txt", "flare-regions-reliability-m-harp.png"} <= names
    assert json.loads((tmp_path / "flare-regions-eval.json").read_text())["sample"]["region_days"] == len(d)


def test_cli_without_the_keyword_data_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from heliowatch.daemon.cli import main

    for argv in (
        ["evaluate", "flare-regions", "--data", str(tmp_path), "--out", str(tmp_path / "o")],
        ["train", "flare-regions", "--data", str(tmp_path), "--out", str(tmp_path / "w")],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "sharp-keyword-timeseries" in err[0]
