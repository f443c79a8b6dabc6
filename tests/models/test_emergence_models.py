"""The emergence classifiers: the seed FCN's architecture, MTOT, skill on held-out synthetic regions, interpretation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from heliowatch.models import registry
from heliowatch.models.core.errors import ModelError
from heliowatch.models.emergence.averaging import WindowAverage
from heliowatch.models.emergence.evaluate import load_mtot
from heliowatch.models.emergence.forecast import EmergenceForecaster, fcn_input, rebase
from heliowatch.models.emergence.interpret import bipole_probe, interpretation_figure, prune_filters, pruned_model
from heliowatch.models.emergence.mtot import MtotClassifier, central_flux_mx
from heliowatch.models.emergence.network import EmergenceFCN, feature_map_sizes
from heliowatch.models.emergence.train import build_synthetic, fcn_predict
from heliowatch.models.skill import roc_auc, tss
from heliowatch.models.synthetic.emergence import PROJECTED_NOISE_G, PatchSimulator, disk_mu, random_event


@pytest.fixture(scope="module")
def held_out() -> object:
    # Regions the shipped weights never saw (training used seed 0), built like the product's inputs.
    return build_synthetic(24, seed=4242)


@pytest.fixture(scope="module")
def fcn() -> nn.Module:
    return registry.load_torch("emergence-fcn")


def test_fcn_is_exactly_the_seed_architecture() -> None:
    torch.manual_seed(0)
    m = EmergenceFCN().eval()
    kinds = {type(x) for x in m.modules()} - {EmergenceFCN}
    assert kinds == {nn.Conv2d, nn.MaxPool2d}  # no activation module anywhere, no BN, no fully connected layer
    convs = [x for x in m.modules() if isinstance(x, nn.Conv2d)]
    assert len(convs) == 5 and all(c.kernel_size == (3, 3) and c.padding == (0, 0) for c in convs)
    assert [c.out_channels for c in convs] == [8, 8, 16, 32, 1]  # filters double at every 2x2 pool
    pools = [x.kernel_size for x in m.modules() if isinstance(x, nn.MaxPool2d)]
    assert pools == [2, 2, 2, 6]
    x = 0.02 * torch.randn(3, 1, 85, 85)  # kG: a 20 G rms field
    assert m.features(x).shape == (3, 1, 6, 6) and feature_map_sizes()["conv5"] == 6
    assert m(x).shape == (3, 1)
    # Identity activations: the output does not change when the whole input flips polarity ...
    torch.testing.assert_close(m.logit(x), m.logit(-x), rtol=0, atol=1e-5)
    torch.testing.assert_close(m(x), m(-x), rtol=0, atol=1e-6)
    # ... which max-pooling alone would break: the symmetrisation is what makes it exact.
    m.symmetric = False
    assert not torch.allclose(m.logit(x), m.logit(-x), atol=1e-3)


def test_shipped_fcn_is_polarity_invariant_and_registered(fcn: nn.Module) -> None:
    spec = registry.get("emergence-fcn")
    assert spec.example_shape == (1, 1, 85, 85)
    card = registry.load_card("emergence-fcn")
    assert card["training"]["synthetic"] is True and card["operational"] is False
    assert 0 < card["threshold"] < 1
    x = torch.from_numpy(np.random.default_rng(1).normal(0, 0.05, (4, 1, 85, 85)).astype(np.float32))
    with torch.inference_mode():
        torch.testing.assert_close(fcn(x), fcn(-x), rtol=0, atol=1e-6)


def test_fcn_and_mtot_separate_held_out_emerging_from_control_patches(held_out: object, fcn: nn.Module) -> None:
    ds = held_out
    sel = ds.time_index == 0  # windows centred 3.2 h before emergence
    y = ds.y[sel]
    p = fcn_predict(fcn, ds.x[sel])
    mtot = load_mtot()
    q = mtot.predict_features(ds.log_flux[sel], ds.trend[sel])
    thr = registry.load_card("emergence-fcn")["threshold"]
    assert roc_auc(y, p) > 0.85 and tss(y, p, thr) > 0.5
    assert roc_auc(y, q) > 0.85 and tss(y, q, mtot.threshold) > 0.5
    far = ds.time_index == 4  # 24.5 h before: little is left to see in the synthetic data
    assert roc_auc(ds.y[far], fcn_predict(fcn, ds.x[far])) < roc_auc(y, p)


def test_synthetic_quiet_sun_matches_the_real_hmi_background() -> None:
    sim = PatchSimulator(40, np.random.default_rng(3))
    for _ in range(6):
        br = sim.frame()
    rng = np.random.default_rng(4)
    d = br * disk_mu(15.0, 20.0) + rng.normal(0, PROJECTED_NOISE_G, br.shape)
    # Real 2019-06-21 quiet-Sun patches, one frame at 1.4 Mm/px: mean |B| 4.9 G, 0.57e20 Mx within
    # 14 px of the centre, max |B| 190 G (medians over 108 patches).
    assert float(np.median(np.abs(d).mean(axis=(1, 2)))) == pytest.approx(4.9, rel=0.15)
    assert float(np.median(central_flux_mx(d))) == pytest.approx(0.57e20, rel=0.2)
    assert float(np.median(np.abs(d).max(axis=(1, 2)))) == pytest.approx(190, rel=0.35)


def test_emergence_time_is_ten_percent_of_the_peak_flux() -> None:
    ev = random_event(np.random.default_rng(5), t_emerge_h=0.0)
    assert ev.region_flux(0.0) == pytest.approx(0.1 * ev.peak_flux_mx)
    assert ev.region_flux(ev.t_onset_h) == 0.0 and ev.region_flux(ev.t_onset_h + 1) > 0
    assert ev.region_flux(48.0) > 0.95 * ev.peak_flux_mx


def test_mtot_round_trips_and_falls_back_to_flux_only(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    lf = np.r_[rng.normal(19.9, 0.2, 200), rng.normal(19.6, 0.2, 200)]
    tr = np.r_[rng.normal(0.2, 0.1, 200), rng.normal(0.0, 0.1, 200)]
    tr[::7] = np.nan
    y = np.r_[np.ones(200), np.zeros(200)]
    clf = MtotClassifier.fit(lf, tr, y)
    clf.threshold = 0.6
    back = MtotClassifier.load(clf.save(tmp_path / "m.json"))
    np.testing.assert_allclose(back.predict_features(lf, tr), clf.predict_features(lf, tr))
    assert np.isfinite(back.predict_features(lf, np.full_like(tr, np.nan))).all()  # no previous window: flux only
    assert roc_auc(y, back.predict_features(lf, tr)) > 0.9
    with pytest.raises(ModelError, match="both classes"):
        MtotClassifier.fit(lf, tr, np.ones_like(y))
    with pytest.raises(ModelError, match="missing"):
        MtotClassifier.load(tmp_path / "nope.json")


def test_forecaster_scores_windows_with_both_classifiers(held_out: object, fcn: nn.Module) -> None:
    ds = held_out
    wins = [
        WindowAverage(
            f"C{100 + i:05.1f}N10.0",
            5,
            0.0,
            24600.0,
            ds.x[i],
            33,
            34,
            i % 2 == 0,
            None if i % 2 == 0 else ds.x[i],
            10.0,
            100.0 + i,
            5.0,
            0.9,
        )
        for i in range(6)
    ]

    def predict(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return fcn(torch.from_numpy(x)).numpy()

    fc = EmergenceForecaster.from_weights(predict)
    out = fc.forecast(wins)
    assert [f.patch_id for f in out] == [w.patch_id for w in wins]
    assert all(0 <= f.p_fcn <= 1 and 0 <= f.p_mtot <= 1 for f in out if f.p_fcn is not None)
    assert [f.mtot_uses_trend for f in out] == [False, True] * 3
    recs = [r for f in out for r in f.records()]
    assert {r["method"] for r in recs} == {"emergence-fcn", "mtot-lda"}
    json.dumps(recs, allow_nan=False)  # strict JSON
    assert fcn_input(wins).shape == (6, 1, 85, 85)
    assert EmergenceForecaster.from_weights(None).forecast(wins)[0].p_fcn is None
    assert float(rebase(0.5, 0.01)) == pytest.approx(0.01)
    assert float(rebase(0.9, 0.5)) == pytest.approx(0.9)


def test_pruning_and_bipole_probes(held_out: object, fcn: nn.Module, tmp_path: Path) -> None:
    ds = held_out
    sel = ds.time_index <= 1
    pr = prune_filters(fcn, ds.x[sel], ds.y[sel], tol=0.02)
    assert 1 <= len(pr.kept) <= pr.n_filters == 32
    assert pr.curve[-1][1] >= pr.base_auc - 0.02
    assert set(pr.flux_corr) == set(pr.kept)
    small = pruned_model(fcn, pr.kept)
    p_full, p_small = fcn_predict(fcn, ds.x[sel]), fcn_predict(small, ds.x[sel])
    assert roc_auc(ds.y[sel], p_small) >= pr.base_auc - 0.021
    assert not np.allclose(p_full, p_small) or len(pr.kept) == 32
    probe = bipole_probe(lambda x: fcn_predict(fcn, x), mtot=load_mtot(), radii_px=(1.0, 3.0, 8.0), fields_g=(100.0, 800.0))
    assert probe.p_fcn.shape == (3, 2) and probe.p_fcn_flux.shape == (3,)
    assert np.isfinite(probe.p_mtot).all()
    png = interpretation_figure(pr, probe, tmp_path / "interp.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
