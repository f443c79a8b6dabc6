"""Incremental ingest against the stand-in over real HTTP, with faults injected."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from heliowatch.daemon.metrics import Metrics
from heliowatch.daemon.state import StateStore
from heliowatch.models.core.times import Clock, FixedClock
from heliowatch.pipelines.errors import SourceUnavailable
from heliowatch.pipelines.frames import Source, load_frame
from heliowatch.pipelines.ingest import Ingestor, RetryBackoff
from heliowatch.pipelines.jsoc import JsocClient, RetryPolicy

MAG = Source("magnetogram", "hmi.M_720s_nrt", ("magnetogram",))
END_OF_ARCHIVE = dt.datetime(2024, 5, 10, 3, tzinfo=dt.UTC).timestamp()


def make_ingestor(
    url: str,
    state_dir: Path,
    *,
    retries: int = 2,
    metrics: Metrics | None = None,
    timeout_s: float = 5.0,
    source: Source = MAG,
    clock: float | Clock = END_OF_ARCHIVE,
    backoff: RetryBackoff | None = None,
) -> Ingestor:
    """An ingestor of ``source`` from the stand-in at ``url`` into ``state_dir``; ``clock``: archive time or a clock."""
    client = JsocClient(
        url,
        email="ops@example.org",
        timeout_s=timeout_s,
        retry=RetryPolicy(retries=retries, base_s=0.01, max_s=0.02, sleep=lambda _: None),
        observer=metrics,
    )
    state_dir.mkdir(parents=True, exist_ok=True)
    state = StateStore(f"sqlite:///{state_dir / 'state.sqlite'}")
    return Ingestor(
        source,
        client,
        state,
        state_dir / "frames",
        clock=FixedClock(clock) if isinstance(clock, int | float) else clock,
        observer=metrics,
        lookback_hours=24,
        backoff=backoff,
    )


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    v = metrics.registry.get_sample_value(name, labels)
    return 0.0 if v is None else v


def test_ingests_all_good_records_and_skips_bad_quality(tiny_archive: Path, standin_factory, tmp_path: Path) -> None:
    m = Metrics()
    ing = make_ingestor(standin_factory(tiny_archive).url, tmp_path, metrics=m)
    res = ing.poll()
    assert (res.found, res.ingested, res.skipped_quality, res.rejected) == (8, 7, 1, 0)
    assert ing.state.frame_counts() == {"hmi.M_720s_nrt": 7}
    assert sample(m, "heliowatch_rejected_records_total", series="hmi.M_720s_nrt", reason="quality") == 1
    assert sample(m, "heliowatch_ingested_records_total", series="hmi.M_720s_nrt") == 7
    # The high-water mark is the newest T_REC, in UTC.
    assert ing.state.high_water("hmi.M_720s_nrt")[0] == "2024-05-10T01:24:00.000Z"
    # A second poll finds nothing new: no duplicates, and the bad record is not retried.
    again = ing.poll()
    assert (again.new, again.ingested, again.skipped_quality) == (0, 0, 0)
    assert len(ing.state.frames()) == 7


def test_ingested_frame_has_keywords_merged_and_no_part_files(tiny_archive: Path, standin_factory, tmp_path: Path) -> None:
    ing = make_ingestor(standin_factory(tiny_archive).url, tmp_path)
    res = ing.poll()
    fr = res.frames[0]
    frame = load_frame(fr.paths["magnetogram"])
    assert frame.header["T_REC"] == "2024.05.10_00:00:37_TAI"
    assert frame.header["CAMERA"] == 3
    assert fr.record.t_rec_utc == "2024-05-10T00:00:00.000Z"
    assert not list((tmp_path / "frames").rglob("*.part"))
    rows = ing.state.frames()
    assert all(len(r["sha256"]) == 64 and r["size"] > 0 for r in rows)


def test_jsoc_down_then_recovery_catches_up_without_gaps(tiny_archive: Path, standin_factory, tmp_path: Path) -> None:
    m = Metrics()
    srv = standin_factory(tiny_archive, fault="5xx_first=9")
    ing = make_ingestor(srv.url, tmp_path, retries=2, metrics=m)
    for _ in range(3):  # three polls while the JSOC answers 503 to everything (3 attempts each)
        with pytest.raises(SourceUnavailable, match="503"):
            ing.poll()
    assert sample(m, "heliowatch_jsoc_requests_total", endpoint="check_address", outcome="http_5xx") == 9
    assert sample(m, "heliowatch_jsoc_retries_total", endpoint="check_address") == 6
    assert ing.state.frame_counts() == {}
    res = ing.poll()  # the JSOC is back
    assert res.ingested == 7
    times = [r["t_rec_utc"] for r in sorted(ing.state.frames(), key=lambda r: r["t_rec_utc"])]
    assert len(times) == len(set(times)) == 7


def test_transient_5xx_is_retried_within_a_poll(tiny_archive: Path, standin_factory, tmp_path: Path) -> None:
    m = Metrics()
    ing = make_ingestor(standin_factory(tiny_archive, fault="5xx=0.3,seed=7").url, tmp_path, retries=6, metrics=m)
    res = ing.poll()
    assert res.ingested + res.rejected == 7
    assert sum(s.value for s in m.jsoc_retries.collect()[0].samples if s.name.endswith("_total")) > 0
    while ing.poll().ingested:
        pass
    assert ing.state.frame_counts() == {"hmi.M_720s_nrt": 7}


@pytest.mark.parametrize("fault", ["truncate_first=2", "corrupt_first=2"])
def test_bad_downloads_are_rejected_then_retried(tiny_archive: Path, standin_factory, tmp_path: Path, fault: str) -> None:
    m = Metrics()
    ing = make_ingestor(standin_factory(tiny_archive, fault=fault).url, tmp_path, metrics=m)
    first = ing.poll()
    assert first.rejected == 2
    assert first.ingested == 5
    reasons = ["truncated"] if fault.startswith("truncate") else ["corrupt", "checksum"]
    assert sum(sample(m, "heliowatch_rejected_records_total", series="hmi.M_720s_nrt", reason=r) for r in reasons) == 2
    assert not list((tmp_path / "frames").rglob("*.part"))
    # Never ingested broken: every file on record reads back as valid FITS.
    for row in ing.state.frames():
        assert load_frame(row["path"]).data.shape == (64, 64)
    second = ing.poll()
    assert second.ingested == 2
    assert ing.state.frame_counts() == {"hmi.M_720s_nrt": 7}
    assert ing.state.reject_summary()[0]["reason"] == "quality"  # retried records are cleared


def test_download_timeout_is_retried(tiny_archive: Path, standin_factory, tmp_path: Path) -> None:
    m = Metrics()
    srv = standin_factory(tiny_archive, fault="timeout_first=1,hang_s=3")
    ing = make_ingestor(srv.url, tmp_path, metrics=m, timeout_s=1.0)
    res = ing.poll()
    assert res.ingested == 7
    assert sample(m, "heliowatch_jsoc_requests_total", endpoint="check_address", outcome="timeout") == 1


def test_oversized_download_is_refused(tiny_archive: Path, standin_factory, tmp_path: Path) -> None:
    ing = make_ingestor(standin_factory(tiny_archive).url, tmp_path)
    ing.client.max_file_bytes = 1000
    res = ing.poll()
    assert res.ingested == 0
    assert res.rejected == 7
    assert {r["reason"] for r in ing.state.reject_summary()} == {"size", "quality"}


def test_aia_channel_reorder_window_catches_late_frames(tmp_path: Path, standin_factory) -> None:
    from tests.conftest import write_record

    root = tmp_path / "aia"
    root.mkdir()
    t0 = dt.datetime(2024, 5, 10)
    for i in range(30):
        write_record(root, series="aia.lev1_nrt2", segment="image_lev1", t_rec=t0 + dt.timedelta(seconds=24 * i))
    srv = standin_factory(root, fault="aia_out_of_order=240,seed=1", clock=True)
    src = Source("aia", "aia.lev1_nrt2", ("image_lev1",), wavelength=304, reorder_window_s=1800)
    base = t0.replace(tzinfo=dt.UTC).timestamp()
    ing = make_ingestor(srv.url, tmp_path, source=src, clock=base)
    srv.clock.freeze_at(base + 24 * 15)
    early = ing.poll().ingested
    assert 0 < early < 30
    srv.clock.jump_to_end()
    ing.clock = FixedClock(base + 3600)
    late = ing.poll().ingested
    assert early + late == 30  # late arrivals older than the high-water mark are not lost
    assert ing.state.high_water("aia.lev1_nrt2:304") is not None


def test_frame_store_layout(tiny_archive: Path, standin_factory, tmp_path: Path) -> None:
    ing = make_ingestor(standin_factory(tiny_archive).url, tmp_path)
    ing.poll()
    files = sorted(p.name for p in (tmp_path / "frames" / "hmi.M_720s_nrt" / "2024-05-10").glob("*.fits"))
    assert files[0] == "hmi.M_720s_nrt.20240510_000037_TAI.3.magnetogram.fits"
    side = json.loads(
        (tmp_path / "frames" / "hmi.M_720s_nrt" / "2024-05-10" / files[0]).with_suffix(".keywords.json").read_text()
    )
    assert side["QUALITY"] == 0
