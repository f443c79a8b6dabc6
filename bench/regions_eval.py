"""Detection and rule-classification skill of the region baseline on synthetic full disks.

Generates N 1024x1024 full disks, each with 6 regions of random Mt. Wilson classes at random
visible activity-belt positions (seeded), runs preprocess -> detect -> classify, and matches
detections to the truth within 5 deg. Prints precision, recall, class accuracy and the
confusion matrix (rows: truth; columns: predicted, in SYNTH_CLASSES order).

Usage: ``python bench/regions_eval.py [--frames 8]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    import numpy as np

    from heliowatch.models.synthetic.cli import random_regions
    from heliowatch.models.synthetic.fitsout import write_fits
    from heliowatch.models.synthetic.magnetogram import synth_magnetogram
    from heliowatch.models.synthetic.regions import SYNTH_CLASSES
    from heliowatch.pipelines.regions import classify_regions, detect, preprocess

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=8)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    tp = fp = fn = 0
    conf: dict[tuple[str, str], int] = {}
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(a.frames):
            t = dt.datetime(2014, 1, 1, tzinfo=dt.UTC) + dt.timedelta(days=3 * i)
            data, hdr, truth = synth_magnetogram(t, random_regions(t, 6, rng), size=1024, seed=100 + i)
            path = Path(tmp) / "disk.fits"
            write_fits(path, data, hdr)
            t0 = time.perf_counter()
            frame = preprocess(path)
            regions = detect(frame)
            classify_regions(frame, regions)
            times.append(time.perf_counter() - t0)
            used: set[int] = set()
            for tru in truth["regions"]:
                cands = [
                    (float(np.hypot(r.hgs_lat - tru["hgs_lat"], r.hgs_lon - tru["hgs_lon"])), r)
                    for r in regions
                    if r.id not in used
                ]
                cands = [c for c in cands if c[0] < 5]
                if cands:
                    _, best = min(cands, key=lambda c: c[0])
                    used.add(best.id)
                    tp += 1
                    conf[(tru["mtwilson"], best.mtwilson)] = conf.get((tru["mtwilson"], best.mtwilson), 0) + 1
                else:
                    fn += 1
            fp += len(regions) - len(used)
    n = sum(conf.values())
    print(f"synthetic full disks: {a.frames} frames x 6 regions, 1024x1024 (HMI plate scale binned 4x)")
    print(f"detection: precision {tp / (tp + fp):.3f}  recall {tp / (tp + fn):.3f}  (match within 5 deg)")
    print(f"classification accuracy (rules): {sum(v for (x, y), v in conf.items() if x == y) / n:.3f} over {n} matched regions")
    print("confusion (rows truth, columns predicted):", ", ".join(SYNTH_CLASSES))
    for c in SYNTH_CLASSES:
        print(f"  {c:<18}", [conf.get((c, p), 0) for p in SYNTH_CLASSES])
    print(f"preprocess+detect+classify per frame: median {np.median(times):.2f} s")


if __name__ == "__main__":
    main()
