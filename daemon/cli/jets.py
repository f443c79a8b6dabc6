"""``heliowatch jets FITS...|DIR [--json]``: coronal jets in a 304 A sequence of any field of view."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import numpy as np

from heliowatch.daemon.cli.common import add_config, config_of
from heliowatch.daemon.wiring import runtime_options
from heliowatch.models.core import jsonio
from heliowatch.models.core.times import unix_from_iso
from heliowatch.models.jets.stream import EventCutout
from heliowatch.models.runtime.runtime import open_runtime
from heliowatch.pipelines.aia_calibration import CalibrationTables
from heliowatch.pipelines.jet_media import strip_png
from heliowatch.pipelines.jet_sequences import analyse_sequence, sequence_files
from heliowatch.pipelines.products.jets import jet_network

__all__ = ["register"]


def _cmd_jets(a: argparse.Namespace) -> int:
    cfg = config_of(a)
    files = sequence_files(a.inputs)
    detectors = a.detector or cfg.jets.detectors
    encoder = head = None
    model: dict[str, Any] = {"detectors": list(detectors), "network": [], "synthetic_model": False}
    threshold = cfg.jets.threshold
    if "convlstm" in detectors:
        opts = runtime_options(cfg)
        enc_rt, head_rt = open_runtime("jet-encoder", opts), open_runtime("jet-head", opts)
        encoder, head = jet_network(enc_rt, head_rt)
        model["network"] = [enc_rt.info, head_rt.info]
        model["synthetic_model"] = bool(enc_rt.info["synthetic"] or head_rt.info["synthetic"])
        if not threshold:
            threshold = float((head_rt.card.get("threshold") or {}).get("value", 0.5))
    model["threshold"] = threshold or 0.5
    res = analyse_sequence(
        files,
        encoder=encoder,
        head=head,
        threshold=threshold or 0.5,
        use_baseline="baseline" in detectors,
        network_alone_min_p=cfg.jets.network_alone_min_p if "baseline" in detectors else (threshold or 0.5),
        network_max_windows=cfg.jets.network_max_windows,
        tables=CalibrationTables(cfg.aia_tables_dir if cfg.aia_tables_dir.exists() else None),
    )
    if a.json:
        print(jsonio.dumps({"schema_version": jsonio.SCHEMA_VERSION, **res.as_json(model=model)}, indent=2))
        return 0
    span = f"{len(res.frames)} frames" + (f", {len(res.rejected)} refused" if res.rejected else "")
    print(f"{len(res.events)} jet(s) in {span} ({res.frames[0].shape[1]}x{res.frames[0].shape[0]} px, {len(res.tiles)} tile(s))")
    for e in res.events:
        where = f"HGS {e.hgs_lat:+.1f} {e.hgs_lon:+.1f}" if math.isfinite(e.hgs_lat) else "off-limb"
        speed = f"{e.speed_km_s:.0f} km/s" if e.speed_km_s is not None else "speed n/a"
        bx, by = e.base_hpc_arcsec
        print(
            f'  {e.start_utc[:19]} .. {e.end_utc[11:19]}  base ({bx:+.0f}", {by:+.0f}") {where}'
            f'  PA {e.direction_deg:.0f}  {e.length_arcsec:.0f}"  {speed}  P {e.probability:.2f}  {"+".join(e.detectors)}'
            + ("  degraded" if e.degraded else "")
        )
    ready = [w for w in res.windows if w["ready"]]
    if ready:
        best = max(max(w["probabilities"]) for w in ready)
        print(f"network: {len(ready)} window(s), highest tile probability {best:.2f} (threshold {model['threshold']:.2f})")
    elif encoder is not None:
        print("network: no window had enough frames for a probability")
    for flag in res.flags:
        print(f"note: {flag}")
    for r in res.rejected:
        print(f"refused: {r['error']}")
    if model["synthetic_model"]:
        print("note: the network was trained on synthetic data; its real skill is unknown (see its model card)")
    if a.strips and res.events:
        _write_strips(a, files, res)
    return 0


def _write_strips(a: argparse.Namespace, files: list[Path], res: Any) -> None:
    out = Path(a.strips)
    out.mkdir(parents=True, exist_ok=True)
    f0 = res.frames[0]
    ny, nx = f0.shape
    ext = (
        f0.x0_arcsec - f0.arcsec_per_px / 2,
        f0.x0_arcsec + (nx - 0.5) * f0.arcsec_per_px,
        f0.y0_arcsec - f0.arcsec_per_px / 2,
        f0.y0_arcsec + (ny - 0.5) * f0.arcsec_per_px,
    )
    for e in res.events:
        t0, t1 = unix_from_iso(e.start_utc), unix_from_iso(e.end_utc)
        sel = [f for f in res.frames if t0 - 60 <= f.t_unix <= t1 + 60] or res.frames
        cut = EventCutout(np.stack([f.data for f in sel]), np.array([f.t_unix for f in sel]), None, ext)
        path = out / f"{e.key}-strip.png"
        path.write_bytes(strip_png(cut, e))
        print(f"strip: {path}")


def register(sub: Any) -> None:
    """``jets``."""
    j = sub.add_parser("jets", help="coronal jets in an AIA 304 A sequence (files or a directory; any field of view)")
    add_config(j)
    j.add_argument("inputs", nargs="+", metavar="FITS|DIR")
    j.add_argument("--json", action="store_true")
    j.add_argument("--detector", action="append", choices=["baseline", "convlstm"], help="run only this detector (repeatable)")
    j.add_argument("--strips", metavar="DIR", help="also write a movie strip per event here")
    j.set_defaults(func=_cmd_jets)
