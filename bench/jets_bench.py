"""Jet detector over the whole disk, per new 304 A frame, on ONNX Runtime (CPU by default).

Times one step of the daemon's jet path on a full-disk frame (4096x4096 at 0.6"/px, random
quiet-Sun-like values, or the catalogue-statistics synthetic disk with --synthetic): pool 3x3
to 1365x1365, cut the overlapping 166x166 tiles (normalised), the encoder over every tile, the
feature cache, and the head over every tile's cached 30-frame window. Then the same answer
without the cache: the full model (encoder on all 30 frames + head) on every tile, measured
on ``--full-tiles`` tiles and scaled to all of them (it is linear in tiles). Prints the stage
breakdown, the peak memory and the ratios to AIA's 12 s cadence.

    OMP_NUM_THREADS=1 python bench/jets_bench.py [--steps 5] [--stride 83] [--full-tiles 16] [--max-batch 0] [--synthetic]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from heliowatch.models.jets.cache import FeatureCache
from heliowatch.models.jets.frames import pool3
from heliowatch.models.jets.tiles import TileGrid, cut
from heliowatch.models.runtime.runtime import Runtime

CADENCE_S = 12.0
RSUN_ARCSEC = 960.0


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _frame(rng: np.random.Generator) -> np.ndarray:
    """A 4096x4096 0.6"/px disk: quiet-Sun level with noise inside the limb, a faint corona outside."""
    n = 4096
    yy, xx = np.ogrid[:n, :n]
    r = np.hypot(xx - (n - 1) / 2, yy - (n - 1) / 2) * 0.6 / RSUN_ARCSEC
    img = np.where(r <= 1, 50.0, 3.0 * np.exp(-(np.clip(r, 1, None) - 1) * 10)).astype(np.float32)
    return img + rng.normal(0, 5, (n, n)).astype(np.float32)


def _synthetic_frames(steps: int) -> list[np.ndarray]:
    from heliowatch.models.synthetic.jets import synth_full_disk

    frames, _ = synth_full_disk(0.0, n_jets=3, seed=0, n_frames=steps, cadence_s=12.0)
    return [f.data for f in frames]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=5, help="timed frames (after one warm-up)")
    ap.add_argument("--stride", type=int, default=83, help="tile stride in pooled pixels (83: half overlap)")
    ap.add_argument("--reach", type=float, default=1.2, help="grid reach in solar radii")
    ap.add_argument("--full-tiles", type=int, default=16, help="tiles the no-cache full model is timed on (0: all)")
    ap.add_argument("--full-batch", type=int, default=1, help="30-frame sequences per no-cache call (1 was its fastest)")
    ap.add_argument("--backend", default="onnxruntime-cpu")
    ap.add_argument("--max-batch", type=int, default=0, help="encoder batch limit (0: the profile's maximum, 256)")
    ap.add_argument("--synthetic", action="store_true", help="pooled synthetic full disks with jets instead of random frames")
    a = ap.parse_args()

    rss0 = _rss_mb()
    export_dir = Path(tempfile.mkdtemp(prefix="jets-bench-"))
    enc = Runtime("jet-encoder", export_dir=export_dir, backend=a.backend, only=True, max_batch=a.max_batch or None)
    head = Runtime("jet-head", export_dir=export_dir, backend=a.backend, only=True)
    full = Runtime("jet-convlstm", export_dir=export_dir, backend=a.backend, only=True, max_batch=a.full_batch)
    rss_models = _rss_mb()
    scale = 1.8
    grid = TileGrid.build((1365, 1365), scale, (682.0, 682.0), RSUN_ARCSEC / scale, stride=a.stride, reach_rsun=a.reach)
    n = len(grid)
    cache = FeatureCache(n, enc.card.get("features", 64))
    rng = np.random.default_rng(0)
    synthetic = _synthetic_frames(a.steps + 1) if a.synthetic else None
    raw = _frame(rng)  # the pooling stage is always timed on a 4096x4096 frame

    # Prefill the cache as a running daemon has it: 59 earlier frames (12 s apart) of features.
    f0 = enc.predict(cut(pool3(raw), grid))
    for k in range(59):
        cache.push(-12.0 * (59 - k), f0 + np.float32(0.01 * k))
    stages: dict[str, list[float]] = {"pool": [], "cut": [], "encoder": [], "cache": [], "head": []}
    totals = []
    for step in range(a.steps + 1):
        t0 = time.perf_counter()
        pooled = pool3(raw + np.float32(step))  # a new frame each step
        t1 = time.perf_counter()
        if synthetic is not None:
            pooled = synthetic[step]
        tiles = cut(pooled, grid)
        t2 = time.perf_counter()
        feats = enc.predict(tiles)
        t3 = time.perf_counter()
        cache.push(12.0 * step, feats)
        window, info = cache.window()
        t4 = time.perf_counter()
        head.predict(window)
        t5 = time.perf_counter()
        if step == 0:
            continue  # warm-up
        for stage, v in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
            stages[stage].append(v)
        totals.append(t5 - t0)
    assert info.ready
    assert window.shape[1] == 30
    med = {k: statistics.median(v) for k, v in stages.items()}
    step_s = statistics.median(totals)
    rss_step = _rss_mb()

    # Without the cache: the full model over every tile's 30 frames, each step.
    k_tiles = n if a.full_tiles <= 0 else min(a.full_tiles, n)
    seq = np.repeat(tiles[:k_tiles, None], 30, axis=1)  # (k, 30, 1, 166, 166)
    full.predict(seq[:1])
    t0 = time.perf_counter()
    full.predict(seq)
    full_k = time.perf_counter() - t0
    full_all = full_k * n / k_tiles
    recompute_s = med["pool"] + med["cut"] + full_all
    rss_full = _rss_mb()

    print(f"jet detector over the whole disk: {n} tiles (stride {a.stride}, reach {a.reach} R_sun), backend {enc.backend.name}")
    kinds = {kind: int((grid.kinds == kind).sum()) for kind in ("disk", "limb", "off-limb")}
    print(f"tiles: {kinds}; cache: {cache.nbytes / 1e6:.1f} MB of features ({len(cache)} frames x {n} tiles x 64 float32)")
    print(f"{'stage':<34}{'seconds':>10}{'x cadence':>11}")
    for stage, v in med.items():
        print(f"{stage:<34}{v:>10.3f}{v / CADENCE_S:>11.3f}")
    print(f"{'one new frame, with the cache':<34}{step_s:>10.3f}{step_s / CADENCE_S:>11.3f}")
    label = f"no cache (full model, {k_tiles}->{n} tiles)"
    print(f"{label:<34}{recompute_s:>10.3f}{recompute_s / CADENCE_S:>11.3f}")
    print(f"speed-up of caching: {recompute_s / step_s:.1f}x; encoder per tile {1000 * med['encoder'] / n:.2f} ms")
    print(
        f"peak RSS: {rss0:.0f} MB at start, {rss_models:.0f} MB with models, {rss_step:.0f} MB after the cached steps, "
        f"{rss_full:.0f} MB after the no-cache run"
    )


if __name__ == "__main__":
    main()
