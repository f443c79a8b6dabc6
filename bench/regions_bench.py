"""Per-stage timing of the region product on full 4096x4096 HMI-sized frames.

Generates one synthetic 4096x4096 magnetogram (HMI plate scale, CROTA2 = 180, RICE-compressed
like a JSOC segment; six regions), then runs the daemon's region steps on it ``--repeat``
times and prints the median time of each stage, the end-to-end total for the default
(SMART detector + rules) and the CNN (CNN detector + CNN classifier) paths, their share of
HMI's 720 s cadence, and the process's peak resident memory.

Stages: read + preprocess (decompress, checks, north up, 4x integer binning, exact geometry);
detect; classify; match (NOAA SRS + tracking); quicklook (annotated PNG, from the pixels the
preprocessing already read); cutouts (a FITS + PNG per region).

Usage: ``python bench/regions_bench.py [--repeat 3] [--backend auto]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _timed(fn: Any, *args: Any, **kw: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t0


def _make_frame(path: Path, t: dt.datetime) -> None:
    import numpy as np

    from heliowatch.models.synthetic.fitsout import write_fits
    from heliowatch.models.synthetic.magnetogram import random_regions, synth_magnetogram

    data, hdr, _ = synth_magnetogram(t, random_regions(t, 6, np.random.default_rng(7)), size=4096, seed=7)
    write_fits(path, data, hdr)


def main() -> None:
    from heliowatch.models.regions.classify import classify_regions
    from heliowatch.models.regions.loaders import region_classifier, region_detector
    from heliowatch.models.regions.tracking import Tracker
    from heliowatch.pipelines.cutouts import write_cutouts
    from heliowatch.pipelines.quicklook import render_magnetogram
    from heliowatch.pipelines.regions import preprocess
    from heliowatch.pipelines.srs import SRSArchive, match_noaa
    from heliowatch.pipelines.standin.archive import demo_archive_path

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--backend", default="auto", help="inference backend for the CNNs (auto, onnxruntime-cpu, torch-cpu, ...)")
    a = ap.parse_args()
    t = dt.datetime(2011, 2, 15, 2, tzinfo=dt.UTC)
    with tempfile.TemporaryDirectory() as tmp:
        export = Path(tmp) / "models"
        path = Path(tmp) / "hmi.M_720s_nrt.fits"
        # Synthesised in a child process, so the peak memory below is the pipeline's alone.
        with ProcessPoolExecutor(max_workers=1) as ex:
            ex.submit(_make_frame, path, t).result()
        srs = SRSArchive(demo_archive_path() / "srs").latest_issued(t)
        paths = {
            "default": (region_detector("smart", export_dir=export)[0], None),
            "cnn": (
                region_detector("cnn", export_dir=export, backend=a.backend)[0],
                region_classifier("cnn", export_dir=export, backend=a.backend)[0],
            ),
        }
        times: dict[str, dict[str, list[float]]] = {k: {} for k in paths}
        counts: dict[str, int] = {}
        for i in range(a.repeat + 1):  # the first round warms the runtimes (ONNX export, sessions)
            for name, (det, cnn) in paths.items():
                tracker = Tracker()
                frame, t_pre = _timed(preprocess, path)
                regions, t_det = _timed(det, frame)
                _, t_cls = _timed(classify_regions, frame, regions, cnn=cnn)

                def match(regions: list[Any] = regions, frame: Any = frame, tracker: Tracker = tracker) -> None:
                    for r in regions:
                        match_noaa(r.hgs_lat, r.hgs_lon, frame.t_rec_utc, srs)  # type: ignore[arg-type]
                    tracker.update(regions, frame.t_rec_utc)

                _, t_match = _timed(match)
                _, t_ql = _timed(render_magnetogram, path, Path(tmp) / f"{name}.png", regions=regions, frame=frame)
                _, t_cut = _timed(write_cutouts, frame, regions, Path(tmp) / "cutouts", stem=name)
                if i == 0:
                    continue
                counts[name] = len(regions)
                for stage, v in (
                    ("read+preprocess", t_pre),
                    ("detect", t_det),
                    ("classify", t_cls),
                    ("match", t_match),
                    ("quicklook", t_ql),
                    ("cutouts", t_cut),
                ):
                    times[name].setdefault(stage, []).append(v)
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(f"4096x4096 frame (RICE-compressed FITS), {a.repeat} runs, median seconds per stage; backend {a.backend}")
    print(f"{'stage':<18}" + "".join(f"{k:>12}" for k in paths))
    for stage in times["default"]:
        print(f"{stage:<18}" + "".join(f"{statistics.median(times[k][stage]):>12.3f}" for k in paths))
    totals = {k: sum(statistics.median(v) for v in times[k].values()) for k in paths}
    print(f"{'total':<18}" + "".join(f"{totals[k]:>12.3f}" for k in paths))
    print(f"{'% of 720 s':<18}" + "".join(f"{100 * totals[k] / 720:>11.2f}%" for k in paths))
    print(f"{'regions found':<18}" + "".join(f"{counts[k]:>12}" for k in paths))
    print(f"peak resident memory of the pipeline process: {peak_gb:.2f} GB")


if __name__ == "__main__":
    main()
