"""``heliowatch models {list,export,check,bench}``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from heliowatch.daemon.cli.cards import card_lines
from heliowatch.daemon.cli.common import add_config, config_of
from heliowatch.models import registry
from heliowatch.models.core import jsonio
from heliowatch.models.core.errors import ModelError, UsageError
from heliowatch.models.registry import resolve_root
from heliowatch.models.runtime.bench import bench_model, format_table
from heliowatch.models.runtime.check import check_model
from heliowatch.models.runtime.export import export_model, load_export
from heliowatch.models.runtime.runtime import ALIASES, BACKENDS, available_backends
from heliowatch.pipelines.model_inputs import real_inputs

__all__ = ["register"]


def _names(a: argparse.Namespace) -> list[str]:
    """The networks asked for (all by default); ModelError for an unknown name or a feature model."""
    if not a.model:
        return list(registry.MODELS)
    for n in a.model:
        if n not in registry.MODELS and n in _feature_models(_weights_dirs(a)):
            msg = f"model {n!r} is a feature model (run from its JSON file in numpy): it has no ONNX export or backends"
            raise UsageError(msg)
        registry.get(n)
    return list(a.model)


def _weights_dirs(a: argparse.Namespace) -> tuple[Path, ...]:
    return (config_of(a).weights_dir,)


def _feature_models(dirs: tuple[Path, ...]) -> dict[str, Path]:
    """The models that are not networks (SHARP-keyword models, climatologies), by name: one JSON file
    each, with its model card embedded under ``card``; retrained ones in ``dirs`` first."""
    found: dict[str, Path] = {}
    for d in (*dirs, registry.weights_dir()):
        for path in sorted(Path(d).glob("*.json")) if Path(d).is_dir() else []:
            if path.name.endswith(".card.json") or path.stem in found:
                continue
            try:
                doc = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            if isinstance(doc, dict) and isinstance(doc.get("card"), dict) and doc["card"].get("name") == path.stem:
                found[path.stem] = path
    return found


def _list_names(a: argparse.Namespace, features: dict[str, Path]) -> list[str]:
    known = [*registry.MODELS, *features]
    if not a.model:
        return known
    bad = [n for n in a.model if n not in known]
    if bad:
        msg = f"unknown model(s) {bad}; registered: {', '.join(known)}"
        raise UsageError(msg)
    return list(a.model)


def _export_dir(a: argparse.Namespace) -> Path:
    if getattr(a, "export_dir", None):
        return Path(a.export_dir)
    return config_of(a).export_dir


def _backends(a: argparse.Namespace) -> list[str]:
    have = available_backends()
    if not a.backend:
        return have
    wanted = [ALIASES.get(b, b) for b in a.backend]
    bad = [b for b in wanted if b not in BACKENDS]
    if bad:
        msg = f"unknown backend(s) {bad}; choose from {', '.join(BACKENDS)}"
        raise UsageError(msg)
    missing = [b for b in wanted if b not in have]
    if missing:
        msg = f"backend(s) {missing} are not available here (available: {', '.join(have)})"
        raise UsageError(msg)
    return wanted


def _cmd_list(a: argparse.Namespace) -> int:
    export_dir = _export_dir(a)
    features = _feature_models(_weights_dirs(a))
    cards = []
    for n in _list_names(a, features):
        if n in features:
            card = json.loads(features[n].read_text())["card"]
            card["onnx_export"] = {"verified": False, "reason": "a feature model: no ONNX export", "file": str(features[n])}
        else:
            root = resolve_root(n, _weights_dirs(a))
            card = registry.load_card(n, root=root)
            try:
                card["onnx_export"] = {"path": str(load_export(n, export_dir, weights_root=root).path), "verified": True}
            except ModelError as e:
                card["onnx_export"] = {"verified": False, "reason": str(e)}
        cards.append(card)
    if a.json:
        print(jsonio.dumps({"schema_version": jsonio.SCHEMA_VERSION, "models": cards}, indent=2))
        return 0
    for c in cards:
        print("\n".join(card_lines(c)))
    return 0


def _cmd_export(a: argparse.Namespace) -> int:
    export_dir = _export_dir(a)
    for n in _names(a):
        rec = export_model(n, export_dir)
        dims = rec.card["onnx"]["inputs"][0][1]
        opset = rec.card["onnx"]["opset"]
        print(f"{n}: {rec.path} (opset {opset}, input {dims}, sha256 {rec.sha256[:16]}...) checked by onnx.checker")
    return 0


def _cmd_check(a: argparse.Namespace) -> int:
    export_dir = _export_dir(a)
    backends = _backends(a)
    failed = 0
    head = f"{'model':<16}{'backend':<18}{'inputs':<26}{'max abs err':>13}{'max rel err':>13}{'tolerance':>11}  result"
    print(f"parity against float64 torch; backends: {', '.join(backends)}")
    print(head)
    print("-" * len(head))
    for n in _names(a):
        for r in check_model(
            n, export_dir, backends, real=real_inputs(n), weights_root=resolve_root(n, (config_of(a).weights_dir,))
        ):
            failed += not r.ok
            verdict = "ok" if r.ok else "FAIL"
            errs = f"{r.max_abs:>13.2e}{r.max_rel:>13.2e}{r.tolerance:>11.0e}"
            print(f"{r.model:<16}{r.backend:<18}{r.inputs[:24]:<26}{errs}  {verdict}")
    if failed:
        print(f"heliowatch: {failed} backend/model pair(s) outside tolerance", file=sys.stderr)
        return 1
    return 0


def _cmd_bench(a: argparse.Namespace) -> int:
    export_dir = _export_dir(a)
    backends = _backends(a)
    rows = []
    for n in _names(a):
        batches = a.batch or ([1, 2, 4] if n.startswith("jet") else [1, 8, 32])
        rows += bench_model(n, export_dir, backends, batches, min_time_s=a.min_time)
    print(format_table(rows))
    return 0


def register(sub: Any) -> None:
    """``heliowatch models {list,export,check,bench}``."""
    p = sub.add_parser("models", help="model registry, ONNX/TensorRT export, backend parity, speed")
    add_config(p)
    s = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--model", action="append", metavar="NAME", help="only this model (repeatable)")
        q.add_argument("--export-dir", help="where ONNX exports live (default: from the config)")

    ls = s.add_parser(
        "list",
        help="registered models and their cards: networks and feature models (the names forecasts cite)",
    )
    common(ls)
    ls.add_argument("--json", action="store_true", help="the cards as JSON: {schema_version, models: [card, ...]}")
    ls.set_defaults(func=_cmd_list)
    ex = s.add_parser("export", help="export every model to ONNX (dynamic batch/time), check, record the hash")
    common(ex)
    ex.set_defaults(func=_cmd_export)
    ck = s.add_parser("check", help="backend parity against float64 torch on random and real inputs")
    common(ck)
    ck.add_argument("--backend", action="append", help="only this backend (repeatable); default: all available")
    ck.set_defaults(func=_cmd_check)
    be = s.add_parser("bench", help="latency and throughput per model, backend and batch size")
    common(be)
    be.add_argument("--backend", action="append", help="only this backend (repeatable); default: all available")
    be.add_argument("--batch", type=int, action="append", help="batch size (repeatable)")
    be.add_argument("--min-time", type=float, default=1.0, help="seconds of timing per point")
    be.set_defaults(func=_cmd_bench)
