"""How alert mail travels (the one module of heliowatch that speaks SMTP): SMTP or a local maildir.

Messages carry plain text and HTML alternatives, attachments (quicklook, occlusion map, jet
strip), ``Message-ID``, ``Date``, ``List-Id``, ``Auto-Submitted: auto-generated`` (RFC 3834: so
vacation responders and list servers do not answer a machine), and ``In-Reply-To``/``References``
pointing at the first alert about the same region so mail clients thread follow-ups. SMTP supports
STARTTLS and authentication (the password from the environment or a credentials file).
Maildir delivery is exactly-once (the file is named by Message-ID, and :meth:`MaildirTransport.recover`
clears what a crash left in ``tmp/``); SMTP is effectively once: a crash between the server's
acceptance and our commit resends the message once, with the same Message-ID (chosen when the
alert was raised and stored before any send), which list servers and mail filters drop.
"""

from __future__ import annotations

import email.utils
import os
import smtplib
import socket
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

from heliowatch.models.core.times import Clock, SystemClock

# Every channel raises the same error; it is re-exported here, where it was first defined.
from heliowatch.pipelines.errors import DeliveryError

__all__ = ["DeliveryError", "MaildirRecovery", "MaildirTransport", "Message", "SmtpTransport", "Transport"]


@dataclass
class Message:
    """One alert mail."""

    sender: str
    recipients: list[str]
    subject: str
    text: str
    html: str
    message_id: str
    list_id: str
    kind: str
    in_reply_to: str | None = None
    attachments: list[Path] = field(default_factory=list)

    def email(self) -> EmailMessage:
        """The RFC 5322 message."""
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.recipients)
        msg["Subject"] = self.subject
        msg["Date"] = email.utils.formatdate(localtime=False, usegmt=True)
        msg["Message-ID"] = self.message_id
        msg["List-Id"] = self.list_id
        msg["Auto-Submitted"] = "auto-generated"
        msg["X-Heliowatch-Kind"] = self.kind
        if self.in_reply_to:
            msg["In-Reply-To"] = self.in_reply_to
            msg["References"] = self.in_reply_to
        text = self.text
        missing = [p for p in self.attachments if not p.exists()]
        if missing:
            text += "\n\n(attachments no longer on disk: " + ", ".join(p.name for p in missing) + ")"
        msg.set_content(text)
        msg.add_alternative(self.html, subtype="html")
        for path in self.attachments:
            if path.exists():
                sub = "png" if path.suffix == ".png" else ("gif" if path.suffix == ".gif" else "octet-stream")
                main = "image" if sub in ("png", "gif") else "application"
                msg.add_attachment(path.read_bytes(), maintype=main, subtype=sub, filename=path.name)
        return msg


class Transport(Protocol):
    """Sends one message or raises :class:`DeliveryError`."""

    kind: str

    def send(self, message: Message) -> None:
        """Deliver ``message``."""
        ...


@dataclass
class MaildirRecovery:
    """What :meth:`MaildirTransport.recover` found after a crash."""

    #: Of the Message-IDs asked about, those already in ``new/`` or ``cur/`` (delivered before the crash).
    delivered: set[str] = field(default_factory=set)
    #: Half-written files removed from ``tmp/``, by the Message-ID they were for.
    removed: dict[str, Path] = field(default_factory=dict)


class MaildirTransport:
    """Deliver into a local maildir (``tmp`` then ``new``), named by Message-ID: exactly once."""

    kind = "maildir"
    #: A tmp file this old is an orphan whatever its writer (the maildir convention: 36 hours).
    ORPHAN_AGE_S = 36 * 3600.0

    def __init__(self, maildir: Path, *, clock: Clock | None = None) -> None:
        self.maildir = maildir
        # Compared with file modification times: the system's clock, also in a replay.
        self.clock: Clock = clock or SystemClock()

    @staticmethod
    def _name(message_id: str) -> str:
        return message_id.strip("<>").replace("/", "_")

    def recover(self, message_ids: list[str]) -> MaildirRecovery:
        """At start, before any send: clear the orphans a crash left in ``tmp/`` and tell which of
        ``message_ids`` (the outbox's undelivered ones) are in fact delivered.

        An orphan is a message cut off between its write and its rename into ``new/``: it may be
        incomplete, and the outbox still has it as undelivered (``sent`` is recorded only after
        the rename), so it is removed, never completed, and the next send writes it whole: exactly
        once. A tmp file is an orphan when its writer (the pid in its name) is gone or is this
        process (a pid reused across restarts), or when it is older than :attr:`ORPHAN_AGE_S`;
        another live process's file (``heliowatch alerts test`` writing now) is left alone.
        """
        out = MaildirRecovery()
        by_name = {self._name(m): m for m in message_ids}
        for sub in ("new", "cur"):
            d = self.maildir / sub
            if d.is_dir():
                out.delivered |= {by_name[f.name] for f in d.iterdir() if f.name in by_name}
        tmp = self.maildir / "tmp"
        for f in sorted(tmp.iterdir()) if tmp.is_dir() else ():
            name, _, pid = f.name.rpartition(".")
            try:
                old = self.clock.now() - f.stat().st_mtime > self.ORPHAN_AGE_S
            except FileNotFoundError:
                continue  # its writer renamed it meanwhile
            if not (old or not pid.isdigit() or int(pid) == os.getpid() or not _alive(int(pid))):
                continue
            try:
                f.unlink()
            except FileNotFoundError:
                continue
            except OSError as e:
                msg = f"maildir {self.maildir}: cannot remove the orphan {f.name}: {e.strerror or e}"
                raise DeliveryError(msg) from e
            out.removed[by_name.get(name, name)] = f
        return out

    def send(self, message: Message) -> None:
        """Write the message into ``<maildir>/new`` unless it is already there."""
        try:
            for sub in ("tmp", "new", "cur"):
                (self.maildir / sub).mkdir(parents=True, exist_ok=True)
            name = message.message_id.strip("<>").replace("/", "_")
            final = self.maildir / "new" / name
            if final.exists() or (self.maildir / "cur" / name).exists():
                return  # delivered before a crash: exactly once
            tmp = self.maildir / "tmp" / f"{name}.{os.getpid()}"
            tmp.write_bytes(message.email().as_bytes())
            os.replace(tmp, final)
        except OSError as e:
            msg = f"maildir {self.maildir}: {e.strerror or e}"
            raise DeliveryError(msg) from e


def _alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (one of another user counts: it may be writing)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class SmtpTransport:
    """Deliver through the mailing list's SMTP server."""

    host: str = "127.0.0.1"
    port: int = 25
    starttls: bool = False
    username: str = ""
    password: str = ""
    timeout_s: float = 30.0
    cafile: str = ""
    kind: str = "smtp"

    def send(self, message: Message) -> None:
        """One SMTP session per message (EHLO, optional STARTTLS and AUTH, then the message)."""
        try:
            ctx = ssl.create_default_context(cafile=self.cafile or None)
            with smtplib.SMTP(
                self.host, self.port, timeout=self.timeout_s, local_hostname=socket.gethostname() or "localhost"
            ) as s:
                s.ehlo()
                if self.starttls:
                    s.starttls(context=ctx)
                    s.ehlo()
                if self.username:
                    s.login(self.username, self.password)
                s.send_message(message.email(), from_addr=message.sender, to_addrs=message.recipients)
        except (OSError, smtplib.SMTPException, ssl.SSLError) as e:
            msg = f"SMTP {self.host}:{self.port}: {type(e).__name__}: {e}"
            raise DeliveryError(msg) from e
