"""Environment faults: a full disk, a read-only state directory, wall-clock steps, two daemons on one state directory.

Each runs the real ``heliowatch run --replay demo`` in a subprocess. The full disk is a small
tmpfs and the read-only directory a read-only tmpfs (``mount``, as root: CI runs as root on
Debian); the clock steps come from Debian's libfaketime (the ``faketime`` package, which
tests/run.sh installs), preloaded with the monotonic clock left alone, as an NTP step leaves
it. Without root or faketime these tests skip locally and fail under CI=true.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from heliowatch.daemon.lock import StateDirLock, StateDirLocked
from heliowatch.pipelines.errors import local_io_error
from tests.e2e.conftest import need

CLI = [sys.executable, "-m", "heliowatch.daemon.cli"]
#: Fast enough for a short test, slow enough that a clock step lands in the middle of the replay.
SPEED = "2000"


def _unavailable(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{why} in CI: tests/run.sh runs as root on Debian")
    pytest.skip(f"{why} (CI runs these as root)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "HELIOWATCH_METRICS__PORT": "0", "HELIOWATCH_REPLAY__SPEED": SPEED, **extra}


def _mount_tmpfs(where: Path, *options: str) -> None:
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        _unavailable("mounting a tmpfs needs root")
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(where)], capture_output=True, text=True)
    if p.returncode != 0:
        _unavailable(f"mount -t tmpfs failed: {p.stderr.strip()}")


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 6 MB tmpfs (the demo replay needs about 25 MB), unmounted afterwards."""
    where = tmp_path / "small-disk"
    _mount_tmpfs(where, "size=6m", "mode=0755")
    yield where
    subprocess.run(["umount", "-l", str(where)], check=False)


def _grow(where: Path, mb: int) -> None:
    subprocess.run(["mount", "-o", f"remount,size={mb}m", str(where)], check=True)


def _contents(state_dir: Path) -> dict[str, object]:
    """What a run leaves that a user would miss if it were lost: frames, processed marks, products, alerts."""
    with sqlite3.connect(f"file:{state_dir / 'state.sqlite'}?mode=ro", uri=True) as db:
        return {
            "frames": set(db.execute("SELECT series, record, segment FROM frames")),
            "processed": set(db.execute("SELECT product, key FROM processed")),
            "given_up": db.execute("SELECT product, key, last_error FROM product_attempts WHERE given_up").fetchall(),
            "products": set(db.execute("SELECT product, key FROM products")),
            "alerts": set(db.execute("SELECT dedup_key FROM alert_outbox")),
        }


def _samples(exposition: str) -> dict[str, float]:
    """``{'name{labels}': value}`` of a Prometheus text exposition."""
    out: dict[str, float] = {}
    for ln in exposition.splitlines():
        if ln and not ln.startswith("#"):
            name, value = ln.rsplit(" ", 1)
            out[name] = float(value)
    return out


def _events(log_text: str, event: str) -> list[dict[str, object]]:
    """The daemon's JSON log lines of one event."""
    return [e for ln in log_text.splitlines() if ln.startswith("{") and (e := json.loads(ln)).get("event") == event]


def _no_leftovers(state_dir: Path) -> None:
    assert not list((state_dir / "frames").rglob("*.part")), "a .part file was left behind"


def _traceback_free(text: str) -> None:
    assert "Traceback" not in text, text[-3000:]


@contextlib.contextmanager
def _daemon(
    cmd: list[str], *, cwd: Path, env: dict[str, str], log: Path, stdout: int = subprocess.PIPE
) -> Iterator[subprocess.Popen[str]]:
    """A daemon with its stderr in ``log``; killed on the way out if it is still running."""
    with log.open("w") as err:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=stdout, stderr=err, text=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=60)


def _clean_exit(proc: subprocess.Popen[str], log: Path) -> str:
    """The daemon's log, once it has exited 0 without a traceback."""
    text = log.read_text()
    assert proc.returncode == 0, text[-3000:]
    _traceback_free(text)
    return text


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """An uninterrupted ``run --replay demo --once`` on an ordinary disk."""
    d = tmp_path_factory.mktemp("reference")
    p = subprocess.run(
        [*CLI, "run", "--replay", "demo", "--once"], cwd=d, env=_env(), capture_output=True, text=True, timeout=600
    )
    assert p.returncode == 0, p.stderr[-3000:]
    out = _contents(d / "heliowatch-state")
    assert out["frames"] and out["products"] and out["alerts"]
    return out


# -- read-only state directory -------------------------------------------------------------------


def test_read_only_state_dir_is_one_line_and_exit_2(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    _mount_tmpfs(ro, "size=1m", "ro")
    try:
        cfg = tmp_path / "ro.toml"
        cfg.write_text(f'[daemon]\nstate_dir = "{ro}"\n')
        t0 = time.monotonic()
        p = subprocess.run(
            [*CLI, "run", "--config", str(cfg), "--replay", "demo", "--once"],
            cwd=tmp_path,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        subprocess.run(["umount", "-l", str(ro)], check=False)
    assert p.returncode == 2, p.stderr[-2000:]
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert "daemon.state_dir" in lines[0] and "not writable" in lines[0] and "Read-only file system" in lines[0]
    assert str(ro) in lines[0]
    assert time.monotonic() - t0 < 60  # at start, before models are loaded or anything polled


# -- full disk -----------------------------------------------------------------------------------


def _wait_for(predicate: object, timeout: float, what: str, proc: subprocess.Popen[str] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the daemon exited ({proc.returncode}) while waiting for {what}")
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}")


def test_full_disk_daemon_keeps_running_and_catches_up(tmpfs: Path, reference: dict[str, object]) -> None:
    """The disk fills during a replay: one counted line, no traceback, the daemon waits; space freed, nothing is lost."""
    cfg = tmpfs.parent / "small.toml"
    cfg.write_text(f'[daemon]\nstate_dir = "{tmpfs / "state"}"\n')
    log = tmpfs.parent / "daemon.log"
    with _daemon([*CLI, "run", "--config", str(cfg), "--replay", "demo"], cwd=tmpfs.parent, env=_env(), log=log) as proc:
        _wait_for(lambda: '"local_io_error"' in log.read_text(), 300, "the disk to fill", proc)
        time.sleep(5)
        assert proc.poll() is None, "the daemon died on a full disk"
        errors = _events(log.read_text(), "local_io_error")
        # One line a minute per kind of write, not one per failed poll.
        assert 1 <= len(errors) <= 3, errors
        assert errors[0]["will_retry"] is True
        assert any(m in str(errors[0]["error"]) for m in ("No space left on device", "database or disk is full")), errors
        _grow(tmpfs, 64)
        out, _ = proc.communicate(timeout=400)
    text = _clean_exit(proc, log)
    assert _events(text, "replay_finished") and _events(text, "local_io_recovered")
    metrics = _samples((tmpfs / "state" / "outputs" / "metrics.prom").read_text())
    assert sum(v for k, v in metrics.items() if k.startswith("heliowatch_local_io_errors_total{")) >= 1
    # A full disk is not a JSOC problem: no download was retried or rejected for it.
    assert metrics.get('heliowatch_jsoc_retries_total{endpoint="download"}', 0.0) == 0.0
    rejected = {k: v for k, v in metrics.items() if k.startswith("heliowatch_rejected_records_total{") and v}
    assert all('reason="quality"' in k for k in rejected), rejected
    got = _contents(tmpfs / "state")
    assert got["frames"] == reference["frames"]
    assert got["processed"] == reference["processed"]
    assert got["given_up"] == []
    _no_leftovers(tmpfs / "state")
    assert "ingested" in out


def test_full_disk_once_ends_with_one_line_and_a_rerun_completes(tmpfs: Path, reference: dict[str, object]) -> None:
    """``--once`` on a disk that fills: one line, exit 2, no traceback; the rerun after freeing space loses nothing."""
    _grow(tmpfs, 16)  # room for the frames, not for every product: the disk fills while the products write
    cfg = tmpfs.parent / "small.toml"
    cfg.write_text(f'[daemon]\nstate_dir = "{tmpfs / "state"}"\n')
    cmd = [*CLI, "run", "--config", str(cfg), "--replay", "demo", "--once"]
    first = subprocess.run(cmd, cwd=tmpfs.parent, env=_env(), capture_output=True, text=True, timeout=600)
    assert first.returncode == 2, first.stderr[-3000:]
    _traceback_free(first.stderr)
    last = first.stderr.strip().splitlines()[-1]
    # Whichever write meets the full disk first: a product file (ENOSPC) or the SQLite state database.
    assert last.startswith("heliowatch: error: cannot write"), last
    assert "No space left on device" in last or "database or disk is full" in last, last
    _grow(tmpfs, 64)
    again = subprocess.run(cmd, cwd=tmpfs.parent, env=_env(), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    _traceback_free(again.stderr)
    got = _contents(tmpfs / "state")
    assert got["given_up"] == []
    for k in ("frames", "processed", "products", "alerts"):
        assert got[k] == reference[k], (k, sorted(set(reference[k]) ^ set(got[k]))[:10])  # type: ignore[arg-type]
    _no_leftovers(tmpfs / "state")


# -- wall-clock steps ----------------------------------------------------------------------------


def _libfaketime() -> str:
    need("faketime")
    libs = sorted(glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1"))
    if not libs:
        _unavailable("libfaketimeMT.so.1 is missing (Debian's libfaketime package)")
    return libs[0]


def _scrape(port: int) -> dict[str, float]:
    return _samples(urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode())


#: Outcomes of a poll job the scheduler started on time (``overlapping``: due while the last one still runs).
STARTED = ("ok", "error", "overlapping")


def _poll_runs(port: int, outcomes: tuple[str, ...]) -> float:
    """Runs of the poll jobs the scheduler started (``ok``, ``error``) or found still running (``overlapping``)."""
    try:
        m = _scrape(port)
    except OSError:
        return 0.0
    polls = [k for k in m if k.startswith("heliowatch_job_runs_total{") and ('job="hmi.' in k or 'job="aia.' in k)]
    return sum(m[k] for k in polls if any(f'outcome="{o}"' in k for o in outcomes))


def test_wall_clock_steps_back_and_forward_never_stall_polling(tmp_path: Path) -> None:
    """The wall clock stepped back 2 h, then forward 2 h (as NTP may), during a replay: polls go on; each step logged, counted."""
    lib = _libfaketime()
    stamp = tmp_path / "faketime"
    stamp.write_text("+0\n")
    port = _free_port()
    env = _env(
        HELIOWATCH_METRICS__PORT=str(port),
        # Polling is what is watched here: SHARP and AIA records with only the data-health product,
        # so that polls are light and each one's end is seen within seconds.
        HELIOWATCH_JSOC__ENABLED_SOURCES='["sharp", "aia"]',
        HELIOWATCH_JETS__ENABLED="false",
        HELIOWATCH_FLARES__ENABLED="false",
        LD_PRELOAD=lib,
        FAKETIME_TIMESTAMP_FILE=str(stamp),
        FAKETIME_NO_CACHE="1",
        # An NTP step moves the wall clock only; CLOCK_MONOTONIC never steps.
        FAKETIME_DONT_FAKE_MONOTONIC="1",
    )
    env.pop("FAKETIME", None)
    log = tmp_path / "daemon.log"
    with _daemon([*CLI, "run", "--replay", "demo"], cwd=tmp_path, env=env, log=log) as proc:
        _wait_for(lambda: _poll_runs(port, ("ok",)) >= 3, 300, "the first polls", proc)
        for offset in ("-2h", "+0"):  # back 2 h, then forward 2 h to where it was
            stamp.write_text(offset + "\n")
            fired, done = _poll_runs(port, STARTED), _poll_runs(port, ("ok",))
            # Every poll job is due each 0.5 s: stalled, none would start for 2 h.
            _wait_for(lambda f=fired: _poll_runs(port, STARTED) >= f + 6, 30, f"polls due after {offset}", proc)
            _wait_for(lambda d=done: _poll_runs(port, ("ok",)) >= d + 2, 120, f"polls done after {offset}", proc)
        out, _ = proc.communicate(timeout=400)
    text = _clean_exit(proc, log)
    assert _events(text, "replay_finished")
    steps = [float(e["step_s"]) for e in _events(text, "clock_step")]  # type: ignore[arg-type]
    assert len(steps) == 2 and abs(steps[0] + 7200) < 60 and abs(steps[1] - 7200) < 60, steps
    metrics = _samples((tmp_path / "heliowatch-state" / "outputs" / "metrics.prom").read_text())
    assert metrics["heliowatch_clock_steps_total"] == 2.0
    assert "ingested" in out


# -- two daemons, one state directory -------------------------------------------------------------


def test_second_daemon_on_the_same_state_dir_exits_2_naming_the_first(tmp_path: Path) -> None:
    lock_file = tmp_path / "heliowatch-state" / ".lock"
    log = tmp_path / "first.log"
    with _daemon(
        [*CLI, "run", "--replay", "demo", "--keep-running"], cwd=tmp_path, env=_env(), log=log, stdout=subprocess.DEVNULL
    ) as first:
        _wait_for(lambda: lock_file.exists() and lock_file.read_text().strip() == str(first.pid), 120, "the lock", first)
        _wait_for(lambda: (tmp_path / "heliowatch-state" / "state.sqlite").exists(), 300, "the state database", first)
        second = subprocess.run(
            [*CLI, "run", "--replay", "demo", "--keep-running"],
            cwd=tmp_path,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode == 2, second.stderr[-2000:]
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1, second.stderr
        assert f"pid {first.pid}" in lines[0] and str(tmp_path / "heliowatch-state") in lines[0]
        # A read-only command does not take the lock.
        status = subprocess.run([*CLI, "status"], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120)
        assert status.returncode == 0, status.stderr[-2000:]
        assert first.poll() is None, log.read_text()[-2000:]
        # However the holder ends, a SIGKILL included, the kernel drops the lock: none is ever stale.
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
    with StateDirLock(tmp_path / "heliowatch-state") as lock:
        assert lock.path.read_text().strip() == str(os.getpid())


# -- the pieces, in process ------------------------------------------------------------------------


def test_lock_names_its_holder_and_is_free_again_after_release(tmp_path: Path) -> None:
    held = StateDirLock(tmp_path / "state").acquire()
    try:
        with pytest.raises(StateDirLocked, match=rf"in use by another heliowatch \(pid {os.getpid()}\)") as e:
            StateDirLock(tmp_path / "state").acquire()
        assert e.value.pid == os.getpid()
    finally:
        held.release()
    StateDirLock(tmp_path / "state").acquire().release()


def test_local_write_failures_are_told_apart_from_network_errors(tmp_path: Path) -> None:
    full = local_io_error(OSError(errno.ENOSPC, "No space left on device"), "frames", tmp_path / "x.fits.part")
    assert full is not None and full.op == "frames" and str(tmp_path / "x.fits.part") in str(full)
    assert local_io_error(ConnectionResetError(errno.ECONNRESET, "reset"), "frames") is None
    assert local_io_error(TimeoutError("timed out"), "frames") is None
    # SQLite's own "full" and "read-only" codes, wrapped as SQLAlchemy wraps them (.orig), are the state's.
    db = tmp_path / "s.sqlite"
    sqlite3.connect(db).execute("CREATE TABLE t (x)").connection.commit()
    ro = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        ro.execute("INSERT INTO t VALUES (1)")
    except sqlite3.OperationalError as dbapi:
        wrapped = RuntimeError("wrapped")
        wrapped.orig = dbapi  # type: ignore[attr-defined]
        err = local_io_error(wrapped, "outputs")
        assert err is not None and err.op == "state"
    else:
        pytest.fail("a read-only SQLite connection accepted a write")
    finally:
        ro.close()
