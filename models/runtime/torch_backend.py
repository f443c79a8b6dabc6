"""The torch backend: eager (optionally ``torch.compile``), on CUDA where present, else CPU."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["TorchBackend"]


class TorchBackend:
    """Run a torch module directly.

    Parameters
    ----------
    module : torch.nn.Module
        In eval mode.
    device : str
        ``"cpu"`` or ``"cuda"``.
    compile : bool
        Wrap the module in ``torch.compile`` (first call compiles).
    """

    def __init__(self, module: Any, *, device: str = "cpu", compile: bool = False) -> None:
        import torch  # noqa: PLC0415  (torch: optional heavy backend)

        self.torch = torch
        self.device = device
        self.module = module.to(device).eval()
        self.fn = torch.compile(self.module) if compile else self.module
        self.name = f"torch-{device}"

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Inference without autograd; returns float32 numpy."""
        with self.torch.inference_mode():
            x = self.torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
            return self.fn(x).float().cpu().numpy()
