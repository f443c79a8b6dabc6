"""The daemon's full-disk forecast with the shipped flare-full-disk model."""

from __future__ import annotations

import pandas as pd
import pytest

from heliowatch.models.flares.forecaster import EventHistory, FlareForecaster, RegionForecast

ISSUE = pd.Timestamp("2017-09-06T00:00")


def _region(lon: float, p_m: float) -> RegionForecast:
    return RegionForecast(
        file="",
        harpnum=7115,
        noaa_ar=12673,
        t_rec_utc="2017-09-05T23:58:00Z",
        hgs_lat=-9.0,
        hgs_lon=lon,
        p_c=max(0.6, p_m),
        p_m=p_m,
        p_x=p_m / 5,
        degraded=False,
        method="keywords+history",
        missing=[],
        models=[],
    )


@pytest.fixture(scope="module")
def fc() -> FlareForecaster:
    f = FlareForecaster()
    assert f.disk is not None, "models/weights/flare-full-disk.json is shipped"
    return f


def _history(*flares: tuple[str, float]) -> EventHistory:
    return EventHistory(
        pd.DataFrame({"start": [pd.Timestamp(t) for t, _ in flares], "flux": [f for _, f in flares], "noaa_ar": 12673})
    )


def test_a_region_beyond_the_west_limb_adds_nothing_and_one_at_it_adds_part(fc: FlareForecaster) -> None:
    none = fc.full_disk([], None, ISSUE)
    gone = fc.full_disk([_region(95.0, 0.9)], None, ISSUE)
    half = fc.full_disk([_region(83.4, 0.9)], None, ISSUE)
    centre = fc.full_disk([_region(0.0, 0.9)], None, ISSUE)
    assert gone.p_m == none.p_m and gone.p_x == none.p_x
    assert none.p_m < half.p_m < centre.p_m
    for fd in (none, gone, half, centre):
        assert 0 < fd.p_x <= fd.p_m <= fd.p_c < 1


def test_the_categorical_warning_follows_the_training_threshold(fc: FlareForecaster) -> None:
    thr = fc.disk["M"].threshold if fc.disk else None
    assert thr is not None and 0 < thr < 1
    for p in (0.05, 0.3, 0.9):
        fd = fc.full_disk([_region(0.0, p)], None, ISSUE)
        assert fd.threshold_m == thr and fd.warning_m == (fd.p_m >= thr)
    assert {m["name"] for m in fd.models} >= {"flare-full-disk"}


def test_yesterdays_big_flare_on_the_disk_raises_the_limb_term(fc: FlareForecaster) -> None:
    # The same 27-day activity (one X flare); only its day differs: 4 days ago or in the last 24 h.
    earlier = fc.full_disk([_region(10.0, 0.1)], _history(("2017-09-02T12:00", 2e-4)), ISSUE)
    yesterday = fc.full_disk([_region(10.0, 0.1)], _history(("2017-09-05T12:00", 2e-4)), ISSUE)
    assert yesterday.p_limb_m > earlier.p_limb_m and yesterday.p_m > earlier.p_m
    assert not earlier.missing and not yesterday.missing
