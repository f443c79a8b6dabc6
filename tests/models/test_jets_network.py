"""The jet network split (encoder + head), its tiles over the disk and limb, the feature cache, the trained model."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from heliowatch.models import registry  # noqa: E402
from heliowatch.models.core.errors import ModelError, UsageError  # noqa: E402
from heliowatch.models.jets.cache import FeatureCache  # noqa: E402
from heliowatch.models.jets.network import JetConvLSTM, check_same_run  # noqa: E402
from heliowatch.models.jets.tiles import NORM_FLOOR_DN_S, TILE, TileGrid, cut, tile_medians  # noqa: E402
from heliowatch.models.skill import roc_auc  # noqa: E402

RSUN_PX = 960.0 / 1.8


def _disk_grid(stride: int = 83) -> TileGrid:
    return TileGrid.build((1365, 1365), 1.8, (682.0, 682.0), RSUN_PX, stride=stride)


# -- network -----------------------------------------------------------------------------------
def test_encoder_then_head_is_the_full_model() -> None:
    torch.manual_seed(0)
    m = JetConvLSTM().eval()
    x = torch.randn(2, 12, 1, TILE, TILE)
    with torch.inference_mode():
        full = m(x)
        feats = torch.stack([m.encoder(x[:, t]) for t in range(x.shape[1])], dim=1)  # one frame at a time, as cached
        split = m.head(feats)
    assert feats.shape == (2, 12, 64)
    torch.testing.assert_close(full, split, rtol=1e-5, atol=1e-6)


def test_registered_encoder_and_head_are_the_full_model_of_one_run() -> None:
    cards = {n: registry.load_card(n) for n in ("jet-convlstm", "jet-encoder", "jet-head")}
    run = check_same_run(cards["jet-encoder"], cards["jet-head"])
    assert cards["jet-convlstm"]["training"]["run_id"] == run
    assert all(c["training"]["synthetic"] is True and c["operational"] is False for c in cards.values())
    full = registry.load_torch("jet-convlstm")
    enc, head = registry.load_torch("jet-encoder"), registry.load_torch("jet-head")
    for k, v in enc.state_dict().items():
        torch.testing.assert_close(full.state_dict()[f"encoder.{k}"], v, rtol=0, atol=0)
    for k, v in head.state_dict().items():
        torch.testing.assert_close(full.state_dict()[f"head.{k}"], v, rtol=0, atol=0)
    with pytest.raises(ModelError, match="different training runs"):
        check_same_run(cards["jet-encoder"], {"training": {"run_id": "other"}})


def test_both_lstm_models_export_with_a_dynamic_time_axis_in_one_process(tmp_path: Path) -> None:
    # torch 2.13 froze the time axis of the second LSTM export in a process (see network._refresh_lstm_dispatch).
    from heliowatch.models.runtime.export import export_model
    from heliowatch.models.runtime.runtime import Runtime

    for name in ("jet-head", "jet-convlstm"):
        assert export_model(name, tmp_path).card["onnx"]["inputs"][0][1][:2] == ["batch", "time"], name
    rt = Runtime("jet-head", export_dir=tmp_path, backend="onnxruntime-cpu", only=True)
    ref = Runtime("jet-head", export_dir=tmp_path, backend="torch-cpu", only=True)
    for t in (10, 30, 48):
        x = np.random.default_rng(t).random((217, t, 64), dtype=np.float32)
        np.testing.assert_allclose(rt.predict(x), ref.predict(x), rtol=1e-4, atol=1e-6)


# -- tiles ---------------------------------------------------------------------------------------
def test_tiles_cover_every_disk_and_limb_pixel_and_skip_empty_sky() -> None:
    for stride in (83, 166):
        g = _disk_grid(stride)
        cov = g.coverage()
        yy, xx = np.mgrid[0:1365, 0:1365]
        r = np.hypot(xx - 682.0, yy - 682.0) / RSUN_PX
        assert (cov[r <= 1.2] > 0).all(), stride
        assert all(t.r_min <= 1.2 for t in g), "a tile with nothing within 1.2 R_sun was kept"
        assert {t.kind for t in g} == {"disk", "limb", "off-limb"}
    g = _disk_grid()
    assert 200 <= len(g) <= 230  # 15 x 15 candidates at stride 83, the empty corners skipped
    for t in g:
        assert t.dst[0].stop - t.dst[0].start == TILE and not t.padded  # the full disk needs no padding
        tx, ty = t.centre_hpc
        assert math.isclose(tx, (t.x0 + 82.5 - 682.0) * 1.8) and math.isclose(ty, (t.y0 + 82.5 - 682.0) * 1.8)
        r_centre = math.hypot(tx, ty) / 960.0
        assert t.r_min <= r_centre <= t.r_max
        assert (t.kind == "disk") == (t.r_max <= 1.0) and (t.kind == "off-limb") == (t.r_min >= 1.0)


def test_a_cutout_smaller_than_a_tile_is_padded_never_resized() -> None:
    rng = np.random.default_rng(1)
    img = rng.uniform(20, 80, (67, 100)).astype(np.float32)  # 120" x 180" at 1.8"/px
    g = TileGrid.single(img.shape)
    assert len(g) == 1 and g.tiles[0].padded
    raw = cut(img, g, normalise=False)
    assert raw.shape == (1, 1, TILE, TILE) and raw.dtype == np.float32
    np.testing.assert_array_equal(raw[0, 0][g.tiles[0].dst], img)  # every pixel, untouched
    assert raw.sum() == pytest.approx(img.sum(), rel=1e-6)  # and nothing else: zeros around
    # Normalised: divided by the cutout's own median; the padding stays zero and is not in the median.
    norm = cut(img, g)
    med = tile_medians(img, g)[0]
    np.testing.assert_allclose(norm[0, 0][g.tiles[0].dst], img / med, rtol=1e-5)
    assert np.count_nonzero(norm) == img.size
    with pytest.raises(UsageError, match="larger than one"):
        TileGrid.single((200, 100))
    with pytest.raises(UsageError, match="does not match"):
        cut(np.zeros((66, 100)), g)


def test_normalisation_cancels_exposure_and_calibration() -> None:
    rng = np.random.default_rng(2)
    g = _disk_grid()
    frame = rng.uniform(20, 80, (1365, 1365)).astype(np.float32)
    a, b = cut(frame, g), cut(frame * 0.23, g)  # the same Sun, a quarter of the sensitivity
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    dark = np.full((166, 166), 0.5, np.float32)  # sky with no signal: the floor, not a blow-up
    assert cut(dark, TileGrid.single(dark.shape)).max() == pytest.approx(0.5 / NORM_FLOOR_DN_S)


def test_grid_from_a_fits_header_and_a_pooled_frame_geometry() -> None:
    hdr = {"CRPIX1": 683.5, "CRPIX2": 683.5, "CRVAL1": 0.0, "CRVAL2": 0.0, "CDELT1": 1.8, "CDELT2": 1.8, "RSUN_OBS": 960.0}
    g = TileGrid.from_header(hdr, (1365, 1365))
    assert g.centre_px == (682.5, 682.5) and g.rsun_px == pytest.approx(RSUN_PX)
    with pytest.raises(UsageError, match="rotate it north up"):
        TileGrid.from_header({**hdr, "CROTA2": 180.0}, (1365, 1365))

    class Geo:
        shape = (100, 120)
        arcsec_per_px = 1.8
        x0_arcsec, y0_arcsec = 700.0, -100.0  # a cutout near the west limb
        rsun_arcsec = 960.0

    (t,) = TileGrid.for_frame(Geo()).tiles
    assert t.centre_hpc[0] == pytest.approx(700.0 + (t.x0 + 82.5) * 1.8)
    assert t.kind == "disk" and t.padded


# -- cache -----------------------------------------------------------------------------------------
def _feats(k: float, n_tiles: int = 3, f: int = 4) -> np.ndarray:
    return np.full((n_tiles, f), k, np.float32)


def test_cache_takes_every_second_frame_of_a_12s_stream() -> None:
    c = FeatureCache(3, 4)
    for k in range(70):
        c.push(1000.0 + 12 * k + (0.3 if k % 3 else -0.2), _feats(k))  # AIA's timing jitter
    feats, info = c.window()
    assert info.ready and not info.degraded and feats.shape == (3, 30, 4)
    np.testing.assert_array_equal(feats[0, :, 0], np.arange(69 - 58, 70, 2))  # frames 11, 13, ..., 69
    np.testing.assert_allclose(np.diff(info.slot_times), 24.0)
    c.push(1000.0 + 12 * 70, _feats(70))  # the next frame: the other 12 s phase
    feats, _ = c.window()
    np.testing.assert_array_equal(feats[0, :, 0], np.arange(12, 71, 2))
    assert len(c) <= 2 * 30 + 1 and c.nbytes == len(c) * 3 * 4 * 4


def test_cache_fills_short_gaps_and_a_long_gap_ends_the_window() -> None:
    c = FeatureCache(3, 4, max_gap=2)
    for k in range(30):
        if k != 20:  # slot 20 never arrives
            c.push(24.0 * k, _feats(k), valid=k != 21)  # slot 21 arrives known bad: a gap too
    feats, info = c.window()
    assert info.ready and info.n_filled == 2 and info.degraded and not info.reset and not info.short
    assert list(np.flatnonzero(~info.mask)) == [20, 21] and np.isnan(info.frame_times[~info.mask]).all()
    np.testing.assert_allclose(feats[0, 20:22, 0], [20.0, 21.0])  # linear between frames 19 and 22
    # Three consecutive missing slots (> max_gap): only the part after the gap is used.
    c = FeatureCache(3, 4, max_gap=2)
    for k in range(30):
        if k not in (10, 11, 12):
            c.push(24.0 * k, _feats(k))
    feats, info = c.window()
    assert info.reset and info.short and info.ready and feats.shape[1] == 17
    np.testing.assert_array_equal(feats[0, :, 0], np.arange(13, 30))
    c = FeatureCache(3, 4)
    for k in range(9):
        c.push(24.0 * k, _feats(k))
    _, info = c.window(min_frames=10)
    assert not info.ready and "9 frames" in info.reason and not info.reset


def test_cache_inserts_late_frames_by_time_and_drops_stale_ones() -> None:
    times = [24.0 * k for k in range(30)]
    order = np.random.default_rng(3).permutation(30)
    c = FeatureCache(3, 4)
    statuses = {c.push(times[i], _feats(i)) for i in order}
    assert "inserted" in statuses
    feats, info = c.window()
    assert info.ready and not info.degraded
    np.testing.assert_array_equal(feats[0, :, 0], np.arange(30))
    assert c.push(times[5], _feats(99)) == "replaced"  # a re-delivered frame replaces, never duplicates
    assert len(c) == 30
    assert c.push(times[0] - 24.0 * 5, _feats(-5)) == "dropped"  # older than any window can use
    assert c.dropped == 1
    with pytest.raises(ModelError, match="do not fit"):
        c.push(1e4, np.zeros((2, 4)))


# -- the trained model ------------------------------------------------------------------------------
def test_trained_model_separates_held_out_jet_and_quiet_sequences() -> None:
    from heliowatch.models.jets.train import make_sequences

    # Seeds far from the shipped run's (0..N-1 with seed 0): sequences it never saw.
    seqs, _ = make_sequences(list(range(900_000, 900_040)))
    y = np.array([s.jet for s in seqs])
    assert 10 <= y.sum() <= 30
    m = registry.load_torch("jet-convlstm")
    with torch.inference_mode():
        p = np.array([float(m(torch.from_numpy(s.frames[None]))) for s in seqs])
    assert roc_auc(y, p) >= 0.8, (y, p.round(3))
    card = registry.load_card("jet-head")
    assert 0 < card["threshold"]["value"] < 1
    assert card["threshold"]["chosen_on"] == "validation"
