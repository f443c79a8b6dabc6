"""Backfill on a real Dask LocalCluster: the same products as the daemon, idempotent, resumable,
and riding out a killed worker, a JSOC outage and a corrupt file; the gap audit and gap filling."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from heliowatch.daemon.backfill import Backfill, WorkerSpec
from heliowatch.daemon.backfill_cluster import DaskExecutor, open_cluster
from heliowatch.daemon.config import load_config
from heliowatch.daemon.service import Daemon
from heliowatch.daemon.wiring import build

DEMO = ("--start", "2011-02-14T18:00:00Z", "--end", "2017-09-07T00:00:00Z")
DISKS = ("--start", "2011-02-15T00:00:00Z", "--end", "2017-09-07T00:00:00Z")


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "heliowatch.daemon.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "HELIOWATCH_METRICS__ENABLED": "false", **(env or {})},
        timeout=timeout,
    )


def products(root: Path) -> dict[tuple[str, str], Any]:
    """Every stored product, its payload with the run's own directory replaced by ROOT."""
    with sqlite3.connect(root / "heliowatch-state" / "state.sqlite") as c:
        rows = c.execute("SELECT product, key, payload FROM products").fetchall()
    return {(p, k): json.loads(v.replace(str(root), "ROOT")) for p, k, v in rows}


def differences(mine: dict[Any, Any], theirs: dict[Any, Any]) -> list[str]:
    """Readable differences of two product dicts: missing keys and differing payload fields."""
    out = [f"only in one: {k}" for k in set(mine) ^ set(theirs)]
    for k in sorted(set(mine) & set(theirs)):
        a, b = mine[k], theirs[k]
        if a != b:
            out.append(
                f"{k}: "
                + ", ".join(f"{f}: {a.get(f)!r} != {b.get(f)!r}" for f in sorted(set(a) | set(b)) if a.get(f) != b.get(f))
            )
    return out


def outbox(root: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(root / "heliowatch-state" / "state.sqlite") as c:
        return sorted(c.execute("SELECT dedup_key, status FROM alert_outbox").fetchall())


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`heliowatch run --replay demo --once`: what the daemon makes of the demo archive."""
    d = tmp_path_factory.mktemp("daemon")
    p = cli("run", "--replay", "demo", "--once", cwd=d)
    assert p.returncode == 0, p.stderr[-3000:]
    return d


@pytest.mark.slow
def test_backfill_on_two_workers_makes_what_the_daemon_makes_and_twice_adds_nothing(reference: Path, tmp_path: Path) -> None:
    p = cli("backfill", "--replay", "demo", *DEMO, "--workers", "2", cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "processed: data_health=91, emergence=28, flares=3, jets=60, regions=28" in p.stderr
    assert "distributed.worker - INFO" not in p.stderr  # Dask's start-up chatter stays out of the log
    mine, theirs = products(tmp_path), products(reference)
    # Same keys, same payloads (paths relative to each run's directory).
    assert not differences(mine, theirs), "\n".join(differences(mine, theirs))
    assert outbox(reference) and outbox(tmp_path) == []  # alerts about the past stay off the mailing list
    again = cli("backfill", "--replay", "demo", *DEMO, "--workers", "2", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "processed: nothing new" in again.stderr and "new store records: none" in again.stderr
    assert products(tmp_path) == mine
    report = json.loads(next((tmp_path / "heliowatch-state" / "outputs").glob("backfill-*.json")).read_text())
    assert report["records"] == 92 and report["rejected"] == {"refused_before": 1}


@pytest.mark.slow
def test_a_backfill_killed_mid_way_and_run_again_ends_with_the_same_result(reference: Path, tmp_path: Path) -> None:
    args = [sys.executable, "-m", "heliowatch.daemon.cli", "backfill", "--replay", "demo", *DEMO, "--workers", "1"]
    env = {**os.environ, "HELIOWATCH_METRICS__ENABLED": "false"}
    # Its logs go to stderr: into a file, since a pipe nobody reads would stall it once full.
    log = (tmp_path / "backfill.log").open("w")
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    db = tmp_path / "heliowatch-state" / "state.sqlite"
    deadline = time.monotonic() + 400
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if db.exists():
                try:
                    with sqlite3.connect(db, timeout=1) as c:
                        if c.execute("SELECT COUNT(*) FROM products WHERE product = 'region'").fetchone()[0] >= 5:
                            break
                except sqlite3.OperationalError:
                    pass
            time.sleep(0.2)
        assert proc.poll() is None, "the backfill finished before it could be killed"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and its Dask workers, mid-way
        proc.wait()
        log.close()
    with sqlite3.connect(db) as c:
        partial = c.execute("SELECT COUNT(*) FROM products WHERE product = 'region'").fetchone()[0]
    assert 5 <= partial < 15
    rerun = cli("backfill", "--replay", "demo", *DEMO, "--workers", "1", cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    diff = differences(products(tmp_path), products(reference))
    assert not diff, "\n".join(diff)


# -- faults, in-process on a real LocalCluster ---------------------------------------------------
def _cfg(state: Path, archive: Path, **env: str):  # type: ignore[no-untyped-def]
    return load_config(
        None,
        environ={
            "HELIOWATCH_DAEMON__STATE_DIR": str(state),
            "HELIOWATCH_METRICS__ENABLED": "false",
            "HELIOWATCH_JSOC__SERVER": "replay",
            "HELIOWATCH_REPLAY__ARCHIVE": str(archive),
            "HELIOWATCH_JSOC__ENABLED_SOURCES": '["magnetogram", "sharp"]',
            "HELIOWATCH_FLARES__CNN_MODEL": '""',
            **env,
        },
    )


def _store(state: Path) -> dict[tuple[str, str], Any]:
    with sqlite3.connect(state / "state.sqlite") as c:
        rows = c.execute("SELECT product, key, payload FROM products").fetchall()
    return {(p, k): json.loads(v.replace(str(state), "STATE")) for p, k, v in rows}


@pytest.fixture(scope="module")
def cluster():  # type: ignore[no-untyped-def]
    client, local = open_cluster(workers=2, memory_per_worker="2GiB")
    yield client
    client.close()
    local.close()


@pytest.fixture
def disk_reference(disk_archive: Path, tmp_path: Path) -> dict[tuple[str, str], Any]:
    state = tmp_path / "reference"
    Daemon.from_config(_cfg(state, disk_archive), once=True).run()
    return _store(state)


class _KillOnce(DaskExecutor):
    """Kills one worker process while the first analyses run (Dask must run them elsewhere)."""

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.killed = False

    def submit(self, fn: Any, *args: Any, resources: dict[str, float] | None = None) -> Any:
        fut = super().submit(fn, *args, resources=resources)
        if not self.killed and fn.__name__ == "task_analyse":
            self.killed = True
            pid = next(iter(self.client.run(os.getpid).values()))
            threading.Timer(0.05, os.kill, (pid, signal.SIGKILL)).start()
        return fut


@pytest.mark.slow
def test_a_killed_worker_a_jsoc_outage_and_a_corrupt_file(
    disk_archive: Path, tmp_path: Path, cluster: Any, disk_reference: Any
) -> None:
    state = tmp_path / "state"
    # One file is damaged at the source (its data no longer matches its DATASUM)...
    bad = sorted((disk_archive / "magnetogram").glob("*.fits"))[1]
    original = bad.read_bytes()
    damaged = bytearray(original)
    damaged[len(damaged) // 2 : len(damaged) // 2 + 64] = bytes(64)
    bad.write_bytes(bytes(damaged))
    # ... the JSOC goes down 2-14 s into the run, and the first transfer arrives damaged (a retry heals that).
    cfg = _cfg(
        state, disk_archive, HELIOWATCH_JSOC__RETRIES="4", HELIOWATCH_JSOC__BACKOFF_BASE_S="1", HELIOWATCH_JSOC__BACKOFF_MAX_S="2"
    )
    app = build(cfg, once=True, fault="down=2:14,corrupt_first=1")
    executor = _KillOnce(cluster)
    try:
        report = Backfill(app, executor, WorkerSpec(cfg, disk_archive)).run(
            "2011-02-15T00:00:00.000Z", "2017-09-07T00:00:00.000Z"
        )
    finally:
        app.close()
    assert executor.killed
    assert report.rejected == {"checksum": 1}  # the corrupt file: rejected and listed, the rest went on
    assert not report.failed
    st = build(cfg, once=True).state
    assert [r["reason"] for r in st.reject_summary()] == ["checksum"]
    # The JSOC repairs the file; a rerun fills the record: nothing lost, nothing duplicated,
    # the same as the daemon's own run of the intact archive.
    bad.write_bytes(original)
    app = build(cfg, once=True)
    try:
        again = Backfill(app, DaskExecutor(cluster), WorkerSpec(cfg, disk_archive)).run(
            "2011-02-15T00:00:00.000Z", "2017-09-07T00:00:00.000Z"
        )
    finally:
        app.close()
    assert again.downloaded == 1 and not again.failed
    assert _store(state) == {k: json.loads(json.dumps(v).replace("reference", "state")) for k, v in disk_reference.items()}


# -- the gap audit ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_gaps_reports_exactly_the_removed_slots_and_backfill_gaps_fills_them(disk_archive: Path, tmp_path: Path) -> None:
    mags = sorted((disk_archive / "magnetogram").glob("*.fits"))
    late, gone = mags[1], mags[2]  # 01:48 arrives late at the JSOC; 02:00 never does
    away = tmp_path / "away"
    away.mkdir()
    shutil.move(late, away / late.name)
    shutil.move(gone, away / gone.name)
    work = tmp_path / "run"
    work.mkdir()
    env = {"HELIOWATCH_JSOC__ENABLED_SOURCES": '["magnetogram"]'}
    p = cli("run", "--replay", str(disk_archive), "--once", cwd=work, env=env)
    assert p.returncode == 0, p.stderr[-2000:]
    shutil.move(away / late.name, late)
    window = ("--start", "2011-02-15T01:30:00Z", "--end", "2011-02-15T02:05:00Z")
    g = cli("gaps", "--replay", str(disk_archive), "--series", "hmi.M_720s_nrt", *window, "--json", cwd=work, env=env)
    assert g.returncode == 0, g.stderr[-2000:]
    (src,) = json.loads(g.stdout)["sources"]
    assert src["expected_slots"] == 3 and src["counts"] == {
        "ingested": 1,
        "rejected": 0,
        "not_ingested": 1,
        "missing_at_source": 1,
    }
    missing = {m["state"]: (m["start_utc"], m["slots"]) for m in src["missing"]}
    assert missing == {"not_ingested": ("2011-02-15T01:48:00.000Z", 1), "missing_at_source": ("2011-02-15T02:00:00.000Z", 1)}
    fill = cli("backfill", "--replay", str(disk_archive), *window, "--gaps", "--workers", "0", cwd=work, env=env)
    assert fill.returncode == 0, fill.stderr[-2000:]
    assert "downloaded 1," in fill.stderr
    after = json.loads(cli("gaps", "--replay", str(disk_archive), *window, "--json", cwd=work, env=env).stdout)["sources"][0]
    assert after["counts"] == {"ingested": 2, "rejected": 0, "not_ingested": 0, "missing_at_source": 1}
    text = cli("gaps", "--replay", str(disk_archive), *window, cwd=work, env=env).stdout
    assert "missing_at_source  2011-02-15T02:00:00.000Z .. 2011-02-15T02:00:00.000Z  (1 slot(s))" in text
