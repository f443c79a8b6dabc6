"""The style gates of pyproject.toml (ruff, mypy --disallow-untyped-defs) run with the tests."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("args", [["ruff", "check", "."], ["ruff", "format", "--check", "."], ["mypy"]])
def test_style_gate(args: list[str]) -> None:
    exe = shutil.which(args[0], path=str(Path(sys.executable).parent))
    assert exe, f"{args[0]} is part of the [test] extra and must be installed"
    p = subprocess.run([exe, *args[1:]], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-2000:]
