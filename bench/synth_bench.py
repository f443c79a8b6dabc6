"""Synthesis benchmark: time to generate (and write) one full-disk frame, against HMI's 720 s cadence.

Usage: ``python bench/synth_bench.py [--size 4096] [--regions 6] [--repeat 2]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    import numpy as np

    from heliowatch.models.synthetic.aia import synth_aia_sequence
    from heliowatch.models.synthetic.fitsout import write_fits
    from heliowatch.models.synthetic.magnetogram import random_regions, synth_magnetogram
    from heliowatch.models.synthetic.sharp import synth_sharp

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--regions", type=int, default=6)
    ap.add_argument("--repeat", type=int, default=2)
    a = ap.parse_args()
    t = dt.datetime(2014, 1, 7, 12, tzinfo=dt.UTC)
    regions = random_regions(t, a.regions, np.random.default_rng(0))
    gen, wr = [], []
    tracemalloc.start()
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(a.repeat):
            t0 = time.perf_counter()
            data, hdr, _ = synth_magnetogram(t, regions, size=a.size, seed=i)
            gen.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            write_fits(Path(tmp) / "m.fits", data, hdr)
            wr.append(time.perf_counter() - t0)
        peak = tracemalloc.get_traced_memory()[1] / 1e9
        tracemalloc.stop()
        t0 = time.perf_counter()
        synth_sharp(t, "beta-gamma-delta", -15, 20, seed=1)
        t_sharp = time.perf_counter() - t0
        t0 = time.perf_counter()
        synth_aia_sequence(t, jet=True, seed=1)
        t_aia = time.perf_counter() - t0
    g, w = min(gen), min(wr)
    print(f"synthesis benchmark ({a.size}x{a.size}, {len(regions)} regions, best of {a.repeat})")
    print(f"{'item':<34}{'seconds':>10}{'of 720 s cadence':>18}")
    print(f"{'full-disk magnetogram: generate':<34}{g:>10.2f}{100 * g / 720:>17.2f}%")
    print(f"{'full-disk magnetogram: write RICE':<34}{w:>10.2f}{100 * w / 720:>17.2f}%")
    print(f"{'SHARP CEA patch (4 segments)':<34}{t_sharp:>10.2f}")
    print(f"{'AIA 304 sequence (30 frames)':<34}{t_aia:>10.2f}")
    print(f"peak traced memory during full-disk generation: {peak:.2f} GB")


if __name__ == "__main__":
    main()
