"""Running window averages of tracked patches: missing frames, gaps, out-of-order frames, the grid."""

from __future__ import annotations

import numpy as np
import pytest

from heliowatch.models.core.errors import UsageError
from heliowatch.models.emergence.averaging import AveragingConfig, PatchAverager

CAD = 720.0


def _frame(value: float, n: int = 2) -> np.ndarray:
    return np.full((n, 5, 5), value, np.float32)


def test_seed_window_holds_34_or_35_frames_and_missing_frames_are_counted() -> None:
    cfg = AveragingConfig(anchor_s=0.0)
    assert cfg.nominal_frames == 34
    avg = PatchAverager(cfg)
    done = []
    skip_all = {5, 6}  # two frames never delivered
    skip_b = {10, 11, 12}  # patch "b" skipped (e.g. too few valid pixels) in three more
    for i in range(60):
        if i in skip_all:
            continue
        ids = ["a"] if i in skip_b else ["a", "b"]
        data = _frame(float(i), len(ids))
        data[0, 0, 0] = np.nan  # one bad pixel in "a" every frame: averaged over the others
        step = avg.add(i * CAD, ids, data)
        assert step.ignored is None and not step.restarted
        done += step.completed
    w0 = {w.patch_id: w for w in done if w.k == 0}
    # Window 0 is [0, 410 min): slots 0..34 (35 of them at this phase).
    assert w0["a"].n_expected == 35 and w0["a"].n_frames == 33 and w0["a"].n_missing == 2
    assert w0["b"].n_frames == 30 and w0["b"].n_missing == 5
    used_a = [i for i in range(35) if i not in skip_all]
    assert w0["a"].data[2, 2] == pytest.approx(np.mean(used_a))
    assert np.isnan(w0["a"].data[0, 0])  # no frame had data there
    assert w0["a"].restarted and w0["a"].previous is None and not w0["a"].after_gap  # start of the data
    assert w0["a"].t_end_s - w0["a"].t_start_s == 410 * 60


def test_a_long_gap_restarts_with_a_flag_and_never_raises() -> None:
    cfg = AveragingConfig(window_s=4 * CAD, stride_s=4 * CAD, min_fraction=0.75, max_gap_s=2 * 3600)
    avg = PatchAverager(cfg)
    kept, dropped = [], []
    # A 5-hour outage that cuts window 2 (frames 8, 9 of 4) and starts again inside window 9.
    times = [i * CAD for i in range(10)] + [13 * CAD + 5 * 3600 + i * CAD for i in range(12)]
    restarts = 0
    for t in times:
        step = avg.add(t, ["p"], _frame(1.0, 1))
        restarts += step.restarted
        if step.restarted:
            assert step.gap_s == pytest.approx(5 * 3600 + 4 * CAD)
        kept += step.completed
        dropped += step.dropped
    kept += avg.flush().completed
    assert restarts == 1 and avg.counters["restarts"] == 1
    ks = [w.k for w in kept]
    assert ks[:2] == [0, 1] and 2 not in ks
    assert [w.restarted for w in kept[:2]] == [True, False]
    assert kept[1].previous is not None
    after = [w for w in kept if w.t_start_s > 10 * CAD]
    assert after and after[0].after_gap and after[0].restarted and after[0].previous is None  # no trend across the gap
    assert not after[1].restarted and after[1].previous is not None
    why = {k: r for _, k, r in dropped}
    assert "2 of 4 frames" in why[2] and "gap of 5.8 h" in why[2]  # closed by the restart with too few frames
    assert "2 of 4 frames" in why[9]  # the partial window after the restart


def test_out_of_order_duplicate_and_off_cadence_frames() -> None:
    avg = PatchAverager(AveragingConfig(window_s=4 * CAD, stride_s=2 * CAD))
    assert avg.add(0.0, ["p"], _frame(1.0, 1)).ignored is None
    assert avg.add(CAD, ["p"], _frame(1.0, 1)).ignored is None
    assert "out of order" in str(avg.add(CAD, ["p"], _frame(9.0, 1)).ignored)
    assert "out of order" in str(avg.add(0.5 * CAD, ["p"], _frame(9.0, 1)).ignored)
    assert "not a finite" in str(avg.add(float("nan"), ["p"], _frame(9.0, 1)).ignored)
    assert "does not match" in str(avg.add(3 * CAD, ["p", "q"], _frame(9.0, 1)).ignored)
    step = avg.add(2.5 * CAD, ["p"], _frame(1.0, 1))
    assert step.flags == ["off_cadence"]
    assert avg.counters["ignored"] == 4 and avg.counters["off_cadence"] == 1


def test_sliding_windows_overlap() -> None:
    cfg = AveragingConfig(window_s=6 * CAD, stride_s=CAD, min_fraction=1.0)
    avg = PatchAverager(cfg)
    out = []
    for i in range(20):
        out += avg.add(i * CAD, ["p"], _frame(float(i), 1)).completed
    assert [w.k for w in out] == list(range(0, 14))  # a new average every cadence once a window is full
    assert all(w.n_frames == 6 for w in out)
    assert out[3].data[0, 0] == pytest.approx(np.mean(range(3, 9)))
    with pytest.raises(UsageError, match="min_fraction"):
        AveragingConfig(min_fraction=0.0)
