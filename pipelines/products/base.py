"""The product interface and what products hand to the fan-out.

A :class:`Product` declares the source kinds it consumes and turns the verified frames of
one record (or of one T_REC of a source, for SHARPs) into a :class:`Batch`: records for the
store, files for the output directory and alerts for the outbox. It never writes any of them
itself; :class:`heliowatch.pipelines.fanout.FanOut` does, and marks (product, record)
processed. A product may split its work in three (:class:`SplitProduct`), which is what lets
a backfill run it on Dask workers with results that do not depend on how the work is cut:

- :meth:`~SplitProduct.analyse`: the expensive, pure part of one record (detection, a
  projection, an encoder); its result carries a small ``summary``;
- :meth:`~SplitProduct.advance`: the stateful, cheap part, in time order, on the summaries only
  (tracking, running averages, joins through the catalogue): it returns a plan;
- :meth:`~SplitProduct.finish`: the expensive, pure rest given the analyses and the plan
  (drawing, cutouts, records), run where the analyses are.

Products share what they know of the Sun through the in-memory :class:`Catalogue` (the
current regions and HARPs), not by reading each other back from the store.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from heliowatch.models.core.times import hours_between
from heliowatch.pipelines.alerts import Alert
from heliowatch.pipelines.frames import VerifiedFrame

__all__ = [
    "Analysis",
    "Artifact",
    "Batch",
    "Catalogue",
    "LedgerEntry",
    "Product",
    "ProductRecord",
    "SplitProduct",
    "Stateful",
    "Streaming",
    "run_split",
]


@dataclass
class ProductRecord:
    """One row for the products store, idempotent on ``(kind, key)``."""

    kind: str
    key: str
    t_utc: str
    payload: dict[str, Any]
    region: str | None = None


@dataclass
class Artifact:
    """A file to write under the output directory (atomically, by the fan-out)."""

    path: Path  # relative to the output directory
    data: bytes


@dataclass
class LedgerEntry:
    """The probabilities of one forecast issue, for live verification: ``(scope, level, p, noaa_ar)`` rows."""

    issue_time: str
    window_end: str
    rows: list[tuple[str, str, float, int | None]]


@dataclass
class Batch:
    """Everything one product made of one unit of input."""

    records: list[ProductRecord] = field(default_factory=list)
    files: list[Artifact] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    alerts_at: dt.datetime | None = None  # the data time the alerts are about (rate limits follow it)
    ledger: list[LedgerEntry] = field(default_factory=list)

    def extend(self, other: Batch) -> Batch:
        """Append another batch's contents (alert time: the later one)."""
        self.records += other.records
        self.files += other.files
        self.alerts += other.alerts
        self.ledger += other.ledger
        if other.alerts_at is not None and (self.alerts_at is None or other.alerts_at > self.alerts_at):
            self.alerts_at = other.alerts_at
        return self


@runtime_checkable
class Product(Protocol):
    """A product: ``name`` (its processed-keys id) and the source kinds it consumes."""

    name: str
    consumes: frozenset[str]

    def process(self, frames: Sequence[VerifiedFrame]) -> Batch:
        """Turn the frames of one unit (one record, or one T_REC of a source) into a batch."""
        ...


class Analysis(Protocol):
    """What :meth:`SplitProduct.analyse` returns: anything, with a small picklable ``summary``."""

    @property
    def summary(self) -> Any:
        """What the stateful step needs of the analysis."""
        ...


@runtime_checkable
class SplitProduct(Product, Protocol):
    """A product whose expensive parts are pure functions of one unit of input."""

    #: Records of history its state needs after a restart (replayed without writing).
    warmup_records: int

    def analyse(self, frame: VerifiedFrame) -> Analysis:
        """The expensive, stateless part of one record (runs anywhere: another process, a Dask worker)."""
        ...

    def advance(self, frames: Sequence[VerifiedFrame], summaries: Sequence[Any]) -> Any:  # summaries: each analysis' own type
        """The stateful part, in time order, on the analyses' summaries: returns the plan of this unit."""
        ...

    def finish(self, analyses: Sequence[Any], plan: Any) -> Batch:
        """The expensive, pure rest: the unit's batch from its analyses and the plan."""
        ...


@runtime_checkable
class Stateful(Protocol):
    """A product whose state is saved with every processed unit and restored after a restart."""

    def state(self) -> dict[str, Any]:
        """The state as JSON-able values."""
        ...

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from a saved state."""
        ...


@runtime_checkable
class Streaming(Protocol):
    """A product that holds a stream open (a jet still going on) and can close it."""

    def end_of_stream(self) -> Batch:
        """Close what is open (the end of a ``--once`` run or of a backfill range)."""
        ...


def run_split(product: SplitProduct, frames: Sequence[VerifiedFrame]) -> Batch:
    """``process`` of a split product, in one process: analyse, advance, finish."""
    analyses = [product.analyse(f) for f in frames]
    return product.finish(analyses, product.advance(frames, [a.summary for a in analyses]))


class Catalogue:
    """What the products currently know of the disk: detected regions and SHARP patches (HARPs).

    The region product publishes each magnetogram's detections, the flare product each SHARP
    record; products look them up by time. Entries are dicts with at least ``hgs_lat``,
    ``hgs_lon`` and ``t_rec_utc``. Thread-safe: the sources are polled by separate jobs.

    Parameters
    ----------
    keep_hours : float
        Entries older than this (relative to the newest of their kind) are dropped.
    """

    def __init__(self, *, keep_hours: float = 48.0) -> None:
        self.keep_hours = keep_hours
        self._lock = threading.Lock()
        self._regions: list[dict[str, Any]] = []
        self._harps: list[dict[str, Any]] = []

    @staticmethod
    def _prune(entries: list[dict[str, Any]], keep_hours: float) -> list[dict[str, Any]]:
        if not entries:
            return entries
        newest = max(e["t_rec_utc"] for e in entries)
        return [e for e in entries if hours_between(newest, e["t_rec_utc"]) <= keep_hours]

    def publish_regions(self, t_rec_utc: str, regions: list[dict[str, Any]]) -> None:
        """Replace the detections of the frame at ``t_rec_utc``."""
        with self._lock:
            kept = [r for r in self._regions if r["t_rec_utc"] != t_rec_utc]
            self._regions = self._prune(kept + [{**r, "t_rec_utc": t_rec_utc} for r in regions], self.keep_hours)

    def publish_harps(self, harps: list[dict[str, Any]]) -> None:
        """Add SHARP records (``harpnum``, ``noaa_ar``, position, ``t_rec_utc``)."""
        with self._lock:
            new = {(h.get("harpnum"), h["t_rec_utc"]) for h in harps}
            kept = [h for h in self._harps if (h.get("harpnum"), h["t_rec_utc"]) not in new]
            self._harps = self._prune(kept + [dict(h) for h in harps], self.keep_hours)

    def entries(self, kind: str) -> list[dict[str, Any]]:
        """Every entry of ``kind`` (``regions`` or ``harps``) as held: what its publisher saves in its state."""
        with self._lock:
            return [dict(e) for e in (self._regions if kind == "regions" else self._harps)]

    def replace(self, kind: str, entries: list[dict[str, Any]]) -> None:
        """Put back the entries of ``kind`` that :meth:`entries` gave (a publisher's restored state).

        The catalogue lives in memory: without this, a restart would forget what the products
        processed before it published, and the next forecast would miss the regions' classes.
        """
        with self._lock:
            if kind == "regions":
                self._regions = [dict(e) for e in entries]
            else:
                self._harps = [dict(e) for e in entries]

    def regions(self, t_utc: str, *, max_hours: float = 3.0) -> list[dict[str, Any]]:
        """Detections within ``max_hours`` of ``t_utc`` (either side)."""
        with self._lock:
            return [dict(r) for r in self._regions if abs(hours_between(t_utc, r["t_rec_utc"])) <= max_hours]

    def harps(self, t_utc: str, *, max_hours: float = 6.0) -> list[dict[str, Any]]:
        """SHARP records within ``max_hours`` of ``t_utc`` that have a finite position."""
        with self._lock:
            return [
                dict(h)
                for h in self._harps
                if abs(hours_between(t_utc, h["t_rec_utc"])) <= max_hours
                and h.get("hgs_lat") is not None
                and h.get("hgs_lon") is not None
                and math.isfinite(h["hgs_lat"])
                and math.isfinite(h["hgs_lon"])
            ]
