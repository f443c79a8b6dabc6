"""Mt. Wilson class probabilities turned into honest numbers: climatological priors, a temperature
fitted on real labelled patches, and a floor.

The rules (:func:`heliowatch.models.regions.rules.rule_scores`) give each class a score that
behaves like a likelihood (how well the patch fits the rule), not a frequency. NOAA's classes are
far from equally common (1996-2022: beta 58 %, alpha 30 %, gamma 4 and gamma-delta 10 of
~35,000 region-days), so the calibrated probability is

    p_c  ∝  prior_c ** prior_weight  *  score_c ** (1 / temperature),

then mixed with a floor (``p = floor + (1 - n * floor) * p``) so that no class is ever reported
at 0 or 1. ``prior_weight`` is 1 (Bayes' rule) a priori; only the temperature is fitted, by the
mean log-probability of the true class on labelled patches (:func:`fit_calibration`), because five
real regions cannot pin down more than one number.

By default (``prior_mode="within-delta"``) the prior of a class is its frequency among the classes
of its own delta group (beta-gamma-delta among the delta classes, beta among the others; the two
groups get equal prior mass): the rules' delta decision (opposite umbrae within 2 deg in one penumbra, a definition, checked on
real placements: docs/evaluation.md) stands, and the climatology arbitrates only the
alpha/beta/beta-gamma/gamma part, where rare classes (gamma, gamma-delta, pure delta) were being
chosen. The ``joint`` prior (the plain class frequencies) turns a delta at 1.4 deg (rule score
0.88) into a beta, since NOAA's beta is 20 times as common as beta-gamma-delta; both are
evaluated in docs/evaluation.md.

Reading the labelled patches needs the FITS files and the SRS, which live a layer up:
:func:`heliowatch.pipelines.regions.load_labelled_patches` builds the :class:`LabelledPatch` list
(models never import pipelines).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from heliowatch.models.core.vocabulary import MTWILSON_CLASSES
from heliowatch.models.regions.rules import rule_scores

__all__ = [
    "PRIORS_PATH",
    "ClassCalibration",
    "LabelledPatch",
    "default_calibration",
    "fit_calibration",
    "leave_one_region_out",
    "load_priors",
    "srs_class_priors",
]

#: The SRS class climatology and the shipped calibration (JSON, with provenance).
PRIORS_PATH = Path(__file__).resolve().parents[1] / "weights" / "mtwilson-priors.json"

#: Temperatures tried by :func:`fit_calibration` (log-spaced from 1, the rules' scores as they are:
#: the rules are never made sharper than they are).
TEMPERATURES: tuple[float, ...] = tuple(round(float(t), 3) for t in np.geomspace(1.0, 16.0, 25))

#: Smallest score a class may have before the prior is applied (the rules' sigmoids reach 0).
SCORE_FLOOR = 1e-6


@dataclass
class LabelledPatch:
    """A real region patch with NOAA's class for its day.

    ``field`` is the radial field in G (0 outside the patch), ``deg_per_px`` the CEA plate scale,
    ``area_cm2`` the area of one pixel, ``mask`` the HARP mask (None: the whole patch), ``label``
    the SRS Mt. Wilson class (lower case, as :data:`MTWILSON_CLASSES`), ``region`` what groups
    patches for leave-one-region-out (``"HARP 377"``), ``lon_deg`` the patch centre's Stonyhurst
    longitude (for the limb guard), ``name`` the file.
    """

    field: np.ndarray
    deg_per_px: float
    area_cm2: float
    mask: np.ndarray | None
    label: str
    region: str
    name: str = ""
    lon_deg: float | None = None
    noaa_ar: int | None = None
    t_rec_utc: str = ""
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


def patch_scores(p: LabelledPatch) -> dict[str, float]:
    """The rules' class scores of a labelled patch (what the calibration is fitted on)."""
    return rule_scores(p.field, p.deg_per_px, p.area_cm2, mask=p.mask)[0]


@dataclass(frozen=True)
class ClassCalibration:
    """Priors, prior weight, temperature and floor applied to the rules' class scores."""

    priors: Mapping[str, float]
    temperature: float = 1.0
    prior_weight: float = 1.0
    floor: float = 0.005
    prior_mode: str = "within-delta"  # or "joint" (see the module docstring)

    def apply(self, class_probs: Mapping[str, float], *, flatten: float = 1.0) -> dict[str, float]:
        """Calibrated probabilities of every Mt. Wilson class from the rules' scores.

        Parameters
        ----------
        class_probs : mapping
            The rules' scores (or probabilities) per class; missing classes count as 0.
        flatten : float
            Extra temperature factor (> 1 flattens): the limb guard uses it so that a patch
            whose field cannot be trusted keeps no confident class.

        Returns
        -------
        dict
            ``{class: p}`` over :data:`MTWILSON_CLASSES`, summing to 1, each in
            ``[floor, 1 - (n - 1) * floor]``.
        """
        t = self.temperature * max(flatten, 1e-9)
        pri = self.effective_priors()
        logs = {}
        for c in MTWILSON_CLASSES:
            s = max(float(class_probs.get(c, 0.0)), SCORE_FLOOR)
            logs[c] = self.prior_weight * math.log(max(pri[c], 1e-12)) + math.log(s) / t
        top = max(logs.values())
        w = {c: math.exp(v - top) for c, v in logs.items()}
        total = sum(w.values())
        n = len(MTWILSON_CLASSES)
        return {c: self.floor + (1 - n * self.floor) * v / total for c, v in w.items()}

    def effective_priors(self) -> dict[str, float]:
        """The priors as applied: joint class frequencies, or (``within-delta``) each class's
        frequency among the classes of its delta group (delta classes among delta classes)."""
        pri = {c: float(self.priors.get(c, 0.0)) for c in MTWILSON_CLASSES}
        if self.prior_mode == "joint":
            return pri
        groups = {True: 0.0, False: 0.0}
        for c, v in pri.items():
            groups[_is_delta(c)] += v
        return {c: v / max(groups[_is_delta(c)], 1e-30) for c, v in pri.items()}

    def to_json(self) -> dict[str, Any]:
        """The calibration's numbers, for the priors JSON."""
        return {
            "temperature": self.temperature,
            "prior_weight": self.prior_weight,
            "floor": self.floor,
            "prior_mode": self.prior_mode,
        }


def _is_delta(c: str) -> bool:
    return c.endswith("delta")


def srs_class_priors(counts: Mapping[str, int], *, pseudocount: float = 0.5) -> dict[str, float]:
    """Class frequencies from SRS region-day counts, with a pseudocount so that a class NOAA
    never issued (``delta``) is rare, not impossible."""
    total = sum(counts.get(c, 0) + pseudocount for c in MTWILSON_CLASSES)
    return {c: (counts.get(c, 0) + pseudocount) / total for c in MTWILSON_CLASSES}


def load_priors(path: Path = PRIORS_PATH) -> dict[str, Any]:
    """The priors JSON (``priors``, ``counts``, ``calibration``, ``provenance``)."""
    out: dict[str, Any] = json.loads(Path(path).read_text())
    return out


def default_calibration(path: Path = PRIORS_PATH) -> ClassCalibration:
    """The shipped calibration: SRS 1996-2022 priors and the temperature fitted on every real patch."""
    doc = load_priors(path)
    cal = doc.get("calibration", {})
    return ClassCalibration(
        priors=doc["priors"],
        temperature=float(cal.get("temperature", 1.0)),
        prior_weight=float(cal.get("prior_weight", 1.0)),
        floor=float(cal.get("floor", 0.005)),
        prior_mode=str(cal.get("prior_mode", "within-delta")),
    )


def _mean_log_true(scores: Sequence[Mapping[str, float]], labels: Sequence[str], cal: ClassCalibration) -> float:
    return float(np.mean([math.log(cal.apply(s)[y]) for s, y in zip(scores, labels, strict=True)]))


def fit_calibration(
    patches: Iterable[LabelledPatch],
    *,
    priors: Mapping[str, float] | None = None,
    prior_weight: float = 1.0,
    floor: float = 0.005,
    prior_mode: str = "within-delta",
    scores: Sequence[Mapping[str, float]] | None = None,
) -> ClassCalibration:
    """Fit the temperature on labelled patches (maximum mean log-probability of the true class).

    Parameters
    ----------
    patches : iterable of LabelledPatch
        The training patches (for leave-one-region-out, every region but the held-out one).
    priors : mapping, optional
        Class priors; default the shipped SRS 1996-2022 climatology.
    prior_weight, floor : float
        Fixed a priori (see the module docstring).
    prior_mode : str
        ``within-delta`` (default) or ``joint``.
    scores : sequence of mappings, optional
        The rules' scores of ``patches`` if already computed (saves recomputing them).

    Returns
    -------
    ClassCalibration
        With the best temperature of :data:`TEMPERATURES`; with no patch, temperature 1.
    """
    ps = list(patches)
    pri = dict(priors) if priors is not None else load_priors()["priors"]
    if not ps:
        return ClassCalibration(pri, 1.0, prior_weight, floor, prior_mode)
    sc = list(scores) if scores is not None else [patch_scores(p) for p in ps]
    labels = [p.label for p in ps]
    best = max(
        TEMPERATURES,
        key=lambda t: (
            _mean_log_true(sc, labels, ClassCalibration(pri, t, prior_weight, floor, prior_mode)),
            -abs(math.log(t)),  # ties: the temperature closest to 1
        ),
    )
    return ClassCalibration(pri, best, prior_weight, floor, prior_mode)


def leave_one_region_out(
    patches: Sequence[LabelledPatch], *, priors: Mapping[str, float] | None = None, prior_mode: str = "within-delta"
) -> list[dict[str, Any]]:
    """Every patch classified by a calibration fitted on the other regions only.

    Returns one row per patch: ``name``, ``region``, ``label``, ``before`` (the rules' scores
    normalised, no prior, no temperature: the classifier as it was), ``after`` (calibrated),
    each with ``class`` and ``p_true``, and the held-out fit's ``temperature``.
    """
    pri = dict(priors) if priors is not None else load_priors()["priors"]
    sc = [patch_scores(p) for p in patches]
    rows = []
    for i, p in enumerate(patches):
        train = [j for j, q in enumerate(patches) if q.region != p.region]
        cal = fit_calibration([patches[j] for j in train], priors=pri, prior_mode=prior_mode, scores=[sc[j] for j in train])
        total = sum(sc[i].values()) or 1.0
        raw = {c: sc[i].get(c, 0.0) / total for c in MTWILSON_CLASSES}
        after = cal.apply(sc[i])
        rows.append(
            {
                "name": p.name,
                "region": p.region,
                "label": p.label,
                "temperature": cal.temperature,
                "before": {"class": max(raw, key=lambda c: raw[c]), "p_true": raw[p.label], "probs": raw},
                "after": {"class": max(after, key=lambda c: after[c]), "p_true": after[p.label], "probs": after},
            }
        )
    return rows
