"""Magnetic-field measures, validated against real SHARP headers (HARP 377, HARP 7115)."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from heliowatch.models import measures
from heliowatch.pipelines.fitsio import read_fits
from heliowatch.pipelines.standin.archive import demo_archive_path
from tests.conftest import SHARED_DATA

SHARED = SHARED_DATA / "sharp-cutouts"
DEMO = demo_archive_path() / "sharp"
H377 = "hmi.sharp_cea_720s.377.20110215_020000_TAI"


@pytest.fixture(scope="module")
def harp377(shared_data: Path) -> dict:
    conf = SHARED / "harp377-ar11158" / f"{H377}.conf_disambig.fits"
    if not conf.exists():  # pragma: no cover - ../shared is beside the checkout in CI and here
        pytest.fail(f"{conf} missing: ../shared/data must be beside the repository")
    br = read_fits(DEMO / f"{H377}.Br.fits")
    return {
        "br": br.data.astype(float),
        "hdr": br,
        "bitmap": read_fits(DEMO / f"{H377}.bitmap.fits").data,
        "conf": read_fits(conf).data,
        "los": read_fits(DEMO / f"{H377}.magnetogram.fits").data.astype(float),
    }


def test_usflux_matches_the_sharp_header(harp377: dict) -> None:
    h = harp377["hdr"]
    mask = (harp377["bitmap"] >= 30) & (harp377["conf"] >= 70)
    flux = measures.unsigned_flux(harp377["br"], measures.cea_pixel_area_cm2(h.keyword("CDELT1")), mask=mask)
    # 2.7148e22 vs 2.71476e22: 0.01 %.
    assert flux == pytest.approx(h.keyword("USFLUX"), rel=0.005)


def test_area_acr_matches_the_sharp_header(harp377: dict) -> None:
    h = harp377["hdr"]
    area = measures.total_area_uhem(measures.cea_pixel_area_cm2(h.keyword("CDELT1")), harp377["bitmap"] == 34)
    # 1091.7 vs 1101.3 uHem: 0.9 % (SHARP de-projects the LOS-based mask slightly differently).
    assert area == pytest.approx(h.keyword("AREA_ACR"), rel=0.02)


def test_meangbz_matches_the_sharp_header(harp377: dict) -> None:
    mask = (harp377["bitmap"] >= 30) & (harp377["conf"] >= 70)
    assert measures.sharp_meangbz(harp377["br"], mask=mask) == pytest.approx(harp377["hdr"].keyword("MEANGBZ"), rel=0.005)


def test_r_value_against_sharp_headers() -> None:
    """SHARP computes R from the LOS field; HARP 7115's record carries only Br.

    At that position (LON_FWT 36, LAT_FWT -9.5) mu ~ 0.80, so LOS ~ 0.8 Br and log10 R from
    Br exceeds the LOS value by ~ -log10(0.8) = 0.1 dex. The tolerance, 0.15 dex, is that
    plus the rebinning's sensitivity to the patch edge.
    """
    late = read_fits(DEMO / "hmi.sharp_cea_720s.7115.20170906_120000_TAI.Br.fits")
    early = read_fits(DEMO / "hmi.sharp_cea_720s.7115.20170901_220000_TAI.Br.fits")
    r_late = measures.schrijver_r(late.data.astype(float))
    assert r_late == pytest.approx(late.keyword("R_VALUE"), abs=0.15)  # 5.37 vs 5.305
    # The alpha-class, pre-flare region has a far weaker PIL than the X-flaring delta region.
    assert measures.schrijver_r(early.data.astype(float)) < r_late - 1.5
    assert early.keyword("R_VALUE") < late.keyword("R_VALUE") - 1.5


def test_real_delta_region_is_detected_and_quiet_field_is_not(harp377: dict) -> None:
    d = measures.delta_spots(harp377["br"], 0.03)
    assert d.is_delta and d.min_separation_deg < 2.0  # NOAA 11158 was Beta-Gamma-Delta that day
    quiet = np.random.default_rng(0).normal(0, 50, (200, 200))
    assert not measures.delta_spots(quiet, 0.03).is_delta


def _gauss(yy: np.ndarray, xx: np.ndarray, y: float, x: float, sigma: float) -> np.ndarray:
    return np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * sigma**2))


def test_delta_needs_a_shared_penumbra_not_just_close_umbrae(harp377: dict) -> None:
    """Mt. Wilson's delta: opposite umbrae in one penumbra. Two separate spots 1.6 deg apart
    across quiet field are close enough by distance alone, but are not a delta."""
    yy, xx = np.mgrid[0:100, 0:160] * 0.03  # degrees
    umbrae = 2500 * _gauss(yy, xx, 1.5, 2.4 - 0.8, 0.2) - 2500 * _gauss(yy, xx, 1.5, 2.4 + 0.8, 0.2)
    # One penumbra around both, its field reversing sign across the inversion line at x = 2.4.
    shared = umbrae + 900 * np.tanh((2.4 - xx) / 0.05) * (np.hypot(yy - 1.5, (xx - 2.4) / 1.6) < 1.0)
    # Two spots, each with its own penumbra, quiet (< 50 G) field between them.
    apart = umbrae + 900 * (np.hypot(yy - 1.5, xx - 1.6) < 0.45) - 900 * (np.hypot(yy - 1.5, xx - 3.2) < 0.45)
    for field in (shared, apart):
        assert measures.delta_spots(field, 0.03, umbra_g=1300).is_delta  # distance alone: both
    assert measures.delta_spots(shared, 0.03, umbra_g=1300, penumbra_g=400).is_delta
    assert not measures.delta_spots(apart, 0.03, umbra_g=1300, penumbra_g=400).is_delta
    # The real delta of NOAA 11158 shares its penumbra.
    assert measures.delta_spots(harp377["br"], 0.03, umbra_g=1300, min_umbra_px=6, penumbra_g=400).is_delta


def test_polarity_blobs_and_imbalance_on_real_patch(harp377: dict) -> None:
    area = measures.cea_pixel_area_cm2(0.03)
    pos, neg = measures.polarity_blobs(harp377["br"], area, threshold_g=500, min_flux_mx=1e21)
    assert pos >= 2 and neg >= 2  # a quadrupolar, beta-gamma-delta region
    mask = (harp377["bitmap"] >= 30) & (harp377["conf"] >= 70)
    assert abs(measures.flux_imbalance(harp377["br"], area, mask=mask)) < 0.2


def test_pil_length_of_a_straight_line() -> None:
    f = np.zeros((100, 100))
    f[:, :50] = 500.0
    f[:, 50:] = -500.0
    # A 100-pixel straight PIL at 0.5 Mm/px is 50 Mm (within the staircase correction).
    assert measures.pil_length_mm(f, 0.5) == pytest.approx(50 * math.pi / 4, rel=0.01)
    assert measures.pil_length_mm(np.full((50, 50), 300.0), 0.5) == 0.0


def test_disk_geometry_centre_limb_and_areas() -> None:
    n = 256
    cdelt = 0.504365 * 4096 / n
    g = measures.disk_geometry((n, n), cdelt_arcsec=cdelt, crpix=((n + 1) / 2,) * 2, dsun_m=1.496e11, b0_deg=0.0)
    c = n // 2
    assert float(np.nanmax(g.mu)) == pytest.approx(1.0, abs=1e-3)
    assert abs(float(g.lat[c, c])) < 0.5 and abs(float(g.lon[c, c])) < 0.5
    assert np.isnan(g.mu[0, 0])
    # The whole visible hemisphere, minus the last partial pixels at the limb: ~ 1e6 uHem.
    total = np.nansum(g.area_cm2[g.mu > 0.05]) / (2 * math.pi * (measures.RSUN_REF_M * 100) ** 2)
    assert 0.9 < total < 1.0
    # Pixel areas grow as 1/mu.
    m = g.mu > 0.3
    assert np.allclose(g.area_cm2[m] * g.mu[m], g.area_cm2[c, c], rtol=0.01)


def test_bin_mean_drops_the_ragged_edge_and_leaves_off_limb_blocks_nan() -> None:
    a = np.arange(7 * 9, dtype=np.float64).reshape(7, 9)
    b = measures.bin_mean(a, 3)
    assert b.shape == (2, 3)
    assert b[1, 2] == a[3:6, 6:9].mean()
    a[:3, :3] = np.nan
    a[4, 4] = np.nan
    c = measures.bin_mean(a, 3, ignore_nan=True)  # no RuntimeWarning: pytest runs with -W error
    assert np.isnan(c[0, 0])
    assert c[1, 1] == np.nanmean(a[3:6, 3:6])


def test_delta_search_survives_a_map_scaled_by_1e9() -> None:
    """A mis-scaled (or fuzzed-BSCALE) map makes every noise pixel an 'umbra': the search stays bounded."""
    code = (
        "import numpy as np\n"
        "from heliowatch.models import measures\n"
        "f = np.random.default_rng(0).normal(0, 20, (1024, 1024)) * 1e9\n"
        "r = measures.delta_spots(f, 0.03, penumbra_g=500)\n"
        "print(r.is_delta, len(r.pairs) > 0)\n"
    )
    # A hang guard, not a speed figure: before the bounded search this ran for many minutes.
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == ["True", "True"]


def test_delta_pairs_only_from_the_largest_umbrae() -> None:
    """Two real opposite umbrae 1 deg apart are found among many tiny specks."""
    f = np.zeros((300, 300))
    f[100:120, 100:120] = 2500.0
    f[100:120, 145:165] = -2500.0  # 25 px * 0.04 deg = 1.0 deg apart
    rng = np.random.default_rng(1)
    for y, x in rng.integers(200, 298, size=(300, 2)):
        f[y : y + 2, x : x + 2] = 1500.0  # one polarity: no speck pairs with another
    d = measures.delta_spots(f, 0.04, max_umbrae=5)
    assert d.is_delta
    assert d.min_separation_deg == pytest.approx(26 * 0.04, abs=0.05)
