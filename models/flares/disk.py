"""Full-disk flare probability from region forecasts, for the daily forecast and its backtest.

``P = 1 - (1 - p_limb) * prod_i (1 - p_i) ** (h * f_i)`` where

- ``p_i`` is region i's probability of a flare of the level in the next 24 h;
- ``f_i`` is the part of the 24-h window the region spends on the visible disk: regions
  rotate about 13.2 deg a day (synodic, low latitudes), so one at west longitude ``L`` at the
  issue time crosses the limb after ``(90 - L) / 13.2`` days; its hazard counts only for that
  part of the window (a region already beyond the limb contributes nothing);
- ``h`` is a fitted hazard scale: the regions' joint over- (h < 1) or under-forecasting of the
  disk, since region models are fitted region by region, not on disk days;
- ``p_limb`` covers flares from regions at or behind the limb and from regions not yet numbered,
  ``sigmoid(a + b_act log1p(activity) + b_yest * yesterday)`` with ``activity`` the flares of the
  level on the disk in the last 27 days and ``yesterday`` the largest flare class on the whole
  disk in the 24 h before the issue (:func:`yesterday_class`).

``a, b_act, b_yest, h`` are fitted by maximum likelihood on training days only, on out-of-fold
region forecasts. The categorical forecast is ``P >= threshold``; the threshold maximises the
TSS of out-of-sample forecasts of training days (see :func:`choose_threshold`), so the
probability itself is left as fitted (calibrated) and the yes/no decision is separate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit

from heliowatch.models import skill

__all__ = ["P_MAX", "P_MIN", "ROTATION_DEG_PER_DAY", "DiskModel", "choose_threshold", "visible_fraction", "yesterday_class"]

#: Synodic rotation of the photosphere near the equator.
ROTATION_DEG_PER_DAY = 13.2
#: No forecast is exactly 0 or 1 (at the 4 decimals the products carry).
P_MIN, P_MAX = 1e-4, 1 - 1e-4


def visible_fraction(lon_deg: np.ndarray, hours: float = 24.0) -> np.ndarray:
    """Part of a window of ``hours`` a region at Stonyhurst longitude ``lon_deg`` (W > 0) stays on the disk."""
    lon = np.asarray(lon_deg, dtype=float)
    span = ROTATION_DEG_PER_DAY * hours / 24.0
    # An unknown position counts as fully visible: dropping a region would under-forecast.
    return np.where(np.isfinite(lon), np.clip((90.0 - lon) / span, 0.0, 1.0), 1.0)


def yesterday_class(max_flux: np.ndarray) -> np.ndarray:
    """Largest GOES flux of the last 24 h as ``log10(flux / 1e-7)`` in [0, 3.5]: 0 B1 or none, 1 C1, 2 M1, 3 X1."""
    f = np.nan_to_num(np.asarray(max_flux, dtype=float), nan=0.0)
    return np.clip(np.log10(np.maximum(f, 1e-7) / 1e-7), 0.0, 3.5)


@dataclass
class DiskModel:
    """The fitted full-disk combination for one flare level (``C`` or ``M``)."""

    level: str
    a: float = -3.0
    b_activity: float = 0.5
    b_yesterday: float = 0.0
    hazard: float = 1.0
    threshold: float = 0.5
    cutoff: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    def p_limb(self, activity: np.ndarray, yesterday: np.ndarray) -> np.ndarray:
        """Probability of a flare from regions at or behind the limb or not yet numbered."""
        z = self.a + self.b_activity * np.log1p(np.asarray(activity, float)) + self.b_yesterday * np.asarray(yesterday, float)
        return np.asarray(expit(z), dtype=float)

    def combine(self, log_survival: np.ndarray, activity: np.ndarray, yesterday: np.ndarray) -> np.ndarray:
        """Full-disk P from ``sum_i f_i log(1 - p_i)`` per day and the disk history."""
        surv = np.exp(self.hazard * np.asarray(log_survival, float))
        p = 1 - (1 - self.p_limb(activity, yesterday)) * surv
        return np.clip(p, P_MIN, P_MAX)

    @classmethod
    def fit(
        cls,
        level: str,
        log_survival: np.ndarray,
        activity: np.ndarray,
        yesterday: np.ndarray,
        y: np.ndarray,
        *,
        cutoff: str = "",
    ) -> DiskModel:
        """Maximum-likelihood ``a, b_act, b_yest, h`` on training days (``y``: 1 on event days)."""
        ls, act, yc = (np.asarray(v, float) for v in (log_survival, activity, yesterday))
        yy = np.asarray(y, float)
        za = np.log1p(act)

        def nll(w: np.ndarray) -> float:
            pl = expit(w[0] + w[1] * za + w[2] * yc)
            p = np.clip(1 - (1 - pl) * np.exp(np.exp(np.clip(w[3], -8, 4)) * ls), 1e-6, 1 - 1e-6)
            return float(-np.sum(yy * np.log(p) + (1 - yy) * np.log(1 - p)))

        r = minimize(
            nll, np.array([-3.0, 0.5, 0.2, 0.0]), method="Nelder-Mead", options={"xatol": 1e-5, "fatol": 1e-7, "maxiter": 6000}
        )
        w = r.x
        return cls(
            level=level,
            a=float(w[0]),
            b_activity=float(w[1]),
            b_yesterday=float(w[2]),
            hazard=float(np.exp(np.clip(w[3], -8, 4))),
            cutoff=cutoff,
        )

    def to_json(self) -> dict[str, Any]:
        """Parameters as plain JSON (no pickle)."""
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> DiskModel:
        """Inverse of :meth:`to_json`."""
        return cls(**d)


def choose_threshold(y: np.ndarray, p: np.ndarray, grid: np.ndarray | None = None) -> float:
    """The probability threshold of maximum TSS of forecasts ``p`` (ties: the lowest).

    Meant for out-of-sample forecasts of training days only: a threshold picked on the days
    that are then reported would flatter the categorical scores.
    """
    g = np.round(np.arange(0.01, 0.991, 0.01), 2) if grid is None else np.asarray(grid, float)
    scores = [skill.tss(y, p, float(t)) for t in g]
    return float(g[int(np.argmax(scores))])
