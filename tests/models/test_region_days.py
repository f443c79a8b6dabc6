"""Region-days from the SHARP keyword tarball: which record a day uses, labels, history windows, SRS, cache."""

from __future__ import annotations

import io
import math
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from heliowatch.models.flares import region_days
from heliowatch.models.flares.region_days import HOURS_SINCE_CAP, KEYWORDS, build_region_days

_HEAD = "TRUE_TIME,TIME," + ",".join(KEYWORDS)


def _row(t_tai: str, usflux: float, r_value: str = "4.0") -> str:
    vals = {k: "1.0" for k in KEYWORDS} | {"USFLUX": f"{usflux:e}", "R_VALUE": r_value, "AREA_ACR": "500.0"}
    return f"{t_tai},0.0," + ",".join(vals[k] for k in KEYWORDS)


def _write_root(root: Path) -> Path:
    ks = root / "sharp-keyword-timeseries"
    ks.mkdir(parents=True)
    members = {
        # TAI - UTC = 34 s in 2011: 2011-02-15 00:00:30 TAI is 2011-02-14 23:59:56 UTC, before the 02-15 issue.
        "data/1.csv": [
            _row("2011.02.14_10:00:00_TAI", 1e21),
            _row("2011.02.14_23:48:00_TAI", 2e21),
            _row("2011.02.15_00:00:30_TAI", 3e21),
            _row("2011.02.16_12:00:00_TAI", 4e21, r_value="MISSING"),
        ],
        "data/2.csv": [_row("2011.02.15_06:00:00_TAI", 5e21)],
        "data/for_r/7.csv": [_row("2011.02.15_06:00:00_TAI", 9e21)],  # not a HARP member
    }
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz") as tar:
        for name, rows in members.items():
            data = ("\n".join([_HEAD, *rows]) + "\n").encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (ks / "sharp_cea_720s_keyword_timeseries_1335harps.tar.xz").write_bytes(buf.getvalue())
    (ks / "all_harps_with_noaa_ars.txt").write_text("HARPNUM NOAA_ARS\n1 11158\n2 11159,11160\n")
    hayes = root / "hayes-flare-ar"
    hayes.mkdir()
    flares = [
        ("20110214", "2000", "2010", "2020", "C3.0", "11158"),
        ("20110215", "0005", "0010", "0020", "M2.0", "11158"),  # a label of 02-15, history from 02-16 on
        ("20110216", "1200", "1210", "1220", "C1.5", "11160"),  # HARP 2's second NOAA region
        ("20110216", "0300", "0310", "0320", "B5.0", "11158"),  # below C: neither history nor label
    ]
    lines = ["date,start_time,max_time,end_time,goes_class,noaa_ar", *(",".join(f) for f in flares)]
    (hayes / "swpc_flarelist_20100101-20210810.csv").write_text("\n".join(lines) + "\n")
    srs = root / "srs-catalog-1996-2022"
    srs.mkdir()
    (srs / "srs_processed_catalog_1996-2022.csv").write_text(
        "date,id,number,carrington_longitude,area,mcintosh_class,longitudinal_extent,number_of_sunspots,"
        "magnetic_class,latitude,longitude,filtered,filter_reason,filename\n"
        "2011-02-14,I,11158,34.0,120.0,Eac,10.0,31,Beta-Gamma,-20.0,3.0,False,,x\n"
        "2011-02-14,I,11159,34.0,30.0,Cro,10.0,3,Beta,-20.0,-50.0,False,,x\n"
        "2011-02-14,I,11160,34.0,90.0,Dao,10.0,3,Beta-Delta,-20.0,-40.0,False,,x\n"
    )
    return root


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return _write_root(tmp_path / "data")


def test_each_day_uses_the_last_record_before_00_utc(root: Path) -> None:
    d = build_region_days(root)
    h1 = d[d["harpnum"] == 1].set_index("day")
    # 02-15: the 00:00:30 TAI record (23:59:56 UTC); no record of 02-15 UTC, so no row for 02-16.
    assert list(h1.index) == [pd.Timestamp("2011-02-15"), pd.Timestamp("2011-02-17")]
    assert h1.loc["2011-02-15", "t_rec"] == pd.Timestamp("2011-02-14 23:59:56")
    assert h1.loc["2011-02-15", "USFLUX"] == pytest.approx(3e21)
    assert math.isnan(h1.loc["2011-02-17", "R_VALUE"])  # "MISSING" is NaN
    assert set(d["harpnum"]) == {1, 2}  # data/for_r/7.csv is not a HARP
    assert d.loc[d["harpnum"] == 2, "noaa_ar"].tolist() == [11159]
    assert d.loc[d["harpnum"] == 2, "noaa_ars"].tolist() == ["11159,11160"]


def test_labels_and_history_do_not_leak(root: Path) -> None:
    d = build_region_days(root).set_index(["harpnum", "day"])
    d15, d17 = d.loc[(1, pd.Timestamp("2011-02-15"))], d.loc[(1, pd.Timestamp("2011-02-17"))]
    # The M2.0 at 02-15 00:05 is the label of 02-15, not its history.
    assert d15["y_m"] == 1 and d15["y_c"] == 1
    assert d15["n_m_24h"] == 0 and d15["n_m_72h"] == 0 and d15["hours_since_m"] == HOURS_SINCE_CAP
    # The C3.0 of 02-14 20:00 is history of 02-15.
    assert d15["n_c_24h"] == 1 and d15["c_yesterday"] == 1
    assert d15["logmax_72h"] == pytest.approx(np.log10(3e-6))
    # Two days on: outside 24 h, inside 72 h; 47.9 h since the M flare; the B5 counts for nothing.
    assert d17["n_m_24h"] == 0 and d17["n_m_72h"] == 1 and d17["n_c_72h"] == 1 and d17["c_yesterday"] == 0
    assert d17["hours_since_m"] == pytest.approx(48 - 5 / 60)
    assert d17["logmax_72h"] == pytest.approx(np.log10(2e-5))
    assert d17["y_c"] == 0 and d17["y_m"] == 0
    # HARP 2 is labelled by a flare of its second NOAA region.
    d2 = d.loc[(2, pd.Timestamp("2011-02-16"))]
    assert d2["y_c"] == 1 and d2["y_m"] == 0


def test_previous_day_srs_of_the_largest_region(root: Path) -> None:
    d = build_region_days(root).set_index(["harpnum", "day"])
    r = d.loc[(1, pd.Timestamp("2011-02-15"))]
    assert (r["srs_mcintosh"], r["srs_magtype"], r["srs_area"], r["srs_lon"]) == ("EAC", "BETA-GAMMA", 120.0, 3.0)
    assert d.loc[(1, pd.Timestamp("2011-02-17")), "srs_mcintosh"] == ""  # no SRS of 02-16 in the catalogue
    assert math.isnan(d.loc[(1, pd.Timestamp("2011-02-17")), "srs_area"])
    # HARP 2 (11159 + 11160): the SRS of 02-15 is absent, so 02-16 has none.
    assert d.loc[(2, pd.Timestamp("2011-02-16")), "srs_mcintosh"] == ""


def test_harp_subset_and_cache(root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    only = build_region_days(root, harps=[2])
    assert set(only["harpnum"]) == {2}
    built = build_region_days(root, cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("region-days-*.csv"))) == 1

    def no_read(*_a: object, **_k: object) -> None:
        raise AssertionError("the tarball was read again")

    monkeypatch.setattr(region_days, "iter_keyword_csvs", no_read)
    cached = build_region_days(root, cache_dir=tmp_path / "cache")
    pd.testing.assert_frame_equal(cached, built, check_dtype=False)


def test_missing_data_is_one_clear_error(tmp_path: Path) -> None:
    from heliowatch.models.core.errors import UsageError

    with pytest.raises(UsageError, match="sharp-keyword-timeseries"):
        build_region_days(tmp_path)


def test_merged_lists_keep_the_copy_that_names_a_region(tmp_path: Path) -> None:
    from heliowatch.models.flares.events import load_events

    head = "date,start_time,max_time,end_time,goes_class,noaa_ar\n"
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text(head + "20110215,0143,0156,0206,X2.2,\n")  # no region given, and the earlier start
    b.write_text(head + "20110215,0144,0156,0206,X2.2,11158\n")
    assert load_events([a, b])["noaa_ar"].isna().all()  # by default the earliest copy is kept
    kept = load_events([a, b], prefer_attributed=True)
    assert len(kept) == 1 and kept["noaa_ar"].tolist() == [11158]
