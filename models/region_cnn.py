"""The CNN Mt. Wilson classifier: crops, a synthetic training set, training, inference.

Crops are taken from preprocessed full disks (:func:`heliowatch.pipelines.regions.preprocess`)
at a fixed plate scale (2"/px: HMI binned 4x; no resampling), 64x64 around the region's flux
centroid, of the radial field in kG, sign-inverted for southern regions (Hale normalisation).
No Mt.-Wilson-labelled image set is reachable offline, so the shipped weights are trained on
synthetic full disks (:mod:`heliowatch.models.synthetic`) and marked synthetic.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from heliowatch.models import registry
from heliowatch.models.regions.detect import detect, radial_field
from heliowatch.models.regions.frame import prepare_disk
from heliowatch.models.synthetic.fitsout import roundtrip_image
from heliowatch.models.synthetic.magnetogram import random_regions, synth_magnetogram
from heliowatch.models.synthetic.regions import SYNTH_CLASSES

__all__ = ["CROP", "crop", "synthetic_crops", "train_region_classifier"]

CROP = 64


def crop(br: np.ndarray, cy: float, cx: float, lat: float) -> np.ndarray:
    """A 64x64 crop of the radial field (G) centred at (cy, cx), in kG, Hale-normalised."""
    out = np.zeros((CROP, CROP), np.float32)
    y0, x0 = round(cy) - CROP // 2, round(cx) - CROP // 2
    ys, xs = slice(max(y0, 0), min(y0 + CROP, br.shape[0])), slice(max(x0, 0), min(x0 + CROP, br.shape[1]))
    out[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0] = np.nan_to_num(br[ys, xs]) / 1000.0
    return -out if lat < 0 else out


def region_crops(frame: Any, regions: list[Any]) -> np.ndarray:
    """Crops of detected regions from a preprocessed frame (north up, binned to 2"/px)."""
    br = radial_field(frame)
    out = []
    for r in regions:
        sy, sx = r._slices
        sub = np.abs(br[sy, sx]) * r._mask
        cy, cx = ndimage.center_of_mass(sub) if sub.sum() > 0 else ((sy.stop - sy.start) / 2, (sx.stop - sx.start) / 2)
        out.append(crop(br, sy.start + cy, sx.start + cx, r.hgs_lat))
    return np.stack(out)[:, None] if out else np.zeros((0, 1, CROP, CROP), np.float32)


def synthetic_crops(n_frames: int, *, seed: int = 0, progress: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Crops and class labels of detected regions on synthetic 1024x1024 disks.

    Returns ``(x, y, frame_index)``; each truth region is matched to the nearest detection
    within 5 deg (undetected ones are skipped).
    """
    rng = np.random.default_rng(seed)
    xs, ys, fs = [], [], []
    for i in range(n_frames):
        t = dt.datetime(2012, 1, 1, tzinfo=dt.UTC) + dt.timedelta(days=2 * i + seed * 1000)
        data, hdr, truth = synth_magnetogram(t, random_regions(t, 6, rng), size=1024, seed=seed * 10000 + i)
        frame = prepare_disk(roundtrip_image(data, hdr), name="synthetic")
        regions = detect(frame)
        crops = region_crops(frame, regions)
        for tr in truth["regions"]:
            d = [math.hypot(r.hgs_lat - tr["hgs_lat"], r.hgs_lon - tr["hgs_lon"]) for r in regions]
            if d and min(d) < 5:
                k = int(np.argmin(d))
                xs.append(crops[k])
                ys.append(SYNTH_CLASSES.index(tr["mtwilson"]))
                fs.append(i)
        if progress:
            progress(i + 1, n_frames)
    return np.stack(xs).astype(np.float32), np.array(ys), np.array(fs)


def train_region_classifier(out: Path | None, *, frames: int = 60, epochs: int = 40, seed: int = 0) -> dict[str, Any]:
    """Train on synthetic disks (80 % of frames), report held-out accuracy, save weights + card."""
    import torch  # noqa: PLC0415  (torch: optional heavy backend)

    x, y, f = synthetic_crops(frames, seed=seed)
    test = f >= int(0.8 * frames)  # whole frames held out: no region in both sets
    torch.manual_seed(seed)
    model = registry.get("region-classifier").factory()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3, weight_decay=1e-4)
    xt, yt = torch.from_numpy(x[~test]), torch.from_numpy(y[~test])
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), 32):
            idx = perm[i : i + 32]
            # Augment: left-right flips change nothing about the class.
            xb = xt[idx]
            if torch.rand(1).item() < 0.5:
                xb = torch.flip(xb, dims=[3])
            p = model(xb).clamp(1e-6, 1)
            loss = torch.nn.functional.nll_loss(torch.log(p), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.inference_mode():
        pred = model(torch.from_numpy(x[test])).argmax(1).numpy()
    acc = float((pred == y[test]).mean()) if test.any() else float("nan")
    confusion = [
        [int(((y[test] == a) & (pred == b)).sum()) for b in range(len(SYNTH_CLASSES))] for a in range(len(SYNTH_CLASSES))
    ]
    result = {
        "held_out_accuracy": acc,
        "held_out_regions": int(test.sum()),
        "train_regions": int((~test).sum()),
        "confusion": confusion,
    }
    if out is not None:
        card = {
            "training": {
                "kind": "supervised",
                "synthetic": True,
                "data": f"{frames} synthetic 1024x1024 full disks (heliowatch synth, seed {seed}), 6 regions each,"
                " detected by the SMART-like baseline",
                "cutoff_date": None,
                "recipe": f"heliowatch.models.region_cnn.train_region_classifier(frames={frames}, epochs={epochs}, seed={seed})",
            },
            "operational": False,
            "skill": {"evaluation": "held-out synthetic frames (regions disjoint)", "classes": list(SYNTH_CLASSES), **result},
            "known_limits": [
                "trained on synthetic regions only: real regions are more varied; retrain on SRS-labelled HMI crops",
                "a region larger than the 64x64 crop (128 arcsec, ~90 Mm) is cut at the crop edge",
            ],
        }
        registry.save_weights("region-classifier", model, card, root=out)
    return result
