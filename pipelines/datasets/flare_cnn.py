"""The flare CNNs' real training set: SHARP patches from the JSOC labelled by GOES events.

A record is positive when an M/X flare attributed to its NOAA region starts within 24 h after
its T_REC. The set is a directory with ``labels.csv`` and the FITS patches, the layout
:func:`heliowatch.models.flares.cnn.train_cnn` reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from heliowatch.models.core.errors import UsageError
from heliowatch.models.core.times import utc_to_tai_string
from heliowatch.models.flares.cnn import write_labels
from heliowatch.pipelines.jsoc import JsocClient

__all__ = ["build_dataset"]


def build_dataset(
    client: JsocClient, series: str, start: str, end: str, events: Any, out: Path, *, segment: str = "magnetogram"
) -> Path:
    """Build a labelled set from the JSOC: SHARP patches in [start, end] and GOES events.

    A record is positive when an M/X flare attributed to its NOAA region starts within 24 h
    after its T_REC. Records without a NOAA number cannot be labelled and are skipped.
    """
    out.mkdir(parents=True, exist_ok=True)
    ds = f"{series}[][{utc_to_tai_string(start)}-{utc_to_tai_string(end)}]"
    recs = client.query(ds, ["T_REC", "HARPNUM", "NOAA_AR", "LAT_FWT", "QUALITY"])
    rows = []
    for rec in recs:
        noaa = rec.keywords.get("NOAA_AR")
        if not noaa or rec.quality:
            continue
        pairs = client.export_urls(f"{rec.name}{{{segment}}}")
        if not pairs:
            continue
        fname = f"{series}.{rec.harpnum}.{rec.t_rec.replace('.', '').replace(':', '')}.{segment}.fits"
        client.download(pairs[0][1], out / fname)
        t = pd.Timestamp(rec.t_rec_utc[:19])
        e = events
        pos = bool(
            (
                (e["noaa_ar"] == int(noaa)) & (e["start"] >= t) & (e["start"] < t + pd.Timedelta(hours=24)) & (e["flux"] >= 1e-5)
            ).any()
        )
        rows.append(
            {
                "file": fname,
                "harpnum": rec.harpnum,
                "noaa_ar": int(noaa),
                "t_rec_utc": rec.t_rec_utc,
                "lat": rec.keywords.get("LAT_FWT"),
                "label": int(pos),
                "synthetic": 0,
            }
        )
    if not rows:
        msg = f"no labelled SHARP records in {ds}"
        raise UsageError(msg)
    return write_labels(out, rows)
