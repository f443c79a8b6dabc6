"""The fan-out: runs each product on the records it consumes and writes what it made.

For every unit of input (one record; for SHARPs, the records of one T_REC) and every product
that consumes its source kind, the product's batch is written to the products store, the
output files (atomically), the verification ledger and the alert outbox, and only then is
(product, record) marked processed. A product that raises is isolated: the error is logged
and counted, the other products still run, and the record stays unprocessed for that product,
so it is offered again on the next poll or after a restart (:meth:`FanOut.recover`), up to
``max_attempts`` times. Each record is so processed once by each product: none lost, none
duplicated (the store, the outbox and the ledger are idempotent on natural keys, so a crash
between a write and the mark only repeats a no-op).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import structlog

from heliowatch.models.core.errors import UsageError
from heliowatch.pipelines.alerts import AlertCenter
from heliowatch.pipelines.errors import DataRejected, LocalIOError, local_io_error
from heliowatch.pipelines.frames import Source, VerifiedFrame, reload
from heliowatch.pipelines.products.base import Batch, Product, Stateful, Streaming
from heliowatch.pipelines.store.ledger import LedgerStore
from heliowatch.pipelines.store.products import ProductStore

__all__ = ["DispatchReport", "FanOut", "FanOutObserver", "PendingRecord", "ProcessedKeys", "unit_key", "units_of"]

log = structlog.get_logger(__name__)

#: A product that fails on a record this many times gives it up (counted, listed as a reject).
MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class PendingRecord:
    """An ingested record some product has not processed yet (its files are on disk)."""

    series: str
    record: str
    t_rec_utc: str
    paths: dict[str, Path]
    latency_s: float | None = None
    wavelength: int | None = None


class ProcessedKeys(Protocol):
    """The processed-keys table (the daemon's state store implements it)."""

    def done_among(self, product: str, keys: list[str]) -> set[str]:
        """The ``keys`` ``product`` has processed or given up."""
        ...

    def mark_processed(self, product: str, keys: list[str], *, state: dict[str, Any] | None = None, scope: str = "live") -> None:
        """Record that ``product`` processed ``keys`` (and, in the same transaction, its state after them)."""
        ...

    def load_state(self, product: str, scope: str = "live") -> dict[str, Any] | None:
        """The state ``product`` saved last in ``scope``, or None."""
        ...

    def note_product_failure(self, product: str, key: str, error: str, *, max_attempts: int) -> bool:
        """Count a failure of ``product`` on ``key``; True when it is given up."""
        ...

    def unprocessed(self, product: str, series: list[str], *, limit: int) -> list[PendingRecord]:
        """Ingested records of ``series`` that ``product`` has neither processed nor given up, oldest first."""
        ...


class FanOutObserver(Protocol):
    """What the fan-out reports (the daemon's metrics implement it)."""

    def product_ran(self, product: str, seconds: float) -> None:
        """``product`` processed one unit in ``seconds``."""
        ...

    def product_failed(self, product: str) -> None:
        """``product`` raised on one unit."""
        ...

    def records_written(self, kind: str, n: int) -> None:
        """``n`` new store records of ``kind`` were written."""
        ...


@dataclass
class DispatchReport:
    """What one dispatch did."""

    units: int = 0
    #: Units left for a later dispatch because a stop was asked for (they are recovered at start).
    deferred: int = 0
    processed: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    given_up: dict[str, int] = field(default_factory=dict)

    def add(self, other: DispatchReport) -> DispatchReport:
        """Sum two reports."""
        self.units += other.units
        self.deferred += other.deferred
        for mine, theirs in ((self.processed, other.processed), (self.failed, other.failed), (self.given_up, other.given_up)):
            for k, v in theirs.items():
                mine[k] = mine.get(k, 0) + v
        return self


def unit_key(frame: VerifiedFrame) -> tuple[str, str, str]:
    """The unit a frame belongs to: its own record, or for SHARPs every HARP of its T_REC."""
    return (frame.t_rec_utc, frame.source.name, "" if frame.kind == "sharp" else frame.key)


def units_of(frames: Iterable[VerifiedFrame]) -> list[list[VerifiedFrame]]:
    """Frames grouped into units of work, in time order: one per record, the SHARPs of one T_REC together."""
    groups: dict[tuple[str, str, str], list[VerifiedFrame]] = {}
    for f in frames:
        groups.setdefault(unit_key(f), []).append(f)
    return [groups[k] for k in sorted(groups)]


class FanOut:
    """Run products and write their batches.

    Parameters
    ----------
    products : list of Product
    store : ProductStore
    keys : ProcessedKeys
    outputs : pathlib.Path
        Files of batches are written under it.
    alerts : AlertCenter or None
        The outbox (None: alerts are dropped, e.g. ``alerts.transport = 'none'``).
    ledger : LedgerStore or None
        Verification ledger rows go here.
    observer : FanOutObserver or None
    max_attempts : int
        Failures of one product on one record before it is given up.
    scope : str
        Where products' states are saved (``live`` for the daemon, one scope per backfill range).
    """

    def __init__(
        self,
        products: Sequence[Product],
        *,
        store: ProductStore,
        keys: ProcessedKeys,
        outputs: Path,
        alerts: AlertCenter | None = None,
        ledger: LedgerStore | None = None,
        observer: FanOutObserver | None = None,
        max_attempts: int = MAX_ATTEMPTS,
        scope: str = "live",
    ) -> None:
        self.products = list(products)
        self.store = store
        self.keys = keys
        self.outputs = outputs
        self.alerts = alerts
        self.ledger = ledger
        self.observer = observer
        self.max_attempts = max_attempts
        self.scope = scope
        #: Set by the daemon on SIGTERM: dispatch stops between units, leaving the rest to recovery.
        self.stop = threading.Event()
        # The daemon polls each source in its own thread and each poll dispatches (and recovers):
        # one dispatch at a time, so a record another thread is processing is seen as done, not
        # processed twice, and a stateful product never runs in two threads at once.
        self._serial = threading.Lock()

    def restore(self) -> list[str]:
        """Give every product with a saved state its state back (after a restart); returns their names."""
        restored = []
        for product in self.products:
            if isinstance(product, Stateful) and (st := self.keys.load_state(product.name, self.scope)) is not None:
                product.restore(st)
                restored.append(product.name)
        if restored:
            log.info("product_state_restored", products=restored, scope=self.scope)
        return restored

    def dispatch(self, frames: Iterable[VerifiedFrame]) -> DispatchReport:
        """Run every consuming product on every unit of ``frames`` (in time order) and write the results."""
        with self._serial:
            return self._dispatch_units(frames)

    def _dispatch_units(self, frames: Iterable[VerifiedFrame]) -> DispatchReport:
        report = DispatchReport()
        halted: set[str] = set()
        units = units_of(frames)
        for i, unit in enumerate(units):
            if self.stop.is_set():
                # A stop waits for the unit in hand only, not a whole poll's worth of frames: what is
                # left is ingested and unprocessed, which recover() offers again at the next start.
                report.deferred = len(units) - i
                log.info("dispatch_deferred", units=report.deferred, reason="stopping")
                break
            report.units += 1
            for product in self.products:
                if unit[0].kind not in product.consumes or product.name in halted:
                    continue
                done = self.keys.done_among(product.name, [f.key for f in unit])
                todo = [f for f in unit if f.key not in done]
                if todo and not self._run(product, todo, report) and isinstance(product, Stateful):
                    # A stateful product must see its records in time order: after a failure it
                    # waits for the next poll, which offers the failed record again first.
                    halted.add(product.name)
        return report

    def _run(self, product: Product, frames: list[VerifiedFrame], report: DispatchReport) -> bool:
        """Run one product on one unit and write its batch; False when it failed (counted, logged, rolled back)."""
        t0 = time.perf_counter()
        try:
            batch = product.process(frames)
            self.write(batch)
        # A product's failure, whatever it is, must not stop the other products or lose the record:
        # it is counted, logged and offered again later.
        except Exception as e:
            local = local_io_error(e, "outputs")
            if local is not None:
                # A full disk or a read-only store is no fault of the product or the record: no
                # attempt is counted (the record must not be given up), and the dispatch stops, as
                # every other write would fail too; the record stays unprocessed and is offered again.
                self._roll_back(product)
                if local is e:
                    raise
                raise local from e
            report.failed[product.name] = report.failed.get(product.name, 0) + 1
            if self.observer is not None:
                self.observer.product_failed(product.name)
            gave_up = [
                f.key
                for f in frames
                if self.keys.note_product_failure(product.name, f.key, f"{type(e).__name__}: {e}", max_attempts=self.max_attempts)
            ]
            if gave_up:
                report.given_up[product.name] = report.given_up.get(product.name, 0) + len(gave_up)
            self._roll_back(product)
            log.warning(
                "product_failed",
                product=product.name,
                records=[f.key for f in frames],
                error=f"{type(e).__name__}: {str(e)[:300]}",
                given_up=gave_up,
                # A file no product can use (UsageError: not a full-disk frame, no disk in view) is
                # explained by its one line; only the unexpected gets a traceback.
                exc_info=not isinstance(e, DataRejected | UsageError),
            )
            return False
        state = product.state() if isinstance(product, Stateful) else None
        try:
            self.keys.mark_processed(product.name, [f.key for f in frames], state=state, scope=self.scope)
        except LocalIOError:
            # The state database is full: the unit is offered again, so the product must be back where
            # it started (its state has moved on without being saved); the repeated writes are no-ops.
            self._roll_back(product)
            raise
        report.processed[product.name] = report.processed.get(product.name, 0) + len(frames)
        if self.observer is not None:
            self.observer.product_ran(product.name, time.perf_counter() - t0)
        return True

    def _roll_back(self, product: Product) -> None:
        """Put a stateful product back to the state saved with its last processed unit.

        A failure part-way through a unit may have moved the product's state on (a tracker, a
        running average) without its results being written; the retry must find the state the
        unit started from, as a restart would.
        """
        if not isinstance(product, Stateful):
            return
        try:
            product.restore(self.keys.load_state(product.name, self.scope) or {})
        except Exception as e:  # the next retry or a restart tries again; nothing else may stop here
            log.warning("product_state_rollback_failed", product=product.name, error=f"{type(e).__name__}: {str(e)[:300]}")

    def end_streams(self) -> None:
        """Close the open streams of the products that hold one (jets still going on) and write what that makes."""
        for product in self.products:
            if not isinstance(product, Streaming):
                continue
            try:
                self.write(product.end_of_stream())
            except Exception as e:  # one product's failure must not keep the others' results from being written
                log.warning("end_of_stream_failed", product=product.name, error=f"{type(e).__name__}: {str(e)[:300]}")
                continue
            if isinstance(product, Stateful):
                self.keys.mark_processed(product.name, [], state=product.state(), scope=self.scope)

    def write(self, batch: Batch) -> None:
        """Store records, files, ledger rows and alerts of a batch (each idempotent)."""
        new: dict[str, int] = {}
        for r in batch.records:
            if self.store.put(r.kind, r.key, r.t_utc, r.payload, region=r.region):
                new[r.kind] = new.get(r.kind, 0) + 1
        for a in batch.files:
            path = self.outputs / a.path
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".part")
            tmp.write_bytes(a.data)
            tmp.replace(path)
        if self.ledger is not None:
            for e in batch.ledger:
                self.ledger.record(e.issue_time, e.window_end, e.rows)
        if self.alerts is not None and batch.alerts:
            self.alerts.raise_alerts(batch.alerts, now=batch.alerts_at)
        if self.observer is not None:
            for kind, n in new.items():
                self.observer.records_written(kind, n)

    def recover(self, sources: Sequence[Source], *, limit: int = 500) -> DispatchReport:
        """Offer every ingested record that some product has not processed yet (after a restart or a failure)."""
        return self.dispatch(self.pending(sources, limit=limit))

    def pending(
        self, sources: Sequence[Source], *, limit: int = 500, exclude: Iterable[VerifiedFrame] = ()
    ) -> list[VerifiedFrame]:
        """The ingested records some product has not processed yet, read back from disk, less ``exclude``
        (frames in hand): what :meth:`recover` offers, for a caller that dispatches them together
        with new frames, in one time order."""
        held = {(f.source.series, f.key) for f in exclude}
        by_series = {(s.series, s.wavelength if s.kind == "aia" else None): s for s in sources}
        pending: dict[str, tuple[Source, PendingRecord]] = {}
        for product in self.products:
            series = sorted({s.series for s in sources if s.kind in product.consumes})
            if not series:
                continue
            for rec in self.keys.unprocessed(product.name, series, limit=limit):
                src = by_series.get((rec.series, rec.wavelength)) or by_series.get((rec.series, None))
                if src is not None and (rec.series, rec.record) not in held:
                    pending.setdefault(rec.record, (src, rec))
        frames = []
        for src, rec in pending.values():
            try:
                frames.append(reload(src, rec.record, rec.t_rec_utc, rec.paths, latency_s=rec.latency_s))
            except (DataRejected, OSError) as e:
                log.warning("recover_unreadable", record=rec.record, error=str(e)[:300])
                for product in self.products:
                    if src.kind in product.consumes:
                        self.keys.note_product_failure(product.name, rec.record, str(e), max_attempts=1)
        if frames:
            log.info("recovering", records=len(frames))
        return frames
