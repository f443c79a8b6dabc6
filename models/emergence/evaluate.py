"""Skill of the emergence classifiers per pre-emergence time, next to the seed's.

TSS (POD - POFD) is computed per time before emergence on the test split: the pre-emergence
windows at that time against the control windows at the same time (the seed paired each
emerging region with a control region). One operating threshold per classifier, chosen on the
validation split. The standard error of a TSS is ``sqrt(POD (1 - POD) / n_PE + POFD (1 - POFD) / n_NE)``.

Seed values (Dhuri et al. 2020, abstract): TSS ~0.85 about 3 h and ~0.40 about 24 h before
emergence for the CNN on real HEAR data, both better than the unsigned-flux discriminant;
the other times and the MTOT numbers are in the paper's figures and are not transcribed here.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from heliowatch.models import registry
from heliowatch.models.emergence.forecast import MTOT_FILE
from heliowatch.models.emergence.mtot import MtotClassifier
from heliowatch.models.skill import contingency, roc_auc

__all__ = ["SEED_TSS", "TIMES_BEFORE_H", "format_tables", "load_mtot", "skill_summary", "tss_table", "tss_with_error"]

#: Hours before emergence of the five evaluation windows (the seed's 3.2 .. 24.5 h).
TIMES_BEFORE_H = (3.2, 8.5, 13.9, 19.2, 24.5)

#: TSS of the seed's CNN on real HEAR data (abstract of Dhuri et al. 2020), by hours before emergence.
SEED_TSS: dict[float, float] = {3.2: 0.85, 24.5: 0.40}


def tss_with_error(y: np.ndarray, p: np.ndarray, threshold: float) -> tuple[float, float]:
    """TSS at ``threshold`` and its binomial standard error."""
    a, c, b, d = contingency(y, p, threshold)
    n_pos, n_neg = a + c, b + d
    pod = a / n_pos if n_pos else 0.0
    pofd = b / n_neg if n_neg else 0.0
    se = math.sqrt((pod * (1 - pod) / n_pos if n_pos else 0.0) + (pofd * (1 - pofd) / n_neg if n_neg else 0.0))
    return pod - pofd, se


def tss_table(time_index: np.ndarray, y: np.ndarray, p: np.ndarray, threshold: float) -> list[dict[str, Any]]:
    """Per pre-emergence time: TSS (+- standard error), ROC AUC and the counts.

    Parameters
    ----------
    time_index : ndarray (n,)
        0..4 for :data:`TIMES_BEFORE_H` (3.2 .. 24.5 h).
    y, p : ndarray (n,)
        Labels and probabilities.
    threshold : float
        Operating threshold (from validation).
    """
    rows = []
    for j, t in enumerate(TIMES_BEFORE_H):
        sel = time_index == j
        if not sel.any():
            continue
        s, se = tss_with_error(y[sel], p[sel], threshold)
        two = len(np.unique(y[sel])) == 2
        rows.append(
            {
                "t_before_h": t,
                "tss": round(s, 4),
                "tss_se": round(se, 4),
                "auc": round(roc_auc(y[sel], p[sel]), 4) if two else None,
                "n_pe": int((y[sel] == 1).sum()),
                "n_ne": int((y[sel] == 0).sum()),
                "seed_tss": SEED_TSS.get(t),
            }
        )
    return rows


def skill_summary(
    ds: Any, p_fcn: np.ndarray, p_mtot: np.ndarray, *, fcn_threshold: float, mtot_threshold: float
) -> dict[str, Any]:
    """TSS tables of both classifiers on a (test) dataset, per domain and for all rows.

    Parameters
    ----------
    ds : EmergenceDataset
        The rows scored (``kind`` says each row's domain).
    p_fcn, p_mtot : ndarray
        Probabilities of the FCN and MTOT for those rows.
    fcn_threshold, mtot_threshold : float
        Operating thresholds chosen on validation.
    """
    out: dict[str, Any] = {"thresholds": {"fcn": fcn_threshold, "mtot": mtot_threshold}, "domains": {}}
    for dom in [*sorted(set(ds.kind.tolist())), "all"]:
        sel = np.ones(len(ds.y), bool) if dom == "all" else ds.kind == dom
        if dom == "all" and len(set(ds.kind.tolist())) < 2:
            continue
        out["domains"][dom] = {
            "fcn": tss_table(ds.time_index[sel], ds.y[sel], p_fcn[sel], fcn_threshold),
            "mtot": tss_table(ds.time_index[sel], ds.y[sel], p_mtot[sel], mtot_threshold),
            "regions": len(np.unique(ds.region[sel])),
        }
    return out


def format_tables(summary: dict[str, Any]) -> str:
    """Markdown tables (one per domain) of :func:`skill_summary` output."""
    lines = []
    for dom, tab in summary["domains"].items():
        lines.append(f"\n{dom} test split ({tab['regions']} regions: emerging + controls)\n")
        lines.append(
            "| hours before emergence | FCN TSS | FCN AUC | MTOT TSS | MTOT AUC | seed CNN TSS (real HEAR) | n PE / NE |"
        )
        lines.append("|---|---|---|---|---|---|---|")
        for f, m in zip(tab["fcn"], tab["mtot"], strict=True):
            seed = f"{f['seed_tss']:.2f}" if f["seed_tss"] is not None else "-"
            lines.append(
                f"| {f['t_before_h']:.1f} | {f['tss']:.2f} +- {f['tss_se']:.2f} | {f['auc']:.2f}"
                f" | {m['tss']:.2f} +- {m['tss_se']:.2f}"
                f" | {m['auc']:.2f} | {seed} | {f['n_pe']} / {f['n_ne']} |"
            )
    th = summary["thresholds"]
    lines.append(f"\nthresholds (from validation): FCN P >= {th['fcn']:.3f}, MTOT P >= {th['mtot']:.3f}")
    return "\n".join(lines)


def load_mtot(root: Path | None = None) -> MtotClassifier:
    """The MTOT baseline shipped (or retrained into ``root``) beside the FCN."""
    return MtotClassifier.load((root or registry.weights_dir()) / MTOT_FILE)
