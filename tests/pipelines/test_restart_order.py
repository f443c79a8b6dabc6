"""A restart gives the products what an unbroken run gave them: the same payloads, not only the same keys.

Two crash points the kill harness (``tests/e2e/test_kill.py``) found, made deterministic here
with an in-process daemon on a small archive (three full disks and the demo's SHARPs):

- the regions product had processed every magnetogram, the flare product not yet its SHARP:
  after the restart the in-memory catalogue was empty, and the forecast lost the region's
  Mt. Wilson class (now the catalogue's entries are part of their publisher's saved state);
- a crash right after the magnetograms were ingested, before the SHARPs were: the restart
  processed the magnetograms before polling the SHARPs, and the last region lost its HARP
  (now ``--once`` offers what a crash left in one time order with what it polls).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from heliowatch.daemon.service import Daemon
from heliowatch.daemon.wiring import build
from heliowatch.pipelines.products.regions import RegionsProduct
from tests.kill_harness import build_archive
from tests.pipelines.test_fanout import replay_config


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_archive(tmp_path_factory.mktemp("restart-order") / "archive")


def _payloads(state: Path) -> dict[tuple[str, str], str]:
    with sqlite3.connect(state / "state.sqlite") as c:
        rows = c.execute("SELECT product, key, payload FROM products WHERE product IN ('region', 'flare_region')")
        return {(p, k): v.replace(str(state), "<state>") for p, k, v in rows}


@pytest.fixture(scope="module")
def reference(archive: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], str]:
    state = tmp_path_factory.mktemp("reference")
    Daemon(build(replay_config(state, archive), once=True), once=True).run()
    got = _payloads(state)
    # What the two crashes spoil is there to be spoilt: a class on the forecast, a HARP on the region.
    assert any('"mtwilson": "beta"' in v for (p, _), v in got.items() if p == "flare_region")
    assert any('"harpnum": 377' in v for (p, k), v in got.items() if p == "region" and k.startswith("2011-02-15T02:00"))
    return got


class StopAfter:
    """Stops the daemon once the regions product has processed the frame at ``t_rec``: the dispatch
    ends before the next unit, as a kill there would end it (the flare product's SHARP is next)."""

    def __init__(self, product: RegionsProduct, daemon: Daemon, t_rec: str) -> None:
        self.inner, self.daemon, self.t_rec = product.process, daemon, t_rec
        product.process = self  # type: ignore[method-assign]

    def __call__(self, frames):  # type: ignore[no-untyped-def]
        batch = self.inner(frames)
        if any(f.t_rec_utc.startswith(self.t_rec) for f in frames):
            self.daemon.stop_event.set()
        return batch


def test_a_forecast_after_a_restart_keeps_the_classes_of_regions_processed_before_it(
    archive: Path, tmp_path: Path, reference: dict[tuple[str, str], str]
) -> None:
    cfg = replay_config(tmp_path / "state", archive)
    app = build(cfg, once=True)
    first = Daemon(app, once=True)
    StopAfter(next(p for p in app.products if isinstance(p, RegionsProduct)), first, "2011-02-15T01:48")
    first.run()  # the magnetograms to 01:48 processed, the SHARP of 01:59 not
    assert not any(p == "flare_region" for p, _ in _payloads(tmp_path / "state"))
    Daemon(build(cfg, once=True), once=True).run()  # the restart, with a fresh in-memory catalogue
    assert _payloads(tmp_path / "state") == reference


def test_records_ingested_before_a_crash_are_processed_in_time_order_with_the_rest(
    archive: Path, tmp_path: Path, reference: dict[tuple[str, str], str]
) -> None:
    cfg = replay_config(tmp_path / "state", archive)
    app = build(cfg, once=True)
    mag = next(i for i in app.ingestors if i.source.kind == "magnetogram")
    assert mag.poll().ingested == 3  # the magnetograms ingested, the SHARPs not: then the kill
    app.close()
    Daemon(build(cfg, once=True), once=True).run()
    assert _payloads(tmp_path / "state") == reference
