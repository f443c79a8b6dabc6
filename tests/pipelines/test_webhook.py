"""The webhook alert channel against a real HTTP receiver on loopback: delivery, a receiver
outage and recovery exactly once (counted by Idempotency-Key), permanent refusals, the crash
window, mail and webhook retried independently, the Slack format, and secrets kept out of the
log, the outbox and the output."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import os
import socket
import subprocess
import sys
import threading
from collections import Counter
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import structlog

from heliowatch.daemon.config import load_config
from heliowatch.daemon.errors import ConfigError
from heliowatch.daemon.logs import configure_logging
from heliowatch.daemon.metrics import Metrics
from heliowatch.daemon.state import StateStore
from heliowatch.daemon.wiring import alert_center
from heliowatch.pipelines.alerts import Alert, AlertCenter
from heliowatch.pipelines.mail import MaildirTransport
from heliowatch.pipelines.store.outbox import OutboxStore
from heliowatch.pipelines.webhook import WebhookTransport

T0 = dt.datetime(2024, 5, 10, 12, tzinfo=dt.UTC)
TOKEN = "T0001/B0002/xoxb-s3cr3t-t0ken"  # in the URL path, as Slack's incoming webhooks have it
BEARER = "Bearer hunter2-credential"


def _no_nan(value: str) -> float:
    raise AssertionError(f"not strict JSON: {value}")


class Receiver:
    """A webhook receiver on 127.0.0.1 that keeps every POST and answers ``status``."""

    def __init__(self) -> None:
        self.posts: list[tuple[Message, dict]] = []  # headers (case-insensitive), JSON body
        self.requests: list[str] = []  # "METHOD path" of everything that arrived
        self.status = 200
        self.port = 0
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        rx = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                rx.requests.append(f"POST {self.path}")
                rx.posts.append((self.headers, json.loads(body, parse_constant=_no_nan)))
                self.send_response(rx.status)
                if rx.status in (301, 302, 307, 308):
                    self.send_header("Location", "/elsewhere")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def do_GET(self) -> None:
                rx.requests.append(f"GET {self.path}")
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        # The same port again after an outage: the daemon's configured URL does not change.
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()
        self._server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/{TOKEN}"

    def keys(self) -> Counter[str]:
        return Counter(h["Idempotency-Key"] for h, _ in self.posts)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # urllib honours *_proxy variables; the receiver is on loopback.
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def receiver():
    rx = Receiver().start()
    yield rx
    if rx._server is not None:
        rx.stop()


def center(tmp_path: Path, url: str, *, mail: bool = False, fmt: str = "generic", **kw: object) -> AlertCenter:
    state = StateStore(f"sqlite:///{tmp_path / 'state.sqlite'}")
    hook = WebhookTransport(url, format=fmt, timeout_s=3, headers={"Authorization": BEARER})
    ac = AlertCenter(
        OutboxStore(state.engine),
        MaildirTransport(tmp_path / "maildir") if mail else None,
        webhook=hook,
        sender="heliowatch@obs.example",
        recipients=["solar@lists.example"],
        list_id="heliowatch alerts <alerts.obs.example>",
        retry_base_s=10,
        **kw,
    )  # type: ignore[arg-type]
    return ac


def test_delivery_then_an_outage_then_recovery_exactly_once(tmp_path: Path, receiver: Receiver) -> None:
    m = Metrics()
    ac = center(tmp_path, receiver.url, observer=m)
    m.watch_outbox(ac.pending)
    ac.raise_alerts(
        [Alert("jet", "[heliowatch] jet at the limb", "P = 0.93", attachments=(str(tmp_path / "strip.gif"),))], now=T0
    )
    assert ac.deliver(now=T0) == (1, 0)
    ((headers, body),) = receiver.posts
    assert headers["Content-Type"].startswith("application/json") and headers["Authorization"] == BEARER
    assert body["kind"] == "jet" and body["subject"] == "[heliowatch] jet at the limb" and body["text"] == "P = 0.93"
    assert body["id"] == headers["Idempotency-Key"] and body["attachments"] == ["strip.gif"] and body["schema_version"] == 1

    receiver.stop()  # the outage: alerts raised now wait in the outbox
    t1 = T0 + dt.timedelta(minutes=1)
    ac.raise_alerts(
        [
            Alert("flare_region", "[heliowatch] NOAA 11158: P(>=M) = 0.9", "x", region="NOAA 11158"),
            Alert("emergence", "[heliowatch] e", "y"),
        ],
        now=t1,
    )
    assert ac.deliver(now=t1) == (0, 2)
    assert ac.pending() == 2 and m.registry.get_sample_value("heliowatch_alert_outbox_depth") == 2
    assert (
        m.registry.get_sample_value("heliowatch_alert_delivery_failures_total", {"kind": "emergence", "channel": "webhook"}) == 1
    )
    assert ac.deliver(now=t1 + dt.timedelta(seconds=5)) == (0, 0)  # backing off
    assert ac.deliver(now=t1 + dt.timedelta(seconds=11)) == (0, 2)  # still down: tried again, kept

    receiver.start()  # back, on the same port
    assert ac.deliver(now=t1 + dt.timedelta(minutes=5)) == (2, 0)
    assert ac.deliver(now=t1 + dt.timedelta(hours=2)) == (0, 0)
    assert ac.pending() == 0
    keys = receiver.keys()
    assert len(keys) == 3 and set(keys.values()) == {1}  # every alert once, none twice
    assert sorted(b["kind"] for _, b in receiver.posts) == ["emergence", "flare_region", "jet"]
    assert m.registry.get_sample_value("heliowatch_alerts_sent_total", {"kind": "emergence", "channel": "webhook"}) == 1
    assert {r["status"] for r in ac.outbox.recent()} == {"sent"}


@pytest.mark.parametrize(
    ("status", "refused"),
    [(400, True), (403, True), (404, True), (410, True), (302, True), (408, False), (429, False), (500, False), (503, False)],
)
def test_a_refusal_is_final_and_a_hiccup_is_retried(tmp_path: Path, receiver: Receiver, status: int, refused: bool) -> None:
    m = Metrics()
    ac = center(tmp_path, receiver.url, observer=m)
    receiver.status = status
    ac.raise_alerts([Alert("new_delta", "[heliowatch] NOAA 1 is delta", "x", region="NOAA 1")], now=T0)
    assert ac.deliver(now=T0) == (0, 1)
    receiver.status = 200
    for hours in (1, 5, 24, 72):
        ac.deliver(now=T0 + dt.timedelta(hours=hours))
    if refused:
        assert len(receiver.posts) == 1 and ac.pending() == 0  # asked once, never again
        assert receiver.requests == [f"POST /hooks/{TOKEN}"]  # a redirect is not followed (as a GET)
        assert m.registry.get_sample_value("heliowatch_alerts_refused_total", {"kind": "new_delta", "channel": "webhook"}) == 1
        (row,) = ac.outbox.recent()
        assert row["status"] == "refused" and f"HTTP {status}" in row["last_error"]
    else:
        assert len(receiver.posts) == 2 and len(receiver.keys()) == 1 and ac.pending() == 0
        assert ac.outbox.recent()[0]["status"] == "sent"


def test_a_crash_between_the_answer_and_the_commit_sends_one_duplicate_with_the_same_key(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    ac = center(tmp_path, receiver.url)
    ac.raise_alerts([Alert("jet", "[heliowatch] jet", "x")], now=T0)

    def crash(*args: object, **kwargs: object) -> None:
        raise SystemExit("killed after the receiver answered, before the outbox committed")

    monkeypatch.setattr(ac.outbox, "sent", crash)
    with pytest.raises(SystemExit):
        ac.deliver(now=T0)
    assert len(receiver.posts) == 1
    revived = center(tmp_path, receiver.url)  # the daemon restarts over the same state database
    assert revived.deliver(now=T0) == (0, 0)  # the attempt was recorded: no resend at start-up
    assert revived.deliver(now=T0 + dt.timedelta(seconds=11)) == (1, 0)
    assert revived.deliver(now=T0 + dt.timedelta(hours=3)) == (0, 0)
    assert len(receiver.posts) == 2 and len(receiver.keys()) == 1  # one duplicate, same Idempotency-Key


def test_mail_and_webhook_are_retried_independently(tmp_path: Path, receiver: Receiver) -> None:
    receiver.stop()
    ac = center(tmp_path, receiver.url, mail=True)
    ac.raise_alerts([Alert("jet", "[heliowatch] jet", "x")], now=T0)
    assert ac.deliver(now=T0) == (1, 1)  # the mail went out; the webhook waits
    assert len(list((tmp_path / "maildir" / "new").iterdir())) == 1
    assert ac.outbox.recent()[0]["status"] == "pending"
    receiver.start()
    assert ac.deliver(now=T0 + dt.timedelta(minutes=1)) == (1, 0)
    assert len(list((tmp_path / "maildir" / "new").iterdir())) == 1  # the mail was not sent again
    assert len(receiver.posts) == 1 and ac.pending() == 0
    states = ac.outbox.delivery_states(1)
    assert {ch: s["status"] for ch, s in states.items()} == {"mail": "sent", "webhook": "sent"}
    assert states["mail"]["attempts"] == 1 and states["webhook"]["attempts"] == 2


def test_slack_format_and_one_digest_for_many_alerts(tmp_path: Path, receiver: Receiver) -> None:
    ac = center(tmp_path, receiver.url, fmt="slack", digest_threshold=4)
    ac.raise_alerts(
        [Alert("flare_region", f"[heliowatch] NOAA {n}: P = 0.9", f"region {n}", region=f"NOAA {n}") for n in range(5)], now=T0
    )
    assert ac.deliver(now=T0) == (1, 0)
    ((_, body),) = receiver.posts
    assert list(body) == ["text"]  # what Slack, Mattermost and Matrix hookshot read
    assert body["text"].startswith("[heliowatch] digest: 5 alerts\n\n") and all(f"NOAA {n}" in body["text"] for n in range(5))


@pytest.fixture
def json_log() -> io.StringIO:
    """The daemon's real JSON log renderer, into a buffer; restored afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    buf = io.StringIO()
    configure_logging("debug", "json", stream=buf)
    yield buf
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


def test_secrets_stay_out_of_logs_errors_and_reprs(tmp_path: Path, receiver: Receiver, json_log: io.StringIO) -> None:
    ac = center(tmp_path, receiver.url)
    ac.raise_alerts([Alert("jet", "[heliowatch] jet", "x")], now=T0)
    ac.deliver(now=T0)  # delivered
    receiver.stop()
    ac.raise_alerts([Alert("emergence", "[heliowatch] e", "y")], now=T0)
    ac.deliver(now=T0)  # connection refused
    receiver.start()
    receiver.status = 401
    ac.raise_alerts([Alert("test", "[heliowatch] t", "z")], now=T0)
    ac.deliver(now=T0 + dt.timedelta(minutes=1))  # the retry is refused, and so is the new one
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    events = Counter(e["event"] for e in lines)
    assert events["alert_sent"] == 1 and events["alert_delivery_failed"] == 1 and events["alert_refused"] == 2
    assert all(e["to"] == f"webhook 127.0.0.1:{receiver.port}" for e in lines if e["event"] != "alert_raised")
    stored = json.dumps(ac.outbox.recent())
    for secret in ("s3cr3t", "hunter2", "/hooks/"):
        assert secret not in json_log.getvalue() and secret not in stored
        assert secret not in repr(ac.webhook) and secret not in repr(ac.__dict__)


def test_webhook_settings(tmp_path: Path) -> None:
    (tmp_path / "url").write_text(f"https://hooks.slack.example/services/{TOKEN}\n")
    (tmp_path / "auth").write_text(BEARER + "\n")
    cfg = load_config(
        None,
        environ={
            "HELIOWATCH_ALERTS__WEBHOOK__ENABLED": "true",
            "HELIOWATCH_ALERTS__WEBHOOK__URL_FILE": str(tmp_path / "url"),
            "HELIOWATCH_ALERTS__WEBHOOK__HEADER": "Authorization",
            "HELIOWATCH_ALERTS__WEBHOOK__HEADER_VALUE_FILE": str(tmp_path / "auth"),
            "HELIOWATCH_DAEMON__STATE_DIR": str(tmp_path / "state"),
        },
    )
    w = cfg.alerts.webhook
    assert w.url.reveal().endswith(TOKEN) and w.header_value.reveal() == BEARER
    assert "s3cr3t" not in repr(cfg) and "hunter2" not in repr(cfg)
    cfg.daemon.state_dir.mkdir()
    st = StateStore(cfg.state_url)
    try:
        ac = alert_center(cfg, st)
        assert ac is not None and ac.channels == ("mail", "webhook") and ac.webhook is not None
        assert ac.webhook.host == "hooks.slack.example" and "s3cr3t" not in repr(ac.webhook)
    finally:
        st.close()
    bad = {
        "HELIOWATCH_ALERTS__WEBHOOK__ENABLED": "true",
    }
    with pytest.raises(ConfigError, match=r"^alerts\.webhook\.url: needed"):
        load_config(None, environ=bad)
    with pytest.raises(ConfigError, match=r"^alerts\.webhook\.url: must be an http") as e:
        load_config(None, environ={**bad, "HELIOWATCH_ALERTS__WEBHOOK__URL": f"ftp://x/{TOKEN}"})
    assert "s3cr3t" not in str(e.value)
    with pytest.raises(ConfigError, match=r"^alerts\.webhook\.header_value: header 'Authorization' needs a value"):
        load_config(
            None,
            environ={
                **bad,
                "HELIOWATCH_ALERTS__WEBHOOK__URL": "http://127.0.0.1:9/x",
                "HELIOWATCH_ALERTS__WEBHOOK__HEADER": "Authorization",
            },
        )
    with pytest.raises(ConfigError, match=r"^alerts\.webhook\.format: must be one of"):
        load_config(None, environ={"HELIOWATCH_ALERTS__WEBHOOK__FORMAT": "teams"})


def test_cli_alerts_test_through_the_webhook_alone(tmp_path: Path, receiver: Receiver) -> None:
    (tmp_path / "state").mkdir()  # as the daemon leaves it
    env = {
        **{k: v for k, v in os.environ.items() if "proxy" not in k.lower()},
        "HELIOWATCH_ALERTS__TRANSPORT": "none",
        "HELIOWATCH_ALERTS__WEBHOOK__ENABLED": "true",
        "HELIOWATCH_ALERTS__WEBHOOK__URL": receiver.url,
        "HELIOWATCH_DAEMON__STATE_DIR": str(tmp_path / "state"),
    }
    p = subprocess.run(
        [sys.executable, "-m", "heliowatch.daemon.cli", "alerts", "test"], capture_output=True, text=True, env=env, timeout=120
    )
    assert p.returncode == 0, p.stderr
    assert f"via webhook (127.0.0.1:{receiver.port})" in p.stdout
    assert "s3cr3t" not in p.stdout + p.stderr
    ((_, body),) = receiver.posts
    assert body["subject"] == "[heliowatch] test alert"
    assert not (tmp_path / "state" / "maildir").exists()  # transport = "none": no mail


def test_a_receiver_that_hangs_is_a_timeout_not_a_stuck_daemon(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)  # accepts the connection, never answers
        state = StateStore(f"sqlite:///{tmp_path / 'state.sqlite'}")
        hook = WebhookTransport(f"http://127.0.0.1:{s.getsockname()[1]}/x", timeout_s=1)
        ac = AlertCenter(
            OutboxStore(state.engine), None, webhook=hook, sender="h@x.example", recipients=["l@x.example"], list_id="l"
        )
        ac.raise_alerts([Alert("jet", "[heliowatch] jet", "x")], now=T0)
        assert ac.deliver(now=T0) == (0, 1) and ac.pending() == 1
        assert "timed out" in ac.outbox.recent()[0]["last_error"]
