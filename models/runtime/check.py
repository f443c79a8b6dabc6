"""Backend parity: every available backend against float64 torch, on random and real inputs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from heliowatch.models import registry
from heliowatch.models.runtime.inputs import random_inputs
from heliowatch.models.runtime.runtime import Runtime

__all__ = ["TOLERANCE", "ParityResult", "check_model"]

#: Max relative error allowed against float64 torch, per backend. FP32 backends differ only by
#: summation order; TensorRT may run FP16 (10-bit mantissa) where ModelOpt converted the ONNX.
TOLERANCE = {
    "torch-cpu": 1e-4,
    "torch-cuda": 1e-3,
    "onnxruntime-cpu": 1e-4,
    "onnxruntime-cuda": 1e-3,
    "tensorrt": 2e-2,
}


@dataclass(frozen=True)
class ParityResult:
    """The worst disagreement of one backend with the float64 reference."""

    model: str
    backend: str
    inputs: str
    max_abs: float
    max_rel: float
    tolerance: float

    @property
    def ok(self) -> bool:
        """Within tolerance."""
        return self.max_rel <= self.tolerance


def _reference(name: str, x: np.ndarray, root: Path | None) -> np.ndarray:
    import torch  # noqa: PLC0415  (optional heavy backend)

    m = registry.load_torch(name, root=root, dtype=torch.float64)
    with torch.inference_mode():
        return m(torch.from_numpy(x.astype(np.float64))).numpy()


def _errors(y: np.ndarray, ref: np.ndarray, floor: float = 1e-3) -> tuple[float, float]:
    diff = np.abs(y.astype(np.float64) - ref)
    # Relative to the reference, floored so near-zero outputs (probabilities, or regression
    # values such as box offsets; the floor is the model's ``parity_floor``) do not explode the ratio.
    rel = diff / np.maximum(np.abs(ref), floor)
    return float(diff.max()), float(rel.max())


def check_model(
    name: str,
    export_dir: Path,
    backends: list[str],
    *,
    real: tuple[np.ndarray, str],
    batch: int = 3,
    weights_root: Path | None = None,
) -> list[ParityResult]:
    """Compare each backend in ``backends`` with float64 torch on random inputs and ``real = (input, description)``."""
    floor = float(registry.get(name).extra.get("parity_floor", 1e-3))
    real_x, desc = real
    sets = [("random", random_inputs(name, batch, seed=1)), ("real", real_x)]
    refs = [(label, x, _reference(name, x, weights_root)) for label, x in sets]
    out = []
    for b in backends:
        rt = Runtime(name, export_dir=export_dir, backend=b, only=True, weights_root=weights_root)
        for label, x, ref in refs:
            a, r = _errors(rt.predict(x), ref, floor)
            out.append(
                ParityResult(name, rt.backend.name, label if label == "random" else desc, a, r, TOLERANCE[rt.backend.name])
            )
    return out
