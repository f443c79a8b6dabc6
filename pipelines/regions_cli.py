"""``heliowatch detect`` and ``heliowatch classify``."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from heliowatch.daemon.cli import register
from heliowatch.daemon.errors import UsageError

__all__ = ["add_region_parsers"]

_METHOD = {"detector": "smart-like physics baseline", "classifier": "rules (heuristic probabilities)", "trained": False}


def _cmd_detect(a: argparse.Namespace) -> int:
    from heliowatch.pipelines.regions import classify_regions, detect, preprocess, to_json  # noqa: PLC0415

    p = Path(a.fits)
    if not p.exists():
        msg = f"{p} does not exist"
        raise UsageError(msg)
    frame = preprocess(p)
    regions = detect(frame)
    classify_regions(frame, regions)
    if a.quicklook:
        from heliowatch.pipelines.quicklook import render_magnetogram  # noqa: PLC0415

        render_magnetogram(p, Path(a.quicklook), regions=regions, frame=frame)
    if a.json:
        print(
            json.dumps(
                {"file": str(p), "t_rec_utc": frame.t_rec_utc, "regions": [to_json(r) for r in regions], "model": _METHOD},
                indent=2,
            )
        )
    else:
        print(f"{len(regions)} region(s) in {p.name} ({frame.t_rec_utc})")
        for r in regions:
            pos = f"HGS {r.hgs_lat:+6.1f} {r.hgs_lon:+6.1f}"
            print(f"  {r.id:>2}  {r.mtwilson:<17} {pos}  {r.usflux_mx:.2e} Mx  conf {r.confidence:.2f}  bbox {r.bbox_px}")
    return 0


def _cmd_classify(a: argparse.Namespace) -> int:
    from heliowatch.models import measures  # noqa: PLC0415
    from heliowatch.pipelines.flares import read_sharp_record  # noqa: PLC0415
    from heliowatch.pipelines.regions import classify_rules  # noqa: PLC0415

    out = []
    for f in a.files:
        p = Path(f)
        if not p.exists():
            msg = f"{p} does not exist"
            raise UsageError(msg)
        inp = read_sharp_record(p)  # checks it is a CEA cutout; gives the LOS field
        if inp.patch is None:
            msg = f"{p.name}: the patch has no valid pixels"
            raise UsageError(msg)
        mu = math.cos(math.radians(inp.lat or 0)) * math.cos(math.radians(inp.lon or 0))
        br = inp.patch / max(mu, 0.1)
        cls, probs, m = classify_rules(br, 0.03, measures.cea_pixel_area_cm2(0.03))
        out.append(
            {
                "file": str(p),
                "harpnum": inp.harpnum,
                "noaa_ar": inp.noaa_ar,
                "mtwilson": cls,
                "class_probs": probs,
                "measures": {k: round(v, 4) for k, v in m.items()},
                "model": _METHOD,
            }
        )
    if a.json:
        print(json.dumps(out, indent=2))
    else:
        for o in out:
            print(f"{Path(o['file']).name}: {o['mtwilson']} ({o['class_probs'][o['mtwilson']]:.2f})")
    return 0


def add_region_parsers(sub: Any) -> None:
    """Register ``detect`` and ``classify``."""
    d = sub.add_parser("detect", help="active regions and Mt. Wilson classes of one full-disk magnetogram")
    d.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS)
    d.add_argument("fits")
    d.add_argument("--json", action="store_true")
    d.add_argument("--quicklook", metavar="PNG", help="also write the annotated quicklook here")
    d.set_defaults(func=_cmd_detect)
    c = sub.add_parser("classify", help="Mt. Wilson class of region cutouts (SHARP CEA patches)")
    c.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS)
    c.add_argument("files", nargs="+")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=_cmd_classify)


register(add_region_parsers)
