"""``heliowatch detect`` and ``heliowatch classify``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from heliowatch.daemon.cli import progress_bar, register
from heliowatch.daemon.errors import UsageError

__all__ = ["add_region_parsers", "evaluate_regions_cmd", "train_regions"]


def _cmd_detect(a: argparse.Namespace) -> int:
    from heliowatch.daemon.config import load_config  # noqa: PLC0415
    from heliowatch.pipelines.regions import (  # noqa: PLC0415
        classify_regions,
        preprocess,
        region_classifier,
        region_detector,
        to_json,
    )

    p = Path(a.fits)
    if not p.exists():
        msg = f"{p} does not exist"
        raise UsageError(msg)

    cfg = load_config(Path(a.config) if a.config else None)
    cnn, model = region_classifier(a.classifier or cfg.models.region_classifier, export_dir=cfg.export_dir)
    detect, det_model = region_detector(a.detector or cfg.models.region_detector, export_dir=cfg.export_dir)
    frame = preprocess(p)
    regions = detect(frame)
    classify_regions(frame, regions, cnn=cnn)
    ids: dict[int, dict[str, Any]] = {}
    if a.srs:
        import datetime as dt  # noqa: PLC0415

        from heliowatch.pipelines.regions import identify  # noqa: PLC0415
        from heliowatch.pipelines.srs import SRSArchive  # noqa: PLC0415

        srs = SRSArchive(Path(a.srs)).latest_issued(dt.datetime.fromisoformat(frame.t_rec_utc.replace("Z", "+00:00")))
        if srs is None:
            msg = f"{a.srs}: no SRS issued in the 3 days before {frame.t_rec_utc}"
            raise UsageError(msg)
        for r in regions:
            ids[r.id] = identify(r, frame.t_rec_utc, srs=srs)
            r.noaa_ar = ids[r.id]["noaa_ar"]
    cut_paths: dict[int, dict[str, str]] = {}
    if a.cutouts:
        from heliowatch.pipelines.cutouts import write_cutouts  # noqa: PLC0415

        stem = "region-" + frame.t_rec_utc[:19].replace(":", "")
        cut_paths = dict(zip([r.id for r in regions], write_cutouts(frame, regions, Path(a.cutouts), stem=stem), strict=True))
    if a.quicklook:
        from heliowatch.pipelines.quicklook import render_magnetogram  # noqa: PLC0415

        render_magnetogram(p, Path(a.quicklook), regions=regions, frame=frame)
    if a.json:
        print(
            json.dumps(
                {
                    "file": str(p),
                    "t_rec_utc": frame.t_rec_utc,
                    "regions": [
                        {
                            **to_json(r),
                            **({"srs": ids[r.id]["srs"]} if ids else {}),
                            **({"cutout": cut_paths[r.id]} if cut_paths else {}),
                        }
                        for r in regions
                    ],
                    "model": {"detector": det_model, "classifier": model},
                },
                indent=2,
            )
        )
    else:
        print(f"{len(regions)} region(s) in {p.name} ({frame.t_rec_utc})")
        for r in regions:
            pos = f"HGS {r.hgs_lat:+6.1f} {r.hgs_lon:+6.1f}" + (f"  NOAA {r.noaa_ar}" if r.noaa_ar else "")
            print(f"  {r.id:>2}  {r.mtwilson:<17} {pos}  {r.usflux_mx:.2e} Mx  conf {r.confidence:.2f}  bbox {r.bbox_px}")
    return 0


def _cmd_classify(a: argparse.Namespace) -> int:
    from heliowatch.daemon.config import load_config  # noqa: PLC0415
    from heliowatch.pipelines.regions import classify_cutout, region_classifier  # noqa: PLC0415

    cfg = load_config(Path(a.config) if a.config else None)
    cnn, model = region_classifier(a.classifier or cfg.models.region_classifier, export_dir=cfg.export_dir)
    out = []
    for f in a.files:
        p = Path(f)
        if not p.exists():
            msg = f"{p} does not exist"
            raise UsageError(msg)
        out.append({**classify_cutout(p, cnn=cnn), "model": {"classifier": model}})
    if a.json:
        print(json.dumps(out, indent=2))
    else:
        for o in out:
            print(f"{Path(o['file']).name}: {o['mtwilson']} ({o['class_probs'][o['mtwilson']]:.2f})")
    return 0


def train_regions(a: argparse.Namespace, out: Path) -> int:
    """The region models train on synthetic disks they generate: no --data."""
    frames = a.frames
    if a.model == "region-detector":
        from heliowatch.models.region_detector import train_region_detector  # noqa: PLC0415

        res = train_region_detector(out, frames=frames or 240, epochs=a.epochs, progress=progress_bar("train region-detector"))
    else:
        from heliowatch.models.region_cnn import train_region_classifier  # noqa: PLC0415

        res = train_region_classifier(out, frames=frames or 60, epochs=a.epochs)
    print(json.dumps(res, indent=2))
    return 0


def evaluate_regions_cmd(a: argparse.Namespace) -> int:
    """``heliowatch evaluate regions``."""
    from heliowatch.daemon.config import load_config  # noqa: PLC0415
    from heliowatch.pipelines.regions import region_classifier, region_detector  # noqa: PLC0415
    from heliowatch.pipelines.regions_eval import check_data_root, evaluate_regions, format_report, save_report  # noqa: PLC0415

    check_data_root(Path(a.data))
    cfg = load_config(Path(a.config) if a.config else None)
    cnn, _ = region_classifier("cnn", export_dir=cfg.export_dir, backend=cfg.models.backend)
    detectors = {}
    for kind in dict.fromkeys([cfg.models.region_detector, "smart", "cnn"]):  # the configured one first
        try:
            detectors[kind] = region_detector(kind, export_dir=cfg.export_dir, backend=cfg.models.backend)[0]
        except UsageError as e:  # an untrained CNN is reported, not evaluated
            print(f"not evaluated: {e}", file=sys.stderr)
    out = Path(a.out)
    res = evaluate_regions(
        Path(a.data),
        semireal_frames=a.frames,
        synthetic_frames=a.frames,
        cnn=cnn,
        detectors=detectors,
        progress=progress_bar("evaluate regions"),
        example_png=out / "semireal-example.png",
    )
    print(format_report(res))
    for p in save_report(res, out):
        print(f"wrote {p}", file=sys.stderr)
    return 0


def add_region_parsers(sub: Any) -> None:
    """Register ``detect`` and ``classify``."""
    d = sub.add_parser("detect", help="active regions and Mt. Wilson classes of one full-disk magnetogram")
    d.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS)
    d.add_argument("fits")
    d.add_argument("--json", action="store_true")
    d.add_argument("--quicklook", metavar="PNG", help="also write the annotated quicklook here")
    d.add_argument("--classifier", choices=["cnn", "rules"], help="default: models.region_classifier of the config")
    d.add_argument("--detector", choices=["cnn", "smart"], help="default: models.region_detector of the config")
    d.add_argument("--cutouts", metavar="DIR", help="also write a FITS + PNG cutout of each region here")
    d.add_argument("--srs", metavar="DIR", help="NOAA SRS files (daily .txt or yearly .tar.gz): name regions by NOAA number")
    d.set_defaults(func=_cmd_detect)
    c = sub.add_parser("classify", help="Mt. Wilson class of region cutouts (SHARP CEA patches)")
    c.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS)
    c.add_argument("files", nargs="+")
    c.add_argument("--json", action="store_true")
    c.add_argument("--classifier", choices=["cnn", "rules"], help="default: models.region_classifier of the config")
    c.set_defaults(func=_cmd_classify)


register(add_region_parsers)
