"""Ingest benchmark: records/s through the JSOC stand-in, and heliowatch's overhead per record.

Builds an archive of N RICE-compressed magnetogram records (JSOC-like files, with DATASUM),
serves it with the stand-in over loopback HTTP, then measures

- raw:    a plain HTTP GET of every file (the floor: transfer only);
- ingest: ``Ingestor.poll`` doing the real work (keyword query, one url_quick export per
          record, download to .part, FITS + DATASUM verification, digest, state commit).

Usage::

    python bench/ingest_bench.py [--records 100] [--size 1024]

Prints a table of figures and the overhead per record over the raw download.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from heliowatch.daemon.state import StateStore
from heliowatch.pipelines.frames import Source
from heliowatch.pipelines.ingest import Ingestor
from heliowatch.pipelines.jsoc import JsocClient
from heliowatch.pipelines.standin.archive import Archive
from heliowatch.pipelines.standin.server import StandinServer
from tests.conftest import write_record


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=100)
    ap.add_argument("--size", type=int, default=1024, help="image side in pixels")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "archive"
        root.mkdir()
        t0 = dt.datetime(2024, 5, 10)
        for i in range(a.records):
            write_record(root, t_rec=t0 + dt.timedelta(minutes=12 * i), shape=(a.size, a.size))
        mb = sum(p.stat().st_size for p in root.glob("*.fits")) / 1e6
        with StandinServer(Archive(root)) as srv:
            urls = [srv.url + Archive.sum_path(r, "magnetogram").lstrip("/") for r in srv.archive.records["hmi.M_720s_nrt"]]
            t = time.perf_counter()
            for u in urls:
                with urllib.request.urlopen(u, timeout=60) as resp:
                    resp.read()
            raw = time.perf_counter() - t
            client = JsocClient(srv.url, email="bench@example.org")
            state = StateStore(f"sqlite:///{Path(tmp) / 'state.sqlite'}")
            ing = Ingestor(
                Source("magnetogram", "hmi.M_720s_nrt", ("magnetogram",)),
                client,
                state,
                Path(tmp) / "frames",
                clock=lambda: (t0 + dt.timedelta(days=30)).timestamp(),
                lookback_hours=24 * 60,
                max_records=10**6,
            )
            t = time.perf_counter()
            res = ing.poll()
            full = time.perf_counter() - t
            assert res.ingested == a.records, res.summary()
    n = a.records
    print(f"ingest benchmark: {n} records of {a.size}x{a.size} float32 (RICE), {mb:.1f} MB, loopback HTTP")
    print(f"{'stage':<10}{'seconds':>10}{'records/s':>12}{'MB/s':>10}{'ms/record':>12}")
    for name, sec in (("raw GET", raw), ("ingest", full)):
        print(f"{name:<10}{sec:>10.2f}{n / sec:>12.1f}{mb / sec:>10.1f}{1000 * sec / n:>12.1f}")
    print(f"overhead per record over the raw download: {1000 * (full - raw) / n:.1f} ms  (ingest/raw = {full / raw:.1f}x)")


if __name__ == "__main__":
    main()
