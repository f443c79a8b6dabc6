"""Synthetic SHARP CEA patches (``hmi.sharp_cea_720s``-like) with keywords computed from the patch.

The grid is cylindrical equal-area at 0.03 deg/px like JSOC's: longitude steps of CDELT1 and
equal steps of sin(latitude), so every pixel covers the same surface area. Segments:
``magnetogram`` (LOS, ``Br * mu``), ``Br``, ``bitmap`` (1 outside the HARP, 33 weak and 34
strong pixels inside, as JSOC codes them) and ``conf_disambig`` (90 where the field is strong,
60 elsewhere). The SHARP keywords (USFLUX, AREA_ACR, MEANGBZ, R_VALUE, LAT_FWT, LON_FWT, ...)
are computed with :mod:`heliowatch.models.measures`, which reproduces real SHARP headers.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import numpy as np
from astropy.io import fits
from scipy import ndimage

from heliowatch.models import measures
from heliowatch.models.synthetic.ephemeris import ephemeris, slot_t_rec
from heliowatch.models.synthetic.magnetogram import saturate, tai_string
from heliowatch.models.synthetic.regions import local_offsets, make_region, render

__all__ = ["CDELT_DEG", "synth_sharp"]

CDELT_DEG = 0.03


def synth_sharp(
    t: dt.datetime,
    mtwilson: str,
    lat: float,
    lon: float,
    *,
    harpnum: int = 90001,
    noaa_ar: int = 0,
    seed: int = 0,
    size: float = 1.0,
    noise_g: float = 10.0,
) -> tuple[dict[str, tuple[np.ndarray, fits.Header]], dict[str, Any]]:
    """Generate one SHARP CEA record.

    Returns
    -------
    segments : dict
        ``{"magnetogram"|"Br"|"bitmap"|"conf_disambig": (data, header)}``.
    truth : dict
        Class, position, analytic flux and the computed keywords.

    Raises
    ------
    ValueError
        For an unknown class, a bad size or a position behind the limb.
    """
    t = slot_t_rec(t if t.tzinfo else t.replace(tzinfo=dt.UTC))
    eph = ephemeris(t)
    b0 = math.radians(eph.b0_deg)
    mu0 = math.sin(b0) * math.sin(math.radians(lat)) + math.cos(b0) * math.cos(math.radians(lat)) * math.cos(math.radians(lon))
    if mu0 <= 0.05:
        msg = f"position lat={lat:g} lon={lon:g} is behind the limb (mu={mu0:.2f}); needs mu > 0.05"
        raise ValueError(msg)
    rng = np.random.default_rng(seed)
    reg = make_region(mtwilson, lat, lon, t, rng, size=size)
    half = min(max(reg.extent_deg * 0.9, 4.0), 14.0)
    nx = int(2 * half / CDELT_DEG) // 2 * 2
    ny = int(2 * half * 0.6 / CDELT_DEG) // 2 * 2
    crpix1, crpix2 = nx / 2 + 0.5, ny / 2 + 0.5
    ii = (np.arange(nx) + 1 - crpix1) * CDELT_DEG
    jj = (np.arange(ny) + 1 - crpix2) * CDELT_DEG
    sin_lat = np.clip(math.sin(math.radians(lat)) + np.radians(jj), -1, 1)
    lat_g, lon_g = np.meshgrid(np.degrees(np.arcsin(sin_lat)), lon + ii, indexing="ij")
    x, y = local_offsets(lat_g, lon_g, lat, lon)
    br_true = saturate(render(reg, x, y))
    la, lo = np.radians(lat_g), np.radians(lon_g)
    mu = np.sin(b0) * np.sin(la) + np.cos(b0) * np.cos(la) * np.cos(lo)
    # Quiet-Sun network (mixed-polarity ~1 Mm elements) and noise; Br is noisier than the
    # LOS field because it carries the transverse-field noise.
    n_el = int(br_true.size * (0.36 / 4.0) ** 2)
    net = np.zeros_like(br_true)
    np.add.at(
        net,
        (rng.integers(0, ny, n_el), rng.integers(0, nx, n_el)),
        rng.choice([-1.0, 1.0], n_el) * rng.uniform(40, 150, n_el) * 2 * math.pi * 1.3**2,
    )
    net = ndimage.gaussian_filter(net, 1.3)
    br = br_true + net + rng.normal(0, 3 * noise_g, br_true.shape)
    los = (br_true + net) * mu + rng.normal(0, noise_g, br_true.shape)
    inside = measures.harp_mask(los)
    strong = inside & (ndimage.gaussian_filter(np.abs(los), 4) > 100)
    bitmap = np.where(inside, np.where(strong, 34, 33), 1).astype(np.uint8)
    conf = np.where(np.abs(br) > 150, 90, 60).astype(np.uint8)
    area = measures.cea_pixel_area_cm2(CDELT_DEG)
    mask = (bitmap >= 30) & (conf >= 70)
    usflux = measures.unsigned_flux(br, area, mask=mask)
    w = np.where(mask, np.abs(br), 0.0)
    lat_fwt = float(np.sum(w * lat_g) / w.sum()) if w.sum() else lat
    lon_fwt = float(np.sum(w * lon_g) / w.sum()) if w.sum() else lon
    keywords = {
        "HARPNUM": harpnum,
        "NOAA_AR": noaa_ar,
        "NOAA_NUM": 1 if noaa_ar else 0,
        "NOAA_ARS": str(noaa_ar) if noaa_ar else "MISSING",
        "USFLUX": usflux,
        "AREA_ACR": measures.total_area_uhem(area, bitmap == 34),
        "MEANGBZ": measures.sharp_meangbz(br, mask=mask),
        "R_VALUE": measures.schrijver_r(los),
        "LAT_FWT": lat_fwt,
        "LON_FWT": lon_fwt,
        "QUALITY": 0,
    }
    h = fits.Header()
    h["TELESCOP"], h["INSTRUME"] = "SDO/HMI", "HMI_SIDE1"
    h["T_REC"] = tai_string(t)
    h["T_OBS"] = tai_string(t)
    h["DATE-OBS"] = t.replace(tzinfo=None).isoformat(timespec="milliseconds")
    h["CTYPE1"], h["CTYPE2"] = "CRLN-CEA", "CRLT-CEA"
    h["CUNIT1"], h["CUNIT2"] = "degree", "degree"
    h["CDELT1"] = h["CDELT2"] = CDELT_DEG
    h["CRPIX1"], h["CRPIX2"] = crpix1, crpix2
    h["CRVAL1"] = (lon + eph.l0_deg) % 360
    h["CRVAL2"] = lat
    h["CROTA2"] = 0.0
    h["RSUN_REF"] = measures.RSUN_REF_M
    h["RSUN_OBS"] = eph.rsun_obs_arcsec
    h["DSUN_OBS"] = eph.dsun_m
    h["CRLN_OBS"] = eph.l0_deg
    h["CRLT_OBS"] = eph.b0_deg
    h["HGLN_OBS"] = 0.0
    h["HGLT_OBS"] = eph.b0_deg
    h["CAR_ROT"] = eph.carrington_rotation
    for k, v in keywords.items():
        h[k] = v
    segs = {}
    for name, data, unit in (
        ("magnetogram", los.astype(np.float32), "Mx/cm^2"),
        ("Br", br.astype(np.float32), "Mx/cm^2"),
        ("bitmap", bitmap, " "),
        ("conf_disambig", conf, " "),
    ):
        hh = h.copy()
        hh["BUNIT"] = unit
        segs[name] = (data, hh)
    p, n = measures.signed_fluxes(br_true, area)
    truth = {
        "mtwilson": mtwilson,
        "hgs_lat": lat,
        "hgs_lon": lon,
        "hgc_lon": (lon + eph.l0_deg) % 360,
        "harpnum": harpnum,
        "noaa_ar": noaa_ar,
        "t_rec": h["T_REC"],
        "usflux_true_mx": p + n,
        "flux_imbalance_true": (p - n) / (p + n) if p + n else 0.0,
        "leading_polarity": reg.leading_sign,
        "keywords": keywords,
        "generator": {"name": "heliowatch.synth.sharp", "seed": seed, "size": size},
    }
    return segs, truth
