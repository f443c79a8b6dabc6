"""The physics jet baseline, event merging and the evaluation harness, on scenes whose truth is known."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pytest

from heliowatch.models.core.errors import UsageError
from heliowatch.models.jets.baseline import BaselineDetector, BaselineTracker, JetDetection
from heliowatch.models.jets.evaluate import (
    choose_threshold,
    classification_metrics,
    extend_sequence,
    false_alarms_per_hour,
    load_aia_sequence,
    localisation_errors,
    match,
)
from heliowatch.models.jets.events import merge
from heliowatch.models.jets.frames import PooledFrame, position_angle
from heliowatch.models.synthetic.jets import FullDiskScene, JetSpec, inject_jet, synth_jet_cutout

T0 = dt.datetime(2013, 5, 4, 12, 0, tzinfo=dt.UTC)


def _scene_with_jet(centre: tuple[float, float], base: tuple[float, float], direction: float, *, seed: int, **kw: float) -> tuple:
    scene = FullDiskScene(T0, shape=(166, 166), centre_hpc_arcsec=centre, seed=seed, n_frames=30)
    spec = JetSpec(
        base_hpc_arcsec=base,
        direction_deg=direction,
        speed_km_s=kw.get("speed", 150.0),
        height_arcsec=kw.get("height", 90.0),
        fwhm_arcsec=kw.get("fwhm", 12.0),
        duration_s=kw.get("duration", 900.0),
        start_t=scene.t0 + 120.0,
        contrast=kw.get("contrast", 0.8),
    )
    scene.add_jet(spec)
    return [scene.frame(k) for k in range(scene.n_frames)], scene.truth()["jets"][0]


def _best_near(dets: list[JetDetection], base: tuple[float, float]) -> tuple[JetDetection, float]:
    assert dets, "no jet found"
    d = min(dets, key=lambda x: math.hypot(x.base_hpc_arcsec[0] - base[0], x.base_hpc_arcsec[1] - base[1]))
    return d, math.hypot(d.base_hpc_arcsec[0] - base[0], d.base_hpc_arcsec[1] - base[1])


def _angle(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


def test_on_disk_jet_base_direction_speed() -> None:
    frames, truth = _scene_with_jet((-300.0, 150.0), (-320.0, 120.0), 40.0, seed=11)
    dets = BaselineDetector().detect(frames)
    d, err = _best_near(dets, truth["base_hpc_arcsec"])
    assert err < 20.0
    assert _angle(d.direction_deg, 40.0) < 20.0
    assert d.speed_km_s is not None and d.speed_km_s == pytest.approx(150.0, rel=0.3)
    assert d.length_arcsec == pytest.approx(truth["length_arcsec"], rel=0.4)
    assert d.on_disk and math.isfinite(d.hgs_lat)
    assert truth["start_t"] - 60 <= d.start_t <= truth["peak_t"]
    assert len(dets) == 1  # and nothing else in the field (bright points, loops, noise)


def test_limb_jet_is_found_and_has_no_stonyhurst_position_beyond_the_limb() -> None:
    # North-east limb: a radial jet rising from a base 29" above the limb (as many catalogue bases are).
    rsun = FullDiskScene(T0, shape=(16, 16), n_frames=2, distractors=False).geo["rsun"]
    pa = 20.0
    ux, uy = -math.sin(math.radians(pa)), math.cos(math.radians(pa))
    base = (1.03 * rsun * ux, 1.03 * rsun * uy)
    centre = (base[0] + 40 * ux, base[1] + 40 * uy)
    frames, _truth = _scene_with_jet(centre, base, pa, seed=12, contrast=0.6, height=100.0)
    dets = BaselineDetector().detect(frames)
    d, err = _best_near(dets, base)
    assert err < 40.0
    assert _angle(d.direction_deg, pa) < 30.0
    assert not d.on_disk and math.isnan(d.hgs_lat)
    assert float(position_angle(*d.base_hpc_arcsec)) == pytest.approx(pa, abs=5.0)


@pytest.mark.parametrize("seed", [200, 203, 206, 209, 212, 215])
def test_distractors_alone_raise_no_jet(seed: int) -> None:
    # Flickering bright points, network bursts, oscillating loops, the spicule fringe, exposure
    # changes and noise, at catalogue-like places (most at the limb).
    frames, truth = synth_jet_cutout(T0, jet=False, stats=None, seed=seed)
    assert truth["distractors"]
    assert BaselineDetector().detect(frames) == []


def test_exposure_steps_are_normalised_away() -> None:
    scene = FullDiskScene(T0, shape=(166, 166), centre_hpc_arcsec=(-200.0, 100.0), seed=4, n_frames=30)
    scene.exposure.exptime[10:13] = 0.8
    scene.exposure.scale[10:13] = 0.6  # an uncorrected exposure change: the whole frame 40 % dimmer
    frames = [scene.frame(k) for k in range(30)]
    assert BaselineDetector().detect(frames) == []


def test_tracker_is_incremental_and_agrees_with_detect() -> None:
    frames, _truth = _scene_with_jet((-300.0, 150.0), (-320.0, 120.0), 40.0, seed=11)
    tr = BaselineTracker()
    seen: list[JetDetection] = []
    when = []
    for f in frames:
        got = tr.update(f)
        seen += got
        when += [f.t_unix] * len(got)
    seen += tr.flush()
    batch = BaselineDetector().detect(frames)
    assert [(d.base_px, d.start_t) for d in sorted(seen, key=lambda d: -d.score)] == [(d.base_px, d.start_t) for d in batch]
    fresh = BaselineTracker()
    fresh.update(frames[3])
    with pytest.raises(UsageError, match="time order"):
        fresh.update(frames[2])


def test_semi_real_injected_jet_is_found(shared_data: Path) -> None:
    real = extend_sequence(load_aia_sequence(shared_data / "aia304-sequence-20220402" / "aia_diff"))
    f0 = real[0]
    bx, by = f0.pixel_to_hpc(25, 50)  # on the disk, beside the erupting filament
    spec = JetSpec(
        base_hpc_arcsec=(float(bx), float(by)),
        direction_deg=20.0,
        speed_km_s=120.0,
        height_arcsec=80.0,
        fwhm_arcsec=10.0,
        duration_s=900.0,
        start_t=f0.t_unix + 96,
        contrast=1.0,
    )
    frames, _truth = inject_jet(real, spec, seed=3)
    dets = BaselineDetector().detect(frames)
    d, err = _best_near(dets, spec.base_hpc_arcsec)
    assert err < 25.0
    assert _angle(d.direction_deg, 20.0) < 25.0


# -- events ---------------------------------------------------------------------------------------


def _det(
    x: float, y: float, t: float, *, detector: str = "baseline", score: float = 0.9, pa: float = 0.0, length: float = 80.0
) -> JetDetection:
    return JetDetection(
        base_px=(0.0, 0.0),
        base_hpc_arcsec=(x, y),
        direction_deg=pa,
        length_arcsec=length if detector == "baseline" else 0.0,
        speed_km_s=150.0 if detector == "baseline" else None,
        start_t=t,
        peak_t=t + 120,
        end_t=t + 300,
        score=score,
        detector=detector,
        n_frames=12,
        hgs_lat=10.0,
        hgs_lon=-20.0,
    )


def test_network_tile_detection_merges_with_the_baseline_jet() -> None:
    t = 1.4e9
    base = _det(-300.0, 100.0, t, pa=0.0, length=90.0)
    # The network's tile reports its brightest change, 70" up the spire, and a probability.
    net = _det(-300.0, 170.0, t + 48, detector="convlstm", score=0.97)
    other = _det(400.0, -300.0, t + 30)
    events = merge([net, base, other], l0_deg=100.0)
    assert len(events) == 2
    ev = next(e for e in events if "convlstm" in e.detectors)
    assert ev.detectors == ["baseline", "convlstm"]
    assert ev.base_hpc_arcsec == (-300.0, 100.0)  # geometry from the baseline, which measures it
    assert ev.probability == pytest.approx(0.97)
    assert ev.carrington_lon == pytest.approx(80.0)
    d = ev.as_dict()
    assert d["detector"] == "baseline+convlstm" and d["speed_km_s"] == 150.0


def test_event_key_is_stable_across_windows_and_tiles() -> None:
    t = 1.4e9 + 37
    first_window = [_det(-300.0, 100.0, t)]
    # The next window sees the same jet again (later start, base a few arcsec off, another tile).
    next_window = [_det(-296.0, 104.0, t + 240), _det(-302.0, 97.0, t + 240, detector="convlstm", score=0.8)]
    k1 = merge(first_window)[0].key
    both = merge(first_window + next_window)
    assert len(both) == 1 and both[0].key == k1
    assert merge(next_window)[0].key == k1  # alone, too (same 10-min bin and 100" cell)
    far_later = merge([_det(-300.0, 100.0, t + 3600)])[0]
    assert far_later.key != k1


# -- the evaluation harness -------------------------------------------------------------------------


def test_threshold_is_chosen_on_the_tuning_split_only() -> None:
    y_tune = np.array([1, 1, 1, 0, 0, 0])
    s_tune = np.array([0.9, 0.8, 0.4, 0.3, 0.2, 0.1])
    th = choose_threshold(y_tune, s_tune, objective="f1")
    assert th == pytest.approx(0.4)
    m = classification_metrics(np.array([1, 0, 1, 0]), np.array([0.95, 0.5, 0.2, 0.1]), th)
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (1, 1, 1, 1)
    assert m["accuracy"] == 0.5 and m["auc"] == pytest.approx(0.75)
    assert choose_threshold(y_tune, s_tune, objective="recall", min_recall=0.6) == pytest.approx(0.8)


def test_match_and_error_summaries() -> None:
    truth = [
        {
            "base_hpc_arcsec": (0.0, 0.0),
            "start_t": 0.0,
            "end_t": 600.0,
            "direction_deg": 10.0,
            "speed_km_s": 100.0,
            "length_arcsec": 80.0,
        }
    ]
    d_ok = _det(5.0, 0.0, 100.0, pa=350.0)
    d_far = _det(500.0, 0.0, 100.0)
    ms, fa = match([d_far, d_ok], truth)
    assert ms[0].detection is d_ok and fa == [d_far]
    e = localisation_errors(ms)
    assert e["base_error_arcsec"]["median"] == pytest.approx(5.0)
    assert e["direction_error_deg"]["median"] == pytest.approx(20.0)
    assert e["speed_rel_error"]["median"] == pytest.approx(0.5)
    r = false_alarms_per_hour(3, 2.0)
    assert r["per_hour"] == 1.5 and r["per_hour_95_lo"] < 1.5 < r["per_hour_95_hi"]
    assert false_alarms_per_hour(0, 4.0)["per_hour_95_hi"] == pytest.approx(3.689 / 4.0, rel=1e-3)


def test_bad_input_is_a_usage_error() -> None:
    f = PooledFrame(
        data=np.zeros((8, 8), np.float32), t_unix=0.0, arcsec_per_px=1.8, x0_arcsec=0.0, y0_arcsec=0.0, rsun_arcsec=960.0
    )
    with pytest.raises(UsageError, match="at least 3 frames"):
        BaselineDetector().detect([f])
    with pytest.raises(UsageError, match="2-D"):
        PooledFrame(data=np.zeros(5, np.float32), t_unix=0.0, arcsec_per_px=1.8, x0_arcsec=0.0, y0_arcsec=0.0, rsun_arcsec=960.0)
