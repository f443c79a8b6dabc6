"""The CNN active-region detector: inputs, training targets, decoding, training on synthetic disks.

The network (:class:`~heliowatch.models.architectures.RegionDetector`) sees a 512x512 full
disk: the preprocessed frame (north up, <= 1024 px) binned by an integer factor and
zero-padded, never resampled. It predicts region centres as heat-map peaks at stride 4 with a
box per peak (CenterNet). Each box is turned into a region the same way the physics baseline
does it: the pixels in the box whose smoothed radial field exceeds 100 G make the region's
mask, from which come its flux-weighted centre, area and flux
(:func:`heliowatch.pipelines.regions.describe_region`); the peak height is the confidence.

Training uses synthetic full disks only (:mod:`heliowatch.models.synthetic.magnetogram`), with
seeds and dates disjoint from the evaluation frames of ``heliowatch evaluate regions``.
"""

from __future__ import annotations

import datetime as dt
import math
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from heliowatch.models import registry
from heliowatch.models.measures import bin_mean
from heliowatch.models.regions.detect import (
    describe_region,
    merge_fragments,
    mm_per_px,
    number_by_flux,
    radial_field,
)
from heliowatch.models.regions.frame import prepare_disk
from heliowatch.models.skill import average_precision
from heliowatch.models.synthetic.fitsout import roundtrip_image
from heliowatch.models.synthetic.magnetogram import random_regions, synth_magnetogram

__all__ = ["SIDE", "STRIDE", "decode", "detect_cnn", "detector_input", "targets", "train_region_detector"]

SIDE = 512
STRIDE = 4


def detector_input(frame: Any) -> tuple[np.ndarray, int]:
    """``(1, 2, 512, 512)`` network input of a preprocessed frame, and the binning factor used."""
    br = radial_field(frame)
    disk = (np.nan_to_num(frame.geo.mu) > 0.1).astype(np.float64)
    k = max(1, math.ceil(max(br.shape) / SIDE))
    if k > 1:
        br, disk = bin_mean(br, k), bin_mean(disk, k)
    x = np.zeros((1, 2, SIDE, SIDE), np.float32)
    x[0, 0, : br.shape[0], : br.shape[1]] = np.tanh(br / 500.0)
    x[0, 1, : br.shape[0], : br.shape[1]] = disk > 0.5
    return x, k


def targets(boxes: list[tuple[float, float, float, float]], side: int = SIDE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training targets of boxes ``(x0, y0, x1, y1)`` in input pixels.

    Returns the Gaussian heat map ``(H, W)`` with exactly 1 at each centre cell, the regression
    targets ``(4, H, W)`` (offset x, y; log width, height in cells) and their mask ``(H, W)``.
    """
    n = side // STRIDE
    heat = np.zeros((n, n), np.float32)
    reg = np.zeros((4, n, n), np.float32)
    on = np.zeros((n, n), np.float32)
    yy, xx = np.mgrid[0:n, 0:n]
    for x0, y0, x1, y1 in boxes:
        w, h = (x1 - x0) / STRIDE, (y1 - y0) / STRIDE
        cx, cy = (x0 + x1) / 2 / STRIDE, (y0 + y1) / 2 / STRIDE
        ix, iy = min(int(cx), n - 1), min(int(cy), n - 1)
        sigma = max(0.7, math.sqrt(max(w, 0.5) * max(h, 0.5)) / 6)
        heat = np.maximum(heat, np.exp(-((xx - ix) ** 2 + (yy - iy) ** 2) / (2 * sigma**2)).astype(np.float32))
        heat[iy, ix] = 1.0
        reg[:, iy, ix] = (cx - ix, cy - iy, math.log(max(w, 0.25)), math.log(max(h, 0.25)))
        on[iy, ix] = 1.0
    return heat, reg, on


def decode(out: np.ndarray, *, threshold: float = 0.3, top_k: int = 60) -> list[tuple[float, float, float, float, float]]:
    """Peaks of one ``(5, H, W)`` output -> ``(confidence, x0, y0, x1, y1)`` in input pixels."""
    heat = out[0]
    peaks = (heat == ndimage.maximum_filter(heat, size=3)) & (heat >= threshold)
    iy, ix = np.nonzero(peaks)
    order = np.argsort(-heat[iy, ix])[:top_k]
    dets = []
    for j in order:
        y, x = iy[j], ix[j]
        cx, cy = (x + out[1, y, x]) * STRIDE, (y + out[2, y, x]) * STRIDE
        w, h = math.exp(float(out[3, y, x])) * STRIDE, math.exp(float(out[4, y, x])) * STRIDE
        dets.append((float(heat[y, x]), cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))
    return dets


def detect_cnn(
    frame: Any,
    runtime: Any,
    *,
    threshold: float = 0.3,
    field_g: float = 100.0,
    smooth_mm: float = 4.0,
    merge_deg: float = 6.5,
    min_area_uhem: float = 20.0,
    min_flux_mx: float = 1e21,
) -> list[Any]:
    """Detect regions with the CNN.

    Each predicted box keeps the strong-field pixels inside it (a pixel belongs to the most
    confident box); boxes whose flux centres lie within ``merge_deg`` are merged as fragments
    of one region, and regions below the baseline's minimum area or flux are dropped, as the
    physics baseline does. The reported box is the predicted one (the union, when merged).
    """
    x, k = detector_input(frame)
    out = np.asarray(runtime.predict(x))[0]
    br = radial_field(frame)
    strong = ndimage.gaussian_filter(np.abs(br), max(0.5, smooth_mm / mm_per_px(frame))) > field_g
    ny, nx = br.shape
    weight = np.abs(br) * np.nan_to_num(frame.geo.area_cm2)
    lat, lon = np.nan_to_num(frame.geo.lat), np.nan_to_num(frame.geo.lon)
    cands: list[tuple[float, tuple[int, int, int, int], np.ndarray, float, float]] = []
    taken = np.zeros_like(strong)
    for conf, x0, y0, x1, y1 in decode(out, threshold=threshold):
        box = (max(0, math.floor(y0 * k)), max(0, math.floor(x0 * k)), min(ny, math.ceil(y1 * k)), min(nx, math.ceil(x1 * k)))
        sl = (slice(box[0], box[2]), slice(box[1], box[3]))
        mask = np.zeros_like(strong)
        mask[sl] = strong[sl] & ~taken[sl]
        w = weight[sl] * mask[sl]
        if mask.sum() < 4 or w.sum() <= 0:
            continue
        taken |= mask
        cands.append((conf, box, mask, float((w * lat[sl]).sum() / w.sum()), float((w * lon[sl]).sum() / w.sum())))
    regions = []
    for group in merge_fragments(np.array([c[3] for c in cands]), np.array([c[4] for c in cands]), merge_deg):
        members = [cands[i] for i in group]
        mask = np.logical_or.reduce([c[2] for c in members])
        boxes = np.array([c[1] for c in members])
        box = (int(boxes[:, 0].min()), int(boxes[:, 1].min()), int(boxes[:, 2].max()), int(boxes[:, 3].max()))
        r = describe_region(frame, br, mask, max(c[0] for c in members), threshold_g=field_g, box=box)
        if r.usflux_mx >= min_flux_mx and r.area_uhem >= min_area_uhem:
            regions.append(r)
    return number_by_flux(regions)


def _frame_boxes(frame: Any, truth: dict[str, Any], k: int) -> list[tuple[float, float, float, float]]:
    """Truth boxes (file pixels) -> input pixels of :func:`detector_input`."""
    ny, nx = frame.shape_file
    out = []
    for r in truth["regions"]:
        x0, y0, x1, y1 = r["bbox_px"]
        if x1 <= x0 or y1 <= y0:
            continue
        if frame.rot_k == 2:
            x0, x1, y0, y1 = nx - x1, nx - x0, ny - y1, ny - y0
        f = frame.factor * k
        out.append((x0 / f, y0 / f, x1 / f, y1 / f))
    return out


def _make_example(args: tuple[int, int]) -> tuple[np.ndarray, list[tuple[float, float, float, float]]]:
    """One synthetic training disk (run in a worker process)."""

    seed, i = args
    rng = np.random.default_rng(seed * 100_003 + i)
    # 2010-2013 only: the evaluation frames are dated 2015 on, with other seeds.
    t = dt.datetime(2010, 6, 1, tzinfo=dt.UTC) + dt.timedelta(hours=int(rng.integers(0, 3 * 365 * 24)))
    regions = random_regions(t, int(rng.integers(1, 10)), rng)
    data, hdr, truth = synth_magnetogram(t, regions, size=1024, seed=seed * 100_003 + i, noise_g=float(rng.uniform(6, 14)))
    frame = prepare_disk(roundtrip_image(data, hdr), name="synthetic")
    x, k = detector_input(frame)
    return x[0].astype(np.float16), _frame_boxes(frame, truth, k)


def _focal(pred: Any, gt: Any) -> Any:
    """CenterNet's penalty-reduced focal loss."""
    import torch  # noqa: PLC0415  (torch: optional heavy backend)

    p = pred.clamp(1e-4, 1 - 1e-4)
    pos = gt.eq(1).float()
    pos_loss = torch.log(p) * (1 - p) ** 2 * pos
    neg_loss = torch.log(1 - p) * p**2 * (1 - gt) ** 4 * (1 - pos)
    return -(pos_loss.sum() + neg_loss.sum()) / pos.sum().clamp(min=1)


def train_region_detector(
    out: Path | None,
    *,
    frames: int = 240,
    epochs: int = 24,
    seed: int = 0,
    crop: int = 320,
    workers: int = 2,
    progress: Any = None,
) -> dict[str, Any]:
    """Train on synthetic disks (the last 20 % of frames held out), save weights + card.

    Training takes random ``crop`` x ``crop`` windows (the network is fully convolutional) with
    random flips; held-out skill is AP at IoU 0.5 on whole 512x512 inputs.
    """
    import torch  # noqa: PLC0415  (torch: optional heavy backend)

    with ProcessPoolExecutor(max_workers=workers) as ex:
        data = []
        for j, ex_out in enumerate(ex.map(_make_example, [(seed, i) for i in range(frames)])):
            data.append(ex_out)
            if progress:
                progress(j + 1, frames, "synthesising")
    n_test = max(1, frames // 5)
    train, test = data[:-n_test], data[-n_test:]
    tg = [targets(b) for _, b in train]
    xs = torch.from_numpy(np.stack([x for x, _ in train]).astype(np.float32))
    heat = torch.from_numpy(np.stack([t[0] for t in tg]))[:, None]
    reg = torch.from_numpy(np.stack([t[1] for t in tg]))
    on = torch.from_numpy(np.stack([t[2] for t in tg]))[:, None]
    torch.manual_seed(seed)
    model = registry.get("region-detector").factory()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=epochs * math.ceil(len(xs) / 8))
    gen = torch.Generator().manual_seed(seed)
    c = crop // STRIDE
    for ep in range(epochs):
        model.train()
        perm = torch.randperm(len(xs), generator=gen)
        for b in range(0, len(xs), 8):
            idx = perm[b : b + 8]
            oy, ox = (int(v) * STRIDE for v in torch.randint(0, (SIDE - crop) // STRIDE + 1, (2,), generator=gen))
            sl = (slice(oy, oy + crop), slice(ox, ox + crop))
            cs = (slice(oy // STRIDE, oy // STRIDE + c), slice(ox // STRIDE, ox // STRIDE + c))
            xb = xs[idx][..., sl[0], sl[1]]
            hb, rb, mb = heat[idx][..., cs[0], cs[1]], reg[idx][..., cs[0], cs[1]].clone(), on[idx][..., cs[0], cs[1]]
            if torch.rand(1, generator=gen).item() < 0.5:  # east-west flip: offsets mirror
                xb, hb, rb, mb = xb.flip(3), hb.flip(3), rb.flip(3), mb.flip(3)
                rb[:, 0] = torch.where(mb[:, 0] > 0, 1 - rb[:, 0], rb[:, 0])
            pred = model(xb)
            loss = _focal(pred[:, :1], hb)
            npos = mb.sum().clamp(min=1)
            loss = loss + (torch.abs(pred[:, 1:3] - rb[:, :2]) * mb).sum() / npos
            loss = loss + 0.1 * (torch.abs(pred[:, 3:5] - rb[:, 2:]) * mb).sum() / npos
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        if progress:
            progress(ep + 1, epochs, f"epoch loss {float(loss.detach()):.3f}")
    model.eval()
    dets, truths = [], {}
    with torch.inference_mode():
        for i, (x, boxes) in enumerate(test):
            o = model(torch.from_numpy(x.astype(np.float32))[None]).numpy()[0]
            dets += [(i, d[0], [round(v) for v in d[1:]]) for d in decode(o)]
            truths[i] = [[round(v) for v in b] for b in boxes]
    ap = average_precision(dets, truths)
    result = {"held_out_ap50": ap, "held_out_frames": n_test, "train_frames": len(train), "epochs": epochs}
    if out is not None:
        card = {
            "training": {
                "kind": "supervised",
                "synthetic": True,
                "data": f"{frames} synthetic 1024x1024 full disks (heliowatch synth, 1-9 regions of random Mt. Wilson class,"
                f" 2010-2013, noise 6-14 G), seed {seed}",
                "cutoff_date": None,
                "recipe": f"heliowatch train region-detector --frames {frames} --epochs {epochs} (seed {seed})",
            },
            "operational": False,
            "skill": {"evaluation": "held-out synthetic frames (AP at IoU 0.5, input-grid boxes)", **result},
            "known_limits": [
                "trained on synthetic disks only: real plage, decaying regions and filament channels are absent;"
                " `heliowatch evaluate regions` measures it on semi-real frames with real SHARP morphology",
                "boxes follow the synthetic truth's convention (the region's own field above 100 G)",
            ],
        }
        registry.save_weights("region-detector", model, card, root=out)
    return result
