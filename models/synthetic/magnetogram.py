"""Synthetic full-disk HMI line-of-sight magnetograms with exact ground truth.

The picture: a radial photospheric field ``Br`` (quiet-Sun network everywhere, active regions
where asked) seen along the line of sight, ``B_los = Br * mu``, plus ~10 G of noise, NaN off
the disk. Geometry is exact (ray-sphere intersection from SDO's distance on that date, B0
tilt), and the header carries JSOC's keywords so ``sunpy.map.Map`` reads it as an
``HMIMap``. Like real HMI frames the image is stored with solar north down (CROTA2 = 180)
unless asked otherwise, so pipelines must rotate it.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.time import Time
from scipy import ndimage

from heliowatch.models.core.times import SystemClock, iso_utc
from heliowatch.models.measures import disk_geometry
from heliowatch.models.synthetic.ephemeris import ephemeris, slot_t_rec
from heliowatch.models.synthetic.regions import SYNTH_CLASSES, local_offsets, make_region, render

__all__ = ["HMI_CDELT_4096", "RegionSpec", "hmi_header", "random_regions", "saturate", "synth_magnetogram", "tai_string"]

#: HMI's plate scale at full resolution, arcsec/pixel.
HMI_CDELT_4096 = 0.504365


@dataclass(frozen=True)
class RegionSpec:
    """Where to put a region of which class (Stonyhurst degrees)."""

    mtwilson: str
    lat: float
    lon: float
    size: float = 1.0


def saturate(br: np.ndarray, b_sat: float = 3500.0) -> np.ndarray:
    """Smoothly limit |B| below ``b_sat``: overlapping umbrae must not exceed what the Sun shows."""
    return b_sat * np.tanh(br / b_sat)


def tai_string(t: dt.datetime) -> str:
    """JSOC TAI string (``2014.01.07_12:00:35_TAI``) of a UTC time."""
    tai = Time(t.replace(tzinfo=None), scale="utc").tai
    date, clock = tai.isot.split("T")
    return f"{date.replace('-', '.')}_{clock[:8]}_TAI"


def hmi_header(t_rec: dt.datetime, n: int, *, crota: float, quality: int = 0) -> fits.Header:
    """JSOC ``hmi.M_720s_nrt``-like header for an ``n`` x ``n`` frame at ``t_rec`` (UTC)."""
    eph = ephemeris(t_rec)
    cdelt = HMI_CDELT_4096 * 4096 / n
    h = fits.Header()
    h["TELESCOP"] = "SDO/HMI"
    h["INSTRUME"] = "HMI_FRONT2"
    h["CONTENT"] = "MAGNETOGRAM"
    h["WAVELNTH"] = 6173.0
    h["WAVEUNIT"] = "angstrom"
    h["BUNIT"] = "Gauss"
    h["T_REC"] = tai_string(t_rec)
    h["T_OBS"] = tai_string(t_rec)
    h["DATE-OBS"] = (t_rec - dt.timedelta(seconds=22.5)).replace(tzinfo=None).isoformat(timespec="milliseconds")
    h["DATE"] = iso_utc(SystemClock().now())[:19]  # when this synthetic frame was made
    h["CAMERA"] = 3
    h["QUALITY"] = quality
    h["QLOOK"] = 1
    h["CTYPE1"], h["CTYPE2"] = "HPLN-TAN", "HPLT-TAN"
    h["CUNIT1"], h["CUNIT2"] = "arcsec", "arcsec"
    h["CRPIX1"] = h["CRPIX2"] = (n + 1) / 2
    h["CRVAL1"] = h["CRVAL2"] = 0.0
    h["CDELT1"] = h["CDELT2"] = cdelt
    h["CROTA2"] = crota
    h["RSUN_OBS"] = eph.rsun_obs_arcsec
    h["RSUN_REF"] = 696000000.0
    h["DSUN_OBS"] = eph.dsun_m
    h["DSUN_REF"] = 149597870691.0
    h["CRLN_OBS"] = eph.l0_deg
    h["CRLT_OBS"] = eph.b0_deg
    h["HGLN_OBS"] = 0.0
    h["HGLT_OBS"] = eph.b0_deg
    h["CAR_ROT"] = eph.carrington_rotation
    h["EXPTIME"] = 45.0
    return h


def synth_magnetogram(
    t: dt.datetime,
    regions: list[RegionSpec],
    *,
    size: int = 4096,
    seed: int = 0,
    crota: float = 180.0,
    noise_g: float = 10.0,
    quality: int = 0,
    network: bool = True,
    noise_seed: int | None = None,
) -> tuple[np.ndarray, fits.Header, dict[str, Any]]:
    """Generate one full-disk LOS magnetogram.

    Parameters
    ----------
    t : datetime
        Observation time (UTC); snapped to the 720 s T_REC slot.
    regions : list of RegionSpec
        Active regions to place.
    size : int
        Image side; 4096 is HMI's, smaller sizes bin the plate scale by ``4096 / size``.
    seed : int
        Seed: the same arguments give the same image, bit for bit.
    crota : float
        CROTA2 of the stored image (180 like HMI, or 0 for north up).
    noise_g : float
        Gaussian noise of the LOS field, G (HMI's 720 s magnetograms: ~10 G).
    network : bool
        Include the quiet-Sun network (off only to isolate regions in tests and probes).
    noise_seed : int or None
        Seed of the network and noise alone; frames of one sequence share ``seed`` (the
        same regions) and differ in ``noise_seed``.

    Returns
    -------
    data : ndarray (float32)
        LOS field in Gauss, NaN off the disk.
    header : astropy.io.fits.Header
    truth : dict
        ``{"regions": [{"id", "mtwilson", "hgs_lat", "hgs_lon", "hgc_lon", "bbox_px", "usflux_mx", ...}], ...}``
        with ``bbox_px = [x0, y0, x1, y1]`` half-open 0-based pixel bounds in the stored array.

    Raises
    ------
    ValueError
        For a bad size, an unknown class or a region behind the limb.
    """
    if size < 64 or (4096 % size != 0 and size % 64 != 0):
        msg = f"image size must be >= 64 and a divisor of 4096 or a multiple of 64 (got {size})"
        raise ValueError(msg)
    if crota not in (0.0, 180.0):
        msg = f"crota must be 0 or 180 (got {crota})"
        raise ValueError(msg)
    t = slot_t_rec(t if t.tzinfo else t.replace(tzinfo=dt.UTC))
    eph = ephemeris(t)
    # Each region has its own stream, so its structure does not depend on the others or on the noise.
    rng = np.random.default_rng([seed, 1_000_000 + (noise_seed or 0)])
    cdelt = HMI_CDELT_4096 * 4096 / size
    b0 = math.radians(eph.b0_deg)
    for i, r in enumerate(regions):
        if r.mtwilson not in SYNTH_CLASSES:
            msg = f"region {i + 1}: unknown Mt. Wilson class {r.mtwilson!r}; choose from {', '.join(SYNTH_CLASSES)}"
            raise ValueError(msg)
        mu0 = math.sin(b0) * math.sin(math.radians(r.lat)) + math.cos(b0) * math.cos(math.radians(r.lat)) * math.cos(
            math.radians(r.lon)
        )
        if not -90 <= r.lat <= 90 or mu0 <= 0.05:
            msg = f"region {i + 1}: position lat={r.lat:g} lon={r.lon:g} is behind the limb (mu={mu0:.2f}); needs mu > 0.05"
            raise ValueError(msg)
        if r.size <= 0:
            msg = f"region {i + 1}: size must be > 0 (got {r.size})"
            raise ValueError(msg)
    geo = disk_geometry((size, size), cdelt_arcsec=cdelt, crpix=((size + 1) / 2,) * 2, dsun_m=eph.dsun_m, b0_deg=eph.b0_deg)
    on = np.isfinite(geo.mu)
    br = np.zeros((size, size), dtype=np.float64)
    truth_regions: list[dict[str, Any]] = []
    for i, spec in enumerate(regions):
        reg = make_region(spec.mtwilson, spec.lat, spec.lon, t, np.random.default_rng([seed, i]), size=spec.size)
        ext = reg.extent_deg + 0.5
        coslat = max(math.cos(math.radians(spec.lat)), 0.05)
        near = on & (np.abs(geo.lat - spec.lat) < ext) & (np.abs(geo.lon - spec.lon) * coslat < ext)
        ys, xs = np.nonzero(near)
        if len(ys) == 0:
            continue
        win = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
        x, y = local_offsets(geo.lat[win].astype(np.float64), geo.lon[win].astype(np.float64), spec.lat, spec.lon)
        field = np.where(on[win], saturate(render(reg, x, y)), 0.0)
        br[win] += field
        los = np.abs(field) * np.nan_to_num(geo.mu[win])
        strong = np.nonzero(los > 100.0)
        area = np.nan_to_num(geo.area_cm2[win])
        if len(strong[0]):
            y0, x0 = strong[0].min() + win[0].start, strong[1].min() + win[1].start
            y1, x1 = strong[0].max() + win[0].start + 1, strong[1].max() + win[1].start + 1
        else:
            y0 = x0 = y1 = x1 = 0
        p, n = float(np.sum(np.clip(field, 0, None) * area)), float(np.sum(np.clip(-field, 0, None) * area))
        truth_regions.append(
            {
                "id": i + 1,
                "mtwilson": spec.mtwilson,
                "hgs_lat": spec.lat,
                "hgs_lon": spec.lon,
                "hgc_lat": spec.lat,
                "hgc_lon": (spec.lon + eph.l0_deg) % 360,
                "bbox_px": [int(x0), int(y0), int(x1), int(y1)],
                "usflux_mx": p + n,
                "flux_imbalance": (p - n) / (p + n) if p + n else 0.0,
                "leading_polarity": reg.leading_sign,
                "tilt_deg": reg.tilt_deg,
                "mu": float(np.nanmedian(geo.mu[win][np.abs(field) > 100])) if (np.abs(field) > 100).any() else None,
            }
        )
    # Quiet-Sun network: mixed-polarity elements ~1.2 Mm wide, 20-80 G peak, radial.
    mm_per_px = cdelt * 0.725
    sigma_px = max(0.6, 1.2 / mm_per_px)
    n_el = int(on.sum() * (mm_per_px / 5.0) ** 2)
    net = np.zeros_like(br)
    if not network:
        n_el = 0
    iy = rng.integers(0, size, n_el)
    ix = rng.integers(0, size, n_el)
    amp = rng.choice([-1.0, 1.0], n_el) * rng.uniform(20, 80, n_el) * 2 * math.pi * sigma_px**2
    np.add.at(net, (iy, ix), amp)
    net = ndimage.gaussian_filter(net, sigma_px)
    mu = np.nan_to_num(geo.mu).astype(np.float64)
    data = (br + net) * mu + (rng.normal(0, noise_g, br.shape) if noise_g > 0 else 0.0)
    data = np.where(on, data, np.nan).astype(np.float32)
    if crota == 180.0:
        data = data[::-1, ::-1].copy()
        for tr in truth_regions:
            x0, y0, x1, y1 = tr["bbox_px"]
            tr["bbox_px"] = [size - x1, size - y1, size - x0, size - y0]
    header = hmi_header(t, size, crota=crota, quality=quality)
    truth = {
        "t_rec_utc": t.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "t_rec": header["T_REC"],
        "image": {"size": size, "cdelt_arcsec": cdelt, "crota2": crota, "b0_deg": eph.b0_deg, "l0_deg": eph.l0_deg},
        "generator": {"name": "heliowatch.synth.magnetogram", "seed": seed, "noise_seed": noise_seed, "noise_g": noise_g},
        "regions": truth_regions,
    }
    return data, header, truth


def random_regions(t: dt.datetime, n: int, rng: np.random.Generator) -> list[RegionSpec]:
    """``n`` regions of random classes at random visible, non-overlapping activity-belt positions."""
    out: list[RegionSpec] = []
    tries = 0
    while len(out) < n and tries < 1000:
        tries += 1
        lat = float(rng.choice([-1, 1]) * rng.uniform(5, 30))
        lon = float(rng.uniform(-65, 65))
        if any(abs(lat - r.lat) < 14 and abs(lon - r.lon) < 22 for r in out):
            continue
        out.append(RegionSpec(str(rng.choice(SYNTH_CLASSES)), round(lat, 1), round(lon, 1), float(rng.uniform(0.7, 1.2))))
    return out
