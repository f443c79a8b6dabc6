"""Verification of the SHARP-feature flare models on real data, split by HARP and by time.

By HARP: the five folds of Sun et al. (2022) are disjoint in HARP; each fold is forecast by
models fitted (and calibrated, out-of-fold) on the other four. By time: fitted on samples
ending before 2015-01-01, tested on those from 2015-01-01 on, HARPs present on both sides
dropped from the test set. Scores: TSS and HSS at 0.5 (the operational convention of Leka
et al. 2019) and at the threshold that maximises TSS on the *training* folds' out-of-fold
forecasts (never tuned on the test fold), BSS against the test sample's climatology, ROC AUC,
reliability.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from heliowatch.models import skill
from heliowatch.models.flares.dataset import FEATURES, load_sharp_dataset
from heliowatch.models.flares.features import FeatureModel, transform

__all__ = ["MODELS", "EvalResult", "evaluate_flares", "format_report"]

#: name -> (kind, feature subset)
MODELS: dict[str, tuple[str, list[str]]] = {
    "logistic": ("logistic", FEATURES),
    "gbm": ("gbm", FEATURES),
    "area+flux (logistic)": ("logistic", ["log_usflux", "log_area"]),
}


@dataclass
class EvalResult:
    """Scores per model and split."""

    per_fold: dict[str, list[dict[str, float]]]
    time_split: dict[str, dict[str, float]]
    reliability: dict[str, list[tuple[float, float, int]]]
    n: int
    positives: int

    def summary(self) -> dict[str, dict[str, tuple[float, float]]]:
        """Mean and standard deviation over the HARP folds."""
        out: dict[str, dict[str, tuple[float, float]]] = {}
        for name, rows in self.per_fold.items():
            out[name] = {k: (float(np.nanmean([r[k] for r in rows])), float(np.nanstd([r[k] for r in rows]))) for k in rows[0]}
        return out


def _cols(subset: list[str]) -> list[int]:
    return [FEATURES.index(f) for f in subset]


def _best_threshold(y: np.ndarray, p: np.ndarray) -> float:
    grid = np.unique(np.quantile(p, np.linspace(0.5, 0.999, 200)))
    return float(max(grid, key=lambda t: skill.tss(y, p, t))) if len(grid) else 0.5


def _fit_predict(
    kind: str, cols: list[int], x: np.ndarray, y: np.ndarray, groups: np.ndarray, test: np.ndarray
) -> tuple[np.ndarray, float]:
    """Fit on ~test, predict test; the TSS threshold comes from the training OOF forecasts."""
    tr = ~test
    model = FeatureModel.fit(kind, x[tr][:, cols], y[tr], groups[tr])
    # Out-of-fold calibrated forecasts on the training part, for the threshold.
    oof = np.zeros(tr.sum())
    gtr = groups[tr]
    for g in np.unique(gtr):
        inner = gtr == g
        sub = FeatureModel.fit(kind, x[tr][~inner][:, cols], y[tr][~inner], gtr[~inner])
        oof[inner] = sub.predict(x[tr][inner][:, cols])
    return model.predict(x[test][:, cols]), _best_threshold(y[tr], oof)


def evaluate_flares(data_dir: Path, *, models: list[str] | None = None, progress: Any = None) -> EvalResult:
    """Run the by-HARP and by-time evaluations of ``models`` (default: all of :data:`MODELS`)."""
    df = load_sharp_dataset(data_dir)
    x = transform(df)
    y = df["label"].to_numpy(int)
    folds = df["fold"].to_numpy()
    names = models or list(MODELS)
    per_fold: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    pooled: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {n: ([], []) for n in names}
    steps = len(names) * 6
    done = 0
    for name in names:
        kind, subset = MODELS[name]
        cols = _cols(subset)
        for f in range(5):
            test = folds == f
            p, thr = _fit_predict(kind, cols, x, y, folds, test)
            s05 = skill.score(y[test], p, threshold=0.5)
            sbest = skill.score(y[test], p, threshold=thr)
            per_fold[name].append(
                {
                    "tss@0.5": s05.tss,
                    "hss@0.5": s05.hss,
                    "tss@opt": sbest.tss,
                    "hss@opt": sbest.hss,
                    "threshold_opt": thr,
                    "bss": s05.bss,
                    "auc": s05.auc,
                }
            )
            pooled[name][0].append(y[test])
            pooled[name][1].append(p)
            done += 1
            if progress:
                progress(done, steps, f"{name} fold {f}")
    # By time: before 2015 -> 2015 on, HARPs on both sides removed from the test set.
    cut = pd.Timestamp("2015-01-01")
    early = (df["t_end"] < cut).to_numpy()
    both = set(df.loc[early, "arpnum"]) & set(df.loc[~early, "arpnum"])
    test_t = (~early) & ~df["arpnum"].isin(both).to_numpy()
    train_t = early
    time_split = {}
    for name in names:
        kind, subset = MODELS[name]
        cols = _cols(subset)
        sel = train_t | test_t
        p, thr = _fit_predict(kind, cols, x[sel], y[sel], folds[sel], test_t[sel])
        s05 = skill.score(y[test_t], p, threshold=0.5)
        sb = skill.score(y[test_t], p, threshold=thr)
        time_split[name] = {
            "tss@0.5": s05.tss,
            "hss@0.5": s05.hss,
            "tss@opt": sb.tss,
            "hss@opt": sb.hss,
            "bss": s05.bss,
            "auc": s05.auc,
        }
        done += 1
        if progress:
            progress(done, steps, f"{name} time split")
    rel = {n: skill.reliability(np.concatenate(pooled[n][0]), np.concatenate(pooled[n][1])) for n in names}
    return EvalResult(per_fold, time_split, rel, n=len(y), positives=int(y.sum()))


def format_report(res: EvalResult) -> str:
    """Tables: by-HARP mean +- std, per fold, and the time split."""
    keys = ["tss@0.5", "hss@0.5", "tss@opt", "hss@opt", "bss", "auc"]
    n, pos = res.n, res.positives
    lines = [f"SHARP-feature flare models, >=M in 24 h: {n} samples, {pos} positive ({100 * pos / n:.1f} %)"]
    lines.append("")
    lines.append("5-fold cross-validation grouped by HARP (mean +- std over folds)")
    head = f"{'model':<28}" + "".join(f"{k:>16}" for k in keys)
    lines += [head, "-" * len(head)]
    for name, stats in res.summary().items():
        lines.append(f"{name:<28}" + "".join(f"{stats[k][0]:>10.3f}+-{stats[k][1]:<4.3f}" for k in keys))
    lines.append("")
    lines.append("per fold (tss@opt / bss / auc)")
    for name, rows in res.per_fold.items():
        lines.append(
            f"{name:<28}" + "  ".join(f"f{i}: {r['tss@opt']:.3f}/{r['bss']:.3f}/{r['auc']:.3f}" for i, r in enumerate(rows))
        )
    lines.append("")
    lines.append("time split: fitted on t_end < 2015-01-01, tested on t_end >= 2015-01-01 (HARPs spanning the cut removed)")
    lines += [head, "-" * len(head)]
    for name, s in res.time_split.items():
        lines.append(f"{name:<28}" + "".join(f"{s[k]:>16.3f}" for k in keys))
    return "\n".join(lines)


def save_report(res: EvalResult, out_dir: Path) -> list[Path]:
    """Write ``flares-eval.json``, ``flares-eval.txt`` and ``flares-reliability.png``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    j = out_dir / "flares-eval.json"
    j.write_text(
        json.dumps(
            {
                "n": res.n,
                "positives": res.positives,
                "per_fold": res.per_fold,
                "time_split": res.time_split,
                "summary": res.summary(),
            },
            indent=2,
        )
    )
    t = out_dir / "flares-eval.txt"
    t.write_text(format_report(res) + "\n")
    png = skill.reliability_plot(
        res.reliability, out_dir / "flares-reliability.png", title="SHARP-feature models, >=M in 24 h, pooled over HARP folds"
    )
    return [j, t, png]
