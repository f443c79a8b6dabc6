"""Mt. Wilson classes by rules on the field measures, or by the region CNN.

The balance of the two polarities (alpha), how well one line separates them (beta,
beta-gamma, gamma), and delta spots (opposite umbrae within 2 deg sharing a penumbra) give each
class a score; the scores are combined with NOAA's class climatology and a temperature fitted on
real labelled patches (:mod:`heliowatch.models.regions.calibration`), so a class NOAA practically
never issues needs overwhelming evidence and no class is reported at 0 or 1.

Two outcomes carry no class (``mtwilson`` empty, ``outcome`` says why):

- ``no-spot-group``: too little flux at spot strength (``|Br| > 1000 G``, :data:`MIN_SPOT_FLUX_MX`):
  spotless plage, or a patch NOAA would not number; Mt. Wilson classes describe spot groups only.
- ``limb``: the centre is farther than the limb guard from the central meridian; the radial field
  there is the line-of-sight field over a small mu and classes are not trusted (probabilities
  flattened towards NOAA's plain class mix, ``flags: ["limb"]``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from heliowatch.models import measures
from heliowatch.models.core.vocabulary import CLASS_OUTCOMES
from heliowatch.models.region_cnn import region_crops
from heliowatch.models.regions.calibration import ClassCalibration, default_calibration
from heliowatch.models.regions.detect import DetectedRegion
from heliowatch.models.regions.frame import Frame
from heliowatch.models.regions.rules import rule_scores
from heliowatch.models.synthetic.regions import SYNTH_CLASSES

__all__ = [
    "CLASSIFIED",
    "LIMB",
    "LIMB_GUARD_DEG",
    "MAX_INV_MU",
    "NO_SPOT_GROUP",
    "MtWilsonResult",
    "classify_regions",
    "classify_rules",
    "inv_mu",
    "rule_scores",
]

CLASSIFIED, NO_SPOT_GROUP, LIMB = CLASS_OUTCOMES

#: Default limb guard: no class beyond this central-meridian distance (``regions.limb_guard_deg``).
LIMB_GUARD_DEG = 70.0
#: Largest 1/mu applied when turning the LOS field into a radial one (mu = 0.5, 60 deg from disk
#: centre): beyond, 1/mu turns noise and plage into "umbrae" (a false delta at LON 75).
MAX_INV_MU = 2.0
#: Temperature factor of the limb guard's flattened probabilities.
LIMB_FLATTEN = 8.0
#: A spot group needs at least this flux (Mx) in |Br| > spot_g: one pore of ~1.5 Mm diameter at
#: 1500 G (3e16 cm^2); chosen a priori, not on the patches.
MIN_SPOT_FLUX_MX = 3e19

_CALIBRATION: ClassCalibration | None = None


def _default() -> ClassCalibration:
    global _CALIBRATION  # read the JSON once per process
    if _CALIBRATION is None:
        _CALIBRATION = default_calibration()
    return _CALIBRATION


def inv_mu(lat_deg: float | None, lon_deg: float | None) -> float:
    """``1 / mu`` of a patch centre, capped at :data:`MAX_INV_MU` (unknown position: 1)."""
    mu = math.cos(math.radians(lat_deg or 0.0)) * math.cos(math.radians(lon_deg or 0.0))
    return 1.0 / max(mu, 1.0 / MAX_INV_MU)


@dataclass
class MtWilsonResult:
    """A classification: ``mtwilson`` is empty unless ``outcome`` is ``classified``."""

    mtwilson: str
    class_probs: dict[str, float]
    measures: dict[str, float]
    outcome: str = CLASSIFIED
    flags: list[str] = field(default_factory=list)


def _spotless(m: dict[str, float], min_spot_flux_mx: float) -> bool:
    # Flux, not umbral pixels: on a full disk binned to 2"/px small umbrae average below umbra_g.
    return m["spot_flux_mx"] < min_spot_flux_mx


def classify_rules(
    br: np.ndarray,
    deg_per_px: float | np.ndarray,
    area_cm2: float | np.ndarray,
    *,
    mask: np.ndarray | None = None,
    cmd_deg: float | None = None,
    limb_guard_deg: float = LIMB_GUARD_DEG,
    calibration: ClassCalibration | None = None,
    min_umbra_px: int = 6,
    min_spot_flux_mx: float = MIN_SPOT_FLUX_MX,
    **rules: Any,
) -> MtWilsonResult:
    """Mt. Wilson class of a region's radial field: rule scores, calibrated, with the two
    no-class outcomes (see the module docstring).

    Parameters
    ----------
    br, deg_per_px, area_cm2, mask
        As :func:`rule_scores` (``rules`` passes its thresholds on).
    cmd_deg : float, optional
        The region centre's central-meridian distance (|Stonyhurst longitude|); None: unknown,
        no limb guard.
    limb_guard_deg : float
        No class beyond this central-meridian distance.
    calibration : ClassCalibration, optional
        Default: the shipped one (:func:`~heliowatch.models.regions.calibration.default_calibration`).
    min_umbra_px : int
        Smallest umbra of a delta (:func:`rule_scores`).
    min_spot_flux_mx : float
        A spot group needs this much flux in ``|Br| > spot_g`` (else ``no-spot-group``).
    """
    scores, m = rule_scores(br, deg_per_px, area_cm2, mask=mask, min_umbra_px=min_umbra_px, **rules)
    cal = calibration or _default()
    if cmd_deg is not None and abs(cmd_deg) > limb_guard_deg:
        # Flattened towards NOAA's plain class mix: at the limb the field says little beyond it.
        probs = dataclasses.replace(cal, prior_mode="joint").apply(scores, flatten=LIMB_FLATTEN)
        return MtWilsonResult("", _round(probs), m, LIMB, ["limb"])
    if _spotless(m, min_spot_flux_mx):
        return MtWilsonResult("", {}, m, NO_SPOT_GROUP)
    probs = _round(cal.apply(scores))
    return MtWilsonResult(max(probs, key=lambda k: probs[k]), probs, m)


def _round(probs: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 4) for k, v in probs.items()}


def classify_regions(
    frame: Frame,
    regions: list[DetectedRegion],
    *,
    cnn: Any = None,
    limb_guard_deg: float = LIMB_GUARD_DEG,
) -> None:
    """Classify every detected region in place (on the frame's radial field).

    With ``cnn`` (a :class:`~heliowatch.models.runtime.runtime.Runtime` of ``region-classifier``)
    the CNN's probabilities decide and the rules' class is kept in ``measures``; otherwise the
    rules decide. Either way the rules' no-class outcomes (no spot group, beyond the limb guard)
    stand: the CNN was trained on synthetic spot groups away from the limb.
    """
    # B_LOS / mu with 1/mu capped, as for patches (the limb guard then withholds the class).
    mu = np.nan_to_num(frame.geo.mu)
    br = np.where(mu > 0.1, np.nan_to_num(frame.data) / np.maximum(mu, 1.0 / MAX_INV_MU), 0.0)
    # Degrees per pixel on the sphere: the pixel's side in Mm / 12.15 Mm per degree.
    side_mm = np.sqrt(np.nan_to_num(frame.geo.area_cm2)) / 1e8
    deg = side_mm / (measures.RSUN_REF_M * math.pi / 180 / 1e6)
    for r in regions:
        sl = r._slices
        res = classify_rules(
            br[sl], deg[sl], np.nan_to_num(frame.geo.area_cm2[sl]), mask=r._mask, cmd_deg=r.hgs_lon, limb_guard_deg=limb_guard_deg
        )
        r.mtwilson, r.class_probs, r.outcome, r.flags = res.mtwilson, res.class_probs, res.outcome, res.flags
        r.measures = {k: round(v, 4) if abs(v) < 1e6 else float(f"{v:.4g}") for k, v in res.measures.items()}
    if cnn is not None and regions:
        p = cnn.predict(region_crops(frame, regions))
        for r, row in zip(regions, p, strict=True):
            if r.outcome != CLASSIFIED:
                continue
            r.measures["rules_class"] = r.mtwilson  # type: ignore[assignment]
            r.class_probs = {c: round(float(v), 4) for c, v in zip(SYNTH_CLASSES, row, strict=True)}
            r.mtwilson = max(r.class_probs, key=lambda c: r.class_probs[c])
