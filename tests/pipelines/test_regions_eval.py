"""Region evaluation: AP and matching, semi-real frames checked against a real LOS magnetogram, the CLI."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from heliowatch.models import measures
from heliowatch.models.skill import average_precision, iou
from heliowatch.models.synthetic.fitsout import write_fits
from heliowatch.models.synthetic.semireal import _place, _read, load_patch, semireal_magnetogram
from tests.conftest import SHARED_DATA

DATA = SHARED_DATA
HARP377 = DATA / "sharp-cutouts" / "harp377-ar11158" / "hmi.sharp_cea_720s.377.20110215_020000_TAI.Br.fits"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "heliowatch.daemon.cli", *args], capture_output=True, text=True, timeout=600)


def test_iou_and_average_precision_by_hand() -> None:
    a, b = [0, 0, 10, 10], [5, 0, 15, 10]
    assert iou(a, b) == pytest.approx(50 / 150)
    truths = {0: [[0, 0, 10, 10]], 1: [[20, 20, 30, 30]]}
    assert average_precision([(0, 0.9, [0, 0, 10, 10]), (1, 0.8, [20, 20, 30, 30])], truths) == pytest.approx(1.0)
    # One region found, one missed: recall stops at 0.5.
    assert average_precision([(0, 0.9, [0, 0, 10, 10])], truths) == pytest.approx(0.5)
    # A confident false alarm before both hits: P = 1/2 at R = 0.5, 2/3 at R = 1.
    dets = [(0, 0.99, [50, 50, 60, 60]), (0, 0.9, [0, 0, 10, 10]), (1, 0.8, [20, 20, 30, 30])]
    assert average_precision(dets, truths) == pytest.approx(0.5 * 2 / 3 + 0.5 * 2 / 3)
    # A box that overlaps too little is a miss at IoU 0.5.
    assert average_precision([(0, 0.9, [5, 0, 15, 10])], {0: [[0, 0, 10, 10]]}) == 0.0


@pytest.mark.usefixtures("shared_data")
def test_vector_patch_projected_to_its_own_position_reproduces_the_hmi_los_magnetogram() -> None:
    """The placement's line-of-sight projection of (Br, Bt, Bp), checked against HMI's own LOS data."""
    p = load_patch(HARP377)
    mag = _read(HARP377.with_name(HARP377.name.replace(".Br.", ".magnetogram.")))[0]
    los_patch = dataclasses.replace(p, br=measures.bin_mean(np.nan_to_num(mag), 4), bt=None, bp=None)
    h = p.header
    b0 = float(h["CRLT_OBS"])
    geo = measures.disk_geometry((2048, 2048), cdelt_arcsec=1.0, crpix=(1024.5, 1024.5), dsun_m=float(h["DSUN_OBS"]), b0_deg=b0)
    lat0, lon0 = float(h["CRVAL2"]), float(h["CRVAL1"]) - float(h["CRLN_OBS"])

    def corr(patch: object) -> float:
        got = _place(patch, geo, lat0, lon0, b0)  # type: ignore[arg-type]
        ref = _place(los_patch, geo, lat0, lon0, b0)
        assert got is not None and ref is not None
        hmi = ref[0] / np.nan_to_num(geo.mu, nan=1.0)  # undo the radial projection: the LOS data itself
        m = got[1] & (np.abs(hmi) > 100)
        return float(np.corrcoef(got[0][m], hmi[m])[0, 1])

    assert corr(p) > 0.99
    # Bt points south in SHARP files; reading it as northward visibly degrades the match.
    assert corr(dataclasses.replace(p, bt=-p.bt)) < corr(p) - 0.02  # type: ignore[operator]


@pytest.fixture(scope="module")
def semireal(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> tuple[Path, dict]:
    patches = [load_patch(p) for p in sorted((DATA / "sharp-cutouts").glob("*/*.Br.fits"))]
    for p, cls in zip(patches, ["beta-gamma-delta", "alpha", "beta-gamma-delta"], strict=True):
        p.mtwilson = cls
    data, hdr, truth = semireal_magnetogram(dt.datetime(2015, 3, 1, tzinfo=dt.UTC), patches, np.random.default_rng(3), seed=3)
    path = tmp_path_factory.mktemp("semireal") / "semireal.fits"
    write_fits(path, data, hdr)
    return path, truth


def test_semireal_frame_keeps_hemispheres_and_real_flux(semireal: tuple[Path, dict]) -> None:
    _, truth = semireal
    regions = truth["regions"]
    assert [r["noaa"] for r in regions] == [11158, 12673, 12673]
    assert all(r["hgs_lat"] < 0 for r in regions)  # all three are southern regions: Hale's law kept
    assert all(abs(r["hgs_lon"]) < 65 for r in regions)
    # The SHARP headers' USFLUX (vector Br over the HARP mask) vs the placed footprint's radial flux.
    assert regions[0]["usflux_mx"] == pytest.approx(2.71e22, rel=0.4)
    assert regions[2]["usflux_mx"] == pytest.approx(4.53e22, rel=0.4)


def test_detect_cli_finds_the_real_regions_on_a_semireal_frame(semireal: tuple[Path, dict]) -> None:
    path, truth = semireal
    p = cli("detect", str(path), "--json")
    assert p.returncode == 0, p.stderr
    found = json.loads(p.stdout)["regions"]
    for tr in truth["regions"]:
        d = [np.hypot(r["hgs_lat"] - tr["hgs_lat"], r["hgs_lon"] - tr["hgs_lon"]) for r in found]
        assert min(d) < 5, (tr, found)


@pytest.mark.slow
@pytest.mark.usefixtures("shared_data")
def test_evaluate_regions_reports_every_part(tmp_path: Path) -> None:
    p = cli("evaluate", "regions", "--data", str(DATA), "--frames", "1", "--out", str(tmp_path))
    assert p.returncode == 0, p.stderr
    for title in (
        "Real SHARP patches against NOAA SRS",
        "Real full disks against their SRS",
        "leave one region out",
        "Class mix on the real data",
        "Semi-real full disks",
        "Synthetic full disks",
        "SRS 2010-2019",
    ):
        assert title in p.stdout
    r = json.loads((tmp_path / "regions-eval.json").read_text())
    rows = r["sharp_vs_srs"]["patches"]
    # Truth from the SRS archive for each patch's own day.
    assert [(x["noaa"], x["srs_class"]) for x in rows] == [
        (11158, "beta-gamma-delta"),
        (12673, "alpha"),
        (12673, "beta-gamma-delta"),
    ]
    for method, acc in r["sharp_vs_srs"]["accuracy"].items():
        assert acc["correct"] == sum(x[method] == x["srs_class"] for x in rows)
    semi = r["semireal"]
    assert semi["truth_regions"] == 3 and 0 <= semi["detection"]["smart"]["ap50"] <= 1
    assert sum(map(sum, semi["classification"]["rules"]["confusion"])) == semi["classification"]["rules"]["n"]
    clim = r["climatology"]
    assert clim["region_days"] > 10000 and clim["srs_distribution"]["beta"] > clim["srs_distribution"]["alpha"]
    assert (tmp_path / "semireal-example.png").stat().st_size > 10_000
    real = r["real_disks"]
    assert sorted(d["t_rec_utc"][:10] for d in real["disks"]) == ["2011-12-17", "2016-07-07", "2019-06-21"]
    assert sum(len(d["srs_regions"]) for d in real["disks"]) == 5  # 11374, 11375, 11377, 11378; 12560
    for name, s in real["summary"].items():
        d = s["detection"]
        assert d["tp"] + d["fn"] == 5 and d["fp"] == d["fp_numbered_like"] + d["fp_plage_like"]
        assert d["tp"] == sum(c["n"] for c in s["classification"]["rules"]["per_class"].values())
        assert all(len(x["regions"]) == x["tp"] + x["fp"] for x in (disk["detectors"][name] for disk in real["disks"]))
    assert {p["region"] for p in r["real_patches"]["patches"]} >= {"HARP 377", "HARP 7115", "HARP 4781"}
    assert r["real_class_mix"]["disks"]["srs"]["counts"] == {"alpha": 2, "beta": 3}
    assert (tmp_path / "real-disk-2011-12-17.png").stat().st_size > 10_000


def test_evaluate_regions_without_the_data_is_one_line(tmp_path: Path) -> None:
    p = cli("evaluate", "regions", "--data", str(tmp_path), "--frames", "1", "--out", str(tmp_path / "o"))
    assert p.returncode == 2
    assert len(p.stderr.strip().splitlines()) == 1 and "sharp-cutouts" in p.stderr
