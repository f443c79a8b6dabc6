"""The alert outbox: alerts waiting for delivery, in the state database, with their threads.

Alerts are written here in the step that decides them and delivered later by
:class:`heliowatch.pipelines.alerts.AlertCenter`, so a crash or an outage never loses one.
Each row's ``dedup_key`` is unique: raising the same alert twice leaves one row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

__all__ = ["OutboxEntry", "OutboxStore"]

_meta = sa.MetaData()

outbox = sa.Table(
    "alert_outbox",
    _meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("dedup_key", sa.String(256), nullable=False, unique=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("region", sa.String(64), nullable=True),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("html", sa.Text, nullable=False),
    sa.Column("attachments", sa.Text, nullable=False),
    sa.Column("message_id", sa.String(256), nullable=False),
    sa.Column("in_reply_to", sa.String(256), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),  # pending | sent | digested
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_utc", sa.String(32), nullable=False),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("created_utc", sa.String(32), nullable=False),
    sa.Column("sent_utc", sa.String(32), nullable=True),
)

threads = sa.Table(
    "alert_threads",
    _meta,
    sa.Column("thread_key", sa.String(128), primary_key=True),
    sa.Column("message_id", sa.String(256), nullable=False),
)


@dataclass
class OutboxEntry:
    """One message to queue (``status`` ``pending``, or ``digested`` when a digest carries it)."""

    dedup_key: str
    kind: str
    subject: str
    text: str
    html: str
    attachments: list[str]
    message_id: str
    region: str | None
    status: str
    created_utc: str


@dataclass(frozen=True)
class OutboxRow:
    """A queued message as stored."""

    id: int
    kind: str
    region: str | None
    subject: str
    text: str
    html: str
    attachments: list[str]
    message_id: str
    in_reply_to: str | None
    attempts: int


class OutboxStore:
    """SQL of the outbox.

    Parameters
    ----------
    engine : sqlalchemy.engine.Engine
        The state database's engine.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        _meta.create_all(engine)

    def fresh(self, keys: list[str]) -> set[str]:
        """The ``keys`` not yet in the outbox."""
        if not keys:
            return set()
        with self.engine.connect() as c:
            have = {r[0] for r in c.execute(sa.select(outbox.c.dedup_key).where(outbox.c.dedup_key.in_(keys)))}
        return set(keys) - have

    def enqueue(self, entries: list[OutboxEntry]) -> list[OutboxEntry]:
        """Insert entries whose ``dedup_key`` is new, in one transaction; returns those inserted.

        A message about a region replies to the first message about it (``In-Reply-To``).
        """
        done: list[OutboxEntry] = []
        with self.engine.begin() as c:
            for e in entries:
                if c.execute(sa.select(outbox.c.id).where(outbox.c.dedup_key == e.dedup_key)).first() is not None:
                    continue
                reply = None
                if e.region:
                    row = c.execute(sa.select(threads.c.message_id).where(threads.c.thread_key == e.region)).first()
                    if row is None:
                        c.execute(threads.insert().values(thread_key=e.region, message_id=e.message_id))
                    else:
                        reply = row[0]
                c.execute(
                    outbox.insert().values(
                        dedup_key=e.dedup_key,
                        kind=e.kind,
                        region=e.region,
                        subject=e.subject,
                        text=e.text,
                        html=e.html,
                        attachments=json.dumps(e.attachments),
                        message_id=e.message_id,
                        in_reply_to=reply,
                        status=e.status,
                        attempts=0,
                        next_attempt_utc=e.created_utc,
                        created_utc=e.created_utc,
                    )
                )
                done.append(e)
        return done

    def due(self, now_utc: str) -> list[OutboxRow]:
        """Pending messages whose next attempt is at or before ``now_utc``, oldest first."""
        with self.engine.connect() as c:
            rows = c.execute(
                sa.select(outbox).where(outbox.c.status == "pending", outbox.c.next_attempt_utc <= now_utc).order_by(outbox.c.id)
            ).all()
        return [
            OutboxRow(
                id=r.id,
                kind=r.kind,
                region=r.region,
                subject=r.subject,
                text=r.text,
                html=r.html,
                attachments=json.loads(r.attachments),
                message_id=r.message_id,
                in_reply_to=r.in_reply_to,
                attempts=r.attempts,
            )
            for r in rows
        ]

    def failed(self, row_id: int, *, attempts: int, error: str, next_attempt_utc: str) -> None:
        """Record a failed delivery attempt and when to try again."""
        with self.engine.begin() as c:
            c.execute(
                outbox.update()
                .where(outbox.c.id == row_id)
                .values(attempts=attempts, last_error=error[:500], next_attempt_utc=next_attempt_utc)
            )

    def sent(self, row_id: int, *, attempts: int, sent_utc: str) -> None:
        """Mark a message delivered."""
        with self.engine.begin() as c:
            c.execute(outbox.update().where(outbox.c.id == row_id).values(status="sent", attempts=attempts, sent_utc=sent_utc))

    def pending(self) -> int:
        """Messages waiting for delivery."""
        with self.engine.connect() as c:
            return int(c.execute(sa.select(sa.func.count()).select_from(outbox).where(outbox.c.status == "pending")).scalar_one())

    def recent(self, limit: int = 10) -> list[dict[str, Any]]:
        """The newest messages: time raised, kind, subject, status, last error."""
        q = (
            sa.select(outbox.c.created_utc, outbox.c.kind, outbox.c.subject, outbox.c.status, outbox.c.last_error)
            .order_by(outbox.c.id.desc())
            .limit(limit)
        )
        with self.engine.connect() as c:
            return [dict(r._mapping) for r in c.execute(q)]

    def counts(self) -> dict[str, int]:
        """Messages per status (pending, sent, digested)."""
        with self.engine.connect() as c:
            return {r[0]: int(r[1]) for r in c.execute(sa.select(outbox.c.status, sa.func.count()).group_by(outbox.c.status))}
