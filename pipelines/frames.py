"""Frames as they travel: a JSOC source, and the verified frame of one record (its segments read once).

A :class:`VerifiedFrame` is what ingest hands to the products: the record's keywords, and for
each segment the file on disk and its verified, already read :class:`FitsFrame`. ``as-is``
exports carry no keywords in their FITS headers (drms tutorial), so the query's values are
merged into each segment's header where the file has none, and kept in a JSON sidecar so a
frame can be rebuilt from disk (:func:`load_frame`, :func:`reload`) after a restart.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from heliowatch.models.core.vocabulary import SourceKind
from heliowatch.pipelines.fitsio import FitsFrame, read_fits
from heliowatch.pipelines.jsoc import RemoteRecord

__all__ = ["Source", "VerifiedFrame", "load_frame", "merge_keywords", "reload", "sidecar_keywords"]


@dataclass(frozen=True)
class Source:
    """One thing to poll: a series, its segments and (for AIA) one wavelength."""

    kind: SourceKind
    series: str
    segments: tuple[str, ...]
    wavelength: int | None = None
    reorder_window_s: float = 0.0

    @property
    def name(self) -> str:
        """A bounded, human-readable id used as a job name and metric label."""
        return f"{self.series}:{self.wavelength}" if self.wavelength else self.series

    def recordset(self, start_tai: str, end_tai: str) -> str:
        """The record set of this source between two TAI times."""
        window = f"[{start_tai}-{end_tai}]"
        if self.kind == "sharp":
            return f"{self.series}[]{window}"
        if self.kind == "aia":
            return f"{self.series}{window}[? WAVELNTH={self.wavelength} ?]"
        return f"{self.series}{window}"


@dataclass
class VerifiedFrame:
    """A record whose segment files are verified, recorded and read."""

    source: Source
    record: RemoteRecord
    paths: dict[str, Path]
    segments: dict[str, FitsFrame]
    latency_s: float | None

    @property
    def key(self) -> str:
        """The natural key products are marked processed under (the JSOC record name)."""
        return self.record.name

    @property
    def t_rec_utc(self) -> str:
        """T_REC in UTC ISO 8601."""
        return self.record.t_rec_utc

    @property
    def kind(self) -> SourceKind:
        """The source kind (magnetogram, sharp, aia)."""
        return self.source.kind

    def segment(self, *preferred: str) -> FitsFrame:
        """The first of ``preferred`` segments present, else the first segment of the record."""
        for name in preferred:
            if name in self.segments:
                return self.segments[name]
        return next(iter(self.segments.values()))


def _jsonable(kw: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in kw.items()}


def sidecar_keywords(path: Path, keywords: dict[str, Any]) -> Path:
    """Write the queried keywords beside a segment file (``x.fits`` -> ``x.keywords.json``)."""
    side = path.with_suffix(".keywords.json")
    side.write_text(json.dumps(_jsonable(keywords), sort_keys=True))
    return side


def merge_keywords(frame: FitsFrame, keywords: dict[str, Any]) -> FitsFrame:
    """Fill header cards the file lacks (or has empty) from the query's keyword values."""
    for k, v in keywords.items():
        if v is None or len(k) > 8 or (isinstance(v, float) and not math.isfinite(v)):
            continue
        if k not in frame.header or frame.header[k] in ("", None):
            frame.header[k] = v
    return frame


def load_frame(path: Path | str) -> FitsFrame:
    """Read a segment file (verified like a download) with its sidecar keywords merged in.

    Header values already in the file win, except where the file's value is missing.
    """
    p = Path(path)
    frame = read_fits(p)
    side = p.with_suffix(".keywords.json")
    if side.exists():
        merge_keywords(frame, json.loads(side.read_text()))
    return frame


def reload(
    source: Source, record_name: str, t_rec_utc: str, paths: dict[str, Path], *, latency_s: float | None = None
) -> VerifiedFrame:
    """Rebuild a verified frame from the files ingest left on disk (after a restart or a failure).

    Raises
    ------
    heliowatch.pipelines.errors.DataRejected
        If a file has gone or no longer verifies.
    """
    segments = {seg: load_frame(p) for seg, p in paths.items()}
    first = next(iter(paths.values()))
    side = first.with_suffix(".keywords.json")
    kw: dict[str, Any] = json.loads(side.read_text()) if side.exists() else {}
    t_rec = str(kw.get("T_REC") or segments[next(iter(segments))].keyword("T_REC", ""))

    def num(k: str) -> int | None:
        v = kw.get(k)
        return int(v) if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) else None

    rec = RemoteRecord(
        series=source.series,
        name=record_name,
        t_rec=t_rec,
        t_rec_utc=t_rec_utc,
        quality=num("QUALITY") or 0,
        keywords=kw,
        fsn=num("FSN"),
        wavelength=num("WAVELNTH"),
        harpnum=num("HARPNUM"),
    )
    return VerifiedFrame(source=source, record=rec, paths=dict(paths), segments=segments, latency_s=latency_s)
