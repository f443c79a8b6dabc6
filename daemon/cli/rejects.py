"""``heliowatch rejects [--requeue]``: the records ingest refused, and putting the deferred ones back.

A record whose transfer or file kept failing is *deferred* after its attempts (about 3 h of
backoff): the polls stop trying it, but it is not given up. ``--requeue`` puts the deferred records
back in the queue with their attempts reset, and the running daemon (or the next run) fetches
them at its next poll; the nightly gap fill (``backfill --gaps``) re-queues those of its range by
itself. A record refused for its QUALITY word is final: the data itself is flagged, so it is
listed but never re-queued.
"""

from __future__ import annotations

import argparse
from typing import Any

from heliowatch.daemon.cli.common import add_config, config_of
from heliowatch.daemon.state import StateStore
from heliowatch.models.core.errors import UsageError

__all__ = ["register"]


def _state_of(args: argparse.Namespace) -> StateStore:
    cfg = config_of(args)
    db = cfg.daemon.state_dir / "state.sqlite"
    if not cfg.state.url and not db.exists():
        msg = f"no state database at {db.absolute()}: the daemon has not run with this configuration"
        raise UsageError(msg)
    return StateStore(cfg.state_url)


def _status(row: dict[str, Any]) -> str:
    return "final" if row["final"] else "deferred" if row["deferred"] else "retrying"


def _cmd_rejects(args: argparse.Namespace) -> int:
    if args.limit < 0:
        msg = "--limit must be >= 0"
        raise UsageError(msg)
    st = _state_of(args)
    try:
        if args.requeue:
            n = st.requeue(args.series, reason=args.reason)
            where = f" of {args.series}" if args.series else ""
            print(f"re-queued {n} deferred record(s){where}: the daemon retries them at its next poll")
            return 0
        rows = [r for r in st.reject_summary(args.series) if args.reason is None or r["reason"] == args.reason]
        counts = st.reject_counts()
    finally:
        st.close()
    if not rows:
        print("no rejected records")
        return 0
    for series, c in sorted(counts.items()):
        if args.series is None or series == args.series:
            print(f"{series}: {c['retrying']} retrying, {c['deferred']} deferred, {c['final']} final")
    for r in rows[: args.limit]:
        print(f"  {_status(r):<8} {r['reason']:<10} attempts {r['attempts']:<2} last {r['last_utc']}  {r['record']}")
    if len(rows) > args.limit:
        print(f"  ... and {len(rows) - args.limit} more (--limit)")
    if any(r["deferred"] for r in rows):
        print("deferred records are not retried until re-queued: heliowatch rejects --requeue")
    return 0


def register(sub: Any) -> None:
    """``rejects``."""
    p = sub.add_parser(
        "rejects",
        help="records ingest refused (retrying, deferred, final); --requeue retries the deferred ones",
        description="List the records ingest refused: retrying (waiting for their next attempt), deferred "
        "(out of attempts, kept for a re-queue) and final (bad QUALITY). --requeue puts the deferred ones back "
        "in the queue; the daemon fetches them at its next poll.",
    )
    add_config(p)
    p.add_argument("--requeue", action="store_true", help="re-queue the deferred records (attempts start again)")
    p.add_argument("--series", help="only this series, e.g. hmi.M_720s_nrt")
    p.add_argument("--reason", help="only this reason, e.g. truncated, checksum, download")
    p.add_argument("--limit", type=int, default=50, help="records listed (default: %(default)s)")
    p.set_defaults(func=_cmd_rejects)
