"""The jet product's time per new full-disk 304 A frame, stage by stage, against AIA's 12 s cadence.

What the daemon does with each new frame once it is on disk (ingest excluded): calibrate
(checks, header pointing, exposure), pool 3x3 to 1365x1365, the encoder over every tile (217
tiles, ONNX Runtime on the CPU by default), the feature cache and the recurrent head over
every tile's 30-frame window, the physics baseline (every second frame: the 24 s grid), and
event merging. Frames are 4096x4096 level-1-like files at 0.6"/px made from the synthetic
full disk (with jets and distractors) upsampled 3x3, 12 s apart.

Prints the per-stage medians, the per-frame total over a 24 s pair of frames (one with and
one without the baseline), its ratio to the cadence, the peak memory, and the speed-up of the
feature cache over recomputing every 30-frame window (the encoder's time per frame x 30,
linear in frames, plus the head).

    taskset -c 0,1 python bench/jets_product_bench.py [--frames 34] [--timed 8] [--backend onnxruntime-cpu]

``taskset -c 0,1`` holds it to two cores, like the CI machine; the figures go in
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from astropy.io import fits

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CADENCE_S = 12.0


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _write_frames(out: Path, n: int) -> list[Path]:
    from heliowatch.models.synthetic.jets import full_disk_scene

    scene = full_disk_scene(0.0 + 1.4e9, n_jets=4, seed=3, n_frames=n, cadence_s=CADENCE_S)
    paths = []
    for k in range(n):
        data, h = scene.level1(k, fsn=1000 + k)
        full = np.zeros((4096, 4096), np.float32)
        full[:4095, :4095] = np.repeat(np.repeat(data, 3, axis=0), 3, axis=1)  # 0.6"/px, DN per raw pixel ~ the same
        h["CDELT1"] = h["CDELT2"] = h["CDELT1"] / 3
        h["CRPIX1"] = (h["CRPIX1"] - 1) * 3 + 2  # pooled pixel j covers raw 3j..3j+2: centre raw 3j+1 (0-based)
        h["CRPIX2"] = (h["CRPIX2"] - 1) * 3 + 2
        p = out / f"aia.{k:03d}.fits"
        fits.PrimaryHDU(full, header=fits.Header(h)).writeto(p)
        paths.append(p)
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=34, help="frames streamed (the window fills after 19 at 12 s)")
    ap.add_argument("--timed", type=int, default=8, help="last frames reported")
    ap.add_argument("--backend", default="onnxruntime-cpu")
    ap.add_argument("--max-batch", type=int, default=64, help="encoder batch (64 halves peak memory at no cost)")
    a = ap.parse_args()

    from heliowatch.models.jets.stream import JetStream, StreamParams
    from heliowatch.models.runtime.base import RuntimeOptions
    from heliowatch.models.runtime.runtime import open_runtime
    from heliowatch.pipelines.aia_calibration import calibrate
    from heliowatch.pipelines.fitsio import read_fits
    from heliowatch.pipelines.products.jets import jet_network

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        paths = _write_frames(Path(tmp), a.frames)
        print(f"wrote {a.frames} full-disk frames in {time.perf_counter() - t:.0f} s")
        opts = RuntimeOptions(
            export_dir=Path(tmp) / "models", cache_dir=Path(tmp) / "trt", backend=a.backend, max_batch=a.max_batch
        )
        enc_rt, head_rt = open_runtime("jet-encoder", opts, only=True), open_runtime("jet-head", opts, only=True)
        enc, head = jet_network(enc_rt, head_rt)
        thr = float(head_rt.card["threshold"]["value"])
        stream = JetStream(StreamParams(threshold=thr), encoder=enc, head=head)
        rows = []
        rss0 = _rss_mb()
        for p in paths:
            frame = read_fits(p)  # ingest (excluded from the totals)
            t0 = time.perf_counter()
            cal = calibrate(frame)
            t1 = time.perf_counter()
            results = stream.push(cal.frame, degraded=cal.degraded)
            t2 = time.perf_counter()
            sec = {k: v for r in results for k, v in r.seconds.items()}
            rows.append(
                {"calibrate": cal.seconds["calibrate"], "pool": cal.seconds["pool"], **sec, "total": (t1 - t0) + (t2 - t1)}
            )
        timed = rows[-a.timed :]
    print(
        f"backend {enc_rt.backend.name}, {len(stream.grid or [])} tiles,"
        f" OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, cores available {len(os.sched_getaffinity(0))}"
    )
    stages = ["calibrate", "pool", "encoder", "head", "baseline", "merge"]
    print("stage medians over the last frames (s):")
    for s in stages:
        vals = [r.get(s, 0.0) for r in timed]
        print(f"  {s:<10} {statistics.median(vals):7.3f}   (max {max(vals):.3f})")
    totals = [r["total"] for r in timed]
    pair = [totals[i] + totals[i + 1] for i in range(0, len(totals) - 1, 2)]
    per_frame = statistics.mean(pair) / 2 if pair else statistics.mean(totals)
    print(
        f"per frame (mean over 24 s pairs): {per_frame:.2f} s = {per_frame / CADENCE_S:.2f} x the 12 s cadence;"
        f" worst frame {max(totals):.2f} s"
    )
    enc_s = statistics.median([r.get("encoder", 0.0) for r in timed])
    head_s = statistics.median([r.get("head", 0.0) for r in timed])
    nocache = 30 * enc_s + head_s
    print(
        "without the feature cache (encoder on all 30 frames, estimated from its measured time):"
        f" {nocache:.1f} s per frame = {nocache / CADENCE_S:.1f} x the cadence;"
        f" the cache is {nocache / max(enc_s + head_s, 1e-9):.0f}x faster for the network"
    )
    mem = stream.memory
    print(
        f"peak RSS {_rss_mb():.0f} MB (after start-up {rss0:.0f} MB); feature cache {mem['cache'] / 1e6:.1f} MB;"
        f" ring of {mem['ring_frames']:.0f} pooled frames {mem['ring'] / 1e6:.0f} MB"
    )


if __name__ == "__main__":
    main()
