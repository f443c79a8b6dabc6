"""Tracking regions from frame to frame with differential rotation, and joining catalogues by position.

A region keeps its id from frame to frame when a region of the previous frame, rotated
differentially to the new time, lies within a few degrees.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from typing import Any

import astropy.units as u
from sunpy.sun.models import differential_rotation

from heliowatch.models.core.times import parse_iso
from heliowatch.models.regions.detect import DetectedRegion

__all__ = ["Tracker", "match_position"]


class Tracker:
    """Carry region ids across frames with differential rotation."""

    def __init__(self, *, match_deg: float = 5.0) -> None:
        self.match_deg = match_deg
        self.prev: list[tuple[int, float, float, str]] = []  # (track id, lat, lon, class)
        self.prev_time: dt.datetime | None = None
        self.next_id = 1

    @staticmethod
    def rate_deg_per_day(lat: float) -> float:
        """Synodic differential rotation at a latitude, deg/day: sunpy's Howard et al. (1990) model."""
        if not math.isfinite(lat):
            return math.nan  # never a cache key: NaN keys are all distinct
        return _synodic_rate(round(float(lat), 2))

    def update(self, regions: list[DetectedRegion], t_utc: str) -> dict[int, str | None]:
        """Assign ``track_id``s; returns track id -> the class it had in the previous frame."""
        t = parse_iso(t_utc)
        days = (t - self.prev_time).total_seconds() / 86400 if self.prev_time else 0.0
        prior: dict[int, str | None] = {}
        used: set[int] = set()
        for r in regions:
            best, best_d = None, self.match_deg
            for tid, la, lo, cls in self.prev:
                if tid in used:
                    continue
                lo_now = lo + self.rate_deg_per_day(la) * days
                d = math.hypot(r.hgs_lat - la, (r.hgs_lon - lo_now) * math.cos(math.radians(la)))
                if d < best_d:
                    best, best_d = (tid, cls), d
            if best is None:
                r.track_id = self.next_id
                self.next_id += 1
                prior[r.track_id] = None
            else:
                r.track_id = best[0]
                used.add(best[0])
                prior[r.track_id] = best[1]
        self.prev = [(r.track_id or 0, r.hgs_lat, r.hgs_lon, r.mtwilson) for r in regions]
        self.prev_time = t
        return prior

    def state(self) -> dict[str, Any]:
        """Everything the tracker knows, as JSON-able values (to resume after a restart)."""
        return {
            "prev": [list(p) for p in self.prev],
            "prev_time": self.prev_time.isoformat() if self.prev_time else None,
            "next_id": self.next_id,
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state` of an earlier run."""
        self.prev = [(int(p[0]), float(p[1]), float(p[2]), str(p[3])) for p in state.get("prev", [])]
        self.prev_time = parse_iso(state["prev_time"]) if state.get("prev_time") else None
        self.next_id = int(state.get("next_id", 1))


@functools.cache
def _synodic_rate(lat: float) -> float:
    # sunpy's default model (the one RotatedSunFrame uses), as seen from Earth; cached because
    # tracking asks for it per pair of regions and a Quantity evaluation costs ~0.2 ms.
    rate = differential_rotation(1 * u.day, lat * u.deg, model="howard", frame_time="synodic")
    return float(rate.to_value(u.deg))


def match_position(
    lat: float,
    lon: float,
    t_utc: str,
    candidates: list[dict[str, Any]],
    *,
    max_deg: float = 5.0,
    max_hours: float = 3.0,
) -> dict[str, Any] | None:
    """The candidate (with ``hgs_lat``, ``hgs_lon``, ``t_rec_utc``) nearest a position, after
    rotating it differentially to ``t_utc``; None when none is within ``max_deg`` and ``max_hours``.

    Used to join detections with SHARP/NOAA regions: HARP numbers differ between NRT and
    definitive series, so regions are joined on position and time, never on HARPNUM.
    """
    t = parse_iso(t_utc)
    best, best_d = None, max_deg
    for c in candidates:
        tc = parse_iso(str(c["t_rec_utc"]))
        hours = (t - tc).total_seconds() / 3600
        if abs(hours) > max_hours:
            continue
        lon_now = c["hgs_lon"] + Tracker.rate_deg_per_day(c["hgs_lat"]) * hours / 24
        d = math.hypot(lat - c["hgs_lat"], (lon - lon_now) * math.cos(math.radians(lat)))
        if d < best_d:
            best, best_d = c, d
    return best
