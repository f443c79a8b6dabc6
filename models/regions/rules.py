"""The Mt. Wilson rules' class scores on a region's radial field (before priors and calibration).

The balance of the two polarities (alpha), how well one line separates them (beta, beta-gamma,
gamma), and delta spots (opposite umbrae within 2 deg sharing a penumbra). The scores are margins
of those rules, not frequencies: :mod:`heliowatch.models.regions.calibration` turns them into
probabilities and :mod:`heliowatch.models.regions.classify` into a class.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

from heliowatch.models import measures
from heliowatch.models.core.vocabulary import MTWILSON_CLASSES

__all__ = ["rule_scores"]


def _sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-max(min(z, 700.0), -700.0)))


def rule_scores(
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
) -> tuple[dict[str, float], dict[str, float]]:
    """The rules' score of every Mt. Wilson class (summing to 1, no prior) and the measures.

    - alpha: the minority polarity carries < 25 % of the flux in spots (``|Br| > spot_g``),
      so plage of the other polarity does not count (real alpha HARP 7115 on 2017-09-01: 0.1 %;
      the real beta-gamma-deltas here: 38-43 %);
    - beta / beta-gamma / gamma: how well one straight line separates the strong positive from
      the strong negative field (flux-weighted accuracy of a linear discriminant on pixel
      positions: >= 0.95 beta, 0.75-0.95 beta-gamma, below gamma);
    - delta: opposite-polarity umbrae (``|Br| > umbra_g``) closer than 2 deg that share a
      penumbra: the path between them stays above ``penumbra_g`` except where it crosses the
      inversion line (:func:`~heliowatch.models.measures.delta_spots`), so two separate spots
      2 deg apart across quiet field are not a delta.

    The measures add ``spot_flux_mx`` (flux in ``|Br| > spot_g``: it decides the no-spot-group
    outcome) and ``umbra_px`` (pixels above ``umbra_g``).
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
    m = {
        "minority_fraction": minority,
        "separability": acc,
        "delta_separation_deg": delta.min_separation_deg,
        "spot_flux_mx": pos + neg,
        "umbra_px": float(np.count_nonzero(np.abs(b) > umbra_g)),
    }
    p_alpha = _sigmoid((0.25 - minority) / 0.03)
    # Beta -> beta-gamma -> gamma as separability falls (soft boundaries).
    s_b = _sigmoid((acc - beta_sep) / 0.01)
    s_g = _sigmoid((gamma_sep - acc) / 0.02)
    s_bg = max(0.0, 1 - s_b - s_g)
    sep = delta.min_separation_deg
    p_delta = _sigmoid((2.0 - sep) / 0.3) if math.isfinite(sep) else 0.0
    base = {"beta": s_b, "beta-gamma": s_bg, "gamma": s_g}
    scores = {"alpha": p_alpha * (1 - p_delta)}
    for cls, s in base.items():
        scores[cls] = (1 - p_alpha) * s * (1 - p_delta)
        scores[f"{cls}-delta"] = (1 - p_alpha) * s * p_delta
    scores["beta-delta"] += p_alpha * p_delta  # a delta needs two polarities: at least beta
    total = sum(scores.values())
    return {c: scores.get(c, 0.0) / total for c in MTWILSON_CLASSES}, m
