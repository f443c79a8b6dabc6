"""``heliowatch backfill`` (reprocess a time range on Dask) and ``heliowatch gaps`` (the gap audit)."""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from pathlib import Path
from typing import Any

from heliowatch.daemon.backfill import Backfill, Executor, InlineExecutor, WorkerSpec, print_lines
from heliowatch.daemon.backfill_cluster import DaskExecutor, open_cluster
from heliowatch.daemon.cli.common import add_config, config_of, progress_bar, setup_logging
from heliowatch.daemon.config import Config
from heliowatch.daemon.wiring import App, build
from heliowatch.models.core import jsonio
from heliowatch.models.core.errors import UsageError
from heliowatch.models.core.times import SystemClock, iso_utc, parse_iso, utc_to_tai_string
from heliowatch.pipelines.gaps import GapReport, audit
from heliowatch.pipelines.jsoc import SOURCE_KEYS
from heliowatch.pipelines.standin.archive import demo_archive_path

__all__ = ["register"]

_SERIES_KIND = (("hmi.M_", "magnetogram_series"), ("hmi.sharp", "sharp_series"), ("aia.", "aia_series"))


def _time(text: str, what: str) -> str:
    try:
        return iso_utc(parse_iso(text), millis=True)
    except ValueError as e:
        msg = f"{what} {text!r} is not an ISO 8601 time such as 2011-02-15T00:00:00Z"
        raise UsageError(msg) from e


def _range(a: argparse.Namespace, now: float) -> tuple[str, str]:
    if getattr(a, "range", None):
        if "--" not in a.range:
            msg = f"--range {a.range!r}: give START--END, e.g. 2024-05-01T00:00:00Z--2024-06-01T00:00:00Z"
            raise UsageError(msg)
        a.start, a.end = a.range.split("--", 1)
    if a.last:
        m = re.fullmatch(r"(\d+(?:\.\d+)?)([hd])", a.last)
        if not m:
            msg = f"--last {a.last!r}: give hours or days, e.g. 48h or 2d"
            raise UsageError(msg)
        span = float(m.group(1)) * (3600 if m.group(2) == "h" else 86400)
        return iso_utc(now - span, millis=True), iso_utc(now, millis=True)
    if not (a.start and a.end):
        msg = "give --start and --end (or --last 48h)"
        raise UsageError(msg)
    start, end = _time(a.start, "--start"), _time(a.end, "--end")
    if start > end:
        msg = f"--start {start} is after --end {end}"
        raise UsageError(msg)
    return start, end


def _configured(a: argparse.Namespace) -> Config:
    cfg = config_of(a)
    changes: dict[str, dict[str, Any]] = {}
    if a.replay:
        changes["jsoc"] = {"server": "replay"}
        changes["replay"] = {"archive": a.replay}
    for series in a.series or []:
        key = next((k for prefix, k in _SERIES_KIND if series.startswith(prefix)), None)
        if key is None:
            msg = f"--series {series!r}: not an HMI magnetogram, SHARP or AIA series"
            raise UsageError(msg)
        changes.setdefault("jsoc", {})[key] = series
    return cfg.replace(**changes) if changes else cfg


def _archive(cfg: Config) -> Path | None:
    if cfg.jsoc.server != "replay":
        return None
    return demo_archive_path() if cfg.replay.archive == "demo" else Path(cfg.replay.archive).resolve()


def _audit(app: App, start: str, end: str, *, cadence: float | None = None, series: list[str] | None = None) -> list[GapReport]:
    out = []
    for src in app.sources:
        if series and src.series not in series:
            continue
        from_jsoc = app.client.query(src.recordset(*_tai(start, end)), SOURCE_KEYS[src.kind])
        ingested = set(app.state.frame_sets(src.series, [r.name for r in from_jsoc]))
        report = audit(
            src,
            start_utc=start,
            end_utc=end,
            at_source=from_jsoc,
            ingested=ingested,
            rejected=app.state.rejects_of(src.series),
            cadence_s=cadence,
        )
        # The JSOC still has these: a deferred reject among them goes back in the queue, so the
        # daemon (and this backfill) tries it again; nothing stays parked for good.
        report.requeued = app.state.requeue(src.series, records=report.fillable())
        out.append(report)
    return out


def _tai(start: str, end: str) -> tuple[str, str]:
    return utc_to_tai_string(start), utc_to_tai_string(end)


def _executor(cfg: Config, a: argparse.Namespace) -> tuple[Executor, Any]:
    workers = cfg.backfill.workers if a.workers is None else a.workers
    address = a.dask or cfg.backfill.dask_address
    if workers == 0 and not address:
        return InlineExecutor(), None
    client, cluster = open_cluster(
        address=address or None,
        workers=workers,
        memory_per_worker=cfg.backfill.memory_per_worker,
        gpu_worker=cfg.backfill.gpu_worker,
    )
    return DaskExecutor(client), (client, cluster)


def _cmd_backfill(a: argparse.Namespace) -> int:
    cfg = _configured(a)
    _range(a, 0.0)  # bad times are refused before anything starts
    setup_logging(cfg)
    app = build(cfg, once=True)
    try:
        start, end = _range(a, app.clock.now())
        products = set(a.products.split(",")) if a.products else None
        known = {p.name for p in app.products}
        if products and not products <= known:
            msg = f"--products: unknown {sorted(products - known)}; known: {', '.join(sorted(known))}"
            raise UsageError(msg)
        only = None
        if a.gaps:
            reports = _audit(app, start, end)
            only = {r for rep in reports for r in rep.fillable()}
            for rep in reports:
                missing = rep.counts["missing_at_source"]
                again = f", {rep.requeued} deferred reject(s) re-queued" if rep.requeued else ""
                print(f"gaps {rep.source}: {len(rep.fillable())} slot(s) to fill, {missing} missing at the JSOC{again}")
        executor, cluster = _executor(cfg, a)
        try:
            bar = progress_bar("backfill") if sys.stderr.isatty() else None
            bf = Backfill(
                app,
                executor,
                WorkerSpec(cfg, _archive(cfg)),
                products=products,
                window=cfg.backfill.window,
                gpu_resources=cfg.backfill.gpu_worker,
                progress=bar,
                alerts=a.alerts,
            )
            report = bf.run(start, end, only=only)
        finally:
            if cluster is not None:
                client, local = cluster
                client.close()
                if local is not None:
                    local.close()
    finally:
        app.close()
    out = cfg.daemon.outputs.resolve() / f"backfill-{start[:19].replace(':', '')}-{end[:19].replace(':', '')}.json"
    doc = {"schema_version": jsonio.SCHEMA_VERSION, **dataclasses.asdict(report), "throughput": report.throughput}
    out.write_text(jsonio.dumps(doc, indent=2))
    print_lines([*report.lines(), f"  report: {out}"])
    return 0 if not report.failed else 1


def _cmd_gaps(a: argparse.Namespace) -> int:
    cfg = _configured(a)
    if not (a.start or a.end or a.last or a.range):
        a.last = "24h"
    _range(a, 0.0)  # bad times are refused before anything starts
    app = build(cfg, once=True)
    try:
        start, end = _range(a, app.clock.now())
        reports = _audit(app, start, end, cadence=a.cadence, series=a.series)
    finally:
        app.close()
    if a.json:
        print(
            jsonio.dumps(
                {
                    "schema_version": jsonio.SCHEMA_VERSION,
                    "generated_utc": iso_utc(SystemClock().now()),
                    "sources": [r.as_dict() for r in reports],
                },
                indent=2,
            )
        )
        return 0
    for r in reports:
        cov = "n/a" if r.expected == 0 else f"{100 * r.coverage:.1f} %"
        print(
            f"{r.source}: {r.expected} slot(s) at {r.cadence_s:g} s, coverage {cov}: "
            + ", ".join(f"{k} {v}" for k, v in r.counts.items())
            + (f"; {r.requeued} deferred reject(s) re-queued" if r.requeued else "")
        )
        for g in r.ranges:
            if g.state == "ingested":
                continue
            harp = f" HARP {g.harpnum}" if g.harpnum is not None else ""
            print(f"  {g.state:<18} {g.start_utc} .. {g.end_utc}  ({g.n} slot(s)){harp}")
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    add_config(p)
    p.add_argument("--start", help="UTC, ISO 8601 (e.g. 2011-02-15T00:00:00Z)")
    p.add_argument("--end", help="UTC, ISO 8601")
    p.add_argument("--last", metavar="48h|2d", help="instead of --start/--end: the last hours or days")
    p.add_argument("--range", metavar="START--END", help="instead of --start/--end (the systemd unit's instance name)")
    p.add_argument("--replay", metavar="DIR|demo", help="a local archive served by the JSOC stand-in instead of the JSOC")
    p.add_argument(
        "--series", action="append", help="a series to use instead of the configured one (e.g. hmi.M_720s; repeatable)"
    )


def register(sub: Any) -> None:
    """``backfill`` and ``gaps``."""
    b = sub.add_parser(
        "backfill",
        help="reprocess a time range through the same products, on Dask",
        description="Reprocess a time range of the archive through the daemon's products on Dask (resumable).",
    )
    _common(b)
    b.add_argument("--products", help="comma-separated products (default: all), e.g. regions,flares")
    b.add_argument("--dask", metavar="ADDRESS", help="an existing Dask scheduler, tcp://HOST:PORT (default: a LocalCluster)")
    b.add_argument(
        "--workers", type=int, help="LocalCluster worker processes (default: backfill.workers); 0 runs in this process"
    )
    b.add_argument("--gaps", action="store_true", help="fill only the slots the gap audit finds missing or rejected")
    b.add_argument("--alerts", action="store_true", help="also raise the products' alerts (off: old news stays off the list)")
    b.set_defaults(func=_cmd_backfill)
    g = sub.add_parser(
        "gaps",
        help="slots the cadence promises vs records at the source vs ingested",
        description="The gap audit: missing slots per series (at the JSOC, not ingested, rejected).",
    )
    _common(g)
    g.add_argument("--cadence", type=float, help="override the series' cadence in seconds (e.g. 24 for the jets' AIA spacing)")
    g.add_argument("--json", action="store_true")
    g.set_defaults(func=_cmd_gaps)
