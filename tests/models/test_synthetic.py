"""The synthetic Sun: physics (flux balance, Hale/Joy, projection, jets), formats, determinism, errors."""

from __future__ import annotations

import datetime as dt
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from heliowatch.models import measures
from heliowatch.models.synthetic.aia import synth_aia_sequence
from heliowatch.models.synthetic.bipole import synth_bipole
from heliowatch.models.synthetic.emergence import synth_emergence
from heliowatch.models.synthetic.magnetogram import RegionSpec, synth_magnetogram
from heliowatch.models.synthetic.sharp import synth_sharp

T = dt.datetime(2014, 1, 7, 12, 0, tzinfo=dt.UTC)  # cycle 24


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "heliowatch.daemon.cli", *args], capture_output=True, text=True, timeout=300, cwd=cwd
    )


def centroid(img: np.ndarray, sel: np.ndarray) -> tuple[float, float]:
    yy, xx = np.nonzero(sel)
    w = np.abs(img[sel])
    return float(np.average(xx, weights=w)), float(np.average(yy, weights=w))


@pytest.mark.parametrize("cls", ["alpha", "beta", "gamma", "beta-gamma", "beta-delta", "beta-gamma-delta", "gamma-delta"])
def test_every_class_is_flux_balanced(cls: str) -> None:
    _, _, truth = synth_magnetogram(T, [RegionSpec(cls, -12, 10)], size=512, seed=3)
    (r,) = truth["regions"]
    assert abs(r["flux_imbalance"]) < 0.1
    assert 5e21 < r["usflux_mx"] < 2e23  # a plausible active region
    x0, y0, x1, y1 = r["bbox_px"]
    assert 0 <= x0 < x1 <= 512 and 0 <= y0 < y1 <= 512


@pytest.mark.parametrize(("lat", "leading"), [(18.0, -1), (-18.0, 1)])
def test_hale_polarity_and_joy_tilt_by_hemisphere(lat: float, leading: int) -> None:
    data, _, truth = synth_magnetogram(
        T, [RegionSpec("beta", lat, 0.0, 1.2)], size=1024, seed=11, crota=0.0, network=False, noise_g=0
    )
    (r,) = truth["regions"]
    assert r["leading_polarity"] == leading
    x0, y0, x1, y1 = r["bbox_px"]
    box = np.nan_to_num(data[y0:y1, x0:x1])
    lead_c = centroid(box, leading * box > 1000)
    foll_c = centroid(box, -leading * box > 1000)
    assert lead_c[0] > foll_c[0]  # the leading polarity is to the west (+x when north is up)
    # Joy's law: the leading umbra is closer to the equator (the image's row of latitude 0 lies below for north).
    if lat > 0:
        assert lead_c[1] < foll_c[1]
    else:
        assert lead_c[1] > foll_c[1]


def test_cycle_25_reverses_hale_polarity() -> None:
    _, _, t24 = synth_magnetogram(T, [RegionSpec("beta", 15, 0)], size=256, seed=1)
    _, _, t25 = synth_magnetogram(dt.datetime(2023, 6, 1, tzinfo=dt.UTC), [RegionSpec("beta", 15, 0)], size=256, seed=1)
    assert t24["regions"][0]["leading_polarity"] == -t25["regions"][0]["leading_polarity"]


def test_region_towards_the_limb_shrinks_as_mu() -> None:
    counts, mus = [], []
    for lon in (0.0, 60.0):
        data, hdr, truth = synth_magnetogram(
            T, [RegionSpec("beta", 0.0, lon)], size=1024, seed=5, crota=0.0, network=False, noise_g=0
        )
        geo = measures.disk_geometry(
            data.shape,
            cdelt_arcsec=hdr["CDELT1"],
            crpix=(hdr["CRPIX1"], hdr["CRPIX2"]),
            dsun_m=hdr["DSUN_OBS"],
            b0_deg=hdr["CRLT_OBS"],
        )
        br = np.abs(np.nan_to_num(data / geo.mu))
        counts.append(int((br > 200).sum()))  # sky-plane area of the same radial-field footprint
        mus.append(truth["regions"][0]["mu"])
        # The de-projected flux is the same wherever the region sits.
        flux = measures.unsigned_flux(np.nan_to_num(data / geo.mu), np.nan_to_num(geo.area_cm2))
        assert flux == pytest.approx(truth["regions"][0]["usflux_mx"], rel=0.05)
    assert counts[1] / counts[0] == pytest.approx(mus[1] / mus[0], rel=0.1)


def test_hmi_map_wcs_places_regions_inside_their_truth_boxes(tmp_path: Path) -> None:
    import astropy.units as u
    import sunpy.map
    from astropy.coordinates import SkyCoord
    from sunpy.coordinates import frames

    out = tmp_path / "m.fits"
    p = cli(
        "synth", "magnetogram", "--out", str(out), "--size", "512", "--region", "beta:15:-30", "--region", "beta-delta:-20:40"
    )
    assert p.returncode == 0, p.stderr
    m = sunpy.map.Map(out)
    assert type(m).__name__ == "HMIMap"
    assert m.meta["crota2"] == 180.0 and m.meta["t_rec"].endswith("_TAI")
    assert m.meta["quality"] == 0 and m.meta["rsun_obs"] > 950
    assert np.isnan(m.data[0, 0]) and np.isfinite(m.data[256, 256])
    quiet = m.data[200:300, 200:300]
    assert 8 < float(np.nanstd(quiet[np.abs(quiet) < 60])) < 40  # ~10 G noise + network
    truth = json.loads((tmp_path / "m.truth.json").read_text())
    assert truth["synthetic"] is True
    for r in truth["regions"]:
        c = SkyCoord(
            r["hgs_lon"] * u.deg,
            r["hgs_lat"] * u.deg,
            frame=frames.HeliographicStonyhurst,
            obstime=m.date,
            observer=m.observer_coordinate,
        )
        x, y = m.wcs.world_to_pixel(c)
        x0, y0, x1, y1 = r["bbox_px"]
        assert x0 <= x <= x1 and y0 <= y <= y1, (r, x, y)
        assert r["hgc_lon"] == pytest.approx((r["hgs_lon"] + m.meta["crln_obs"]) % 360)


def test_deterministic_by_seed() -> None:
    a, _, _ = synth_magnetogram(T, [RegionSpec("gamma", 10, 10)], size=256, seed=7)
    b, _, _ = synth_magnetogram(T, [RegionSpec("gamma", 10, 10)], size=256, seed=7)
    c, _, _ = synth_magnetogram(T, [RegionSpec("gamma", 10, 10)], size=256, seed=8)
    assert np.array_equal(a, b, equal_nan=True)
    assert not np.array_equal(a, c, equal_nan=True)
    s1, _ = synth_sharp(T, "beta", -10, 0, seed=2)
    s2, _ = synth_sharp(T, "beta", -10, 0, seed=2)
    assert np.array_equal(s1["Br"][0], s2["Br"][0])


def test_umbral_fields_are_solar(tmp_path: Path) -> None:
    data, _, _ = synth_magnetogram(T, [RegionSpec("beta-gamma-delta", 0, 0, 1.2)], size=1024, seed=2)
    peak = float(np.nanmax(np.abs(data)))
    assert 1500 < peak < 3700


def test_sharp_patch_keywords_and_delta(tmp_path: Path) -> None:
    import sunpy.map

    segs, truth = synth_sharp(T, "beta-delta", -15, 20, seed=4)
    k = truth["keywords"]
    assert k["USFLUX"] == pytest.approx(truth["usflux_true_mx"], rel=0.25)
    assert k["LAT_FWT"] == pytest.approx(-15, abs=2) and k["LON_FWT"] == pytest.approx(20, abs=3)
    assert set(np.unique(segs["bitmap"][0])) <= {1, 33, 34}
    assert measures.delta_spots(segs["Br"][0], 0.03).is_delta
    plain, _ = synth_sharp(T, "beta", -15, 20, seed=4)
    assert not measures.delta_spots(plain["Br"][0], 0.03).is_delta
    p = cli("synth", "sharp", "--out", str(tmp_path), "--class", "alpha", "--harpnum", "9001")
    assert p.returncode == 0, p.stderr
    files = sorted(f.name for f in tmp_path.glob("*.fits"))
    assert files[0].startswith("hmi.sharp_cea_720s_nrt.9001.20140107_120035_TAI.")
    assert {f.split(".")[-2] for f in files} == {"Br", "bitmap", "conf_disambig", "magnetogram"}
    m = sunpy.map.Map(next(tmp_path.glob("*.Br.fits")))
    assert m.meta["harpnum"] == 9001 and m.meta["usflux"] > 1e21


def test_sharp_patch_is_served_by_the_standin(tmp_path: Path, standin_factory) -> None:
    from tests.conftest import drms_client

    assert cli("synth", "sharp", "--out", str(tmp_path), "--class", "beta", "--harpnum", "9002").returncode == 0
    srv = standin_factory(tmp_path)
    df = drms_client(srv.url).query("hmi.sharp_cea_720s_nrt[][$]", key="HARPNUM,USFLUX,R_VALUE,NOAA_AR")
    assert int(df["HARPNUM"].iloc[0]) == 9002 and df["USFLUX"].iloc[0] > 1e21


def test_jet_rises_outward_from_its_base() -> None:
    cube, headers, truth = synth_aia_sequence(T, jet=True, seed=12, distractors=False)
    assert cube.shape == (30, 166, 166) and cube.dtype == np.float32
    jp = truth["jet_params"]
    assert 100 <= jp["speed_km_s"] <= 500
    ux, uy = math.cos(math.radians(jp["direction_deg"])), math.sin(math.radians(jp["direction_deg"]))
    yy, xx = np.mgrid[0:166, 0:166]
    s = (xx - jp["base_x"]) * ux + (yy - jp["base_y"]) * uy
    k0 = truth["frames_with_jet"][0]
    pre = cube[max(k0 - 1, 0)]
    fronts = []
    for k in truth["frames_with_jet"][:4]:
        diff = cube[k] - pre
        sel = diff > 0.3 * diff.max()
        fronts.append(float(s[sel].max()))
    assert fronts == sorted(fronts) and fronts[-1] > fronts[0] + 2  # the front moves away from the base
    assert headers[0]["WAVELNTH"] == 304 and headers[0]["BUNIT"] == "DN/s"
    assert headers[1]["FSN"] > headers[0]["FSN"]


def test_no_jet_sequence_and_distractors() -> None:
    cube, _, truth = synth_aia_sequence(T, jet=False, seed=3)
    assert truth["jet"] is False and truth["frames_with_jet"] == [] and truth["jet_params"] is None
    assert {d["kind"] for d in truth["distractors"]} >= {"bright_point", "loop"}
    assert float(cube.min()) > -20 and 20 < float(np.median(cube)) < 200


def test_aia_sequence_file_opens_as_30_maps(tmp_path: Path) -> None:
    import sunpy.map

    p = cli("synth", "aia-sequence", "--out", str(tmp_path / "seq.fits"), "--seed", "1")
    assert p.returncode == 0, p.stderr
    maps = sunpy.map.Map(tmp_path / "seq.fits")
    assert len(maps) == 30 and type(maps[0]).__name__ == "AIAMap"
    assert json.loads((tmp_path / "seq.truth.json").read_text())["jet"] is True
    q = cli("synth", "aia-sequence", "--out", str(tmp_path / "frames"), "--no-jet")
    assert q.returncode == 0, q.stderr
    assert len(list((tmp_path / "frames").glob("aia.lev1_nrt2.*.image_lev1.fits"))) == 30


def test_emergence_grows_only_in_emerging_patches() -> None:
    em, _, t_em = synth_emergence(T, emerging=True, seed=3)
    ctl, _, t_ctl = synth_emergence(T, emerging=False, seed=3)
    assert em.shape == (12, 85, 85)
    k = t_em["emerge_frame"]
    cx, cy = (round(v) for v in t_em["centre_px"])
    core = (slice(cy - 10, cy + 10), slice(cx - 10, cx + 10))
    flux = [float(np.abs(f[core]).sum()) for f in em]
    assert flux[-1] > 3 * flux[k - 1]
    assert max(float(np.abs(f[core]).sum()) for f in ctl) < 0.5 * flux[-1]
    assert t_ctl["emerging"] is False


def test_bipole_is_exactly_two_uniform_disks() -> None:
    img, _, truth = synth_bipole(radius_px=6, field_g=1200, separation_px=30, order="negative-leading", size=64)
    assert set(np.unique(img)) == {-1200.0, 0.0, 1200.0}
    lx, ly = truth["leading_px"]
    assert img[round(ly), round(lx)] == -1200.0
    assert (img > 0).sum() == (img < 0).sum() == truth["pixels_per_disk"]
    assert truth["usflux_mx"] == pytest.approx(2 * truth["pixels_per_disk"] * 1200 * measures.cea_pixel_area_cm2(0.03))


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["bipole", "--radius", "0"], "radius must be > 0"),
        (["bipole", "--radius", "10", "--separation", "12"], "would overlap"),
        (["magnetogram", "--size", "256", "--region", "beta:10:95"], "behind the limb"),
        (["magnetogram", "--size", "256", "--region", "zeta:10:10"], "unknown Mt. Wilson class"),
        (["magnetogram", "--size", "256", "--region", "beta:10"], "CLASS:LAT:LON"),
        (["sharp", "--class", "beta", "--lon", "120"], "behind the limb"),
        (["magnetogram", "--time", "yesterday"], "ISO 8601"),
    ],
)
def test_bad_parameters_give_one_line(tmp_path: Path, args: list[str], fragment: str) -> None:
    p = cli("synth", args[0], "--out", str(tmp_path / "x.fits"), *args[1:])
    assert p.returncode == 2
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert fragment in p.stderr and "Traceback" not in p.stderr


@pytest.mark.slow
def test_gallery_renders(tmp_path: Path) -> None:
    p = cli("synth", "gallery", "--out", str(tmp_path))
    assert p.returncode == 0, p.stderr
    names = sorted(f.name for f in tmp_path.glob("*.png"))
    assert names == ["bipoles.png", "classes.png", "emergence.png", "fulldisk.png", "jet_strip.png", "sharp_vs_real.png"]
    assert all(f.stat().st_size > 10_000 for f in tmp_path.glob("*.png"))
