"""Rebuild the synthetic part of the bundled replay archive (deterministic).

The real SHARP patches in ``pipelines/data/demo_archive/sharp`` are of NOAA 11158 at
2011-02-15 02:00 TAI. The synthetic frames placed around them are of the same morning:

- ``magnetogram/``: four ``hmi.M_720s_nrt`` full disks, 01:24-02:00 UTC, 1024x1024 (HMI's
  plate scale binned 4x), stored north-down (CROTA2 = 180) like HMI. Their regions are the
  ones NOAA's SRS listed for that day (SRS of 2011-02-15, locations valid 14/2400Z) with the
  SRS Mt. Wilson classes, rotated differentially to each frame's time; NOAA 11158 sits at
  the real SHARP's flux-weighted centre (S20.2 W12.8) as beta-gamma-delta (its class that
  day, DATA.md). The 01:36 frame carries QUALITY 0x400 (as real NRT frames sometimes do),
  so a replay shows a skipped record.
- ``aia/``: two 30-frame ``aia.lev1_nrt2`` 304 A sequences at 24 s cadence, 200x200 cutouts
  at 1.8"/px in DN (level-1-like: the exposure is each frame's own): from 01:50 UTC beside
  NOAA 11158 with one coronal jet (hand-set parameters, in ``truth.json``), and from 02:10 UTC
  at the north-east limb with no jet (bright points, loops, spicules and exposure changes
  only). The demo shows jet events from the first and none from the second.
- ``magnetogram/`` also holds the **emergence history**: 25 more ``hmi.M_720s_nrt`` frames,
  2011-02-14 20:24 to 02-15 01:12 UTC, in which a new bipole surfaces on quiet Sun at S05 E35
  (no NOAA region there; it is in the four full disks too, grown). To keep the bundle small
  only a 360" box around it carries data (the rest of the disk is NaN, missing data, which
  every product treats as such). With the 01:24 full disk they fill the seed's 410-min
  averaging window of 18:40-01:30 UTC, so the emergence product warns about the bipole when
  the 01:48 frame closes that window.

Usage: ``python bench/make_demo_archive.py [--out pipelines/data/demo_archive] [--parts magnetogram,aia,emergence]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
from pathlib import Path
from typing import Any

from astropy.io import fits

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: NOAA SRS 2011-02-15 (issued 0030Z, locations at 14/2400Z): number, lat, lon (W > 0), class, area (uHem).
SRS_20110215 = [
    (11157, 19.0, 43.0, "beta", 40),
    (11158, -20.2, 12.8, "beta-gamma-delta", 450),  # at the SHARP's LON_FWT/LAT_FWT, 02:00 TAI
    (11159, 19.0, 14.0, "beta", 10),
    (11161, 11.0, -52.0, "beta", 30),
]


def main() -> None:
    from heliowatch.models.regions.tracking import Tracker
    from heliowatch.models.synthetic.fitsout import write_fits
    from heliowatch.models.synthetic.jets import FullDiskScene, JetSpec
    from heliowatch.models.synthetic.magnetogram import RegionSpec, synth_magnetogram

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "pipelines" / "data" / "demo_archive")
    ap.add_argument("--parts", default="magnetogram,aia,emergence", help="what to rebuild (comma-separated)")
    a = ap.parse_args()
    parts = set(a.parts.split(","))
    ref = dt.datetime(2011, 2, 15, 2, 0, tzinfo=dt.UTC)
    mag_dir = a.out / "magnetogram"
    truth_path = mag_dir / "truth.json"
    truth_all = json.loads(truth_path.read_text())["frames"] if truth_path.exists() else []
    if "magnetogram" in parts:
        truth_all = _magnetograms(mag_dir, ref, RegionSpec, synth_magnetogram, write_fits, Tracker)
    if "emergence" in parts:
        truth_all = [f for f in truth_all if not f.get("emergence")]
        truth_all += _emergence_history(mag_dir, RegionSpec, synth_magnetogram, write_fits)
    truth_path.write_text(json.dumps({"synthetic": True, "frames": truth_all}, indent=2))
    if "aia" in parts:
        _aia(a.out / "aia", FullDiskScene, JetSpec, write_fits)


#: The emerging bipole of the demo: Stonyhurst position at 02:12 UTC and its growth.
EMERGING = {"lat": -5.0, "lon": -35.0, "start": "2011-02-14T20:24:00Z", "frames": 25, "size0": 0.02, "size1": 0.45}


def _emerging_spec(RegionSpec: Any, t: dt.datetime) -> Any:
    """The emerging bipole at time ``t``: rotating with the Sun, growing linearly (up to 0.55)."""
    from heliowatch.models.regions.tracking import Tracker

    t0 = dt.datetime.fromisoformat(str(EMERGING["start"]).replace("Z", "+00:00"))
    n = int(EMERGING["frames"])
    lat = float(EMERGING["lat"])
    days = (t - t0).total_seconds() / 86400
    frac = (t - t0).total_seconds() / (720 * (n - 1))
    size = min(0.55, float(EMERGING["size0"]) + (float(EMERGING["size1"]) - float(EMERGING["size0"])) * frac)
    return RegionSpec("beta", lat, float(EMERGING["lon"]) + Tracker.rate_deg_per_day(lat) * days, size=size)


_ROI_PX = 180


def _emergence_history(mag_dir: Path, RegionSpec: Any, synth_magnetogram: Any, write_fits: Any) -> list[dict[str, Any]]:
    import numpy as np

    for old in mag_dir.glob("*.magnetogram.fits"):
        if fits.getheader(old, 1).get("HWDEMO") == "emergence":
            old.unlink()
    t0 = dt.datetime.fromisoformat(EMERGING["start"].replace("Z", "+00:00"))
    n = int(EMERGING["frames"])
    out = []
    for k in range(n):
        t = t0 + dt.timedelta(minutes=12 * k)
        data, header, truth = synth_magnetogram(t, [_emerging_spec(RegionSpec, t)], size=1024, seed=2011, noise_seed=100 + k)
        x0, y0, x1, y1 = truth["regions"][0]["bbox_px"]
        cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
        if k == 0:
            box = (cy - _ROI_PX // 2, cx - _ROI_PX // 2)
        roi = np.full_like(data, np.nan)
        r0, c0 = box
        roi[r0 : r0 + _ROI_PX, c0 : c0 + _ROI_PX] = data[r0 : r0 + _ROI_PX, c0 : c0 + _ROI_PX]
        header["HWDEMO"] = ("emergence", "demo: data only near the emerging region")
        stem = f"hmi.M_720s_nrt.{header['T_REC'].replace('.', '').replace(':', '')}.3"
        write_fits(mag_dir / f"{stem}.magnetogram.fits", roi, header)
        truth["regions"][0]["emerging"] = True
        out.append(
            {"file": f"{stem}.magnetogram.fits", "emergence": True, "roi_px": [c0, r0, c0 + _ROI_PX, r0 + _ROI_PX], **truth}
        )
    return out


def _magnetograms(
    mag_dir: Path, ref: dt.datetime, RegionSpec: Any, synth_magnetogram: Any, write_fits: Any, Tracker: Any
) -> list[Any]:
    truth_all = []
    for k, minute in enumerate((24, 36, 48, 60)):
        t = ref.replace(hour=1, minute=0) + dt.timedelta(minutes=minute)
        days = (t - ref).total_seconds() / 86400
        regions = [
            RegionSpec(cls, lat, lon + Tracker.rate_deg_per_day(lat) * days, size=max(0.35, min(1.2, math.sqrt(area / 300))))
            for _, lat, lon, cls, area in SRS_20110215
        ] + [_emerging_spec(RegionSpec, t)]
        data, header, truth = synth_magnetogram(
            t, regions, size=1024, seed=2011, noise_seed=k, quality=0x400 if minute == 36 else 0
        )
        for r, (noaa, *_rest) in zip(truth["regions"], SRS_20110215, strict=False):
            r["noaa_ar"] = noaa
        truth["regions"][-1].update(noaa_ar=None, emerging=True)  # not in NOAA's SRS: the demo's new region
        stem = f"hmi.M_720s_nrt.{header['T_REC'].replace('.', '').replace(':', '')}.3"
        write_fits(mag_dir / f"{stem}.magnetogram.fits", data, header)
        truth_all.append({"file": f"{stem}.magnetogram.fits", **truth})
    return truth_all


def _aia(aia_dir: Path, FullDiskScene: Any, JetSpec: Any, write_fits: Any) -> None:
    for old in aia_dir.glob("*.fits"):
        old.unlink()
    t_jet = dt.datetime(2011, 2, 15, 1, 50, tzinfo=dt.UTC).timestamp()
    jet = JetSpec(
        base_hpc_arcsec=(160.0, -330.0),  # at the edge of NOAA 11158's plage
        direction_deg=20.0,
        speed_km_s=220.0,
        height_arcsec=70.0,
        fwhm_arcsec=7.0,
        duration_s=540.0,
        start_t=t_jet + 150.0,
        contrast=2.5,
    )
    scenes = [
        ("jet", FullDiskScene(t_jet, shape=(200, 200), centre_hpc_arcsec=(180.0, -300.0), seed=2, active_regions=1)),
        ("jet-free", FullDiskScene(t_jet + 1200, shape=(200, 200), centre_hpc_arcsec=(-650.0, 640.0), seed=1002)),
    ]
    scenes[0][1].add_jet(jet)
    sequences = []
    fsn = 105143661
    n_aia = 0
    for name, scene in scenes:
        files = []
        for k in range(scene.n_frames):
            data, h = scene.level1(k, fsn=fsn)
            fsn += 12  # 304 comes every 12 s among AIA's channels; every second one is kept
            stamp = h["T_REC"].replace("-", "").replace(":", "")
            fname = f"aia.lev1_nrt2.{stamp}.{h['FSN']}.image_lev1.fits"
            write_fits(aia_dir / fname, data, fits.Header(h))
            files.append(fname)
            n_aia += 1
        sequences.append({"name": name, "files": [files[0], files[-1]], **scene.truth()})
    (aia_dir / "truth.json").write_text(json.dumps({"synthetic": True, "sequences": sequences}, indent=2, default=float))
    print(f"wrote {n_aia} AIA frames to {aia_dir}")


if __name__ == "__main__":
    main()
