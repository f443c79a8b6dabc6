"""The one small interface every inference backend implements."""

from __future__ import annotations

from typing import Protocol

import numpy as np

__all__ = ["Backend"]


class Backend(Protocol):
    """``predict(batch) -> outputs`` on float32 numpy arrays.

    ``name`` is one of ``tensorrt``, ``onnxruntime-cuda``, ``onnxruntime-cpu``,
    ``torch-cuda``, ``torch-cpu`` (bounded: it is a metric label).
    """

    name: str

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Run the model on one batch no larger than the runtime's limit."""
        ...
