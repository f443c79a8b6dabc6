"""Backfill throughput on Dask: 1 and 2 workers against the daemon's own in-process rate.

A replay archive of N synthetic full-disk magnetograms and N SHARP records at HMI's 720 s
cadence is backfilled from scratch (downloads included) through the chosen products with
(a) the daemon (``run --once``, in process), (b) the backfill with the in-process executor,
(c) a LocalCluster of 1 worker and (d) of 2 workers. Printed: wall time, records/s, the
2-worker/1-worker scaling, Dask's overhead per record against the in-process executor, and
from the measured per-record cost a projection of one year of HMI (43,800 magnetograms +
SHARPs) on one box and on N workers.

Usage: python bench/backfill_bench.py [--records 12] [--size 1024] [--products regions,flares,emergence]
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

YEAR_HMI = 43_800  # 720 s records in a year


def make_archive(root: Path, n: int, size: int) -> None:
    import numpy as np

    from heliowatch.models.synthetic.fitsout import write_fits
    from heliowatch.models.synthetic.magnetogram import random_regions, synth_magnetogram
    from heliowatch.models.synthetic.sharp import synth_sharp

    t0 = dt.datetime(2014, 1, 7, 12, 0, tzinfo=dt.UTC)
    regions = random_regions(t0, 5, np.random.default_rng(4))
    for k in range(n):
        t = t0 + dt.timedelta(seconds=720 * k)
        data, hdr, _ = synth_magnetogram(t, regions, size=size, seed=4, noise_seed=k)
        stem = f"hmi.M_720s_nrt.{hdr['T_REC'].replace('.', '').replace(':', '')}.3"
        write_fits(root / "mag" / f"{stem}.magnetogram.fits", data, hdr)
        segs, _ = synth_sharp(t, "beta-gamma", -15.0, 10.0, harpnum=90001, noaa_ar=12000, seed=k)
        for seg, (d, h) in segs.items():
            if seg in ("magnetogram", "bitmap", "Br"):
                stamp = h["T_REC"].replace(".", "").replace(":", "")
                write_fits(root / "sharp" / f"hmi.sharp_cea_720s_nrt.90001.{stamp}.{seg}.fits", d, h)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=12, help="magnetograms (and SHARP records) in the archive")
    ap.add_argument("--size", type=int, default=1024, help="full-disk side in pixels (4096 = HMI)")
    ap.add_argument("--products", default="regions,flares,emergence", help="products to run (those present)")
    ap.add_argument("--cluster-workers", type=int, nargs="*", default=[1, 2])
    a = ap.parse_args()

    from heliowatch.daemon.backfill import Backfill, InlineExecutor, WorkerSpec
    from heliowatch.daemon.backfill_cluster import DaskExecutor, open_cluster
    from heliowatch.daemon.config import load_config
    from heliowatch.daemon.logs import configure_logging
    from heliowatch.daemon.service import Daemon
    from heliowatch.daemon.wiring import build

    configure_logging("error", "json", stream=open("/dev/null", "w"))
    tmp = Path(tempfile.mkdtemp(prefix="hw-backfill-bench-"))
    archive = tmp / "archive"
    t = time.perf_counter()
    make_archive(archive, a.records, a.size)
    print(
        f"archive: {a.records} magnetograms ({a.size}x{a.size}) + {a.records} SHARP records,"
        f" made in {time.perf_counter() - t:.0f} s"
    )

    def cfg_for(name: str):  # type: ignore[no-untyped-def]
        state = tmp / name
        shutil.rmtree(state, ignore_errors=True)
        return load_config(
            None,
            environ={
                "HELIOWATCH_DAEMON__STATE_DIR": str(state),
                "HELIOWATCH_METRICS__ENABLED": "false",
                "HELIOWATCH_JSOC__SERVER": "replay",
                "HELIOWATCH_REPLAY__ARCHIVE": str(archive),
                "HELIOWATCH_JSOC__ENABLED_SOURCES": '["magnetogram", "sharp"]',
                "HELIOWATCH_FLARES__CNN_MODEL": '""',
                "HELIOWATCH_ALERTS__TRANSPORT": "none",
            },
        )

    span = ("2014-01-07T00:00:00.000Z", "2014-01-09T00:00:00.000Z")
    rows = []
    # (a) the daemon in process
    cfg = cfg_for("daemon")
    app = build(cfg, once=True)
    t = time.perf_counter()
    Daemon(app, once=True).run()
    rows.append(("daemon (in process)", time.perf_counter() - t))
    wanted = None

    def backfill(label: str, executor, cfg) -> None:  # type: ignore[no-untyped-def]
        nonlocal wanted
        app = build(cfg, once=True)
        present = {p.name for p in app.products}
        wanted = ({"data_health"} | set(a.products.split(","))) & present
        t = time.perf_counter()
        report = Backfill(app, executor, WorkerSpec(cfg, archive), products=wanted).run(*span)
        rows.append((label, time.perf_counter() - t))
        app.close()
        assert not report.failed, report.failed

    backfill("backfill, in-process executor", InlineExecutor(), cfg_for("inline"))
    for n in a.cluster_workers:
        client, local = open_cluster(workers=n, memory_per_worker="3GiB")
        try:
            # Warm the workers (imports, model loading) so the figure is the steady state.
            cfg = cfg_for(f"warm{n}")
            backfill(f"(warm-up, {n} worker(s))", DaskExecutor(client), cfg)
            rows.pop()
            backfill(f"backfill, LocalCluster {n} worker(s)", DaskExecutor(client), cfg_for(f"dask{n}"))
        finally:
            client.close()
            local.close()
    records = 2 * a.records
    print(f"products: {', '.join(sorted(wanted or []))}; {records} records (magnetograms + SHARPs); 2-core machine")
    print(f"{'run':<36}{'wall s':>9}{'records/s':>11}{'s/record':>10}")
    for label, s in rows:
        print(f"{label:<36}{s:>9.1f}{records / s:>11.2f}{s / records:>10.2f}")
    by = dict(rows)
    d1, d2 = by.get("backfill, LocalCluster 1 worker(s)"), by.get("backfill, LocalCluster 2 worker(s)")
    inline = by["backfill, in-process executor"]
    if d1 and d2:
        print(f"scaling 1 -> 2 workers: {d1 / d2:.2f}x")
    if d1:
        print(f"Dask overhead per record (1 worker vs in-process executor): {(d1 - inline) / records * 1000:.0f} ms")
    per = (d2 or d1 or inline) / records
    per1 = (d1 or inline) / records
    print(f"projection, one year of HMI ({YEAR_HMI} magnetograms + {YEAR_HMI} SHARP cadences) at {a.size}x{a.size}:")
    print(f"  this 2-core box, 2 workers: {2 * YEAR_HMI * per / 86400:.1f} days")
    for n in (8, 32):
        print(
            f"  {n} single-threaded workers (linear from 1 worker; the driver's downloads not counted):"
            f" {2 * YEAR_HMI * per1 / n / 86400:.2f} days"
        )
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
