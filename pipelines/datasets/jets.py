"""The jet detector's real training set: AIA 304 A cutout sequences of catalogued jets and non-jets.

As Charlet et al. built theirs: for every Solar Jet Hunter jet (its time and base point) a
30-frame ``aia.lev1_euv_12s`` 304 A sequence at 24 s, cut out around the base point by the
JSOC (``im_patch`` exports of 300" x 300", i.e. 500 x 500 at 0.6"/px), labelled 1; for every
row of ``No_jet_df.csv`` (HEK times and places without a jet) the same, labelled 0. Unlike the
seed's random split, the split is **by date**: all samples of one day go to one set, train
before validation before test in time, so no jet has frames on two sides and nothing later
than the test period is learnt from.

Layout of the set (what :func:`load_jet_dataset` and ``heliowatch train jet-convlstm --data``
read): ``manifest.json`` (samples, labels, dates, split, the catalogue files' SHA-256) and one
``<id>.npz`` per sample holding the pooled sequence in DN/s, ``(T, 166, 166)`` float32, with
its frame times. Built samples are skipped on a rerun, so an interrupted build resumes.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from heliowatch.models.core.errors import UsageError
from heliowatch.models.core.times import parse_iso, utc_to_tai_string
from heliowatch.models.jets.tiles import TILE
from heliowatch.pipelines.aia_calibration import calibrate
from heliowatch.pipelines.errors import DataRejected, SourceUnavailable
from heliowatch.pipelines.fitsio import read_fits
from heliowatch.pipelines.jsoc import JsocClient

__all__ = ["JetSample", "build_jet_dataset", "catalogue_samples", "date_split", "load_jet_dataset"]

log = structlog.get_logger(__name__)

#: Cutout side (arcsec): 500 px at 0.6"/px, the seed's field of view.
FOV_ARCSEC = 300.0
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class JetSample:
    """One catalogue row to fetch: a jet (label 1) or a HEK non-jet (label 0)."""

    sample_id: str
    t_utc: str
    x_arcsec: float
    y_arcsec: float
    label: int


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def catalogue_samples(catalogue_dir: Path, *, limit: int | None = None) -> list[JetSample]:
    """Positives from the Solar Jet Hunter clusters, negatives from ``No_jet_df.csv``.

    Raises
    ------
    UsageError
        If either file is missing or has none of the expected columns.
    """
    jets_csv = next(iter(sorted(catalogue_dir.glob("Jet_clusters*.csv"))), None)
    nojet_csv = catalogue_dir / "No_jet_df.csv"
    if jets_csv is None or not nojet_csv.exists():
        msg = f"{catalogue_dir}: needs the Solar Jet Hunter Jet_clusters*.csv and No_jet_df.csv"
        raise UsageError(msg)
    out: list[JetSample] = []
    with open(jets_csv, newline="") as f:
        rows = list(csv.reader(f))
    head = [h.strip().lstrip("#").strip() for h in rows[0]]
    try:
        i_id, i_t, i_x, i_y = (head.index(k) for k in ("sjh_ID", "date", "basepoint_X", "basepoint_Y"))
    except ValueError:
        msg = f"{jets_csv}: no sjh_ID/date/basepoint_X/basepoint_Y columns (got {head[:6]})"
        raise UsageError(msg) from None
    for r in rows[1:]:
        out.append(JetSample(r[i_id].strip(), r[i_t].strip()[:19], float(r[i_x]), float(r[i_y]), 1))
    with open(nojet_csv, newline="") as f:
        for k, row in enumerate(csv.DictReader(f)):
            out.append(JetSample(f"nojet_{k:04d}", row["date"][:19], float(row["basepoint_X"]), float(row["basepoint_Y"]), 0))
    if limit is not None:
        # An even share of both classes, earliest first (a reproducible small build).
        pos = [s for s in out if s.label == 1][: (limit + 1) // 2]
        neg = [s for s in out if s.label == 0][: limit // 2]
        out = pos + neg
    return sorted(out, key=lambda s: s.t_utc)


def date_split(samples: list[JetSample], fractions: tuple[float, float] = (0.7, 0.15)) -> dict[str, str]:
    """Split by day, in time order: ``{sample_id: "train" | "validation" | "test"}``.

    The first ``fractions[0]`` of the days (weighted by samples) train, the next
    ``fractions[1]`` validate, the rest test; a day is never split.
    """
    days = sorted({s.t_utc[:10] for s in samples})
    count = {d: 0 for d in days}
    for s in samples:
        count[s.t_utc[:10]] += 1
    total = sum(count.values())
    which: dict[str, str] = {}
    seen = 0
    for d in days:
        frac = seen / max(total, 1)
        which[d] = "train" if frac < fractions[0] else ("validation" if frac < fractions[0] + fractions[1] else "test")
        seen += count[d]
    return {s.sample_id: which[s.t_utc[:10]] for s in samples}


def _window(t_utc: str, frames: int, spacing_s: float) -> tuple[str, str]:
    """The sequence around a catalogue time: a third before it, two thirds after (jets rise quickly)."""
    t = parse_iso(t_utc)
    start = t - dt.timedelta(seconds=spacing_s * (frames // 3))
    return utc_to_tai_string(start.strftime("%Y-%m-%dT%H:%M:%S")), f"{math.ceil(spacing_s * frames / 60)}m@{spacing_s:g}s"


def build_jet_dataset(
    client: JsocClient,
    catalogue_dir: Path,
    out: Path,
    *,
    series: str = "aia.lev1_euv_12s",
    frames: int = 30,
    spacing_s: float = 24.0,
    limit: int | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> dict[str, Any]:
    """Fetch, calibrate and pool the cutout sequences of the catalogue; write the set (see the module notes).

    Returns the manifest. A sample whose export fails or returns fewer than 10 usable frames is
    recorded as skipped with the reason (and retried on the next run).

    Raises
    ------
    SourceUnavailable
        If the JSOC cannot be reached at all (nothing was built).
    """
    out.mkdir(parents=True, exist_ok=True)
    samples = catalogue_samples(catalogue_dir, limit=limit)
    split = date_split(samples)
    manifest: dict[str, Any] = {
        "kind": "heliowatch jet training set",
        "series": series,
        "frames": frames,
        "spacing_s": spacing_s,
        "fov_arcsec": FOV_ARCSEC,
        "split_rule": "by day, in time order: 70 % of samples train, 15 % validation, 15 % test; a day is never split",
        "catalogue": {p.name: _sha256(p) for p in sorted(catalogue_dir.glob("*.csv"))},
        "samples": [],
        "skipped": [],
    }
    built = 0
    for k, s in enumerate(samples):
        npz = out / f"{s.sample_id}.npz"
        entry = {
            "id": s.sample_id,
            "t_utc": s.t_utc,
            "x": s.x_arcsec,
            "y": s.y_arcsec,
            "label": s.label,
            "split": split[s.sample_id],
        }
        if not npz.exists():
            try:
                cube, times = _fetch_sequence(client, s, series=series, frames=frames, spacing_s=spacing_s)
            except (DataRejected, SourceUnavailable, TimeoutError) as e:
                if isinstance(e, SourceUnavailable) and built == 0 and k == 0:
                    raise
                manifest["skipped"].append({**entry, "reason": str(e)[:200]})
                log.warning("jet_sample_skipped", sample=s.sample_id, error=str(e)[:200])
                continue
            tmp = npz.with_name(npz.stem + ".part.npz")
            np.savez_compressed(tmp, cube=cube, times=times, label=s.label)
            tmp.replace(npz)
        with np.load(npz) as z:
            entry["n_frames"] = int(z["cube"].shape[0])
        manifest["samples"].append(entry)
        built += 1
        if progress:
            progress(k + 1, len(samples), s.sample_id)
    counts: dict[str, dict[str, int]] = {}
    for sample in manifest["samples"]:
        c = counts.setdefault(sample["split"], {"jet": 0, "non_jet": 0})
        c["jet" if sample["label"] else "non_jet"] += 1
    manifest["counts"] = counts
    manifest["dates"] = {
        part: [min(r["t_utc"] for r in rows), max(r["t_utc"] for r in rows)]
        for part in ("train", "validation", "test")
        if (rows := [r for r in manifest["samples"] if r["split"] == part])
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return manifest


def _fetch_sequence(
    client: JsocClient, s: JetSample, *, series: str, frames: int, spacing_s: float
) -> tuple[np.ndarray, np.ndarray]:
    start, span = _window(s.t_utc, frames, spacing_s)
    ds = f"{series}[{start}/{span}][304]{{image}}"
    process = {
        "im_patch": {
            "t_ref": s.t_utc.replace("T", " "),
            "t": 0,
            "r": 0,
            "c": 0,
            "locunits": "arcsec",
            "boxunits": "arcsec",
            "x": s.x_arcsec,
            "y": s.y_arcsec,
            "width": FOV_ARCSEC,
            "height": FOV_ARCSEC,
        }
    }
    pairs = client.export_urls(ds, process=process)
    pooled, times = [], []
    with tempfile.TemporaryDirectory(prefix="heliowatch-jets-") as tmp:
        for rec, url in pairs:
            path = Path(tmp) / (rec.replace("/", "_").replace("{", ".").replace("}", "") + ".fits")
            try:
                client.download(url, path)
                cal = calibrate(read_fits(path))
            except DataRejected as e:
                log.info("jet_frame_refused", sample=s.sample_id, record=rec, reason=e.reason)
                continue
            pooled.append(cal.frame.data)
            times.append(cal.frame.t_unix)
    if len(pooled) < 10:
        msg = f"{s.sample_id}: {len(pooled)} usable 304 A frames of {len(pairs)} exported ({ds})"
        raise DataRejected(msg, reason="short")
    order = np.argsort(times)
    # The network's 166x166 field (500 px at 0.6"/px pooled 3x3); a coarser archive's cutout is trimmed to it.
    ny, nx = min(min(p.shape[0] for p in pooled), TILE), min(min(p.shape[1] for p in pooled), TILE)
    cube = np.stack([pooled[i][:ny, :nx] for i in order]).astype(np.float32)
    return cube, np.asarray(times, dtype=np.float64)[order]


def load_jet_dataset(root: Path) -> dict[str, list[tuple[np.ndarray, bool]]]:
    """The built set as ``{"train" | "validation" | "test": [(cube DN/s (T, H, W), is_jet), ...]}``.

    Raises
    ------
    UsageError
        If ``root`` holds no manifest or a split is empty.
    """
    man = root / MANIFEST
    if not man.exists():
        msg = f"{root}: no {MANIFEST} (build the set with `heliowatch datasets jets`)"
        raise UsageError(msg)
    manifest = json.loads(man.read_text())
    out: dict[str, list[tuple[np.ndarray, bool]]] = {"train": [], "validation": [], "test": []}
    for e in manifest["samples"]:
        with np.load(root / f"{e['id']}.npz") as z:
            out[e["split"]].append((np.asarray(z["cube"], dtype=np.float32), bool(e["label"])))
    empty = [k for k, v in out.items() if not v]
    if empty:
        msg = f"{root}: the {', '.join(empty)} split(s) are empty ({len(manifest['samples'])} samples built)"
        raise UsageError(msg)
    return out
