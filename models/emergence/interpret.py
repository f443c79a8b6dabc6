"""Interpreting the emergence FCN the way the seed did: network pruning and synthetic probes.

- **Pruning** (:func:`prune_filters`): the filters of the last wide layer (conv4, ``4w``
  filters) are removed greedily, each time the one whose removal costs least validation ROC
  AUC, until the AUC would fall more than ``tol`` below the full network's. Removing a filter
  is exact here: with identity activations a zeroed filter outputs zero everywhere, so its
  channel contributes nothing to conv5. The kept filters are then characterised by how their
  (polarity-symmetrised) activation correlates with the unsigned flux of the input and by how
  much the logit drops without them: the seed found filters responding positively and others
  negatively to the unsigned flux.
- **Synthetic probes** (:func:`bipole_probe`): two uniform disks of opposite polarity
  (:func:`heliowatch.models.synthetic.bipole.synth_bipole`, the seed's synthetic magnetograms)
  of varying radius and field strength at the patch centre, and a family at fixed total flux,
  separate length scale from flux: the seed found small-scale, intense fields give the largest
  output. MTOT, which sees only the central flux, is shown beside the FCN.

:func:`interpretation_figure` draws both (``matplotlib.figure.Figure`` through
:mod:`heliowatch.models.core.figures`, never pyplot).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from heliowatch.models.core.figures import new_figure, save_png
from heliowatch.models.emergence.mtot import MtotClassifier, central_flux_mx
from heliowatch.models.skill import roc_auc
from heliowatch.models.synthetic.bipole import synth_bipole

__all__ = ["ProbeResult", "PruneResult", "bipole_probe", "interpretation_figure", "prune_filters", "pruned_model"]

_PX_CM2 = (1.4e8) ** 2


@dataclass
class PruneResult:
    """Outcome of :func:`prune_filters`.

    Attributes
    ----------
    n_filters : int
        Filters of conv4 before pruning.
    kept : list of int
        Filters left when pruning stopped.
    removed : list of int
        Filters in the order they were removed.
    curve : list of (int, float)
        Validation ROC AUC against the number of filters kept.
    base_auc, tol : float
        Full-network AUC and the allowed loss.
    flux_corr : dict
        Spearman correlation of each kept filter's activation with the central unsigned flux.
    effect : dict
        Mean drop of the logit when that filter alone is removed from the pruned network.
    """

    n_filters: int
    kept: list[int]
    removed: list[int]
    curve: list[tuple[int, float]]
    base_auc: float
    tol: float
    flux_corr: dict[int, float] = field(default_factory=dict)
    effect: dict[int, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary."""
        return {
            "layer": "conv4",
            "n_filters": self.n_filters,
            "kept": self.kept,
            "removed": self.removed,
            "curve": [[k, round(a, 4)] for k, a in self.curve],
            "base_auc": round(self.base_auc, 4),
            "tol": self.tol,
            "flux_corr": {str(k): round(v, 3) for k, v in self.flux_corr.items()},
            "logit_drop_without": {str(k): round(v, 3) for k, v in self.effect.items()},
        }


def _pool3(model: Any, x: np.ndarray) -> tuple[Any, Any]:
    """pool3 outputs (after conv4) of the input and of its polarity flip, cached for pruning."""
    import torch  # noqa: PLC0415  (optional heavy backend: torch)

    from heliowatch.models.emergence.network import INPUT_SCALE  # noqa: PLC0415  (imports torch)

    t = torch.from_numpy((np.nan_to_num(np.asarray(x, np.float32)) / 1000.0)[:, None])
    outs = []
    with torch.inference_mode():
        for sign in (1.0, -1.0):
            h = model.pool1(model.conv2(model.conv1(sign * t * INPUT_SCALE)))
            h = model.pool2(model.conv3(h))
            outs.append(model.pool3(model.conv4(h)))
    return outs[0], outs[1]


def _logits(model: Any, fp: Any, fn: Any, keep: np.ndarray) -> np.ndarray:
    """Symmetrised logit with only the conv4 channels in ``keep`` (a pruned channel is exactly zero)."""
    import torch  # noqa: PLC0415  (optional heavy backend: torch)

    m = torch.from_numpy(keep.astype(np.float32))[None, :, None, None]
    with torch.inference_mode():
        zp = model.pool_out(model.conv5(fp * m)).flatten(1)[:, 0]
        zn = model.pool_out(model.conv5(fn * m)).flatten(1)[:, 0]
        z = 0.5 * (zp + zn) if model.symmetric else zp
    return z.numpy().astype(np.float64)


def prune_filters(model: Any, x: np.ndarray, y: np.ndarray, *, tol: float = 0.02) -> PruneResult:
    """Greedy backward elimination of conv4 filters on validation windows ``x`` (Gauss) with labels ``y``."""
    fp, fn = _pool3(model, x)
    n = int(fp.shape[1])
    keep = np.ones(n, bool)
    base = roc_auc(y, _logits(model, fp, fn, keep))
    curve = [(n, base)]
    removed: list[int] = []
    while keep.sum() > 1:
        best_j, best_auc = -1, -1.0
        for j in map(int, np.flatnonzero(keep)):
            k2 = keep.copy()
            k2[j] = False
            a = roc_auc(y, _logits(model, fp, fn, k2))
            if a > best_auc:
                best_j, best_auc = j, a
        if best_auc < base - tol:
            break
        keep[best_j] = False
        removed.append(best_j)
        curve.append((int(keep.sum()), best_auc))
    kept = [int(j) for j in np.flatnonzero(keep)]
    flux = central_flux_mx(x)
    z_all = _logits(model, fp, fn, keep)
    corr: dict[int, float] = {}
    eff: dict[int, float] = {}
    for j in kept:
        act = 0.5 * (fp[:, j].amax(dim=(1, 2)) + fn[:, j].amax(dim=(1, 2))).numpy()
        r = stats.spearmanr(act, flux).statistic if np.std(act) > 0 else 0.0
        corr[j] = float(r) if np.isfinite(r) else 0.0
        k2 = keep.copy()
        k2[j] = False
        eff[j] = float(np.mean(z_all - _logits(model, fp, fn, k2)))
    return PruneResult(n, kept, removed, curve, base, tol, corr, eff)


def pruned_model(model: Any, kept: Sequence[int]) -> Any:
    """A copy of ``model`` with every conv4 filter not in ``kept`` zeroed (weights and bias)."""
    import torch  # noqa: PLC0415  (optional heavy backend: torch)

    m = copy.deepcopy(model)
    drop = [j for j in range(m.conv4.out_channels) if j not in set(kept)]
    with torch.no_grad():
        m.conv4.weight[drop] = 0.0
        m.conv4.bias[drop] = 0.0
    return m.eval()


@dataclass
class ProbeResult:
    """FCN (and MTOT) outputs on synthetic bipoles.

    Attributes
    ----------
    radii_px, fields_g : list of float
        Disk radius (patch px, 1.4 Mm) and field strength grid.
    p_fcn, p_mtot : ndarray (R, F)
        P(emergence) for each radius and field.
    flux_mx : float
        Total unsigned flux of the fixed-flux family.
    p_fcn_flux, p_mtot_flux : ndarray (R,)
        P(emergence) against radius at that flux.
    """

    radii_px: list[float]
    fields_g: list[float]
    p_fcn: np.ndarray
    p_mtot: np.ndarray
    flux_mx: float
    p_fcn_flux: np.ndarray
    p_mtot_flux: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary."""
        return {
            "radii_px": self.radii_px,
            "fields_g": self.fields_g,
            "p_fcn": np.round(self.p_fcn, 4).tolist(),
            "p_mtot": np.round(self.p_mtot, 4).tolist(),
            "flux_mx": self.flux_mx,
            "p_fcn_fixed_flux": np.round(self.p_fcn_flux, 4).tolist(),
            "p_mtot_fixed_flux": np.round(self.p_mtot_flux, 4).tolist(),
        }


def _bipole(radius: float, field_g: float, size: int) -> np.ndarray:
    img, _, _ = synth_bipole(radius_px=radius, field_g=field_g, separation_px=max(2.5 * radius, 2 * radius + 2), size=size)
    return img.astype(np.float32)


def bipole_probe(
    predict: Callable[[np.ndarray], np.ndarray],
    *,
    mtot: MtotClassifier | None = None,
    radii_px: Sequence[float] = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 11.0),
    fields_g: Sequence[float] = (25.0, 50.0, 100.0, 200.0, 400.0, 800.0, 1600.0),
    flux_mx: float = 5e19,
    background: np.ndarray | None = None,
    size: int = 85,
) -> ProbeResult:
    """Score centred bipoles with the FCN (``predict``: Gauss windows (N, 85, 85) -> P) and MTOT.

    ``background`` (Gauss, 85x85) is added to every probe (default: none, as the seed's
    synthetic magnetograms). MTOT sees each probe with no previous window (flux only).
    """
    bg = np.zeros((size, size), np.float32) if background is None else np.asarray(background, np.float32)
    grid = np.stack([_bipole(r, b, size) + bg for r in radii_px for b in fields_g])
    fixed = np.stack([_bipole(r, flux_mx / (2 * np.pi * r * r * _PX_CM2), size) + bg for r in radii_px])
    nr, nf = len(radii_px), len(fields_g)
    p = np.asarray(predict(grid), np.float64).reshape(nr, nf)
    pf = np.asarray(predict(fixed), np.float64).reshape(nr)
    if mtot is not None:
        q = mtot.predict(grid).reshape(nr, nf)
        qf = mtot.predict(fixed).reshape(nr)
    else:
        q, qf = np.full((nr, nf), np.nan), np.full(nr, np.nan)
    return ProbeResult(list(map(float, radii_px)), list(map(float, fields_g)), p, q, float(flux_mx), pf, qf)


def interpretation_figure(prune: PruneResult, probe: ProbeResult, path: Path, *, title: str = "") -> Path:
    """Pruning curve, P(radius, field) map and the fixed-flux length-scale curve, as one PNG."""
    fig = new_figure((13.0, 3.9), dpi=110)
    ax1, ax2, ax3 = fig.subplots(1, 3)
    k, a = zip(*prune.curve, strict=True)
    ax1.plot(k, a, "o-", ms=3)
    ax1.axhline(prune.base_auc - prune.tol, color="0.6", ls="--", lw=0.8)
    ax1.set_xlabel("conv4 filters kept")
    ax1.set_ylabel("validation ROC AUC")
    ax1.set_title(f"pruning: {len(prune.kept)} of {prune.n_filters} filters kept", fontsize=9)
    ax1.invert_xaxis()
    mm = np.array(probe.radii_px) * 1.4
    im = ax2.imshow(probe.p_fcn, origin="lower", aspect="auto", vmin=0, vmax=1, cmap="viridis")
    ax2.set_xticks(range(len(probe.fields_g)), [f"{b:g}" for b in probe.fields_g], fontsize=7)
    ax2.set_yticks(range(len(mm)), [f"{v:.1f}" for v in mm], fontsize=7)
    ax2.set_xlabel("bipole field |B| (G)")
    ax2.set_ylabel("disk radius (Mm)")
    ax2.set_title("FCN P(emergence), centred bipole", fontsize=9)
    fig.colorbar(im, ax=ax2, fraction=0.046)
    ax3.plot(mm, probe.p_fcn_flux, "o-", ms=3, label="FCN")
    if np.isfinite(probe.p_mtot_flux).any():
        ax3.plot(mm, probe.p_mtot_flux, "s--", ms=3, label="MTOT (flux only)")
    ax3.set_xscale("log")
    ax3.set_xticks(mm, [f"{v:.1f}" for v in mm], fontsize=7)
    ax3.minorticks_off()
    ax3.set_xlabel("disk radius (Mm)")
    ax3.set_ylabel("P(emergence)")
    ax3.set_ylim(-0.02, 1.02)
    ax3.set_title(f"fixed total flux {probe.flux_mx:.0e} Mx", fontsize=9)
    ax3.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save_png(fig, path)
