"""Synthetic pre-emergence patch sequences (Dhuri et al. 2020 setting).

Postel-projected 85x85 patches at 1.4 Mm/px tracked over time. The background is an
evolving quiet-Sun network (elements that drift, appear and decay) with noise. In an
emerging patch a small bipole appears at the centre: weak mixed-polarity precursors grow in
the hours before, then two polarities emerge, grow in flux and separate. Control patches
have the background only.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import numpy as np
from astropy.io import fits

__all__ = ["MM_PER_PX", "PATCH", "synth_emergence"]

MM_PER_PX = 1.4
PATCH = 85
_DEG_PER_MM = 180 / (math.pi * 696.0)


def _blobs(shape: tuple[int, int], pts: np.ndarray, amps: np.ndarray, sigma: float) -> np.ndarray:
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    out = np.zeros(shape)
    for (x, y), a in zip(pts, amps, strict=True):
        out += a * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma * sigma))
    return out


def synth_emergence(
    t0: dt.datetime,
    *,
    emerging: bool,
    seed: int = 0,
    n_frames: int = 12,
    cadence_s: float = 1800.0,
    emerge_frame: int | None = None,
    peak_flux_mx: float = 2e21,
    noise_g: float = 5.0,
) -> tuple[np.ndarray, list[fits.Header], dict[str, Any]]:
    """Generate a tracked patch sequence.

    Parameters
    ----------
    emerging : bool
        A bipole emerges (True) or the patch is a control (False).
    n_frames, cadence_s : int, float
        Length and cadence of the sequence.
    emerge_frame : int or None
        Frame of emergence onset; by default two thirds into the sequence.
    peak_flux_mx : float
        Unsigned flux the bipole reaches (both polarities).

    Returns
    -------
    cube : ndarray (n_frames, 85, 85), float32, Gauss (LOS ~ radial at the tracked centre)
    headers : list of astropy.io.fits.Header
    truth : dict
    """
    if n_frames < 2:
        msg = f"a sequence needs at least 2 frames (got {n_frames})"
        raise ValueError(msg)
    rng = np.random.default_rng(seed)
    ke = (2 * n_frames) // 3 if emerge_frame is None else emerge_frame
    if emerging and not 0 < ke < n_frames:
        msg = f"emerge_frame must be within 1..{n_frames - 1} (got {ke})"
        raise ValueError(msg)
    n_net = 60
    pts = rng.uniform(0, PATCH, (n_net, 2))
    amps = rng.choice([-1, 1], n_net) * rng.uniform(30, 90, n_net)
    px_cm2 = (MM_PER_PX * 1e8) ** 2
    sigma_bp = 2.5
    frames = []
    centre = np.array([PATCH / 2, PATCH / 2]) + rng.normal(0, 3, 2)
    axis = rng.uniform(-0.4, 0.4)  # E-W bipole, a little tilted
    for k in range(n_frames):
        pts = np.mod(pts + rng.normal(0, 0.8, pts.shape), PATCH)  # supergranular random walk
        decay = rng.random(n_net) < 0.05
        pts[decay] = rng.uniform(0, PATCH, (int(decay.sum()), 2))
        amps[decay] = rng.choice([-1, 1], int(decay.sum())) * rng.uniform(30, 90, int(decay.sum()))
        img = _blobs((PATCH, PATCH), pts, amps, 1.0)
        if emerging:
            dt_h = (k - ke) * cadence_s / 3600
            if -4 <= dt_h < 0:
                # Precursors: small mixed-polarity elements gathering at the site.
                m = int(2 + 3 * (4 + dt_h))
                pp = centre + rng.normal(0, 2.5, (m, 2))
                img += _blobs((PATCH, PATCH), pp, rng.choice([-1, 1], m) * rng.uniform(20, 60, m) * (1 + (4 + dt_h) / 4), 1.0)
            if dt_h >= 0:
                grow = 1 - math.exp(-(dt_h + 0.5) / 3.0)
                flux = 0.5 * peak_flux_mx * grow  # per polarity
                b_peak = flux / (2 * math.pi * sigma_bp**2 * px_cm2)
                half = 0.5 * (2.0 + 2.5 * dt_h) / MM_PER_PX  # separation grows ~2.5 Mm/h
                off = half * np.array([math.cos(axis), math.sin(axis)])
                img += _blobs((PATCH, PATCH), np.stack([centre + off, centre - off]), np.array([b_peak, -b_peak]), sigma_bp)
        img += rng.normal(0, noise_g, img.shape)
        frames.append(img.astype(np.float32))
    cube = np.stack(frames)
    t0u = t0 if t0.tzinfo else t0.replace(tzinfo=dt.UTC)
    headers = []
    for k in range(n_frames):
        tk = t0u + dt.timedelta(seconds=k * cadence_s)
        h = fits.Header()
        h["TELESCOP"], h["INSTRUME"] = "SDO/HMI", "HMI_FRONT2"
        h["CONTENT"] = "MAGNETOGRAM"
        h["BUNIT"] = "Gauss"
        h["DATE-OBS"] = tk.replace(tzinfo=None).isoformat(timespec="seconds")
        h["T_REC"] = tk.strftime("%Y-%m-%dT%H:%M:%SZ")
        h["CTYPE1"], h["CTYPE2"] = "HGLN-ARC", "HGLT-ARC"  # Postel (azimuthal equidistant) about the patch centre
        h["CUNIT1"], h["CUNIT2"] = "deg", "deg"
        h["CDELT1"] = h["CDELT2"] = MM_PER_PX * _DEG_PER_MM
        h["CRPIX1"] = h["CRPIX2"] = (PATCH + 1) / 2
        h["CRVAL1"], h["CRVAL2"] = 0.0, 0.0
        h["HGLN_OBS"], h["HGLT_OBS"] = 0.0, 0.0
        h["DSUN_OBS"] = 1.495978707e11
        h["RSUN_REF"] = 696000000.0
        h["MMPERPIX"] = MM_PER_PX
        headers.append(h)
    truth = {
        "emerging": emerging,
        "emerge_frame": ke if emerging else None,
        "emerge_time_utc": (t0u + dt.timedelta(seconds=ke * cadence_s)).strftime("%Y-%m-%dT%H:%M:%SZ") if emerging else None,
        "centre_px": centre.tolist() if emerging else None,
        "peak_flux_mx": peak_flux_mx if emerging else 0.0,
        "cadence_s": cadence_s,
        "mm_per_px": MM_PER_PX,
        "generator": {"name": "heliowatch.synth.emergence", "seed": seed},
    }
    return cube, headers, truth
