"""Bounded Hypothesis fuzzing of the config loader: a Config or a one-line ConfigError, nothing else.

Random TOML documents over the real sections and keys, raw bytes and mangled default configs,
deep nesting, and ``HELIOWATCH_*`` overrides. The long run is ``bench/fuzz_bench.py``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings

from heliowatch.daemon.config import Config, load_config
from heliowatch.daemon.errors import ConfigError
from tests.fuzz_strategies import config_documents, config_texts, dump_toml, env_overrides

CASE_BUDGET_S = 5.0
FUZZ = settings(deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])


def _check(content: bytes, environ: dict[str, str] | None = None) -> None:
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "config.toml"
        f.write_bytes(content)
        t0 = time.perf_counter()
        error: ConfigError | None = None
        try:
            cfg = load_config(f, environ=environ or {})
        except ConfigError as e:
            error = e
        assert time.perf_counter() - t0 < CASE_BUDGET_S
        if error is None:
            assert isinstance(cfg, Config)
        else:
            assert "\n" not in str(error) and len(str(error)) < 600


@settings(FUZZ, max_examples=1000)
@given(doc=config_documents())
def test_random_documents_give_a_config_or_a_config_error(doc: dict[str, Any]) -> None:
    _check(dump_toml(doc).encode("utf-8", "surrogatepass"))


@settings(FUZZ, max_examples=800)
@given(raw=config_texts())
def test_random_files_give_a_config_or_a_config_error(raw: bytes) -> None:
    _check(raw)


@settings(FUZZ, max_examples=500)
@given(environ=env_overrides())
def test_random_environment_overrides_give_a_config_or_a_config_error(environ: dict[str, str]) -> None:
    _check(b"", environ)
