"""The TensorRT backend (the one module that imports :mod:`tensorrt`).

TensorRT cannot be installed from PyPI alone (stack-notes A3.1), so the import is lazy and
everything here is optional: where TensorRT or CUDA is missing the runtime falls back to
ONNX Runtime or torch. Engines are built on the box from the verified ONNX export:

- strongly typed networks (``NetworkDefinitionCreationFlag.STRONGLY_TYPED``) and no
  precision builder flags, which works on TensorRT 10 and is the only mode of 11;
- FP16 through a converted ONNX (``modelopt.onnx.autocast``, inputs/outputs kept FP32)
  where ModelOpt is installed, FP32 otherwise;
- one optimisation profile spanning the dynamic ranges of the model spec (batch, time);
- engine and timing cache stored under the cache directory, keyed by the ONNX SHA-256,
  the TensorRT version, the GPU's compute capability, the profile and the precision. An
  engine whose key differs is rebuilt; one whose bytes do not match their recorded SHA-256
  (corrupted on disk) is discarded and rebuilt.

The :class:`EngineCache` is plain Python, so CI tests the caching rules without a GPU.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import structlog

from heliowatch.models.core.times import SystemClock, iso_utc
from heliowatch.models.registry import ModelSpec
from heliowatch.models.runtime.export import ExportRecord

__all__ = ["EngineCache", "EngineKey", "TensorRTBackend", "available"]

log = structlog.get_logger(__name__)


def available() -> bool:
    """TensorRT importable and a CUDA device present."""
    try:
        import tensorrt  # noqa: F401, PLC0415
        import torch  # noqa: PLC0415  (torch: optional heavy backend)
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


@dataclass(frozen=True)
class EngineKey:
    """Everything an engine depends on; a change in any field means a rebuild."""

    model: str
    onnx_sha256: str
    trt_version: str
    compute_capability: str
    profile: tuple[tuple[str, tuple[int, ...], tuple[int, ...], tuple[int, ...]], ...]
    precision: str

    def digest(self) -> str:
        """Short stable hash of the key (file names)."""
        blob = json.dumps(self.__dict__, sort_keys=True, default=list).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


class EngineCache:
    """Serialized engines + metadata + timing caches in one directory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _paths(self, key: EngineKey) -> tuple[Path, Path]:
        stem = f"{key.model}-{key.digest()}"
        return self.root / f"{stem}.plan", self.root / f"{stem}.json"

    def load(self, key: EngineKey) -> bytes | None:
        """The cached plan for ``key``, or None (missing, other key, or corrupted: then removed)."""
        plan, meta = self._paths(key)
        if not plan.exists() or not meta.exists():
            return None
        info = json.loads(meta.read_text())
        if info.get("key") != json.loads(json.dumps(key.__dict__, default=list)):
            log.warning("trt_engine_key_mismatch", model=key.model, file=plan.name)
            return None
        data = plan.read_bytes()
        if hashlib.sha256(data).hexdigest() != info.get("plan_sha256"):
            log.warning("trt_engine_corrupt", model=key.model, file=plan.name, action="rebuild")
            plan.unlink(missing_ok=True)
            meta.unlink(missing_ok=True)
            return None
        return data

    def store(self, key: EngineKey, plan_bytes: bytes) -> Path:
        """Write a plan and its metadata atomically."""
        plan, meta = self._paths(key)
        tmp = plan.with_name(plan.name + ".part")
        tmp.write_bytes(plan_bytes)
        tmp.replace(plan)
        meta.write_text(
            json.dumps(
                {
                    "key": key.__dict__,
                    "plan_sha256": hashlib.sha256(plan_bytes).hexdigest(),
                    "built_utc": iso_utc(SystemClock().now()),
                },
                default=list,
                indent=2,
            )
        )
        return plan

    def timing_cache_path(self, trt_version: str, compute_capability: str) -> Path:
        """Timing caches are specific to the device and the TensorRT version."""
        return self.root / f"timing-trt{trt_version}-sm{compute_capability}.cache"


def profile_shapes(spec: ModelSpec) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """(min, opt, max) input shapes of the spec's optimisation profile."""
    mins, opts, maxs = list(spec.example_shape), list(spec.example_shape), list(spec.example_shape)
    for axis, (_, lo, opt, hi) in spec.dynamic.items():
        mins[axis], opts[axis], maxs[axis] = lo, opt, hi
    return tuple(mins), tuple(opts), tuple(maxs)


def _fp16_onnx(record: ExportRecord) -> Path | None:
    """An FP16 copy of the ONNX (I/O kept FP32) through ModelOpt AutoCast, if installed."""
    try:
        from modelopt.onnx.autocast import convert_to_mixed_precision  # noqa: PLC0415  (ModelOpt: optional, GPU box only)
    except ImportError:
        return None
    out = record.path.with_name(record.path.stem + ".fp16.onnx")
    if not out.exists():
        model = convert_to_mixed_precision(onnx_path=str(record.path), low_precision_type="fp16", keep_io_types=True)
        onnx.save(model, str(out))
    return out


class TensorRTBackend:
    """Run a model through a TensorRT engine (built or loaded from the cache)."""

    name = "tensorrt"

    def __init__(
        self, record: ExportRecord, spec: ModelSpec, cache_dir: Path, *, fp16: bool = True, workspace_gb: float = 4.0
    ) -> None:
        import tensorrt as trt  # noqa: PLC0415  (TensorRT: optional backend, absent without a GPU)
        import torch  # noqa: PLC0415  (torch: optional heavy backend)

        if not torch.cuda.is_available():
            msg = "TensorRT needs a CUDA device; none is visible"
            raise RuntimeError(msg)
        self.trt, self.torch = trt, torch
        major, minor = torch.cuda.get_device_capability()
        cc = f"{major}{minor}"
        onnx_file = (_fp16_onnx(record) if fp16 else None) or record.path
        precision = "fp16" if onnx_file != record.path else "fp32"
        mins, opts, maxs = profile_shapes(spec)
        key = EngineKey(spec.name, record.sha256, trt.__version__, cc, ((record.input_name, mins, opts, maxs),), precision)
        cache = EngineCache(cache_dir)
        self.logger = trt.Logger(trt.Logger.WARNING)
        plan = cache.load(key)
        if plan is None:
            log.info("trt_engine_build", model=spec.name, precision=precision, compute_capability=cc, trt=trt.__version__)
            plan = self._build(
                onnx_file, record.input_name, (mins, opts, maxs), cache.timing_cache_path(trt.__version__, cc), workspace_gb
            )
            cache.store(key, plan)
        runtime = trt.Runtime(self.logger)
        self.engine = runtime.deserialize_cuda_engine(plan)
        if self.engine is None:
            msg = f"TensorRT could not deserialize the engine of {spec.name}"
            raise RuntimeError(msg)
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self.precision = precision

    def _build(
        self, onnx_file: Path, input_name: str, shapes: tuple[tuple[int, ...], ...], timing_path: Path, workspace_gb: float
    ) -> bytes:
        trt = self.trt
        builder = trt.Builder(self.logger)
        network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
        parser = trt.OnnxParser(network, self.logger)
        if not parser.parse_from_file(str(onnx_file)):
            errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
            msg = f"TensorRT could not parse {onnx_file.name}: {errors[:3]}"
            raise RuntimeError(msg)
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
        profile = builder.create_optimization_profile()
        profile.set_shape(input_name, min=shapes[0], opt=shapes[1], max=shapes[2])
        config.add_optimization_profile(profile)
        cache = config.create_timing_cache(timing_path.read_bytes() if timing_path.exists() else b"")
        config.set_timing_cache(cache, ignore_mismatch=False)
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            msg = f"TensorRT failed to build an engine from {onnx_file.name}"
            raise RuntimeError(msg)
        timing_path.write_bytes(bytes(config.get_timing_cache().serialize()))
        return bytes(plan)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Run one batch on the GPU (inputs and outputs FP32, contiguous)."""
        torch = self.torch
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).cuda()
        self.context.set_input_shape(self.inputs[0], tuple(x.shape))
        self.context.set_tensor_address(self.inputs[0], x.data_ptr())
        outs = []
        for name in self.outputs:
            y = torch.empty(tuple(self.context.get_tensor_shape(name)), dtype=torch.float32, device="cuda")
            self.context.set_tensor_address(name, y.data_ptr())
            outs.append(y)
        stream = torch.cuda.current_stream()
        if not self.context.execute_async_v3(stream.cuda_stream):
            msg = "TensorRT execution failed"
            raise RuntimeError(msg)
        stream.synchronize()
        return outs[0].cpu().numpy()
