"""The flux-growth emergence warning (models/emergence/growth.py) and its real-history backtest
(models/emergence/backtest.py): the rule's firing times on handmade series, causality, the time
conventions (TAI->UTC, SRS issue at 00:30 UTC), and the scores on a handmade data directory."""

from __future__ import annotations

import calendar
import io
import tarfile
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from heliowatch.models.core.errors import ModelError
from heliowatch.models.emergence import backtest as bt
from heliowatch.models.emergence.growth import GrowthMonitor, GrowthRule, first_firing

CADENCE = 720.0  # s: SHARP's 12 min


def _unix(text: str) -> float:
    return float(calendar.timegm(datetime.strptime(text, "%Y-%m-%dT%H:%M:%S").timetuple()))


def _ramp(n_flat: int, n_grow: int, *, base: float = 1e20, step: float = 0.2e20) -> tuple[np.ndarray, np.ndarray]:
    """``base`` for n_flat samples, then +step per sample (12 min): +1e20 Mx/h by default."""
    k = np.arange(n_flat + n_grow)
    flux = np.where(k < n_flat, base, base + step * (k - n_flat))
    return k * CADENCE, flux.astype(np.float64)


# --- the rule ------------------------------------------------------------------------------------------


def test_fires_on_growing_series_at_the_hand_computed_sample() -> None:
    t, f = _ramp(30, 40)
    hit = first_firing(t, f, GrowthRule(floor_mx=2.9e20))
    # The 1-h trailing median of a rising series is the sample 2 back (5 samples); it first
    # reaches 2.9e20 when f[k-2] = 3e20, i.e. k - 2 = 30 + 10.
    assert hit is not None
    assert hit.index == 42
    assert hit.time == 42 * CADENCE
    assert hit.flux_mx == pytest.approx(3e20)
    assert hit.baseline_mx == pytest.approx(1e20)


def test_growth_factor_binds_when_the_baseline_is_high() -> None:
    t, f = _ramp(130, 60, base=2e20, step=0.1e20)
    hit = first_firing(t, f, GrowthRule())  # floor 3e20 passes first; needs 2 x 2e20 = 4e20
    assert hit is not None
    assert hit.flux_mx >= 4e20 > f[hit.index - 3]
    assert hit.index == 130 + 20 + 2


def test_default_parameters_are_the_documented_a_priori_ones() -> None:
    r = GrowthRule()
    assert (r.floor_mx, r.factor, r.window_h, r.smooth_h, r.min_area_msh) == (3e20, 2.0, 24.0, 1.0, None)


def test_never_uses_future_samples() -> None:
    rng = np.random.default_rng(3)
    t, f = _ramp(50, 100)
    f = f * rng.uniform(0.9, 1.1, f.size)
    rule = GrowthRule()
    hit = first_firing(t, f, rule)
    assert hit is not None
    i = hit.index
    # Cut just after the firing: same firing; cut before it: no firing; rewrite the future: same firing.
    assert first_firing(t[: i + 1], f[: i + 1], rule) == hit
    assert all(first_firing(t[:n], f[:n], rule) is None for n in range(1, i + 1))
    g = f.copy()
    g[i + 1 :] = rng.uniform(0, 1e23, g.size - i - 1)
    assert first_firing(t, g, rule) == hit
    # Streaming sample by sample reports it on that very sample, once.
    mon = GrowthMonitor(rule)
    fired = [k for k in range(t.size) if mon.update(float(t[k]), float(f[k])) is not None]
    assert fired == [i]
    assert mon.fired == hit


@pytest.mark.parametrize(
    "flux",
    [
        np.full(500, 5e21) * (1 + 0.05 * np.sin(np.arange(500))),  # steady region, 5 % jitter
        1e22 * np.exp(-np.arange(500) * CADENCE / 86400 * 0.10),  # decaying 10 %/day
        5e20 * np.exp(np.arange(500) * CADENCE / 86400 * np.log(1.5)),  # growing x1.5 per day only
        np.minimum(1e18 * np.exp(np.arange(500) * CADENCE / 86400 * np.log(100)), 2.9e20),  # fast but under the floor
    ],
    ids=["flat", "decaying", "slow-growth", "below-floor"],
)
def test_does_not_fire_on_flat_decaying_slow_or_small_series(flux: np.ndarray) -> None:
    assert first_firing(np.arange(flux.size) * CADENCE, flux, GrowthRule()) is None


def test_single_frame_spike_is_smoothed_away() -> None:
    f = np.full(100, 3e20)
    f[60] = 5e21
    t = np.arange(100) * CADENCE
    assert first_firing(t, f, GrowthRule()) is None
    hit = first_firing(t, f, GrowthRule(smooth_h=0.0))
    assert hit is not None
    assert hit.index == 60


def test_missing_values_are_skipped_and_area_floor_applies() -> None:
    t, f = _ramp(30, 40)
    f[20] = np.nan
    area = np.where(np.arange(f.size) < 45, 5.0, 50.0)
    plain = first_firing(t, f, GrowthRule(floor_mx=2.9e20))
    assert plain is not None
    assert plain.index == 42
    hit = first_firing(t, f, GrowthRule(floor_mx=2.9e20, min_area_msh=20.0), area_msh=area)
    assert hit is not None
    assert hit.index == 45


def test_bad_parameters_and_unordered_times_raise() -> None:
    with pytest.raises(ModelError, match="factor"):
        GrowthRule(factor=1.0)
    with pytest.raises(ModelError, match="smooth_h"):
        GrowthRule(smooth_h=30.0)
    mon = GrowthMonitor(GrowthRule())
    mon.update(10.0, 1e20)
    with pytest.raises(ModelError, match="increase"):
        mon.update(10.0, 1e20)


def test_tai_strings_to_utc() -> None:
    t = bt.tai_to_unix(["2011.02.15_02:00:00_TAI", "2013.05.10_00:00:00_TAI", "2017.01.01_00:00:37_TAI"])
    assert t.tolist() == [_unix("2011-02-15T01:59:26"), _unix("2013-05-09T23:59:25"), _unix("2017-01-01T00:00:00")]
    with pytest.raises(ModelError):
        bt.tai_to_unix(["2011-02-15T02:00:00"])


# --- the backtest on a handmade data directory ----------------------------------------------------------

HEADER = "TRUE_TIME,TIME,USFLUX,MEANGBZ,R_VALUE,AREA_ACR"


def _csv(start_tai: str, flux: np.ndarray, *, time0: float = 0.0, missing: tuple[int, ...] = ()) -> str:
    t0 = datetime.strptime(start_tai, "%Y-%m-%dT%H:%M:%S")
    rows = [HEADER]
    for k, v in enumerate(flux):
        stamp = (t0 + timedelta(seconds=k * CADENCE)).strftime("%Y.%m.%d_%H:%M:%S_TAI")
        val = "MISSING" if k in missing else f"{v:.6e}"
        rows.append(f"{stamp},{time0 + k * 0.2:.1f},{val},100.0,2.0,{v / 1e19:.3f}")
    return "\n".join(rows) + "\n"


def _flux_ramp(n_flat: int, n_grow: int, base: float, step: float) -> np.ndarray:
    return _ramp(n_flat, n_grow, base=base, step=step)[1]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A miniature ../shared/data: six HARPs in an xz tarball, the index, the map, an SRS catalogue."""
    d = tmp_path / "data"
    ks = d / "sharp-keyword-timeseries"
    ks.mkdir(parents=True)
    members = {
        # 101: born 2013-05-10 00:00 TAI, +1e20 Mx/h from 06:00; fires at k = 42 (08:24 TAI) for floor 2.9e20.
        "data/101.csv": _csv("2013-05-10T00:00:00", _flux_ramp(30, 40, 1e20, 0.2e20), missing=(5,)),
        # 102: came in from the limb, already numbered, steady: never fires.
        "data/102.csv": _csv("2013-05-10T00:00:00", 2e21 * (1 + 0.05 * np.cos(np.arange(200))), time0=30.0),
        # 103: came in numbered and doubles: an old region re-growing (a late warning).
        "data/103.csv": _csv("2013-05-10T00:00:00", _flux_ramp(60, 60, 1e21, 0.5e20), time0=40.0),
        # 104: born 2013-05-11 00:00 TAI, fires at k = 16 (03:12 TAI); numbers 11751 (hand-fixed SRS) and 11752.
        "data/104.csv": _csv("2013-05-11T00:00:00", _flux_ramp(10, 40, 1e20, 0.5e20)),
        "data/105.csv": HEADER + "\n",
        # 106: born 2014-03-01, grows too little to fire.
        "data/106.csv": _csv("2014-03-01T00:00:00", np.linspace(2e20, 2.5e20, 300)),
        # Not a HARP (the real tarball has these): must be ignored, or parsing fails.
        "data/for_r/1.csv": "a,b\n1,2\n",
    }
    with tarfile.open(ks / Path(bt.TARBALL).name, "w:xz") as tar:
        for name, text in members.items():
            raw = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    (ks / "harp_summary_index.csv").write_text(
        "harpnum,born_on_disk,emergence_candidate\n101,True,True\n102,False,False\n103,False,False\n"
        "104,True,False\n105,True,False\n106,True,False\n"
    )
    (ks / "all_harps_with_noaa_ars.txt").write_text(
        "HARPNUM NOAA_ARS\n101 11750\n102 11740\n103 11741\n104 11751,11752\n105 11760\n106 11990\n"
    )
    srs = d / "srs-catalog-1996-2022"
    srs.mkdir()
    (srs / "srs_processed_catalog_1996-2022.csv").write_text(
        "date,id,number,magnetic_class,filter_reason\n"
        '2013-05-01,II,11741,,"not_ar,"\n'  # "due to return": not a listing
        "2013-05-05,I,11740,Beta,\n"
        "2013-05-06,I,11741,Beta,\n"
        '2013-05-11,IA,11750,,"not_ar,"\n'  # a plage listing counts
        "2013-05-12,I,11750,Beta,\n"
        '2013-05-12,,0,,"load_unsuccessful,not_ar,"\n'
        "2013-05-13,I,11751,Alpha,\n"
        "2013-05-14,I,11752,Alpha,\n"
        "2014-03-03,I,11990,Alpha,\n"
    )
    hf = d / "noaa-srs" / "hand_fixed"
    hf.mkdir(parents=True)
    (hf / "20130512SRS.txt").write_text(
        ":Issued: 2013 May 12 0030 UTC\nI.  Regions with Sunspots.  Locations Valid at 11/2400Z\n"
        "Nmbr Location  Lo  Area  Z   LL   NN Mag Type\n1751 S10E20   100  0010 Axx  01   01 Alpha\n"
        "IA. H-alpha Plages without Spots.  Locations Valid at 11/2400Z May\nNmbr  Location  Lo\nNone\n"
        "II. Regions Due to Return 12 May to 14 May\nNmbr Lat    Lo\n1700 S10 100\n"
    )
    deb = d / "debrecen-sunspot-births"
    deb.mkdir()
    (deb / "sunspots_births_1872-2018.csv").write_text(
        "NOAA,date_utc,cycle\n11750m,2013-05-10T06:00:00Z,24\n11750,2013-05-10T12:00:00Z,24\n"
    )
    kas = d / "emerging-regions-kasapis"
    kas.mkdir()
    (kas / "kasapis_emerging_ar_list_with_srs.csv").write_text("noaa,srs_first_date\n11750,2013-05-11\n")
    return d


RULE = GrowthRule(floor_mx=2.9e20)


def test_streams_only_harp_members(data_dir: Path) -> None:
    tar = data_dir / bt.TARBALL
    got = {s.harp: s for s in bt.iter_keyword_series(tar)}
    assert sorted(got) == [101, 102, 103, 104, 105, 106]
    assert got[105].t.size == 0
    assert np.isnan(got[101].usflux[5])
    assert got[102].hours_since_first[0] == 30.0
    assert [s.harp for s in bt.iter_keyword_series(tar, harps=[104])] == [104]


def test_catalogue_first_listings(data_dir: Path) -> None:
    cat = bt.load_catalogue(data_dir)
    assert cat.srs_first[11750] == _unix("2013-05-11T00:30:00")  # IA before I; issue time 00:30 UTC
    assert cat.srs_first[11741] == _unix("2013-05-06T00:30:00")  # the II row of 05-01 does not count
    assert cat.srs_first[11751] == _unix("2013-05-12T00:30:00")  # from the hand-fixed raw SRS
    assert 11700 not in cat.srs_first  # Section II of the raw SRS does not count either
    assert cat.checks["srs_first_listing_moved_by_fill"] == 1
    assert cat.dpd_birth == {11750: _unix("2013-05-10T12:00:00")}  # the sub-group "11750m" is not the region
    assert cat.harp_noaa[104] == (11751, 11752)


def test_lead_times_categories_and_scores(data_dir: Path) -> None:
    res = bt.run_backtest(data_dir, RULE)
    h = {r["harp"]: r for r in res["harps"]}
    assert {k: h[k]["category"] for k in h} == {
        101: "new",
        102: "entered_numbered",
        103: "entered_numbered",
        104: "new",
        105: "empty",
        106: "new",
    }
    # 101 fires at 08:24:00 TAI = 08:23:25 UTC on 05-10; NOAA first lists it 05-11 00:30 UTC.
    assert h[101]["t_warn"] == _unix("2013-05-10T08:23:25")
    assert h[101]["lead_h"] == pytest.approx(16 + 395 / 3600)
    assert h[101]["outcome"] == "hit"
    assert h[101]["lead_vs_dpd_h"] == pytest.approx(3 + 2195 / 3600)
    # 104 fires at 03:12:00 TAI on 05-11; first listed 05-12 00:30 (11751, hand-fixed day).
    assert h[104]["lead_h"] == pytest.approx(21 + 1115 / 3600)
    assert not h[102]["fired"]
    assert h[103]["outcome"] == "late"
    assert h[103]["lead_h"] < 0
    assert not h[106]["fired"]

    o = res["overall"]
    assert (o["new_regions"], o["new_warned"]) == (3, 2)
    assert o["pod_lead_gt_0"] == pytest.approx(2 / 3)
    assert o["pod_lead_ge_12h"] == pytest.approx(2 / 3)
    assert o["pod_lead_ge_24h"] == 0.0
    assert o["warnings"] == 3
    assert o["warning_outcomes"] == {"hit": 2, "early": 0, "late": 1, "unlisted": 0}
    assert o["far"] == pytest.approx(1 / 3)
    assert o["far_gated"] == 0.0
    assert (o["old_warned"], o["old_regions"]) == (1, 2)
    assert o["lead_h"]["median"] == pytest.approx((h[101]["lead_h"] + h[104]["lead_h"]) / 2)
    assert res["kasapis"]["warned_before_listing"] == 1


def test_per_year_split(data_dir: Path) -> None:
    res = bt.run_backtest(data_dir, RULE)
    assert sorted(res["by_year"]) == ["2013", "2014"]
    y13, y14 = res["by_year"]["2013"], res["by_year"]["2014"]
    assert (y13["new_regions"], y13["pod_lead_gt_0"], y13["warnings"], y13["far"]) == (2, 1.0, 3, pytest.approx(1 / 3))
    assert (y14["new_regions"], y14["pod_lead_gt_0"], y14["warnings"], y14["far"]) == (1, 0.0, 0, None)
    text = bt.format_report(res)
    assert "| 2013 | 2 | 100 % |" in text
    assert "| 2014 | 1 | 0 % |" in text


def test_latency_and_horizon(data_dir: Path) -> None:
    late = bt.run_backtest(data_dir, RULE, latency_h=1.0)
    h = {r["harp"]: r for r in late["harps"]}
    assert h[101]["lead_h"] == pytest.approx(15 + 395 / 3600)
    short = bt.run_backtest(data_dir, RULE, horizon_h=20.0)
    o = short["overall"]["warning_outcomes"]
    assert (o["hit"], o["early"]) == (1, 1)  # 104's 21.3 h lead is beyond a 20-h horizon


def test_real_harp_377_noaa_11158(shared_data: Path) -> None:
    """HARP 377 (NOAA 11158, born on the disk 2011-02-10): warned a day before NOAA's first listing."""
    s = next(bt.iter_keyword_series(shared_data / bt.TARBALL, harps=[377]))
    cat = bt.load_catalogue(shared_data)
    assert s.hours_since_first[0] == 0.0
    assert cat.born_on_disk[377]
    assert cat.harp_noaa[377] == (11158,)
    assert cat.srs_first[11158] == _unix("2011-02-12T00:30:00")
    hit = first_firing(s.t, s.usflux, GrowthRule())
    assert hit is not None
    assert hit.time == _unix("2011-02-10T22:47:26")  # 22:48:00 TAI
    assert first_firing(s.t[: hit.index + 1], s.usflux[: hit.index + 1], GrowthRule()) == hit
    assert (cat.srs_first[11158] - hit.time) / 3600 == pytest.approx(25.71, abs=0.01)
