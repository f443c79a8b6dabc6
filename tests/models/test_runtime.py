"""The inference runtime: registry, ONNX export, backends, parity, fallback, batching, engine cache."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from heliowatch.daemon.metrics import Metrics
from heliowatch.models import registry
from heliowatch.models.core.errors import ModelError
from heliowatch.models.flares.cnn import pad_to_canvas
from heliowatch.models.runtime.check import TOLERANCE, check_model
from heliowatch.models.runtime.export import export_model, load_export, onnx_path
from heliowatch.models.runtime.inputs import random_inputs
from heliowatch.models.runtime.runtime import Runtime
from heliowatch.models.runtime.tensorrt import EngineCache, EngineKey
from heliowatch.pipelines.model_inputs import real_inputs

NAMES = list(registry.MODELS)


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("onnx")
    for n in NAMES:
        export_model(n, d)
    return d


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "heliowatch.daemon.cli", *args], capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("name", NAMES)
def test_card_is_complete_and_honest(name: str) -> None:
    card = registry.load_card(name)
    for key in (
        "name",
        "version",
        "architecture",
        "reference",
        "input",
        "training",
        "skill",
        "known_limits",
        "weights",
        "operational",
    ):
        assert key in card, key
    assert card["input"]["units"] and card["input"]["plate_scale"]
    assert card["weights"]["format"] == "safetensors"
    assert (registry.weights_dir() / card["weights"]["file"]).read_bytes()[:8] != b"\x80\x04\x95"  # not a pickle
    # The seed architectures ship untrained or trained on synthetic data only: the card must say
    # which, and neither may drive operational products.
    assert card["training"]["kind"] == "none" or card["training"]["synthetic"] is True
    assert card["operational"] is False


def test_weights_are_verified_against_the_card(tmp_path: Path) -> None:
    shutil.copytree(registry.weights_dir(), tmp_path, dirs_exist_ok=True)
    w = tmp_path / "flare-cnn1.safetensors"
    b = bytearray(w.read_bytes())
    b[-10] ^= 0xFF
    w.write_bytes(bytes(b))
    with pytest.raises(ModelError, match="do not match the card"):
        registry.load_torch("flare-cnn1", root=tmp_path)
    with pytest.raises(ModelError, match="unknown model"):
        registry.get("nope")


@pytest.mark.parametrize("name", NAMES)
def test_export_has_dynamic_axes_and_a_recorded_hash(export_dir: Path, name: str) -> None:
    rec = load_export(name, export_dir)
    dims = rec.card["onnx"]["inputs"][0][1]
    assert dims[0] == "batch"
    if name == "jet-convlstm":
        assert dims[1] == "time"
    assert len(rec.sha256) == 64 and rec.card["weights"]["sha256"] == registry.load_card(name)["weights"]["sha256"]


@pytest.mark.parametrize("name", NAMES)
def test_onnxruntime_cpu_matches_float64_torch(export_dir: Path, name: str) -> None:
    results = check_model(name, export_dir, ["onnxruntime-cpu", "torch-cpu"], real=real_inputs(name))
    assert {r.inputs.split()[0] for r in results} >= {"random"}
    assert len(results) == 4
    for r in results:
        assert r.max_rel <= TOLERANCE[r.backend], r


def test_sequence_model_accepts_other_batch_and_time(export_dir: Path) -> None:
    ort_rt = Runtime("jet-convlstm", export_dir=export_dir, backend="onnxruntime-cpu", only=True)
    torch_rt = Runtime("jet-convlstm", export_dir=export_dir, backend="torch-cpu", only=True)
    for shape in ((3, 7, 1, 166, 166), (1, 45, 1, 166, 166)):
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        np.testing.assert_allclose(ort_rt.predict(x), torch_rt.predict(x), rtol=1e-4, atol=1e-6)


def test_corrupt_onnx_is_detected_and_rebuilt(export_dir: Path, tmp_path: Path) -> None:
    d = tmp_path / "exp"
    shutil.copytree(export_dir, d)
    p = onnx_path(d, "flare-cnn1")
    b = bytearray(p.read_bytes())
    b[len(b) // 2] ^= 0x55
    p.write_bytes(bytes(b))
    with pytest.raises(ModelError, match="does not match its export card"):
        load_export("flare-cnn1", d)
    rt = Runtime("flare-cnn1", export_dir=d, backend="onnxruntime-cpu", only=True)  # re-exports
    assert rt.backend.name == "onnxruntime-cpu"
    load_export("flare-cnn1", d)  # verified again
    x = random_inputs("flare-cnn1", 2)
    ref = Runtime("flare-cnn1", export_dir=d, backend="torch-cpu", only=True).predict(x)
    np.testing.assert_allclose(rt.predict(x), ref, rtol=1e-4)


def test_missing_backend_falls_back_with_a_metric(export_dir: Path) -> None:
    m = Metrics()
    rt = Runtime("emergence-fcn", export_dir=export_dir, backend="tensorrt", observer=m)
    from heliowatch.models.runtime import tensorrt as trt_mod

    if trt_mod.available():
        pytest.skip("TensorRT is present here: no fallback happens")
    assert rt.backend.name == "onnxruntime-cpu"
    assert (
        m.registry.get_sample_value("heliowatch_model_backend_fallbacks_total", {"model": "emergence-fcn", "backend": "tensorrt"})
        == 1
    )
    assert (
        m.registry.get_sample_value("heliowatch_model_backend_info", {"model": "emergence-fcn", "backend": "onnxruntime-cpu"})
        == 1
    )
    assert rt.info == {
        "name": "emergence-fcn",
        "version": "0.2.0",
        "backend": "onnxruntime-cpu",
        "synthetic": True,  # the shipped weights are trained on synthetic patches, and say so
        "trained": True,
        "operational": False,
    }


def test_onnx_backend_failure_falls_back_to_torch(tmp_path: Path) -> None:
    # An export directory that cannot be written: ONNX backends fail, torch serves the model.
    ro = tmp_path / "file-not-dir"
    ro.write_text("x")
    rt = Runtime("flare-cnn1", export_dir=ro, backend="auto")
    assert rt.backend.name == "torch-cpu"


def test_batching_preserves_order_and_reports_progress(export_dir: Path) -> None:
    m = Metrics()
    rt = Runtime("flare-cnn2", export_dir=export_dir, backend="onnxruntime-cpu", max_batch=4, observer=m)
    x = random_inputs("flare-cnn2", 10, seed=3)
    progress: list[tuple[int, int]] = []
    y = rt.predict(x, on_batch=lambda done, total: progress.append((done, total)))
    one_by_one = np.concatenate([rt.backend.predict(x[i : i + 1]) for i in range(10)])
    np.testing.assert_allclose(y, one_by_one, rtol=1e-5)
    assert progress == [(4, 10), (8, 10), (10, 10)]
    assert m.registry.get_sample_value("heliowatch_inference_seconds_count", {"model": "flare-cnn2"}) == 3
    with pytest.raises(ModelError, match="expected 4-D input"):
        rt.predict(np.zeros((2, 256, 512), np.float32))


def test_unknown_backend_is_refused(export_dir: Path) -> None:
    with pytest.raises(ModelError, match="unknown backend"):
        Runtime("flare-cnn1", export_dir=export_dir, backend="tpu")


def test_pad_to_canvas_never_resizes() -> None:
    patch = np.arange(12, dtype=np.float32).reshape(3, 4)
    out = pad_to_canvas(patch, (5, 8))
    assert out.shape == (5, 8) and out.sum() == patch.sum()
    np.testing.assert_array_equal(out[1:4, 2:6], patch)


def _key(**kw: object) -> EngineKey:
    base = {
        "model": "m",
        "onnx_sha256": "a" * 64,
        "trt_version": "10.13.0",
        "compute_capability": "90",
        "profile": (("x", (1, 1), (8, 1), (32, 1)),),
        "precision": "fp16",
    }
    return EngineKey(**{**base, **kw})  # type: ignore[arg-type]


def test_engine_cache_keys_rebuilds_and_corruption(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path)
    k = _key()
    assert cache.load(k) is None
    cache.store(k, b"serialized-engine")
    assert cache.load(k) == b"serialized-engine"
    # Any change of ONNX, TensorRT version, GPU, profile or precision misses the cache.
    for change in ({"onnx_sha256": "b" * 64}, {"trt_version": "11.4.0"}, {"compute_capability": "89"}, {"precision": "fp32"}):
        assert cache.load(_key(**change)) is None
    plan = next(tmp_path.glob("*.plan"))
    plan.write_bytes(b"serialized-enginX")
    assert cache.load(k) is None  # corrupted on disk: discarded, to be rebuilt
    assert not list(tmp_path.glob("*.plan"))
    assert "trt10.13.0-sm90" in cache.timing_cache_path("10.13.0", "90").name


@pytest.mark.tensorrt
def test_tensorrt_parity_on_the_gpu(export_dir: Path) -> None:
    pytest.importorskip("tensorrt", reason="TensorRT is not installable from PyPI; runs on the GPU box")
    from heliowatch.models.runtime import tensorrt as trt_mod

    if not trt_mod.available():
        pytest.skip("no CUDA device")
    for name in NAMES:
        for r in check_model(name, export_dir, ["tensorrt"], real=real_inputs(name)):
            assert r.ok, r


def test_cli_list_export_check_bench(tmp_path: Path) -> None:
    d = tmp_path / "exp"
    p = cli("models", "export", "--model", "emergence-fcn", "--export-dir", str(d))
    assert p.returncode == 0, p.stderr
    assert "checked by onnx.checker" in p.stdout
    p = cli("models", "list", "--json", "--export-dir", str(d))
    cards = {c["name"]: c for c in json.loads(p.stdout)["models"]}
    # The networks, and the feature models forecasts cite (no ONNX export of their own).
    features = {"flare-sharp-logistic", "flare-sharp-gbm", "flare-region-climatology", "flare-full-disk"}
    features |= {f"flare-region-{k}-{lvl}" for k in ("keywords", "reduced") for lvl in ("m", "c")}
    assert set(cards) == {*NAMES, *features}
    assert cards["emergence-fcn"]["onnx_export"]["verified"] is True
    assert cards["flare-cnn1"]["onnx_export"]["verified"] is False
    p = cli(
        "models",
        "check",
        "--model",
        "emergence-fcn",
        "--export-dir",
        str(d),
        "--backend",
        "onnxruntime-cpu",
        "--backend",
        "torch",
    )
    assert p.returncode == 0, p.stderr
    rows = [line for line in p.stdout.splitlines() if line.startswith("emergence-fcn")]
    assert len(rows) == 4 and all(line.endswith("ok") for line in rows)
    p = cli("models", "bench", "--model", "emergence-fcn", "--export-dir", str(d), "--batch", "2", "--min-time", "0.05")
    assert p.returncode == 0, p.stderr
    assert "x torch" in p.stdout and "onnxruntime-cpu" in p.stdout
    p = cli("models", "check", "--model", "nope")
    assert p.returncode == 2 and p.stderr.startswith("heliowatch: error: unknown model")
    p = cli("models", "check", "--backend", "tensorrt", "--model", "emergence-fcn", "--export-dir", str(d))
    from heliowatch.models.runtime import tensorrt as trt_mod

    if not trt_mod.available():
        assert p.returncode == 2 and "not available here" in p.stderr
