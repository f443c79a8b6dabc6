"""``heliowatch detect`` and ``heliowatch classify``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from heliowatch.daemon.cli.common import add_config, config_of
from heliowatch.daemon.wiring import runtime_options
from heliowatch.models.core import jsonio
from heliowatch.models.core.errors import UsageError
from heliowatch.models.core.times import parse_iso
from heliowatch.models.regions.classify import NO_SPOT_GROUP, classify_regions
from heliowatch.models.regions.detect import to_json
from heliowatch.models.regions.loaders import region_classifier, region_detector
from heliowatch.pipelines.cutouts import cutouts
from heliowatch.pipelines.quicklook import quicklook_png
from heliowatch.pipelines.regions import classify_cutout, identify, preprocess
from heliowatch.pipelines.srs import SRSArchive

__all__ = ["register"]


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path


def _class_text(mtwilson: str | None, outcome: str) -> str:
    """The class, or why there is none (``no spot group``, ``no class (limb)``)."""
    if mtwilson:
        return mtwilson
    return "no spot group" if outcome == NO_SPOT_GROUP else f"no class ({outcome})"


def _cmd_detect(a: argparse.Namespace) -> int:
    p = Path(a.fits)
    if not p.exists():
        msg = f"{p} does not exist"
        raise UsageError(msg)
    cfg = config_of(a)
    opts = runtime_options(cfg)
    cnn, model = region_classifier(a.classifier or cfg.models.region_classifier, opts)
    detect, det_model = region_detector(a.detector or cfg.models.region_detector, opts)
    frame = preprocess(p)
    regions = detect(frame)
    classify_regions(frame, regions, cnn=cnn, limb_guard_deg=cfg.regions.limb_guard_deg)
    ids: dict[int, dict[str, Any]] = {}
    if a.srs:
        srs = SRSArchive(Path(a.srs)).latest_issued(parse_iso(frame.t_rec_utc))
        if srs is None:
            msg = f"{a.srs}: no SRS issued in the 3 days before {frame.t_rec_utc}"
            raise UsageError(msg)
        for r in regions:
            ids[r.id] = identify(r, frame.t_rec_utc, srs=srs)
            r.noaa_ar = ids[r.id]["noaa_ar"]
    cut_paths: dict[int, dict[str, str]] = {}
    if a.cutouts:
        stem = "region-" + frame.t_rec_utc[:19].replace(":", "")
        for r, cut in zip(regions, cutouts(frame, regions, stem=stem), strict=True):
            entry = {"fits": str(_write(Path(a.cutouts) / f"{cut.stem}.fits", cut.fits))}
            if cut.png is not None:
                entry["png"] = str(_write(Path(a.cutouts) / f"{cut.stem}.png", cut.png))
            cut_paths[r.id] = entry
    if a.quicklook:
        _write(Path(a.quicklook), quicklook_png(frame.source, regions=regions, frame=frame))
    if a.json:
        print(
            jsonio.dumps(
                {
                    "schema_version": jsonio.SCHEMA_VERSION,
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
            cls = _class_text(r.mtwilson, r.outcome)
            print(f"  {r.id:>2}  {cls:<17} {pos}  {r.usflux_mx:.2e} Mx  conf {r.confidence:.2f}  bbox {r.bbox_px}")
    return 0


def _cmd_classify(a: argparse.Namespace) -> int:
    cfg = config_of(a)
    cnn, model = region_classifier(a.classifier or cfg.models.region_classifier, runtime_options(cfg))
    out = []
    for f in a.files:
        p = Path(f)
        if not p.exists():
            msg = f"{p} does not exist"
            raise UsageError(msg)
        out.append({**classify_cutout(p, cnn=cnn, limb_guard_deg=cfg.regions.limb_guard_deg), "model": {"classifier": model}})
    if a.json:
        # A list, as DESIGN.md fixes the shape; the version rides on every entry.
        print(jsonio.dumps([{"schema_version": jsonio.SCHEMA_VERSION, **c} for c in out], indent=2))
    else:
        for o in out:
            cls = o["mtwilson"]
            prob = f" ({o['class_probs'][cls]:.2f})" if cls else ""
            print(f"{Path(o['file']).name}: {_class_text(cls, o['outcome'])}{prob}")
    return 0


def register(sub: Any) -> None:
    """``detect`` and ``classify``."""
    d = sub.add_parser("detect", help="active regions and Mt. Wilson classes of one full-disk magnetogram")
    add_config(d)
    d.add_argument("fits")
    d.add_argument("--json", action="store_true")
    d.add_argument("--quicklook", metavar="PNG", help="also write the annotated quicklook here")
    d.add_argument("--classifier", choices=["cnn", "rules"], help="default: models.region_classifier of the config")
    d.add_argument("--detector", choices=["cnn", "smart"], help="default: models.region_detector of the config")
    d.add_argument("--cutouts", metavar="DIR", help="also write a FITS + PNG cutout of each region here")
    d.add_argument("--srs", metavar="DIR", help="NOAA SRS files (daily .txt or yearly .tar.gz): name regions by NOAA number")
    d.set_defaults(func=_cmd_detect)
    c = sub.add_parser("classify", help="Mt. Wilson class of region cutouts (SHARP CEA patches)")
    add_config(c)
    c.add_argument("files", nargs="+")
    c.add_argument("--json", action="store_true")
    c.add_argument("--classifier", choices=["cnn", "rules"], help="default: models.region_classifier of the config")
    c.set_defaults(func=_cmd_classify)
