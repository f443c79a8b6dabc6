"""The daemon's GOES event feed: local lists, the replay archive's list, or SWPC's JSON feed.

Parsing lives in :mod:`heliowatch.models.flares.events`; fetching SWPC's feed goes through
:mod:`heliowatch.pipelines.swpc` (the one module that speaks HTTP to SWPC).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pandas as pd
import structlog

from heliowatch.models.core.times import Clock, SystemClock
from heliowatch.models.flares.events import empty_events, load_events
from heliowatch.pipelines import swpc

__all__ = ["EventSource"]

log = structlog.get_logger(__name__)


class EventSource:
    """The daemon's GOES event feed, known up to a horizon.

    Parameters
    ----------
    files : list of pathlib.Path
        Local event lists (re-read when they change), or the replay archive's list.
    url : str or None
        An SWPC ``xray-flares`` JSON URL, fetched at most every ``refresh_s`` and merged
        into ``cache`` (the feed holds only the last days; the cache keeps the history).
    cache : pathlib.Path or None
        Where fetched events accumulate (JSON, SWPC field names).
    clock : Clock or None
        A replay passes its clock, and events after it are hidden.
    """

    def __init__(
        self,
        *,
        files: list[Path] | None = None,
        url: str | None = None,
        cache: Path | None = None,
        clock: Clock | None = None,
        refresh_s: float = 600.0,
        timeout_s: float = 30.0,
    ) -> None:
        self.files = [Path(f) for f in files or []]
        self.url = url
        self.cache = cache
        self.clock: Clock = clock or SystemClock()
        self.refresh_s = refresh_s
        self.timeout_s = timeout_s
        self._events: pd.DataFrame | None = None
        self._stamp: tuple[Any, ...] = ()
        self._fetched: float | None = None

    def _fetch(self) -> None:
        if self.url is None:
            return
        t = self.clock.monotonic()
        if self._fetched is not None and t - self._fetched < self.refresh_s:
            return
        self._fetched = t
        try:
            fresh = json.loads(swpc.fetch(self.url, timeout_s=self.timeout_s, max_bytes=20_000_000).decode())
        except (swpc.FeedError, ValueError) as e:
            log.warning("event_feed_unavailable", url=self.url, error=str(e)[:200])
            return
        if not isinstance(fresh, list):
            log.warning("event_feed_unavailable", url=self.url, error="not a JSON list of events")
            return
        if self.cache is not None:
            old = json.loads(self.cache.read_text()) if self.cache.exists() else []
            seen = {(e.get("begin_time"), e.get("max_class")) for e in old}
            merged = old + [e for e in fresh if (e.get("begin_time"), e.get("max_class")) not in seen]
            self.cache.parent.mkdir(parents=True, exist_ok=True)
            self.cache.write_text(json.dumps(merged))

    def events(self) -> pd.DataFrame:
        """Events that have started by now (as the clock says)."""
        self._fetch()
        paths = [*self.files, *([self.cache] if self.cache is not None and self.cache.exists() else [])]
        stamp = tuple((p, p.stat().st_mtime) for p in paths if p.exists())
        if self._events is None or stamp != self._stamp:
            self._events = load_events([p for p, _ in stamp]) if stamp else empty_events()
            self._stamp = stamp
        now = pd.Timestamp(self.horizon())
        return self._events[self._events["start"] <= now]

    def horizon(self) -> dt.datetime:
        """The time up to which the event list is complete (naive UTC)."""
        return dt.datetime.fromtimestamp(self.clock.now(), dt.UTC).replace(tzinfo=None)
