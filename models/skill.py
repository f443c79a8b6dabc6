"""Forecast verification scores used in the flare-forecasting literature.

- TSS (true skill statistic, Hanssen-Kuipers): POD - POFD, in [-1, 1], base-rate independent.
- HSS (Heidke skill score): accuracy relative to random chance with the same marginals.
- BSS (Brier skill score): 1 - BS / BS_ref, the reference being the sample climatology
  (Leka et al. 2019) unless another is given.
- ROC AUC.
- Reliability: observed frequency against forecast probability in bins, plus a diagram.
- Brier score decomposition (Murphy 1973): BS = reliability - resolution + uncertainty.

References: Bloomfield et al. 2012 (ApJL 747 L41), Leka et al. 2019 (ApJS 243 36),
Murphy 1973 (J. Appl. Meteor. 12 595).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from heliowatch.models.core.figures import new_figure, save_png

__all__ = [
    "BrierDecomposition",
    "Scores",
    "average_precision",
    "brier_decomposition",
    "bss",
    "contingency",
    "hss",
    "iou",
    "reliability",
    "reliability_plot",
    "roc_auc",
    "score",
    "tss",
]


def contingency(y: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> tuple[int, int, int, int]:
    """(hits, misses, false alarms, correct negatives) for ``p >= threshold``."""
    yb = np.asarray(y).astype(bool)
    f = np.asarray(p) >= threshold
    return int((f & yb).sum()), int((~f & yb).sum()), int((f & ~yb).sum()), int((~f & ~yb).sum())


def tss(y: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> float:
    """True skill statistic at ``threshold``."""
    a, c, b, d = contingency(y, p, threshold)
    pod = a / (a + c) if a + c else 0.0
    pofd = b / (b + d) if b + d else 0.0
    return pod - pofd


def hss(y: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> float:
    """Heidke skill score at ``threshold`` (2(ad - bc) / ((a+c)(c+d) + (a+b)(b+d)))."""
    a, c, b, d = contingency(y, p, threshold)
    den = (a + c) * (c + d) + (a + b) * (b + d)
    return 2 * (a * d - b * c) / den if den else 0.0


def bss(y: np.ndarray, p: np.ndarray, reference: float | np.ndarray | None = None) -> float:
    """Brier skill score against ``reference`` (default: the sample climatology)."""
    yf = np.asarray(y, dtype=float)
    pf = np.asarray(p, dtype=float)
    ref = yf.mean() if reference is None else reference
    bs = np.mean((pf - yf) ** 2)
    bs_ref = np.mean((ref - yf) ** 2)
    return float(1 - bs / bs_ref) if bs_ref > 0 else 0.0


def roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    """Area under the ROC curve (NaN if only one class is present)."""
    yb = np.asarray(y).astype(int)
    if yb.min() == yb.max():
        return float("nan")
    return float(roc_auc_score(yb, p))


def reliability(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[tuple[float, float, int]]:
    """(mean forecast, observed frequency, count) per probability bin with data."""
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(p, edges) - 1, 0, bins - 1)
    out = []
    for i in range(bins):
        m = idx == i
        if m.any():
            out.append((float(np.mean(np.asarray(p)[m])), float(np.mean(np.asarray(y)[m])), int(m.sum())))
    return out


class _Record:
    """A flat record of numbers (the dataclasses below)."""

    def as_dict(self) -> dict[str, float | int]:
        """For JSON and tables."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class BrierDecomposition(_Record):
    """Murphy's (1973) partition of the Brier score over probability bins."""

    brier: float
    reliability: float
    resolution: float
    uncertainty: float
    bins: int


def brier_decomposition(y: np.ndarray, p: np.ndarray, bins: int = 10) -> BrierDecomposition:
    """Brier score and its reliability, resolution and uncertainty terms (Murphy 1973).

    Parameters
    ----------
    y : numpy.ndarray
        Outcomes, 0 or 1.
    p : numpy.ndarray
        Forecast probabilities.
    bins : int
        Equal-width probability bins on [0, 1] (the bins of :func:`reliability`).

    Returns
    -------
    BrierDecomposition
        ``reliability = sum_k n_k (f_k - o_k)^2 / N`` and ``resolution = sum_k n_k (o_k - o)^2 / N``
        with ``f_k``, ``o_k`` the mean forecast and observed frequency in bin ``k``, and
        ``uncertainty = o (1 - o)``. ``reliability - resolution + uncertainty`` equals the Brier
        score when the forecasts within each bin are equal; otherwise it differs by the
        within-bin variance terms, which is why the Brier score itself is reported too.
    """
    yf = np.asarray(y, dtype=float)
    pf = np.asarray(p, dtype=float)
    n = len(yf)
    if n == 0:
        msg = "no forecasts to decompose"
        raise ValueError(msg)
    obar = float(yf.mean())
    rel = res = 0.0
    for f_k, o_k, n_k in reliability(yf, pf, bins):
        rel += n_k * (f_k - o_k) ** 2
        res += n_k * (o_k - obar) ** 2
    return BrierDecomposition(
        brier=float(np.mean((pf - yf) ** 2)),
        reliability=rel / n,
        resolution=res / n,
        uncertainty=obar * (1 - obar),
        bins=bins,
    )


@dataclass(frozen=True)
class Scores(_Record):
    """The standard scores of one set of forecasts."""

    n: int
    events: int
    tss: float
    hss: float
    bss: float
    auc: float
    threshold: float


def score(y: np.ndarray, p: np.ndarray, *, threshold: float = 0.5, reference: float | None = None) -> Scores:
    """TSS and HSS at ``threshold``, BSS against ``reference`` (sample climatology by default), AUC."""
    y = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=float)
    return Scores(
        n=len(y),
        events=int(y.sum()),
        tss=tss(y, p, threshold),
        hss=hss(y, p, threshold),
        bss=bss(y, p, reference),
        auc=roc_auc(y, p),
        threshold=threshold,
    )


def reliability_plot(curves: dict[str, list[tuple[float, float, int]]], path: Path, *, title: str) -> Path:
    """Write a reliability diagram (one line per model or fold) with the forecast histogram."""
    fig = new_figure((5.5, 6.5), dpi=110)
    ax, hx = fig.subplots(2, 1, gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    ax.plot([0, 1], [0, 1], "k:", lw=1, label="perfect reliability")
    for name, pts in curves.items():
        if not pts:
            continue
        f, o, n = zip(*pts, strict=True)
        ax.plot(f, o, "o-", ms=3, lw=1.2, label=name)
        hx.plot(f, n, "o-", ms=3, lw=1)
    ax.set_ylabel("observed frequency")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(title, fontsize=9)
    hx.set_yscale("log")
    hx.set_xlabel("forecast probability")
    hx.set_ylabel("forecasts")
    fig.tight_layout()
    return save_png(fig, path)


def iou(a: list[int], b: list[int]) -> float:
    """Intersection over union of two half-open ``[x0, y0, x1, y1]`` boxes."""
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def average_precision(
    dets: list[tuple[int, float, list[int]]], truths: dict[int, list[list[int]]], *, iou_min: float = 0.5
) -> float:
    """VOC-style AP (all-point interpolation) of detections ``(frame, confidence, box)``."""
    n_true = sum(len(v) for v in truths.values())
    if n_true == 0:
        return float("nan")
    used: dict[int, set[int]] = {k: set() for k in truths}
    tp = []
    for f, _c, box in sorted(dets, key=lambda d: -d[1]):
        best, best_iou = None, iou_min
        for j, tb in enumerate(truths.get(f, [])):
            v = iou(box, tb)
            if j not in used.setdefault(f, set()) and v >= best_iou:
                best, best_iou = j, v
        if best is not None:
            used[f].add(best)
        tp.append(best is not None)
    if not tp:
        return 0.0
    hits = np.cumsum(tp)
    recall = hits / n_true
    precision = hits / np.arange(1, len(tp) + 1)
    # Precision envelope, then the area under the step curve.
    env = np.maximum.accumulate(precision[::-1])[::-1]
    r_prev = np.concatenate([[0.0], recall[:-1]])
    return float(np.sum((recall - r_prev) * env))
