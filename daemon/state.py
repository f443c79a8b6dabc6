"""The state database: high-water marks, ingested frames and processed keys.

This is what makes a restart resume exactly where the daemon stopped: a frame row is
written in the same transaction that advances its series' high-water mark, and only after
the file has been verified and atomically renamed into place. A crash before the commit
leaves no row, so the record is fetched again; a crash after it leaves a complete file.
Natural keys carry unique constraints, so a replayed insert is a no-op, never a duplicate.

SQLite by default (WAL mode), PostgreSQL by URL.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from heliowatch.models.core.times import Clock, SystemClock, iso_utc
from heliowatch.pipelines.errors import local_io_error
from heliowatch.pipelines.fanout import PendingRecord
from heliowatch.pipelines.ingest import FrameRecord

__all__ = ["StateStore"]

metadata = sa.MetaData()

high_water = sa.Table(
    "high_water",
    metadata,
    sa.Column("series", sa.String(128), primary_key=True),
    sa.Column("t_rec_utc", sa.String(32), nullable=False),
    sa.Column("fsn", sa.BigInteger, nullable=True),
    sa.Column("updated_utc", sa.String(32), nullable=False),
)

frames = sa.Table(
    "frames",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("series", sa.String(128), nullable=False),
    sa.Column("record", sa.String(256), nullable=False),
    sa.Column("segment", sa.String(64), nullable=False),
    sa.Column("t_rec_utc", sa.String(32), nullable=False),
    sa.Column("fsn", sa.BigInteger, nullable=True),
    sa.Column("wavelength", sa.Integer, nullable=True),
    sa.Column("harpnum", sa.Integer, nullable=True),
    sa.Column("quality", sa.BigInteger, nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("latency_s", sa.Float, nullable=True),
    sa.Column("ingested_utc", sa.String(32), nullable=False),
    sa.UniqueConstraint("series", "record", "segment", name="uq_frames_natural"),
)

processed = sa.Table(
    "processed",
    metadata,
    sa.Column("product", sa.String(64), primary_key=True),
    sa.Column("key", sa.String(256), primary_key=True),
    sa.Column("processed_utc", sa.String(32), nullable=False),
)

product_attempts = sa.Table(
    "product_attempts",
    metadata,
    sa.Column("product", sa.String(64), primary_key=True),
    sa.Column("key", sa.String(256), primary_key=True),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("given_up", sa.Boolean, nullable=False),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("last_utc", sa.String(32), nullable=False),
)

product_state = sa.Table(
    "product_state",
    metadata,
    sa.Column("product", sa.String(64), primary_key=True),
    sa.Column("scope", sa.String(128), primary_key=True),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("saved_utc", sa.String(32), nullable=False),
)

rejects = sa.Table(
    "rejects",
    metadata,
    sa.Column("series", sa.String(128), primary_key=True),
    sa.Column("record", sa.String(256), primary_key=True),
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("t_rec_utc", sa.String(32), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("final", sa.Boolean, nullable=False),
    sa.Column("last_utc", sa.String(32), nullable=False),
    # Out of attempts for a transfer or file fault: parked, not given up. Polls skip it until
    # `heliowatch rejects --requeue` or the gap audit puts it back in the queue.
    sa.Column("deferred", sa.Boolean, nullable=False, server_default=sa.false()),
)


def _local_write_failure(ctx: sa.engine.ExceptionContext) -> None:
    """A SQLite file that cannot be written (disk full, read-only) as :class:`LocalIOError`, not a DB error.

    Every write through this engine (the state, and the product store and outbox sharing it)
    then fails the same typed way, which the daemon logs on one line, counts and retries.
    """
    err = local_io_error(ctx.original_exception, "state")
    if err is not None:
        raise err from ctx.original_exception


def _sqlite_pragmas(dbapi_conn: Any, _: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets the status command read while the daemon writes; FULL sync makes a commit durable.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


class StateStore:
    """Access to the state database.

    Parameters
    ----------
    url : str
        SQLAlchemy URL, e.g. ``sqlite:////var/lib/heliowatch/state.sqlite``.
    clock : Clock or None
        Timestamps of rows (the system clock by default).
    """

    def __init__(self, url: str, *, clock: Clock | None = None) -> None:
        self.url = url
        self.clock: Clock = clock or SystemClock()
        self.engine: Engine = sa.create_engine(url, future=True)
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
            sa.event.listen(self.engine, "handle_error", _local_write_failure)
        metadata.create_all(self.engine)
        self._migrate()

    def _migrate(self) -> None:
        """Bring a state database made by an older heliowatch up to this schema (columns added since)."""
        cols = {c["name"] for c in sa.inspect(self.engine).get_columns("rejects")}
        if "deferred" in cols:
            return
        with self.engine.begin() as c:
            c.execute(sa.text("ALTER TABLE rejects ADD COLUMN deferred BOOLEAN NOT NULL DEFAULT FALSE"))
            # Older versions gave transfer faults up for good after their attempts: they are
            # deferred now (re-queueable), and only a bad QUALITY word stays final.
            c.execute(
                rejects.update()
                .where(rejects.c.final.is_(True), rejects.c.reason != "quality")
                .values(final=False, deferred=True)
            )

    def close(self) -> None:
        """Dispose of the connection pool."""
        self.engine.dispose()

    def _now(self) -> str:
        return iso_utc(self.clock.now())

    # -- high-water marks -------------------------------------------------------------------
    def high_water(self, series: str) -> tuple[str, int | None] | None:
        """Return ``(t_rec_utc, fsn)`` of the newest ingested record of ``series``, or None."""
        with self.engine.connect() as c:
            row = c.execute(sa.select(high_water.c.t_rec_utc, high_water.c.fsn).where(high_water.c.series == series)).first()
        return None if row is None else (row[0], row[1])

    def high_waters(self) -> list[dict[str, Any]]:
        """Every high-water mark (source, newest T_REC, FSN, when it moved)."""
        with self.engine.connect() as c:
            return [dict(r._mapping) for r in c.execute(sa.select(high_water))]

    def _advance(self, conn: sa.Connection, series: str, t_rec_utc: str, fsn: int | None) -> None:
        row = conn.execute(sa.select(high_water.c.t_rec_utc, high_water.c.fsn).where(high_water.c.series == series)).first()
        now = self._now()
        if row is None:
            conn.execute(high_water.insert().values(series=series, t_rec_utc=t_rec_utc, fsn=fsn, updated_utc=now))
        elif (t_rec_utc, fsn or 0) > (row[0], row[1] or 0):
            conn.execute(
                high_water.update().where(high_water.c.series == series).values(t_rec_utc=t_rec_utc, fsn=fsn, updated_utc=now)
            )

    # -- frames -----------------------------------------------------------------------------
    def has_frame(self, series: str, record: str, segment: str | None = None) -> bool:
        """Whether a record (or one segment of it) has been ingested."""
        q = sa.select(sa.func.count()).select_from(frames).where(frames.c.series == series, frames.c.record == record)
        if segment is not None:
            q = q.where(frames.c.segment == segment)
        with self.engine.connect() as c:
            return bool(c.execute(q).scalar_one())

    def known_records(self, series: str, records: Iterable[str]) -> set[str]:
        """The subset of ``records`` that already has at least one ingested segment."""
        recs = list(records)
        if not recs:
            return set()
        with self.engine.connect() as c:
            rows = c.execute(
                sa.select(frames.c.record).where(frames.c.series == series, frames.c.record.in_(recs)).distinct()
            ).all()
        return {r[0] for r in rows}

    def record_frames(self, items: list[FrameRecord], *, hw_key: str | None = None) -> int:
        """Insert the segment files of one record and advance the high-water mark, atomically.

        ``hw_key`` names the high-water mark to advance (default: the series); AIA keeps
        one per channel, since channels arrive independently.
        Returns the number of new rows (0 when every segment was already recorded).
        """
        if not items:
            return 0
        now = self._now()
        added = 0
        with self.engine.begin() as c:
            for it in items:
                exists = c.execute(
                    sa.select(frames.c.id).where(
                        frames.c.series == it.series, frames.c.record == it.record, frames.c.segment == it.segment
                    )
                ).first()
                if exists is not None:
                    continue
                c.execute(frames.insert().values(**it.__dict__, ingested_utc=now))
                added += 1
            last = max(items, key=lambda i: (i.t_rec_utc, i.fsn or 0))
            self._advance(c, hw_key or last.series, last.t_rec_utc, last.fsn)
            c.execute(rejects.delete().where(rejects.c.series == last.series, rejects.c.record == last.record))
        return added

    def frames(self, series: str | None = None, *, limit: int | None = None) -> list[dict[str, Any]]:
        """Ingested frames, newest first."""
        q = sa.select(frames).order_by(frames.c.t_rec_utc.desc(), frames.c.id.desc())
        if series is not None:
            q = q.where(frames.c.series == series)
        if limit is not None:
            q = q.limit(limit)
        with self.engine.connect() as c:
            return [dict(r._mapping) for r in c.execute(q)]

    def frame_sets(self, series: str, records: Iterable[str]) -> dict[str, PendingRecord]:
        """The ingested records among ``records`` with their segment files (one query)."""
        recs = list(records)
        out: dict[str, PendingRecord] = {}
        if not recs:
            return out
        paths: dict[str, dict[str, Path]] = {}
        meta: dict[str, Any] = {}
        with self.engine.connect() as c:
            for i in range(0, len(recs), 500):
                q = sa.select(frames).where(frames.c.series == series, frames.c.record.in_(recs[i : i + 500]))
                for r in c.execute(q):
                    paths.setdefault(r.record, {})[r.segment] = Path(r.path)
                    meta[r.record] = r
        for rec, segs in paths.items():
            r = meta[rec]
            out[rec] = PendingRecord(r.series, rec, r.t_rec_utc, segs, r.latency_s, r.wavelength)
        return out

    def ingested_times(self, series: str, *, since_utc: str, wavelength: int | None = None) -> list[str]:
        """T_REC (UTC) of the records of ``series`` ingested since ``since_utc``, oldest first."""
        q = sa.select(frames.c.t_rec_utc).where(frames.c.series == series, frames.c.t_rec_utc >= since_utc).distinct()
        if wavelength is not None:
            q = q.where(frames.c.wavelength == wavelength)
        with self.engine.connect() as c:
            return sorted(r[0] for r in c.execute(q))

    def rejects_of(self, series: str) -> dict[str, bool]:
        """Rejected records of ``series`` -> whether the reject is final."""
        with self.engine.connect() as c:
            return {
                r[0]: bool(r[1])
                for r in c.execute(sa.select(rejects.c.record, rejects.c.final).where(rejects.c.series == series))
            }

    def frame_counts(self) -> dict[str, int]:
        """Number of distinct ingested records per series."""
        q = sa.select(frames.c.series, sa.func.count(sa.distinct(frames.c.record))).group_by(frames.c.series)
        with self.engine.connect() as c:
            return {r[0]: int(r[1]) for r in c.execute(q)}

    # -- rejects ----------------------------------------------------------------------------
    def note_reject(self, series: str, record: str, reason: str, *, t_rec_utc: str, final: bool, max_attempts: int) -> int:
        """Count a failed attempt at a record; returns the attempt count.

        A record is marked final (never retried) when ``final`` is true (a bad QUALITY word);
        any other reject is *deferred* after ``max_attempts`` failures: no longer retried by the
        polls, but kept for :meth:`requeue` (``heliowatch rejects --requeue``, the gap audit).
        """
        now = self._now()
        with self.engine.begin() as c:
            row = c.execute(sa.select(rejects.c.attempts).where(rejects.c.series == series, rejects.c.record == record)).first()
            attempts = 1 if row is None else row[0] + 1
            values = {
                "reason": reason,
                "attempts": attempts,
                "final": final,
                "deferred": not final and attempts >= max_attempts,
                "last_utc": now,
            }
            if row is None:
                c.execute(rejects.insert().values(series=series, record=record, t_rec_utc=t_rec_utc, **values))
            else:
                c.execute(rejects.update().where(rejects.c.series == series, rejects.c.record == record).values(**values))
        return attempts

    def _retryable(self) -> Any:
        return rejects.c.final.is_(False) & rejects.c.deferred.is_(False)

    def oldest_retry(self, series: str) -> str | None:
        """T_REC (UTC) of the oldest record of ``series`` still to be retried, if any.

        The next poll must reach back to it even if the high-water mark has moved on (a
        deferred record does not hold the window open: it comes back only when re-queued).
        """
        with self.engine.connect() as c:
            return c.execute(
                sa.select(sa.func.min(rejects.c.t_rec_utc)).where(rejects.c.series == series, self._retryable())
            ).scalar_one()

    def deferred_rejects(self, series: str) -> set[str]:
        """Records of ``series`` parked after their attempts (skipped by polls until re-queued)."""
        with self.engine.connect() as c:
            rows = c.execute(sa.select(rejects.c.record).where(rejects.c.series == series, rejects.c.deferred.is_(True))).all()
        return {r[0] for r in rows}

    def retryable_among(self, series: str, records: Iterable[str]) -> set[str]:
        """The ``records`` of ``series`` that are rejects still to be retried (neither final nor deferred)."""
        recs = list(records)
        out: set[str] = set()
        with self.engine.connect() as c:
            for i in range(0, len(recs), 500):
                q = sa.select(rejects.c.record).where(
                    rejects.c.series == series, rejects.c.record.in_(recs[i : i + 500]), self._retryable()
                )
                out |= {r[0] for r in c.execute(q)}
        return out

    def requeue(self, series: str | None = None, *, records: Iterable[str] | None = None, reason: str | None = None) -> int:
        """Put deferred rejects back in the queue (attempts start again from zero); returns how many.

        ``series``, ``records`` and ``reason`` narrow what is re-queued; a final reject (bad
        QUALITY) is never re-queued: the data itself is flagged.
        """
        where: Any = rejects.c.deferred.is_(True)
        if series is not None:
            where &= rejects.c.series == series
        if reason is not None:
            where &= rejects.c.reason == reason
        with self.engine.begin() as c:
            if records is None:
                return int(c.execute(rejects.update().where(where).values(deferred=False, attempts=0)).rowcount or 0)
            names, n = list(records), 0
            for i in range(0, len(names), 500):
                w = where & rejects.c.record.in_(names[i : i + 500])
                n += int(c.execute(rejects.update().where(w).values(deferred=False, attempts=0)).rowcount or 0)
        return n

    def reject_counts(self) -> dict[str, dict[str, int]]:
        """Per series: rejects that are ``retrying``, ``deferred`` or ``final``."""
        state = sa.case((rejects.c.final.is_(True), "final"), (rejects.c.deferred.is_(True), "deferred"), else_="retrying")
        q = sa.select(rejects.c.series, state, sa.func.count()).group_by(rejects.c.series, state)
        out: dict[str, dict[str, int]] = {}
        with self.engine.connect() as c:
            for series, st, n in c.execute(q):
                out.setdefault(series, dict.fromkeys(("retrying", "deferred", "final"), 0))[st] = int(n)
        return out

    def final_rejects(self, series: str) -> set[str]:
        """Records of ``series`` that will not be retried."""
        with self.engine.connect() as c:
            rows = c.execute(sa.select(rejects.c.record).where(rejects.c.series == series, rejects.c.final.is_(True))).all()
        return {r[0] for r in rows}

    def reject_summary(self, series: str | None = None) -> list[dict[str, Any]]:
        """All rejected records (of ``series``) with their reasons, attempt counts and whether final or deferred."""
        q = sa.select(rejects).order_by(rejects.c.last_utc.desc(), rejects.c.record)
        if series is not None:
            q = q.where(rejects.c.series == series)
        with self.engine.connect() as c:
            return [{**r._mapping, "final": bool(r.final), "deferred": bool(r.deferred)} for r in c.execute(q)]

    # -- processed keys ---------------------------------------------------------------------
    def mark_processed(self, product: str, keys: list[str], *, state: dict[str, Any] | None = None, scope: str = "live") -> None:
        """Record that ``product`` was made for ``keys`` (already marked ones are left as they are), and
        in the same transaction the product's state after them (``scope`` keeps a backfill's apart)."""
        if not keys and state is None:
            return
        now = self._now()
        with self.engine.begin() as c:
            if state is not None:
                where = (product_state.c.product == product) & (product_state.c.scope == scope)
                blob = json.dumps(state, sort_keys=True)
                if c.execute(sa.select(product_state.c.product).where(where)).first() is None:
                    c.execute(product_state.insert().values(product=product, scope=scope, state=blob, saved_utc=now))
                else:
                    c.execute(product_state.update().where(where).values(state=blob, saved_utc=now))
            have = {
                r[0]
                for r in c.execute(sa.select(processed.c.key).where(processed.c.product == product, processed.c.key.in_(keys)))
            }
            for k in dict.fromkeys(keys):
                if k not in have:
                    c.execute(processed.insert().values(product=product, key=k, processed_utc=now))
            c.execute(product_attempts.delete().where(product_attempts.c.product == product, product_attempts.c.key.in_(keys)))

    def load_state(self, product: str, scope: str = "live") -> dict[str, Any] | None:
        """The state ``product`` saved last in ``scope``, or None."""
        with self.engine.connect() as c:
            row = c.execute(
                sa.select(product_state.c.state).where(product_state.c.product == product, product_state.c.scope == scope)
            ).first()
        return None if row is None else dict(json.loads(row[0]))

    def is_processed(self, product: str, key: str) -> bool:
        """Whether ``product`` was already made for ``key``."""
        return bool(self.done_among(product, [key]) - self._given_up(product, [key]))

    def _given_up(self, product: str, keys: list[str]) -> set[str]:
        with self.engine.connect() as c:
            q = sa.select(product_attempts.c.key).where(
                product_attempts.c.product == product, product_attempts.c.key.in_(keys), product_attempts.c.given_up.is_(True)
            )
            return {r[0] for r in c.execute(q)}

    def done_among(self, product: str, keys: list[str]) -> set[str]:
        """The ``keys`` ``product`` has processed or given up."""
        if not keys:
            return set()
        with self.engine.connect() as c:
            done = {
                r[0]
                for r in c.execute(sa.select(processed.c.key).where(processed.c.product == product, processed.c.key.in_(keys)))
            }
        return done | self._given_up(product, keys)

    def note_product_failure(self, product: str, key: str, error: str, *, max_attempts: int) -> bool:
        """Count a failure of ``product`` on ``key``; True when this failure gives the record up."""
        now = self._now()
        where = (product_attempts.c.product == product) & (product_attempts.c.key == key)
        with self.engine.begin() as c:
            row = c.execute(sa.select(product_attempts.c.attempts).where(where)).first()
            attempts = 1 if row is None else row[0] + 1
            given_up = attempts >= max_attempts
            values = {"attempts": attempts, "given_up": given_up, "last_error": error[:500], "last_utc": now}
            if row is None:
                c.execute(product_attempts.insert().values(product=product, key=key, **values))
            else:
                c.execute(product_attempts.update().where(where).values(**values))
        return given_up

    def product_failures(self) -> list[dict[str, Any]]:
        """Records some product failed on (given up or still to be retried)."""
        with self.engine.connect() as c:
            q = sa.select(product_attempts).order_by(product_attempts.c.last_utc.desc())
            return [dict(r._mapping) for r in c.execute(q)]

    def unprocessed(self, product: str, series: list[str], *, limit: int) -> list[PendingRecord]:
        """Ingested records of ``series`` that ``product`` has neither processed nor given up, oldest first."""
        done = sa.select(processed.c.key).where(processed.c.product == product)
        gone = sa.select(product_attempts.c.key).where(
            product_attempts.c.product == product, product_attempts.c.given_up.is_(True)
        )
        q = (
            sa.select(frames)
            .where(frames.c.series.in_(series), frames.c.record.not_in(done), frames.c.record.not_in(gone))
            .order_by(frames.c.t_rec_utc, frames.c.id)
        )
        by_record: dict[str, dict[str, Any]] = {}
        with self.engine.connect() as c:
            for r in c.execute(q):
                entry = by_record.setdefault(
                    r.record,
                    {"series": r.series, "t_rec_utc": r.t_rec_utc, "paths": {}, "latency": r.latency_s, "wl": r.wavelength},
                )
                entry["paths"][r.segment] = Path(r.path)
                if len(by_record) > limit:
                    break
        return [
            PendingRecord(e["series"], rec, e["t_rec_utc"], e["paths"], e["latency"], e["wl"])
            for rec, e in list(by_record.items())[:limit]
        ]
