"""Alerts through a real SMTP server on loopback (aiosmtpd): delivery, threads, dedup, digest,
outage and recovery, restart with a pending outbox, STARTTLS + AUTH, maildir exactly-once."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import socket
import sqlite3
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from heliowatch.daemon.config import load_config
from heliowatch.daemon.errors import ConfigError
from heliowatch.daemon.metrics import Metrics
from heliowatch.daemon.state import StateStore
from heliowatch.pipelines.alerts import Alert, AlertCenter
from heliowatch.pipelines.mail import MaildirTransport, Message, SmtpTransport
from heliowatch.pipelines.store.outbox import OutboxStore

T0 = dt.datetime(2024, 5, 10, 12, tzinfo=dt.UTC)


class Inbox:
    """aiosmtpd handler keeping every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp() -> tuple[Inbox, Controller]:
    inbox = Inbox()
    ctl = Controller(inbox, hostname="127.0.0.1", port=free_port())
    ctl.start()
    yield inbox, ctl
    ctl.stop()


def center(tmp_path: Path, port: int, **kw: object) -> AlertCenter:
    state = StateStore(f"sqlite:///{tmp_path / 'state.sqlite'}")
    t = SmtpTransport(host="127.0.0.1", port=port, timeout_s=3, **kw.pop("transport", {}))  # type: ignore[arg-type]
    metrics = kw.pop("metrics", None)
    if metrics is not None:
        kw["observer"] = metrics
    ac = AlertCenter(
        OutboxStore(state.engine),
        t,
        sender="heliowatch@obs.example",
        recipients=["solar@lists.example"],
        list_id="heliowatch alerts <alerts.obs.example>",
        retry_base_s=10,
        **kw,
    )  # type: ignore[arg-type]
    if metrics is not None:
        metrics.watch_outbox(ac.pending)  # as the daemon's wiring does
    return ac


def test_delivery_headers_alternatives_attachments_and_threads(tmp_path: Path, smtp) -> None:
    inbox, ctl = smtp
    png = tmp_path / "occlusion.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 100)
    ac = center(tmp_path, ctl.port)
    ac.raise_alerts(
        [
            Alert(
                "flare_region", "[heliowatch] NOAA 11158: P(>=M) = 0.89", "details", region="NOAA 11158", attachments=(str(png),)
            )
        ],
        now=T0,
    )
    assert ac.deliver(now=T0) == (1, 0)
    (m,) = inbox.messages
    assert m["Subject"] == "[heliowatch] NOAA 11158: P(>=M) = 0.89"
    assert m["List-Id"] == "heliowatch alerts <alerts.obs.example>"
    assert m["Auto-Submitted"] == "auto-generated"  # RFC 3834: vacation responders stay quiet
    assert m["Message-ID"].startswith("<") and m["Date"] and m["From"] == "heliowatch@obs.example"
    assert inbox.envelopes[0] == ("heliowatch@obs.example", ["solar@lists.example"])
    assert m.get_body(("plain",)).get_content().startswith("details")
    assert "<h3>" in m.get_body(("html",)).get_content()
    (att,) = list(m.iter_attachments())
    assert att.get_filename() == "occlusion.png" and att.get_content_type() == "image/png"
    # A follow-up on the same region, in a later window, threads under the first mail.
    later = T0 + dt.timedelta(hours=7)
    ac.raise_alerts([Alert("flare_region", "[heliowatch] NOAA 11158: P(>=M) = 0.95", "more", region="NOAA 11158")], now=later)
    ac.deliver(now=later)
    first_id = str(m["Message-ID"]).strip()
    assert str(inbox.messages[1]["In-Reply-To"]).strip() == first_id == str(inbox.messages[1]["References"]).strip()


def test_dedup_and_rate_limit_per_region_and_condition(tmp_path: Path, smtp) -> None:
    inbox, ctl = smtp
    ac = center(tmp_path, ctl.port, dedup_window_s=3600)
    a = Alert("flare_region", "s", "t", region="NOAA 1")
    assert ac.raise_alerts([a], now=T0) == 1
    assert ac.raise_alerts([a], now=T0 + dt.timedelta(minutes=10)) == 0  # same window: rate-limited
    assert ac.raise_alerts([Alert("flare_region", "s", "t", region="NOAA 2")], now=T0) == 1  # other region
    assert ac.raise_alerts([Alert("new_delta", "s", "t", region="NOAA 1")], now=T0) == 1  # other condition
    ac.deliver(now=T0)
    assert len(inbox.messages) == 3


def test_many_alerts_at_once_make_one_digest(tmp_path: Path, smtp) -> None:
    inbox, ctl = smtp
    ac = center(tmp_path, ctl.port, digest_threshold=4)
    alerts = [Alert("flare_region", f"[heliowatch] NOAA {n}: P = 0.9", f"region {n}", region=f"NOAA {n}") for n in range(5)]
    assert ac.raise_alerts(alerts, now=T0) == 1
    ac.deliver(now=T0)
    (m,) = inbox.messages
    assert m["Subject"] == "[heliowatch] digest: 5 alerts"
    body = m.get_body(("plain",)).get_content()
    assert all(f"NOAA {n}" in body for n in range(5))
    assert ac.raise_alerts(alerts[:2], now=T0) == 0  # digested alerts are de-duplicated too


def test_smtp_outage_grows_the_outbox_then_recovers_exactly_once(tmp_path: Path) -> None:
    port = free_port()
    m = Metrics()
    ac = center(tmp_path, port, metrics=m)
    ac.raise_alerts([Alert("jet", "[heliowatch] jet", "x"), Alert("data_stale", "[heliowatch] stale", "y", key="hmi")], now=T0)
    assert ac.deliver(now=T0) == (0, 2)  # no server listening
    assert ac.pending() == 2
    assert m.registry.get_sample_value("heliowatch_alert_delivery_failures_total", {"kind": "jet", "channel": "mail"}) == 1
    assert m.registry.get_sample_value("heliowatch_alert_outbox_depth") == 2
    assert ac.deliver(now=T0 + dt.timedelta(seconds=5)) == (0, 0)  # backing off: not retried yet
    inbox = Inbox()
    ctl = Controller(inbox, hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        assert ac.deliver(now=T0 + dt.timedelta(seconds=11)) == (2, 0)
        assert ac.deliver(now=T0 + dt.timedelta(hours=1)) == (0, 0)
    finally:
        ctl.stop()
    assert sorted(x["Subject"] for x in inbox.messages) == ["[heliowatch] jet", "[heliowatch] stale"]
    assert ac.pending() == 0
    assert m.registry.get_sample_value("heliowatch_alerts_sent_total", {"kind": "jet", "channel": "mail"}) == 1


def test_restart_with_a_pending_outbox(tmp_path: Path, smtp) -> None:
    inbox, ctl = smtp
    dead = center(tmp_path, free_port())
    dead.raise_alerts([Alert("emergence", "[heliowatch] emergence", "z")], now=T0)
    assert dead.deliver(now=T0) == (0, 1)
    del dead  # the daemon stops (or crashes) with an alert in its outbox
    revived = center(tmp_path, ctl.port)
    assert revived.pending() == 1
    assert revived.deliver(now=T0 + dt.timedelta(minutes=5)) == (1, 0)
    assert [x["Subject"] for x in inbox.messages] == ["[heliowatch] emergence"]


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    c, k = tmp_path / "cert.pem", tmp_path / "key.pem"
    c.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    k.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return c, k


def test_starttls_and_authentication(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    logins: list[str] = []

    def auth(server, session, envelope, mechanism, data):
        ok = isinstance(data, LoginPassword) and data.login == b"heliowatch" and data.password == b"s3cret"
        if ok:
            logins.append(mechanism)
        return AuthResult(success=ok)

    inbox = Inbox()
    ctl = Controller(
        inbox,
        hostname="127.0.0.1",
        port=free_port(),
        tls_context=ctx,
        require_starttls=True,
        authenticator=auth,
        auth_require_tls=True,
    )
    ctl.start()
    try:
        good = center(
            tmp_path, ctl.port, transport={"starttls": True, "username": "heliowatch", "password": "s3cret", "cafile": str(cert)}
        )
        good.raise_alerts([Alert("test", "[heliowatch] tls", "hello")], now=T0)
        assert good.deliver(now=T0) == (1, 0)
        assert logins and inbox.messages[0]["Subject"] == "[heliowatch] tls"
        (tmp_path / "b").mkdir()
        bad = center(
            tmp_path / "b",
            ctl.port,
            transport={"starttls": True, "username": "heliowatch", "password": "wrong", "cafile": str(cert)},
        )
        bad.raise_alerts([Alert("test", "[heliowatch] nope", "x")], now=T0)
        assert bad.deliver(now=T0) == (0, 1) and bad.pending() == 1
    finally:
        ctl.stop()


def test_maildir_delivery_is_exactly_once(tmp_path: Path) -> None:
    state = StateStore(f"sqlite:///{tmp_path / 's.sqlite'}")
    md = tmp_path / "maildir"
    transport = MaildirTransport(md)
    ac = AlertCenter(OutboxStore(state.engine), transport, sender="h@x.example", recipients=["l@x.example"], list_id="l <l.x>")
    ac.raise_alerts([Alert("jet", "[heliowatch] jet", "x")], now=T0)
    (row,) = ac.outbox.due("9999")
    msg = Message("h@x.example", ["l@x.example"], row.subject, row.text, row.html, row.message_id, "l <l.x>", row.kind)
    transport.send(msg)  # delivered, then the daemon "crashes" before recording it
    assert ac.deliver(now=T0) == (1, 0)  # on restart: recorded, not duplicated
    files = list((md / "new").iterdir())
    assert len(files) == 1
    msg = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)
    assert msg["Subject"] == "[heliowatch] jet"


def test_an_outbox_from_before_per_channel_deliveries_still_goes_out(tmp_path: Path, smtp) -> None:
    inbox, ctl = smtp
    db = tmp_path / "state.sqlite"
    old = center(tmp_path, ctl.port)
    old.raise_alerts([Alert("jet", "[heliowatch] waiting", "x"), Alert("emergence", "[heliowatch] already sent", "y")], now=T0)
    with sqlite3.connect(db) as c:  # what an older heliowatch left: the alerts alone, one sent, one pending
        c.execute("DROP TABLE alert_deliveries")
        c.execute("UPDATE alert_outbox SET status = 'sent' WHERE kind = 'emergence'")
    revived = center(tmp_path, ctl.port)
    assert revived.pending() == 1
    assert revived.deliver(now=T0) == (1, 0)
    assert [x["Subject"] for x in inbox.messages] == ["[heliowatch] waiting"]
    assert revived.outbox.counts() == {"sent": 2}


def test_bad_alert_settings_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^alerts\.smtp\.password:"):
        load_config(None, environ={"HELIOWATCH_ALERTS__TRANSPORT": "smtp", "HELIOWATCH_ALERTS__SMTP__USERNAME": "u"})
    with pytest.raises(ConfigError, match=r"^alerts\.recipients:"):
        load_config(None, environ={"HELIOWATCH_ALERTS__RECIPIENTS": '["not an address"]'})
    with pytest.raises(ConfigError, match=r"^alerts\.rules\.flare_region_m:"):
        load_config(None, environ={"HELIOWATCH_ALERTS__RULES__FLARE_REGION_M": "-1"})
    with pytest.raises(ConfigError, match=r"^alerts\.smtp\.port:"):
        load_config(None, environ={"HELIOWATCH_ALERTS__SMTP__PORT": "0"})
    (tmp_path / "pw").write_text("s3cret\n")
    cfg = load_config(None, environ={"HELIOWATCH_ALERTS__SMTP__PASSWORD_FILE": str(tmp_path / "pw")})
    assert cfg.alerts.smtp.password.reveal() == "s3cret" and "s3cret" not in repr(cfg)


def test_cli_alerts_test_through_smtp(tmp_path: Path, smtp) -> None:
    inbox, ctl = smtp
    (tmp_path / "state").mkdir()  # `alerts test` refuses a state directory the daemon never made
    env = {
        "HELIOWATCH_ALERTS__TRANSPORT": "smtp",
        "HELIOWATCH_ALERTS__SMTP__PORT": str(ctl.port),
        "HELIOWATCH_DAEMON__STATE_DIR": str(tmp_path / "state"),
    }
    import os

    p = subprocess.run(
        [sys.executable, "-m", "heliowatch.daemon.cli", "alerts", "test"],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    deadline = time.time() + 5
    while not inbox.messages and time.time() < deadline:
        time.sleep(0.05)
    assert inbox.messages[0]["Subject"] == "[heliowatch] test alert"


def test_rules_for_regions_jets_emergence_and_stale_data() -> None:
    from heliowatch.pipelines.alert_rules import Rules

    r = Rules(jet=0.5, emergence=0.6, data_stale_minutes=60)
    (d,) = r.region_alerts({"mtwilson": "beta-gamma-delta", "noaa_ar": 11158, "confidence": 0.8}, previous_class="beta-gamma")
    assert d.kind == "new_delta" and d.region == "NOAA 11158" and "beta-gamma-delta" in d.subject
    assert r.region_alerts({"mtwilson": "beta-delta", "noaa_ar": 1}, previous_class="beta-delta") == []  # not new
    assert [a.kind for a in r.jet_alerts({"probability": 0.9, "time_utc": "t"})] == ["jet"]
    assert r.jet_alerts({"probability": 0.3}) == []
    assert r.emergence_alerts({"probability": 0.55}) == [] and len(r.emergence_alerts({"probability": 0.7})) == 1
    now = dt.datetime(2024, 5, 10, 12, tzinfo=dt.UTC)
    stale = r.stale_alerts({"hmi.M_720s_nrt": now.timestamp() - 3 * 3600, "aia.lev1_nrt2:304": now.timestamp() - 600}, now)
    assert [a.key for a in stale] == ["hmi.M_720s_nrt"] and "3.0 h" in stale[0].subject
    assert Rules(data_stale_minutes=0).stale_alerts({"x": 0.0}, now) == []
