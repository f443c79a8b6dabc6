"""The gap audit: the slots a series' cadence promises, the records the JSOC has, what was ingested.

For each source the slots are a regular grid at the series' cadence (720 s for HMI, 12 s per AIA
channel; SHARPs: every 720 s over each HARP's lifetime as the JSOC lists it), phased on the
records themselves (real HMI slots sit on TAI round times, synthetic ones on UTC round times).
Each slot is one of:

- ``ingested``: a record of that slot is in the frame store;
- ``rejected``: the JSOC has it, ingest refused it (bad QUALITY: final; a transfer or file fault:
  retried by the daemon with backoff, then deferred; the audit re-queues the deferred records it
  finds at the source, so the daemon and ``heliowatch backfill --gaps`` fetch them again);
- ``not_ingested``: the JSOC has it, heliowatch does not (yet);
- ``missing_at_source``: the JSOC lists no record for the slot.

Missing slots are reported as ranges; the JSOC side is one keyword-only query per source.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from heliowatch.models.core.times import iso_utc, unix_from_iso
from heliowatch.pipelines.frames import Source
from heliowatch.pipelines.jsoc import RemoteRecord

__all__ = ["CADENCE_S", "GapReport", "SlotRange", "audit", "cadence_of", "coverage"]

#: The series' nominal cadences (s).
CADENCE_S = {"magnetogram": 720.0, "sharp": 720.0, "aia": 12.0}

STATES = ("ingested", "rejected", "not_ingested", "missing_at_source")


def cadence_of(source: Source, override: float | None = None) -> float:
    """The cadence a source promises (``override`` for, e.g., the jets' 24 s AIA spacing)."""
    return float(override or CADENCE_S[source.kind])


@dataclass(frozen=True)
class SlotRange:
    """Consecutive slots in one state: ``[start_utc, end_utc]`` (slot times), ``n`` slots."""

    state: str
    start_utc: str
    end_utc: str
    n: int
    harpnum: int | None = None
    records: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """For JSON output."""
        d: dict[str, Any] = {"state": self.state, "start_utc": self.start_utc, "end_utc": self.end_utc, "slots": self.n}
        if self.harpnum is not None:
            d["harpnum"] = self.harpnum
        if self.records:
            d["records"] = list(self.records)
        return d


@dataclass
class GapReport:
    """The audit of one source over a time range."""

    source: str
    cadence_s: float
    start_utc: str
    end_utc: str
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATES, 0))
    ranges: list[SlotRange] = field(default_factory=list)
    #: Deferred rejects of the range put back in the queue by this audit.
    requeued: int = 0

    @property
    def expected(self) -> int:
        """Slots the cadence promises."""
        return sum(self.counts.values())

    @property
    def coverage(self) -> float:
        """Ingested slots / expected slots (NaN when none is expected)."""
        return self.counts["ingested"] / self.expected if self.expected else math.nan

    def fillable(self) -> list[str]:
        """Record names a backfill can still get: at the source, not ingested, or rejected but retryable."""
        return [r for g in self.ranges if g.state in ("not_ingested", "rejected") for r in g.records]

    def as_dict(self) -> dict[str, Any]:
        """For ``heliowatch gaps --json``."""
        return {
            "source": self.source,
            "cadence_s": self.cadence_s,
            "start_utc": self.start_utc,
            "end_utc": self.end_utc,
            "expected_slots": self.expected,
            "coverage": None if math.isnan(self.coverage) else round(self.coverage, 6),
            "counts": dict(self.counts),
            "requeued": self.requeued,
            "missing": [g.as_dict() for g in self.ranges if g.state != "ingested"],
        }


def _phase(times: Iterable[float], cadence: float) -> float:
    """The grid phase (s, in 0..cadence) the records sit on: the median of their offsets."""
    offs = [t % cadence for t in times]
    if not offs:
        return 0.0
    # Offsets near 0 and near the cadence are the same phase: unwrap around the first one.
    ref = offs[0]
    unwrapped = [o - cadence if o - ref > cadence / 2 else (o + cadence if ref - o > cadence / 2 else o) for o in offs]
    return statistics.median(unwrapped) % cadence


def _slots(start: float, end: float, cadence: float, phase: float) -> list[float]:
    k0 = math.ceil((start - phase) / cadence - 1e-9)
    k1 = math.floor((end - phase) / cadence + 1e-9)
    return [phase + k * cadence for k in range(k0, k1 + 1)]


def audit(
    source: Source,
    *,
    start_utc: str,
    end_utc: str,
    at_source: list[RemoteRecord],
    ingested: set[str],
    rejected: dict[str, bool],
    cadence_s: float | None = None,
) -> GapReport:
    """Classify every slot of ``source`` in ``[start_utc, end_utc]``.

    Parameters
    ----------
    source : Source
    start_utc, end_utc : str
        The range (ISO 8601 UTC).
    at_source : list of RemoteRecord
        What a keyword query of the range returned.
    ingested : set of str
        Record names in the frame store.
    rejected : dict
        Record name -> whether the reject is final (bad QUALITY or out of attempts).
    cadence_s : float or None
        Override the series' cadence.
    """
    cadence = cadence_of(source, cadence_s)
    t0, t1 = unix_from_iso(start_utc), unix_from_iso(end_utc)
    report = GapReport(source=source.name, cadence_s=cadence, start_utc=start_utc, end_utc=end_utc)
    groups: dict[int | None, list[RemoteRecord]] = {}
    for r in at_source:
        groups.setdefault(r.harpnum if source.kind == "sharp" else None, []).append(r)
    if source.kind != "sharp":
        groups.setdefault(None, [])
    for harp, recs in sorted(groups.items(), key=lambda kv: kv[0] or 0):
        times = {r.name: unix_from_iso(r.t_rec_utc) for r in recs}
        phase = _phase(times.values(), cadence) if times else _phase((unix_from_iso(start_utc),), cadence)
        lo, hi = (min(times.values()), max(times.values())) if harp is not None and times else (t0, t1)
        slot_of = {name: round((t - phase) / cadence) for name, t in times.items()}
        by_slot: dict[int, list[str]] = {}
        for name, k in slot_of.items():
            by_slot.setdefault(k, []).append(name)
        cells = []
        for t in _slots(max(lo, t0), min(hi, t1), cadence, phase):
            k = round((t - phase) / cadence)
            names = by_slot.get(k, [])
            if not names:
                state = "missing_at_source"
            elif any(n in ingested for n in names):
                state = "ingested"
            elif any(n in rejected for n in names):
                state = "rejected"
            else:
                state = "not_ingested"
            cells.append((t, state, tuple(n for n in names if n not in ingested)))
            report.counts[state] += 1
        report.ranges += _ranges(cells, cadence, harp)
    return report


def _ranges(cells: list[tuple[float, str, tuple[str, ...]]], cadence: float, harp: int | None) -> list[SlotRange]:
    out: list[SlotRange] = []
    run: list[tuple[float, str, tuple[str, ...]]] = []

    def close() -> None:
        if run:
            recs = tuple(n for _, _, names in run for n in names)
            out.append(
                SlotRange(run[0][1], iso_utc(run[0][0], millis=True), iso_utc(run[-1][0], millis=True), len(run), harp, recs)
            )

    for cell in cells:
        if run and (cell[1] != run[-1][1] or cell[0] - run[-1][0] > cadence * 1.5):
            close()
            run = []
        run.append(cell)
    close()
    return out


def coverage(ingested_times: list[float], *, now: float, cadence_s: float, window_s: float = 86400.0) -> float:
    """Fraction of the slots of the last ``window_s`` that have an ingested record (NaN before any).

    The grid phase comes from the ingested records themselves; a slot counts once whatever the
    number of records in it (several HARPs share a T_REC).
    """
    recent = [t for t in ingested_times if now - window_s <= t <= now]
    if not recent:
        return math.nan
    phase = _phase(recent, cadence_s)
    slots = _slots(now - window_s, now, cadence_s, phase)
    have = {round((t - phase) / cadence_s) for t in recent}
    return len(have & {round((s - phase) / cadence_s) for s in slots}) / len(slots) if slots else math.nan
