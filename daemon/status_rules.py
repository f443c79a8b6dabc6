"""The rules behind the status badge: when a series is stale, when JSOC errors, degraded
products or failing alert delivery make the daemon degraded, and which state wins.

Pure functions of what :mod:`heliowatch.daemon.status` gathers, so each rule is tested on
its own. Ages are seconds of the daemon's clock (archive time in a replay), never the wall's:
a replay of 2011 data is as old as the replay has run, not fifteen years.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from heliowatch.daemon.config import StatusConfig
from heliowatch.models.core.times import iso_utc, parse_iso, tai_to_utc

__all__ = [
    "STATES",
    "JsocWindow",
    "Reason",
    "alert_reason",
    "duration",
    "epoch_notice",
    "jsoc_reason",
    "product_reasons",
    "series_reason",
    "stale_after_s",
    "synthetic_notes",
    "utc_second",
    "worst",
]

#: Badge states, least to most severe: the worst reason sets the badge.
STATES: tuple[str, ...] = ("healthy", "degraded", "stale", "down")


@dataclass(frozen=True)
class Reason:
    """Why the badge is not green.

    Parameters
    ----------
    state : str
        The state this reason implies (one of :data:`STATES` but ``healthy``).
    code : str
        A short, bounded code (``data_stale``, ``no_data``, ``jsoc_errors``, ``product_degraded``,
        ``alert_delivery``, ``scheduler``).
    subject : str
        What it is about (a series, a product, ``jsoc``, ``alerts``).
    message : str
        One sentence for the operator.
    """

    state: str
    code: str
    subject: str
    message: str

    def as_dict(self) -> dict[str, str]:
        """The reason as JSON."""
        return asdict(self)


def worst(reasons: Iterable[Reason]) -> str:
    """The badge state: the most severe state among ``reasons`` (``healthy`` without any)."""
    return max((r.state for r in reasons), key=STATES.index, default="healthy")


def utc_second(text: Any) -> str | None:
    """Any time heliowatch stores (ISO 8601 with or without milliseconds, a JSOC ``_TAI`` string)
    as the page's one format, ``YYYY-MM-DDTHH:MM:SSZ``; None for no time or one it cannot read."""
    if text is None or text == "":
        return None
    s = str(text).strip()
    try:
        if s.endswith(("_TAI", "_UTC")):
            s = tai_to_utc(s)
        # Round rather than truncate: a TAI->UTC conversion can land a few microseconds early.
        return iso_utc(round(parse_iso(s).timestamp()))
    except ValueError:
        return None


def stale_after_s(kind: str, cfg: StatusConfig) -> float | None:
    """The age (s) past which a series of ``kind`` is stale; None when the check is off."""
    minutes = {
        "magnetogram": cfg.stale_magnetogram_minutes,
        "sharp": cfg.stale_sharp_minutes,
        "aia": cfg.stale_aia_minutes,
    }.get(kind, 0.0)
    return 60.0 * minutes if minutes > 0 else None


def duration(s: float) -> str:
    """Seconds as the page writes an age: ``45 s``, ``90 min``, ``6.0 h``, ``2.5 days``."""
    s = max(0.0, s)
    if s < 120:
        return f"{s:.0f} s"
    if s < 10800:
        return f"{s / 60:.0f} min"
    if s < 172800:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} days"


def series_reason(name: str, age_s: float | None, limit_s: float | None) -> Reason | None:
    """``stale`` when a series' newest record is older than its limit, or it has none yet."""
    if limit_s is None:
        return None
    if age_s is None:
        return Reason("stale", "no_data", name, f"{name}: no record ingested yet")
    if age_s > limit_s:
        return Reason("stale", "data_stale", name, f"{name}: newest record is {duration(age_s)} old (limit {duration(limit_s)})")
    return None


class JsocWindow:
    """JSOC request outcomes over the last ``window_s`` seconds, from the cumulative counters.

    Each :meth:`update` stores the totals it was given; the difference to the newest sample at
    least ``window_s`` old (or to the start) is what happened in the window.

    Parameters
    ----------
    window_s : float
        How far back the window goes (monotonic seconds: requests happen in real time, even in a replay).
    start : float
        Monotonic time of the start (zero counts).
    """

    def __init__(self, window_s: float, start: float) -> None:
        self.window_s = window_s
        self._samples: deque[tuple[float, dict[str, float]]] = deque([(start, {})])

    def update(self, totals: Mapping[str, float], now: float) -> dict[str, int]:
        """Requests by outcome in the window ending ``now``."""
        while len(self._samples) > 1 and self._samples[1][0] <= now - self.window_s:
            self._samples.popleft()
        base = self._samples[0][1]
        self._samples.append((now, dict(totals)))
        return {k: round(v - base.get(k, 0.0)) for k, v in totals.items() if v - base.get(k, 0.0) > 0}


def jsoc_reason(by_outcome: Mapping[str, int], *, ratio: float, window_s: float) -> Reason | None:
    """``degraded`` when at least ``ratio`` of the window's JSOC requests failed (and at least 3 did,
    so one timed-out poll is not an incident)."""
    total = sum(by_outcome.values())
    errors = total - by_outcome.get("ok", 0)
    if errors < 3 or errors < ratio * total:
        return None
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(by_outcome.items()) if k != "ok")
    return Reason(
        "degraded",
        "jsoc_errors",
        "jsoc",
        f"JSOC: {errors} of {total} requests failed in the last {duration(window_s)} ({kinds})",
    )


def product_reasons(doc: Mapping[str, Any]) -> list[Reason]:
    """``degraded`` for each product the status document marks degraded."""
    out = []
    fd = doc.get("full_disk")
    if fd and fd.get("degraded"):
        regions = doc.get("regions") or []
        missing = [str(m) for m in fd.get("missing") or []]
        missing += sorted({str(m) for r in regions for m in r.get("missing") or []} - set(missing))
        n = sum(1 for r in regions if r.get("degraded"))
        why = f"missing {'; '.join(missing)}" if missing else f"{n} of {len(regions)} region forecasts below the full method"
        out.append(Reason("degraded", "product_degraded", "flares", f"flare forecast {fd.get('issue_time')} is degraded: {why}"))
    jets = doc.get("jets")
    if jets and jets.get("degraded"):
        out.append(
            Reason(
                "degraded",
                "product_degraded",
                "jets",
                f"jet calibration degraded: {', '.join(str(d) for d in jets['degraded'])}",
            )
        )
    return out


def alert_reason(recent: Iterable[Mapping[str, Any]]) -> Reason | None:
    """``degraded`` when recent alerts wait in the outbox after a failed delivery, or a channel refused them."""
    failing = [
        a for a in recent if (a.get("status") == "pending" and a.get("last_error")) or a.get("status") in ("refused", "partial")
    ]
    if not failing:
        return None
    err = str(failing[0]["last_error"]).splitlines()[0][:160]
    return Reason(
        "degraded",
        "alert_delivery",
        "alerts",
        f"alert delivery failing: {len(failing)} of the last alerts not delivered (last error: {err})",
    )


def synthetic_notes(doc: Mapping[str, Any]) -> list[dict[str, str]]:
    """Labels, not reasons: products whose models were trained on synthetic data."""
    out = []
    fd = doc.get("full_disk")
    if fd:
        names = sorted({m.get("name", "?") for m in fd.get("models") or [] if m.get("training") == "synthetic"})
        names += sorted(
            {str((r.get("cnn") or {}).get("name")) for r in doc.get("regions") or [] if (r.get("cnn") or {}).get("synthetic")}
        )
        if names:
            out.append({"subject": "flares", "message": f"flare models trained on synthetic data: {', '.join(names)}"})
    for what, label in (("jets", "jet network"), ("emergence", "emergence classifiers")):
        if (doc.get(what) or {}).get("synthetic_model"):
            out.append({"subject": what, "message": f"{label} trained on synthetic data (not operational)"})
    return out


def epoch_notice(observed: Iterable[tuple[str, str | None]], max_hours: float) -> dict[str, Any]:
    """Whether the products shown come from different observation epochs.

    ``observed`` is ``(what, time)`` per product shown; mixed when the times span more than
    ``max_hours`` (a replay archive of real data from several years does).
    """
    seen = [{"what": w, "time_utc": t} for w, t in observed if t]
    ts = [parse_iso(o["time_utc"]).timestamp() for o in seen]
    span_h = (max(ts) - min(ts)) / 3600 if ts else 0.0
    return {
        "mixed": bool(ts) and max_hours > 0 and span_h > max_hours and math.isfinite(span_h),
        "span_hours": round(span_h, 2),
        "observed": seen,
    }
