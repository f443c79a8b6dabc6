"""Flare forecasting: real-data models, leak guards, backtest, degraded paths, exports, verification, CNN."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

from heliowatch.daemon.state import StateStore
from heliowatch.models import skill
from heliowatch.models.core.errors import ModelError
from heliowatch.models.core.times import FixedClock
from heliowatch.models.flares.dataset import FEATURES, add_history
from heliowatch.models.flares.events import event_days, load_events, read_event_file
from heliowatch.models.flares.features import FeatureModel, TreeEnsemble
from heliowatch.models.flares.forecaster import EventHistory, FlareForecaster, SharpInput
from heliowatch.pipelines.events import EventSource
from heliowatch.pipelines.sharp import read_sharp_record
from heliowatch.pipelines.standin.archive import demo_archive_path
from heliowatch.pipelines.store.ledger import LedgerStore
from heliowatch.pipelines.verification import Ledger
from tests.conftest import SHARED_DATA

DATA = SHARED_DATA
SWPC = DATA / "hayes-flare-ar" / "swpc_flarelist_20100101-20210810.csv"
HEK = DATA / "noaa-srs" / "00_All_GOES_SUNPY.csv"
SHARP = demo_archive_path() / "sharp"


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "heliowatch.daemon.cli", *args], capture_output=True, text=True, timeout=600, cwd=cwd
    )


@pytest.fixture(scope="module")
def forecaster() -> FlareForecaster:
    return FlareForecaster()


@pytest.fixture(scope="module")
def history(shared_data: Path) -> EventHistory:  # skips, with its reason, without ../shared/data
    return EventHistory(load_events([SWPC]))


# -- scores -------------------------------------------------------------------------------
def test_skill_scores_on_a_known_table() -> None:
    # a=3 hits, c=1 miss, b=2 false alarms, d=4 correct negatives.
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    p = np.array([0.9, 0.8, 0.6, 0.1, 0.7, 0.55, 0.2, 0.1, 0.3, 0.0])
    assert skill.contingency(y, p) == (3, 1, 2, 4)
    assert skill.tss(y, p) == pytest.approx(3 / 4 - 2 / 6)
    assert skill.hss(y, p) == pytest.approx(2 * (3 * 4 - 2 * 1) / ((3 + 1) * (1 + 4) + (3 + 2) * (2 + 4)))
    assert skill.bss(y, y.astype(float)) == 1.0
    assert skill.bss(y, np.full(10, 0.4)) == pytest.approx(0.0)
    assert skill.roc_auc(y, p) == pytest.approx(18.5 / 24)  # pairs ranked right; the 0.1/0.1 tie counts half


# -- data set and models -------------------------------------------------------------------
def test_history_comes_from_the_previous_window_not_the_label() -> None:
    t = pd.to_datetime(["2014-01-01", "2014-01-02", "2014-01-03", "2014-01-04"])
    df = pd.DataFrame({"arpnum": 1, "t_end": t, "label": [True, False, False, True], "FLARE_INDEX": [4.0, 0, 0, 3.0]})
    h = add_history(df)
    # Row i's history is row i-1's label window; its own label never enters.
    assert h["hist_mx_24h"].tolist() == [0.0, 1.0, 0.0, 0.0]
    assert h["hist_mx_72h"].tolist() == [0.0, 1.0, 1.0, 1.0]
    assert "FLARE_INDEX" not in FEATURES and not any(f.startswith("hist") for f in FEATURES)


def test_tree_ensemble_matches_sklearn_exactly() -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 4))
    x[rng.random(x.shape) < 0.05] = np.nan
    y = (np.nan_to_num(x[:, 0]) + np.nan_to_num(x[:, 1]) ** 2 + rng.normal(size=2000) > 0.7).astype(int)
    model = HistGradientBoostingClassifier(max_iter=60, max_leaf_nodes=15).fit(x, y)
    np.testing.assert_allclose(TreeEnsemble.from_sklearn(model).predict_proba(x), model.predict_proba(x)[:, 1], atol=1e-12)


@pytest.mark.parametrize("kind", ["logistic", "gbm"])
def test_feature_model_roundtrip_without_pickle(tmp_path: Path, kind: str) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1500, 4))
    y = (x[:, 0] + 0.5 * rng.normal(size=1500) > 1).astype(int)
    groups = np.arange(1500) % 5
    m = FeatureModel.fit(kind, x, y, groups)
    path = m.save(tmp_path / f"m-{kind}", {"name": "t"})
    m2, card = FeatureModel.load(path)
    np.testing.assert_allclose(m2.predict(x), m.predict(x))
    assert card == {"name": "t"}
    p = m.predict(x)
    assert 0 <= p.min() and p.max() <= 1 and skill.roc_auc(y, p) > 0.8
    if kind == "gbm":
        st = tmp_path / f"m-{kind}.safetensors"
        st.write_bytes(st.read_bytes()[:-8] + b"\0" * 8)
        with pytest.raises(ModelError, match="sha256"):
            FeatureModel.load(path)


@pytest.mark.slow
@pytest.mark.usefixtures("shared_data")
def test_evaluate_flares_by_harp_and_time(tmp_path: Path) -> None:
    from heliowatch.models.flares.evaluate import evaluate_flares, save_report

    res = evaluate_flares(DATA / "sun2022-sharp-seq", models=["logistic"])
    assert res.n == 64637 and res.positives == 2600
    mean = res.summary()["logistic"]
    assert len(res.per_fold["logistic"]) == 5
    assert mean["auc"][0] > 0.95 and 0.5 < mean["bss"][0] < 0.9
    assert set(res.time_split["logistic"]) >= {"tss@0.5", "bss", "auc"}
    files = save_report(res, tmp_path)
    assert files[-1].suffix == ".png" and files[-1].stat().st_size > 10_000


# -- the backtest --------------------------------------------------------------------------
@pytest.mark.usefixtures("shared_data")
def test_backtest_writes_731_days_and_reproduces_the_persistence_anchor(tmp_path: Path) -> None:
    out = tmp_path / "bt.csv"
    p = cli(
        "forecast",
        "backtest",
        "--start",
        "2016-01-01",
        "--end",
        "2017-12-31",
        "--train-until",
        "2015-12-31",
        "--out",
        str(out),
        "--data",
        str(DATA),
    )
    assert p.returncode == 0, p.stderr
    df = pd.read_csv(out)
    assert list(df.columns) == ["VALID_DATE", "C1+", "M1+"]
    assert len(df) == 731 and df["VALID_DATE"].iloc[0] == "2016-01-01" and df["VALID_DATE"].iloc[-1] == "2017-12-31"
    assert df[["C1+", "M1+"]].notna().all().all() and ((df[["C1+", "M1+"]] >= 0) & (df[["C1+", "M1+"]] <= 1)).all().all()
    assert (df["C1+"] >= df["M1+"]).all()
    s = json.loads(out.with_suffix(".scores.json").read_text())["scores"]["M1+"]
    # Our event days reproduce Leka et al. (2019)'s one-day persistence TSS of 0.44.
    assert s["one-day persistence"]["tss"] == pytest.approx(0.44, abs=0.01)
    assert s["heliowatch"]["events"] == 26
    assert s["heliowatch"]["auc"] > 0.8 and s["heliowatch"]["bss"] > 0.2


@pytest.mark.usefixtures("shared_data")
def test_backtest_refuses_a_leaking_split(tmp_path: Path) -> None:
    p = cli(
        "forecast",
        "backtest",
        "--start",
        "2015-06-01",
        "--end",
        "2015-12-31",
        "--train-until",
        "2015-12-31",
        "--out",
        str(tmp_path / "x.csv"),
        "--data",
        str(DATA),
    )
    assert p.returncode == 2 and "leak" in p.stderr


@pytest.mark.usefixtures("shared_data")
def test_event_lists_agree() -> None:
    a = read_event_file(SWPC)
    b = read_event_file(HEK)
    days = lambda ev: {d for d in event_days(ev, min_flux=1e-5) if pd.Timestamp("2016-01-01") <= d <= pd.Timestamp("2017-12-31")}  # noqa: E731
    assert days(a) == days(b)
    assert read_event_file(SWPC).query("goes_class == 'X2.2'")["noaa_ar"].eq(11158).any()


# -- the operational forecaster --------------------------------------------------------------
def test_real_regions_are_ranked_sensibly(forecaster: FlareForecaster, history: EventHistory) -> None:
    out = {}
    for f in sorted(SHARP.glob("*.Br.fits")):
        inp = read_sharp_record(f)
        out[f.name[19:45]] = forecaster.forecast_region(inp, history, pd.Timestamp(inp.t_rec_utc[:19]))
    x22 = out["377.20110215_020000_TAI.Br"]  # during the X2.2 flare
    alpha = out["7115.20170901_220000_TAI.B"]  # NOAA 12673 as a small alpha region, before its growth
    x93 = out["7115.20170906_120000_TAI.B"]  # just after the X9.3
    assert x22.p_m > 0.5 and x93.p_m > 0.5 and alpha.p_m < 0.3
    for r in out.values():
        assert 0 < r.p_x <= r.p_m <= r.p_c < 1  # never exactly 0 or 1
        assert r.method == "keywords+history"  # the region-level keyword model, first tier
        assert {m["name"] for m in r.models} >= {"flare-region-keywords-m", "flare-region-keywords-c", "flare-region-climatology"}
    # HARP 377's header holds R_VALUE = nan: computed from its magnetogram, degraded, and said so.
    assert x22.degraded and "R_VALUE" in x22.missing[0] and x22.p_x > 0.1
    # HARP 7115's records carry only Br: the LOS approximations are listed, but the keyword tier does not use them.
    assert not alpha.degraded and "Br x mu" in alpha.missing[0]


def test_degraded_paths_never_crash(forecaster: FlareForecaster, history: EventHistory) -> None:
    t = pd.Timestamp("2017-09-06T12:00")
    kw = {"USFLUXL": 4.0e22, "AREA": 7700.0, "MEANGBL": 35.0, "R_VALUE": 5.3}
    base = SharpInput(7115, 12673, "2017-09-06T11:59:23.000Z", -9.5, 36.0, kw)
    no_feed = forecaster.forecast_region(base, None, t)
    assert no_feed.method == "sharp" and no_feed.degraded and "flare history" in no_feed.missing[0]
    limb = forecaster.forecast_region(SharpInput(7115, 12673, base.t_rec_utc, -9.5, 82.0, kw), history, t)
    assert limb.method == "persistence" and limb.degraded and "limb" in " ".join(limb.missing)
    assert limb.p_m == pytest.approx(forecaster.persistence["mx_yesterday"], abs=1e-4)  # the X9.3 was within 24 h
    nothing = forecaster.forecast_region(SharpInput(None, None, base.t_rec_utc, None, None, {}), None, t)
    assert nothing.method == "climatology" and nothing.p_m == pytest.approx(forecaster.persistence["base_rate"], abs=1e-4)
    srs = forecaster.forecast_region(
        SharpInput(
            1,
            11158,
            base.t_rec_utc,
            -20,
            10,
            {},
            srs={"McIntosh": "EKC", "MAGTYPE": "BETA-GAMMA-DELTA", "AREA": 450, "Longitude": 10},
        ),
        history,
        t,
    )
    assert srs.method == "region-class" and 0.1 < srs.p_m < 0.9
    fd = forecaster.full_disk([no_feed, limb], None, t)
    assert fd.degraded and "disk flare history" in fd.missing[0]
    # Each region adds to the disk (the fitted hazard scale may keep it below the likeliest region's P).
    assert fd.p_m > max(forecaster.full_disk([no_feed], None, t).p_m, forecaster.full_disk([limb], None, t).p_m) > fd.p_limb_m


def test_los_features_are_computed_from_the_segments(tmp_path: Path, forecaster: FlareForecaster) -> None:
    inp = read_sharp_record(SHARP / "hmi.sharp_cea_720s.377.20110215_020000_TAI.Br.fits")
    assert inp.missing == []
    # MEANGBL on the LOS field over bitmap >= 30: in the training set's range (9-43), unlike
    # the header's vector MEANGBZ (100.5).
    assert 30 < inp.keywords["MEANGBL"] < 43
    assert inp.keywords["AREA"] == pytest.approx(5452.75)  # from the header
    # Without the bitmap segment: the HARP mask is approximated, and the forecast says so.
    for seg in ("Br", "magnetogram"):
        shutil.copy(SHARP / f"hmi.sharp_cea_720s.377.20110215_020000_TAI.{seg}.fits", tmp_path)
    lone = read_sharp_record(tmp_path / "hmi.sharp_cea_720s.377.20110215_020000_TAI.magnetogram.fits")
    assert "bitmap" in lone.missing[0]
    assert lone.keywords["MEANGBL"] == pytest.approx(inp.keywords["MEANGBL"], rel=0.15)
    r = forecaster.forecast_region(lone, None, pd.Timestamp("2011-02-15T02:00"))
    # No event feed: the keyword model runs as if the region had not flared, degraded and said so.
    assert r.method == "keywords" and r.degraded and "flare history" in r.missing[0]
    assert r.p_m > forecaster.persistence["base_rate"]


def test_nan_patch_without_keywords_degrades(tmp_path: Path, forecaster: FlareForecaster) -> None:
    hdr = fits.Header(
        {"CTYPE1": "CRLN-CEA", "CTYPE2": "CRLT-CEA", "CDELT1": 0.03, "T_REC": "2014.01.07_12:00:35_TAI", "HARPNUM": 5}
    )
    p = tmp_path / "hmi.sharp_cea_720s.5.20140107_120035_TAI.Br.fits"
    fits.writeto(p, np.full((50, 80), np.nan, np.float32), hdr)
    inp = read_sharp_record(p)
    assert inp.patch is None and "no valid pixels" in inp.missing[0]
    r = forecaster.forecast_region(inp, None, pd.Timestamp("2014-01-07T12:00"))
    assert r.method == "climatology" and r.degraded


@pytest.mark.usefixtures("shared_data")
def test_forecast_cli_json_and_bad_input(tmp_path: Path) -> None:
    files = [str(p) for p in sorted(SHARP.glob("*.fits"))]
    p = cli("forecast", *files, "--json", "--events", str(SWPC), "--out", str(tmp_path))
    assert p.returncode == 0, p.stderr
    rows = json.loads(p.stdout)
    assert len(rows) == 3  # one per record, whatever the number of segment files
    for r in rows:
        assert {"file", "harpnum", "noaa_ar", "p_c", "p_m", "p_x", "degraded", "models"} <= set(r)
    # The CCMC Flare Scoreboard submission, text and JSON, named after the model id and issue time.
    (txt,) = tmp_path.glob("Flare_Forecast_heliowatch_0.1_*.txt")
    assert txt.read_text().startswith("Forecasting method: heliowatch_0.1\nIssue Time: ")
    sub = json.loads(txt.with_suffix(".json").read_text())["forecast_submission"]
    probs = {p["class"]: p["probability"] for p in sub["full_disk_forecasts"][0]["flare_probabilities"]}
    assert probs["C+"] >= probs["M+"] >= probs["X+"] and len(sub["region_forecasts"]) == 3
    mag = next((demo_archive_path() / "magnetogram").glob("*.fits"))
    bad = cli("forecast", str(mag))
    assert bad.returncode == 2 and "not a SHARP CEA patch" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    trunc = tmp_path / "t.fits"
    trunc.write_bytes((SHARP / "hmi.sharp_cea_720s.7115.20170901_220000_TAI.Br.fits").read_bytes()[:5000])
    assert cli("forecast", str(trunc)).returncode == 2


# -- events and verification ----------------------------------------------------------------
def test_event_source_hides_the_future_and_reloads(tmp_path: Path) -> None:
    f = tmp_path / "ev.json"
    rows = [
        {
            "begin_time": "2017-09-06T11:53:00Z",
            "max_time": "2017-09-06T12:02:00Z",
            "end_time": "2017-09-06T12:10:00Z",
            "max_class": "X9.3",
            "active_region": 2673,
        }
    ]
    f.write_text(json.dumps(rows))
    clock = FixedClock(pd.Timestamp("2017-09-06T11:00").timestamp())
    src = EventSource(files=[f], clock=clock)
    assert src.events().empty
    clock.t = pd.Timestamp("2017-09-06T13:00").timestamp()
    ev = src.events()
    assert ev["goes_class"].tolist() == ["X9.3"] and ev["noaa_ar"].tolist() == [12673]
    f.write_text(json.dumps([*rows, {**rows[0], "begin_time": "2017-09-06T12:30:00Z", "max_class": "M1.0"}]))
    assert len(src.events()) == 2


def test_swpc_feed_over_http_is_cached(tmp_path: Path) -> None:
    body = json.dumps(
        [
            {
                "begin_time": "2024-05-10T06:27:00Z",
                "max_time": "2024-05-10T06:54:00Z",
                "end_time": "2024-05-10T07:06:00Z",
                "max_class": "X3.9",
                "active_region": 3664,
            }
        ]
    ).encode()

    class H(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a: object) -> None:
            return

    srv = HTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        cache = tmp_path / "swpc.json"
        src = EventSource(url=f"http://127.0.0.1:{srv.server_address[1]}/xray.json", cache=cache, refresh_s=0)
        assert src.events()["goes_class"].tolist() == ["X3.9"]
        assert json.loads(cache.read_text())[0]["max_class"] == "X3.9"
        src.url = f"http://127.0.0.1:{srv.server_address[1] + 1 if srv.server_address[1] < 65535 else 1}/down"
        src._fetched = 0
        assert len(src.events()) == 1  # feed down: the cache still answers
    finally:
        srv.shutdown()
        srv.server_close()


def test_ledger_verifies_closed_windows(tmp_path: Path) -> None:
    led = Ledger(LedgerStore(StateStore(f"sqlite:///{tmp_path / 's.sqlite'}").engine))
    led.record("2017-09-06T00:00:00Z", "2017-09-07T00:00:00Z", [("full_disk", "M", 0.8, None), ("noaa:12673", "M", 0.7, 12673)])
    led.record("2017-09-06T00:00:00Z", "2017-09-07T00:00:00Z", [("full_disk", "M", 0.1, None)])  # idempotent: first wins
    led.record("2017-09-20T00:00:00Z", "2017-09-21T00:00:00Z", [("full_disk", "M", 0.3, None)])
    ev = read_event_file(demo_archive_path() / "events" / "goes-xray-flares.json")
    assert led.verify(ev, dt.datetime(2017, 9, 8)) == 2
    assert led.pending() == 1
    s = led.scores(days=30, now=dt.datetime(2017, 9, 8))
    assert s[("full_disk", "M")]["events"] == 1 and s[("full_disk", "M")]["brier"] == pytest.approx(0.04)
    assert s[("region", "M")]["events"] == 1


# -- CNN pipeline ----------------------------------------------------------------------------
def test_prepare_patch_bins_flips_and_pads() -> None:
    from heliowatch.models.flares.cnn import prepare_patch

    patch = np.zeros((100, 200))
    patch[10:20, 50:60] = 2000.0  # a spot in the lower (southern) part
    north = prepare_patch(patch, lat=10.0)
    south = prepare_patch(patch, lat=-10.0)
    assert north.shape == south.shape == (256, 512)
    assert north.max() == pytest.approx(2.0)  # kG, 2x2 means of a uniform block
    assert np.argwhere(north > 1)[:, 0].mean() < 128 < np.argwhere(south < -1)[:, 0].mean()  # flipped N-S and in sign
    assert north.sum() == pytest.approx(patch.sum() / 1000 / 4)  # binned, never resampled


def test_occlusion_finds_where_the_model_looks() -> None:
    from heliowatch.models.flares.cnn import occlusion_map

    canvas = np.zeros((64, 128), np.float32)
    canvas[20:30, 80:90] = 1.0

    def predict(batch: np.ndarray) -> np.ndarray:  # a "model" that reads one blob
        return batch[:, :, 20:30, 80:90].mean(axis=(2, 3))

    p0, sens = occlusion_map(predict, canvas, size=8, stride=4)
    assert p0 == pytest.approx(1.0)
    y, x = np.unravel_index(np.argmax(sens), sens.shape)
    assert 16 <= y <= 33 and 76 <= x <= 93 and sens.max() == pytest.approx(1.0)
    assert sens[:10, :40].max() == 0.0


def test_dataset_from_the_standin_and_a_training_smoke_run(tmp_path: Path, standin_factory) -> None:
    from heliowatch.models.flares.cnn import train_cnn
    from heliowatch.pipelines.datasets.flare_cnn import build_dataset
    from heliowatch.pipelines.jsoc import JsocClient

    arch = tmp_path / "arch"
    arch.mkdir()
    for i, (harp, noaa) in enumerate([(9001, 12001), (9002, 12002), (9003, 12003), (9004, 12004)]):
        assert (
            cli(
                "synth",
                "sharp",
                "--out",
                str(arch),
                "--class",
                "beta",
                "--harpnum",
                str(harp),
                "--noaa",
                str(noaa),
                "--time",
                f"2014-01-07T1{i}:00:00",
                "--seed",
                str(i),
            ).returncode
            == 0
        )
    srv = standin_factory(arch)
    client = JsocClient(srv.url, email="ops@example.org")
    events = pd.DataFrame(
        {"start": [pd.Timestamp("2014-01-07T15:00")], "noaa_ar": pd.array([12002], dtype="Int64"), "flux": [2e-5]}
    )
    labels = build_dataset(
        client, "hmi.sharp_cea_720s_nrt", "2014-01-07T00:00:00Z", "2014-01-08T00:00:00Z", events, tmp_path / "set"
    )
    rows = pd.read_csv(labels)
    assert len(rows) == 4 and rows.set_index("harpnum").loc[9002, "label"] == 1 and rows["label"].sum() == 1
    card = train_cnn("flare-cnn1", tmp_path / "set", tmp_path / "w", epochs=1)
    c = json.loads(card.read_text())
    assert c["training"]["synthetic"] is False and c["training"]["samples"] == 4
    assert (tmp_path / "w" / "flare-cnn1.safetensors").exists()
    shutil.rmtree(tmp_path / "w")


def test_shipped_cnn_is_marked_synthetic_and_not_operational() -> None:
    from heliowatch.models.registry import load_card

    card = load_card("flare-cnn1")
    assert card["training"]["synthetic"] is True and card["operational"] is False
    assert any("synthetic" in lim for lim in card["known_limits"])


def test_train_names_the_trainable_models_and_asks_for_data_only_where_needed(tmp_path: Path) -> None:
    p = cli("train", "nope", "--out", str(tmp_path))
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1
    assert "region-detector" in p.stderr and "flare-cnn2" in p.stderr
    p = cli("train", "flare-cnn1", "--out", str(tmp_path))
    assert p.returncode == 2 and "needs --data" in p.stderr
    # The jet models train on synthetic sequences without --data (here a very short run of the recipe).
    p = cli(
        "train",
        "jet-convlstm",
        "--out",
        str(tmp_path),
        "--sequences",
        "10",
        "--epochs",
        "1",
        "--head-epochs",
        "1",
        "--e2e-steps",
        "1",
    )
    assert p.returncode == 0, p.stderr
    assert all((tmp_path / f"{m}.safetensors").exists() for m in ("jet-convlstm", "jet-encoder", "jet-head"))
    p = cli("train", "jet-convlstm", "--out", str(tmp_path), "--data", str(tmp_path))
    assert p.returncode == 2 and "neither a built jet set" in p.stderr
