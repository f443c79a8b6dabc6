"""The daemon's metrics: process metrics, counters at zero from the start, undefined scores."""

from __future__ import annotations

import math
from types import SimpleNamespace

from heliowatch.daemon.metrics import Metrics
from heliowatch.models import skill


def _sample(m: Metrics, name: str, labels: dict[str, str] | None = None) -> float | None:
    return m.registry.get_sample_value(name, labels or {})


def test_process_metrics_are_in_the_daemon_registry() -> None:
    m = Metrics()
    text = m.exposition().decode()
    assert "# TYPE process_resident_memory_bytes gauge" in text
    assert (_sample(m, "process_resident_memory_bytes") or 0) > 1e6
    assert (_sample(m, "process_open_fds") or 0) > 0
    assert _sample(m, "process_cpu_seconds_total") is not None
    assert "python_info{" in text


def test_alert_counters_exist_at_zero_for_every_kind_on_each_channel() -> None:
    m = Metrics()
    assert _sample(m, "heliowatch_alert_delivery_failures_total", {"kind": "jet", "channel": "mail"}) is None
    m.init_alerts(["mail", "webhook"])
    for channel in ("mail", "webhook"):
        for kind in ("flare_region", "jet", "emergence", "data_stale"):
            assert _sample(m, "heliowatch_alert_delivery_failures_total", {"kind": kind, "channel": channel}) == 0.0
            assert _sample(m, "heliowatch_alerts_sent_total", {"kind": kind, "channel": channel}) == 0.0
    m.alert_failed("jet", "webhook")
    assert _sample(m, "heliowatch_alert_delivery_failures_total", {"kind": "jet", "channel": "webhook"}) == 1.0


def _scores(y: list[int], p: list[float]) -> dict[str, object]:
    """What :meth:`heliowatch.pipelines.verification.Ledger.scores` gives for one scope and level."""
    s = skill.score(y, p)  # type: ignore[arg-type]
    return {"n": s.n, "events": s.events, "tss": s.tss, "bss": s.bss, "brier": 0.1, "reliability": []}


def test_verification_scores_are_nan_until_events_and_non_events_were_scored() -> None:
    m = Metrics()
    verifier = SimpleNamespace(
        scores={("full_disk", "M"): _scores([0], [0.3]), ("full_disk", "C"): _scores([1, 0, 1, 0], [0.8, 0.2, 0.6, 0.7])},
        pending=2,
    )
    m.watch_verification(verifier)

    def score(level: str, name: str) -> float | None:
        return _sample(m, "heliowatch_flare_verification", {"scope": "full_disk", "level": level, "score": name})

    # One forecast scored, no event: TSS and BSS are undefined (skill.py says 0.0), not "no skill".
    assert math.isnan(score("M", "tss") or 0.0) and math.isnan(score("M", "bss") or 0.0)
    assert score("M", "n") == 1.0 and score("M", "events") == 0.0
    # Events and non-events: the real scores (TSS = 1 - 1/2 at 0.5, BSS against the climatology).
    assert score("C", "tss") == 0.5
    assert math.isfinite(score("C", "bss") or math.nan)
    text = m.exposition().decode()
    assert 'heliowatch_flare_verification{level="M",scope="full_disk",score="tss"} NaN' in text
