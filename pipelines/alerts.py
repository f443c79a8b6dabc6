"""Alerts to a mailing list (the one module of heliowatch that speaks SMTP).

Alerts are never sent directly: they are written to an **outbox** in the state database in the
same step that decides them, and a delivery loop sends what is due. So a crash, an SMTP outage
or a restart never loses an alert (it stays pending and is retried with exponential backoff),
and the natural key of each alert - rule, region, time bucket - makes raising it twice a no-op
(de-duplication, and a rate limit of one alert per region and condition per window). When
many alerts fire together they go out as one digest.

Mail: plain text and HTML alternatives, attachments (quicklook, occlusion map, jet strip),
``Message-ID``, ``Date``, ``List-Id``, and ``In-Reply-To``/``References`` pointing at the first
alert about the same region so mail clients thread follow-ups. Transports: SMTP (optional
STARTTLS and authentication; the password from the environment or a credentials file) or a
local maildir (the demo default: no mail server needed). Maildir delivery is exactly-once
(the file is named by Message-ID); SMTP is at-least-once across a crash between the server's
acceptance and our commit, and the stable Message-ID lets list servers drop the duplicate.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import html
import json
import os
import smtplib
import socket
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from heliowatch.daemon.logs import get_logger
from heliowatch.daemon.state import metadata

__all__ = ["Alert", "AlertCenter", "Transport"]

log = get_logger(__name__)

outbox = sa.Table(
    "alert_outbox",
    metadata,
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
    metadata,
    sa.Column("thread_key", sa.String(128), primary_key=True),
    sa.Column("message_id", sa.String(256), nullable=False),
)

#: Alert kinds (bounded metric labels).
KINDS = ("flare_region", "flare_full_disk", "new_delta", "jet", "emergence", "data_stale", "digest", "test")


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Alert:
    """One alert to raise."""

    kind: str
    subject: str
    text: str
    region: str | None = None
    attachments: tuple[str, ...] = ()
    key: str | None = None  # extra natural-key part (e.g. a series name)


@dataclass
class Transport:
    """Where mail goes."""

    kind: str  # smtp | maildir
    maildir: Path | None = None
    host: str = "127.0.0.1"
    port: int = 25
    starttls: bool = False
    username: str = ""
    password: str = ""
    timeout_s: float = 30.0
    cafile: str = ""


class AlertCenter:
    """Raise alerts into the outbox and deliver them.

    Parameters
    ----------
    engine : sqlalchemy.engine.Engine
        The state database.
    transport : Transport
    sender, recipients : str, list of str
        Envelope and header addresses.
    list_id : str
        The ``List-Id`` header.
    dedup_window_s : float
        One alert per (kind, region, extra key) per window.
    digest_threshold : int
        This many or more alerts raised together go out as one digest.
    retry_base_s, retry_max_s : float
        Exponential backoff of failed deliveries.
    metrics : heliowatch.daemon.metrics.Metrics or None
    """

    def __init__(
        self,
        engine: Any,
        transport: Transport,
        *,
        sender: str,
        recipients: list[str],
        list_id: str,
        dedup_window_s: float = 6 * 3600,
        digest_threshold: int = 4,
        retry_base_s: float = 30.0,
        retry_max_s: float = 1800.0,
        metrics: Any = None,
    ) -> None:
        self.engine = engine
        metadata.create_all(engine, tables=[outbox, threads])
        self.transport = transport
        self.sender = sender
        self.recipients = recipients
        self.list_id = list_id
        self.window = dedup_window_s
        self.digest_threshold = digest_threshold
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.metrics = metrics
        self.domain = sender.split("@")[-1] or "heliowatch.localhost"
        if metrics is not None:
            metrics.add_collector(self._collect)

    # -- raising -----------------------------------------------------------------------------
    def _dedup_key(self, a: Alert, t: dt.datetime) -> str:
        bucket = int(t.timestamp() // self.window)
        return f"{a.kind}|{a.region or '-'}|{a.key or '-'}|{bucket}"

    def raise_alerts(self, alerts: list[Alert], *, now: dt.datetime | None = None) -> int:
        """Put alerts in the outbox (digesting them if many); returns how many mails were queued."""
        now = now or dt.datetime.now(dt.UTC)
        with self.engine.begin() as c:
            fresh = []
            for a in alerts:
                k = self._dedup_key(a, now)
                if c.execute(sa.select(outbox.c.id).where(outbox.c.dedup_key == k)).first() is None:
                    fresh.append((a, k))
            if not fresh:
                return 0
            if len(fresh) >= self.digest_threshold:
                for a, k in fresh:
                    self._insert(c, a, k, now, status="digested")
                lines = [f"- {a.subject}" for a, _ in fresh]
                body = (
                    f"{len(fresh)} heliowatch alerts fired together at {_iso(now)}:\n\n"
                    + "\n".join(lines)
                    + "\n\n"
                    + "\n\n".join(a.text for a, _ in fresh)
                )
                atts = tuple(dict.fromkeys(p for a, _ in fresh for p in a.attachments))[:6]
                digest = Alert("digest", f"[heliowatch] digest: {len(fresh)} alerts", body, attachments=atts)
                self._insert(c, digest, f"digest|{'|'.join(k for _, k in fresh)}"[:250], now, status="pending")
                queued = 1
            else:
                for a, k in fresh:
                    self._insert(c, a, k, now, status="pending")
                queued = len(fresh)
        for a, _ in fresh:
            log.info("alert_raised", kind=a.kind, region=a.region, subject=a.subject)
        return queued

    def _insert(self, c: Any, a: Alert, key: str, now: dt.datetime, *, status: str) -> None:
        mid = email.utils.make_msgid(idstring=a.kind.replace("_", "-"), domain=self.domain)
        reply = None
        if a.region:
            tk = f"{a.region}"
            row = c.execute(sa.select(threads.c.message_id).where(threads.c.thread_key == tk)).first()
            if row is None:
                c.execute(threads.insert().values(thread_key=tk, message_id=mid))
            else:
                reply = row[0]
        c.execute(
            outbox.insert().values(
                dedup_key=key,
                kind=a.kind,
                region=a.region,
                subject=a.subject,
                text=a.text,
                html=_html(a),
                attachments=json.dumps(list(a.attachments)),
                message_id=mid,
                in_reply_to=reply,
                status=status,
                attempts=0,
                next_attempt_utc=_iso(now),
                created_utc=_iso(now),
            )
        )

    # -- delivery ----------------------------------------------------------------------------
    def pending(self) -> int:
        """Alerts waiting in the outbox."""
        with self.engine.connect() as c:
            return int(c.execute(sa.select(sa.func.count()).select_from(outbox).where(outbox.c.status == "pending")).scalar_one())

    def deliver(self, *, now: dt.datetime | None = None) -> tuple[int, int]:
        """Send every due pending alert; returns (sent, failed)."""
        now = now or dt.datetime.now(dt.UTC)
        with self.engine.connect() as c:
            due = c.execute(
                sa.select(outbox)
                .where(outbox.c.status == "pending", outbox.c.next_attempt_utc <= _iso(now))
                .order_by(outbox.c.id)
            ).all()
        sent = failed = 0
        for row in due:
            try:
                self._send(self._message(row))
            except (OSError, smtplib.SMTPException, ssl.SSLError) as e:
                failed += 1
                attempts = row.attempts + 1
                delay = min(self.retry_max_s, self.retry_base_s * 2 ** (attempts - 1))
                with self.engine.begin() as c:
                    c.execute(
                        outbox.update()
                        .where(outbox.c.id == row.id)
                        .values(
                            attempts=attempts, last_error=str(e)[:500], next_attempt_utc=_iso(now + dt.timedelta(seconds=delay))
                        )
                    )
                if self.metrics is not None:
                    self.metrics.alert_failures.labels(row.kind).inc()
                log.warning("alert_delivery_failed", kind=row.kind, attempts=attempts, retry_in_s=delay, error=str(e)[:300])
                continue
            with self.engine.begin() as c:
                c.execute(
                    outbox.update()
                    .where(outbox.c.id == row.id)
                    .values(status="sent", attempts=row.attempts + 1, sent_utc=_iso(now))
                )
            sent += 1
            if self.metrics is not None:
                self.metrics.alerts_sent.labels(row.kind).inc()
                self.metrics.alert_last_success.set(now.timestamp())
            log.info("alert_sent", kind=row.kind, message_id=row.message_id, transport=self.transport.kind)
        return sent, failed

    def _message(self, row: Any) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.recipients)
        msg["Subject"] = row.subject
        msg["Date"] = email.utils.formatdate(localtime=False, usegmt=True)
        msg["Message-ID"] = row.message_id
        msg["List-Id"] = self.list_id
        msg["X-Heliowatch-Kind"] = row.kind
        if row.in_reply_to:
            msg["In-Reply-To"] = row.in_reply_to
            msg["References"] = row.in_reply_to
        text = row.text
        missing = [p for p in json.loads(row.attachments) if not Path(p).exists()]
        if missing:
            text += "\n\n(attachments no longer on disk: " + ", ".join(Path(p).name for p in missing) + ")"
        msg.set_content(text)
        msg.add_alternative(row.html, subtype="html")
        for p in json.loads(row.attachments):
            path = Path(p)
            if path.exists():
                sub = "png" if path.suffix == ".png" else "octet-stream"
                main = "image" if sub == "png" else "application"
                msg.add_attachment(path.read_bytes(), maintype=main, subtype=sub, filename=path.name)
        return msg

    def _send(self, msg: EmailMessage) -> None:
        t = self.transport
        if t.kind == "maildir":
            assert t.maildir is not None
            for sub in ("tmp", "new", "cur"):
                (t.maildir / sub).mkdir(parents=True, exist_ok=True)
            name = str(msg["Message-ID"]).strip("<>").replace("/", "_")
            final = t.maildir / "new" / name
            if final.exists() or (t.maildir / "cur" / name).exists():
                return  # delivered before a crash: exactly once
            tmp = t.maildir / "tmp" / f"{name}.{os.getpid()}"
            tmp.write_bytes(msg.as_bytes())
            os.replace(tmp, final)
            return
        ctx = ssl.create_default_context(cafile=t.cafile or None)
        with smtplib.SMTP(t.host, t.port, timeout=t.timeout_s, local_hostname=socket.gethostname() or "localhost") as s:
            s.ehlo()
            if t.starttls:
                s.starttls(context=ctx)
                s.ehlo()
            if t.username:
                s.login(t.username, t.password)
            s.send_message(msg, from_addr=self.sender, to_addrs=self.recipients)

    def _collect(self) -> list[Any]:
        from prometheus_client.core import GaugeMetricFamily  # noqa: PLC0415

        return [GaugeMetricFamily("heliowatch_alert_outbox_depth", "Alerts waiting in the outbox", value=float(self.pending()))]


def _html(a: Alert) -> str:
    body = html.escape(a.text).replace("\n", "<br>\n")
    imgs = "".join(f"<li>{html.escape(Path(p).name)} (attached)</li>" for p in a.attachments)
    atts = f"<p>Attachments:</p><ul>{imgs}</ul>" if imgs else ""
    return (
        "<!doctype html><html><body style='font-family:sans-serif'>"
        f"<h3>{html.escape(a.subject)}</h3><p>{body}</p>{atts}"
        "<p style='color:#666;font-size:small'>heliowatch - automated alert</p></body></html>"
    )
