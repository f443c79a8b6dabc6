"""``heliowatch emergence FITS...|DIR [--json]``: emergence probabilities and warnings for a magnetogram series."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from heliowatch.daemon.cli.common import add_config, config_of
from heliowatch.daemon.wiring import emergence_product, runtime_options
from heliowatch.models.core import jsonio
from heliowatch.models.core.errors import UsageError
from heliowatch.models.core.times import tai_to_utc
from heliowatch.pipelines.alert_rules import Rules
from heliowatch.pipelines.fitsio import read_fits
from heliowatch.pipelines.frames import Source, VerifiedFrame, reload
from heliowatch.pipelines.products.base import Batch, Catalogue

__all__ = ["register"]

_SOURCE = Source("magnetogram", "hmi.M_720s", ("magnetogram",))


def _frames(inputs: list[str]) -> list[VerifiedFrame]:
    files: list[Path] = []
    for s in inputs:
        p = Path(s)
        if p.is_dir():
            files += sorted(p.glob("*.fits"))
        elif p.is_file():
            files.append(p)
        else:
            msg = f"{p}: no such file or directory"
            raise UsageError(msg)
    if not files:
        msg = "no FITS files given"
        raise UsageError(msg)
    frames = []
    for f in files:
        img = read_fits(f)
        t_rec = img.keyword("T_REC") or img.keyword("DATE-OBS")
        if not t_rec:
            msg = f"{f}: no T_REC or DATE-OBS: cannot place the frame in time"
            raise UsageError(msg)
        try:
            t_utc = tai_to_utc(str(t_rec))
        except ValueError as e:
            msg = f"{f}: T_REC {t_rec!r} is not a time"
            raise UsageError(msg) from e
        frames.append(reload(_SOURCE, f"{f.name}", t_utc, {"magnetogram": f}))
    return sorted(frames, key=lambda fr: fr.t_rec_utc)


def _cmd_emergence(a: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {
        k: v for k, v in (("method", a.method), ("threshold", a.threshold), ("window_minutes", a.window_minutes)) if v is not None
    }
    if a.window_minutes is not None:
        overrides["stride_minutes"] = a.stride_minutes or a.window_minutes
    cfg = config_of(a)
    if overrides:
        cfg = cfg.replace(emergence=overrides)
    out = Path(a.maps) if a.maps else Path(cfg.daemon.outputs)
    product = emergence_product(cfg, runtime_options(cfg), catalogue=Catalogue(), rules=Rules(), outputs=out.resolve())
    frames = _frames(a.inputs)
    batch = Batch()
    for fr in frames:
        batch.extend(product.process([fr]))
    batch.extend(product.end_of_stream())
    if a.maps:
        for art in batch.files:
            if art.path.name.startswith("emergence-map-"):
                dest = out / art.path.name
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(art.data)
    patches = [rec for r in batch.records if r.kind == "emergence" for rec in r.payload["records"]]
    warnings = [r.payload for r in batch.records if r.kind == "emergence_warning"]
    model = {
        **product.model_info,
        "method": product.method,
        "threshold": product.threshold,
        "synthetic_model": product.synthetic_model,
    }
    snap = product.latest
    if not snap.windows_scored:
        need = round(product.averaging.min_fraction * product.averaging.nominal_frames)
        print(
            f"note: no averaging window completed: a window of {product.averaging.window_s / 60:.0f} min needs {need} frames"
            " (--window-minutes shortens it)",
            file=sys.stderr,
        )
    if a.json:
        doc = {"schema_version": jsonio.SCHEMA_VERSION, "patches": patches, "warnings": warnings, "model": model}
        print(jsonio.dumps(doc, indent=2))
        return 0
    rejected = sum(snap.rejected.values())
    print(
        f"{len(frames)} magnetogram(s){f', {rejected} refused' if rejected else ''}; {snap.patches} patches in the last;"
        f" {snap.windows_scored} patch-window(s) scored; {len(warnings)} warning(s) ({product.method} >= {product.threshold:.2f})"
    )
    for w in warnings:
        print(f"  {w['t_mid_utc'][:16]}  {w['position']}  P {w['probability']:.2f}  {w['lead_time_class']}")
    if patches:
        top = sorted((p for p in patches if p["method"] == product.method), key=lambda p: -p["p_emergence"])[:5]
        for p in top:
            print(f"  top: {p['patch_id']:<14} {p['t_utc'][:16]}  P {p['p_emergence']:.2f}")
    if product.synthetic_model:
        print("note: the classifiers were trained on synthetic and semi-real data; their real skill is unknown")
    return 0


def register(sub: Any) -> None:
    """``emergence``."""
    e = sub.add_parser("emergence", help="emergence probabilities and warnings for a series of full-disk magnetograms")
    add_config(e)
    e.add_argument("inputs", nargs="+", metavar="FITS|DIR")
    e.add_argument("--json", action="store_true")
    e.add_argument("--method", choices=["mtot-lda", "emergence-fcn"], help="which classifier warns (default: configured)")
    e.add_argument("--threshold", type=float, help="warning probability (default: the configuration's)")
    e.add_argument("--window-minutes", type=float, help="averaging window (default: the configuration's, the seed's 410 min)")
    e.add_argument("--stride-minutes", type=float, help="window spacing with --window-minutes (default: the window)")
    e.add_argument("--maps", metavar="DIR", help="write the probability map of every magnetogram here")
    e.set_defaults(func=_cmd_emergence)
