"""Latency from a record's availability at the JSOC to its stored products, per series, in replay.

A replay archive (generated: N synthetic 1024x1024 magnetograms and N synthetic SHARP records at
HMI's 720 s cadence, and AIA 304 frames at 24 s) is served by the stand-in with a simulated JSOC
latency; the daemon runs its scheduler against the replay's time-warp clock. For every stored
product the latency is (time the product was stored) - (time its record became visible), both
in archive time. Processing time counts in archive time multiplied by the replay speed, so a
low ``--speed`` is the honest setting (1 = real time).

Usage: python bench/latency_bench.py [--records 8] [--speed 4] [--latency 300] [--out bench/out/latency]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CADENCE = {"hmi.M_720s_nrt": 720.0, "hmi.sharp_cea_720s_nrt": 720.0, "aia.lev1_nrt2": 24.0}


def make_archive(root: Path, n: int) -> None:
    """N magnetograms + N SHARPs at 720 s, 30 AIA frames per magnetogram interval at 24 s."""
    import numpy as np

    from heliowatch.models.synthetic.aia import synth_aia_sequence
    from heliowatch.models.synthetic.fitsout import write_fits
    from heliowatch.models.synthetic.magnetogram import random_regions, synth_magnetogram
    from heliowatch.models.synthetic.sharp import synth_sharp

    t0 = dt.datetime(2014, 1, 7, 12, 0, tzinfo=dt.UTC)
    rng = np.random.default_rng(3)
    regions = random_regions(t0, 4, rng)
    for k in range(n):
        t = t0 + dt.timedelta(seconds=720 * k)
        data, hdr, _ = synth_magnetogram(t, regions, size=1024, seed=3, noise_seed=k)
        write_fits(
            root / "mag" / f"hmi.M_720s_nrt.{hdr['T_REC'].replace('.', '').replace(':', '')}.3.magnetogram.fits", data, hdr
        )
        segs, _ = synth_sharp(t, "beta", -15.0, 10.0, harpnum=90001, noaa_ar=12000, seed=k)
        for seg, (d, h) in segs.items():
            if seg in ("magnetogram", "bitmap", "Br"):
                stamp = h["T_REC"].replace(".", "").replace(":", "")
                write_fits(root / "sharp" / f"hmi.sharp_cea_720s_nrt.90001.{stamp}.{seg}.fits", d, h)
    cube, headers, _ = synth_aia_sequence(t0, jet=False, seed=3, n_frames=min(30 * n, 240))
    for f, h in zip(cube, headers, strict=True):
        stamp = h["T_REC"].replace("-", "").replace(":", "")
        write_fits(root / "aia" / f"aia.lev1_nrt2.{stamp}.{h['FSN']}.image_lev1.fits", f, h)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=8, help="magnetograms (and SHARP records) in the archive")
    ap.add_argument("--speed", type=float, default=4.0, help="replay speed (archive seconds per wall second)")
    ap.add_argument("--latency", type=float, default=300.0, help="simulated JSOC latency after T_REC (s)")
    ap.add_argument(
        "--jitter",
        type=float,
        default=600.0,
        help="plus a random latency of up to this (s), so polls and arrivals are out of step",
    )
    ap.add_argument("--intervals", help="poll periods HMI,SHARP,AIA in s (default: the shipped configuration)")
    ap.add_argument("--no-due-poll", action="store_true", help="only interval polls (no extra poll when a record is due)")
    ap.add_argument("--archive", type=Path, help="replay this archive instead of a generated one")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "latency")
    a = ap.parse_args()

    from heliowatch.daemon.config import load_config
    from heliowatch.daemon.logs import configure_logging
    from heliowatch.daemon.service import Daemon
    from heliowatch.models.core.times import unix_from_iso

    with tempfile.TemporaryDirectory() as tmp:
        archive = a.archive
        if archive is None:
            archive = Path(tmp) / "archive"
            make_archive(archive, a.records)
        if a.out.exists():
            shutil.rmtree(a.out)
        env = {
            "HELIOWATCH_DAEMON__STATE_DIR": str(a.out),
            "HELIOWATCH_METRICS__ENABLED": "false",
            "HELIOWATCH_REPLAY__ARCHIVE": str(archive),
            "HELIOWATCH_REPLAY__SPEED": str(a.speed),
            "HELIOWATCH_REPLAY__LATENCY_S": str(a.latency),
            "HELIOWATCH_REPLAY__LATENCY_JITTER_S": str(a.jitter),
            "HELIOWATCH_FLARES__CNN_MODEL": '""',
            "HELIOWATCH_LOGGING__LEVEL": "warning",
        }
        if a.intervals:
            m, s, aia = a.intervals.split(",")
            env |= {
                "HELIOWATCH_SCHEDULE__MAGNETOGRAM_INTERVAL_S": m,
                "HELIOWATCH_SCHEDULE__SHARP_INTERVAL_S": s,
                "HELIOWATCH_SCHEDULE__AIA_INTERVAL_S": aia,
            }
        if a.no_due_poll:
            env["HELIOWATCH_SCHEDULE__DUE_POLL"] = "false"
        configure_logging("warning", "json", stream=open("/dev/null", "w"))
        cfg = load_config(None, environ=env)
        t0 = time.monotonic()
        Daemon.from_config(cfg).run()
        wall = time.monotonic() - t0
    with sqlite3.connect(a.out / "state.sqlite") as c:
        frames = {r[0]: (r[1], r[2], r[3]) for r in c.execute("SELECT record, series, t_rec_utc, latency_s FROM frames")}
        rows = c.execute("SELECT product, payload, created_utc FROM products").fetchall()
    # A record's availability: its T_REC plus the latency the stand-in gave it (its DATE keyword,
    # which ingest recorded as the frame's latency).
    avail = {}
    for series, t_rec, lat in frames.values():
        avail[(series, t_rec)] = unix_from_iso(t_rec) + (lat if lat is not None else a.latency)
    per: dict[str, list[float]] = {}
    for product, payload, created in rows:
        p = json.loads(payload)
        if product == "data_health":
            series, t_rec, _ = frames[p["record"]]
            if series != "aia.lev1_nrt2":
                continue  # HMI series are measured on their real products
        elif product == "region":
            series, t_rec = "hmi.M_720s_nrt", p["t_rec_utc"]
        elif product == "flare_region":
            series, t_rec = "hmi.sharp_cea_720s_nrt", p["t_rec_utc"]
        else:
            continue
        per.setdefault(series, []).append(unix_from_iso(created) - avail[(series, t_rec)])
    print(
        f"latency benchmark: replay at speed {a.speed:g}, JSOC latency {a.latency:.0f} s + up to {a.jitter:.0f} s,"
        f" {a.records} HMI records, polls every {cfg.schedule.magnetogram_interval_s:.0f}/{cfg.schedule.sharp_interval_s:.0f}/"
        f"{cfg.schedule.aia_interval_s:.0f} s (HMI/SHARP/AIA), wall {wall:.0f} s"
    )
    print(f"{'series':<26}{'products':>9}{'median s':>10}{'p95 s':>8}{'max s':>8}{'cadence s':>11}{'median/cadence':>16}")
    for series, lat in sorted(per.items()):
        lat.sort()
        p95 = lat[min(len(lat) - 1, round(0.95 * (len(lat) - 1)))]
        med = statistics.median(lat)
        cad = CADENCE[series]
        print(f"{series:<26}{len(lat):>9}{med:>10.1f}{p95:>8.1f}{lat[-1]:>8.1f}{cad:>11.0f}{med / cad:>16.3f}")


if __name__ == "__main__":
    main()
