"""The MTOT baseline: a linear discriminant of the unsigned flux at the patch centre and its trend.

Dhuri et al. (2020) compared their CNN with a discriminant analysis of the unsigned magnetic flux
alone (after Barnes et al. 2014 and Birch et al. 2016 on the HEAR regions). Here the features
of an averaging window are

- ``log10 Phi``: the unsigned LOS flux (Mx) within ``radius_px`` of the patch centre
  (14 px = 19.6 Mm by default: the size of a young region), and
- ``dlog10 Phi``: its change since the patch's previous window (320 min earlier), the trend.

A linear discriminant (:class:`sklearn.discriminant_analysis.LinearDiscriminantAnalysis`, equal
class covariances, as in the seed) gives P(emergence within 24 h) = expit(decision function).
When no previous window exists (start of data, or after a restart) a flux-only discriminant,
fitted alongside, is used instead. The fitted discriminants are kept as plain numbers in JSON
(coefficients, intercepts, threshold): no pickle.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

from heliowatch.models.core.errors import ModelError
from heliowatch.models.emergence.patches import MM_PER_PX

__all__ = ["CENTRAL_RADIUS_PX", "MtotClassifier", "central_flux_mx", "mtot_features"]

#: Radius of the central region whose unsigned flux MTOT uses, patch pixels (19.6 Mm).
CENTRAL_RADIUS_PX = 14.0
_FLOOR_MX = 1e17  # keeps log10 finite for an empty (all-NaN or zero) patch


def central_flux_mx(data: np.ndarray, *, radius_px: float = CENTRAL_RADIUS_PX, mm_per_px: float = MM_PER_PX) -> np.ndarray:
    """Unsigned flux within ``radius_px`` of the centre of each patch.

    Parameters
    ----------
    data : ndarray (..., size, size)
        Field in Gauss; NaN pixels contribute nothing (the mean over the finite pixels of the
        disk is scaled to the disk's full area).
    radius_px, mm_per_px : float
        Radius of the central disk and the plate scale (pixel area ``(mm_per_px * 1e8 cm)^2``;
        the Postel scale error is < 0.1 % within 20 Mm of the centre).

    Returns
    -------
    ndarray (...)
        Flux in Mx.
    """
    d = np.asarray(data, dtype=np.float64)
    s = d.shape[-1]
    c = (s - 1) / 2
    yy, xx = np.mgrid[0:s, 0:s]
    disk = (yy - c) ** 2 + (xx - c) ** 2 <= radius_px**2
    vals = np.abs(d[..., disk])
    fin = np.isfinite(vals)
    n = fin.sum(axis=-1)
    total = np.where(fin, vals, 0.0).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, total / np.maximum(n, 1), 0.0)
    return mean * disk.sum() * (mm_per_px * 1e8) ** 2


def mtot_features(
    current: np.ndarray, previous: np.ndarray | None = None, *, radius_px: float = CENTRAL_RADIUS_PX
) -> tuple[np.ndarray, np.ndarray]:
    """``(log10 Phi, dlog10 Phi)`` of window averages; the trend is NaN where there is no previous window.

    Parameters
    ----------
    current : ndarray (N, size, size) or (size, size)
        This window's averages.
    previous : ndarray like ``current``, or None
        The same patches' previous averages (rows may be all-NaN where missing).
    """
    lf = np.log10(np.maximum(central_flux_mx(current, radius_px=radius_px), _FLOOR_MX))
    if previous is None:
        return lf, np.full(np.shape(lf), np.nan)
    prev = np.asarray(previous, dtype=np.float64)
    missing = ~np.isfinite(prev).reshape(*prev.shape[:-2], -1).any(axis=-1)
    lp = np.log10(np.maximum(central_flux_mx(prev, radius_px=radius_px), _FLOOR_MX))
    return lf, np.where(missing, np.nan, lf - lp)


@dataclass
class MtotClassifier:
    """Two fitted linear discriminants (flux + trend, flux only) and the operating threshold.

    Attributes
    ----------
    coef_trend, intercept_trend : list of float, float
        Discriminant on ``[log10 Phi, dlog10 Phi]``.
    coef_flux, intercept_flux : list of float, float
        Discriminant on ``[log10 Phi]`` (used when the trend is unavailable).
    threshold : float
        P at or above which a window is called pre-emergence (chosen on a validation split to
        maximise TSS; never on the reported split).
    radius_px : float
        Central-region radius the features were computed with.
    info : dict
        Provenance (training data, sizes).
    """

    coef_trend: list[float]
    intercept_trend: float
    coef_flux: list[float]
    intercept_flux: float
    threshold: float = 0.5
    radius_px: float = CENTRAL_RADIUS_PX
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def fit(cls, log_flux: np.ndarray, trend: np.ndarray, y: np.ndarray, *, info: dict[str, Any] | None = None) -> MtotClassifier:
        """Fit both discriminants; rows with a NaN trend are used by the flux-only one only.

        Classes are given equal priors (the training sets are balanced by construction; the
        operational base rate is applied afterwards, see :func:`heliowatch.models.emergence.forecast.rebase`).
        """
        lf = np.asarray(log_flux, dtype=np.float64)
        tr = np.asarray(trend, dtype=np.float64)
        yy = np.asarray(y).astype(int)
        if len(np.unique(yy)) != 2:
            msg = "MTOT needs both classes in its training data"
            raise ModelError(msg)
        flux_only = LinearDiscriminantAnalysis(priors=[0.5, 0.5]).fit(lf[:, None], yy)
        ok = np.isfinite(tr)
        if ok.sum() < 4 or len(np.unique(yy[ok])) != 2:
            msg = "MTOT needs windows with a previous window (the trend) in both classes"
            raise ModelError(msg)
        with_trend = LinearDiscriminantAnalysis(priors=[0.5, 0.5]).fit(np.column_stack([lf[ok], tr[ok]]), yy[ok])
        return cls(
            coef_trend=[float(v) for v in with_trend.coef_[0]],
            intercept_trend=float(with_trend.intercept_[0]),
            coef_flux=[float(v) for v in flux_only.coef_[0]],
            intercept_flux=float(flux_only.intercept_[0]),
            info=dict(info or {}),
        )

    def predict_features(self, log_flux: np.ndarray, trend: np.ndarray) -> np.ndarray:
        """P(emergence within 24 h) from the features (the flux-only discriminant where the trend is NaN)."""
        lf = np.asarray(log_flux, dtype=np.float64)
        tr = np.asarray(trend, dtype=np.float64)
        z_t = self.coef_trend[0] * lf + self.coef_trend[1] * np.nan_to_num(tr) + self.intercept_trend
        z_f = self.coef_flux[0] * lf + self.intercept_flux
        z = np.where(np.isfinite(tr), z_t, z_f)
        return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))

    def predict(self, current: np.ndarray, previous: np.ndarray | None = None) -> np.ndarray:
        """P(emergence within 24 h) of window averages (see :func:`mtot_features`)."""
        lf, tr = mtot_features(current, previous, radius_px=self.radius_px)
        return self.predict_features(lf, tr)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able parameters."""
        return {"kind": "mtot-lda", **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MtotClassifier:
        """Inverse of :meth:`to_dict` (ModelError if a field is missing)."""
        try:
            return cls(
                coef_trend=[float(v) for v in d["coef_trend"]],
                intercept_trend=float(d["intercept_trend"]),
                coef_flux=[float(v) for v in d["coef_flux"]],
                intercept_flux=float(d["intercept_flux"]),
                threshold=float(d.get("threshold", 0.5)),
                radius_px=float(d.get("radius_px", CENTRAL_RADIUS_PX)),
                info=dict(d.get("info", {})),
            )
        except (KeyError, TypeError, ValueError) as e:
            msg = f"MTOT parameters are incomplete ({e})"
            raise ModelError(msg) from e

    def save(self, path: Path) -> Path:
        """Write the parameters as JSON (atomically)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: Path) -> MtotClassifier:
        """Read :meth:`save`'s JSON (ModelError if missing or invalid)."""
        try:
            d = json.loads(Path(path).read_text())
        except FileNotFoundError as e:
            msg = f"MTOT parameters missing at {path} (rebuild with `heliowatch train emergence-fcn`)"
            raise ModelError(msg) from e
        except json.JSONDecodeError as e:
            msg = f"MTOT parameters at {path} are not valid JSON ({e})"
            raise ModelError(msg) from e
        if not math.isfinite(float(d.get("threshold", 0.5))):
            msg = f"MTOT threshold at {path} is not finite"
            raise ModelError(msg)
        return cls.from_dict(d)
