"""The one small interface every inference backend implements."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

__all__ = ["Backend", "RuntimeObserver", "RuntimeOptions"]


class Backend(Protocol):
    """``predict(batch) -> outputs`` on float32 numpy arrays.

    ``name`` is one of ``tensorrt``, ``onnxruntime-cuda``, ``onnxruntime-cpu``,
    ``torch-cuda``, ``torch-cpu`` (bounded: it is a metric label).
    """

    name: str

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Run the model on one batch no larger than the runtime's limit."""
        ...


class RuntimeObserver(Protocol):
    """What the runtime reports (the daemon's metrics implement it)."""

    def backend_selected(self, model: str, backend: str) -> None:
        """``backend`` now serves ``model``."""
        ...

    def backend_failed(self, model: str, backend: str) -> None:
        """``backend`` could not be loaded for ``model`` (the runtime fell back)."""
        ...

    def inference(self, model: str, seconds: float) -> None:
        """One inference call took ``seconds``."""
        ...


@dataclass(frozen=True)
class RuntimeOptions:
    """How models are served (``[models]`` of the configuration, turned into this by the daemon).

    Attributes
    ----------
    export_dir : pathlib.Path
        Where ONNX exports live.
    cache_dir : pathlib.Path or None
        TensorRT engines and timing caches (``<export_dir>/trt`` when None).
    backend : str
        ``auto`` or the backend to try first.
    fp16 : bool
        Let TensorRT build FP16 engines where ModelOpt converts the ONNX.
    torch_compile : bool
        ``torch.compile`` the torch backends.
    max_batch : int
        Batch limit per inference call; 0 means the model's profile maximum.
    weights_dirs : tuple of pathlib.Path
        Directories searched for retrained weights before the shipped ones.
    observer : RuntimeObserver or None
        Receives backend choices, fallbacks and inference times.
    """

    export_dir: Path
    cache_dir: Path | None = None
    backend: str = "auto"
    fp16: bool = True
    torch_compile: bool = False
    max_batch: int = 0
    weights_dirs: tuple[Path, ...] = ()
    observer: RuntimeObserver | None = field(default=None, compare=False)
