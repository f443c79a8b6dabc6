"""The jet product on the bundled 304 A sequences: out-of-order frames, gaps, bad frames, a restart, the CLI."""

from __future__ import annotations

import json
import math
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from heliowatch.daemon.config import Config
from heliowatch.daemon.wiring import jets_product, runtime_options
from heliowatch.models.core.times import unix_from_iso
from heliowatch.pipelines.alert_rules import Rules
from heliowatch.pipelines.frames import Source, VerifiedFrame, reload
from heliowatch.pipelines.products.base import Batch
from heliowatch.pipelines.products.jets import JetsProduct
from heliowatch.pipelines.standin.archive import demo_archive_path

AIA = demo_archive_path() / "aia"
TRUTH = json.loads((AIA / "truth.json").read_text())
SOURCE = Source("aia", "aia.lev1_nrt2", ("image_lev1",), wavelength=304)


def _files(seq: int) -> list[Path]:
    first, last = TRUTH["sequences"][seq]["files"]
    names = sorted(p.name for p in AIA.glob("*.fits"))
    return [AIA / n for n in names[names.index(first) : names.index(last) + 1]]


def _frame(path: Path) -> VerifiedFrame:
    h = fits.getheader(path, 1)
    t = str(h["T_REC"])
    return reload(SOURCE, f"aia.lev1_nrt2[{t}][{h['FSN']}]", t, {"image_lev1": path})


def _product(tmp_path: Path, **jets: object) -> JetsProduct:
    cfg = Config().replace(daemon={"state_dir": tmp_path / "state"}, models={"backend": "torch-cpu"}, jets=jets)
    return jets_product(cfg, runtime_options(cfg), rules=Rules(), outputs=tmp_path / "out")


def _run(product: JetsProduct, frames: list[VerifiedFrame]) -> Batch:
    batch = Batch()
    for f in frames:
        batch.extend(product.process([f]))
    return batch.extend(product.end_of_stream())


def _jets(batch: Batch) -> list[dict[str, object]]:
    return [r.payload for r in batch.records if r.kind == "jet"]


@pytest.fixture(scope="module")
def in_order(tmp_path_factory: pytest.TempPathFactory) -> Batch:
    return _run(_product(tmp_path_factory.mktemp("jets")), [_frame(p) for p in _files(0)])


def test_the_jet_is_found_once_located_and_measured(in_order: Batch) -> None:
    (ev,) = _jets(in_order)
    (truth,) = TRUTH["sequences"][0]["jets"]
    assert math.dist(ev["base_hpc_arcsec"], truth["base_hpc_arcsec"]) < 15  # type: ignore[arg-type]
    assert abs(float(ev["speed_km_s"]) - truth["speed_km_s"]) / truth["speed_km_s"] < 0.3  # type: ignore[arg-type]
    assert abs(float(ev["start_utc"] and unix_from_iso(str(ev["start_utc"]))) - truth["start_t"]) < 120
    # One alert (when the jet was confirmed), with the strip attached; not repeated when it ended.
    assert [a.kind for a in in_order.alerts] == ["jet"]
    assert any(str(p).endswith("strip.png") for p in in_order.alerts[0].attachments)
    names = sorted(f.path.name for f in in_order.files)
    assert any(n.endswith(".gif") for n in names) and any(n.endswith("-overview.png") for n in names)
    assert any(n.endswith(".voevent.xml") for n in names) and any(n.endswith(".hek.json") for n in names)


def test_the_jet_free_sequence_gives_nothing(tmp_path: Path) -> None:
    batch = _run(_product(tmp_path), [_frame(p) for p in _files(1)])
    assert _jets(batch) == [] and batch.alerts == []


def test_out_of_order_arrival_with_gaps_gives_the_same_event(tmp_path: Path, in_order: Batch) -> None:
    frames = [_frame(p) for p in _files(0)]
    del frames[12], frames[20]  # two gaps, each within the tolerated run of missing frames
    rng = random.Random(4)
    # NRT order: each frame up to one cadence late (the product holds frames 36 s for late ones).
    arrival = sorted(range(len(frames)), key=lambda i: i + rng.uniform(0, 1.4))
    assert arrival != sorted(arrival)
    product = _product(tmp_path)
    batch = _run(product, [frames[i] for i in arrival])
    (ev,) = _jets(batch)
    (ref,) = _jets(in_order)
    assert math.dist(ev["base_hpc_arcsec"], ref["base_hpc_arcsec"]) < 5  # type: ignore[arg-type]
    assert product.latest.late == 0


def test_bad_frames_are_refused_with_reasons_and_the_stream_goes_on(tmp_path: Path) -> None:
    paths = _files(0)
    bad = tmp_path / "bad"
    bad.mkdir()
    frames = [_frame(p) for p in paths]
    for k, (key, value) in enumerate([("WAVELNTH", 171), ("EXPTIME", 0.0)]):
        dst = bad / paths[5 + k].name
        shutil.copy(paths[5 + k], dst)
        with fits.open(dst, mode="update") as h:
            h[1].header[key] = value
        frames[5 + k] = _frame(dst)
    nan = bad / ("nan-" + paths[9].name)
    with fits.open(paths[9]) as h:
        fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(np.full_like(h[1].data, np.nan), header=h[1].header)]).writeto(nan)
    frames[9] = _frame(nan)
    product = _product(tmp_path)
    batch = _run(product, frames)
    assert dict(product.latest.rejected) == {"wavelength": 1, "exposure": 1, "all_nan": 1}
    assert len(_jets(batch)) == 1  # the jet is still found


def test_a_restart_replays_the_window_and_neither_loses_nor_repeats(tmp_path: Path, in_order: Batch) -> None:
    frames = [_frame(p) for p in _files(0)]
    first = _product(tmp_path)
    early = Batch()
    for f in frames[:17]:
        early.extend(first.process([f]))
    state = json.loads(json.dumps(first.state()))  # what the state store keeps (JSON)
    second = _product(tmp_path)
    second.restore(state)
    late = _run(second, frames[17:])
    events = _jets(early) + _jets(late)
    (ref,) = _jets(in_order)
    assert [e["key"] for e in events] == [ref["key"]]
    assert len(early.alerts) + len(late.alerts) == 1


def test_a_window_with_too_many_gaps_has_no_probability_and_says_why(tmp_path: Path) -> None:
    frames = [_frame(p) for p in _files(0)]
    product = _product(tmp_path)
    plan_windows = []
    for f in frames[:12] + frames[16:20]:  # a run of 4 missing frames cuts the window
        an = product.analyse(f)
        plan_windows += product.advance([f], [an]).windows
    before, last = plan_windows[9], plan_windows[-1]
    assert before["ready"] and before["max_probability"] is not None
    assert last["max_probability"] is None and last["n_frames"] < 10
    assert last["reason"] == f"{last['n_frames']} frames in the window, 10 needed"


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "heliowatch.daemon.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=600, check=False
    )


def test_jets_command_json_contract(tmp_path: Path) -> None:
    seq = tmp_path / "seq"
    seq.mkdir()
    for p in _files(0):
        shutil.copy(p, seq / p.name)
    p = _cli("jets", str(seq), "--json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["schema_version"] and out["model"]["synthetic_model"] is True
    (ev,) = out["events"]
    for k in (
        "start_utc",
        "peak_utc",
        "end_utc",
        "base_hpc_arcsec",
        "hgs_lat",
        "hgs_lon",
        "direction_deg",
        "length_arcsec",
        "speed_km_s",
        "probability",
        "detector",
        "degraded",
    ):
        assert k in ev, k
    ready = [w for w in out["windows"] if w["ready"]]
    assert ready and len(ready[0]["probabilities"]) == len(out["tiles"]) == 4
    free = tmp_path / "free"
    free.mkdir()
    for f in _files(1):
        shutil.copy(f, free / f.name)
    p = _cli("jets", str(free), "--json", cwd=tmp_path)
    assert p.returncode == 0 and json.loads(p.stdout)["events"] == []
    p = _cli("jets", str(tmp_path / "nothing-here"), cwd=tmp_path)
    assert p.returncode == 2 and "does not exist" in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_jets_command_takes_a_rendered_movie(tmp_path: Path, shared_data: Path) -> None:
    movie = shared_data / "sjh-jet-animations" / "fits" / "70446299"
    p = _cli("jets", str(movie), "--json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert any(f.startswith("rendered levels") for f in out["flags"]) and any(f.startswith("short") for f in out["flags"])
    assert out["events"], "the volunteers' jet 70446299 is found (both detectors find it)"


def test_network_alone_on_a_movie_follows_its_own_gate(tmp_path: Path, shared_data: Path) -> None:
    """With the network as the only detector, an event needs its probability above the card's
    threshold in consecutive windows; the daemon's gate for the network alone (0.99) is the
    configuration's, and is what `--detector convlstm` replaces."""
    movie = shared_data / "sjh-jet-animations" / "fits" / "70445611"
    p = _cli("jets", str(movie), "--json", "--detector", "convlstm", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    best = max(max(w["probabilities"]) for w in out["windows"] if w["probabilities"])
    threshold = out["model"]["threshold"]
    assert (best >= threshold) == bool(out["events"]), (best, threshold, out["events"])
    both = json.loads(_cli("jets", str(movie), "--json", cwd=tmp_path).stdout)
    assert all(e["probability"] >= 0.99 or "baseline" in e["detector"] for e in both["events"])
