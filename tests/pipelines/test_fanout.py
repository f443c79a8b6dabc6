"""The fan-out: one product failing on one record loses nothing and duplicates nothing.

A real daemon (in-process) replays a small archive of synthetic full disks and real SHARPs
through the stand-in; the region product is made to raise on one magnetogram. The other
products still process it; the region product gets it again on the next poll and after a
restart; in the end every (product, record) pair is processed exactly once, counted in the
store and the outbox.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from heliowatch.daemon.config import Config, load_config
from heliowatch.daemon.service import Daemon
from heliowatch.daemon.wiring import build
from heliowatch.pipelines.products.regions import RegionsProduct


def replay_config(state: Path, archive: Path) -> Config:
    """An in-process daemon replaying ``archive`` (magnetograms and SHARPs) into ``state``, without metrics."""
    return load_config(
        None,
        environ={
            "HELIOWATCH_DAEMON__STATE_DIR": str(state),
            "HELIOWATCH_METRICS__ENABLED": "false",
            "HELIOWATCH_REPLAY__ARCHIVE": str(archive),
            "HELIOWATCH_JSOC__ENABLED_SOURCES": '["magnetogram", "sharp"]',
            "HELIOWATCH_FLARES__CNN_MODEL": '""',
            # A low rule so the synthetic regions raise alerts the outbox can be counted on.
            "HELIOWATCH_ALERTS__RULES__FLARE_REGION_M": "0.0",
        },
    )


class Flaky:
    """Makes one product raise on one record for the first ``times`` attempts."""

    def __init__(self, product: RegionsProduct, record_part: str, times: int) -> None:
        self.product = product
        self.record_part = record_part
        self.left = times
        self.inner = product.process
        product.process = self  # type: ignore[method-assign]

    def __call__(self, frames):  # type: ignore[no-untyped-def]
        if self.left > 0 and any(self.record_part in f.key for f in frames):
            self.left -= 1
            msg = "injected failure"
            raise RuntimeError(msg)
        return self.inner(frames)


def _counts(state: Path) -> dict[str, int]:
    with sqlite3.connect(state / "state.sqlite") as c:
        out = {f"store:{k}": n for k, n in c.execute("SELECT product, COUNT(*) FROM products GROUP BY product")}
        out.update({f"processed:{k}": n for k, n in c.execute("SELECT product, COUNT(*) FROM processed GROUP BY product")})
        out["outbox"] = c.execute("SELECT COUNT(*) FROM alert_outbox").fetchone()[0]
        dup = c.execute("SELECT COUNT(*) FROM (SELECT product, key FROM products GROUP BY product, key HAVING COUNT(*) > 1)")
        out["duplicates"] = dup.fetchone()[0]
    return out


def _run_with(cfg, *, fail: str | None, times: int = 0) -> Daemon:  # type: ignore[no-untyped-def]
    app = build(cfg, once=True)
    if fail:
        Flaky(next(p for p in app.products if isinstance(p, RegionsProduct)), fail, times)
    d = Daemon(app, once=True)
    d.run()
    return d


def _reference(archive: Path, tmp_path: Path) -> dict[str, int]:
    """Counts of an uninterrupted run of the same archive with no failure."""
    _run_with(replay_config(tmp_path / "reference", archive), fail=None)
    return _counts(tmp_path / "reference")


def test_a_failing_product_is_isolated_and_retried_on_the_next_poll(disk_archive: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    cfg = replay_config(state, disk_archive)
    app = build(cfg, once=True)
    flaky = Flaky(next(p for p in app.products if isinstance(p, RegionsProduct)), "01:48", times=1)
    d = Daemon(app, once=True)
    summary = d.run()
    assert flaky.left == 0  # it did fail once
    # The other products processed the record the region product failed on; the region
    # product got it again in the same run's next offer (the fan-out's recovery after a dispatch).
    assert summary.product_failures == {"regions": 1}
    c = _counts(state)
    assert c["processed:regions"] == 3 and c["processed:data_health"] == 6 and c["processed:flares"] == 3
    assert c == _reference(disk_archive, tmp_path)  # nothing lost, nothing duplicated
    assert c["duplicates"] == 0 and c["store:region"] == 6  # two regions on each of the three disks


def test_a_record_failing_until_restart_is_processed_after_it_exactly_once(disk_archive: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    cfg = replay_config(state, disk_archive)
    first = _run_with(cfg, fail="01:48", times=2)  # fails on the first offer and on the retry in that run
    assert first.app.state.done_among("regions", [k for k in _keys(state) if "01:48" in k]) == set()
    c1 = _counts(state)
    # The region product holds its later record (02:00) until the failed one is through: a stateful
    # product sees its records in time order, so only 01:24 is done in this run.
    assert c1["processed:regions"] == 1 and c1["store:region"] == 2
    assert c1["processed:data_health"] == 6 and c1["processed:flares"] == 3
    # A restart: the record is offered again (recovery at start), nothing else is redone.
    second = _run_with(cfg, fail=None)
    c2 = _counts(state)
    assert c2 == _reference(disk_archive, tmp_path)  # the same store, processed keys and outbox as an uninterrupted run
    assert second.status.snapshot()["regions"] is not None  # the daemon's status still builds after a recovery
    # A third run changes nothing at all.
    _run_with(cfg, fail=None)
    assert _counts(state) == c2


def test_a_product_that_always_fails_gives_the_record_up_after_its_attempts(disk_archive: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    cfg = replay_config(state, disk_archive)
    for _ in range(4):
        _run_with(cfg, fail="01:48", times=10)
    st = build(cfg, once=True).state
    failures = [f for f in st.product_failures() if f["product"] == "regions"]
    assert len(failures) == 1 and failures[0]["given_up"] and failures[0]["attempts"] == 5
    assert "injected failure" in failures[0]["last_error"]
    # Given up: no longer offered, and the others are complete.
    c = _counts(state)
    assert c["processed:regions"] == 2 and c["processed:data_health"] == 6


def _keys(state: Path) -> list[str]:
    with sqlite3.connect(state / "state.sqlite") as c:
        return [r[0] for r in c.execute("SELECT DISTINCT record FROM frames")]


def test_a_stop_ends_the_dispatch_between_units_and_a_restart_completes_it(disk_archive: Path, tmp_path: Path) -> None:
    """SIGTERM during a dispatch waits for the unit in hand only; the rest is recovered at the next start."""
    state = tmp_path / "state"
    cfg = replay_config(state, disk_archive)
    app = build(cfg, once=True)
    d = Daemon(app, once=True)
    regions = next(p for p in app.products if isinstance(p, RegionsProduct))
    inner = regions.process

    def stop_after_first(frames):  # type: ignore[no-untyped-def]
        d.stop_event.set()  # what the SIGTERM handler does, while the first magnetogram is processed
        return inner(frames)

    regions.process = stop_after_first  # type: ignore[method-assign]
    summary = d.run()
    c1 = _counts(state)
    assert c1["processed:regions"] == 1 and c1["store:region"] == 2  # the unit in hand was finished
    assert c1["processed:data_health"] < 6  # the rest of the poll's frames were left
    assert summary.product_failures == {}
    _run_with(cfg, fail=None)  # the restart offers what was left
    assert _counts(state) == _reference(disk_archive, tmp_path)


def test_two_poll_threads_dispatching_the_same_records_process_each_once(disk_archive: Path, tmp_path: Path) -> None:
    """The daemon's poll threads each dispatch and recover: a record in progress in one is not redone by another."""
    import threading

    state = tmp_path / "state"
    app = build(replay_config(state, disk_archive), once=True)
    mags = next(i for i in app.ingestors if i.source.kind == "magnetogram")
    frames = []
    while True:
        res = mags.poll()
        frames += res.frames
        if res.remaining == 0:
            break
    regions = next(p for p in app.products if isinstance(p, RegionsProduct))
    inner = regions.process
    seen: list[str] = []

    def counting(batch):  # type: ignore[no-untyped-def]
        seen.extend(f.key for f in batch)
        return inner(batch)

    regions.process = counting  # type: ignore[method-assign]
    threads = [threading.Thread(target=app.fanout.dispatch, args=(frames,)) for _ in range(2)]
    threads += [threading.Thread(target=app.fanout.recover, args=(app.sources,))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(seen) == sorted({f.key for f in frames}) and len(seen) == 3
