"""Region-level flare model on SHARP header keywords, flare history and the previous day's SRS.

Trained on the every-region-every-day sample of :mod:`heliowatch.models.flares.region_days`,
so its probabilities are on operational base rates. Inputs (:func:`design`):

- SHARP keywords of the issue's record (log10 of the extensive ones: fluxes, currents, energy,
  area); **no earlier record** of the HARP is needed, so the daemon can compute every input from
  the current record's header;
- flare history of the region's NOAA numbers (:data:`~heliowatch.models.flares.region_days.HISTORY`);
- the SRS of the previous day where the region is listed (area, Mt. Wilson delta/gamma,
  McIntosh class parts, longitude) with a missing indicator.

Kinds: a logistic regression (JSON coefficients) or the gradient-boosted trees of
:mod:`heliowatch.models.flares.features` (safetensors via :class:`TreeEnsemble`). Calibration:
isotonic regression on out-of-fold scores (GroupKFold by HARP on the training rows only), then
a floor and a ceiling so that no forecast is exactly 0 or 1. Missing keywords are imputed with
the training medians (the forecaster instead picks a model whose keywords the record has:
:data:`REDUCED_KEYWORDS` are the ones the synthetic demo records carry).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression
from sklearn.model_selection import GroupKFold

from heliowatch.models.core.errors import ModelError
from heliowatch.models.flares.features import FeatureModel, TreeEnsemble
from heliowatch.models.flares.region_days import HOURS_SINCE_CAP, KEYWORDS

__all__ = ["CEILING", "FLOOR", "FULL_KEYWORDS", "LEVELS", "REDUCED_KEYWORDS", "RegionModel", "design", "feature_names"]

#: Every keyword of the tarball (and of the NRT SHARP header).
FULL_KEYWORDS = list(KEYWORDS)
#: The keywords a synthetic demo record carries (:mod:`heliowatch.models.synthetic.sharp`).
REDUCED_KEYWORDS = ["USFLUX", "AREA_ACR", "MEANGBZ", "R_VALUE"]
#: Extensive (or heavy-tailed positive) keywords, used as log10.
_LOG_KEYWORDS = {"USFLUX", "TOTUSJZ", "TOTUSJH", "ABSNJZH", "SAVNCPP", "TOTPOT", "AREA_ACR", "MEANPOT"}
#: label column and flux threshold per level
LEVELS = {"C": ("y_c", 1e-6), "M": ("y_m", 1e-5)}
#: No shipped forecast is below / above these.
FLOOR, CEILING = 0.001, 0.99
_MCINTOSH_Z = {"A": 0, "H": 1, "B": 1, "C": 2, "D": 3, "E": 4, "F": 5}
_MCINTOSH_C = {"X": 0, "O": 1, "I": 2, "C": 3}
_SRS_FEATURES = ["srs_missing", "srs_log_area", "srs_delta", "srs_gamma", "srs_z", "srs_compact", "srs_abs_lon"]
_HISTORY_FEATURES = [
    "log_n_c_24h", "log_n_m_24h", "log_n_c_72h", "log_n_m_72h", "logmax_72h", "c_yesterday", "hours_since_m",
]  # fmt: skip


def _keyword_feature(k: str) -> str:
    return f"log_{k}" if k in _LOG_KEYWORDS else k


def feature_names(keywords: list[str]) -> list[str]:
    """The model inputs for a keyword set: keyword features, history, then SRS."""
    return [*(_keyword_feature(k) for k in keywords), *_HISTORY_FEATURES, *_SRS_FEATURES]


def design(days: pd.DataFrame, keywords: list[str]) -> np.ndarray:
    """Model inputs (rows of ``days``, columns :func:`feature_names`); NaN where a keyword is missing.

    ``days`` needs the keyword columns, the history columns of
    :data:`~heliowatch.models.flares.region_days.HISTORY` (missing ones count as no flare) and,
    optionally, the SRS columns (absent: the region is not listed).
    """
    n = len(days)
    cols: list[np.ndarray] = []
    for k in keywords:
        v = pd.to_numeric(days[k], errors="coerce").to_numpy(np.float64) if k in days else np.full(n, np.nan)
        cols.append(np.log10(np.clip(np.abs(v), 1e-3, None)) if k in _LOG_KEYWORDS else v)

    def hist(c: str, default: float = 0.0) -> np.ndarray:
        return pd.to_numeric(days[c], errors="coerce").fillna(default).to_numpy(np.float64) if c in days else np.full(n, default)

    for c in ("n_c_24h", "n_m_24h", "n_c_72h", "n_m_72h"):
        cols.append(np.log1p(hist(c)))
    cols.append(hist("logmax_72h", -7.0))
    cols.append(hist("c_yesterday"))
    cols.append(hist("hours_since_m", HOURS_SINCE_CAP) / HOURS_SINCE_CAP)
    mc = days["srs_mcintosh"].fillna("").astype(str).str.upper() if "srs_mcintosh" in days else pd.Series([""] * n)
    mt = days["srs_magtype"].fillna("").astype(str).str.upper() if "srs_magtype" in days else pd.Series([""] * n)
    area = hist("srs_area", np.nan)
    listed = np.isfinite(area) | (mc.str.len().to_numpy() > 0)
    cols.append((~listed).astype(float))
    cols.append(np.where(np.isfinite(area), np.log1p(np.nan_to_num(area)), 0.0))
    cols.append(mt.str.contains("DELTA").to_numpy(float))
    cols.append(mt.str.contains("GAMMA").to_numpy(float))
    cols.append(mc.str[:1].map(_MCINTOSH_Z).fillna(0).to_numpy(float))
    cols.append(mc.str[2:3].map(_MCINTOSH_C).fillna(0).to_numpy(float))
    cols.append(np.abs(np.nan_to_num(hist("srs_lon", np.nan))) / 90.0)
    assert len(cols) == len(feature_names(keywords))
    return np.column_stack(cols)


@dataclass
class RegionModel:
    """A calibrated region-level flare model for one level (``C`` or ``M``)."""

    level: str
    kind: str
    keywords: list[str]
    medians: np.ndarray
    mean: np.ndarray | None = None
    scale: np.ndarray | None = None
    coef: np.ndarray | None = None
    intercept: float = 0.0
    trees: TreeEnsemble | None = None
    iso_x: np.ndarray = field(default_factory=lambda: np.array([0.0, 1.0]))
    iso_y: np.ndarray = field(default_factory=lambda: np.array([0.0, 1.0]))
    floor: float = FLOOR
    ceiling: float = CEILING
    card: dict[str, Any] = field(default_factory=dict)

    @property
    def features(self) -> list[str]:
        """The model's input names."""
        return feature_names(self.keywords)

    # -- training ---------------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        days: pd.DataFrame,
        level: str,
        *,
        cutoff: pd.Timestamp,
        kind: str = "logistic",
        keywords: list[str] | None = None,
        folds: int = 5,
    ) -> RegionModel:
        """Fit on the rows of ``days`` with ``day <= cutoff``, calibrated out-of-fold by HARP.

        Parameters
        ----------
        days : DataFrame
            Region-days (:func:`~heliowatch.models.flares.region_days.build_region_days`).
        level : str
            ``"C"`` or ``"M"`` (the label ``y_c`` / ``y_m``).
        cutoff : Timestamp
            Last forecast day used; later rows are ignored.
        kind : str
            ``"logistic"`` or ``"gbm"``.
        keywords : list of str, optional
            SHARP keywords used (default :data:`FULL_KEYWORDS`).
        folds : int
            GroupKFold folds (by HARP) of the out-of-fold calibration.

        Raises
        ------
        ModelError
            For an unknown level or kind, or when the training rows hold a single class.
        """
        if level not in LEVELS or kind not in ("logistic", "gbm"):
            msg = f"RegionModel: level must be one of {sorted(LEVELS)} and kind logistic|gbm (got {level!r}, {kind!r})"
            raise ModelError(msg)
        tr = days[pd.to_datetime(days["day"]) <= pd.Timestamp(cutoff)]
        y = tr[LEVELS[level][0]].to_numpy(int)
        if len(np.unique(y)) < 2:
            msg = f"RegionModel: the training rows up to {cutoff} hold a single class"
            raise ModelError(msg)
        kws = list(keywords or FULL_KEYWORDS)
        x = design(tr, kws)
        med = np.nanmedian(x, axis=0)
        m = cls(level=level, kind=kind, keywords=kws, medians=np.where(np.isfinite(med), med, 0.0))
        xi = m._impute(x)
        groups = tr["harpnum"].to_numpy()
        oof = np.zeros(len(y))
        for a, b in GroupKFold(n_splits=min(folds, len(np.unique(groups)))).split(xi, y, groups):
            oof[b] = m._fit_base(xi[a], y[a]).raw(xi[b])
        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(oof, y)
        m.iso_x, m.iso_y = np.asarray(iso.X_thresholds_, float), np.asarray(iso.y_thresholds_, float)
        final = m._fit_base(xi, y)
        m.mean, m.scale, m.coef, m.intercept, m.trees = final.mean, final.scale, final.coef, final.intercept, final.trees
        m.card = {"n_train": len(y), "positives": int(y.sum()), "harps": len(np.unique(groups))}
        return m

    def _impute(self, x: np.ndarray) -> np.ndarray:
        return np.where(np.isnan(x), self.medians, x)

    def _fit_base(self, x: np.ndarray, y: np.ndarray) -> RegionModel:
        """A copy of ``self`` whose base model is fitted on ``x`` (uncalibrated)."""
        base = FeatureModel._base(self.kind)  # the same hyper-parameters as the SHARP-feature models
        out = RegionModel(self.level, self.kind, self.keywords, self.medians)
        if self.kind == "logistic":
            out.mean, out.scale = x.mean(axis=0), x.std(axis=0) + 1e-12
            base.fit((x - out.mean) / out.scale, y)
            out.coef, out.intercept = np.asarray(base.coef_[0], float), float(base.intercept_[0])
        else:
            base.fit(x, y)
            out.trees = TreeEnsemble.from_sklearn(base)
        return out

    def _linear(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.coef is None or self.mean is None or self.scale is None:
            msg = "RegionModel: a logistic model without coefficients"
            raise ModelError(msg)
        return self.mean, self.scale, self.coef

    # -- inference --------------------------------------------------------------------------
    def raw(self, x: np.ndarray) -> np.ndarray:
        """Uncalibrated score of design rows ``x``."""
        xi = self._impute(np.asarray(x, float))
        if self.kind == "logistic":
            mean, scale, coef = self._linear()
            z = ((xi - mean) / scale) @ coef + self.intercept
            return np.asarray(1 / (1 + np.exp(-z)))
        assert self.trees is not None
        return self.trees.predict_proba(xi)

    def predict(self, days: pd.DataFrame) -> np.ndarray:
        """Calibrated P(flare of at least the level within 24 h) per row, in [floor, ceiling].

        Keywords missing from a row (NaN or absent columns) take the training median.
        """
        p = np.interp(self.raw(design(days, self.keywords)), self.iso_x, self.iso_y)
        return np.clip(p, self.floor, self.ceiling)

    def logistic_terms(self, days: pd.DataFrame) -> list[dict[str, float]]:
        """Per-feature log-odds terms (coefficient x standardised value); empty dicts for trees."""
        if self.kind != "logistic":
            return [{} for _ in range(len(days))]
        mean, scale, coef = self._linear()
        z = (self._impute(design(days, self.keywords)) - mean) / scale * coef
        return [dict(zip(self.features, map(float, row), strict=True)) for row in z]

    # -- persistence ------------------------------------------------------------------------
    def save(self, path: Path) -> Path:
        """Write ``<path>.json`` (parameters + card) and, for trees, ``<path>.safetensors``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        body: dict[str, Any] = {
            "kind": self.kind,
            "level": self.level,
            "keywords": self.keywords,
            "features": self.features,
            "medians": self.medians.tolist(),
            "iso_x": self.iso_x.tolist(),
            "iso_y": self.iso_y.tolist(),
            "floor": self.floor,
            "ceiling": self.ceiling,
            "card": self.card,
        }
        if self.kind == "logistic":
            mean, scale, coef = self._linear()
            body.update(mean=mean.tolist(), scale=scale.tolist(), coef=coef.tolist(), intercept=self.intercept)
        else:
            assert self.trees is not None
            body["trees"] = self.trees.save_beside(path)
        out = path.with_suffix(".json")
        out.write_text(json.dumps(body, indent=1, allow_nan=False) + "\n")
        return out

    @classmethod
    def load(cls, path: Path) -> RegionModel:
        """Read a model written by :meth:`save` (tree file checked against its SHA-256).

        Raises
        ------
        ModelError
            If the file is missing, not JSON, or its tree file does not match.
        """
        p = Path(path).with_suffix(".json")
        try:
            body = json.loads(p.read_text())
            m = cls(
                level=body["level"],
                kind=body["kind"],
                keywords=list(body["keywords"]),
                medians=np.array(body["medians"], float),
                iso_x=np.array(body["iso_x"], float),
                iso_y=np.array(body["iso_y"], float),
                floor=float(body["floor"]),
                ceiling=float(body["ceiling"]),
                card=body.get("card", {}),
            )
            if m.kind == "logistic":
                m.mean, m.scale = np.array(body["mean"], float), np.array(body["scale"], float)
                m.coef, m.intercept = np.array(body["coef"], float), float(body["intercept"])
            else:
                m.trees = TreeEnsemble.load_referenced(p, body["trees"])
        except (OSError, KeyError, ValueError, json.JSONDecodeError) as e:
            msg = f"cannot read region model {p}: {e}"
            raise ModelError(msg) from e
        return m
