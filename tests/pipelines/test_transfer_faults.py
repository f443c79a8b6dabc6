"""Transfer faults lose nothing: retried with backoff, then deferred (not final), re-queued, caught up.

Against the stand-in over real HTTP: every ``--fault`` of ``jsoc-standin --help`` alone and in
combination (the fault matrix, bounded for CI), long outages, and a run whose every download is cut
short, then re-queued by ``heliowatch rejects --requeue`` and by the gap audit until every record is
in; a replay is not "drained" while a reject still has attempts left.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import time
from pathlib import Path

import pytest

from heliowatch.daemon.cli import main
from heliowatch.daemon.config import load_config
from heliowatch.daemon.service import Daemon
from heliowatch.daemon.state import StateStore
from heliowatch.models.core.times import FixedClock, utc_to_tai_string
from heliowatch.pipelines.errors import SourceUnavailable
from heliowatch.pipelines.frames import Source, load_frame
from heliowatch.pipelines.gaps import audit
from heliowatch.pipelines.ingest import MAX_ATTEMPTS, Ingestor, RetryBackoff
from heliowatch.pipelines.jsoc import SOURCE_KEYS
from heliowatch.pipelines.standin import faults as faults_doc
from tests.conftest import write_record
from tests.pipelines.test_ingest import END_OF_ARCHIVE, MAG, make_ingestor

SERIES = MAG.series
#: The tiny archive: 8 slots, one with a bad QUALITY word (final), 7 to ingest.
GOOD = 7
RANGE = ("2024-05-10T00:00:00Z", "2024-05-10T01:30:00Z")


class StepClock:
    """Archive time fixed, monotonic time moved by the test (the backoff is measured on it)."""

    def __init__(self, t: float) -> None:
        self.t, self.mono = t, 1000.0

    def now(self) -> float:
        return self.t

    def monotonic(self) -> float:
        return self.mono


def no_gaps(ing: Ingestor, expected: int = GOOD) -> None:
    """The gap audit of the range finds every good slot ingested, each file whole, no .part left."""
    start, end = RANGE
    at_source = ing.client.query(
        ing.source.recordset(utc_to_tai_string(start), utc_to_tai_string(end)), SOURCE_KEYS["magnetogram"]
    )
    rows = ing.state.frames(ing.source.series)
    rep = audit(
        ing.source,
        start_utc=start,
        end_utc=end,
        at_source=at_source,
        ingested={r["record"] for r in rows},
        rejected=ing.state.rejects_of(ing.source.series),
    )
    assert rep.counts == {"ingested": expected, "rejected": 8 - expected, "not_ingested": 0, "missing_at_source": 0}
    assert len(rows) == len({r["record"] for r in rows}) == expected  # nothing twice
    for r in rows:
        assert load_frame(r["path"]).data.shape == (64, 64)
    assert not list((ing.frames_dir).rglob("*.part"))


def catch_up(ing: Ingestor, *, polls: int = 14, pause_s: float = 0.25) -> int:
    """Poll until every good record is in (a poll that fails outright waits like the scheduler)."""
    for _ in range(polls):
        try:
            ing.poll()
        except SourceUnavailable:
            time.sleep(pause_s)
            continue
        if ing.state.frame_counts().get(ing.source.series, 0) >= GOOD:
            break
    return ing.state.frame_counts().get(ing.source.series, 0)


# -- the fault matrix -------------------------------------------------------------------------

#: Every fault of the stand-in, alone (values sized so a CI run stays short).
ALONE = {
    "latency": "latency=0.02",
    "5xx": "5xx=0.3,seed=1",
    "5xx_first": "5xx_first=7",
    "down": "down=0:2",  # longer than one poll's retry budget: whole polls fail, then catch up
    "timeout": "timeout=0.08,hang_s=1,seed=2",
    "timeout_first": "timeout_first=2,hang_s=1",
    "truncate": "truncate=0.5,seed=3",
    "truncate_first": "truncate_first=4",
    "corrupt": "corrupt=0.5,seed=4",
    "corrupt_first": "corrupt_first=4",
    "pending_forever": "pending_forever",
    "status7": "status7",
}
#: Several at once, and a long outage with damaged transfers behind it.
COMBINED = {
    "all_random": "latency=0.01,5xx=0.15,timeout=0.04,hang_s=1,truncate=0.25,corrupt=0.2,status7,pending_forever,seed=5",
    "outage_then_damage": "down=0:2.5,truncate_first=3,corrupt_first=3,5xx=0.1,seed=6",
    "firsts": "5xx_first=3,timeout_first=1,hang_s=1,truncate_first=2,corrupt_first=2",
}


def test_the_matrix_covers_every_fault_of_the_standin() -> None:
    documented = {line.split("``")[1].split("=")[0] for line in (faults_doc.__doc__ or "").splitlines() if line.startswith("``")}
    # seed and hang_s are parameters of the others; aia_out_of_order has its own test below.
    assert documented - {"seed", "hang_s", "aia_out_of_order"} == set(ALONE)
    used = ",".join([*ALONE.values(), *COMBINED.values()])
    assert {"seed", "hang_s"} <= {item.split("=")[0] for item in used.split(",")}


@pytest.mark.parametrize("fault", [*ALONE.values(), *COMBINED.values()], ids=[*ALONE, *COMBINED])
def test_fault_matrix_catches_up_without_gaps(fault: str, tiny_archive: Path, standin_factory, tmp_path: Path) -> None:
    srv = standin_factory(tiny_archive, fault=fault)
    ing = make_ingestor(srv.url, tmp_path, timeout_s=0.5)
    assert catch_up(ing) == GOOD
    no_gaps(ing)
    # What failed on the way is cleared: only the QUALITY reject stays, final.
    assert [(r["reason"], r["final"], r["deferred"]) for r in ing.state.reject_summary()] == [("quality", True, False)]


def test_aia_out_of_order_with_damaged_transfers_catches_up(tmp_path: Path, standin_factory) -> None:
    root = tmp_path / "aia"
    root.mkdir()
    t0 = dt.datetime(2024, 5, 10)
    for i in range(20):
        write_record(root, series="aia.lev1_nrt2", segment="image_lev1", t_rec=t0 + dt.timedelta(seconds=24 * i))
    srv = standin_factory(root, fault="aia_out_of_order=240,truncate=0.3,5xx=0.1,seed=8", clock=True)
    src = Source("aia", "aia.lev1_nrt2", ("image_lev1",), wavelength=304, reorder_window_s=1800)
    base = t0.replace(tzinfo=dt.UTC).timestamp()
    ing = make_ingestor(srv.url, tmp_path / "state", source=src, clock=FixedClock(base + 3600))
    srv.clock.freeze_at(base + 24 * 10)
    ing.poll()
    srv.clock.jump_to_end()
    for _ in range(10):
        ing.poll()
    rows = ing.state.frames("aia.lev1_nrt2")
    assert len({r["record"] for r in rows}) == len(rows) == 20
    assert ing.state.reject_summary() == []


# -- backoff, deferral, re-queue ------------------------------------------------------------------


def test_attempts_are_spaced_by_the_backoff_then_deferred(tiny_archive: Path, standin_factory, tmp_path: Path) -> None:
    srv = standin_factory(tiny_archive, fault="truncate=1.0")
    clock = StepClock(END_OF_ARCHIVE)
    backoff = RetryBackoff(base_s=120, max_s=3600)
    ing = make_ingestor(srv.url, tmp_path, clock=clock, backoff=backoff)
    first = ing.poll()
    assert (first.rejected, first.retrying, first.deferred) == (GOOD, GOOD, 0)
    # Right after, nothing is tried again: every record waits out its backoff.
    again = ing.poll()
    assert (again.new, again.rejected, again.waiting, again.retrying) == (0, 0, GOOD, GOOD)
    waits = []
    for attempt in range(2, MAX_ATTEMPTS + 1):
        clock.mono += backoff.delay(attempt - 1) - 1
        assert ing.poll().rejected == 0  # a second early
        clock.mono += 1
        res = ing.poll()
        assert res.rejected == GOOD
        waits.append(backoff.delay(attempt - 1))
    assert waits == sorted(waits) and waits[0] == 120 and waits[-1] == 3600  # doubling, capped at an hour
    assert sum(waits) >= 3 * 3600  # a horizon of hours, not of polls
    assert res.deferred == GOOD and res.retrying == 0
    rows = [r for r in ing.state.reject_summary() if r["reason"] != "quality"]
    assert len(rows) == GOOD
    assert all(r["deferred"] and not r["final"] and r["attempts"] == MAX_ATTEMPTS for r in rows)
    # Deferred records are parked: later polls do not try them, and do not hold the window open.
    clock.mono += 10 * 3600
    assert ing.poll().new == 0
    assert ing.state.oldest_retry(SERIES) is None


@pytest.fixture
def deferred_state(tiny_archive: Path, standin_factory, tmp_path: Path) -> Path:
    """A state directory whose 7 good records were all deferred by truncated downloads."""
    state_dir = tmp_path / "state"
    ing = make_ingestor(standin_factory(tiny_archive, fault="truncate=1.0").url, state_dir)
    for _ in range(MAX_ATTEMPTS):
        ing.poll()
    assert ing.state.reject_counts() == {SERIES: {"retrying": 0, "deferred": GOOD, "final": 1}}
    ing.state.close()
    return state_dir


def _env(monkeypatch: pytest.MonkeyPatch, state_dir: Path, archive: Path) -> None:
    monkeypatch.setenv("HELIOWATCH_DAEMON__STATE_DIR", str(state_dir))
    monkeypatch.setenv("HELIOWATCH_METRICS__PORT", "0")
    monkeypatch.setenv("HELIOWATCH_REPLAY__ARCHIVE", str(archive))
    monkeypatch.setenv("HELIOWATCH_JSOC__ENABLED_SOURCES", '["magnetogram"]')


def test_gap_audit_requeues_deferred_records(
    deferred_state: Path, tiny_archive: Path, standin_factory, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _env(monkeypatch, deferred_state, tiny_archive)
    assert main(["gaps", "--replay", str(tiny_archive), "--start", RANGE[0], "--end", RANGE[1]]) == 0
    out = capsys.readouterr().out
    assert f"{GOOD} deferred reject(s) re-queued" in out
    st = StateStore(f"sqlite:///{deferred_state / 'state.sqlite'}")
    assert st.reject_counts() == {SERIES: {"retrying": GOOD, "deferred": 0, "final": 1}}
    st.close()
    # The next poll (here a clean one) fetches them: nothing is left out.
    ing = make_ingestor(standin_factory(tiny_archive).url, deferred_state)
    assert ing.poll().ingested == GOOD
    no_gaps(ing)


def test_old_state_database_gives_no_transfer_fault_up_for_good(tmp_path: Path) -> None:
    """A state database of an older heliowatch (rejects final after 5 attempts) is migrated: its
    transfer faults become deferred (re-queueable); a bad QUALITY word stays final."""
    db = tmp_path / "state.sqlite"
    con = sqlite3.connect(db)
    con.execute(
        "CREATE TABLE rejects (series VARCHAR(128) NOT NULL, record VARCHAR(256) NOT NULL, reason VARCHAR(32) NOT NULL,"
        " t_rec_utc VARCHAR(32) NOT NULL, attempts INTEGER NOT NULL, final BOOLEAN NOT NULL, last_utc VARCHAR(32) NOT NULL,"
        " PRIMARY KEY (series, record))"
    )
    con.executemany(
        "INSERT INTO rejects VALUES (?, ?, ?, '2024-05-10T00:00:00.000Z', ?, ?, '2024-05-10T01:00:00.000Z')",
        [(SERIES, "a", "truncated", 5, 1), (SERIES, "b", "quality", 1, 1), (SERIES, "c", "download", 2, 0)],
    )
    con.commit()
    con.close()
    st = StateStore(f"sqlite:///{db}")
    got = {r["record"]: (r["final"], r["deferred"]) for r in st.reject_summary()}
    assert got == {"a": (False, True), "b": (True, False), "c": (False, False)}
    assert st.requeue() == 1
    assert st.reject_counts() == {SERIES: {"retrying": 2, "deferred": 0, "final": 1}}
    st.close()


def test_truncated_replay_is_not_drained_early_then_requeue_gets_everything(
    tiny_archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's run: every download cut short. The replay keeps retrying (with backoff) until
    each record is deferred, says so, a clean rerun leaves them parked, ``rejects --requeue``
    puts them back and the next run ingests all of them."""
    state_dir = tmp_path / "state"
    _env(monkeypatch, state_dir, tiny_archive)
    monkeypatch.setenv("HELIOWATCH_REPLAY__SPEED", "1200")  # 12 archive minutes in 0.6 s
    monkeypatch.setenv("HELIOWATCH_DAEMON__HEARTBEAT_S", "1")
    t0 = time.monotonic()
    summary = Daemon.from_config(load_config(None), fault="truncate=1.0").run()
    assert time.monotonic() - t0 < 90
    assert sum(summary.ingested.values()) == 0
    # Drained only once nothing had attempts left: every record was tried MAX_ATTEMPTS times.
    assert summary.deferred == {SERIES: GOOD}
    assert summary.rejected == {SERIES: GOOD * MAX_ATTEMPTS}
    assert main(["rejects"]) == 0
    listing = capsys.readouterr().out
    assert f"{SERIES}: 0 retrying, {GOOD} deferred, 1 final" in listing
    assert "heliowatch rejects --requeue" in listing

    # A clean rerun leaves them parked (deferred is not retried by polls) ...
    monkeypatch.delenv("HELIOWATCH_REPLAY__SPEED")
    again = Daemon.from_config(load_config(None), once=True).run()
    assert sum(again.ingested.values()) == 0 and again.deferred == {SERIES: GOOD}
    # ... until re-queued; then the next run gets every one of them.
    assert main(["rejects", "--requeue"]) == 0
    assert f"re-queued {GOOD} deferred record(s)" in capsys.readouterr().out
    last = Daemon.from_config(load_config(None), once=True).run()
    assert last.ingested == {SERIES: GOOD}
    assert last.deferred == {}
    st = StateStore(f"sqlite:///{state_dir / 'state.sqlite'}")
    assert st.frame_counts() == {SERIES: GOOD}
    assert [r["reason"] for r in st.reject_summary()] == ["quality"]
    st.close()


def test_replay_with_random_transfer_faults_drains_with_everything_in(tiny_archive: Path, tmp_path: Path) -> None:
    """The scheduler path of the matrix: a replay under combined faults finishes (drained) with
    every record ingested, i.e. it waited for the retries instead of declaring itself done."""
    env = {
        "HELIOWATCH_DAEMON__STATE_DIR": str(tmp_path / "state"),
        "HELIOWATCH_METRICS__PORT": "0",
        "HELIOWATCH_REPLAY__ARCHIVE": str(tiny_archive),
        "HELIOWATCH_REPLAY__SPEED": "1200",
        "HELIOWATCH_JSOC__ENABLED_SOURCES": '["magnetogram"]',
        "HELIOWATCH_DAEMON__HEARTBEAT_S": "1",
    }
    summary = Daemon.from_config(load_config(None, environ=env), fault="truncate=0.4,corrupt=0.3,seed=11").run()
    assert summary.ingested == {SERIES: GOOD}
    assert sum(summary.rejected.values()) > 0  # the faults did bite
    assert summary.deferred == {}
