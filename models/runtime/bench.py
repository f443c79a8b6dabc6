"""Inference speed per model and backend at several batch sizes, with ratios against torch eager."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from heliowatch.models.runtime.inputs import random_inputs
from heliowatch.models.runtime.runtime import Runtime

__all__ = ["BenchRow", "bench_model", "format_table"]


@dataclass(frozen=True)
class BenchRow:
    """One (model, backend, batch) measurement."""

    model: str
    backend: str
    batch: int
    latency_ms: float
    throughput: float
    vs_torch: float | None


def bench_model(
    name: str, export_dir: Path, backends: list[str], batches: list[int], *, min_time_s: float = 1.0
) -> list[BenchRow]:
    """Median latency per batch (after a warm-up), for each backend and batch size."""
    raw: dict[tuple[str, int], float] = {}
    names: dict[str, str] = {}
    for b in backends:
        rt = Runtime(name, export_dir=export_dir, backend=b, only=True)
        names[b] = rt.backend.name
        for n in batches:
            x = random_inputs(name, n, seed=n)
            rt.backend.predict(x)  # warm-up (and compilation)
            times: list[float] = []
            t_end = time.perf_counter() + min_time_s
            while len(times) < 3 or time.perf_counter() < t_end:
                t0 = time.perf_counter()
                rt.backend.predict(x)
                times.append(time.perf_counter() - t0)
                if len(times) >= 50:
                    break
            raw[(b, n)] = statistics.median(times)
    rows = []
    for b in backends:
        for n in batches:
            lat = raw[(b, n)]
            # Compare with torch eager on the same kind of device.
            gpu = b in ("tensorrt", "onnxruntime-cuda", "torch-cuda")
            ref = raw.get(("torch-cuda" if gpu else "torch-cpu", n))
            rows.append(BenchRow(name, names[b], n, 1000 * lat, n / lat, (ref / lat) if ref else None))
    return rows


def format_table(rows: list[BenchRow]) -> str:
    """A fixed-width table: latency, throughput and speed-up over torch eager."""
    head = f"{'model':<16}{'backend':<18}{'batch':>6}{'latency ms':>12}{'items/s':>10}{'x torch':>9}"
    lines = [head, "-" * len(head)]
    for r in rows:
        ratio = f"{r.vs_torch:.2f}" if r.vs_torch is not None else "-"
        lines.append(f"{r.model:<16}{r.backend:<18}{r.batch:>6}{r.latency_ms:>12.2f}{r.throughput:>10.1f}{ratio:>9}")
    return "\n".join(lines)
