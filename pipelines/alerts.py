"""Alerts to a mailing list and a webhook: raised into an outbox, delivered by a loop, never lost.

Alerts are never sent directly: they are written to the **outbox**
(:mod:`heliowatch.pipelines.store.outbox`) in the step that decides them, and a delivery loop
sends what is due. So a crash, an SMTP or webhook outage or a restart never loses an alert (it
stays pending and is retried with exponential backoff), and the natural key of each alert -
rule, region, time bucket - makes raising it twice a no-op (de-duplication, and a rate limit of
one alert per region and condition per window). When many alerts fire together they go out as
one digest. Each alert is delivered once per channel (mail, webhook), each channel retried on
its own; a receiver that refuses a message for good (a webhook's 4xx) is not asked again.
How mail travels (SMTP or a maildir) is :mod:`heliowatch.pipelines.mail`; the webhook POST is
:mod:`heliowatch.pipelines.webhook`.

Across a crash between a receiver's acceptance and the outbox's commit, delivery is
at-least-once with at most one duplicate (the attempt is recorded before the send, so the
resend waits for the backoff): maildir drops it (files named by Message-ID; :meth:`AlertCenter.recover`
reconciles the maildir with the outbox at start), list servers can (the same Message-ID), and
webhook receivers can (the same ``Idempotency-Key``).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import html
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import structlog

from heliowatch.models.core.times import Clock, SystemClock, iso_utc
from heliowatch.pipelines.errors import DeliveryError
from heliowatch.pipelines.mail import MaildirTransport, Message, Transport
from heliowatch.pipelines.store.outbox import OutboxEntry, OutboxRow, OutboxStore
from heliowatch.pipelines.webhook import Notice, WebhookTransport

__all__ = ["KINDS", "Alert", "AlertCenter", "AlertObserver"]

log = structlog.get_logger(__name__)

#: Alert kinds (bounded metric labels).
KINDS = ("flare_region", "flare_full_disk", "new_delta", "jet", "emergence", "data_stale", "digest", "test")


@dataclass
class Alert:
    """One alert to raise."""

    kind: str
    subject: str
    text: str
    region: str | None = None
    attachments: tuple[str, ...] = ()
    key: str | None = None  # extra natural-key part (e.g. a series name)


class AlertObserver(Protocol):
    """What delivery reports (the daemon's metrics implement it)."""

    def alert_sent(self, kind: str, at: float, channel: str = "mail") -> None:
        """A message of ``kind`` was delivered on ``channel`` at Unix time ``at``."""
        ...

    def alert_failed(self, kind: str, channel: str = "mail") -> None:
        """A delivery attempt failed (it stays in the outbox)."""
        ...

    def alert_refused(self, kind: str, channel: str) -> None:
        """The receiver refused a message for good (it is not retried)."""
        ...


class AlertCenter:
    """Raise alerts into the outbox and deliver them.

    Parameters
    ----------
    outbox : OutboxStore
        The outbox in the state database.
    transport : Transport or None
        How mail travels (SMTP or maildir); None: no mail, only the webhook.
    sender, recipients : str, list of str
        Envelope and header addresses.
    list_id : str
        The ``List-Id`` header.
    dedup_window_s : float
        One alert per (kind, region, extra key) per window.
    kind_windows : dict or None
        Per-kind windows that replace ``dedup_window_s`` (emergence warnings: one per place and
        UTC day).
    digest_threshold : int
        This many or more alerts raised together go out as one digest.
    retry_base_s, retry_max_s : float
        Exponential backoff of failed deliveries.
    webhook : WebhookTransport or None
        Also POST every alert to this webhook (its own delivery, retried on its own).
    observer : AlertObserver or None
    clock : Clock or None
        Delivery times (the system clock by default).

    Raises
    ------
    ValueError
        With neither a mail transport nor a webhook.
    """

    def __init__(
        self,
        outbox: OutboxStore,
        transport: Transport | None,
        *,
        sender: str,
        recipients: list[str],
        list_id: str,
        dedup_window_s: float = 6 * 3600,
        kind_windows: dict[str, float] | None = None,
        digest_threshold: int = 4,
        retry_base_s: float = 30.0,
        retry_max_s: float = 1800.0,
        webhook: WebhookTransport | None = None,
        observer: AlertObserver | None = None,
        clock: Clock | None = None,
    ) -> None:
        if transport is None and webhook is None:
            msg = "alerts need a mail transport, a webhook, or both"
            raise ValueError(msg)
        self.outbox = outbox
        self.transport = transport
        self.webhook = webhook
        self.channels = tuple(ch for ch, t in (("mail", transport), ("webhook", webhook)) if t is not None)
        self.sender = sender
        self.recipients = recipients
        self.list_id = list_id
        self.window = dedup_window_s
        self.kind_windows = {"emergence": 86400.0} if kind_windows is None else dict(kind_windows)
        self.digest_threshold = digest_threshold
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.observer = observer
        self.clock: Clock = clock or SystemClock()
        self.domain = sender.split("@")[-1] or "heliowatch.localhost"

    # -- raising -----------------------------------------------------------------------------
    def _dedup_key(self, a: Alert, t: dt.datetime) -> str:
        bucket = int(t.timestamp() // self.kind_windows.get(a.kind, self.window))
        return f"{a.kind}|{a.region or '-'}|{a.key or '-'}|{bucket}"

    def _entry(self, a: Alert, key: str, now: dt.datetime, *, status: str) -> OutboxEntry:
        return OutboxEntry(
            dedup_key=key,
            kind=a.kind,
            subject=a.subject,
            text=a.text,
            html=_html(a),
            attachments=list(a.attachments),
            message_id=email.utils.make_msgid(idstring=a.kind.replace("_", "-"), domain=self.domain),
            region=a.region,
            status=status,
            created_utc=iso_utc(now),
        )

    def raise_alerts(self, alerts: list[Alert], *, now: dt.datetime | None = None) -> int:
        """Put alerts in the outbox (digesting them if many); returns how many messages were queued.

        A message goes out once on each channel (mail, webhook); the count is of messages, not
        of deliveries.

        ``now`` is the time the alerts are about (the data's time, so a replay rate-limits as
        live operation would); the system time by default.
        """
        now = now or dt.datetime.fromtimestamp(self.clock.now(), dt.UTC)
        keyed = [(a, self._dedup_key(a, now)) for a in alerts]
        fresh_keys = self.outbox.fresh([k for _, k in keyed])
        fresh = [(a, k) for a, k in dict((k, (a, k)) for a, k in keyed).values() if k in fresh_keys]
        if not fresh:
            return 0
        if len(fresh) >= self.digest_threshold:
            lines = [f"- {a.subject}" for a, _ in fresh]
            body = (
                f"{len(fresh)} heliowatch alerts fired together at {iso_utc(now)}:\n\n"
                + "\n".join(lines)
                + "\n\n"
                + "\n\n".join(a.text for a, _ in fresh)
            )
            atts = tuple(dict.fromkeys(p for a, _ in fresh for p in a.attachments))[:6]
            digest = Alert("digest", f"[heliowatch] digest: {len(fresh)} alerts", body, attachments=atts)
            entries = [self._entry(a, k, now, status="digested") for a, k in fresh]
            entries.append(self._entry(digest, f"digest|{'|'.join(k for _, k in fresh)}"[:250], now, status="pending"))
            queued = 1 if self.outbox.enqueue(entries, channels=self.channels) else 0
        else:
            queued = len(
                self.outbox.enqueue([self._entry(a, k, now, status="pending") for a, k in fresh], channels=self.channels)
            )
        for a, _ in fresh:
            log.info("alert_raised", kind=a.kind, region=a.region, subject=a.subject)
        return queued

    # -- delivery ----------------------------------------------------------------------------
    def recover(self, *, now: dt.datetime | None = None) -> dict[str, int]:
        """At start, before any delivery: bring the maildir and the outbox back in step after a crash.

        A mail delivery whose file is already in the maildir was cut off between the rename and
        the commit of ``sent``: it is marked sent. The maildir's orphans (cut off before the
        rename) are removed, and every other claimed mail delivery is made due now rather than
        after its backoff: a maildir resend cannot duplicate (the file is named by Message-ID).
        SMTP keeps its backoff: a resend there may be a duplicate, so it is not hurried.
        Returns the counts (``marked_sent``, ``orphans_removed``, ``due_now``).
        """
        counts = {"marked_sent": 0, "orphans_removed": 0, "due_now": 0}
        if not isinstance(self.transport, MaildirTransport):
            return counts
        now = now or dt.datetime.fromtimestamp(self.clock.now(), dt.UTC)
        rows = self.outbox.undelivered("mail")
        found = self.transport.recover([m for _, m, _ in rows])
        counts["orphans_removed"] = len(found.removed)
        for delivery_id, message_id, attempts in rows:
            if message_id in found.delivered:
                self.outbox.sent(delivery_id, sent_utc=iso_utc(now))
                counts["marked_sent"] += 1
            elif attempts > 0:
                self.outbox.due_now(delivery_id, now_utc=iso_utc(now))
                counts["due_now"] += 1
        if any(counts.values()):
            log.info("maildir_recovered", maildir=str(self.transport.maildir), **counts)
        return counts

    def pending(self) -> int:
        """Deliveries waiting in the outbox (one per message and channel)."""
        return self.outbox.pending(channels=self.channels)

    def deliver(self, *, now: dt.datetime | None = None) -> tuple[int, int]:
        """Send every due pending delivery on every channel; returns (sent, failed)."""
        now = now or dt.datetime.fromtimestamp(self.clock.now(), dt.UTC)
        sent = failed = 0
        for row in self.outbox.due(iso_utc(now), channels=self.channels):
            attempts = row.attempts + 1
            delay = min(self.retry_max_s, self.retry_base_s * 2 ** (attempts - 1))
            # The attempt is recorded before the send: a crash after the receiver accepted it and
            # before `sent` below resends it once, after the backoff, rather than at every start.
            if not self.outbox.claim(
                row.delivery_id, attempts=row.attempts, next_attempt_utc=iso_utc(now + dt.timedelta(seconds=delay))
            ):
                continue  # another deliverer (`heliowatch alerts test`, another job) has it
            where = self._where(row.channel)
            try:
                self._send(row)
            except DeliveryError as e:
                failed += 1
                self.outbox.failed(row.delivery_id, error=str(e), permanent=e.permanent)
                if e.permanent:
                    if self.observer is not None:
                        self.observer.alert_refused(row.kind, row.channel)
                    log.error(
                        "alert_refused", kind=row.kind, channel=row.channel, to=where, attempts=attempts, error=str(e)[:300]
                    )
                else:
                    if self.observer is not None:
                        self.observer.alert_failed(row.kind, row.channel)
                    log.warning(
                        "alert_delivery_failed",
                        kind=row.kind,
                        channel=row.channel,
                        to=where,
                        attempts=attempts,
                        retry_in_s=delay,
                        error=str(e)[:300],
                    )
                continue
            self.outbox.sent(row.delivery_id, sent_utc=iso_utc(now))
            sent += 1
            if self.observer is not None:
                self.observer.alert_sent(row.kind, now.timestamp(), row.channel)
            log.info("alert_sent", kind=row.kind, channel=row.channel, to=where, message_id=row.message_id)
        return sent, failed

    def _where(self, channel: str) -> str:
        """Where a channel delivers, as logs may show it (a webhook's host, never its URL)."""
        if channel == "webhook" and self.webhook is not None:
            return f"webhook {self.webhook.host}"
        return self.transport.kind if self.transport is not None else channel

    def _send(self, row: OutboxRow) -> None:
        if row.channel == "webhook" and self.webhook is not None:
            self.webhook.send(
                Notice(
                    id=row.message_id.strip("<>"),
                    kind=row.kind,
                    subject=row.subject,
                    text=row.text,
                    region=row.region,
                    created_utc=row.created_utc,
                    attachments=tuple(Path(p).name for p in row.attachments),
                )
            )
            return
        if row.channel == "mail" and self.transport is not None:
            self.transport.send(
                Message(
                    sender=self.sender,
                    recipients=self.recipients,
                    subject=row.subject,
                    text=row.text,
                    html=row.html,
                    message_id=row.message_id,
                    list_id=self.list_id,
                    kind=row.kind,
                    in_reply_to=row.in_reply_to,
                    attachments=[Path(p) for p in row.attachments],
                )
            )
            return
        msg = f"no {row.channel} channel configured"  # due() only returns our channels
        raise DeliveryError(msg)


def _html(a: Alert) -> str:
    body = html.escape(a.text).replace("\n", "<br>\n")
    imgs = "".join(f"<li>{html.escape(Path(p).name)} (attached)</li>" for p in a.attachments)
    atts = f"<p>Attachments:</p><ul>{imgs}</ul>" if imgs else ""
    return (
        "<!doctype html><html><body style='font-family:sans-serif'>"
        f"<h3>{html.escape(a.subject)}</h3><p>{body}</p>{atts}"
        "<p style='color:#666;font-size:small'>heliowatch - automated alert</p></body></html>"
    )
