"""Backfill: reprocess a time range of the archive through the same products as the daemon.

The driver (this module, in the ``heliowatch backfill`` process) finds the records of the range
with keyword-only queries, downloads the missing ones through the one JSOC client (exports stay
serialised: one pending export per JSOC account), and hands every record to the products in
time order, exactly as the daemon's fan-out does. What runs where:

- a product in three steps (:class:`~heliowatch.pipelines.products.base.SplitProduct`) has its
  ``analyse`` and ``finish`` run on the executor's workers (Dask in production,
  :mod:`heliowatch.daemon.backfill_cluster`; in-process for ``--workers 0`` and tests), each
  task one record, the analysis staying on the worker that made it; only ``advance`` (tracking,
  running state, joins) runs in the driver, in time order, on small summaries. So results do not
  depend on how the work is cut or on which worker did what;
- everything is written by the driver through the same fan-out writes (store, files, ledger,
  outbox) and marked processed with the product's state in the state database, in time order.

Resumable: killed at any point and run again, it skips what the processed-keys table holds,
reuses what was downloaded, and restores the products' states saved under its own scope
(``backfill:<start>/<end>``), so nothing is lost or duplicated and the result is the same.
"""

from __future__ import annotations

import dataclasses
import queue
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import structlog

from heliowatch.daemon.config import Config
from heliowatch.daemon.wiring import App, build_worker_products
from heliowatch.models.core.times import iso_utc, unix_from_iso, utc_to_tai_string
from heliowatch.pipelines.errors import DataRejected, SourceUnavailable
from heliowatch.pipelines.fanout import FanOut, PendingRecord, unit_key
from heliowatch.pipelines.frames import Source, VerifiedFrame, reload
from heliowatch.pipelines.gaps import CADENCE_S
from heliowatch.pipelines.ingest import Ingestor
from heliowatch.pipelines.jsoc import SOURCE_KEYS, RemoteRecord
from heliowatch.pipelines.products.base import Batch, Product, SplitProduct, Stateful

__all__ = ["Backfill", "BackfillReport", "Executor", "FrameRef", "InlineExecutor", "WorkerSpec"]

log = structlog.get_logger(__name__)


class FutureLike(Protocol):
    """What an executor's ``submit`` returns."""

    def result(self) -> Any:
        """Wait for and return the result (or raise the task's error)."""
        ...


class Executor(Protocol):
    """Where the pure steps run: ``submit(fn, *args, resources=...)``; futures passed as arguments
    are resolved where the task runs (Dask keeps the data on the worker that made it)."""

    def submit(self, fn: Callable[..., Any], *args: Any, resources: dict[str, float] | None = None) -> FutureLike:
        """Run ``fn(*args)`` somewhere; returns its future."""
        ...


class _Done:
    def __init__(self, value: Any = None, error: BaseException | None = None) -> None:
        self.value, self.error = value, error

    def result(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


class InlineExecutor:
    """Runs every task at once in this process (``--workers 0``, and tests)."""

    def submit(self, fn: Callable[..., Any], *args: Any, resources: dict[str, float] | None = None) -> FutureLike:
        """Run ``fn`` now; errors are kept for ``result()``."""
        try:
            return _Done(fn(*[a.result() if isinstance(a, _Done) else a for a in args]))
        # The error belongs to the task: it is raised where the driver asks for the result.
        except Exception as e:
            return _Done(error=e)


@dataclass(frozen=True)
class FrameRef:
    """A record on disk: what a worker needs to read it back."""

    source: Source
    record: str
    t_rec_utc: str
    paths: dict[str, Path]
    latency_s: float | None = None


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker needs to build the products itself (products hold runtimes: not sent)."""

    cfg: Config
    archive: Path | None = None  # a replay archive: its event list feeds the flare history

    def key(self) -> str:
        """Identifies one configuration (workers keep one set of products per key)."""
        return repr((self.cfg, self.archive))


_WORKER_PRODUCTS: dict[str, dict[str, Product]] = {}
_WORKER_LOCK = threading.Lock()


def _worker_product(spec: WorkerSpec, name: str) -> Product:
    # One set of products per worker process and configuration: models load once per worker.
    with _WORKER_LOCK:
        products = _WORKER_PRODUCTS.get(spec.key())
        if products is None:
            products = {p.name: p for p in build_worker_products(spec.cfg, archive=spec.archive)}
            _WORKER_PRODUCTS[spec.key()] = products
    return products[name]


def _frame(ref: FrameRef) -> VerifiedFrame:
    return reload(ref.source, ref.record, ref.t_rec_utc, ref.paths, latency_s=ref.latency_s)


def task_analyse(spec: WorkerSpec, product: str, ref: FrameRef) -> Any:
    """Worker task: the product's analysis of one record."""
    p = _worker_product(spec, product)
    assert isinstance(p, SplitProduct)
    return p.analyse(_frame(ref))


def task_summary(analysis: Any) -> Any:
    """Worker task: the small summary the driver's ``advance`` needs."""
    return analysis.summary


def task_finish(spec: WorkerSpec, product: str, plan: Any, *analyses: Any) -> Batch:
    """Worker task: the product's batch from the analyses of one unit and the driver's plan."""
    p = _worker_product(spec, product)
    assert isinstance(p, SplitProduct)
    return p.finish(list(analyses), plan)


@dataclass
class BackfillReport:
    """What a backfill did (printed, logged and returned)."""

    start_utc: str
    end_utc: str
    records: int = 0
    downloaded: int = 0
    reused: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    processed: dict[str, int] = field(default_factory=dict)
    already_done: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    products_written: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0

    @property
    def throughput(self) -> float:
        """Records per second."""
        return self.records / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def lines(self) -> list[str]:
        """The human summary."""
        return [
            f"heliowatch backfill {self.start_utc} .. {self.end_utc}: {self.records} record(s) in {self.elapsed_s:.1f} s"
            f" ({self.throughput:.2f} records/s)",
            f"  downloaded {self.downloaded}, already on disk {self.reused}, rejected {sum(self.rejected.values())}"
            + (f" ({', '.join(f'{k}={v}' for k, v in sorted(self.rejected.items()))})" if self.rejected else ""),
            "  processed: " + (", ".join(f"{k}={v}" for k, v in sorted(self.processed.items())) or "nothing new"),
            "  already done: " + (", ".join(f"{k}={v}" for k, v in sorted(self.already_done.items())) or "nothing"),
            "  new store records: " + (", ".join(f"{k}={v}" for k, v in sorted(self.products_written.items())) or "none"),
            *([f"  product failures (retried by a rerun): {self.failed}"] if self.failed else []),
        ]


@dataclass
class _Unit:
    product: Product
    refs: list[FrameRef]
    frames: list[VerifiedFrame]
    analyses: list[FutureLike] = field(default_factory=list)
    summaries: list[FutureLike] = field(default_factory=list)
    batch: FutureLike | None = None
    state: dict[str, Any] | None = None


class _Counter:
    """The fan-out's observer, counting new store records for the summary."""

    def __init__(self, report: BackfillReport, inner: Any) -> None:
        self.report, self.inner = report, inner

    def product_ran(self, product: str, seconds: float) -> None:
        self.inner.product_ran(product, seconds)

    def product_failed(self, product: str) -> None:
        self.inner.product_failed(product)

    def records_written(self, kind: str, n: int) -> None:
        self.report.products_written[kind] = self.report.products_written.get(kind, 0) + n
        self.inner.records_written(kind, n)


class Backfill:
    """Reprocess ``[start, end]`` of the app's sources through its products.

    Parameters
    ----------
    app : App
        Built by :func:`heliowatch.daemon.wiring.build` (the driver's products, state, store, client).
    executor : Executor
        Where ``analyse`` and ``finish`` run.
    spec : WorkerSpec
        How workers build their products.
    products : set of str or None
        Only these products (their names); all by default.
    window : int
        Units in flight at once (bounds the memory the analyses hold on the workers).
    gpu_resources : bool
        Ask for a ``GPU`` worker resource for the analyses (a GPU box with one GPU worker).
    patience_s : float
        How long a JSOC outage is waited out (queries and downloads) before the backfill gives up
        on a record (it stays a deferred reject for a rerun or ``--gaps``).
    alerts : bool
        Raise the products' alerts into the outbox (off by default: alerts about the past would
        reach the mailing list as news; the nightly gap fill of the last 48 h may want them).
    progress : callable or None
        ``progress(done, total, what)`` (a tqdm bar on a terminal).
    """

    def __init__(
        self,
        app: App,
        executor: Executor,
        spec: WorkerSpec,
        *,
        products: set[str] | None = None,
        window: int = 6,
        gpu_resources: bool = False,
        progress: Callable[[int, int, str], None] | None = None,
        patience_s: float = 900.0,
        alerts: bool = False,
    ) -> None:
        self.app = app
        self.executor = executor
        self.spec = spec
        self.selected = [p for p in app.products if products is None or p.name in products]
        self.window = max(1, window)
        self.resources = {"GPU": 1.0} if gpu_resources else None
        self.progress = progress
        self.patience_s = patience_s
        self.alerts = alerts

    # -- what to do ---------------------------------------------------------------------------
    def records(self, start_utc: str, end_utc: str, *, only: set[str] | None = None) -> list[tuple[Source, RemoteRecord]]:
        """Every record of the range at the source (keyword-only queries, a day at a time), in time order."""
        out: list[tuple[Source, RemoteRecord]] = []
        t0, t1 = unix_from_iso(start_utc), unix_from_iso(end_utc)
        for src in self.app.sources:
            if not any(src.kind in p.consumes for p in self.selected):
                continue
            t = t0
            # About 5,000 records per query at the series' cadence (SHARPs: ~10 HARPs per T_REC).
            span = CADENCE_S[src.kind] * (500 if src.kind == "sharp" else 5000)
            while t <= t1:
                chunk_end = min(t + span, t1)
                ds = src.recordset(utc_to_tai_string(iso_utc(t, millis=True)), utc_to_tai_string(iso_utc(chunk_end, millis=True)))
                for rec in self._query(ds, src):
                    if t0 <= unix_from_iso(rec.t_rec_utc) <= t1 and (only is None or rec.name in only):
                        out.append((src, rec))
                t = chunk_end + 1e-3
        seen: set[tuple[str, str]] = set()
        unique = []
        for src, rec in sorted(out, key=lambda sr: (sr[1].t_rec_utc, sr[0].name, sr[1].fsn or 0, sr[1].harpnum or 0)):
            if (src.name, rec.name) not in seen:
                seen.add((src.name, rec.name))
                unique.append((src, rec))
        return unique

    def _query(self, ds: str, src: Source) -> list[RemoteRecord]:
        """A keyword query, waiting out a JSOC outage for up to ``patience_s``."""
        deadline = time.monotonic() + self.patience_s
        delay = 2.0
        while True:
            try:
                return self.app.client.query(ds, SOURCE_KEYS[src.kind])
            except SourceUnavailable as e:
                if time.monotonic() + delay > deadline:
                    raise
                log.warning("backfill_query_retry", source=src.name, retry_in_s=round(delay, 1), error=str(e)[:200])
                time.sleep(delay)
                delay = min(delay * 2, 60.0)

    # -- running ------------------------------------------------------------------------------
    def run(self, start_utc: str, end_utc: str, *, only: set[str] | None = None) -> BackfillReport:
        """Run the backfill (see the module docstring); returns its report."""
        t_start = time.monotonic()
        report = BackfillReport(start_utc=start_utc, end_utc=end_utc)
        scope = f"backfill:{start_utc}/{end_utc}"
        fanout = FanOut(
            self.selected,
            store=self.app.store,
            keys=self.app.state,
            outputs=self.app.outputs,
            # Alerts about the past would reach the mailing list as if they were news.
            alerts=self.app.alerts if self.alerts else None,
            ledger=self.app.fanout.ledger,
            observer=_Counter(report, self.app.metrics),
            scope=scope,
        )
        fanout.restore()
        todo = self.records(start_utc, end_utc, only=only)
        report.records = len(todo)
        log.info(
            "backfill_started",
            start=start_utc,
            end=end_utc,
            records=len(todo),
            scope=scope,
            products=[p.name for p in self.selected],
        )
        frames = self._frames(todo, report)
        done = 0
        pending: deque[_Unit] = deque()
        last_log = time.monotonic()
        for unit in _units(frames):
            for product in self.selected:
                if unit[0][0].source.kind not in product.consumes:
                    continue
                keys = [ref.record for ref, _ in unit]
                finished = self.app.state.done_among(product.name, keys)
                report.already_done[product.name] = report.already_done.get(product.name, 0) + len(finished)
                work = [(ref, fr) for ref, fr in unit if ref.record not in finished]
                if not work:
                    continue
                pending.append(self._start(product, work))
                while len(pending) > self.window:
                    self._advance_and_write(pending.popleft(), fanout, report)
            done += len(unit)
            if self.progress is not None:
                self.progress(done, len(todo), unit[0][0].t_rec_utc[:19])
            elif time.monotonic() - last_log > 10:
                last_log = time.monotonic()
                rate = done / max(time.monotonic() - t_start, 1e-9)
                eta = (len(todo) - done) / rate if rate > 0 else None
                log.info(
                    "backfill_progress", done=done, total=len(todo), rate_per_s=round(rate, 3), eta_s=round(eta) if eta else None
                )
        while pending:
            self._advance_and_write(pending.popleft(), fanout, report)
        # The end of the range ends the streams (a jet still going on is recorded as it stands).
        fanout.end_streams()
        report.elapsed_s = time.monotonic() - t_start
        log.info(
            "backfill_finished", **{k: v for k, v in dataclasses.asdict(report).items()}, throughput=round(report.throughput, 3)
        )
        return report

    def _frames(
        self, todo: list[tuple[Source, RemoteRecord]], report: BackfillReport
    ) -> Iterator[tuple[FrameRef, VerifiedFrame]]:
        """Records as they become available on disk, in time order: reused if ingested, else
        downloaded by a background thread (one at a time: one pending export per JSOC account)."""
        ingestors = {i.source.name: i for i in self.app.ingestors}
        on_disk: dict[tuple[str, str], PendingRecord] = {}
        by_series: dict[str, list[str]] = {}
        for src, rec in todo:
            by_series.setdefault(src.series, []).append(rec.name)
        refused: set[tuple[str, str]] = set()
        for series, names in by_series.items():
            for name, pr in self.app.state.frame_sets(series, names).items():
                on_disk[(series, name)] = pr
            refused |= {(series, n) for n in self.app.state.final_rejects(series)}
        q: queue.Queue[tuple[FrameRef, VerifiedFrame] | BaseException | None] = queue.Queue(maxsize=2 * self.window)
        stop = threading.Event()

        def produce() -> None:
            try:
                for src, rec in todo:
                    if stop.is_set():
                        return
                    pr = on_disk.get((src.series, rec.name))
                    if pr is None and (src.series, rec.name) in refused:
                        report.rejected["refused_before"] = report.rejected.get("refused_before", 0) + 1
                        continue
                    if pr is not None:
                        report.reused += 1
                        fr = VerifiedFrame(source=src, record=rec, paths=pr.paths, segments={}, latency_s=pr.latency_s)
                        q.put((FrameRef(src, rec.name, pr.t_rec_utc, pr.paths, pr.latency_s), fr))
                        continue
                    outcome, got = self._fetch(ingestors[src.name], rec, stop)
                    if got is None:
                        report.rejected[outcome] = report.rejected.get(outcome, 0) + 1
                        continue
                    report.downloaded += 1
                    ref = FrameRef(src, rec.name, rec.t_rec_utc, got.paths, got.latency_s)
                    got.segments = {}  # the workers read the files again; the driver keeps no pixels
                    q.put((ref, got))
            except BaseException as e:  # handed to the consumer, which raises it
                q.put(e)
            finally:
                q.put(None)

        th = threading.Thread(target=produce, name="backfill-downloads", daemon=True)
        th.start()
        try:
            while (item := q.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()

    def _fetch(self, ing: Ingestor, rec: RemoteRecord, stop: threading.Event) -> tuple[str, VerifiedFrame | None]:
        """One record, retried in place (so time order holds): through a JSOC outage for up to
        ``patience_s``, and twice more for a damaged transfer; then it is a counted reject."""
        deadline = time.monotonic() + self.patience_s
        delay, damaged = 2.0, 0
        while True:
            outcome, got = ing.fetch(rec, hw_key=f"backfill:{ing.source.name}", note=False)
            if got is not None or outcome == "quality":
                if got is None:
                    ing.fetch(rec, hw_key=f"backfill:{ing.source.name}")  # counts the final reject
                return outcome, got
            damaged += outcome != "download"
            if damaged > 2 or time.monotonic() + delay > deadline or stop.is_set():
                return ing.fetch(rec, hw_key=f"backfill:{ing.source.name}")  # a last try, counted if it fails
            log.warning("backfill_fetch_retry", record=rec.name, reason=outcome, retry_in_s=round(delay, 1))
            time.sleep(delay)
            delay = min(delay * 2, 60.0)

    def _start(self, product: Product, work: list[tuple[FrameRef, VerifiedFrame]]) -> _Unit:
        unit = _Unit(product, [r for r, _ in work], [f for _, f in work])
        if isinstance(product, SplitProduct):
            for ref in unit.refs:
                a = self.executor.submit(task_analyse, self.spec, product.name, ref, resources=self.resources)
                unit.analyses.append(a)
                unit.summaries.append(self.executor.submit(task_summary, a))
        return unit

    def _advance_and_write(self, unit: _Unit, fanout: FanOut, report: BackfillReport) -> None:
        product = unit.product
        keys = [r.record for r in unit.refs]
        try:
            if isinstance(product, SplitProduct):
                summaries = [s.result() for s in unit.summaries]
                plan = product.advance(unit.frames, summaries)
                unit.state = product.state() if isinstance(product, Stateful) else None
                batch = self.executor.submit(task_finish, self.spec, product.name, plan, *unit.analyses).result()
            else:
                batch = product.process(unit.frames)
                unit.state = product.state() if isinstance(product, Stateful) else None
            fanout.write(batch)
        # Whatever a product raises on a unit is that unit's failure: counted, and a rerun retries it.
        except Exception as e:
            report.failed[product.name] = report.failed.get(product.name, 0) + 1
            self.app.metrics.product_failed(product.name)
            for k in keys:
                self.app.state.note_product_failure(product.name, k, f"{type(e).__name__}: {e}", max_attempts=fanout.max_attempts)
            log.warning(
                "backfill_product_failed",
                product=product.name,
                records=keys,
                error=f"{type(e).__name__}: {str(e)[:300]}",
                exc_info=not isinstance(e, DataRejected | SourceUnavailable),
            )
            return
        self.app.state.mark_processed(product.name, keys, state=unit.state, scope=fanout.scope)
        report.processed[product.name] = report.processed.get(product.name, 0) + len(keys)


def _units(frames: Iterator[tuple[FrameRef, VerifiedFrame]]) -> Iterator[list[tuple[FrameRef, VerifiedFrame]]]:
    """Group a time-ordered stream into units (a record; the SHARPs of one T_REC), as the fan-out does."""
    group: list[tuple[FrameRef, VerifiedFrame]] = []
    for item in frames:
        if group and unit_key(group[0][1]) != unit_key(item[1]):
            yield group
            group = []
        group.append(item)
    if group:
        yield group


def reject_counts(report: BackfillReport) -> Counter[str]:
    """Rejects by reason (for metrics and tests)."""
    return Counter(report.rejected)


def print_lines(lines: Sequence[str]) -> None:
    """The human summary on stderr."""
    print("\n".join(lines), file=sys.stderr)
