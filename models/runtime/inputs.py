"""Random inputs for parity checks and benchmarks (real ones come from ``heliowatch.pipelines.model_inputs``)."""

from __future__ import annotations

import numpy as np

from heliowatch.models import registry

__all__ = ["random_inputs"]


def random_inputs(name: str, batch: int, *, seed: int = 0) -> np.ndarray:
    """Standard-normal inputs of the model's example shape with ``batch`` items."""
    spec = registry.get(name)
    shape = (batch, *spec.example_shape[1:])
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
