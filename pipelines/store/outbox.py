"""The alert outbox: alerts waiting for delivery, in the state database, with their threads.

Alerts are written here in the step that decides them and delivered later by
:class:`heliowatch.pipelines.alerts.AlertCenter`, so a crash or an outage never loses one.
Each alert's ``dedup_key`` is unique: raising the same alert twice leaves one row.

An alert (``alert_outbox``) is delivered on each channel it was queued for (``mail``,
``webhook``) through its own row of ``alert_deliveries``, so one channel's outage delays only
that channel. A delivery is claimed (its attempt counted and its next attempt scheduled)
before the send and marked ``sent`` after it: a crash in between sends it once more after the
backoff, never in a loop, and two deliverers never send the same row at once. The alert's own
``status`` sums up its deliveries: ``pending`` while any is, then ``sent`` (every channel),
``refused`` (every channel refused it for good) or ``partial`` (some of each); ``digested``
alerts went out inside a digest and have no deliveries of their own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

__all__ = ["CHANNELS", "OutboxEntry", "OutboxRow", "OutboxStore"]

#: Delivery channels (bounded metric labels).
CHANNELS = ("mail", "webhook")

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
    sa.Column("status", sa.String(16), nullable=False),  # pending | sent | refused | partial | digested
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_utc", sa.String(32), nullable=False),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("created_utc", sa.String(32), nullable=False),
    sa.Column("sent_utc", sa.String(32), nullable=True),
)

deliveries = sa.Table(
    "alert_deliveries",
    _meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("outbox_id", sa.Integer, sa.ForeignKey("alert_outbox.id"), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # pending | sent | refused
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_utc", sa.String(32), nullable=False),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("sent_utc", sa.String(32), nullable=True),
    sa.UniqueConstraint("outbox_id", "channel", name="uq_alert_deliveries_channel"),
    sa.Index("ix_alert_deliveries_due", "status", "next_attempt_utc"),
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
    """One due delivery: an alert as stored, and the channel it is to go out on."""

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
    delivery_id: int = 0
    channel: str = "mail"
    created_utc: str = ""


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
        self._adopt_legacy()

    def _adopt_legacy(self) -> None:
        """Give alerts queued before ``alert_deliveries`` existed their mail delivery."""
        undelivered = sa.select(
            outbox.c.id,
            sa.literal("mail"),
            sa.literal("pending"),
            outbox.c.attempts,
            outbox.c.next_attempt_utc,
            outbox.c.last_error,
        ).where(outbox.c.status == "pending", ~sa.exists().where(deliveries.c.outbox_id == outbox.c.id))
        cols = ["outbox_id", "channel", "status", "attempts", "next_attempt_utc", "last_error"]
        try:
            with self.engine.begin() as c:
                c.execute(deliveries.insert().from_select(cols, undelivered))
        except sa.exc.IntegrityError:
            pass  # another process (the daemon, `alerts test`) adopted them at the same moment

    def fresh(self, keys: list[str]) -> set[str]:
        """The ``keys`` not yet in the outbox."""
        if not keys:
            return set()
        with self.engine.connect() as c:
            have = {r[0] for r in c.execute(sa.select(outbox.c.dedup_key).where(outbox.c.dedup_key.in_(keys)))}
        return set(keys) - have

    def enqueue(self, entries: list[OutboxEntry], *, channels: tuple[str, ...] = ("mail",)) -> list[OutboxEntry]:
        """Insert entries whose ``dedup_key`` is new, in one transaction; returns those inserted.

        Each ``pending`` entry gets one delivery per channel of ``channels``; ``digested`` ones
        none (their digest carries them). A message about a region replies to the first message
        about it (``In-Reply-To``).
        """
        unknown = set(channels) - set(CHANNELS)
        if unknown:
            msg = f"unknown alert channel(s) {sorted(unknown)}; known: {', '.join(CHANNELS)}"
            raise ValueError(msg)
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
                if e.status == "pending":
                    alert_id = c.execute(sa.select(outbox.c.id).where(outbox.c.dedup_key == e.dedup_key)).scalar_one()
                    for ch in channels:
                        c.execute(
                            deliveries.insert().values(
                                outbox_id=alert_id, channel=ch, status="pending", attempts=0, next_attempt_utc=e.created_utc
                            )
                        )
                done.append(e)
        return done

    def due(self, now_utc: str, *, channels: tuple[str, ...] = CHANNELS) -> list[OutboxRow]:
        """Pending deliveries on ``channels`` whose next attempt is at or before ``now_utc``, oldest first."""
        q = (
            sa.select(outbox, deliveries.c.id.label("delivery_id"), deliveries.c.channel, deliveries.c.attempts.label("tries"))
            .join(deliveries, deliveries.c.outbox_id == outbox.c.id)
            .where(
                deliveries.c.status == "pending",
                deliveries.c.next_attempt_utc <= now_utc,
                deliveries.c.channel.in_(channels),
            )
            .order_by(outbox.c.id, deliveries.c.channel)
        )
        with self.engine.connect() as c:
            rows = c.execute(q).all()
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
                attempts=r.tries,
                delivery_id=r.delivery_id,
                channel=r.channel,
                created_utc=r.created_utc,
            )
            for r in rows
        ]

    def claim(self, delivery_id: int, *, attempts: int, next_attempt_utc: str) -> bool:
        """Count an attempt and schedule the next one, before sending; False if it is not ours.

        ``attempts`` is the count :meth:`due` returned: the update only applies while it is
        unchanged, so of two deliverers that read the same row only one sends it.
        """
        with self.engine.begin() as c:
            done = c.execute(
                deliveries.update()
                .where(deliveries.c.id == delivery_id, deliveries.c.status == "pending", deliveries.c.attempts == attempts)
                .values(attempts=attempts + 1, next_attempt_utc=next_attempt_utc)
            )
            if done.rowcount != 1:
                return False
            self._settle(c, delivery_id)
        return True

    def undelivered(self, channel: str) -> list[tuple[int, str, int]]:
        """``(delivery id, Message-ID, attempts)`` of every pending delivery on ``channel``, due or not."""
        q = (
            sa.select(deliveries.c.id, outbox.c.message_id, deliveries.c.attempts)
            .join(outbox, deliveries.c.outbox_id == outbox.c.id)
            .where(deliveries.c.status == "pending", deliveries.c.channel == channel)
            .order_by(deliveries.c.id)
        )
        with self.engine.connect() as c:
            return [(int(r[0]), str(r[1]), int(r[2])) for r in c.execute(q)]

    def due_now(self, delivery_id: int, *, now_utc: str) -> None:
        """Make a pending delivery due at ``now_utc`` (a claimed one whose resend cannot duplicate it)."""
        with self.engine.begin() as c:
            c.execute(
                deliveries.update()
                .where(deliveries.c.id == delivery_id, deliveries.c.status == "pending")
                .values(next_attempt_utc=now_utc)
            )

    def failed(self, delivery_id: int, *, error: str, permanent: bool = False) -> None:
        """Record a failed attempt; a ``permanent`` failure is never tried again (``refused``)."""
        values: dict[str, Any] = {"last_error": error[:500]}
        if permanent:
            values["status"] = "refused"
        with self.engine.begin() as c:
            c.execute(deliveries.update().where(deliveries.c.id == delivery_id).values(**values))
            self._settle(c, delivery_id, error=error[:500])

    def sent(self, delivery_id: int, *, sent_utc: str) -> None:
        """Mark a delivery done."""
        with self.engine.begin() as c:
            c.execute(deliveries.update().where(deliveries.c.id == delivery_id).values(status="sent", sent_utc=sent_utc))
            self._settle(c, delivery_id, sent_utc=sent_utc)

    def _settle(self, c: Connection, delivery_id: int, *, error: str | None = None, sent_utc: str | None = None) -> None:
        """Bring the alert's own status, attempts and last error up to date with its deliveries."""
        alert_id = c.execute(sa.select(deliveries.c.outbox_id).where(deliveries.c.id == delivery_id)).scalar_one()
        rows = c.execute(sa.select(deliveries.c.status, deliveries.c.attempts).where(deliveries.c.outbox_id == alert_id)).all()
        states = {r.status for r in rows}
        if "pending" in states:
            status = "pending"
        elif states == {"sent"}:
            status = "sent"
        elif states == {"refused"}:
            status = "refused"
        else:
            status = "partial"
        values: dict[str, Any] = {"status": status, "attempts": sum(r.attempts for r in rows)}
        if error is not None:
            values["last_error"] = error
        if sent_utc is not None:
            values["sent_utc"] = sent_utc
        c.execute(outbox.update().where(outbox.c.id == alert_id).values(**values))

    def pending(self, *, channels: tuple[str, ...] = CHANNELS) -> int:
        """Deliveries waiting on ``channels`` (one per alert and channel)."""
        q = (
            sa.select(sa.func.count())
            .select_from(deliveries)
            .where(deliveries.c.status == "pending", deliveries.c.channel.in_(channels))
        )
        with self.engine.connect() as c:
            return int(c.execute(q).scalar_one())

    def delivery_states(self, alert_id: int) -> dict[str, dict[str, Any]]:
        """One alert's deliveries by channel: status, attempts, last error, time sent."""
        q = sa.select(
            deliveries.c.channel, deliveries.c.status, deliveries.c.attempts, deliveries.c.last_error, deliveries.c.sent_utc
        ).where(deliveries.c.outbox_id == alert_id)
        with self.engine.connect() as c:
            return {r.channel: {k: v for k, v in r._mapping.items() if k != "channel"} for r in c.execute(q)}

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
        """Messages per status (pending, sent, refused, partial, digested)."""
        with self.engine.connect() as c:
            return {r[0]: int(r[1]) for r in c.execute(sa.select(outbox.c.status, sa.func.count()).group_by(outbox.c.status))}
