"""The style and architecture gates run with the tests: ruff (with the banned-api list), ruff
format, the real mypy gate, import-linter's layer and per-system contracts (kept in sync with
the tree), and deferred imports only for the optional heavy backends."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: The only imports that may be deferred into functions (`# noqa: PLC0415`), with the reason beside them.
HEAVY = (
    "torch",
    "safetensors.torch",
    "tensorrt",
    "modelopt",
    "onnxruntime",
    "matplotlib",
    "sunpy.visualization",  # imports matplotlib
    "heliowatch.models.architectures",  # torch modules
    "heliowatch.models.runtime.onnxrt",
    "heliowatch.models.runtime.torch_backend",
    "heliowatch.models.jets.network",  # torch modules
    "heliowatch.models.jets.parity",
    "heliowatch.models.jets.train",
    "heliowatch.models.emergence.network",
    "heliowatch.models.emergence.train",
    "aiapy",  # pulls sunpy.map and astropy tables: loaded when an AIA frame is calibrated
    "sunpy.map",
)


@pytest.mark.parametrize(
    "args",
    [
        ["ruff", "check", "."],
        ["ruff", "format", "--check", "."],
        ["mypy"],
        ["lint-imports"],
        ["python", "tools/importlinter_contracts.py", "--check"],
    ],
    ids=["ruff", "ruff-format", "mypy", "lint-imports", "contracts-cover-every-module"],
)
def test_style_gate(args: list[str]) -> None:
    exe = shutil.which(args[0], path=str(Path(sys.executable).parent))
    assert exe, f"{args[0]} is part of the [test] extra and must be installed"
    p = subprocess.run([exe, *args[1:]], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-2000:]


def test_deferred_imports_are_only_heavy_backends_with_a_reason() -> None:
    bad = []
    for top in ("daemon", "pipelines", "models"):
        for path in (ROOT / top).rglob("*.py"):
            for n, line in enumerate(path.read_text().splitlines(), 1):
                if "noqa: PLC0415" not in line:
                    continue
                m = re.match(r"\s*(?:from ([\w.]+) import|import ([\w.]+))", line)
                mod = (m.group(1) or m.group(2)) if m else ""
                heavy = any(mod == h or mod.startswith(h + ".") for h in HEAVY)
                reason = "(" in line.split("noqa: PLC0415", 1)[1]
                if not (heavy and reason):
                    bad.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not bad, "deferred imports must be optional heavy backends with the reason beside them:\n" + "\n".join(bad)


def test_every_subpackage_is_packaged() -> None:
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        "heliowatch." + ".".join(p.parent.relative_to(ROOT).parts)
        for top in ("daemon", "pipelines", "models")
        for p in (ROOT / top).rglob("__init__.py")
    }
    assert found == listed, f"pyproject.toml [tool.setuptools] packages differ from the tree: {sorted(found ^ listed)}"
