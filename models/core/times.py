"""Time helpers: JSOC TAI strings, UTC ISO 8601, and the one clock every component is given.

JSOC ``T_REC``/``T_OBS`` are TAI strings (``2011.02.15_02:00:00_TAI``); they are converted
explicitly with :func:`sunpy.time.parse_time` and stored as UTC ISO 8601. Nothing in
heliowatch reads the wall clock except :class:`SystemClock`: components are handed a
:class:`Clock` (the system's, or a replay's time-warp clock) by the composition root, so a
replay, a backfill and a live daemon agree on what "now" means.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Protocol

from astropy.time import Time
from astropy.utils import iers
from sunpy.time import parse_time

# The daemon may run on a box without internet: astropy must never stall on (or fail for) a
# download of the IERS-A table or the leap-second list. The tables of the installed
# astropy-iers-data are used however old (upgrading that package refreshes them); heliowatch
# converts TAI <-> UTC, which needs only the leap seconds. Every heliowatch process (the CLI,
# the daemon, Dask workers) imports this module before it converts a time.
iers.conf.auto_download = False
iers.conf.auto_max_age = None

__all__ = [
    "Clock",
    "FixedClock",
    "SystemClock",
    "hours_between",
    "iso_from_unix",
    "iso_utc",
    "parse_iso",
    "tai_to_utc",
    "unix_from_iso",
    "utc_to_tai_string",
]


class Clock(Protocol):
    """What components ask for the time."""

    def now(self) -> float:
        """Current time as Unix seconds (UTC); a replay returns archive time."""
        ...

    def monotonic(self) -> float:
        """Seconds of a clock that never steps (intervals, timeouts, scheduling)."""
        ...


class SystemClock:
    """The machine's clock: wall time for timestamps, monotonic time for intervals."""

    def now(self) -> float:
        """Wall-clock Unix seconds."""
        return time.time()

    def monotonic(self) -> float:
        """``time.monotonic()``: unaffected by NTP steps."""
        return time.monotonic()


class FixedClock:
    """A clock that says what it is told (tests, and backfills that run at a chosen time)."""

    def __init__(self, t: float) -> None:
        self.t = float(t)

    def now(self) -> float:
        """The time it was set to."""
        return self.t

    def monotonic(self) -> float:
        """Real monotonic seconds (intervals still pass)."""
        return time.monotonic()


def iso_utc(t: float | dt.datetime, *, millis: bool = False) -> str:
    """UTC ISO 8601 with a ``Z`` (to the second, or the millisecond)."""
    d = t if isinstance(t, dt.datetime) else dt.datetime.fromtimestamp(t, dt.UTC)
    d = d.astimezone(dt.UTC) if d.tzinfo else d.replace(tzinfo=dt.UTC)
    if millis:
        return d.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return d.strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_from_unix(ts: float) -> str:
    """Unix seconds -> ``YYYY-MM-DDTHH:MM:SS.sssZ``."""
    return iso_utc(ts, millis=True)


def parse_iso(text: str) -> dt.datetime:
    """An ISO 8601 UTC string (``Z`` or an offset; naive means UTC) -> aware datetime."""
    d = dt.datetime.fromisoformat(str(text).strip().replace("Z", "+00:00"))
    return d if d.tzinfo else d.replace(tzinfo=dt.UTC)


def hours_between(a: str, b: str) -> float:
    """``a - b`` in hours, for two ISO 8601 UTC strings."""
    return (parse_iso(a) - parse_iso(b)).total_seconds() / 3600


def unix_from_iso(text: str) -> float:
    """An ISO 8601 UTC string -> Unix seconds."""
    return parse_iso(text).timestamp()


def tai_to_utc(t: str) -> str:
    """Convert a JSOC time string to UTC ISO 8601 (``YYYY-MM-DDTHH:MM:SS.sssZ``).

    ``2011.02.15_02:00:00_TAI`` is TAI; a string without a scale suffix is taken as UTC.
    drms's own ``to_datetime`` drops the ``_TAI`` and is 37 s (in 2024) wrong.

    Raises
    ------
    ValueError
        If ``t`` is empty, ``MISSING`` or not a time.
    """
    s = str(t).strip()
    if not s or s.upper() == "MISSING":
        msg = f"no time in {t!r}"
        raise ValueError(msg)
    tm = parse_time(s)
    tm.precision = 3
    return f"{tm.utc.isot}Z"


def utc_to_tai_string(utc_iso: str) -> str:
    """Convert UTC ISO 8601 to a JSOC TAI time string (``2011.02.15_02:00:00.000_TAI``)."""
    t = Time(utc_iso.rstrip("Z"), scale="utc", precision=3).tai
    date, clock = t.isot.split("T")
    return f"{date.replace('-', '.')}_{clock}_TAI"
