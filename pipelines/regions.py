"""Active regions on full-disk magnetograms: preprocessing, detection, Mt. Wilson classes, tracking.

Preprocessing (``hmi.M_720s_nrt``): units and geometry checked, the frame rotated north up by
an exact multiple of 90 deg (HMI stores CROTA2 ~ 180; the small remainder is kept in the
geometry), binned by an integer factor only (never resampled), and every pixel given its
exact Stonyhurst position, mu and surface area (:func:`heliowatch.models.measures.disk_geometry`).

Detection, the physics baseline in the manner of SMART (Higgins et al. 2011): the radial
field ``B_LOS / mu`` is smoothed, thresholded, grown, labelled; fragments closer than a few
degrees are merged into one region; regions below a minimum area or flux are dropped. Each
region gets a bounding box (in the file's pixel grid), a flux-weighted HGS and Carrington
centre, its area, unsigned flux and a confidence.

Classification by rules on the measures (:func:`classify_rules`): the balance of the two
polarities (alpha), how well one line separates them (beta, beta-gamma, gamma), and delta
spots (opposite umbrae within 2 deg). Class probabilities are heuristic margins of those rules,
not calibrated frequencies.

Tracking: a region keeps its id from frame to frame when a region of the previous frame,
rotated differentially to the new time, lies within a few degrees.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from heliowatch.daemon.errors import DataRejected, UsageError
from heliowatch.models import measures
from heliowatch.models.synthetic.regions import MTWILSON_CLASSES

__all__ = [
    "DetectedRegion",
    "Frame",
    "Tracker",
    "classify_cutout",
    "classify_rules",
    "describe_region",
    "detect",
    "identify",
    "match_position",
    "merge_fragments",
    "number_by_flux",
    "preprocess",
    "radial_field",
    "region_classifier",
    "region_detector",
]

_GAUSS_UNITS = {"gauss", "g", "mx/cm^2", "mx/cm2", "mx cm-2"}


@dataclass
class Frame:
    """A preprocessed full-disk frame: north up, binned, with per-pixel geometry."""

    data: np.ndarray
    geo: measures.DiskGeometry
    factor: int
    rot_k: int
    shape_file: tuple[int, int]
    t_rec_utc: str
    l0_deg: float
    path: str
    source: Any = None  # the FitsFrame read from disk (file pixels, header): quicklooks and cutouts reuse it

    def to_file_bbox(self, y0: int, x0: int, y1: int, x1: int) -> list[int]:
        """A half-open box in this frame's grid -> ``[x0, y0, x1, y1]`` in the file's pixels."""
        f = self.factor
        ny, nx = self.shape_file
        fx0, fy0, fx1, fy1 = x0 * f, y0 * f, min(x1 * f, nx), min(y1 * f, ny)
        if self.rot_k == 2:
            fx0, fx1 = nx - fx1, nx - fx0
            fy0, fy1 = ny - fy1, ny - fy0
        return [int(fx0), int(fy0), int(fx1), int(fy1)]


def preprocess(path: Path | str, *, max_side: int = 1024) -> Frame:
    """Read, check and normalise a full-disk LOS magnetogram.

    Raises
    ------
    UsageError
        For a file that is not a full-disk magnetogram in Gauss, has no valid pixel, or is
        truncated/corrupt (one line, naming the problem).
    """
    from heliowatch.pipelines.fitsio import tai_to_utc  # noqa: PLC0415
    from heliowatch.pipelines.ingest import load_frame  # noqa: PLC0415

    p = Path(path)
    try:
        frame = load_frame(p)
    except DataRejected as e:
        raise UsageError(str(e)) from e
    kw = frame.keyword
    if not str(kw("CTYPE1", "")).startswith("HPLN"):
        msg = f"{p.name}: not a full-disk frame (CTYPE1={kw('CTYPE1')!r}; expected HPLN-TAN)"
        raise UsageError(msg)
    unit = str(kw("BUNIT", "")).strip().lower()
    content = str(kw("CONTENT", "")).upper()
    if unit not in _GAUSS_UNITS:
        msg = f"{p.name}: BUNIT={kw('BUNIT')!r} is not a magnetic field unit (Gauss); not a magnetogram"
        raise UsageError(msg)
    if content and "MAGNETOGRAM" not in content:
        msg = f"{p.name}: CONTENT={content!r} is not a magnetogram"
        raise UsageError(msg)
    data = frame.data.astype(np.float64)
    if not np.isfinite(data).any():
        msg = f"{p.name}: every pixel is NaN"
        raise UsageError(msg)
    for key in ("CDELT1", "CRPIX1", "CRPIX2", "DSUN_OBS", "CRLT_OBS", "T_REC"):
        if kw(key) is None:
            msg = f"{p.name}: keyword {key} is missing (needed for the disk geometry)"
            raise UsageError(msg)
    crota = float(kw("CROTA2", 0.0) or 0.0)
    k = round((crota % 360) / 90) % 4
    if k not in (0, 2):
        msg = f"{p.name}: CROTA2={crota:.1f} is not ~0 or ~180 deg"
        raise UsageError(msg)
    rest = crota - 90 * k
    ny, nx = data.shape
    crpix1, crpix2 = float(kw("CRPIX1")), float(kw("CRPIX2"))
    if k == 2:
        data = data[::-1, ::-1]
        crpix1, crpix2 = nx + 1 - crpix1, ny + 1 - crpix2
    f = max(1, math.ceil(max(data.shape) / max_side))
    if f > 1:
        data = measures.bin_mean(data, f, ignore_nan=True)
        crpix1, crpix2 = (crpix1 - 0.5) / f + 0.5, (crpix2 - 0.5) / f + 0.5
    geo = measures.disk_geometry(
        data.shape,
        cdelt_arcsec=float(kw("CDELT1")) * f,
        crpix=(crpix1, crpix2),
        dsun_m=float(kw("DSUN_OBS")),
        b0_deg=float(kw("CRLT_OBS")),
        crota_deg=rest,
    )
    return Frame(
        data=np.where(np.isfinite(geo.mu), data, np.nan),
        geo=geo,
        factor=f,
        rot_k=k,
        shape_file=(ny, nx),
        t_rec_utc=tai_to_utc(str(kw("T_REC"))),
        l0_deg=float(kw("CRLN_OBS", 0.0) or 0.0),
        path=str(p),
        source=frame,
    )


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
    mtwilson: str = ""
    class_probs: dict[str, float] = field(default_factory=dict)
    measures: dict[str, float] = field(default_factory=dict)
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


def _mm_per_px(frame: Frame) -> float:
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
    px = _mm_per_px(frame)
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


def _sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z))


def classify_rules(
    br: np.ndarray,
    deg_per_px: float | np.ndarray,
    area_cm2: float | np.ndarray,
    *,
    mask: np.ndarray | None = None,
    spot_g: float = 1000.0,
    umbra_g: float = 1300.0,
    min_umbra_px: int = 6,
    penumbra_g: float | None = 400.0,
    beta_sep: float = 0.95,
    gamma_sep: float = 0.75,
) -> tuple[str, dict[str, float], dict[str, float]]:
    """Mt. Wilson class of a region's radial field by rules; returns (class, probabilities, measures).

    - alpha: the minority polarity carries < 25 % of the flux in spots (``|Br| > spot_g``),
      so plage of the other polarity does not count (real alpha HARP 7115 on 2017-09-01: 0.1 %;
      the real beta-gamma-deltas here: 38-43 %);
    - beta / beta-gamma / gamma: how well one straight line separates the strong positive from
      the strong negative field (flux-weighted accuracy of a linear discriminant on pixel
      positions: >= 0.95 beta, 0.75-0.95 beta-gamma, below gamma; NOAA issued no pure gamma in
      2010-2019, so gamma is kept for thoroughly mixed regions);
    - delta: opposite-polarity umbrae (``|Br| > umbra_g``) closer than 2 deg that share a
      penumbra: the path between them stays above ``penumbra_g`` except where it crosses the
      inversion line (:func:`~heliowatch.models.measures.delta_spots`), so two separate spots
      2 deg apart across quiet field are not a delta.
    """
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis  # noqa: PLC0415

    b = np.nan_to_num(br.astype(np.float64))
    if mask is not None:
        b = np.where(mask, b, 0.0)
    a = np.broadcast_to(area_cm2, b.shape)
    strong = np.abs(b) > spot_g
    pos = float((np.clip(b, 0, None) * a)[strong].sum())
    neg = float((np.clip(-b, 0, None) * a)[strong].sum())
    minority = min(pos, neg) / max(pos + neg, 1e-30)
    yy, xx = np.nonzero(strong)
    acc = 1.0
    if minority > 0 and len(yy) > 10:
        sel = np.linspace(0, len(yy) - 1, min(len(yy), 5000)).astype(int)
        scale = np.broadcast_to(np.asarray(deg_per_px, dtype=np.float64), b.shape)[yy[sel], xx[sel]]
        feats = np.stack([xx[sel] * scale, yy[sel] * scale], 1)
        sign = (b[yy[sel], xx[sel]] > 0).astype(int)
        w = np.abs(b[yy[sel], xx[sel]])
        if sign.min() != sign.max():
            lda = LinearDiscriminantAnalysis().fit(feats, sign)
            acc = float(np.average(lda.predict(feats) == sign, weights=w))
    delta = measures.delta_spots(b, deg_per_px, umbra_g=umbra_g, min_umbra_px=min_umbra_px, penumbra_g=penumbra_g)
    m = {"minority_fraction": minority, "separability": acc, "delta_separation_deg": delta.min_separation_deg}
    p_alpha = _sigmoid((0.25 - minority) / 0.03)
    # Beta -> beta-gamma -> gamma as separability falls (soft boundaries).
    s_b = _sigmoid((acc - beta_sep) / 0.01)
    s_g = _sigmoid((gamma_sep - acc) / 0.02)
    s_bg = max(0.0, 1 - s_b - s_g)
    sep = delta.min_separation_deg
    p_delta = _sigmoid((2.0 - sep) / 0.3) if math.isfinite(sep) else 0.0
    base = {"beta": s_b, "beta-gamma": s_bg, "gamma": s_g}
    probs = {"alpha": p_alpha * (1 - p_delta)}
    for cls, s in base.items():
        probs[cls] = (1 - p_alpha) * s * (1 - p_delta)
        probs[f"{cls}-delta"] = (1 - p_alpha) * s * p_delta
    probs["beta-delta"] += p_alpha * p_delta  # a delta needs two polarities: at least beta
    total = sum(probs.values())
    probs = {k: round(v / total, 4) for k, v in probs.items() if k in MTWILSON_CLASSES}
    return max(probs, key=lambda k: probs[k]), probs, m


def classify_regions(frame: Frame, regions: list[DetectedRegion], *, cnn: Any = None) -> None:
    """Classify every detected region in place (on the frame's radial field).

    With ``cnn`` (a :class:`~heliowatch.models.runtime.runtime.Runtime` of ``region-classifier``)
    the CNN's probabilities decide and the rules' class is kept in ``measures``; otherwise the
    rules decide.
    """
    br = radial_field(frame)
    # Degrees per pixel on the sphere: the pixel's side in Mm / 12.15 Mm per degree.
    side_mm = np.sqrt(np.nan_to_num(frame.geo.area_cm2)) / 1e8
    deg = side_mm / (measures.RSUN_REF_M * math.pi / 180 / 1e6)
    for r in regions:
        sl = r._slices
        cls, probs, m = classify_rules(br[sl], deg[sl], np.nan_to_num(frame.geo.area_cm2[sl]), mask=r._mask)
        r.mtwilson, r.class_probs, r.measures = cls, probs, {k: round(v, 4) for k, v in m.items()}
    if cnn is not None and regions:
        from heliowatch.models.region_cnn import region_crops  # noqa: PLC0415
        from heliowatch.models.synthetic.regions import SYNTH_CLASSES  # noqa: PLC0415

        p = cnn.predict(region_crops(frame, regions))
        for r, row in zip(regions, p, strict=True):
            r.measures["rules_class"] = r.mtwilson  # type: ignore[assignment]
            r.class_probs = {c: round(float(v), 4) for c, v in zip(SYNTH_CLASSES, row, strict=True)}
            r.mtwilson = max(r.class_probs, key=lambda c: r.class_probs[c])


class Tracker:
    """Carry region ids across frames with differential rotation."""

    def __init__(self, *, match_deg: float = 5.0) -> None:
        self.match_deg = match_deg
        self.prev: list[tuple[int, float, float, str]] = []  # (track id, lat, lon, class)
        self.prev_time: dt.datetime | None = None
        self.next_id = 1

    @staticmethod
    def rate_deg_per_day(lat: float) -> float:
        """Synodic differential rotation (Snodgrass & Ulrich 1990, sidereal minus Earth's orbital rate)."""
        s2 = math.sin(math.radians(lat)) ** 2
        return 14.71 - 2.39 * s2 - 1.78 * s2 * s2 - 0.986

    def update(self, regions: list[DetectedRegion], t_utc: str) -> dict[int, str | None]:
        """Assign ``track_id``s; returns track id -> the class it had in the previous frame."""
        t = dt.datetime.fromisoformat(t_utc.replace("Z", "+00:00"))
        days = (t - self.prev_time).total_seconds() / 86400 if self.prev_time else 0.0
        prior: dict[int, str | None] = {}
        used: set[int] = set()
        for r in regions:
            best, best_d = None, self.match_deg
            for tid, la, lo, cls in self.prev:
                if tid in used:
                    continue
                lo_now = lo + self.rate_deg_per_day(la) * days
                d = math.hypot(r.hgs_lat - la, (r.hgs_lon - lo_now) * math.cos(math.radians(la)))
                if d < best_d:
                    best, best_d = (tid, cls), d
            if best is None:
                r.track_id = self.next_id
                self.next_id += 1
                prior[r.track_id] = None
            else:
                r.track_id = best[0]
                used.add(best[0])
                prior[r.track_id] = best[1]
        self.prev = [(r.track_id or 0, r.hgs_lat, r.hgs_lon, r.mtwilson) for r in regions]
        self.prev_time = t
        return prior


def region_classifier(kind: str, *, export_dir: Path, metrics: Any = None, backend: str = "auto") -> tuple[Any, str]:
    """The CNN runtime when asked for and trained, else None; and a description for products."""
    from heliowatch.models import registry  # noqa: PLC0415

    card = registry.load_card("region-classifier")
    trained = card.get("training", {}).get("kind", "none") != "none"
    if kind != "cnn" or not trained:
        return None, "rules on field measures (heuristic probabilities)"
    from heliowatch.models.runtime.runtime import Runtime  # noqa: PLC0415

    rt = Runtime("region-classifier", export_dir=export_dir, metrics=metrics, backend=backend)
    tag = "synthetic-trained" if card["training"].get("synthetic") else "real-data"
    return rt, f"region-classifier {card['version']} CNN ({tag})"


def region_detector(kind: str, *, export_dir: Path, metrics: Any = None, backend: str = "auto") -> tuple[Any, str]:
    """A ``frame -> regions`` detector and its description for products.

    ``cnn`` needs trained region-detector weights; without them this is a
    :class:`~heliowatch.daemon.errors.UsageError`, not a silent fall-back to the baseline.
    """
    if kind != "cnn":
        return detect, "smart-like physics baseline"
    from heliowatch.models import registry  # noqa: PLC0415
    from heliowatch.models.region_detector import detect_cnn  # noqa: PLC0415
    from heliowatch.models.runtime.runtime import Runtime  # noqa: PLC0415

    card = registry.load_card("region-detector")
    if card.get("training", {}).get("kind", "none") == "none":
        msg = "models.region_detector = 'cnn' but the region-detector has no trained weights (heliowatch train region-detector)"
        raise UsageError(msg)
    rt = Runtime("region-detector", export_dir=export_dir, metrics=metrics, backend=backend)
    tag = "synthetic-trained" if card["training"].get("synthetic") else "real-data"
    return (lambda frame: detect_cnn(frame, rt)), f"region-detector {card['version']} CNN ({tag})"


def match_position(
    lat: float,
    lon: float,
    t_utc: str,
    candidates: list[dict[str, Any]],
    *,
    max_deg: float = 5.0,
    max_hours: float = 3.0,
) -> dict[str, Any] | None:
    """The candidate (with ``hgs_lat``, ``hgs_lon``, ``t_rec_utc``) nearest a position, after
    rotating it differentially to ``t_utc``; None when none is within ``max_deg`` and ``max_hours``.

    Used to join detections with SHARP/NOAA regions: HARP numbers differ between NRT and
    definitive series, so regions are joined on position and time, never on HARPNUM.
    """
    t = dt.datetime.fromisoformat(t_utc.replace("Z", "+00:00"))
    best, best_d = None, max_deg
    for c in candidates:
        tc = dt.datetime.fromisoformat(str(c["t_rec_utc"]).replace("Z", "+00:00"))
        hours = (t - tc).total_seconds() / 3600
        if abs(hours) > max_hours:
            continue
        lon_now = c["hgs_lon"] + Tracker.rate_deg_per_day(c["hgs_lat"]) * hours / 24
        d = math.hypot(lat - c["hgs_lat"], (lon - lon_now) * math.cos(math.radians(lat)))
        if d < best_d:
            best, best_d = c, d
    return best


def classify_cutout(path: Path, *, cnn: Any = None) -> dict[str, Any]:
    """Mt. Wilson class of one SHARP CEA patch (any of its segment files), by rules or the CNN.

    The rules see the radial field at the patch's 0.03 deg/px; the CNN sees it binned 4x to
    0.12 deg/px (~2"/px at disk centre), its training plate scale.

    Raises
    ------
    UsageError
        If the file is not a SHARP CEA patch or has no valid pixel.
    """
    from heliowatch.models.region_cnn import crop  # noqa: PLC0415
    from heliowatch.models.synthetic.regions import SYNTH_CLASSES  # noqa: PLC0415
    from heliowatch.pipelines.flares import read_sharp_record  # noqa: PLC0415

    inp = read_sharp_record(path)  # checks it is a CEA cutout; gives the LOS field
    if inp.patch is None:
        msg = f"{Path(path).name}: the patch has no valid pixels"
        raise UsageError(msg)
    mu = math.cos(math.radians(inp.lat or 0)) * math.cos(math.radians(inp.lon or 0))
    br = inp.patch / max(mu, 0.1)
    cls, probs, m = classify_rules(br, 0.03, measures.cea_pixel_area_cm2(0.03))
    out_m: dict[str, Any] = dict(m)
    if cnn is not None:
        b4 = measures.bin_mean(br, 4)
        row = cnn.predict(crop(b4, b4.shape[0] / 2, b4.shape[1] / 2, inp.lat or 0.0)[None, None])[0]
        out_m["rules_class"] = cls
        probs = {c: round(float(v), 4) for c, v in zip(SYNTH_CLASSES, row, strict=True)}
        cls = max(probs, key=lambda c: probs[c])
    return {
        "file": str(path),
        "harpnum": inp.harpnum,
        "noaa_ar": inp.noaa_ar,
        "t_rec_utc": inp.t_rec_utc,
        "mtwilson": cls,
        "class_probs": probs,
        "measures": {k: round(v, 4) if isinstance(v, float) else v for k, v in out_m.items()},
    }


def identify(
    r: DetectedRegion, t_utc: str, *, srs: Any = None, sharps: list[dict[str, Any]] | None = None, max_deg: float = 6.0
) -> dict[str, Any]:
    """Catalogue identity of a detection: NOAA number and NOAA's class from an SRS report, HARP
    number from the SHARP records seen so far (``hgs_lat``, ``hgs_lon``, ``t_rec_utc``, ``harpnum``,
    ``noaa_ar``; NRT SHARPs lag the magnetograms, so up to 6 h back, rotated to ``t_utc``).

    Returns ``{"noaa_ar", "harpnum", "srs"}``; the SRS number wins over the SHARP's NOAA_AR.
    """
    from heliowatch.pipelines.srs import match_noaa  # noqa: PLC0415

    out: dict[str, Any] = {"noaa_ar": None, "harpnum": None, "srs": None}
    if srs is not None:
        hit = match_noaa(r.hgs_lat, r.hgs_lon, t_utc, srs, max_deg=max_deg)
        out["srs"] = {"issued": srs.issued.isoformat(), "match": None}
        if hit is not None:
            out["noaa_ar"] = hit.noaa
            out["srs"] = {
                "issued": srs.issued.isoformat(),
                "mtwilson": hit.mtwilson,
                "mcintosh": hit.mcintosh,
                "area_uhem": hit.area_uhem,
            }
    sharp = match_position(
        r.hgs_lat, r.hgs_lon, t_utc, [s for s in sharps or [] if s.get("hgs_lat") is not None], max_deg=max_deg, max_hours=6.0
    )
    if sharp is not None:
        out["harpnum"] = sharp.get("harpnum")
        out["noaa_ar"] = out["noaa_ar"] or sharp.get("noaa_ar")
    return out


def to_json(r: DetectedRegion) -> dict[str, Any]:
    """The public fields of a detection."""
    return {k: v for k, v in asdict(r).items() if not k.startswith("_")}
