"""Scoring the shipped (or a retrained) emergence models: rebuilds the recipe's held-out data and scores it.

Kept apart from :mod:`heliowatch.models.emergence.evaluate` (the scores themselves), which
training imports: this module imports training's data builders, so the two never import each
other.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from heliowatch.models import registry
from heliowatch.models.emergence.evaluate import load_mtot, skill_summary

__all__ = ["evaluate_emergence"]


def evaluate_emergence(
    *,
    data: Path | None = None,
    root: Path | None = None,
    regions: int | None = None,
    seed: int | None = None,
    offset_px: float | None = None,
    progress: Any = None,
) -> dict[str, Any]:
    """Score the stored FCN and MTOT on test data.

    Without ``offset_px`` the training recipe recorded in the card is rebuilt (same seed and
    counts) and its **test split** is scored: the same regions and real-Sun blocks that were held
    out in training. With ``offset_px`` a fresh synthetic set (seed ``seed``, default the recipe's
    + 1000, so its regions are new) with emergence sites up to ``offset_px`` from the patch centre
    is scored whole (how the product's fixed grid sees emergence between grid points).
    """
    from heliowatch.models.emergence.train import (  # noqa: PLC0415  (imports torch: optional heavy backend)
        EmergenceDataset,
        build_semireal,
        build_synthetic,
        fcn_predict,
    )

    card = registry.load_card("emergence-fcn", root=root)
    recipe = str(card.get("training", {}).get("recipe", ""))
    m_reg = re.search(r"regions=(\d+)", recipe)
    m_seed = re.search(r"seed=(\d+)", recipe)
    n = regions or (int(m_reg.group(1)) if m_reg else 240)
    s0 = int(m_seed.group(1)) if m_seed else 0
    model = registry.load_torch("emergence-fcn", root=root)
    mtot = load_mtot(root)
    thr = float(card.get("threshold", 0.5))
    if offset_px is not None:
        ds = build_synthetic(n, seed=seed if seed is not None else s0 + 1000, max_offset_px=offset_px, progress=progress)
        te = np.arange(len(ds))
    else:
        parts = [build_synthetic(n, seed=s0, progress=progress)]
        if data is not None:
            parts.append(build_semireal(Path(data), n, seed=s0, progress=progress))
        ds = EmergenceDataset.concat(parts) if len(parts) > 1 else parts[0]
        te = np.flatnonzero(ds.split == 2)
    sub = ds.subset(te)
    p = fcn_predict(model, sub.x)
    q = mtot.predict_features(sub.log_flux, sub.trend)
    summary = skill_summary(sub, p, q, fcn_threshold=thr, mtot_threshold=mtot.threshold)
    summary["evaluation"] = (
        f"fresh synthetic regions (seed {seed if seed is not None else s0 + 1000}), sites up to {offset_px} px off centre"
        if offset_px is not None
        else f"test split of the training recipe (regions={n}, seed={s0})"
    )
    return summary
