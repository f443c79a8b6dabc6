"""Strict JSON (RFC 8259): no NaN or Infinity anywhere, numpy scalars as plain numbers.

``json.dumps`` writes ``NaN``/``Infinity`` by default, which ``JSON.parse`` and jq reject; a value
that is not a finite number (a delta separation when there is no opposite umbra, a missing
keyword) is written as ``null`` instead.

Every JSON document the command line prints (and the backfill report) is written with
:func:`dumps` and carries ``"schema_version": SCHEMA_VERSION`` at its top level; its JSON Schema
is published in ``docs/schemas/`` (listed in docs/commands.md, checked against real output by
tests/daemon/test_json_outputs.py). ``heliowatch train``'s summary of a training run is the one
exception: strict JSON too, but free-form (the model card it writes is the record).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["SCHEMA_VERSION", "dumps", "strict"]

#: Version of the JSON outputs' schemas (docs/schemas/); bumped when a field changes meaning.
SCHEMA_VERSION = 1


def strict(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by None, numpy values and paths made plain."""
    if isinstance(obj, float | np.floating):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, dict):
        return {str(k): strict(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [strict(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [strict(v) for v in obj.tolist()]
    if isinstance(obj, Path):
        return str(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return strict(dataclasses.asdict(obj))
    return obj


def dumps(obj: Any, **kwargs: Any) -> str:
    """``json.dumps`` of :func:`strict` (``allow_nan=False``: a stray NaN is a bug, not output)."""
    kwargs.setdefault("default", str)
    return json.dumps(strict(obj), allow_nan=False, **kwargs)
