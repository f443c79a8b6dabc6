"""The verification ledger: every issued flare probability with its window and, later, its outcome."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

__all__ = ["LedgerRow", "LedgerStore"]

_meta = sa.MetaData()

ledger_table = sa.Table(
    "flare_forecasts",
    _meta,
    sa.Column("issue_time", sa.String(32), primary_key=True),
    sa.Column("scope", sa.String(32), primary_key=True),  # full_disk | noaa:<n> | harp:<n>
    sa.Column("level", sa.String(4), primary_key=True),  # C | M
    sa.Column("p", sa.Float, nullable=False),
    sa.Column("window_end", sa.String(32), nullable=False),
    sa.Column("noaa_ar", sa.Integer, nullable=True),
    sa.Column("outcome", sa.Integer, nullable=True),
)


@dataclass(frozen=True)
class LedgerRow:
    """One issued probability."""

    issue_time: str
    scope: str
    level: str
    p: float
    window_end: str
    noaa_ar: int | None
    outcome: int | None


def _row(r: sa.Row) -> LedgerRow:
    return LedgerRow(r.issue_time, r.scope, r.level, float(r.p), r.window_end, r.noaa_ar, r.outcome)


class LedgerStore:
    """SQL of the ledger (in the state database)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        _meta.create_all(engine)

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

    def open_until(self, horizon_utc: str) -> list[LedgerRow]:
        """Unverified forecasts whose window ended at or before ``horizon_utc``."""
        with self.engine.connect() as c:
            q = sa.select(ledger_table).where(ledger_table.c.outcome.is_(None), ledger_table.c.window_end <= horizon_utc)
            return [_row(r) for r in c.execute(q)]

    def set_outcomes(self, outcomes: list[tuple[LedgerRow, int]]) -> None:
        """Write the outcome (0/1) of each forecast."""
        with self.engine.begin() as c:
            for r, y in outcomes:
                c.execute(
                    ledger_table.update()
                    .where(
                        (ledger_table.c.issue_time == r.issue_time)
                        & (ledger_table.c.scope == r.scope)
                        & (ledger_table.c.level == r.level)
                    )
                    .values(outcome=int(y))
                )

    def verified_since(self, since_utc: str) -> list[LedgerRow]:
        """Verified forecasts issued at or after ``since_utc``."""
        with self.engine.connect() as c:
            q = sa.select(ledger_table).where(ledger_table.c.outcome.is_not(None), ledger_table.c.issue_time >= since_utc)
            return [_row(r) for r in c.execute(q)]

    def pending(self) -> int:
        """Forecasts still waiting for their window to close."""
        with self.engine.connect() as c:
            return int(
                c.execute(
                    sa.select(sa.func.count()).select_from(ledger_table).where(ledger_table.c.outcome.is_(None))
                ).scalar_one()
            )
