"""Live verification: the daemon scores its own past forecasts as GOES events arrive.

Every issued probability (full disk and per region, C1+ and M1+) goes into the ledger
(:mod:`heliowatch.pipelines.store.ledger`) with its window. Once the event feed's horizon
passes a window's end, the outcome is set (a flare of the level starting in the window; for a
region, attributed to its NOAA number). Rolling scores over the last N days of verified
forecasts (TSS at 0.5, BSS against the window's climatology, Brier score, counts,
reliability) are exported as metrics.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd

from heliowatch.models import skill
from heliowatch.pipelines.events import EventSource
from heliowatch.pipelines.store.ledger import LedgerStore

__all__ = ["Ledger", "Verifier"]

_FLUX = {"C": 1e-6, "M": 1e-5}


class Ledger:
    """Issued forecasts and their outcomes."""

    def __init__(self, store: LedgerStore) -> None:
        self.store = store

    def record(self, issue_time: str, window_end: str, rows: list[tuple[str, str, float, int | None]]) -> None:
        """Store ``(scope, level, p, noaa_ar)`` rows of one issue (idempotent on the natural key)."""
        self.store.record(issue_time, window_end, rows)

    def verify(self, events: pd.DataFrame, horizon: dt.datetime) -> int:
        """Set the outcome of every forecast whose window ended before ``horizon``; returns how many."""
        rows = self.store.open_until(horizon.strftime("%Y-%m-%dT%H:%M:%SZ"))
        outcomes = []
        for r in rows:
            t0 = pd.Timestamp(r.issue_time.rstrip("Z"))
            t1 = pd.Timestamp(r.window_end.rstrip("Z"))
            sel = (events["start"] >= t0) & (events["start"] < t1) & (events["flux"] >= _FLUX[r.level] * (1 - 1e-9))
            if r.scope != "full_disk":
                sel &= events["noaa_ar"] == r.noaa_ar
            outcomes.append((r, int(bool(sel.any()))))
        self.store.set_outcomes(outcomes)
        return len(rows)

    def scores(self, *, days: float, now: dt.datetime) -> dict[tuple[str, str], dict[str, Any]]:
        """Rolling scores per (scope kind, level) over verified forecasts issued in the last ``days``."""
        rows = self.store.verified_since((now - dt.timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ"))
        out: dict[tuple[str, str], dict[str, Any]] = {}
        for kind in ("full_disk", "region"):
            for level in ("C", "M"):
                sel = [r for r in rows if r.level == level and ((r.scope == "full_disk") == (kind == "full_disk"))]
                if not sel:
                    continue
                y = np.array([r.outcome for r in sel])
                p = np.array([r.p for r in sel])
                s = skill.score(y, p)
                out[(kind, level)] = {
                    "n": s.n,
                    "events": s.events,
                    "tss": s.tss,
                    "bss": s.bss,
                    "brier": float(np.mean((p - y) ** 2)),
                    "reliability": skill.reliability(y, p, bins=5),
                }
        return out

    def pending(self) -> int:
        """Forecasts still waiting for their window to close."""
        return self.store.pending()


class Verifier:
    """Scores issued forecasts as the event feed's horizon passes their windows (a daemon job).

    Parameters
    ----------
    ledger : Ledger
    events : EventSource or None
        Nothing is verified without an event feed.
    days : float
        Window of the rolling scores.
    """

    def __init__(self, ledger: Ledger, events: EventSource | None, *, days: float = 90.0) -> None:
        self.ledger = ledger
        self.events = events
        self.days = days
        self.scores: dict[tuple[str, str], dict[str, Any]] = {}
        self.pending = 0

    def run(self) -> int:
        """Verify what can be verified now; returns how many forecasts got an outcome."""
        n = 0
        if self.events is not None:
            horizon = self.events.horizon()
            n = self.ledger.verify(self.events.events(), horizon)
            self.scores = self.ledger.scores(days=self.days, now=horizon)
        self.pending = self.ledger.pending()
        return n
