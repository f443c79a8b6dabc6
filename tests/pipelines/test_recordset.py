"""The stand-in's DRMS record-set parser."""

from __future__ import annotations

import pytest

from heliowatch.pipelines.standin.recordset import RecordSetError, parse_duration, parse_recordset


def test_sharp_latest_with_segments() -> None:
    rs = parse_recordset("hmi.sharp_cea_720s_nrt[][$]{Br, bitmap}")
    assert rs.series == "hmi.sharp_cea_720s_nrt"
    assert [k.kind for k in rs.keys] == ["all", "last"]
    assert rs.segments == ["Br", "bitmap"]


def test_time_range_and_quality_filter() -> None:
    rs = parse_recordset("hmi.M_720s_nrt[2024.05.10_00:00:00_TAI-2024.05.10_06:00:00_TAI][? QUALITY=0 ?]")
    (k,) = rs.keys
    assert (k.kind, k.lo, k.hi) == ("range", "2024.05.10_00:00:00_TAI", "2024.05.10_06:00:00_TAI")
    assert [(f.key, f.op, f.value) for f in rs.filters] == [("QUALITY", "=", "0")]
    assert rs.filters[0].matches(0)
    assert not rs.filters[0].matches(1024)


def test_duration_cadence_and_and_filters() -> None:
    rs = parse_recordset("aia.lev1_nrt2[2019.11.08_06:00_TAI/1h@2m][? WAVELNTH=304 AND QUALITY<1 ?]")
    (k,) = rs.keys
    assert k.duration_s == 3600
    assert k.cadence_s == 120
    assert len(rs.filters) == 2
    assert parse_duration("1.5d") == 129600


def test_values_and_integer_ranges() -> None:
    rs = parse_recordset("hmi.sharp_cea_720s_nrt[377,7115][2011.02.15_02:00:00_TAI]")
    assert rs.keys[0].values == ("377", "7115")
    assert parse_recordset("x.y[10-20]").keys[0].kind == "range"


@pytest.mark.parametrize("bad", ["9bad[]", "hmi.M_720s_nrt[", "hmi.M_720s_nrt[? QUALITY ?]", "hmi.M_720s_nrt{Br", "a.b[]x"])
def test_bad_syntax_raises(bad: str) -> None:
    with pytest.raises(RecordSetError):
        parse_recordset(bad)
