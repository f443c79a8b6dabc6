"""SHARP-feature flare models: logistic regression and gradient boosting, isotonic-calibrated.

Features (:data:`~heliowatch.models.flares.dataset.FEATURES`): log10 USFLUX (Mx), log10 AREA
(uHem, SHARP's de-projected patch area), MEANGBZ and R_VALUE. Calibration:
the base model's out-of-fold scores on the training folds (grouped by HARP) are mapped to
observed frequencies with isotonic regression, then the base model is refitted on all
training folds.

Saved without pickle: the logistic model as JSON coefficients, the boosted trees as their node
arrays in safetensors (evaluated by :class:`TreeEnsemble`, a vectorised traversal pinned to
scikit-learn's own predictions by a test), the isotonic map as JSON knots.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from safetensors.numpy import load_file, save_file
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from heliowatch.models.core.errors import ModelError
from heliowatch.models.flares.dataset import FEATURES

__all__ = ["FeatureModel", "TreeEnsemble", "contributions", "transform"]

KINDS = ("logistic", "gbm")


def transform(df: pd.DataFrame) -> np.ndarray:
    """The model inputs from raw SHARP keywords + history columns (NaN allowed for GBM)."""
    x = pd.DataFrame(index=df.index)
    x["log_usflux"] = np.log10(df["USFLUX"].clip(lower=1e15))
    x["log_area"] = np.log10(df["AREA"].clip(lower=1.0))
    x["MEANGBZ"] = df["MEANGBZ"]
    x["R_VALUE"] = df["R_VALUE"]
    return x[FEATURES].to_numpy(dtype=np.float64)


_NODE_FIELDS = ("value", "feature_idx", "num_threshold", "missing_go_to_left", "left", "right", "is_leaf")


@dataclass
class TreeEnsemble:
    """A binary gradient-boosted tree ensemble as flat node arrays (no pickle).

    Each tree's nodes are concatenated; ``offsets[i]`` is the index of tree i's root. The raw
    score is ``baseline + sum of leaf values``, the probability its logistic.
    """

    nodes: dict[str, np.ndarray]
    offsets: np.ndarray
    baseline: float

    @classmethod
    def from_sklearn(cls, model: Any) -> TreeEnsemble:
        """From a fitted binary ``HistGradientBoostingClassifier`` (numeric features only)."""
        trees = [p[0].nodes for p in model._predictors]
        offsets = np.cumsum([0] + [len(t) for t in trees[:-1]]).astype(np.int64)
        nodes = {}
        for f in _NODE_FIELDS:
            col = np.concatenate([t[f] for t in trees])
            if f in ("left", "right"):
                col = col.astype(np.int64) + np.repeat(offsets, [len(t) for t in trees])
            nodes[f] = col.astype(np.float64 if f in ("value", "num_threshold") else np.int64)
        return cls(nodes, offsets, float(np.ravel(model._baseline_prediction)[0]))

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """P(class 1) for rows of ``x`` (NaN follows each node's missing-value branch)."""
        n = self.nodes
        rows = np.arange(len(x))
        raw = np.full(len(x), self.baseline)
        for root in self.offsets:
            node = np.full(len(x), root, dtype=np.int64)
            while True:
                leaf = n["is_leaf"][node].astype(bool)
                if leaf.all():
                    break
                v = x[rows, n["feature_idx"][node]]
                left = np.where(np.isnan(v), n["missing_go_to_left"][node].astype(bool), v <= n["num_threshold"][node])
                node = np.where(leaf, node, np.where(left, n["left"][node], n["right"][node]))
            raw += n["value"][node]
        return 1 / (1 + np.exp(-raw))

    def save(self, path: Path) -> None:
        """Write the node arrays as safetensors."""
        save_file({**self.nodes, "offsets": self.offsets, "baseline": np.array([self.baseline])}, str(path))

    @classmethod
    def load(cls, path: Path) -> TreeEnsemble:
        """Read node arrays written by :meth:`save`."""
        d = load_file(str(path))
        return cls({f: d[f] for f in _NODE_FIELDS}, d["offsets"], float(d["baseline"][0]))

    def save_beside(self, json_path: Path) -> dict[str, str]:
        """Write the trees beside a model's JSON file (same stem, ``.safetensors``); returns the
        reference (file name and SHA-256) that JSON records."""
        tfile = json_path.with_suffix(".safetensors")
        self.save(tfile)
        return {"file": tfile.name, "sha256": hashlib.sha256(tfile.read_bytes()).hexdigest()}

    @classmethod
    def load_referenced(cls, json_path: Path, ref: dict[str, str]) -> TreeEnsemble:
        """Read the trees a model's JSON file references (:meth:`save_beside`), checked against the SHA-256.

        Raises
        ------
        ModelError
            If the tree file does not match the recorded SHA-256.
        """
        tfile = json_path.parent / ref["file"]
        if hashlib.sha256(tfile.read_bytes()).hexdigest() != ref["sha256"]:
            msg = f"model {json_path.stem}: {tfile.name} does not match its recorded sha256"
            raise ModelError(msg)
        return cls.load(tfile)


@dataclass
class FeatureModel:
    """A calibrated SHARP-feature model."""

    kind: str
    mean: np.ndarray | None = None
    scale: np.ndarray | None = None
    coef: np.ndarray | None = None
    intercept: float = 0.0
    iso_x: np.ndarray = field(default_factory=lambda: np.array([0.0, 1.0]))
    iso_y: np.ndarray = field(default_factory=lambda: np.array([0.0, 1.0]))
    trees: TreeEnsemble | None = None
    medians: np.ndarray | None = None

    # -- training ---------------------------------------------------------------------------
    @staticmethod
    def _base(kind: str) -> Any:
        if kind == "logistic":
            return LogisticRegression(C=1.0, max_iter=2000)
        return HistGradientBoostingClassifier(
            max_iter=250, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=80, l2_regularization=1.0, random_state=0
        )

    @classmethod
    def fit(cls, kind: str, x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> FeatureModel:
        """Fit the base model and its isotonic calibration (out-of-fold, grouped)."""
        if kind not in KINDS:
            msg = f"unknown feature model {kind!r}; choose from {KINDS}"
            raise ModelError(msg)
        m = cls(kind=kind)
        m.medians = np.nanmedian(x, axis=0)
        xi = m._impute(x)
        oof = np.zeros(len(y))
        for g in np.unique(groups):
            test = groups == g
            base = m._fit_base(xi[~test], y[~test])
            oof[test] = m._raw(base, xi[test])
        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(oof, y)
        m.iso_x, m.iso_y = np.asarray(iso.X_thresholds_, float), np.asarray(iso.y_thresholds_, float)
        base = m._fit_base(xi, y)
        m._freeze(base, xi)
        return m

    def _impute(self, x: np.ndarray) -> np.ndarray:
        assert self.medians is not None
        return np.where(np.isnan(x), self.medians, x)

    def _fit_base(self, x: np.ndarray, y: np.ndarray) -> Any:
        base = self._base(self.kind)
        if self.kind == "logistic":
            self.mean, self.scale = x.mean(axis=0), x.std(axis=0) + 1e-12
            base.fit((x - self.mean) / self.scale, y)
        else:
            base.fit(x, y)
        return base

    def _raw(self, base: Any, x: np.ndarray) -> np.ndarray:
        if self.kind == "logistic":
            return np.asarray(base.predict_proba((x - self.mean) / self.scale)[:, 1])
        return np.asarray(base.predict_proba(x)[:, 1])

    def _freeze(self, base: Any, x: np.ndarray) -> None:
        if self.kind == "logistic":
            self.coef = np.asarray(base.coef_[0], float)
            self.intercept = float(base.intercept_[0])
            return
        self.trees = TreeEnsemble.from_sklearn(base)

    # -- inference --------------------------------------------------------------------------
    def raw(self, x: np.ndarray) -> np.ndarray:
        """Uncalibrated score."""
        xi = self._impute(np.asarray(x, float))
        if self.kind == "logistic":
            assert self.coef is not None
            z = ((xi - self.mean) / self.scale) @ self.coef + self.intercept
            return 1 / (1 + np.exp(-z))
        assert self.trees is not None
        return self.trees.predict_proba(xi)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Calibrated P(>= M flare in 24 h)."""
        return np.clip(np.interp(self.raw(x), self.iso_x, self.iso_y), 0.0, 1.0)

    # -- persistence ------------------------------------------------------------------------
    def save(self, path: Path, card: dict[str, Any]) -> Path:
        """Write ``<path>.json`` (parameters + card) and, for GBM, ``<path>.safetensors``."""
        body: dict[str, Any] = {
            "kind": self.kind,
            "features": FEATURES,
            "medians": self.medians.tolist() if self.medians is not None else None,
            "iso_x": self.iso_x.tolist(),
            "iso_y": self.iso_y.tolist(),
            "card": card,
        }
        if self.kind == "logistic":
            body.update(mean=self.mean.tolist(), scale=self.scale.tolist(), coef=self.coef.tolist(), intercept=self.intercept)  # type: ignore[union-attr]
        else:
            assert self.trees is not None
            body["trees"] = self.trees.save_beside(path)
        out = path.with_suffix(".json")
        out.write_text(json.dumps(body, indent=1))
        return out

    @classmethod
    def load(cls, path: Path) -> tuple[FeatureModel, dict[str, Any]]:
        """Load a saved model (tree file hash verified); returns the model and its card."""
        p = path.with_suffix(".json")
        try:
            body = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as e:
            msg = f"cannot read feature model {p}: {e}"
            raise ModelError(msg) from e
        m = cls(
            kind=body["kind"], medians=np.array(body["medians"]), iso_x=np.array(body["iso_x"]), iso_y=np.array(body["iso_y"])
        )
        if m.kind == "logistic":
            m.mean, m.scale = np.array(body["mean"]), np.array(body["scale"])
            m.coef, m.intercept = np.array(body["coef"]), float(body["intercept"])
        else:
            m.trees = TreeEnsemble.load_referenced(p, body["trees"])
        return m, body["card"]


def contributions(model: FeatureModel, x: np.ndarray) -> list[dict[str, float]]:
    """Per-feature contributions to each forecast.

    Logistic: coefficient x standardised value (log-odds units). Boosted trees: the change in
    calibrated probability when the feature is replaced by its training median (occlusion in
    feature space).
    """
    x = np.asarray(x, float)
    out = []
    if model.kind == "logistic":
        xi = model._impute(x)
        z = (xi - model.mean) / model.scale * model.coef
        return [dict(zip(FEATURES, map(float, row), strict=True)) for row in z]
    # (features beyond the model's inputs are not used)
    base = model.predict(x)
    for j, name in enumerate(FEATURES):
        xr = x.copy()
        xr[:, j] = model.medians[j]  # type: ignore[index]
        d = base - model.predict(xr)
        out.append((name, d))
    return [{name: float(d[i]) for name, d in out} for i in range(len(x))]
