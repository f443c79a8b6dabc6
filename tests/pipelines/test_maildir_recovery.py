"""Maildir delivery cut off by SIGKILL at each step, then a restart: every alert in ``new/``
exactly once and complete, nothing left in ``tmp/``, the outbox all ``sent``.

The crash is real: a child process delivers the outbox and kills itself with SIGKILL at the
chosen step (before writing, between the write and the rename into ``new/``, after the rename
but before the outbox records it). The restart is :meth:`AlertCenter.recover` then a delivery,
as the daemon does at start.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from heliowatch.daemon.state import StateStore
from heliowatch.pipelines.alerts import Alert, AlertCenter
from heliowatch.pipelines.mail import MaildirTransport
from heliowatch.pipelines.store.outbox import OutboxStore

T0 = dt.datetime(2024, 5, 10, 12, tzinfo=dt.UTC)

#: The child: deliver the outbox, SIGKILLing itself at the step named by argv[3].
CHILD = textwrap.dedent(
    """
    import datetime as dt, os, signal, sys
    from pathlib import Path
    from heliowatch.daemon.state import StateStore
    from heliowatch.pipelines import mail
    from heliowatch.pipelines.alerts import AlertCenter
    from heliowatch.pipelines.store.outbox import OutboxStore

    db, md, step = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    die = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
    outbox = OutboxStore(StateStore(f"sqlite:///{db}").engine)
    if step == "before_write":
        mail.Message.email = die
    elif step == "before_rename":
        mail.os.replace = die
    elif step == "before_commit":
        outbox.sent = die
    center = AlertCenter(outbox, mail.MaildirTransport(md), sender="h@x.example", recipients=["l@x.example"],
                         list_id="l <l.x>", retry_base_s=600)
    center.deliver(now=dt.datetime(2024, 5, 10, 12, tzinfo=dt.UTC))
    """
)


def _center(tmp_path: Path) -> AlertCenter:
    state = StateStore(f"sqlite:///{tmp_path / 'state.sqlite'}")
    return AlertCenter(
        OutboxStore(state.engine),
        MaildirTransport(tmp_path / "maildir"),
        sender="h@x.example",
        recipients=["l@x.example"],
        list_id="l <l.x>",
        retry_base_s=600,
    )


def _crash_at(tmp_path: Path, step: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "state.sqlite"), str(tmp_path / "maildir"), step],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]


def _mails(tmp_path: Path) -> list[email.message.EmailMessage]:
    return [
        email.message_from_bytes(f.read_bytes(), policy=email.policy.default)
        for f in sorted((tmp_path / "maildir" / "new").iterdir())
    ]


@pytest.mark.parametrize("step", ["before_write", "before_rename", "before_commit"])
def test_a_delivery_killed_at_any_step_is_delivered_once_after_the_restart(tmp_path: Path, step: str) -> None:
    first = _center(tmp_path)
    first.raise_alerts([Alert("jet", "[heliowatch] jet at the limb", "a jet, 40 Mm long")], now=T0)
    _crash_at(tmp_path, step)
    tmp = tmp_path / "maildir" / "tmp"
    if step == "before_rename":
        assert [f.name.rpartition(".")[0] for f in tmp.iterdir()]  # the crash left its orphan
    assert first.outbox.counts() == {"pending": 1}  # and the outbox has it undelivered, its attempt claimed

    restarted = _center(tmp_path)
    counts = restarted.recover(now=T0)
    assert counts["orphans_removed"] == (1 if step == "before_rename" else 0)
    assert counts["marked_sent"] == (1 if step == "before_commit" else 0)
    # Well within the 600 s backoff of the claimed attempt: recovery, not the backoff, delivers it.
    restarted.deliver(now=T0 + dt.timedelta(seconds=1))

    mails = _mails(tmp_path)
    assert [m["Subject"] for m in mails] == ["[heliowatch] jet at the limb"]
    assert "a jet, 40 Mm long" in mails[0].get_body(("plain",)).get_content()  # complete, not a cut-off write
    assert list(tmp.iterdir()) == []
    assert restarted.outbox.counts() == {"sent": 1}


def test_recovery_leaves_a_live_writers_file_and_removes_old_or_dead_ones(tmp_path: Path) -> None:
    tmp = tmp_path / "maildir" / "tmp"
    tmp.mkdir(parents=True)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        gone_pid = subprocess.Popen([sys.executable, "-c", "pass"])
        gone_pid.wait()
        live = tmp / f"live@x.{sleeper.pid}"
        old = tmp / f"old@x.{sleeper.pid}"
        gone = tmp / f"gone@x.{gone_pid.pid}"
        mine = tmp / f"mine@x.{os.getpid()}"  # a pid reused across restarts: written before this process existed
        for f in (live, old, gone, mine):
            f.write_bytes(b"Subject: half a mess")
        stamp = T0.timestamp() - 40 * 3600  # past the maildir convention's 36 hours, whoever wrote it
        os.utime(old, (stamp, stamp))
        found = MaildirTransport(tmp_path / "maildir").recover([])
        assert sorted(tmp.iterdir()) == [live]
        assert sorted(found.removed) == ["gone@x", "mine@x", "old@x"]
    finally:
        sleeper.kill()
        sleeper.wait()
