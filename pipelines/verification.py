"""Live verification: the daemon scores its own past forecasts as GOES events arrive.

Every issued probability (full disk and per region, C1+ and M1+) goes into a ledger table
of the state database with its window. Once the event feed's horizon passes a window's end,
the outcome is set (a flare of the level starting in the window; for a region, attributed to
its NOAA number). Rolling scores over the last N days of verified forecasts (TSS at 0.5, BSS
against the window's climatology, Brier score, counts, reliability) are exported as metrics.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from heliowatch.daemon.state import StateStore, metadata
from heliowatch.models import skill

__all__ = ["Ledger"]

ledger_table = sa.Table(
    "flare_forecasts",
    metadata,
    sa.Column("issue_time", sa.String(32), primary_key=True),
    sa.Column("scope", sa.String(32), primary_key=True),  # full_disk | noaa:<n> | harp:<n>
    sa.Column("level", sa.String(4), primary_key=True),  # C | M
    sa.Column("p", sa.Float, nullable=False),
    sa.Column("window_end", sa.String(32), nullable=False),
    sa.Column("noaa_ar", sa.Integer, nullable=True),
    sa.Column("outcome", sa.Integer, nullable=True),
)

_FLUX = {"C": 1e-6, "M": 1e-5}


class Ledger:
    """Issued forecasts and their outcomes, in the state database."""

    def __init__(self, state: StateStore) -> None:
        self.engine = state.engine
        metadata.create_all(self.engine, tables=[ledger_table])

    def record(self, issue_time: str, window_end: str, rows: list[tuple[str, str, float, int | None]]) -> None:
        """Store ``(scope, level, p, noaa_ar)`` rows of one issue (idempotent on the natural key)."""
        with self.engine.begin() as c:
            for scope, level, p, noaa in rows:
                key = (
                    (ledger_table.c.issue_time == issue_time) & (ledger_table.c.scope == scope) & (ledger_table.c.level == level)
                )
                if c.execute(sa.select(ledger_table.c.p).where(key)).first() is None:
                    c.execute(
                        ledger_table.insert().values(
                            issue_time=issue_time, scope=scope, level=level, p=p, window_end=window_end, noaa_ar=noaa
                        )
                    )

    def verify(self, events: pd.DataFrame, horizon: dt.datetime) -> int:
        """Set the outcome of every forecast whose window ended before ``horizon``; returns how many."""
        h = horizon.strftime("%Y-%m-%dT%H:%M:%SZ")
        with self.engine.begin() as c:
            rows = c.execute(
                sa.select(ledger_table).where(ledger_table.c.outcome.is_(None), ledger_table.c.window_end <= h)
            ).all()
            for r in rows:
                t0 = pd.Timestamp(r.issue_time.rstrip("Z"))
                t1 = pd.Timestamp(r.window_end.rstrip("Z"))
                sel = (events["start"] >= t0) & (events["start"] < t1) & (events["flux"] >= _FLUX[r.level] * (1 - 1e-9))
                if r.scope != "full_disk":
                    sel &= events["noaa_ar"] == r.noaa_ar
                c.execute(
                    ledger_table.update()
                    .where(
                        (ledger_table.c.issue_time == r.issue_time)
                        & (ledger_table.c.scope == r.scope)
                        & (ledger_table.c.level == r.level)
                    )
                    .values(outcome=int(bool(sel.any())))
                )
        return len(rows)

    def scores(self, *, days: float, now: dt.datetime) -> dict[tuple[str, str], dict[str, Any]]:
        """Rolling scores per (scope kind, level) over verified forecasts issued in the last ``days``."""
        since = (now - dt.timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")
        with self.engine.connect() as c:
            rows = c.execute(
                sa.select(ledger_table).where(ledger_table.c.outcome.is_not(None), ledger_table.c.issue_time >= since)
            ).all()
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
        with self.engine.connect() as c:
            return int(
                c.execute(
                    sa.select(sa.func.count()).select_from(ledger_table).where(ledger_table.c.outcome.is_(None))
                ).scalar_one()
            )
