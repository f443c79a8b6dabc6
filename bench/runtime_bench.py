"""Inference runtime benchmark: latency and throughput per model, backend and batch size,
with the speed-up over torch eager measured in the same run.

Usage::

    python bench/runtime_bench.py [--model flare-cnn1] [--backend onnxruntime-cpu] [--batch 8]

Exports the models first (into a temporary directory unless --export-dir is given). Same
figures as ``heliowatch models bench``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    from heliowatch.daemon.logs import configure_logging
    from heliowatch.models import registry
    from heliowatch.models.runtime.bench import bench_model, format_table
    from heliowatch.models.runtime.export import export_model
    from heliowatch.models.runtime.runtime import available_backends

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append")
    ap.add_argument("--backend", action="append")
    ap.add_argument("--batch", type=int, action="append")
    ap.add_argument("--export-dir", type=Path)
    ap.add_argument("--min-time", type=float, default=1.0)
    a = ap.parse_args()
    configure_logging("warning", "console", stream=sys.stderr)
    names = a.model or list(registry.MODELS)
    backends = a.backend or available_backends()
    with tempfile.TemporaryDirectory() as tmp:
        export_dir = a.export_dir or Path(tmp)
        rows = []
        for n in names:
            export_model(n, export_dir)
            batches = a.batch or ([1, 2, 4] if n.startswith("jet") else [1, 8, 32])
            rows += bench_model(n, export_dir, backends, batches, min_time_s=a.min_time)
    print(f"backends: {', '.join(backends)}")
    print(format_table(rows))


if __name__ == "__main__":
    main()
