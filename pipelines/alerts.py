"""Alerts to a mailing list: raised into an outbox, delivered by a loop, never lost, never doubled.

Alerts are never sent directly: they are written to the **outbox**
(:mod:`heliowatch.pipelines.store.outbox`) in the step that decides them, and a delivery loop
sends what is due. So a crash, an SMTP outage or a restart never loses an alert (it stays
pending and is retried with exponential backoff), and the natural key of each alert - rule,
region, time bucket - makes raising it twice a no-op (de-duplication, and a rate limit of one
alert per region and condition per window). When many alerts fire together they go out as
one digest. How a message travels (SMTP or a maildir) is :mod:`heliowatch.pipelines.mail`.
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
from heliowatch.pipelines.mail import DeliveryError, Message, Transport
from heliowatch.pipelines.store.outbox import OutboxEntry, OutboxStore

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

    def alert_sent(self, kind: str, at: float) -> None:
        """A message of ``kind`` was delivered at Unix time ``at``."""
        ...

    def alert_failed(self, kind: str) -> None:
        """A delivery attempt failed (it stays in the outbox)."""
        ...


class AlertCenter:
    """Raise alerts into the outbox and deliver them.

    Parameters
    ----------
    outbox : OutboxStore
        The outbox in the state database.
    transport : Transport
        How messages travel (SMTP or maildir).
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
    observer : AlertObserver or None
    clock : Clock or None
        Delivery times (the system clock by default).
    """

    def __init__(
        self,
        outbox: OutboxStore,
        transport: Transport,
        *,
        sender: str,
        recipients: list[str],
        list_id: str,
        dedup_window_s: float = 6 * 3600,
        kind_windows: dict[str, float] | None = None,
        digest_threshold: int = 4,
        retry_base_s: float = 30.0,
        retry_max_s: float = 1800.0,
        observer: AlertObserver | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.outbox = outbox
        self.transport = transport
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
        """Put alerts in the outbox (digesting them if many); returns how many mails were queued.

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
            queued = 1 if self.outbox.enqueue(entries) else 0
        else:
            queued = len(self.outbox.enqueue([self._entry(a, k, now, status="pending") for a, k in fresh]))
        for a, _ in fresh:
            log.info("alert_raised", kind=a.kind, region=a.region, subject=a.subject)
        return queued

    # -- delivery ----------------------------------------------------------------------------
    def pending(self) -> int:
        """Alerts waiting in the outbox."""
        return self.outbox.pending()

    def deliver(self, *, now: dt.datetime | None = None) -> tuple[int, int]:
        """Send every due pending alert; returns (sent, failed)."""
        now = now or dt.datetime.fromtimestamp(self.clock.now(), dt.UTC)
        sent = failed = 0
        for row in self.outbox.due(iso_utc(now)):
            msg = Message(
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
            try:
                self.transport.send(msg)
            except DeliveryError as e:
                failed += 1
                attempts = row.attempts + 1
                delay = min(self.retry_max_s, self.retry_base_s * 2 ** (attempts - 1))
                self.outbox.failed(
                    row.id, attempts=attempts, error=str(e), next_attempt_utc=iso_utc(now + dt.timedelta(seconds=delay))
                )
                if self.observer is not None:
                    self.observer.alert_failed(row.kind)
                log.warning("alert_delivery_failed", kind=row.kind, attempts=attempts, retry_in_s=delay, error=str(e)[:300])
                continue
            self.outbox.sent(row.id, attempts=row.attempts + 1, sent_utc=iso_utc(now))
            sent += 1
            if self.observer is not None:
                self.observer.alert_sent(row.kind, now.timestamp())
            log.info("alert_sent", kind=row.kind, message_id=row.message_id, transport=self.transport.kind)
        return sent, failed


def _html(a: Alert) -> str:
    body = html.escape(a.text).replace("\n", "<br>\n")
    imgs = "".join(f"<li>{html.escape(Path(p).name)} (attached)</li>" for p in a.attachments)
    atts = f"<p>Attachments:</p><ul>{imgs}</ul>" if imgs else ""
    return (
        "<!doctype html><html><body style='font-family:sans-serif'>"
        f"<h3>{html.escape(a.subject)}</h3><p>{body}</p>{atts}"
        "<p style='color:#666;font-size:small'>heliowatch - automated alert</p></body></html>"
    )
