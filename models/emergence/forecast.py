"""From window averages to P(emergence within 24 h) per patch, with both classifiers.

This module is on the daemon's CPU path: it imports no torch. The FCN is reached through a
``predict`` callable (the daemon's :class:`~heliowatch.models.runtime.runtime.Runtime` for
``emergence-fcn``, or any function from ``(N, 1, 85, 85)`` float32 kG to ``(N, 1)``), MTOT is
evaluated here. Probabilities are those of the balanced training sets (half the windows
emerging); :func:`rebase` converts them to an operational base rate.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from heliowatch.models import registry
from heliowatch.models.core.errors import ModelError
from heliowatch.models.core.times import iso_utc
from heliowatch.models.emergence.averaging import WindowAverage
from heliowatch.models.emergence.mtot import MtotClassifier

__all__ = ["MTOT_FILE", "EmergenceForecaster", "PatchForecast", "fcn_input", "rebase"]

#: Where MTOT's parameters are written beside the FCN's weights.
MTOT_FILE = "emergence-mtot.json"


def fcn_input(windows: Sequence[WindowAverage] | np.ndarray) -> np.ndarray:
    """The FCN's input for window averages: ``(N, 1, 85, 85)`` float32, LOS in kG, NaN set to 0."""
    arr = np.stack([w.data for w in windows]) if not isinstance(windows, np.ndarray) else windows
    return (np.nan_to_num(np.asarray(arr, np.float32)) / 1000.0)[:, None]


def rebase(p: np.ndarray | float, base_rate: float, train_rate: float = 0.5) -> np.ndarray:
    """Bayes' prior shift of a probability from the training base rate to ``base_rate``.

    ``odds' = odds * (base / (1 - base)) / (train / (1 - train))``. TSS and the ranking do not
    change; the probability does (a balanced-set 0.5 is ``base_rate`` operationally).
    """
    if not 0 < base_rate < 1 or not 0 < train_rate < 1:
        msg = f"base rates must be in (0, 1) (got {base_rate}, {train_rate})"
        raise ModelError(msg)
    q = np.clip(np.asarray(p, dtype=np.float64), 1e-12, 1 - 1e-12)
    odds = q / (1 - q) * (base_rate / (1 - base_rate)) / (train_rate / (1 - train_rate))
    return odds / (1 + odds)


@dataclass
class PatchForecast:
    """Both classifiers' view of one patch over one averaging window.

    ``p_fcn`` is None when no FCN predictor was given. ``*_alert`` compare with the thresholds
    chosen on validation (on the balanced-set probabilities, before any rebasing).
    """

    patch_id: str
    lat: float
    carrington_lon: float
    hgs_lon: float
    t_start_utc: str
    t_end_utc: str
    t_mid_utc: str
    p_fcn: float | None
    p_mtot: float
    fcn_alert: bool
    mtot_alert: bool
    mtot_uses_trend: bool
    n_frames: int
    n_expected: int
    restarted: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe (no NaN)."""
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, float) and not math.isfinite(v):
                d[k] = None
        return d

    def records(self) -> list[dict[str, Any]]:
        """One ``emergence --json`` patch record per method (``fcn``, ``mtot``)."""
        base = {
            "patch_id": self.patch_id,
            "hgs_lat": self.lat,
            "hgs_lon": self.hgs_lon if math.isfinite(self.hgs_lon) else None,
            "carrington_lon": self.carrington_lon,
            "t_utc": self.t_mid_utc,
            "window": {
                "start_utc": self.t_start_utc,
                "end_utc": self.t_end_utc,
                "frames": self.n_frames,
                "expected": self.n_expected,
            },
        }
        out = []
        if self.p_fcn is not None:
            out.append({**base, "p_emergence": self.p_fcn, "method": "emergence-fcn", "alert": self.fcn_alert})
        out.append(
            {**base, "p_emergence": self.p_mtot, "method": "mtot-lda", "alert": self.mtot_alert, "trend": self.mtot_uses_trend}
        )
        return out


class EmergenceForecaster:
    """Score completed windows with the FCN (through ``predict``) and MTOT.

    Parameters
    ----------
    predict : callable or None
        ``(N, 1, 85, 85)`` float32 kG -> ``(N, 1)`` probabilities (None: MTOT only).
    mtot : MtotClassifier
        The baseline (with its threshold).
    fcn_threshold : float
        The FCN's operating threshold (the card's ``threshold``).
    base_rate : float or None
        If given, probabilities are rebased to it (:func:`rebase`); alerts still use the
        thresholds on the training-rate probabilities.
    """

    def __init__(
        self,
        predict: Callable[[np.ndarray], np.ndarray] | None,
        mtot: MtotClassifier,
        *,
        fcn_threshold: float = 0.5,
        base_rate: float | None = None,
    ) -> None:
        self.predict = predict
        self.mtot = mtot
        self.fcn_threshold = float(fcn_threshold)
        self.base_rate = base_rate

    @classmethod
    def from_weights(
        cls, predict: Callable[[np.ndarray], np.ndarray] | None, *, root: Path | None = None, base_rate: float | None = None
    ) -> EmergenceForecaster:
        """Thresholds from the ``emergence-fcn`` card and MTOT from its JSON in ``root`` (default: the shipped weights)."""
        card = registry.load_card("emergence-fcn", root=root)
        mtot = MtotClassifier.load((root or registry.weights_dir()) / MTOT_FILE)
        return cls(predict, mtot, fcn_threshold=float(card.get("threshold", 0.5)), base_rate=base_rate)

    def forecast(self, windows: Sequence[WindowAverage]) -> list[PatchForecast]:
        """One :class:`PatchForecast` per window (same order)."""
        if not windows:
            return []
        cur = np.stack([w.data for w in windows])
        prev = np.stack([w.previous if w.previous is not None else np.full_like(w.data, np.nan) for w in windows])
        q = self.mtot.predict(cur, prev)
        has_trend = np.array([w.previous is not None for w in windows])
        p = None
        if self.predict is not None:
            p = np.asarray(self.predict(fcn_input(cur)), dtype=np.float64).reshape(len(windows), -1)[:, 0]
        q_out = rebase(q, self.base_rate) if self.base_rate else q
        p_out = rebase(p, self.base_rate) if (self.base_rate and p is not None) else p
        out = []
        for i, w in enumerate(windows):
            out.append(
                PatchForecast(
                    patch_id=w.patch_id,
                    lat=w.lat,
                    carrington_lon=w.carrington_lon,
                    hgs_lon=w.hgs_lon,
                    t_start_utc=iso_utc(w.t_start_s),
                    t_end_utc=iso_utc(w.t_end_s),
                    t_mid_utc=w.t_mid_utc,
                    p_fcn=float(p_out[i]) if p_out is not None else None,
                    p_mtot=float(q_out[i]),
                    fcn_alert=bool(p is not None and p[i] >= self.fcn_threshold),
                    mtot_alert=bool(q[i] >= self.mtot.threshold),
                    mtot_uses_trend=bool(has_trend[i]),
                    n_frames=w.n_frames,
                    n_expected=w.n_expected,
                    restarted=w.restarted,
                )
            )
        return out
