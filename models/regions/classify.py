"""Mt. Wilson classes by rules on the field measures, or by the region CNN.

The balance of the two polarities (alpha), how well one line separates them (beta,
beta-gamma, gamma), and delta spots (opposite umbrae within 2 deg sharing a penumbra).
Class probabilities are heuristic margins of those rules, not calibrated frequencies.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

from heliowatch.models import measures
from heliowatch.models.core.vocabulary import MTWILSON_CLASSES
from heliowatch.models.region_cnn import region_crops
from heliowatch.models.regions.detect import DetectedRegion, radial_field
from heliowatch.models.regions.frame import Frame
from heliowatch.models.synthetic.regions import SYNTH_CLASSES

__all__ = ["classify_regions", "classify_rules"]


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
        p = cnn.predict(region_crops(frame, regions))
        for r, row in zip(regions, p, strict=True):
            r.measures["rules_class"] = r.mtwilson  # type: ignore[assignment]
            r.class_probs = {c: round(float(v), 4) for c, v in zip(SYNTH_CLASSES, row, strict=True)}
            r.mtwilson = max(r.class_probs, key=lambda c: r.class_probs[c])
