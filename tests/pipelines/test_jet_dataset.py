"""The real jet training-set builder, end to end against the JSOC stand-in (cutout exports), split by date."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from astropy.io import fits

from heliowatch.models.core.times import unix_from_iso
from heliowatch.models.synthetic.fitsout import write_fits
from heliowatch.models.synthetic.jets import FullDiskScene, JetSpec
from heliowatch.pipelines.datasets.jets import build_jet_dataset, load_jet_dataset
from heliowatch.pipelines.jsoc import JsocClient
from heliowatch.pipelines.standin.archive import Archive
from heliowatch.pipelines.standin.server import StandinServer

JETS = [
    ("2011-03-02T10:00:00", -300.0, 200.0),
    ("2012-05-10T04:30:00", 250.0, -150.0),
    ("2013-07-21T18:00:00", -120.0, -80.0),
    ("2014-09-03T12:00:00", 60.0, 300.0),
]
NON_JETS = [
    ("2011-04-11T08:00:00", 100.0, 100.0),
    ("2012-08-19T02:00:00", -200.0, 50.0),
    ("2013-10-30T22:00:00", 300.0, 0.0),
    ("2014-12-12T06:00:00", -50.0, -250.0),
]


def _catalogue(root: Path) -> Path:
    root.mkdir()
    lines = ["#sjh_ID, date, SOL_event, duration, basepoint_X, std_X, basepoint_Y, std_Y"]
    lines += [f"sjh_{t[:13]}_1,{t}.000000,SOL,5.0,{x},1.0,{y},1.0" for t, x, y in JETS]
    (root / "Jet_clusters_3.0_2.0_paperID.csv").write_text("\n".join(lines) + "\n")
    rows = ["date,basepoint_X,basepoint_Y"] + [f"{t}.000000,{x},{y}" for t, x, y in NON_JETS]
    (root / "No_jet_df.csv").write_text("\n".join(rows) + "\n")
    return root


def _archive(root: Path) -> Path:
    """aia.lev1_euv_12s 304 frames (400x400 at 1.8"/px, so the 300" cutout is the JSOC's job) around every sample."""
    root.mkdir()
    fsn = 1
    for k, (t, x, y) in enumerate(JETS + NON_JETS):
        t0 = unix_from_iso(t) - 240.0
        scene = FullDiskScene(t0, shape=(240, 240), centre_hpc_arcsec=(x, y), seed=k, n_frames=32)
        if k < len(JETS):
            scene.add_jet(JetSpec((x, y), 30.0, 250.0, 60.0, 7.0, 500.0, t0 + 200.0, 3.0))
        for i in range(scene.n_frames):
            data, h = scene.level1(i, fsn=fsn)
            fsn += 1
            stamp = h["T_REC"].replace("-", "").replace(":", "")
            write_fits(root / f"aia.lev1_euv_12s.{stamp}.304.image.fits", data, fits.Header(h))
    return root


def test_builder_makes_a_labelled_set_split_by_date(tmp_path: Path) -> None:
    cat = _catalogue(tmp_path / "catalogue")
    with StandinServer(Archive(_archive(tmp_path / "archive")), export_delay_s=0.05) as srv:
        client = JsocClient(srv.url, email="ops@example.org")
        manifest = build_jet_dataset(client, cat, tmp_path / "set")
    assert manifest["skipped"] == []
    assert len(manifest["samples"]) == 8
    by = {s["id"]: s for s in manifest["samples"]}
    assert sum(s["label"] for s in by.values()) == 4
    # Train, validation and test days are disjoint and in time order.
    d = manifest["dates"]
    assert d["train"][1] < d["validation"][0] <= d["validation"][1] < d["test"][0]
    data = load_jet_dataset(tmp_path / "set")
    cube, is_jet = data["train"][0]
    # 30 frames 24 s apart, cut by the JSOC to 300" (166 pooled pixels), in DN/s.
    assert cube.shape == (30, 166, 166) and 20 < float(np.nanmedian(cube)) < 200
    assert is_jet is True
    # A rerun reuses what was built (no second export).
    manifest2 = build_jet_dataset(JsocClient("http://127.0.0.1:9/", email="ops@example.org", timeout_s=1), cat, tmp_path / "set")
    assert [s["id"] for s in manifest2["samples"]] == [s["id"] for s in manifest["samples"]]
    assert json.loads((tmp_path / "set" / "manifest.json").read_text())["counts"]["train"]["jet"] >= 1


def test_training_on_the_built_set_writes_real_data_cards(tmp_path: Path) -> None:
    from heliowatch.models.jets.train import train_jet_model
    from heliowatch.models.registry import load_card

    rng = np.random.default_rng(0)
    real = {
        part: [(rng.uniform(40, 60, (12, 166, 166)).astype(np.float32), bool(i % 2)) for i in range(4)]
        for part in ("train", "validation", "test")
    }
    res = train_jet_model(
        tmp_path, epochs=1, head_epochs=1, e2e_steps=1, frames_per_seq=1, real=real, real_description="test set"
    )
    assert res["split"] == {"train": 4, "validation": 4, "test": 4}
    card = load_card("jet-head", root=tmp_path)
    assert card["training"]["synthetic"] is False and "split by date" in card["training"]["data"]
    assert load_card("jet-encoder", root=tmp_path)["training"]["run_id"] == card["training"]["run_id"]
