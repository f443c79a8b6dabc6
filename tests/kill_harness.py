"""Crash consistency under random SIGKILL: the harness of ``tests/e2e/test_kill.py`` and ``bench/kill_bench.py``.

One uninterrupted reference run of ``heliowatch run --replay <archive> --once``, then trials:
each starts the same run in a fresh state directory, kills it with SIGKILL at a random moment
(a seeded RNG, moments spread over the first three quarters of the reference's duration) and
restarts it, unkilled, until it exits 0. What each trial's state holds is then compared with the reference:

- products: ``(product, key)`` with a hash of the payload (lost, duplicated, changed);
- processed keys: ``(product, record)``;
- frames: ``(series, record, segment)`` rows with their digest, and the files under ``frames/``;
- alerts: outbox rows by natural key (``dedup_key``), each delivery's final status, and the
  maildir's messages by Message-ID (each sent alert once, nothing else; nothing left in
  ``maildir/tmp``);
- the verification ledger: ``(issue time, scope, level)`` with the probability.

Every run shares one models directory (exported by a first, control run, which must compare
clean with the reference) so a trial's time is spent on the replay rather than on ONNX exports.
"""

from __future__ import annotations

import datetime as dt
import email.parser
import email.policy
import hashlib
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "Comparison",
    "Harness",
    "Run",
    "SmtpSink",
    "Snapshot",
    "Trial",
    "build_archive",
    "compare",
    "env_for",
    "kill_moments",
    "pending_mail",
    "run_harness",
    "run_to_completion",
    "snapshot",
    "trial",
]

#: The command every run executes (the archive's path is appended after ``--replay``).
CLI = [sys.executable, "-m", "heliowatch.daemon.cli"]
#: A run that is not done in this long is a hang, not a slow run.
RUN_TIMEOUT_S = 600.0
#: Restarts after the kill before a trial is declared stuck.
MAX_RESTARTS = 6
#: The first retry delay (s) of the SMTP runs: a claimed attempt cut off by a kill is resent after it.
SMTP_RETRY_S = 1.0


def build_archive(root: Path, *, disks: int = 3) -> Path:
    """A small replay archive: ``disks`` synthetic full disks (512x512, a beta and an alpha region,
    12 min apart, ending at the demo's real SHARP of HARP 377) and the demo's SHARPs, flare events
    and SRS files, so the regions, flares and emergence products and their alerts all have work."""
    from heliowatch.models.synthetic.fitsout import write_fits
    from heliowatch.models.synthetic.magnetogram import RegionSpec, synth_magnetogram
    from heliowatch.pipelines.standin.archive import demo_archive_path

    demo = demo_archive_path()
    end = dt.datetime(2011, 2, 15, 2, 0, tzinfo=dt.UTC)
    for k in range(disks):
        t = end - dt.timedelta(minutes=12 * (disks - 1 - k))
        data, header, _ = synth_magnetogram(
            t, [RegionSpec("beta", -20.0, 12.0), RegionSpec("alpha", 15.0, -30.0)], size=512, seed=5, noise_seed=k
        )
        stem = f"hmi.M_720s_nrt.{header['T_REC'].replace('.', '').replace(':', '')}.3"
        write_fits(root / "magnetogram" / f"{stem}.magnetogram.fits", data, header)
    for sub in ("sharp", "events", "srs"):
        shutil.copytree(demo / sub, root / sub)
    shutil.copy(demo / "standin.toml", root / "standin.toml")
    return root


def env_for(state: Path, models: Path, *, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of one run: its own state directory (maildir and outputs inside), the shared
    models, the metrics on a free port, maildir alerts with a region rule low enough that the
    synthetic regions raise alerts; ``extra`` last (e.g. the sources)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELIOWATCH_") or k in ("HELIOWATCH_SHARED_DATA",)}
    env.update(
        {
            "HELIOWATCH_DAEMON__STATE_DIR": str(state),
            "HELIOWATCH_MODELS__EXPORT_DIR": str(models),
            "HELIOWATCH_METRICS__PORT": "0",
            "HELIOWATCH_ALERTS__TRANSPORT": "maildir",
            "HELIOWATCH_ALERTS__RULES__FLARE_REGION_M": "0.0",
            "HELIOWATCH_LOGGING__FORMAT": "json",
        }
    )
    env.update(extra or {})
    return env


def _start(archive: Path, state: Path, models: Path, log: Path, extra: dict[str, str] | None) -> subprocess.Popen[bytes]:
    state.mkdir(parents=True, exist_ok=True)
    # stderr (the log) into a file: a pipe nobody reads would stall the daemon once full.
    with log.open("ab") as err:
        return subprocess.Popen(
            [*CLI, "run", "--replay", str(archive), "--once"],
            cwd=state,
            env=env_for(state, models, extra=extra),
            stdout=subprocess.DEVNULL,
            stderr=err,
        )


def _started(p: subprocess.Popen[bytes], log: Path, offset: int, deadline: float) -> float | None:
    """Wait for the run's ``starting`` log line (past ``offset`` of its log); its monotonic time, or
    None when the process ended first."""
    while time.monotonic() < deadline:
        with log.open("rb") as f:
            f.seek(offset)
            if b'"event": "starting"' in f.read():
                return time.monotonic()
        if p.poll() is not None:
            return None
        time.sleep(0.01)
    return None


@dataclass
class Run:
    """One uninterrupted run: wall time and the part of it after start-up (the ``starting`` log line)."""

    seconds: float
    working_s: float


def run_to_completion(
    archive: Path, state: Path, models: Path, *, extra: dict[str, str] | None = None, log: Path | None = None
) -> Run:
    """One uninterrupted run.

    Raises
    ------
    RuntimeError
        When it exits non-zero.
    """
    log = log or state.parent / f"{state.name}.log"
    log.touch()
    offset = log.stat().st_size
    t0 = time.monotonic()
    p = _start(archive, state, models, log, extra)
    t_start = _started(p, log, offset, t0 + RUN_TIMEOUT_S)
    rc = p.wait(timeout=RUN_TIMEOUT_S)
    end = time.monotonic()
    if rc != 0:
        msg = f"run in {state} exited {rc}: {log.read_text(errors='replace')[-3000:]}"
        raise RuntimeError(msg)
    return Run(end - t0, end - (t_start or t0))


@dataclass
class Trial:
    """One killed-and-restarted run."""

    index: int
    kill_at_s: float
    killed: bool
    restarts: int
    seconds: float
    state: Path
    comparison: Comparison | None = None


def trial(
    index: int,
    archive: Path,
    state: Path,
    models: Path,
    *,
    kill_at_s: float,
    extra: dict[str, str] | None = None,
    until_delivered: bool = False,
) -> Trial:
    """Start a run, SIGKILL it ``kill_at_s`` seconds after its ``starting`` log line (if it is still
    running), then restart it, unkilled, until it exits 0 (and, with ``until_delivered``, until
    its outbox has no mail left to deliver: SMTP's resend waits out the backoff of the attempt
    the kill cut off).

    The moment counts from the log line, not from the process start: the seconds of imports
    before it write nothing, and the time they take varies with the machine's load.

    Raises
    ------
    RuntimeError
        When the restarts never complete (a wedged state: exactly what the harness is for).
    """
    log = state.parent / f"{state.name}.log"
    log.touch()
    offset = log.stat().st_size
    t0 = time.monotonic()
    p = _start(archive, state, models, log, extra)
    t_start = _started(p, log, offset, t0 + RUN_TIMEOUT_S)
    killed = False
    if t_start is not None:
        try:
            p.wait(timeout=max(0.0, t_start + kill_at_s - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGKILL)
            killed = True
    p.wait(timeout=RUN_TIMEOUT_S)
    with log.open("a") as f:
        f.write(f"--- harness: {'SIGKILL' if killed else 'ended before the kill'} at {kill_at_s:.2f} s\n")
    restarts = 0
    rc = None if killed else p.returncode
    while rc != 0 or (until_delivered and pending_mail(state)):
        if rc == 0:
            time.sleep(SMTP_RETRY_S + 0.2)
        if restarts >= MAX_RESTARTS:
            msg = f"trial {index}: still failing after {restarts} restarts: {log.read_text(errors='replace')[-3000:]}"
            raise RuntimeError(msg)
        restarts += 1
        rc = _start(archive, state, models, log, extra).wait(timeout=RUN_TIMEOUT_S)
        with log.open("a") as f:
            f.write(f"--- harness: restart {restarts} exited {rc}\n")
    return Trial(index, kill_at_s, killed, restarts, time.monotonic() - t0, state)


# -- what a state holds ---------------------------------------------------------------------


def _digest(text: str, state: Path) -> str:
    """A short hash of ``text`` with the run's own state directory taken out (payloads name their files)."""
    for root in {str(state.resolve()), str(state)}:
        text = text.replace(root, "<state>")
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class Snapshot:
    """What one state directory holds, as multisets of natural keys (a count above 1 is a duplicate)."""

    products: Counter[tuple[str, str]] = field(default_factory=Counter)
    payloads: dict[tuple[str, str], str] = field(default_factory=dict)
    processed: Counter[tuple[str, str]] = field(default_factory=Counter)
    frames: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    frame_digests: dict[tuple[str, str, str], str] = field(default_factory=dict)
    frame_files: Counter[str] = field(default_factory=Counter)
    alerts: Counter[str] = field(default_factory=Counter)
    alert_texts: dict[str, str] = field(default_factory=dict)
    deliveries: dict[tuple[str, str], str] = field(default_factory=dict)
    ledger: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    ledger_values: dict[tuple[str, str, str], str] = field(default_factory=dict)
    #: Maildir messages per alert (by the outbox's Message-ID); unknown Message-IDs under ``?``.
    mail: Counter[str] = field(default_factory=Counter)
    stray: list[str] = field(default_factory=list)


def pending_mail(state: Path) -> int:
    """Mail deliveries still pending in a state's outbox."""
    with sqlite3.connect(state / "state.sqlite") as c:
        q = "SELECT COUNT(*) FROM alert_deliveries WHERE channel = 'mail' AND status = 'pending'"
        return int(c.execute(q).fetchone()[0])


def snapshot(state: Path, *, inbox: Counter[str] | None = None) -> Snapshot:
    """Read a state directory: its database, its frames and its maildir (or, for SMTP runs, what
    ``inbox`` received: messages per Message-ID)."""
    s = Snapshot()
    with sqlite3.connect(state / "state.sqlite") as c:
        for product, key, payload in c.execute("SELECT product, key, payload FROM products"):
            s.products[(product, key)] += 1
            s.payloads[(product, key)] = _digest(payload, state)
        for product, key in c.execute("SELECT product, key FROM processed"):
            s.processed[(product, key)] += 1
        for series, record, segment, sha, path in c.execute("SELECT series, record, segment, sha256, path FROM frames"):
            s.frames[(series, record, segment)] += 1
            s.frame_digests[(series, record, segment)] = sha
            # A row whose file is gone or differs is a frame lost, whatever the row says.
            p = Path(path)
            if not p.is_file() or hashlib.sha256(p.read_bytes()).hexdigest() != sha:
                s.frame_digests[(series, record, segment)] = "missing-or-corrupt"
        by_id: dict[str, str] = {}
        rows = c.execute("SELECT id, dedup_key, kind, region, subject, text, message_id, status FROM alert_outbox")
        for _id, key, kind, region, subject, text, message_id, status in rows:
            s.alerts[key] += 1
            s.alert_texts[key] = _digest(f"{kind}|{region}|{subject}|{text}|{status}", state)
            by_id[message_id.strip("<>")] = key
        q = "SELECT o.dedup_key, d.channel, d.status FROM alert_deliveries d JOIN alert_outbox o ON o.id = d.outbox_id"
        for key, channel, status in c.execute(q):
            s.deliveries[(key, channel)] = status
        for issue, scope, level, p_ in c.execute("SELECT issue_time, scope, level, p FROM flare_forecasts"):
            s.ledger[(issue, scope, level)] += 1
            s.ledger_values[(issue, scope, level)] = f"{p_:.12g}"
    frames_dir = state / "frames"
    for f in frames_dir.rglob("*") if frames_dir.is_dir() else ():
        if f.is_file():
            rel = str(f.relative_to(frames_dir))
            # A download in flight is a ``.part``: one left after the restart is debris of the kill.
            if ".part" in f.name:
                s.stray.append(f"frames/{rel}")
            else:
                s.frame_files[rel] += 1
    if inbox is not None:
        for mid, key in by_id.items():
            if inbox[mid]:
                s.mail[key] += inbox[mid]
        return s
    maildir = state / "maildir"
    parser = email.parser.BytesParser(policy=email.policy.default)
    for sub in ("new", "cur"):
        for f in sorted((maildir / sub).glob("*")) if (maildir / sub).is_dir() else ():
            with f.open("rb") as fh:
                # A long Message-ID is folded onto a second line: its whitespace is not part of it.
                mid = "".join(str(parser.parse(fh, headersonly=True)["Message-ID"] or "").split()).strip("<>")
            s.mail[by_id.get(mid, "?")] += 1
    tmp = maildir / "tmp"
    s.stray += [f"maildir/tmp/{f.name}" for f in sorted(tmp.glob("*"))] if tmp.is_dir() else []
    return s


@dataclass
class Comparison:
    """Lost and duplicated counts of one trial against the reference, per kind of thing."""

    lost: dict[str, int]
    duplicated: dict[str, int]
    changed: dict[str, int]
    stray: list[str]
    examples: list[str]

    @property
    def total_lost(self) -> int:
        """Everything the reference has that the trial lacks."""
        return sum(self.lost.values())

    @property
    def total_duplicated(self) -> int:
        """Everything the trial has more often than the reference."""
        return sum(self.duplicated.values())

    @property
    def total_changed(self) -> int:
        """Things present in both whose content differs."""
        return sum(self.changed.values())

    def clean(self) -> bool:
        """Nothing lost, duplicated, changed or left behind."""
        return not (self.total_lost or self.total_duplicated or self.total_changed or self.stray)

    def line(self) -> str:
        """One line of figures."""

        def fmt(d: dict[str, int]) -> str:
            return " ".join(f"{k}={v}" for k, v in d.items() if v) or "0"

        return (
            f"lost {self.total_lost} ({fmt(self.lost)}), duplicated {self.total_duplicated} ({fmt(self.duplicated)}), "
            f"changed {self.total_changed} ({fmt(self.changed)}), stray files {len(self.stray)}"
        )


def _diff(ref: Counter[Any], got: Counter[Any]) -> tuple[int, int, list[str]]:
    """(lost, duplicated, examples): keys missing or fewer; keys extra or more often."""
    lost = ref - got
    dup = got - ref
    examples = [f"lost {k}" for k in list(lost)[:3]] + [f"extra {k}" for k in list(dup)[:3]]
    return sum(lost.values()), sum(dup.values()), examples


def _changed(ref: dict[Any, str], got: dict[Any, str]) -> tuple[int, list[str]]:
    keys = [k for k in ref if k in got and ref[k] != got[k]]
    return len(keys), [f"changed {k}" for k in keys[:3]]


def compare(ref: Snapshot, got: Snapshot) -> Comparison:
    """Lost, duplicated and changed things of ``got`` against ``ref``."""
    lost: dict[str, int] = {}
    dup: dict[str, int] = {}
    changed: dict[str, int] = {}
    examples: list[str] = []
    pairs: Iterable[tuple[str, Counter[Any], Counter[Any]]] = (
        ("products", ref.products, got.products),
        ("processed", ref.processed, got.processed),
        ("frames", ref.frames, got.frames),
        ("frame_files", ref.frame_files, got.frame_files),
        ("alerts", ref.alerts, got.alerts),
        ("ledger", ref.ledger, got.ledger),
        ("mail", ref.mail, got.mail),
    )
    for name, r, g in pairs:
        lost[name], dup[name], ex = _diff(r, g)
        examples += [f"{name}: {e}" for e in ex]
    # A delivery not sent in the trial that the reference sent is a lost message, even with the alert queued.
    ref_d = Counter(k for k, v in ref.deliveries.items() if v == "sent")
    got_d = Counter(k for k, v in got.deliveries.items() if v == "sent")
    lost["deliveries"], dup["deliveries"], ex = _diff(ref_d, got_d)
    examples += [f"deliveries: {e}" for e in ex]
    for name, r_, g_ in (
        ("products", ref.payloads, got.payloads),
        ("frames", ref.frame_digests, got.frame_digests),
        ("alerts", ref.alert_texts, got.alert_texts),
        ("ledger", ref.ledger_values, got.ledger_values),
    ):
        changed[name], ex = _changed(r_, g_)
        examples += [f"{name}: {e}" for e in ex]
    return Comparison(lost, dup, changed, list(got.stray), examples)


#: The share of the reference run's working time the kill moments are spread over.
KILL_SPAN = 0.75


def kill_moments(n: int, duration_s: float, *, seed: int) -> list[float]:
    """``n`` kill moments spread over ``(0, duration_s)``: one uniform draw in each of ``n`` equal
    slices (stratified), so even a few trials cover start-up, ingest, products and delivery."""
    rng = random.Random(seed)
    return [duration_s * (i + rng.uniform(0.02, 0.98)) / n for i in range(n)]


class SmtpSink:
    """An SMTP server on loopback (aiosmtpd) counting the messages it accepts per Message-ID."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.received: Counter[str] = Counter()
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        self.controller = Controller(self, hostname="127.0.0.1", port=port)
        self.port = port

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # aiosmtpd's handler hook
        """Count one accepted message."""
        msg = email.parser.BytesParser(policy=email.policy.default).parsebytes(envelope.content, headersonly=True)
        self.received["".join(str(msg["Message-ID"] or "").split()).strip("<>")] += 1
        return "250 OK"

    def __enter__(self) -> SmtpSink:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


@dataclass
class Harness:
    """What :func:`run_harness` measured."""

    reference: Snapshot
    reference_run: Run
    trials: list[Trial]

    @property
    def lost(self) -> int:
        """Everything lost, all trials together."""
        return sum(t.comparison.total_lost for t in self.trials if t.comparison is not None)

    @property
    def duplicated(self) -> int:
        """Everything duplicated, all trials together."""
        return sum(t.comparison.total_duplicated for t in self.trials if t.comparison is not None)


def run_harness(
    work: Path,
    *,
    trials: int,
    seed: int,
    archive: str = "synthetic",
    disks: int = 3,
    transport: str = "maildir",
    say: Callable[[str], None] = print,
) -> Harness:
    """The whole harness in ``work``: the archive, a control run, the reference, then ``trials``
    killed-and-restarted trials, each compared with the reference (one line each through ``say``).

    ``archive`` is ``synthetic`` (:func:`build_archive` with ``disks`` full disks; magnetogram and
    SHARP sources) or ``demo`` (the bundled demo archive, every source: the issue's experiment).
    ``transport`` is ``maildir`` or ``smtp`` (to an in-process server counting Message-IDs; a
    trial is then done once its outbox is delivered, see :func:`trial`).

    Raises
    ------
    RuntimeError
        When the control and the reference differ, or a trial never completes.
    """
    if archive == "demo":
        from heliowatch.pipelines.standin.archive import demo_archive_path

        root, extra = demo_archive_path(), None
    else:
        root = build_archive(work / "archive", disks=disks)
        extra = {"HELIOWATCH_JSOC__ENABLED_SOURCES": '["magnetogram", "sharp"]'}
    if transport == "smtp":
        with SmtpSink() as sink:
            smtp = {
                "HELIOWATCH_ALERTS__TRANSPORT": "smtp",
                "HELIOWATCH_ALERTS__SMTP__HOST": "127.0.0.1",
                "HELIOWATCH_ALERTS__SMTP__PORT": str(sink.port),
                "HELIOWATCH_ALERTS__RETRY_BASE_S": str(SMTP_RETRY_S),
            }
            return _harness(work, root, {**(extra or {}), **smtp}, trials=trials, seed=seed, inbox=sink.received, say=say)
    return _harness(work, root, extra, trials=trials, seed=seed, inbox=None, say=say)


def _harness(
    work: Path,
    root: Path,
    extra: dict[str, str] | None,
    *,
    trials: int,
    seed: int,
    inbox: Counter[str] | None,
    say: Callable[[str], None],
) -> Harness:
    models = work / "models"
    # A first run exports the models into the shared directory; it is also the control: two
    # uninterrupted runs must compare clean, or the comparison would measure noise.
    control_run = run_to_completion(root, work / "control", models, extra=extra)
    ref_state = work / "reference"
    ref_run = run_to_completion(root, ref_state, models, extra=extra)
    ref = snapshot(ref_state, inbox=inbox)
    control = compare(ref, snapshot(work / "control", inbox=inbox))
    say(f"control run ({control_run.seconds:.1f} s, exports the models) against the reference: {control.line()}")
    if not control.clean():
        msg = f"two uninterrupted runs differ, the comparison would be noise: {control.line()} {control.examples}"
        raise RuntimeError(msg)
    say(
        f"reference: {ref_run.seconds:.1f} s ({ref_run.working_s:.1f} s after start-up): "
        f"{sum(ref.products.values())} products, {sum(ref.alerts.values())} alerts, {sum(ref.mail.values())} mails, "
        f"{sum(ref.frames.values())} frames, {sum(ref.processed.values())} processed keys"
    )
    out = []
    # Over the first three quarters of the reference's working time: a trial runs a little faster
    # or slower than the reference (the box's load), and a kill after the end proves nothing.
    for i, at in enumerate(kill_moments(trials, KILL_SPAN * ref_run.working_s, seed=seed)):
        t = trial(i, root, work / f"trial-{i:03d}", models, kill_at_s=at, extra=extra, until_delivered=inbox is not None)
        t.comparison = compare(ref, snapshot(t.state, inbox=inbox))
        say(
            f"trial {i:3d}: kill {at:6.2f} s after start-up ({'killed' if t.killed else 'it ended first'}), "
            f"{t.restarts} restart(s), {t.seconds:5.1f} s: {t.comparison.line()}"
        )
        for e in [*t.comparison.examples[:6], *(f"stray {x}" for x in t.comparison.stray[:6])]:
            say(f"    {e}")
        out.append(t)
    return Harness(ref, ref_run, out)
