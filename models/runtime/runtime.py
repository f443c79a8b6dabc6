"""Backend selection, fallback and batching: what the pipelines call.

``Runtime(name).predict(batch)`` runs a registered model on the fastest backend present:
TensorRT > ONNX Runtime CUDA > ONNX Runtime CPU > torch. A configured preference moves
one backend to the front; a backend that fails to load is logged, counted
(``heliowatch_model_backend_fallbacks_total``) and skipped, never fatal. A missing or corrupt
ONNX export (hash mismatch) is re-exported from the verified weights before the ONNX
backends load it. Large inputs are split into batches no larger than the model's profile
allows and the results are returned in order.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from heliowatch.models import registry
from heliowatch.models.core.errors import ModelError
from heliowatch.models.runtime import tensorrt as trt_mod
from heliowatch.models.runtime.base import Backend, RuntimeObserver, RuntimeOptions
from heliowatch.models.runtime.export import ExportRecord, export_model, export_needed, load_export

__all__ = ["BACKENDS", "Runtime", "available_backends", "open_runtime"]

log = structlog.get_logger(__name__)

#: In order of preference.
BACKENDS = ("tensorrt", "onnxruntime-cuda", "onnxruntime-cpu", "torch-cuda", "torch-cpu")
#: Config spellings accepted for `models.backend`.
ALIASES = {"onnxruntime": "onnxruntime-cpu", "torch": "torch-cpu", "auto": "auto"}


def available_backends() -> list[str]:
    """Backends whose libraries (and device) are present here."""
    out = []
    if trt_mod.available():
        out.append("tensorrt")
    try:
        # onnxruntime is an optional heavy backend: imported only when asked about.
        from heliowatch.models.runtime.onnxrt import cuda_available  # noqa: PLC0415  (imports onnxruntime: optional heavy backend)

        if cuda_available():
            out.append("onnxruntime-cuda")
        out.append("onnxruntime-cpu")
    except ImportError:
        pass
    import torch  # noqa: PLC0415  (optional heavy backend)

    if torch.cuda.is_available():
        out.append("torch-cuda")
    out.append("torch-cpu")
    return out


class Runtime:
    """One model, served by the best backend that loads.

    Parameters
    ----------
    name : str
        Registered model name.
    export_dir : pathlib.Path
        Where ONNX exports live (``<state_dir>/models`` in the daemon).
    cache_dir : pathlib.Path
        Where TensorRT engines and timing caches live.
    backend : str
        ``auto`` or a backend name to try first.
    observer : RuntimeObserver or None
        Told which backend serves the model, which failed, and how long inference takes.
    max_batch : int or None
        Batch limit; default: the top of the model's batch profile.
    torch_compile : bool
        ``torch.compile`` the torch backends.
    fp16 : bool
        Let TensorRT build an FP16 engine where ModelOpt can convert the ONNX.
    only : bool
        Use exactly ``backend`` (no fallback): for parity checks and benchmarks.
    weights_root : pathlib.Path or None
        Where the model's weights and card live (default: the shipped weights).
    """

    def __init__(
        self,
        name: str,
        *,
        export_dir: Path,
        cache_dir: Path | None = None,
        backend: str = "auto",
        observer: RuntimeObserver | None = None,
        max_batch: int | None = None,
        torch_compile: bool = False,
        fp16: bool = True,
        only: bool = False,
        weights_root: Path | None = None,
    ) -> None:
        self.spec = registry.get(name)
        self.weights_root = weights_root or registry.weights_dir()
        self.card = registry.load_card(name, root=self.weights_root)
        self.export_dir = Path(export_dir)
        self.cache_dir = Path(cache_dir) if cache_dir else self.export_dir / "trt"
        self.observer = observer
        self.torch_compile = torch_compile
        self.fp16 = fp16
        self.max_batch = max_batch or self.spec.dynamic.get(0, ("batch", 1, 1, 1))[3]
        wanted = ALIASES.get(backend, backend)
        if wanted != "auto" and wanted not in BACKENDS:
            msg = f"unknown backend {backend!r}; choose auto or one of {', '.join(BACKENDS)}"
            raise ModelError(msg)
        # Backends whose libraries or device are absent here (TensorRT, CUDA on a CPU box) are not
        # tried in auto mode: that is the machine, not a fault, and says nothing in the log.
        present = available_backends()
        order = present if wanted == "auto" else [wanted] + ([b for b in present if b != wanted] if not only else [])
        self._torch_module: Any = None
        self.backend: Backend = self._select(order)
        if observer is not None:
            observer.backend_selected(name, self.backend.name)
        log.info("model_backend", model=name, version=self.spec.version, backend=self.backend.name)

    # -- selection --------------------------------------------------------------------------
    def _export(self) -> ExportRecord:
        reason = export_needed(self.spec.name, self.export_dir, weights_root=self.weights_root)
        if reason is None:
            return load_export(self.spec.name, self.export_dir, weights_root=self.weights_root)
        # Exported here and now: the log says so rather than asking for `heliowatch models export`.
        log.info("exporting_model", model=self.spec.name, reason=reason[:300])
        return export_model(self.spec.name, self.export_dir, weights_root=self.weights_root)

    def _module(self) -> Any:
        if self._torch_module is None:
            self._torch_module = registry.load_torch(self.spec.name, root=self.weights_root)
        return self._torch_module

    def _make(self, kind: str) -> Backend:
        if kind == "tensorrt":
            return trt_mod.TensorRTBackend(self._export(), self.spec, self.cache_dir, fp16=self.fp16)
        if kind.startswith("onnxruntime"):
            # onnxruntime is an optional heavy backend: imported only when chosen.
            from heliowatch.models.runtime.onnxrt import OrtBackend  # noqa: PLC0415  (imports onnxruntime: optional heavy backend)

            return OrtBackend(self._export(), cuda=kind.endswith("cuda"))
        # torch is an optional heavy backend: imported only when chosen.
        from heliowatch.models.runtime.torch_backend import TorchBackend  # noqa: PLC0415  (imports torch: optional heavy backend)

        if kind == "torch-cuda":
            import torch  # noqa: PLC0415  (optional heavy backend)

            if not torch.cuda.is_available():
                msg = "no CUDA device for torch"
                raise RuntimeError(msg)
        return TorchBackend(self._module(), device="cuda" if kind == "torch-cuda" else "cpu", compile=self.torch_compile)

    def _select(self, order: list[str]) -> Backend:
        errors = []
        for kind in order:
            try:
                return self._make(kind)
            except (ImportError, RuntimeError, OSError, ModelError, ValueError) as e:
                errors.append(f"{kind}: {type(e).__name__}: {str(e)[:160]}")
                if self.observer is not None:
                    self.observer.backend_failed(self.spec.name, kind)
                log.warning("model_backend_unavailable", model=self.spec.name, backend=kind, error=str(e)[:300])
        msg = f"model {self.spec.name}: no backend could be loaded ({'; '.join(errors)})"
        raise ModelError(msg)

    # -- inference --------------------------------------------------------------------------
    @property
    def info(self) -> dict[str, Any]:
        """What every product made with this model carries."""
        training = self.card.get("training", {})
        return {
            "name": self.spec.name,
            "version": self.spec.version,
            "backend": self.backend.name,
            "synthetic": bool(training.get("synthetic")),
            "trained": training.get("kind", "none") != "none",
            "operational": bool(self.card.get("operational")),
        }

    def predict(self, x: np.ndarray, *, on_batch: Callable[[int, int], None] | None = None) -> np.ndarray:
        """Run the model on any number of inputs, in batches of at most ``max_batch``.

        Parameters
        ----------
        x : ndarray
            Inputs stacked on axis 0, float32, in the units of the model card.
        on_batch : callable, optional
            ``on_batch(done, total)`` after each batch (progress bars).

        Returns
        -------
        ndarray
            Outputs in the same order as the inputs.
        """
        if x.ndim != len(self.spec.example_shape):
            want = len(self.spec.example_shape)
            msg = f"model {self.spec.name}: expected {want}-D input like {self.spec.example_shape}, got {x.shape}"
            raise ModelError(msg)
        n = x.shape[0]
        outs = []
        for start in range(0, n, self.max_batch):
            chunk = x[start : start + self.max_batch]
            t0 = time.perf_counter()
            outs.append(self.backend.predict(chunk))
            if self.observer is not None:
                self.observer.inference(self.spec.name, time.perf_counter() - t0)
            if on_batch is not None:
                on_batch(min(start + self.max_batch, n), n)
        return np.concatenate(outs, axis=0) if outs else np.zeros((0,), np.float32)


def open_runtime(name: str, options: RuntimeOptions, *, only: bool = False) -> Runtime:
    """A :class:`Runtime` of ``name`` served as ``options`` say (retrained weights first)."""
    return Runtime(
        name,
        export_dir=options.export_dir,
        cache_dir=options.cache_dir,
        backend=options.backend,
        observer=options.observer,
        max_batch=options.max_batch or None,
        torch_compile=options.torch_compile,
        fp16=options.fp16,
        only=only,
        weights_root=registry.resolve_root(name, options.weights_dirs),
    )
