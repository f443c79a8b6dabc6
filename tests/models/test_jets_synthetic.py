"""Jet science inputs: the real Solar Jet Hunter catalogue, coordinates, the synthetic 304 A generator, real-data loaders."""

from __future__ import annotations

import datetime as dt
import itertools
import math
import time
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from sunpy.coordinates import frames as sframes

from heliowatch.models.core.errors import UsageError
from heliowatch.models.jets.evaluate import extend_sequence, load_aia_sequence, load_sjh_animation
from heliowatch.models.jets.frames import (
    PooledFrame,
    carrington_lon,
    hgs_to_hpc,
    hpc_to_hgs,
    limb_position_angle,
    pool3,
    robust_normalise,
)
from heliowatch.models.jets.stats import JetStats, load_sjh
from heliowatch.models.synthetic.jets import JetSpec, inject_jet, synth_full_disk, synth_jet_cutout

T0 = dt.datetime(2013, 5, 4, 12, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def catalogue(shared_data: Path) -> JetStats:
    return JetStats.from_path(shared_data / "sjh-jet-catalog" / "Jet_clusters_3.0_2.0_paperID.csv")


def _frame(b0: float = 0.0) -> PooledFrame:
    return PooledFrame(
        data=np.zeros((10, 10), np.float32),
        t_unix=0.0,
        arcsec_per_px=1.8,
        x0_arcsec=0.0,
        y0_arcsec=0.0,
        rsun_arcsec=959.0,
        b0_deg=b0,
        l0_deg=100.0,
        dsun_m=1.5e11,
    )


# -- the real catalogue -------------------------------------------------------------------------


def test_catalogue_is_read_in_physical_units(catalogue: JetStats) -> None:
    t = catalogue.table
    assert len(t) == 883
    # Heights and widths are arcsec (the authors convert with 0.73 Mm/"), velocities arcsec/s (x 725 = km/s).
    assert 80 < t["height_arcsec"].median() < 120
    assert 100 < t["speed_km_s"].median() < 160
    assert t["speed_km_s"].notna().sum() == 371
    assert 10 < t["duration_s"].median() / 60 < 15
    s = catalogue.summary()
    # More than half of the jets' bases lie at or beyond the limb: the detectors must work there.
    assert s["frac_base_at_or_beyond_0p95"] > 0.55
    assert s["frac_base_beyond_limb"] > 0.5


def test_samples_are_real_catalogue_rows(catalogue: JetStats) -> None:
    t = catalogue.table
    rng = np.random.default_rng(3)
    measured = set(np.round(t["speed_km_s"].dropna(), 6))
    for _ in range(40):
        row = catalogue.sample(rng)
        hit = t[np.isclose(t["height_arcsec"], row["height_arcsec"]) & np.isclose(t["duration_s"], row["duration_s"])]
        assert len(hit) >= 1
        assert round(row["speed_km_s"], 6) in measured  # borrowed from a measured row when the row has none
    limb = [catalogue.sample(rng, limb=True)["r_over_rsun"] for _ in range(20)]
    assert min(limb) >= 0.95


def test_load_sjh_rejects_other_files(tmp_path: Path) -> None:
    p = tmp_path / "x.csv"
    p.write_text("a,b\n1,2\n")
    with pytest.raises(UsageError, match="not the Solar Jet Hunter catalogue"):
        load_sjh(p)


# -- coordinates ----------------------------------------------------------------------------------


def test_hpc_to_hgs_agrees_with_sunpy_and_is_nan_off_disk() -> None:
    f = _frame(b0=-6.5)
    obs = SkyCoord(0 * u.deg, f.b0_deg * u.deg, f.dsun_m * u.m, frame=sframes.HeliographicStonyhurst, obstime="2022-04-02")
    pts = [(0.0, 0.0), (500.0, -300.0), (-880.0, 250.0), (100.0, 930.0)]
    for tx, ty in pts:
        c = SkyCoord(
            tx * u.arcsec, ty * u.arcsec, frame=sframes.Helioprojective(observer=obs, obstime="2022-04-02", rsun=696000 * u.km)
        )
        h = c.transform_to(sframes.HeliographicStonyhurst(obstime="2022-04-02", rsun=696000 * u.km))
        lat, lon = hpc_to_hgs(tx, ty, f)
        assert lat == pytest.approx(h.lat.deg, abs=0.01)
        assert lon == pytest.approx(h.lon.deg, abs=0.01)
        bx, by = hgs_to_hpc(lat, lon, f)
        assert (bx, by) == (pytest.approx(tx, abs=0.01), pytest.approx(ty, abs=0.01))
    lat, lon = hpc_to_hgs(700.0, 700.0, f)  # r = 990" > R_sun: beyond the limb
    assert math.isnan(lat) and math.isnan(lon)
    assert float(carrington_lon(30.0, f)) == pytest.approx(130.0)


def test_position_angles_count_from_north_through_east() -> None:
    assert float(limb_position_angle(0.0, 900.0)) == pytest.approx(0.0)
    assert float(limb_position_angle(-900.0, 0.0)) == pytest.approx(90.0)  # east limb is to the left
    assert float(limb_position_angle(0.0, -900.0)) == pytest.approx(180.0)
    assert float(limb_position_angle(900.0, 0.0)) == pytest.approx(270.0)


def test_pool3_and_robust_normalise() -> None:
    a = np.arange(500 * 500, dtype=np.float32).reshape(500, 500)
    p = pool3(a)
    assert p.shape == (166, 166)
    assert p[0, 0] == pytest.approx(a[:3, :3].mean())
    cube = np.random.default_rng(0).uniform(20, 220, (4, 30, 30)).astype(np.float32)
    n = robust_normalise(cube)
    assert float(np.median(n[n > 0])) == pytest.approx(50.0, rel=0.05)
    with pytest.raises(UsageError):
        robust_normalise(np.zeros((5, 5)))


# -- synthetic data --------------------------------------------------------------------------------


def test_cutout_jet_is_where_the_truth_says(catalogue: JetStats) -> None:
    frames, truth = synth_jet_cutout(T0, jet=True, stats=catalogue, seed=5)
    assert len(frames) == 30 and frames[0].shape == (166, 166)
    assert all(b.t_unix - a.t_unix == pytest.approx(24.0) for a, b in itertools.pairwise(frames))
    j = truth["jets"][0]
    bx, by = j["base_px"]
    assert 0 <= bx < 166 and 0 <= by < 166
    # The base's helioprojective position and the pixel position agree.
    tx, ty = frames[0].pixel_to_hpc(bx, by)
    assert (float(tx), float(ty)) == (pytest.approx(j["base_hpc_arcsec"][0]), pytest.approx(j["base_hpc_arcsec"][1]))
    # At the jet's peak the brightening lies along the true direction, not opposite it.
    k = min(j["frames_visible"], key=lambda i: abs(frames[i].t_unix - j["peak_t"]))
    diff = frames[k].data - frames[0].data
    pa = math.radians(j["direction_deg"])
    ux, uy = -math.sin(pa), math.cos(pa)
    s = 0.5 * min(j["length_arcsec"], 60.0) / 1.8

    def at(sign: float) -> float:
        x, y = round(bx + sign * s * ux), round(by + sign * s * uy)
        return float(diff[max(y - 1, 0) : y + 2, max(x - 1, 0) : x + 2].mean())

    assert at(+1) > at(-1) + 10.0


def test_cutouts_sit_at_catalogue_places(catalogue: JetStats) -> None:
    rs = []
    for seed in range(30):
        _, truth = synth_jet_cutout(T0, jet=False, stats=catalogue, seed=seed, n_frames=2)
        assert truth["jets"] == []
        cx, cy = truth["centre_hpc_arcsec"]
        rs.append(math.hypot(cx, cy) / truth["rsun_arcsec"])
    # As in the catalogue, most fields hold the limb (within a cutout's half-width of it).
    near_limb = np.mean([abs(r - 1) < 0.16 for r in rs])
    assert near_limb > 0.4


def test_full_disk_is_quick_and_has_a_limb_and_the_jets(catalogue: JetStats) -> None:
    t = time.perf_counter()
    frames, truth = synth_full_disk(T0, n_jets=3, seed=2, n_frames=6, stats=catalogue)
    assert time.perf_counter() - t < 20.0
    f = frames[0]
    assert f.shape == (1365, 1365)
    r = f.radius_map()
    disk, corona = np.median(f.data[r < 0.9]), np.median(f.data[(r > 1.15) & (r < 1.25)])
    assert disk > 10 * corona > 0
    assert len(truth["jets"]) == 3
    for j in truth["jets"]:
        x, y = j["base_px"]
        assert 0 <= x < 1365 and 0 <= y < 1365


def test_inject_jet_keeps_the_real_background(shared_data: Path) -> None:
    real = extend_sequence(load_aia_sequence(shared_data / "aia304-sequence-20220402" / "aia_diff"))
    f0 = real[0]
    base = f0.pixel_to_hpc(60, 70)
    spec = JetSpec(
        base_hpc_arcsec=(float(base[0]), float(base[1])),
        direction_deg=270.0,
        speed_km_s=150.0,
        height_arcsec=60.0,
        fwhm_arcsec=8.0,
        duration_s=600.0,
        start_t=f0.t_unix + 100,
        contrast=1.0,
    )
    out, truth = inject_jet(real, spec, seed=1)
    assert truth["jets"][0]["frames_visible"]
    j = truth["jets"][0]
    k = min(j["frames_visible"], key=lambda i: abs(out[i].t_unix - j["peak_t"]))
    assert np.array_equal(out[k].data[:, :40], real[k].data[:, :40])  # far from the jet: untouched real pixels
    assert out[k].data[68:73, 70:85].mean() > real[k].data[68:73, 70:85].mean() + 2.0
    assert out[0].data is not real[0].data


def test_real_loaders(shared_data: Path) -> None:
    aia = load_aia_sequence(shared_data / "aia304-sequence-20220402" / "aia_diff")
    assert len(aia) == 8 and aia[0].arcsec_per_px == pytest.approx(1.8, abs=0.01)
    assert aia[0].x0_arcsec == pytest.approx(789.5, abs=1.0)  # the FOV starts at x = 789"
    ext = extend_sequence(aia, n_frames=30)
    assert len(ext) == 30 and ext[14].data is aia[0].data and ext[8].data is aia[6].data
    anim = load_sjh_animation(shared_data / "sjh-jet-animations" / "fits" / "70446299")
    assert len(anim) == 15 and "rendered" in anim[0].flags
    assert 1.5 < anim[0].arcsec_per_px < 2.0
    steps = np.diff([f.t_unix for f in anim])
    assert np.all((steps > 15) & (steps < 40))
