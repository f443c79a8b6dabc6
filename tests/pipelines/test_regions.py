"""Active regions: preprocessing, detection on synthetic disks, rule classes on real SHARPs, tracking, CLI."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from heliowatch.models.core.errors import UsageError
from heliowatch.models.regions.classify import classify_regions
from heliowatch.models.regions.detect import detect
from heliowatch.models.regions.tracking import Tracker
from heliowatch.models.synthetic.fitsout import write_fits
from heliowatch.models.synthetic.magnetogram import RegionSpec, synth_magnetogram
from heliowatch.pipelines.regions import preprocess
from heliowatch.pipelines.standin.archive import demo_archive_path

T = dt.datetime(2014, 1, 7, 12, tzinfo=dt.UTC)
SPECS = [RegionSpec("beta", -14, -25), RegionSpec("beta-delta", 10, 30), RegionSpec("alpha", 15, -50), RegionSpec("gamma", 20, 5)]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "heliowatch.daemon.cli", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def disk(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    d = tmp_path_factory.mktemp("disk")
    data, hdr, truth = synth_magnetogram(T, SPECS, size=1024, seed=4)
    path = d / "disk.fits"
    write_fits(path, data, hdr)
    return path, truth


def test_detects_every_region_at_its_position_and_box(disk: tuple[Path, dict]) -> None:
    path, truth = disk
    frame = preprocess(path)
    assert frame.rot_k == 2 and frame.factor == 1  # HMI-like CROTA2 = 180 is turned north up
    regions = detect(frame)
    assert len(regions) == len(SPECS)
    for t in truth["regions"]:
        r = min(regions, key=lambda r: np.hypot(r.hgs_lat - t["hgs_lat"], r.hgs_lon - t["hgs_lon"]))
        assert abs(r.hgs_lat - t["hgs_lat"]) < 2 and abs(r.hgs_lon - t["hgs_lon"]) < 3
        # Boxes are in the file's pixel grid, like the truth's.
        x0, y0, x1, y1 = r.bbox_px
        tx0, ty0, tx1, ty1 = t["bbox_px"]
        inter = max(0, min(x1, tx1) - max(x0, tx0)) * max(0, min(y1, ty1) - max(y0, ty0))
        union = (x1 - x0) * (y1 - y0) + (tx1 - tx0) * (ty1 - ty0) - inter
        assert tx0 <= (x0 + x1) / 2 <= tx1 and ty0 <= (y0 + y1) / 2 <= ty1
        # Truth boxes cover the region's own field above 100 G (faint plage included); detection
        # sees the smoothed, noisy field, so boxes overlap rather than coincide.
        assert inter / union > 0.25
        assert r.usflux_mx == pytest.approx(t["usflux_mx"], rel=0.5)
        assert r.hgc_lon == pytest.approx((r.hgs_lon + truth["image"]["l0_deg"]) % 360, abs=0.01)


def test_rule_classes_on_the_synthetic_disk(disk: tuple[Path, dict]) -> None:
    frame = preprocess(disk[0])
    regions = detect(frame)
    classify_regions(frame, regions)
    by_pos = {(round(r.hgs_lat / 5), round(r.hgs_lon / 5)): r for r in regions}
    beta = min(regions, key=lambda r: abs(r.hgs_lat + 14) + abs(r.hgs_lon + 25))
    assert beta.mtwilson == "beta"
    # (Delta detection is asserted on real SHARP patches below; on this synthetic disk the rule
    # baseline misses the beta-delta, one of its known errors: docs/evaluation.md.)
    for r in by_pos.values():
        assert sum(r.class_probs.values()) == pytest.approx(1, abs=1e-3) and r.class_probs[r.mtwilson] == max(
            r.class_probs.values()
        )


def test_real_sharp_classes_against_noaa_srs() -> None:
    p = cli("classify", "--json", *map(str, sorted((demo_archive_path() / "sharp").glob("*.Br.fits"))))
    assert p.returncode == 0, p.stderr
    got = {(o["harpnum"], o["file"].split(".")[3][:8]): o["mtwilson"] for o in json.loads(p.stdout)}
    assert got[(377, "20110215")] == "beta-gamma-delta"  # SRS: Beta-Gamma-Delta
    assert got[(7115, "20170901")] == "alpha"  # SRS: Alpha
    assert got[(7115, "20170906")] == "beta-gamma-delta"  # SRS: Beta-Gamma-Delta


def test_tracking_keeps_ids_across_rotation(tmp_path: Path) -> None:
    tr = Tracker()
    ids = []
    for k, hours in enumerate((0, 12, 24)):
        t = T + dt.timedelta(hours=hours)
        specs = [RegionSpec(s.mtwilson, s.lat, s.lon + 13.2 * hours / 24) for s in SPECS[:2]]
        data, hdr, _ = synth_magnetogram(t, specs, size=512, seed=9, noise_seed=k)
        write_fits(tmp_path / f"f{k}.fits", data, hdr)
        frame = preprocess(tmp_path / f"f{k}.fits")
        regions = detect(frame)
        classify_regions(frame, regions)
        prior = tr.update(regions, frame.t_rec_utc)
        ids.append({r.track_id for r in regions})
        if k:
            assert prior[1] is not None and prior[2] is not None  # both regions recognised from the frame before
    # The two regions keep ids 1 and 2 over a day of differential rotation (the detector may add a
    # fragment of a region near the limb as a new track).
    assert all({1, 2} <= s for s in ids)


@pytest.mark.parametrize("case", ["not-magnetogram", "wrong-units", "all-nan", "truncated"])
def test_bad_input_is_one_line_and_no_product(tmp_path: Path, disk: tuple[Path, dict], case: str) -> None:
    src = disk[0]
    bad = tmp_path / "bad.fits"
    with fits.open(src) as h:
        data, hdr = h[1].data.astype(np.float32), h[1].header.copy()
    if case == "not-magnetogram":
        bad = demo_archive_path() / "sharp" / "hmi.sharp_cea_720s.377.20110215_020000_TAI.Br.fits"
    elif case == "wrong-units":
        hdr["BUNIT"] = "DN/s"
        fits.writeto(bad, data, hdr)
    elif case == "all-nan":
        fits.writeto(bad, np.full_like(data, np.nan), hdr)
    else:
        bad.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    with pytest.raises(UsageError):
        preprocess(bad)
    p = cli("detect", str(bad), "--json")
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and p.stdout == ""


def test_detect_cli_json_schema_and_quicklook(disk: tuple[Path, dict], tmp_path: Path) -> None:
    png = tmp_path / "q.png"
    p = cli("detect", str(disk[0]), "--json", "--quicklook", str(png))
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert {"regions", "model"} <= set(out) and len(out["regions"]) == len(SPECS)
    for r in out["regions"]:
        assert {"id", "bbox_px", "hgs_lat", "hgs_lon", "mtwilson", "class_probs", "confidence", "usflux_mx"} <= set(r)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 30_000


def test_match_position_rotates_and_respects_time() -> None:
    from heliowatch.models.regions.tracking import match_position

    cands = [
        {"hgs_lat": -20.0, "hgs_lon": 10.0, "t_rec_utc": "2011-02-15T00:00:00Z", "mtwilson": "beta-gamma-delta"},
        {"hgs_lat": 19.0, "hgs_lon": 43.0, "t_rec_utc": "2011-02-15T00:00:00Z", "mtwilson": "beta"},
    ]
    # Two hours later the southern region has rotated ~1.1 deg west.
    hit = match_position(-20.1, 11.2, "2011-02-15T02:00:00Z", cands)
    assert hit is not None and hit["mtwilson"] == "beta-gamma-delta"
    assert match_position(-20.1, 11.2, "2011-02-16T02:00:00Z", cands) is None  # too long ago
    assert match_position(0.0, -60.0, "2011-02-15T01:00:00Z", cands) is None  # nothing near


def test_cnn_classifier_runs_through_the_runtime(disk: tuple[Path, dict], tmp_path: Path) -> None:
    p = cli("detect", str(disk[0]), "--json", "--classifier", "cnn")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert "CNN (synthetic-trained)" in out["model"]["classifier"]
    for r in out["regions"]:
        assert sum(r["class_probs"].values()) == pytest.approx(1, abs=1e-3)
        assert r["measures"]["rules_class"]  # the rules' answer is kept beside the CNN's
    c = cli(
        "classify",
        "--json",
        "--classifier",
        "cnn",
        str(demo_archive_path() / "sharp" / "hmi.sharp_cea_720s.377.20110215_020000_TAI.Br.fits"),
    )
    assert c.returncode == 0, c.stderr
    assert json.loads(c.stdout)[0]["model"]["classifier"].startswith("region-classifier")


def test_detector_targets_decode_back_to_their_boxes() -> None:
    from heliowatch.models.region_detector import decode, targets

    boxes = [(100.0, 200.0, 160.0, 236.0), (300.5, 40.0, 321.0, 52.0), (8.0, 480.0, 30.0, 510.0)]
    heat, reg, on = targets(boxes)
    assert int(on.sum()) == 3 and heat.max() == 1.0
    out = np.concatenate([heat[None], reg], 0)
    got = sorted(decode(out, threshold=0.99), key=lambda d: d[1])
    assert len(got) == 3
    for d, b in zip(got, sorted(boxes), strict=True):
        assert d[0] == pytest.approx(1.0)
        assert d[1:] == pytest.approx(b, abs=1e-3)


def test_cnn_detector_finds_the_regions_of_an_unseen_synthetic_disk(disk: tuple[Path, dict]) -> None:
    """The synthetic-trained detector on a disk from outside its training dates and seeds."""
    path, truth = disk
    p = cli("detect", str(path), "--json", "--detector", "cnn")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert "region-detector" in out["model"]["detector"] and "synthetic-trained" in out["model"]["detector"]
    found = out["regions"]
    for t in truth["regions"]:
        d = [np.hypot(r["hgs_lat"] - t["hgs_lat"], r["hgs_lon"] - t["hgs_lon"]) for r in found]
        assert min(d) < 3, (t, found)
    assert len(found) <= len(truth["regions"]) + 1
    for r in found:
        assert 0.3 <= r["confidence"] <= 1 and r["mtwilson"] and r["usflux_mx"] > 1e21


def test_untrained_cnn_detector_is_a_clear_error(tmp_path: Path) -> None:
    from heliowatch.models.regions.loaders import region_detector
    from heliowatch.models.runtime.base import RuntimeOptions

    (tmp_path / "region-detector.card.json").write_text(json.dumps({"name": "region-detector", "training": {"kind": "none"}}))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("heliowatch.models.registry.weights_dir", lambda: tmp_path)
        with pytest.raises(UsageError, match="no trained weights"):
            region_detector("cnn", RuntimeOptions(export_dir=tmp_path))


def test_detect_names_regions_by_noaa_number_from_an_srs() -> None:
    frame = demo_archive_path() / "magnetogram" / "hmi.M_720s_nrt.20110215_020034_TAI.3.magnetogram.fits"
    p = cli("detect", str(frame), "--json", "--srs", str(demo_archive_path() / "srs"))
    assert p.returncode == 0, p.stderr
    regions = json.loads(p.stdout)["regions"]
    # The demo frame carries the regions of the SRS of that day: 11157, 11158, 11159, 11161.
    assert {11157, 11158, 11159, 11161} <= {r["noaa_ar"] for r in regions}
    big = max(regions, key=lambda r: r["usflux_mx"])
    assert big["noaa_ar"] == 11158 and big["srs"]["mtwilson"] == "beta-gamma"
    bad = cli("detect", str(frame), "--srs", "/nonexistent/srs")
    assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1 and "does not exist" in bad.stderr


def test_cutouts_are_real_maps_centred_on_their_regions(tmp_path: Path) -> None:
    import sunpy.map
    from sunpy.coordinates import frames

    frame = demo_archive_path() / "magnetogram" / "hmi.M_720s_nrt.20110215_020034_TAI.3.magnetogram.fits"
    p = cli("detect", str(frame), "--json", "--srs", str(demo_archive_path() / "srs"), "--cutouts", str(tmp_path))
    assert p.returncode == 0, p.stderr
    regions = json.loads(p.stdout)["regions"]
    assert len(list(tmp_path.glob("*.fits"))) == len(regions) == len(list(tmp_path.glob("*.png")))
    for r in regions:
        m = sunpy.map.Map(r["cutout"]["fits"])
        assert m.meta["hw_class"] == r["mtwilson"] and m.meta["hw_noaa"] == (r["noaa_ar"] or 0)
        # The cutout's own WCS puts its centre on the region (the box is centred, the position flux-weighted).
        c = m.wcs.pixel_to_world((m.data.shape[1] - 1) / 2, (m.data.shape[0] - 1) / 2)
        g = c.transform_to(frames.HeliographicStonyhurst(obstime=m.date))
        assert abs(g.lat.deg - r["hgs_lat"]) < 2.5 and abs(g.lon.deg - r["hgs_lon"]) < 2.5
        assert np.isfinite(m.data).mean() > 0.9 and np.nanmax(np.abs(m.data)) > 500  # the region's field, in G
