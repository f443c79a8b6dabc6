"""Secrets never reach an output: the password of a database URL is masked everywhere it shows.

The issue's case: ``state.url`` carrying a password (PostgreSQL, as CI provides it) used to be
written in clear into ``outputs/run-summary.json`` and printed by ``heliowatch status``. Here a
real daemon runs on such a URL and every output is searched for the password: the run summary
(and every other file it writes), its stdout and stderr, the log lines, the status page and
``/status.json``, and ``heliowatch status``. The masking helper and the log renderer are checked
on their own too, so a password that reaches a log line through a library or an exception is
masked as well.
"""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import structlog

from heliowatch.daemon.cli import main
from heliowatch.daemon.logs import configure_logging
from heliowatch.daemon.secrets import mask_text, mask_url

PASSWORD = f"s3cr3t-Pa55-{os.getpid()}"


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql+psycopg://hw:pw@db.example:5432/heliowatch", "postgresql+psycopg://hw:***@db.example:5432/heliowatch"),
        ("postgresql://hw:p@ss:w@rd@db/x", "postgresql://hw:***@db/x"),  # '@' and ':' inside the password
        ("postgresql://:pw@db/x", "postgresql://:***@db/x"),
        ("postgresql://u:pw@[::1]:5432/db", "postgresql://u:***@[::1]:5432/db"),
        ("postgresql://hw@db/x", "postgresql://hw@db/x"),  # no password: unchanged
        ("sqlite:////var/lib/heliowatch/state.sqlite", "sqlite:////var/lib/heliowatch/state.sqlite"),
        ("", ""),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_mask_text_masks_every_url_in_a_message() -> None:
    text = "cannot reach postgresql://hw:one@db/x nor https://a:two@hooks.example/p?q=1; see http://docs.example/x"
    assert (
        mask_text(text)
        == "cannot reach postgresql://hw:***@db/x nor https://a:***@hooks.example/p?q=1; see http://docs.example/x"
    )


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_log_lines_mask_url_passwords_whoever_logs_them(fmt: str) -> None:
    buf = io.StringIO()
    configure_logging("info", fmt, stream=buf)
    url = f"postgresql://hw:{PASSWORD}@db/heliowatch"
    try:
        structlog.get_logger("t").info("connecting", url=url)
        logging.getLogger("sqlalchemy.pool").warning("lost connection to %s", url)  # a third-party library
        try:
            raise ConnectionError(f"cannot connect to {url}")
        except ConnectionError:
            structlog.get_logger("t").exception("state_unavailable")  # the traceback's text too
    finally:
        configure_logging("warning", "console", stream=sys.stderr)
    out = buf.getvalue()
    assert "connecting" in out and "lost connection" in out and "ConnectionError" in out
    assert PASSWORD not in out
    assert out.count("hw:***@db") >= 3


def test_one_line_errors_mask_url_passwords(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """Whatever a one-line error quotes (here a URL pasted where a product name belongs) is masked."""
    monkeypatch.chdir(tmp_path)
    bad = f"postgresql://hw:{PASSWORD}@db/x"
    assert main(["products", "--product", bad]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown product 'postgresql://hw:***@db/x'" in err
    assert PASSWORD not in err


# -- a real daemon on a password-carrying state URL --------------------------------------------


@pytest.fixture
def pg_url_with_password(pg_url: str) -> str:
    """CI's PostgreSQL (trust authentication: the password is carried, not checked), with a password in the URL."""
    parts = urlsplit(pg_url)
    host = parts.netloc.rpartition("@")[2]
    with_pw = urlunsplit(parts._replace(netloc=f"{parts.username or 'postgres'}:{PASSWORD}@{host}"))
    # A clean state for this run (the database is shared with the other PostgreSQL tests).
    import sqlalchemy as sa

    from heliowatch.daemon.state import StateStore

    st = StateStore(with_pw)
    with st.engine.begin() as c:
        for t in ("frames", "high_water", "rejects", "processed", "product_state", "product_attempts"):
            c.execute(sa.text(f"DELETE FROM {t}"))
    st.close()
    return with_pw


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read().decode()


def test_no_output_shows_the_state_database_password(pg_url_with_password: str, tiny_archive: Path, tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    port = _free_port()
    env = {
        **os.environ,
        "HELIOWATCH_STATE__URL": pg_url_with_password,
        "HELIOWATCH_DAEMON__STATE_DIR": str(state_dir),
        "HELIOWATCH_METRICS__PORT": str(port),
        "HELIOWATCH_STATUS__ENABLED": "true",
        "HELIOWATCH_JSOC__ENABLED_SOURCES": '["magnetogram"]',
        "HELIOWATCH_MODELS__BACKEND": "torch",  # no ONNX export on this fresh state directory: seconds, not minutes
    }
    cmd = [
        sys.executable,
        "-m",
        "heliowatch.daemon.cli",
        "run",
        "--replay",
        str(tiny_archive),
        "--speed",
        "1200",
        "--keep-running",
    ]
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pages: dict[str, str] = {}
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                doc = json.loads(_get(f"http://127.0.0.1:{port}/status.json"))
            except OSError:
                time.sleep(0.5)
                continue
            if any(s.get("records") for s in doc.get("series", [])):
                pages["/status.json"] = json.dumps(doc)
                pages["/"] = _get(f"http://127.0.0.1:{port}/")
                pages["/metrics"] = _get(f"http://127.0.0.1:{port}/metrics")
                break
            time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    assert set(pages) == {"/status.json", "/", "/metrics"}, err[-2000:]
    for name, text in [("stdout", out), ("stderr", err), *pages.items()]:
        assert PASSWORD not in text, name
    assert "postgres:***@" in out  # the summary names the database, masked
    summary = json.loads((state_dir / "outputs" / "run-summary.json").read_text())
    assert summary["state_url"].startswith("postgresql+psycopg://postgres:***@")
    # Nothing the run wrote holds it: the summary, the metrics file, the ingest log, the products.
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "run-summary.json" for p in written)
    assert not [p for p in written if PASSWORD.encode() in p.read_bytes()]

    status = subprocess.run(
        [sys.executable, "-m", "heliowatch.daemon.cli", "status"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert status.returncode == 0, status.stderr
    assert PASSWORD not in status.stdout + status.stderr
    doc = json.loads(status.stdout)
    assert doc["records_per_series"]["hmi.M_720s_nrt"] >= 1  # it did read the password-protected database
    assert doc["last_run"]["state_url"] == summary["state_url"]


def test_status_masks_a_password_left_by_an_older_summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """A run-summary.json written before the fix still holds the password: status shows it masked."""
    from heliowatch.daemon.state import StateStore

    state_dir = tmp_path / "state"
    (state_dir / "outputs").mkdir(parents=True)
    StateStore(f"sqlite:///{state_dir / 'state.sqlite'}").close()
    old = {
        "started_utc": "2024-05-10T00:00:00Z",
        "finished_utc": "2024-05-10T01:00:00Z",
        "polls": 1,
        "ingested": {},
        "skipped_quality": {},
        "rejected": {},
        "processed": {},
        "product_failures": {},
        "state_url": f"postgresql://hw:{PASSWORD}@db/heliowatch",
    }
    (state_dir / "outputs" / "run-summary.json").write_text(json.dumps(old))
    monkeypatch.setenv("HELIOWATCH_DAEMON__STATE_DIR", str(state_dir))
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert PASSWORD not in out
    assert json.loads(out)["last_run"]["state_url"] == "postgresql://hw:***@db/heliowatch"
