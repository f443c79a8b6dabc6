"""Active-region detection, the physics baseline in the manner of SMART (Higgins et al. 2011).

The radial field ``B_LOS / mu`` is smoothed, thresholded, grown, labelled; fragments closer
than a few degrees are merged into one region; regions below a minimum area or flux are
dropped. Each region gets a bounding box (in the file's pixel grid), a flux-weighted HGS and
Carrington centre, its area, unsigned flux and a confidence.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from heliowatch.models import measures
from heliowatch.models.regions.frame import Frame

__all__ = [
    "DetectedRegion",
    "describe_region",
    "detect",
    "merge_fragments",
    "mm_per_px",
    "number_by_flux",
    "radial_field",
    "to_json",
]


@dataclass
class DetectedRegion:
    """One detection (the ``detect --json`` schema)."""

    id: int
    bbox_px: list[int]
    hgs_lat: float
    hgs_lon: float
    hgc_lon: float
    area_uhem: float
    usflux_mx: float
    confidence: float
    mtwilson: str = ""  # empty: no class (``outcome`` says why)
    class_probs: dict[str, float] = field(default_factory=dict)
    measures: dict[str, float] = field(default_factory=dict)
    outcome: str = "classified"  # or "no-spot-group", "limb" (heliowatch.models.regions.classify)
    flags: list[str] = field(default_factory=list)
    track_id: int | None = None
    noaa_ar: int | None = None  # from the NOAA SRS, when one is matched
    _slices: Any = None  # slices of the region in the processed frame
    _mask: Any = None


def merge_fragments(lat: np.ndarray, lon: np.ndarray, merge_deg: float, *, valid: np.ndarray | None = None) -> list[list[int]]:
    """Groups (lists of indices) of fragments whose centres lie within ``merge_deg`` of each other.

    Transitive (union-find): a chain of close fragments is one region, as in SMART's merging of
    the pieces of one active region. Invalid fragments stay alone.
    """
    n = len(lat)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    ok = np.ones(n, bool) if valid is None else np.asarray(valid, bool)
    for i in range(n):
        for j in range(i + 1, n):
            if not (ok[i] and ok[j]):
                continue
            d = math.hypot(lat[i] - lat[j], (lon[i] - lon[j]) * math.cos(math.radians(0.5 * (lat[i] + lat[j]))))
            if d < merge_deg:
                parent[find(i)] = find(j)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    return list(groups.values())


def mm_per_px(frame: Frame) -> float:
    """Median pixel side on the disk in Mm (foreshortening removed)."""
    return float(np.nanmedian(np.sqrt(frame.geo.area_cm2) * np.sqrt(np.nan_to_num(frame.geo.mu, nan=1.0)))) / 1e8


def detect(
    frame: Frame,
    *,
    smooth_mm: float = 4.0,
    threshold_g: float = 100.0,
    grow_mm: float = 2.0,
    merge_deg: float = 6.5,
    min_area_uhem: float = 20.0,
    min_flux_mx: float = 1e21,
    mu_min: float = 0.1,
) -> list[DetectedRegion]:
    """SMART-like detection of active regions on a preprocessed frame."""
    on = np.nan_to_num(frame.geo.mu) > mu_min
    br = radial_field(frame, mu_min=mu_min)
    px = mm_per_px(frame)
    smooth = ndimage.gaussian_filter(np.abs(br), max(0.5, smooth_mm / px))
    core = smooth > threshold_g
    grown = ndimage.binary_dilation(core, iterations=max(1, round(grow_mm / px))) & on
    lab, n = ndimage.label(grown)
    if n == 0:
        return []
    area = np.nan_to_num(frame.geo.area_cm2)
    lat, lon = np.nan_to_num(frame.geo.lat), np.nan_to_num(frame.geo.lon)
    absf = np.abs(br) * area * grown
    idx = np.arange(1, n + 1)
    flux = ndimage.sum(absf, lab, idx)
    clat = ndimage.sum(absf * lat, lab, idx) / np.maximum(flux, 1e-30)
    clon = ndimage.sum(absf * lon, lab, idx) / np.maximum(flux, 1e-30)
    groups = merge_fragments(clat, clon, merge_deg, valid=flux > 0)
    regions = []
    for members in groups:
        mask = np.isin(lab, [m + 1 for m in members])
        f = float(absf[mask].sum())
        a = measures.total_area_uhem(area, mask & (np.abs(br) > threshold_g))
        if f < min_flux_mx or a < min_area_uhem:
            continue
        conf = 1 / (1 + math.exp(-3 * (math.log10(f) - math.log10(min_flux_mx) - 0.5)))
        regions.append(describe_region(frame, br, mask, conf, threshold_g=threshold_g))
    return number_by_flux(regions)


def number_by_flux(regions: list[DetectedRegion]) -> list[DetectedRegion]:
    """Sort regions by unsigned flux, largest first, and number them 1, 2, ... in that order."""
    regions.sort(key=lambda r: -r.usflux_mx)
    for i, r in enumerate(regions, 1):
        r.id = i
    return regions


def radial_field(frame: Frame, *, mu_min: float = 0.1) -> np.ndarray:
    """``B_LOS / mu`` on the disk (mu above ``mu_min``), 0 elsewhere."""
    mu = np.nan_to_num(frame.geo.mu)
    return np.where(mu > mu_min, np.nan_to_num(frame.data) / np.maximum(mu, mu_min), 0.0)


def describe_region(
    frame: Frame,
    br: np.ndarray,
    mask: np.ndarray,
    confidence: float,
    *,
    threshold_g: float = 100.0,
    box: tuple[int, int, int, int] | None = None,
) -> DetectedRegion:
    """A detection from its pixel mask on the frame: flux-weighted centre, box, area, flux.

    The area counts pixels above ``threshold_g`` (the region's magnetic area, not its box).
    ``box`` (``y0, x0, y1, x1`` in the frame's grid) replaces the mask's bounding box, for
    detectors that predict the box themselves.
    """
    area = np.nan_to_num(frame.geo.area_cm2)
    w = np.abs(br) * area * mask
    f = float(w.sum())
    la = float((w * np.nan_to_num(frame.geo.lat)).sum() / max(f, 1e-30))
    lo = float((w * np.nan_to_num(frame.geo.lon)).sum() / max(f, 1e-30))
    sl = ndimage.find_objects(mask.astype(int))[0]
    return DetectedRegion(
        id=0,
        bbox_px=frame.to_file_bbox(*(box or (sl[0].start, sl[1].start, sl[0].stop, sl[1].stop))),
        hgs_lat=round(la, 2),
        hgs_lon=round(lo, 2),
        hgc_lon=round((lo + frame.l0_deg) % 360, 2),
        area_uhem=round(measures.total_area_uhem(area, mask & (np.abs(br) > threshold_g)), 1),
        usflux_mx=f,
        confidence=round(confidence, 3),
        _slices=sl,
        _mask=mask[sl],
    )


def to_json(r: DetectedRegion) -> dict[str, Any]:
    """The public fields of a detection."""
    out = {k: v for k, v in asdict(r).items() if not k.startswith("_")}
    out["mtwilson"] = r.mtwilson or None  # no class is null, not a class name
    return out
