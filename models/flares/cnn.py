"""The seed flare CNNs: input preparation, data sets, training, occlusion maps.

Input (as in the model cards): the LOS field of a SHARP CEA patch in kG, binned 2x2 to
0.06 deg/px (an integer factor: no interpolation), hemisphere-normalised (southern regions
flipped north-south, so Joy's tilt points the same way, and sign-inverted, so Hale's leading
polarity is the same in both hemispheres within a cycle), and centred in a 256x512 canvas
with zero padding. Patches are never resized (the seed paper
traced artefacts to resizing).

Data sets are a directory with ``labels.csv`` (``file, harpnum, noaa_ar, t_rec_utc, label,
synthetic``) and the FITS patches. :func:`build_dataset` makes one from the JSOC (the
stand-in in tests) and a GOES event list; :func:`synth_dataset` makes a synthetic one whose
labels are drawn from the real-data SHARP-keyword model applied to each patch's keywords (a
teacher), since no real labelled SHARP image set is reachable offline. Weights trained on a
synthetic set are marked synthetic and do not drive operational probabilities.

Occlusion (Zeiler & Fergus 2014, as in the seed paper): a square mask slides over the
patch; the drop in the predicted probability at each position, normalised to the largest
drop, shows where the network looks.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import structlog
from astropy.io import fits

from heliowatch.models import measures, registry, skill
from heliowatch.models.core.errors import UsageError
from heliowatch.models.core.figures import new_figure, png_bytes
from heliowatch.models.flares.features import FeatureModel
from heliowatch.models.measures import bin_mean
from heliowatch.models.synthetic.fitsout import write_fits
from heliowatch.models.synthetic.regions import SYNTH_CLASSES
from heliowatch.models.synthetic.sharp import synth_sharp

__all__ = [
    "CANVAS",
    "occlusion_map",
    "occlusion_png",
    "pad_to_canvas",
    "prepare_patch",
    "synth_dataset",
    "train_cnn",
    "write_labels",
]

log = structlog.get_logger(__name__)
CANVAS = (256, 512)


def pad_to_canvas(patch: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Centre ``patch`` in a zero canvas of ``shape``, cropping the centre if it is larger.

    Padding, not resizing: the seed paper traced CNN artefacts to resized patches.
    """
    out = np.zeros(shape, np.float32)
    h, w = min(patch.shape[0], shape[0]), min(patch.shape[1], shape[1])
    py, px = (patch.shape[0] - h) // 2, (patch.shape[1] - w) // 2
    oy, ox = (shape[0] - h) // 2, (shape[1] - w) // 2
    out[oy : oy + h, ox : ox + w] = np.nan_to_num(patch[py : py + h, px : px + w])
    return out


def prepare_patch(los_gauss: np.ndarray, *, cdelt_deg: float = 0.03, lat: float | None = None) -> np.ndarray:
    """A SHARP LOS patch as the CNNs' input canvas (kG, 0.06 deg/px, north-south normalised)."""
    factor = max(1, round(0.06 / cdelt_deg))
    d = np.nan_to_num(np.asarray(los_gauss, dtype=np.float64))
    if factor > 1:
        d = bin_mean(d, factor)
    if lat is not None and lat < 0:
        d = -d[::-1]
    return pad_to_canvas(d / 1000.0, CANVAS)


def occlusion_map(
    predict: Any, canvas: np.ndarray, *, size: int = 16, stride: int = 8, chunk: int = 64
) -> tuple[float, np.ndarray]:
    """Probability drop when a ``size`` square is zeroed, at each ``stride`` step, normalised.

    ``predict`` maps a batch ``(N, 1, H, W)`` to probabilities ``(N, 1)`` (a
    :class:`~heliowatch.models.runtime.runtime.Runtime`'s ``predict``). Returns the
    unoccluded probability and a map on the canvas grid in [-1, 1] (1: the largest drop).
    The occluded copies are made ``chunk`` at a time: all of them at once would be 1 GB for a
    256x512 canvas, more than a backfill worker is allowed.
    """
    h, w = canvas.shape
    p0 = float(predict(canvas[None, None].astype(np.float32))[0, 0])
    ys, xs = list(range(0, h - size + 1, stride)), list(range(0, w - size + 1, stride))
    positions = [(y, x) for y in ys for x in xs]
    p = np.empty(len(positions), np.float64)
    for start in range(0, len(positions), chunk):
        part = positions[start : start + chunk]
        batch = np.repeat(canvas[None, None], len(part), axis=0).astype(np.float32)
        for k, (y, x) in enumerate(part):
            batch[k, 0, y : y + size, x : x + size] = 0.0
        p[start : start + len(part)] = np.asarray(predict(batch))[:, 0]
    drop = np.zeros((h, w))
    count = np.zeros((h, w))
    k = 0
    for y in ys:
        for x in xs:
            drop[y : y + size, x : x + size] += p0 - p[k]
            count[y : y + size, x : x + size] += 1
            k += 1
    sens = np.where(count > 0, drop / np.maximum(count, 1), 0.0)
    scale = float(np.abs(sens).max())
    return p0, sens / scale if scale > 0 else sens


def occlusion_png(canvas: np.ndarray, sens: np.ndarray, *, title: str) -> bytes:
    """PNG of the patch with the normalised sensitivity contoured over it."""
    fig = new_figure((11, 3.2), dpi=110)
    axes = fig.subplots(1, 2)
    axes[0].imshow(canvas * 1000, cmap="gray", vmin=-1500, vmax=1500, origin="lower")
    axes[0].set_title("LOS field (G), 0.06 deg/px, N-S normalised", fontsize=8)
    im = axes[1].imshow(sens, cmap="RdBu_r", vmin=-1, vmax=1, origin="lower")
    axes[1].contour(canvas * 1000, levels=[-500, 500], colors=["k", "w"], linewidths=0.5)
    axes[1].set_title("occlusion sensitivity (1 = largest drop in P)", fontsize=8)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=axes[1], fraction=0.025)
    fig.suptitle(title, fontsize=9)
    return png_bytes(fig, bbox_inches="tight")


def write_labels(out: Path, rows: list[dict[str, Any]]) -> Path:
    p = out / "labels.csv"
    with open(p, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["file", "harpnum", "noaa_ar", "t_rec_utc", "lat", "label", "synthetic"])
        w.writeheader()
        w.writerows(rows)
    return p


def synth_dataset(n: int, out: Path, *, seed: int = 0, progress: Any = None) -> Path:
    """``n`` synthetic SHARP patches labelled by the real-data keyword model (a teacher)."""
    teacher, _ = FeatureModel.load(registry.weights_dir() / "flare-sharp-logistic")
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    t0 = dt.datetime(2014, 1, 1, tzinfo=dt.UTC)
    for i in range(n):
        cls = str(rng.choice(SYNTH_CLASSES))
        lat = float(rng.choice([-1, 1]) * rng.uniform(5, 30))
        lon = float(rng.uniform(-50, 50))
        # Sizes from small plage-like regions to big spot groups, so the labels are not all positive.
        size = float(np.exp(rng.uniform(np.log(0.15), np.log(1.2))))
        segs, truth = synth_sharp(t0 + dt.timedelta(hours=i), cls, lat, lon, seed=seed * 100000 + i, size=size)
        # The teacher's inputs: the LOS quantities over the HARP mask, as for real records.
        los, mask = segs["magnetogram"][0].astype(np.float64), segs["bitmap"][0] >= 30
        a1 = measures.cea_pixel_area_cm2(0.03)
        x = np.array(
            [
                [
                    math.log10(max(measures.unsigned_flux(los, a1, mask=mask), 1e15)),
                    math.log10(max(measures.total_area_uhem(a1, mask), 1.0)),
                    measures.sharp_meangbz(los, mask=mask),
                    measures.schrijver_r(los),
                ]
            ]
        )
        p = float(teacher.predict(x)[0])
        fname = f"synth-{i:05d}.magnetogram.fits"
        write_fits(out / fname, *segs["magnetogram"])
        rows.append(
            {
                "file": fname,
                "harpnum": 90000 + i,
                "noaa_ar": 0,
                "t_rec_utc": truth["t_rec"],
                "lat": lat,
                "label": int(rng.random() < p),
                "synthetic": 1,
            }
        )
        if progress:
            progress(i + 1, n)
    desc = (
        f"{n} synthetic SHARP patches (heliowatch synth, seed {seed}); labels Bernoulli(p) of the real-data"
        " flare-sharp-logistic model on each patch's LOS keywords"
    )
    (out / "README.json").write_text(json.dumps({"synthetic": True, "description": desc, "n": n, "seed": seed}))
    return write_labels(out, rows)


def _read_patch(path: Path) -> np.ndarray:
    """The image of a data-set patch (a FITS file this project wrote: trusted)."""
    with fits.open(path) as hdul:
        hdu = next(h for h in hdul if h.header.get("NAXIS", 0) or h.header.get("ZNAXIS", 0))
        return np.asarray(hdu.data, dtype=np.float64)


def _load_set(data: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    lab = data / "labels.csv"
    if not lab.exists():
        msg = f"{data} is not a flare CNN data set (labels.csv missing; build one with build_dataset or synth_dataset)"
        raise UsageError(msg)
    with open(lab, newline="") as fh:
        rows = list(csv.DictReader(fh))
    x = np.stack([prepare_patch(_read_patch(data / r["file"]), lat=float(r["lat"]) if r["lat"] else None) for r in rows])
    y = np.array([int(r["label"]) for r in rows], np.float32)
    groups = np.array([int(r["harpnum"]) for r in rows])
    return x[:, None].astype(np.float32), y, groups, any(r["synthetic"] == "1" for r in rows)


def train_cnn(name: str, data: Path, out: Path, *, epochs: int = 8, until: str | None = None, seed: int = 0) -> Path:
    """Train ``flare-cnn1``/``flare-cnn2`` on a data set; write safetensors + card with held-out skill.

    20 % of the regions (by HARP) are held out for the card's skill; positives are weighted by
    the class ratio (as in the seed paper) in the binary cross-entropy.
    """
    import torch  # noqa: PLC0415  (optional heavy backend: only when training)

    x, y, groups, synthetic = _load_set(Path(data))
    rng = np.random.default_rng(seed)
    harps = np.unique(groups)
    test_h = set(rng.choice(harps, max(1, len(harps) // 5), replace=False).tolist())
    te = np.array([g in test_h for g in groups])
    torch.manual_seed(seed)
    model = registry.get(name).factory()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    pos = max(float(y[~te].sum()), 1.0)
    w_pos = (len(y[~te]) - pos) / pos
    xt, yt = torch.from_numpy(x[~te]), torch.from_numpy(y[~te])
    for ep in range(epochs):
        model.train()
        perm = torch.randperm(len(xt))
        total = 0.0
        for i in range(0, len(xt), 16):
            idx = perm[i : i + 16]
            p = model(xt[idx]).clamp(1e-6, 1 - 1e-6)[:, 0]
            wts = torch.where(yt[idx] > 0, torch.tensor(w_pos), torch.tensor(1.0))
            loss = torch.nn.functional.binary_cross_entropy(p, yt[idx], weight=wts)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        log.info("cnn_epoch", model=name, epoch=ep + 1, loss=round(total / len(xt), 4))
    model.eval()
    with torch.inference_mode():
        p_te = model(torch.from_numpy(x[te]))[:, 0].numpy() if te.any() else np.zeros(0)
    sc = skill.score(y[te], p_te).as_dict() if te.any() and 0 < y[te].sum() < te.sum() else None
    card = {
        "training": {
            "kind": "supervised",
            "synthetic": synthetic,
            "data": json.loads((Path(data) / "README.json").read_text())["description"]
            if (Path(data) / "README.json").exists()
            else str(data),
            "cutoff_date": until,
            "recipe": f"heliowatch train {name} --data DIR --epochs {epochs} (Adam 1e-3, batch 16, positive weight {w_pos:.1f})",
            "samples": len(y),
            "positives": int(y.sum()),
        },
        "operational": not synthetic,
        "skill": {"held_out_regions": len(test_h), **(sc if sc is not None else {"note": "held-out set has one class only"})},
        "known_limits": (
            [
                "trained on synthetic patches with labels from the SHARP-keyword model: shows what a CNN can read from"
                " the field, not real flare skill; not used for operational probabilities"
            ]
            if synthetic
            else []
        )
        + ["0.06 deg/px canvas of 256x512 (15 x 31 deg): larger regions are cropped at the centre"],
    }
    return registry.save_weights(name, model, card, root=out)
