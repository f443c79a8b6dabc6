"""The ONNX Runtime backend (the one module that imports :mod:`onnxruntime`)."""

from __future__ import annotations

import numpy as np

from heliowatch.models.runtime.export import ExportRecord

__all__ = ["OrtBackend", "cuda_available"]


def cuda_available() -> bool:
    """Whether this onnxruntime build has the CUDA execution provider."""
    import onnxruntime as ort  # noqa: PLC0415  (onnxruntime: optional heavy backend)

    return "CUDAExecutionProvider" in ort.get_available_providers()


class OrtBackend:
    """Run a verified ONNX export with ONNX Runtime.

    Parameters
    ----------
    record : ExportRecord
        From :func:`heliowatch.models.runtime.export.load_export` (hash already verified).
    cuda : bool
        Use the CUDA execution provider (fails if absent, so the runtime falls back).
    threads : int
        Intra-op threads on CPU (0: ONNX Runtime's default).
    """

    def __init__(self, record: ExportRecord, *, cuda: bool = False, threads: int = 0) -> None:
        import onnxruntime as ort  # noqa: PLC0415  (onnxruntime: optional heavy backend)

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = threads
        if cuda and not cuda_available():
            msg = "onnxruntime has no CUDAExecutionProvider here (install onnxruntime-gpu on the GPU box)"
            raise RuntimeError(msg)
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if cuda else ["CPUExecutionProvider"]
        self.session = ort.InferenceSession(str(record.path), sess_options=opts, providers=providers)
        self.input_name = record.input_name
        self.name = "onnxruntime-cuda" if cuda else "onnxruntime-cpu"

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Run one batch."""
        out = self.session.run(None, {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)})
        return np.asarray(out[0], dtype=np.float32)
