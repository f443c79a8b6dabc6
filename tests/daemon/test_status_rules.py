"""The status badge's rules, one at a time (the page itself is tested in tests/e2e/test_status_page.py)."""

from __future__ import annotations

from heliowatch.daemon.config import StatusConfig
from heliowatch.daemon.status_rules import (
    JsocWindow,
    Reason,
    alert_reason,
    epoch_notice,
    jsoc_reason,
    product_reasons,
    series_reason,
    stale_after_s,
    synthetic_notes,
    utc_second,
    worst,
)
from heliowatch.pipelines.standin.archive import ReplayClock


def test_the_worst_reason_sets_the_badge() -> None:
    def r(state: str) -> Reason:
        return Reason(state, "x", "s", "m")

    assert worst([]) == "healthy"
    assert worst([r("degraded"), r("stale")]) == "stale"
    assert worst([r("stale"), r("down"), r("degraded")]) == "down"


def test_every_stored_time_format_becomes_one() -> None:
    assert utc_second("2011-02-15T02:00:00.000Z") == "2011-02-15T02:00:00Z"
    assert utc_second("2011-02-15T02:00:00") == "2011-02-15T02:00:00Z"
    assert utc_second("2011.02.15_02:00:34_TAI") == "2011-02-15T02:00:00Z"  # 34 s of TAI-UTC in 2011
    assert utc_second("2011-02-15T02:00:00+01:00") == "2011-02-15T01:00:00Z"
    assert utc_second("") is None and utc_second(None) is None and utc_second("MISSING") is None


def test_series_are_stale_past_their_kind_limit() -> None:
    cfg = StatusConfig(stale_magnetogram_minutes=120.0, stale_aia_minutes=0.0)
    assert stale_after_s("magnetogram", cfg) == 7200.0
    assert stale_after_s("aia", cfg) is None  # 0 turns the check off
    assert series_reason("hmi.M_720s_nrt", 7100.0, 7200.0) is None
    r = series_reason("hmi.M_720s_nrt", 3 * 86400.0, 7200.0)
    assert r is not None and r.state == "stale" and "3.0 days old (limit 120 min)" in r.message
    none_yet = series_reason("hmi.M_720s_nrt", None, 7200.0)
    assert none_yet is not None and none_yet.code == "no_data"
    assert series_reason("aia", None, None) is None


def test_jsoc_errors_count_only_inside_the_window() -> None:
    w = JsocWindow(900.0, start=0.0)
    assert w.update({"ok": 2.0, "timeout": 5.0}, now=10.0) == {"ok": 2, "timeout": 5}
    assert w.update({"ok": 3.0, "timeout": 5.0}, now=500.0) == {"ok": 3, "timeout": 5}  # base: the start
    # The sample at 10 s is now a window old: only what happened since counts.
    assert w.update({"ok": 10.0, "timeout": 5.0}, now=1000.0) == {"ok": 8}
    assert jsoc_reason({"ok": 8}, ratio=0.5, window_s=900) is None
    r = jsoc_reason({"ok": 2, "http_5xx": 3}, ratio=0.5, window_s=900)
    assert r is not None and r.state == "degraded" and "3 of 5 requests failed in the last 15 min (http_5xx 3)" in r.message
    assert jsoc_reason({"ok": 0, "timeout": 2}, ratio=0.5, window_s=900) is None  # two timeouts are not an incident
    assert jsoc_reason({"ok": 10, "timeout": 4}, ratio=0.5, window_s=900) is None


def test_degraded_products_and_failing_alerts_are_reasons_synthetic_models_are_labels() -> None:
    doc = {
        "full_disk": {"issue_time": "2024-05-10T12:00:00Z", "degraded": True, "missing": ["GOES events"], "models": []},
        "regions": [{"degraded": True, "missing": ["Bt"]}, {"degraded": True, "missing": ["GOES events"]}],
        "jets": {"degraded": ["pointing"], "synthetic_model": True},
        "emergence": {"synthetic_model": True},
    }
    reasons = product_reasons(doc)
    assert [r.subject for r in reasons] == ["flares", "jets"]
    assert "is degraded: missing GOES events; Bt" in reasons[0].message and "pointing" in reasons[1].message
    assert product_reasons({"full_disk": {"degraded": False}, "jets": {"degraded": []}}) == []
    notes = synthetic_notes(doc)
    assert {n["subject"] for n in notes} == {"jets", "emergence"}
    assert alert_reason([{"status": "sent", "last_error": None}, {"status": "pending", "last_error": None}]) is None
    r = alert_reason([{"status": "pending", "last_error": "SMTP 451\nmore"}, {"status": "refused", "last_error": "404"}])
    assert r is not None and "2 of the last alerts not delivered (last error: SMTP 451)" in r.message


def test_epochs_are_mixed_when_the_data_span_more_than_the_limit() -> None:
    same = epoch_notice([("a", "2024-05-10T00:00:00Z"), ("b", "2024-05-10T20:00:00Z"), ("c", None)], 24.0)
    assert not same["mixed"] and same["span_hours"] == 20.0 and len(same["observed"]) == 2
    mixed = epoch_notice([("magnetogram", "2011-02-15T02:00:00Z"), ("forecast", "2017-09-06T12:00:00Z")], 24.0)
    assert mixed["mixed"] and mixed["span_hours"] > 24 * 365 * 6
    assert not epoch_notice([], 24.0)["mixed"]


def test_replay_ages_run_on_the_compressed_timeline() -> None:
    c = ReplayClock([0.0, 100.0, 1e8, 1e8 + 100.0], speed=1.0, max_gap_s=50.0)
    c.freeze_at(1e8 + 100.0)
    assert c.elapsed(1e8 + 100.0) == 0.0
    assert c.elapsed(1e8) == 50.0  # the last 100 s gap is played as 50 s
    assert c.elapsed(100.0) == 100.0  # three years are one compressed gap, then 50 s
    assert c.elapsed(50.0) == 125.0
