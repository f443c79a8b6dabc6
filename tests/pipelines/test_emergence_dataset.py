"""The real emergence training-set builder, end to end against the JSOC stand-in over HTTP (drms through JsocClient).

The archive is synthetic full-disk ``hmi.M_720s`` magnetograms (512 x 512, HMI-like WCS, T_REC on
the TAI 720 s grid) only around the windows of four listed regions: a bipole grows at each region's
fixed Carrington position from 5 h before its emergence time, the controls a rotation away see the
quiet Sun. One frame carries a QUALITY bit, one is corrupt, one window lacks two of its three frames.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.time import Time, TimeDelta

from heliowatch.daemon.cli import main
from heliowatch.models.core.errors import UsageError
from heliowatch.models.emergence.mtot import central_flux_mx
from heliowatch.models.registry import load_card
from heliowatch.models.synthetic.ephemeris import ephemeris
from heliowatch.models.synthetic.fitsout import write_fits
from heliowatch.models.synthetic.magnetogram import RegionSpec, synth_magnetogram
from heliowatch.pipelines.datasets.emergence import (
    SYNODIC_ROTATION_D,
    build_emergence_dataset,
    find_lists,
    load_emergence_dataset,
    read_regions,
)
from heliowatch.pipelines.jsoc import JsocClient, RetryPolicy
from heliowatch.pipelines.standin.archive import Archive
from heliowatch.pipelines.standin.server import StandinServer

#: (NOAA, emergence time the builder should find, latitude, Stonyhurst longitude at that time, has a Debrecen birth)
REGIONS = [
    ("11158", "2011-02-11T07:35:21Z", -19.6, -30.0, True),
    ("11400", "2012-01-20T00:00:00Z", 15.0, -10.0, False),
    ("11750", "2013-05-05T00:00:00Z", -12.0, 5.0, False),
    ("12100", "2014-07-01T00:00:00Z", 8.0, -20.0, False),
]
TIMES = (8.5, 3.2)
WINDOW_MIN = 36.0  # 3 frames of 720 s
STRIDE_H = 320 / 60
BLOCKER = "11700"  # listed near 11750's position one rotation before: its control must be the next rotation
SLOT_EPOCH = Time("1993-01-01T00:00:00", scale="tai")
KASAPIS_HEAD = (
    "noaa,in_suryabench_solared_list,in_kasapis_train_list,kasapis_test_noaa_first,kasapis_test_noaa_second,srs_first_date,"
    "srs_first_lat,srs_first_lon,srs_first_area,srs_first_mag,srs_first_mcintosh,srs_last_date,srs_n_days,srs_max_area,"
    "srs_max_area_date,srs_mag_classes,harpnum_definitive,pauker_harp,pauker_born_on_disk,pauker_emergence_candidate"
)
SRS_HEAD = (
    "date,id,number,carrington_longitude,area,mcintosh_class,longitudinal_extent,number_of_sunspots,magnetic_class,latitude,"
    "longitude,filtered,filter_reason,filename"
).split(",")


def _srs_row(day: dt.date, number: str, carr: float, lat: float, lon: float = 0.0) -> list[str]:
    """A section-I row of the SRS catalogue (positions rounded to whole degrees, as SRS gives them)."""
    pos = [f"{round(carr) % 360:.1f}", "60.0", "Cso", "5.0", "4", "Beta", f"{round(lat):.1f}", f"{round(lon):.1f}"]
    return [str(day), "I", number, *pos, "False", "", f"{day:%Y%m%d}SRS.txt"]


def _t(iso: str) -> dt.datetime:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))


def _carrington(t: dt.datetime, hgs_lon: float) -> float:
    return (hgs_lon + ephemeris(t).l0_deg) % 360.0


def _slots(centre: dt.datetime, window_min: float = WINDOW_MIN) -> list[dt.datetime]:
    """UTC times of the TAI 720 s T_REC slots in ``[centre - w/2, centre + w/2)``."""
    half = dt.timedelta(minutes=window_min / 2)
    lo = (Time((centre - half).replace(tzinfo=None), scale="utc").tai - SLOT_EPOCH).sec
    hi = (Time((centre + half).replace(tzinfo=None), scale="utc").tai - SLOT_EPOCH).sec
    out = []
    for k in range(math.ceil(lo / 720 - 1e-9), math.ceil(hi / 720 - 1e-9)):
        utc = (SLOT_EPOCH + TimeDelta(k * 720.0, format="sec")).utc.to_datetime()
        out.append(utc.replace(tzinfo=dt.UTC))
    return out


def _series() -> list[tuple[str, str, dt.datetime, float, float, bool]]:
    """(sid, noaa, reference time, lat, Carrington lon, bipole?) of every series the builder should plan."""
    out = []
    for noaa, t_e, lat, hgs, _ in REGIONS:
        te = _t(t_e)
        carr = _carrington(te, hgs)
        out.append((f"{noaa}_PE", noaa, te, lat, carr, True))
        rot = 1 if noaa == "11750" else -1
        out.append((f"{noaa}_NE{rot:+d}", noaa, te + dt.timedelta(days=rot * SYNODIC_ROTATION_D), lat, carr, False))
    return out


def _lists(root: Path) -> Path:
    """A Kasapis-format region list, a Debrecen birth list and an SRS catalogue covering the controls' days."""
    kas = root / "emerging-regions-kasapis"
    kas.mkdir(parents=True)
    rows = [KASAPIS_HEAD]
    srs_rows: list[list[str]] = []
    for noaa, t_e, lat, hgs, birth in REGIONS:
        te = _t(t_e)
        first = (te + dt.timedelta(days=1)).date() if birth else te.date()
        lon_first = hgs + 13.2 * ((dt.datetime(first.year, first.month, first.day, tzinfo=dt.UTC) - te).total_seconds() / 86400)
        rows.append(
            f"{noaa},True,True,,,{first},{lat},{lon_first:.1f},60.0,Beta,Cso,{first},8.0,250.0,{first},Beta,1,1,True,True"
        )
        carr = _carrington(te, hgs)
        srs_rows.append(_srs_row(first, noaa, carr, lat, lon_first))
    rows.append("13183,True,False,,,,,,,,,,,,,,,,False,False")  # after the catalogue: no first listing (as in the real list)
    (kas / "kasapis_emerging_ar_list_with_srs.csv").write_text("\n".join(rows) + "\n")
    deb = root / "debrecen-sunspot-births"
    deb.mkdir()
    noaa, t_e, lat, hgs, _ = REGIONS[0]
    carr = _carrington(_t(t_e), hgs)
    (deb / "sunspots_births_1872-2018.csv").write_text(
        "NOAA,date_utc,cycle,total_area,dist_sun_disc,carrington_lon_deg,lat_deg,theta,phi,posixct_seconds\n"
        f"{noaa}m,2011-02-12T10:36:12Z,24,5.0,0.9128,349.92,-16.48,6.1,-0.28,1297506972.0\n"
        f"{noaa},{t_e},24,37.0,0.6108,{carr:.2f},{lat},0.61,-0.34,0.0\n"
    )
    # Every day around every candidate control (rotations -1 and +1) is covered, by a region far away.
    days: set[dt.date] = set()
    for _, t_e, *_ in REGIONS:
        for rot in (-1, 1):
            tc = _t(t_e) + dt.timedelta(days=rot * SYNODIC_ROTATION_D)
            days |= {(tc + dt.timedelta(days=d)).date() for d in range(-2, 4)}
    for d in sorted(days):
        srs_rows.append(
            [str(d), "I", "99999", "0.0", "30.0", "Hsx", "1.0", "1", "Alpha", "-45.0", "80.0", "False", "", f"{d:%Y%m%d}SRS.txt"]
        )
    noaa, t_e, lat, hgs, _ = REGIONS[2]
    carr = _carrington(_t(t_e), hgs)
    blocked = (_t(t_e) - dt.timedelta(days=SYNODIC_ROTATION_D)).date()
    srs_rows.append(_srs_row(blocked, BLOCKER, carr + 3, lat + 2))
    srs = root / "srs-catalog-1996-2022"
    srs.mkdir()
    with open(srs / "srs_processed_catalog_1996-2022.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(SRS_HEAD)
        w.writerows(sorted(srs_rows))
    return kas


def _frame(root: Path, t: dt.datetime, regions: list[RegionSpec], seed: int, *, quality: int = 0) -> Path:
    data, h, _ = synth_magnetogram(t, regions, size=512, seed=seed, noise_seed=int(t.timestamp()) % 100_000, quality=quality)
    tai = Time(t.replace(tzinfo=None), scale="utc").tai
    h["T_REC"] = h["T_OBS"] = tai.strftime("%Y.%m.%d_%H:%M:%S_TAI")  # HMI's slots are on the TAI grid (synth snaps to UTC)
    return write_fits(root / f"hmi.M_720s.{tai.strftime('%Y%m%d_%H%M%S')}_TAI.3.magnetogram.fits", data, h)


def _archive(root: Path) -> tuple[Path, int]:
    """Frames in every window the builder needs and a few it must not fetch; the directory and how many it should download."""
    root.mkdir()
    wanted = 0
    for seed, (sid, _noaa, t_ref, lat, carr, bipole) in enumerate(_series()):
        centres = {h: t_ref - dt.timedelta(hours=h) for h in (*TIMES, TIMES[0] + STRIDE_H)}
        times = {t: (h, j) for h, c in centres.items() for j, t in enumerate(_slots(c))}
        for extra in (t_ref - dt.timedelta(hours=6), t_ref - dt.timedelta(hours=1)):  # between and after the windows
            times[_slots(extra, 12)[0]] = (-1.0, 0)
        for t, (h, j) in sorted(times.items()):
            if sid == "12100_PE" and h == 8.5 and j != 0:
                continue  # two of the window's three frames never reached the archive
            regions = []
            grow_h = (t - (t_ref - dt.timedelta(hours=5))).total_seconds() / 3600
            if bipole and grow_h > 0:
                hgs = (carr - ephemeris(t).l0_deg + 180) % 360 - 180
                regions = [RegionSpec("beta", lat, hgs, size=0.3 + 0.15 * grow_h)]
            flagged = sid == "11158_PE" and h == 8.5 and j == 1
            path = _frame(root, t, regions, seed, quality=0x400 if flagged else 0)
            wanted += h > 0 and not flagged
            if sid.startswith("11158_NE") and h == 3.2 and j == 1:
                raw = bytearray(path.read_bytes())  # a transfer that garbled the data: DATASUM fails
                for i in range(len(raw) // 2, len(raw) // 2 + 64):
                    raw[i] ^= 0x5A
                path.write_bytes(bytes(raw))
    return root, wanted


class _Count:
    """A JsocObserver counting requests by endpoint."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}

    def jsoc_request(self, endpoint: str, outcome: str) -> None:
        self.calls[endpoint] = self.calls.get(endpoint, 0) + 1

    def jsoc_retry(self, endpoint: str) -> None:
        pass


def _build(client: JsocClient, lists: Path, out: Path) -> dict[str, Any]:
    return build_emergence_dataset(
        client, lists, out, times_before_h=TIMES, window_min=WINDOW_MIN, stride_min=320.0, min_fraction=0.6
    )


def test_builder_makes_a_labelled_tracked_set_split_by_region_and_time(tmp_path: Path) -> None:
    lists = _lists(tmp_path / "data")
    archive, wanted = _archive(tmp_path / "archive")
    count = _Count()
    with StandinServer(Archive(archive), export_delay_s=0.05) as srv:
        client = JsocClient(srv.url, email="ops@example.org", observer=count, retry=RetryPolicy(retries=1, base_s=0.01))
        manifest = _build(client, lists, tmp_path / "set")
    assert manifest["skipped"] == []
    # Only the frames of the windows were fetched (the archive holds more), one record set per window here
    # (the three windows of a series do not overlap).
    assert count.calls["download"] == wanted < len(list(archive.glob("*.fits")))
    assert count.calls["export"] == 3 * len(_series())
    assert manifest["frames"] == {"read": wanted - 1, "rejected": 1, "unusable": 0}

    regions = {r["noaa"]: r for r in manifest["regions"]}
    assert regions["11158"]["source"].startswith("Debrecen birth") and regions["11158"]["t_emergence_utc"] == REGIONS[0][1]
    assert regions["11400"]["source"].startswith("first SRS listing")
    assert [c["rotation"] for c in regions["11750"]["controls"]] == [1]
    assert BLOCKER in regions["11750"]["controls_rejected"][0]["reason"]
    assert [s["noaa"] for s in manifest["regions_skipped"]] == ["13183"]

    by = {s["id"]: s for s in manifest["samples"]}
    expected = {f"{sid}_{h:04.1f}h" for sid, *_ in _series() for h in TIMES} - {"12100_PE_08.5h"}
    assert set(by) == expected
    for s in by.values():
        assert (s["label"], s["kind"]) == ((1, "PE") if "_PE_" in s["id"] else (0, "NE"))
        assert s["hours_before"] in TIMES and s["n_expected"] == 3
    assert [d["id"] for d in manifest["dropped"]] == ["12100_PE_08.5h"]
    assert "1 of 3 frames" in manifest["dropped"][0]["reason"]
    assert by["11158_PE_08.5h"]["n_frames"] == 2  # the QUALITY-flagged frame was never sent
    assert by["11158_NE-1_03.2h"]["n_frames"] == 2 and by["11158_NE-1_03.2h"]["frames_rejected"] == 1  # the corrupt one
    assert by["12100_PE_03.2h"]["previous_n_frames"] == 0 and by["11400_PE_03.2h"]["previous_n_frames"] == 3

    # Split by region and by time: the latest region tests, no region on two sides.
    parts = manifest["split_regions"]
    assert parts == {"train": ["11158", "11400"], "validation": ["11750"], "test": ["12100"]}
    d = manifest["dates"]
    assert d["train"][1] < d["validation"][0] <= d["validation"][1] < d["test"][0]
    assert set(manifest["lists"]) == {
        "kasapis_emerging_ar_list_with_srs.csv",
        "srs_processed_catalog_1996-2022.csv",
        "sunspots_births_1872-2018.csv",
    }

    data = load_emergence_dataset(tmp_path / "set")
    assert data["x"].shape == (len(expected), 85, 85) and data["previous"].shape == data["x"].shape
    ix = {sid: i for i, sid in enumerate(data["ids"])}
    flux = central_flux_mx(data["x"])
    for noaa, *_ in REGIONS:
        ne = next(k for k in ix if k.startswith(f"{noaa}_NE") and k.endswith("03.2h"))
        pe = ix[f"{noaa}_PE_03.2h"]
        # The bipole is there 3.2 h before emergence, at the centre of the tracked patch; the control is quiet.
        assert flux[pe] > 3 * flux[ix[ne]], noaa
        b = np.abs(np.nan_to_num(data["x"][pe]))
        rows, cols = np.nonzero(b > 100)  # the region's field, weighted by its strength
        centroid = (np.average(rows, weights=b[rows, cols]), np.average(cols, weights=b[rows, cols]))
        assert math.dist(centroid, (42, 42)) < 7, (noaa, centroid)
        if f"{noaa}_PE_08.5h" in ix:
            assert flux[pe] > 3 * flux[ix[f"{noaa}_PE_08.5h"]], noaa  # nothing had emerged yet
    assert set(data["y"][data["split"] == 0]) == {0, 1}

    # A rerun reuses everything: no export, no download, the same manifest.
    again = _Count()
    dead = JsocClient("http://127.0.0.1:9/", email="ops@example.org", observer=again, timeout_s=1, retry=RetryPolicy(retries=0))
    manifest2 = _build(dead, lists, tmp_path / "set")
    assert again.calls == {}
    assert [s["id"] for s in manifest2["samples"]] == [s["id"] for s in manifest["samples"]]
    assert manifest2["dropped"] == manifest["dropped"]
    with pytest.raises(UsageError, match="other parameters"):
        build_emergence_dataset(dead, lists, tmp_path / "set", times_before_h=TIMES, window_min=48.0)

    # One command trains on it: given the lists it "builds" (all there already), then trains; the card says on what.
    weights = tmp_path / "weights"
    argv = ["train", "emergence-fcn", "--data", str(lists), "--dataset-dir", str(tmp_path / "set"), "--epochs", "1"]
    rc = main([*argv, "--out", str(weights)])
    assert rc == 0
    card = load_card("emergence-fcn", root=weights)
    assert card["training"]["synthetic"] is False
    assert "built emergence set" in card["training"]["data"] and str(tmp_path / "set") in card["training"]["data"]
    assert card["training"]["dataset"]["split"]["test"] == {"PE": 1, "NE": 2}
    mtot = json.loads((weights / "emergence-mtot.json").read_text())
    assert mtot["info"]["synthetic"] is False


def test_bad_lists_are_usage_errors(tmp_path: Path) -> None:
    lists = _lists(tmp_path / "data")
    dead = JsocClient("http://127.0.0.1:9/", email="ops@example.org", timeout_s=1, retry=RetryPolicy(retries=0))
    region_csv = lists / "kasapis_emerging_ar_list_with_srs.csv"
    good = region_csv.read_text()
    region_csv.write_text(good.replace("11400,", "AR11400,", 1))
    with pytest.raises(UsageError, match=r"line 3: noaa 'AR11400'"):
        build_emergence_dataset(dead, lists, tmp_path / "set")
    region_csv.write_text(good.replace("2012-01-20,15.0", "20/01/2012,15.0", 1))
    with pytest.raises(UsageError, match="srs_first_date"):
        read_regions(find_lists(lists))
    region_csv.write_text(good.replace("srs_first_lat", "first_lat"))
    with pytest.raises(UsageError, match="no emerging-region list"):
        find_lists(lists)
    region_csv.write_text(good)
    (tmp_path / "data" / "srs-catalog-1996-2022" / "srs_processed_catalog_1996-2022.csv").write_text(
        "date,number\n2011-01-01,1\n"
    )
    with pytest.raises(UsageError, match="missing column"):
        build_emergence_dataset(dead, lists, tmp_path / "set")
    with pytest.raises(UsageError, match="no emerging-region list"):
        find_lists(tmp_path)
    assert not (tmp_path / "set" / "manifest.json").exists()
