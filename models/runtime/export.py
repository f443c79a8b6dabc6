"""ONNX export of registered models (the one module that imports :mod:`onnx`).

Models are exported with torch's dynamo exporter with the dynamic axes of their spec (batch,
and time for sequence models), checked with ``onnx.checker`` (full check, shape inference),
and recorded in an *export card* beside the file: the model card plus the ONNX file's
SHA-256, opset, input/output names and the versions that made it. Anything that later loads
the ONNX (ONNX Runtime, TensorRT) verifies that hash first, so a corrupt or swapped file is
caught before it answers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx

from heliowatch.models import registry
from heliowatch.models.core.errors import ModelError
from heliowatch.models.core.times import SystemClock, iso_utc

__all__ = ["ExportRecord", "export_model", "export_needed", "load_export", "onnx_path"]


@dataclass(frozen=True)
class ExportRecord:
    """Where an exported model is and what it must hash to."""

    name: str
    version: str
    path: Path
    sha256: str
    input_name: str
    output_name: str
    card: dict[str, Any]


def onnx_path(export_dir: Path, name: str) -> Path:
    """``<export_dir>/<name>-<version>.onnx``."""
    return export_dir / f"{name}-{registry.get(name).version}.onnx"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def export_model(name: str, export_dir: Path, *, weights_root: Path | None = None) -> ExportRecord:
    """Export ``name`` to ONNX with dynamic axes, check it, and write its export card.

    Raises
    ------
    ModelError
        If export or the ONNX checker fails (the message names the model).
    """
    # torch is an optional heavy backend: imported only when a model is exported.
    import torch  # noqa: PLC0415  (torch: optional heavy backend)
    from torch.export import Dim  # noqa: PLC0415  (torch: optional heavy backend)

    spec = registry.get(name)
    module = registry.load_torch(name, root=weights_root)
    # Dynamo specialises dimensions of size 0 and 1, so export with 2 on every dynamic axis.
    shape = [2 if axis in spec.dynamic else n for axis, n in enumerate(spec.example_shape)]
    example = torch.randn(shape)
    dims = {axis: Dim(n, min=lo, max=hi) for axis, (n, lo, _, hi) in spec.dynamic.items()}
    export_dir.mkdir(parents=True, exist_ok=True)
    path = onnx_path(export_dir, name)
    tmp = path.with_name(path.name + ".part")
    # The exporter's own logger notes optional packages it skips ("torchvision is not installed"):
    # not ours to act on, and it writes past any handler configuration, so it is quieted here.
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # exporter chatter (deprecations inside torch/onnxscript)
            prog = torch.onnx.export(
                module,
                (example,),
                dynamic_shapes={"x": dims},
                input_names=[spec.input_name],
                output_names=["probability"],
                dynamo=True,
                external_data=False,
                verbose=False,
            )
            if prog is None:
                msg = "the exporter returned no program"
                raise RuntimeError(msg)
            prog.save(str(tmp))
        model = onnx.load(str(tmp))
        onnx.checker.check_model(model, full_check=True)
    except Exception as e:
        tmp.unlink(missing_ok=True)
        msg = f"model {name}: ONNX export failed: {type(e).__name__}: {str(e)[:300]}"
        raise ModelError(msg) from e
    finally:
        registration.setLevel(level)
    tmp.replace(path)
    inputs = [(i.name, [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]) for i in model.graph.input]
    outputs = [(o.name, [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim]) for o in model.graph.output]
    card = registry.load_card(name, root=weights_root)
    card["onnx"] = {
        "file": path.name,
        "sha256": _sha256(path),
        "opset": max(op.version for op in model.opset_import if op.domain in ("", "ai.onnx")),
        "inputs": inputs,
        "outputs": outputs,
        "exported_utc": iso_utc(SystemClock().now()),
        "torch": torch.__version__,
        "onnx": onnx.__version__,
    }
    path.with_suffix(".card.json").write_text(json.dumps(card, indent=2) + "\n")
    return ExportRecord(name, spec.version, path, card["onnx"]["sha256"], inputs[0][0], outputs[0][0], card)


def load_export(name: str, export_dir: Path, *, verify: bool = True, weights_root: Path | None = None) -> ExportRecord:
    """The export record of ``name``, with the ONNX file's hash verified against it.

    Raises
    ------
    ModelError
        If the model was never exported, or the file does not hash to the recorded value
        (corrupted or replaced); run ``heliowatch models export`` to rebuild it.
    """
    rec, problem = _inspect(name, export_dir, verify=verify, weights_root=weights_root)
    if rec is None:
        msg = f"model {name}: {problem} (run `heliowatch models export`)"
        raise ModelError(msg)
    return rec


def export_needed(name: str, export_dir: Path, *, weights_root: Path | None = None) -> str | None:
    """Why ``name`` must be (re-)exported before an ONNX backend can load it; None when its export is good.

    The reasons name no command to run: the daemon exports by itself, and says so.
    """
    return _inspect(name, export_dir, verify=True, weights_root=weights_root)[1]


def _inspect(name: str, export_dir: Path, *, verify: bool, weights_root: Path | None) -> tuple[ExportRecord | None, str | None]:
    path = onnx_path(export_dir, name)
    rec_path = path.with_suffix(".card.json")
    if not path.exists() or not rec_path.exists():
        return None, f"not exported to {export_dir} yet"
    try:
        card = json.loads(rec_path.read_text())
        info = card["onnx"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return None, f"export card {rec_path.name} is unreadable"
    if verify:
        digest = _sha256(path)
        if digest != info["sha256"]:
            return None, f"{path.name} does not match its export card (sha256 {digest[:12]}... != {info['sha256'][:12]}...)"
    weights_sha = registry.load_card(name, root=weights_root)["weights"]["sha256"]
    if card["weights"]["sha256"] != weights_sha:
        return None, f"{path.name} was exported from other weights"
    return ExportRecord(name, card["version"], path, info["sha256"], info["inputs"][0][0], info["outputs"][0][0], card), None
