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
from heliowatch.pipelines.fitsio import parse_quality, read_fits
from heliowatch.pipelines.frames import Source, VerifiedFrame, reload
from heliowatch.pipelines.jet_sequences import sequence_files
from heliowatch.pipelines.products.base import Batch, Catalogue

__all__ = ["register"]

_SOURCE = Source("magnetogram", "hmi.M_720s", ("magnetogram",))


def _frames(inputs: list[str]) -> tuple[list[tuple[str, Path]], list[str]]:
    """``(T_REC in UTC, file)`` in time order, and the names of the files skipped for a nonzero QUALITY (as the
    daemon skips them). Only headers are kept: the frames are read one at a time when processed."""
    files = sequence_files(inputs)
    frames, skipped = [], []
    for f in files:
        img = read_fits(f)
        try:
            quality = parse_quality(img.keyword("QUALITY", 0))
        except ValueError:
            quality = -1
        if quality != 0:
            skipped.append(f.name)
            continue
        t_rec = img.keyword("T_REC") or img.keyword("DATE-OBS")
        if not t_rec:
            msg = f"{f}: no T_REC or DATE-OBS: cannot place the frame in time"
            raise UsageError(msg)
        try:
            t_utc = tai_to_utc(str(t_rec))
        except ValueError as e:
            msg = f"{f}: T_REC {t_rec!r} is not a time"
            raise UsageError(msg) from e
        frames.append((t_utc, f))
        del img
    return sorted(frames), skipped


def _write_files(batch: Batch, out: Path | None) -> None:
    """Write the batch's maps and event files under ``out`` (the paths its records name); without
    ``out`` nothing is kept, and the records' file paths are cleared."""
    if out is None:
        for r in batch.records:
            for k in ("map_png", "hek_json", "voevent_xml"):
                if k in r.payload:
                    r.payload[k] = None
    else:
        for art in batch.files:
            dest = out / art.path
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(art.data)
    batch.files = []  # written or dropped: a day of maps is not held in memory


def _cmd_emergence(a: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {
        k: v for k, v in (("method", a.method), ("threshold", a.threshold), ("window_minutes", a.window_minutes)) if v is not None
    }
    if a.stride_minutes is not None or a.window_minutes is not None:
        overrides["stride_minutes"] = a.stride_minutes or a.window_minutes
    cfg = config_of(a)
    if overrides:
        cfg = cfg.replace(emergence=overrides)
    out = Path(a.maps) if a.maps else Path(cfg.daemon.outputs)
    product = emergence_product(cfg, runtime_options(cfg), catalogue=Catalogue(), rules=Rules(), outputs=out.resolve())
    frames, skipped = _frames(a.inputs)
    if skipped:
        print(f"note: {len(skipped)} frame(s) skipped for a nonzero QUALITY: {', '.join(skipped)}", file=sys.stderr)
    batch = Batch()
    for t_utc, f in frames:
        fr: VerifiedFrame = reload(_SOURCE, f.name, t_utc, {"magnetogram": f})
        got = product.process([fr])
        _write_files(got, out if a.maps else None)
        batch.extend(got)
    got = product.end_of_stream()
    _write_files(got, out if a.maps else None)
    batch.extend(got)
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
    e.add_argument("--maps", metavar="DIR", help="write the probability maps and the warnings' HEK/VOEvent files under DIR")
    e.set_defaults(func=_cmd_emergence)
