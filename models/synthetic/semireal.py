"""Semi-real full disks: real SHARP vector patches placed on a synthetic quiet Sun.

Real HMI full disks in Gauss are not available offline, but real SHARP CEA patches are. A
semi-real frame keeps the real region morphology and gives exact truth: each patch is moved
on the sphere by a rigid rotation that takes its centre to a new visible position (shapes and
orientation are preserved; only the viewing angle changes), its vector field (Br, Bt, Bp) is
projected onto the new line of sight, and it replaces the synthetic disk's quiet Sun inside its
footprint. Patches keep their hemisphere, so Hale's and Joy's laws still hold.

Truth of a placed region: its NOAA class (given by the caller, from the SRS), the flux-weighted
centre of the footprint, and a box around the footprint, which follows the synthetic truth's
convention (|B_LOS| > 100 G) after smoothing the real field by 1 Mm and dropping fragments
with < 5 % of the largest fragment's flux, so isolated network elements do not stretch it.
"""

from __future__ import annotations

import datetime as dt
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS
from scipy import ndimage

from heliowatch.models import measures
from heliowatch.models.synthetic.magnetogram import synth_magnetogram

__all__ = ["RealPatch", "load_patch", "semireal_magnetogram"]

_MM_PER_DEG = measures.RSUN_REF_M * math.pi / 180 / 1e6


@dataclass
class RealPatch:
    """A real SHARP CEA vector patch, block-averaged to ``cdelt_deg``."""

    name: str
    noaa: int | None
    t_rec: str
    br: np.ndarray
    bt: np.ndarray | None
    bp: np.ndarray | None
    header: fits.Header
    mtwilson: str = ""

    @property
    def lat(self) -> float:
        """Latitude of the patch centre, deg."""
        return float(self.header["CRVAL2"])


def _read(path: Path) -> tuple[np.ndarray, fits.Header]:
    with warnings.catch_warnings(), fits.open(path) as hdul:
        warnings.simplefilter("ignore")  # JSOC's 'nan' cards
        hdu = hdul[-1]
        return np.asarray(hdu.data, dtype=np.float64), hdu.header.copy()


def load_patch(br_path: Path, *, rebin: int = 4) -> RealPatch:
    """Read a SHARP ``*.Br.fits`` and its ``Bt``/``Bp`` siblings, binned by ``rebin``.

    Binning to ~1.5 Mm first makes the placement an area average, not a point sample of a
    0.36 Mm grid (which would alias the field onto the coarser full-disk pixels).
    """
    br, hdr = _read(br_path)
    comps = {}
    for seg in ("Bt", "Bp"):
        sib = br_path.with_name(br_path.name.replace(".Br.", f".{seg}."))
        comps[seg] = measures.bin_mean(np.nan_to_num(_read(sib)[0]), rebin) if sib.exists() else None
    h = hdr.copy()
    for ax in ("1", "2"):
        h[f"CDELT{ax}"] = float(hdr[f"CDELT{ax}"]) * rebin
        h[f"CRPIX{ax}"] = (float(hdr[f"CRPIX{ax}"]) - 0.5) / rebin + 0.5
    return RealPatch(
        name=br_path.name,
        noaa=int(hdr["NOAA_AR"]) if int(hdr.get("NOAA_AR", 0) or 0) > 0 else None,
        t_rec=str(hdr["T_REC"]),
        br=measures.bin_mean(np.nan_to_num(br), rebin),
        bt=comps["Bt"],
        bp=comps["Bp"],
        header=h,
    )


def _vec(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    la, lo = np.radians(lat), np.radians(lon)
    return np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)])


def _rot_z(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def _rot_y(a: float) -> np.ndarray:
    """Rotation that moves +z towards +x by ``a`` (takes latitude ``a`` to the equator)."""
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _place(
    patch: RealPatch, geo: measures.DiskGeometry, lat0: float, lon0: float, b0_deg: float
) -> tuple[np.ndarray, np.ndarray] | None:
    """B_LOS of the patch moved to Stonyhurst (lat0, lon0), and where it covers the disk."""
    h = patch.header
    lat_c, lon_c = float(h["CRVAL2"]), float(h["CRVAL1"])
    ext = 0.5 * math.hypot(patch.br.shape[0] * float(h["CDELT2"]), patch.br.shape[1] * float(h["CDELT1"]))
    lat, lon = geo.lat, geo.lon
    near = (
        np.isfinite(lat)
        & (np.abs(lat - lat0) < ext + 1)
        & (np.abs(lon - lon0) < ext / max(math.cos(math.radians(lat0 + ext)), 0.2) + 1)
    )
    iy, ix = np.nonzero(near)
    if len(iy) == 0:
        return None
    # Disk point -> the patch's own frame: (lat0, lon0) -> (0, 0) -> (lat_c, Carrington lon_c).
    r = _rot_z(math.radians(lon_c)) @ _rot_y(-math.radians(lat_c)) @ _rot_y(math.radians(lat0)) @ _rot_z(-math.radians(lon0))
    v = r @ _vec(lat[iy, ix], lon[iy, ix])
    plat = np.degrees(np.arcsin(np.clip(v[2], -1, 1)))
    plon = np.degrees(np.arctan2(v[1], v[0]))
    # Only the celestial keys: JSOC writes CUNITn = 'degree', which WCSLIB refuses.
    w = WCS(
        {
            "NAXIS": 2,
            **{f"{k}{ax}": h[f"{k}{ax}"] for k in ("CTYPE", "CRPIX", "CRVAL", "CDELT") for ax in ("1", "2")},
            "CUNIT1": "deg",
            "CUNIT2": "deg",
        }
    )
    px, py = w.world_to_pixel_values(plon % 360, plat)
    ny, nx = patch.br.shape
    inside = (px >= 0) & (px <= nx - 1) & (py >= 0) & (py <= ny - 1)
    if not inside.any():
        return None
    iy, ix, px, py = iy[inside], ix[inside], px[inside], py[inside]

    def sample(a: np.ndarray | None) -> np.ndarray:
        return np.zeros(len(px)) if a is None else ndimage.map_coordinates(a, [py, px], order=1)

    br, bt, bp = sample(patch.br), sample(patch.bt), sample(patch.bp)
    phi, lam, b0 = np.radians(lat[iy, ix]), np.radians(lon[iy, ix]), math.radians(b0_deg)
    # Line-of-sight components of the local radial, westward and northward unit vectors
    # (Bt points south in SHARP files).
    er = np.cos(phi) * np.cos(lam) * math.cos(b0) + np.sin(phi) * math.sin(b0)
    ew = -np.sin(lam) * math.cos(b0)
    en = -np.sin(phi) * np.cos(lam) * math.cos(b0) + np.cos(phi) * math.sin(b0)
    if patch.bt is None or patch.bp is None:
        los_vals = br * er  # radial approximation when the vector field is missing
    else:
        los_vals = br * er + bp * ew - bt * en
    los = np.zeros(lat.shape)
    cover = np.zeros(lat.shape, bool)
    los[iy, ix] = los_vals
    cover[iy, ix] = True
    return los, cover


def _footprint(los: np.ndarray, cover: np.ndarray, mm_per_px: float) -> np.ndarray:
    smooth = ndimage.gaussian_filter(np.abs(los) * cover, max(0.5, 1.0 / mm_per_px))
    lab, n = ndimage.label(smooth > 100.0)
    if n == 0:
        return np.zeros_like(cover)
    flux = ndimage.sum(np.abs(los), lab, np.arange(1, n + 1))
    keep = np.nonzero(flux >= 0.05 * flux.max())[0] + 1
    return np.isin(lab, keep)


def semireal_magnetogram(
    t: dt.datetime,
    patches: list[RealPatch],
    rng: np.random.Generator,
    *,
    size: int = 1024,
    seed: int = 0,
) -> tuple[np.ndarray, fits.Header, dict[str, Any]]:
    """A north-up full disk with each patch at a random visible position in its hemisphere.

    Returns ``(data, header, truth)`` like
    :func:`~heliowatch.models.synthetic.magnetogram.synth_magnetogram`; truth regions carry
    ``mtwilson`` (the patch's), ``noaa``, ``source`` (the patch file) and ``bbox_px``.
    """
    data, hdr, truth = synth_magnetogram(t, [], size=size, seed=seed, crota=0.0)
    geo = measures.disk_geometry(
        data.shape,
        cdelt_arcsec=float(hdr["CDELT1"]),
        crpix=(float(hdr["CRPIX1"]), float(hdr["CRPIX2"])),
        dsun_m=float(hdr["DSUN_OBS"]),
        b0_deg=float(hdr["CRLT_OBS"]),
    )
    mm_per_px = float(hdr["CDELT1"]) * 0.725
    out = data.astype(np.float64)
    area = np.nan_to_num(geo.area_cm2)
    placed: list[tuple[float, float, float]] = []
    regions: list[dict[str, Any]] = []
    for p in patches:
        half = 0.5 * float(p.header["CDELT1"]) * p.br.shape[1]
        for _ in range(200):
            lat0 = math.copysign(rng.uniform(6, 28), p.lat)
            lon0 = float(rng.uniform(-60, 60))
            if all(abs(lat0 - la) > 14 or abs(lon0 - lo) > half + h2 + 2 for la, lo, h2 in placed):
                break
        else:
            continue
        res = _place(p, geo, lat0, lon0, float(hdr["CRLT_OBS"]))
        if res is None:
            continue
        los, cover = res
        placed.append((lat0, lon0, half))
        out = np.where(cover, los, out)
        fp = _footprint(los, cover, mm_per_px)
        ys, xs = np.nonzero(fp)
        w = np.abs(los) * fp * area
        regions.append(
            {
                "id": len(regions) + 1,
                "mtwilson": p.mtwilson,
                "noaa": p.noaa,
                "source": p.name,
                "hgs_lat": round(float((w * np.nan_to_num(geo.lat)).sum() / w.sum()), 2),
                "hgs_lon": round(float((w * np.nan_to_num(geo.lon)).sum() / w.sum()), 2),
                "bbox_px": [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1],
                "usflux_mx": float((np.abs(los) / np.maximum(np.nan_to_num(geo.mu), 0.1) * fp * area).sum()),
            }
        )
    data = np.where(np.isfinite(data), out, np.nan).astype(np.float32)
    hdr["ORIGIN"] = "heliowatch semi-real (real SHARP patches on a synthetic disk)"
    truth["regions"] = regions
    truth["generator"] = {"name": "heliowatch.synth.semireal", "seed": seed, "patches": [p.name for p in patches]}
    return data, hdr, truth
