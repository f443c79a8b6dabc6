"""Synthetic AIA 304 A sequences, with or without a coronal jet, with realistic distractors.

As in Charlet et al.: 30 frames at 24 s cadence of a 500x500 cutout at 0.6"/px, pooled 3x3
to 166x166 (1.8"/px), in DN/s. The chromospheric network background is static apart from
slow evolution. A jet is a collimated brightening that rises from a base point at
100-500 km/s along a random direction, reaches a random maximum length, then fades. The
distractors a detector must not confuse with a jet: flickering bright points, loops whose
brightness oscillates, frames taken with a shorter (automatic) exposure, and photon and
read noise.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import numpy as np
from astropy.io import fits
from scipy import ndimage

from heliowatch.models.measures import bin_mean
from heliowatch.models.synthetic.ephemeris import ephemeris

__all__ = ["KM_PER_ARCSEC", "synth_aia_sequence"]

KM_PER_ARCSEC = 725.0
_FULL = 500
_POOL = 3
_PIX_ARCSEC = 0.6


def _pool(img: np.ndarray) -> np.ndarray:
    n = (img.shape[0] // _POOL) * _POOL
    return bin_mean(img[:n, :n], _POOL)


def synth_aia_sequence(
    t0: dt.datetime,
    *,
    jet: bool,
    seed: int = 0,
    n_frames: int = 30,
    cadence_s: float = 24.0,
    distractors: bool = True,
) -> tuple[np.ndarray, list[fits.Header], dict[str, Any]]:
    """Generate a 304 A sequence.

    Returns
    -------
    cube : ndarray, shape (n_frames, 166, 166), float32
        DN/s.
    headers : list of astropy.io.fits.Header
        One AIA-like header per frame.
    truth : dict
        ``{"jet": bool, "jet_params": {...} or None, "frames_with_jet": [...], "distractors": [...]}``;
        positions are in pooled pixels (x, y), 0-based.
    """
    if n_frames < 2:
        msg = f"a sequence needs at least 2 frames (got {n_frames})"
        raise ValueError(msg)
    rng = np.random.default_rng(seed)
    km_px = _PIX_ARCSEC * KM_PER_ARCSEC
    yy, xx = np.mgrid[0:_FULL, 0:_FULL].astype(np.float64)
    # Chromospheric network: cells of ~15-30 Mm with bright boundaries.
    cells = ndimage.gaussian_filter(rng.normal(0, 1, (_FULL, _FULL)), 18)
    cells /= cells.std()
    boundary = np.exp(-((cells / 0.35) ** 2))
    grain = ndimage.gaussian_filter(rng.normal(0, 1, (_FULL, _FULL)), 3)
    base = 35.0 * (1 + 0.15 * grain / grain.std()) + 60.0 * boundary
    base = np.clip(base, 5, None)
    evolve = ndimage.gaussian_filter(rng.normal(0, 1, (_FULL, _FULL)), 10)
    evolve /= evolve.std()
    times = np.arange(n_frames) * cadence_s
    frames = np.repeat(base[None], n_frames, axis=0) * (1 + 0.05 * evolve[None] * (times[:, None, None] / times[-1] - 0.5))
    truth: dict[str, Any] = {"jet": jet, "jet_params": None, "frames_with_jet": [], "distractors": []}
    if distractors:
        for _ in range(rng.integers(2, 7)):
            bx, by = rng.uniform(40, _FULL - 40, 2)
            period = rng.uniform(60, 300)
            amp = rng.uniform(1.0, 3.0) * 60
            s = rng.uniform(2, 4)
            blob = np.exp(-((xx - bx) ** 2 + (yy - by) ** 2) / (2 * s * s))
            flick = 1 + 0.8 * np.sin(2 * math.pi * times / period + rng.uniform(0, 2 * math.pi))
            frames += amp * flick[:, None, None] * blob[None]
            truth["distractors"].append({"kind": "bright_point", "x": bx / _POOL, "y": by / _POOL})
        for _ in range(rng.integers(1, 4)):
            cx, cy = rng.uniform(100, _FULL - 100, 2)
            r = rng.uniform(20, 60)
            ang = rng.uniform(0, math.pi)
            th = np.linspace(0, math.pi, 200)
            px = cx + r * np.cos(th) * math.cos(ang) - 0.5 * r * np.sin(th) * math.sin(ang)
            py = cy + r * np.cos(th) * math.sin(ang) + 0.5 * r * np.sin(th) * math.cos(ang)
            loop = np.zeros((_FULL, _FULL))
            ok = (px >= 0) & (px < _FULL) & (py >= 0) & (py < _FULL)
            np.add.at(loop, (py[ok].astype(int), px[ok].astype(int)), 1.0)
            loop = ndimage.gaussian_filter(loop, 2.0)
            loop /= max(loop.max(), 1e-9)
            period = rng.uniform(90, 400)
            flick = 1 + 0.5 * np.sin(2 * math.pi * times / period + rng.uniform(0, 2 * math.pi))
            frames += rng.uniform(40, 100) * flick[:, None, None] * loop[None]
            truth["distractors"].append({"kind": "loop", "x": cx / _POOL, "y": cy / _POOL})
    if jet:
        bx, by = (float(v) for v in rng.uniform(150, _FULL - 150, 2))
        direction = rng.uniform(0, 2 * math.pi)
        speed = rng.uniform(100, 500)  # km/s
        length_max = rng.uniform(15e3, 60e3)  # km
        width = rng.uniform(2e3, 5e3)  # km
        k0 = int(rng.integers(2, max(3, n_frames // 2)))
        t_start = times[k0]
        t_full = t_start + length_max / speed
        tau = rng.uniform(60, 240)
        bright = rng.uniform(3, 7) * 60
        ux, uy = math.cos(direction), math.sin(direction)
        s = ((xx - bx) * ux + (yy - by) * uy) * km_px
        d = (-(xx - bx) * uy + (yy - by) * ux) * km_px
        for k, tk in enumerate(times):
            if tk < t_start:
                continue
            length = min(speed * (tk - t_start), length_max)
            fade = 1.0 if tk <= t_full else math.exp(-(tk - t_full) / tau)
            if fade < 0.05:
                continue
            spire = (s >= 0) & (s <= length)
            prof = np.exp(-(d * d) / (2 * width * width)) * np.where(
                spire, 0.5 + 0.5 * np.exp(-np.clip(s, 0, None) / max(length, 1)), 0.0
            )
            base_blob = np.exp(-(s * s + d * d) / (2 * (1.5 * width) ** 2))
            frames[k] += bright * fade * (prof + 0.8 * base_blob)
            truth["frames_with_jet"].append(k)
        truth["jet_params"] = {
            "base_x": bx / _POOL,
            "base_y": by / _POOL,
            "direction_deg": math.degrees(direction) % 360,
            "speed_km_s": speed,
            "length_max_km": length_max,
            "width_km": width,
            "t_start_s": float(t_start),
            "t_full_s": float(t_full),
            "fade_tau_s": tau,
        }
    exptime = np.full(n_frames, 2.9)
    if distractors and rng.random() < 0.6:
        k = int(rng.integers(0, n_frames - 2))
        exptime[k : k + int(rng.integers(1, 4))] = rng.uniform(0.6, 1.5)
        truth["distractors"].append({"kind": "short_exposure", "frames": np.nonzero(exptime < 2.9)[0].tolist()})
    # Photon (Poisson, gain ~ 1 DN/photon-ish) and read noise, then back to DN/s.
    dn = frames * exptime[:, None, None]
    dn = rng.poisson(np.clip(dn, 0, None)).astype(np.float64) + rng.normal(0, 1.2, dn.shape)
    frames = dn / exptime[:, None, None]
    cube = np.stack([_pool(f) for f in frames]).astype(np.float32)
    eph = ephemeris(t0 if t0.tzinfo else t0.replace(tzinfo=dt.UTC))
    centre = rng.uniform(-500, 500, 2)
    headers = []
    fsn0 = int(rng.integers(100_000_000, 200_000_000))
    for k in range(n_frames):
        tk = (t0 if t0.tzinfo else t0.replace(tzinfo=dt.UTC)) + dt.timedelta(seconds=float(times[k]))
        h = fits.Header()
        h["TELESCOP"], h["INSTRUME"] = "SDO/AIA", "AIA_4"
        h["WAVELNTH"], h["WAVEUNIT"] = 304, "angstrom"
        h["T_REC"] = tk.strftime("%Y-%m-%dT%H:%M:%SZ")
        h["T_OBS"] = tk.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        h["DATE-OBS"] = tk.replace(tzinfo=None).isoformat(timespec="milliseconds")
        h["EXPTIME"] = float(exptime[k])
        h["FSN"] = fsn0 + 6 * k
        h["QUALITY"] = 0
        h["IMG_TYPE"] = "LIGHT"
        h["BUNIT"] = "DN/s"
        h["CTYPE1"], h["CTYPE2"] = "HPLN-TAN", "HPLT-TAN"
        h["CUNIT1"], h["CUNIT2"] = "arcsec", "arcsec"
        h["CDELT1"] = h["CDELT2"] = _PIX_ARCSEC * _POOL
        h["CRPIX1"] = h["CRPIX2"] = (cube.shape[1] + 1) / 2
        h["CRVAL1"], h["CRVAL2"] = float(centre[0]), float(centre[1])
        h["CROTA2"] = 0.0
        h["DSUN_OBS"] = eph.dsun_m
        h["HGLN_OBS"], h["HGLT_OBS"] = 0.0, eph.b0_deg
        h["RSUN_OBS"] = eph.rsun_obs_arcsec
        h["RSUN_REF"] = 696000000.0
        h["PIXLUNIT"] = "DN/s"
        headers.append(h)
    truth["cadence_s"] = cadence_s
    truth["frame_times_utc"] = [h["T_OBS"] for h in headers]
    truth["pooled_arcsec_per_px"] = _PIX_ARCSEC * _POOL
    truth["generator"] = {"name": "heliowatch.synth.aia_sequence", "seed": seed}
    return cube, headers, truth
