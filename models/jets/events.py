"""Jet events: detections from tiles, windows and detectors merged into one record per jet.

The same jet is seen many times: by the baseline and by the network, in overlapping tiles, and
in successive (overlapping) 30-frame windows. :func:`merge` links two detections when their
times overlap (or leave a gap of at most ``max_gap_s``) and one's base lies within
``max_sep_arcsec`` of the other's *jet* (the segment from its base along its axis over its
length): the network reports a tile's brightest change, which may sit anywhere along the
spire rather than at the base. Linked detections form one :class:`JetEvent`.

The event's geometry (base, direction, length, speed) comes from its best baseline
detection, which measures them, else from its best detection of any kind. Its ``probability``
is the network's highest probability when the network saw it, else the baseline's score (a
0..1 match to the jet criteria, not a calibrated probability; ``detectors`` says which).

The natural key is ``jet-<start floored to 10 min, UTC>-<x>-<y>``, the base of the event's
earliest detection rounded to a 100" grid (the earliest, so that later windows of the same jet,
which only add later detections, keep it). Two sightings of one jet whose earliest starts or
bases fall on either side of a bin edge still get two keys: a store should merge records by
:func:`merge` (or :func:`same_jet`) before trusting key equality.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from heliowatch.models.core.errors import UsageError
from heliowatch.models.core.times import iso_from_unix, iso_utc
from heliowatch.models.jets.baseline import JetDetection

__all__ = ["JetEvent", "event_key", "event_of", "linked", "merge", "same_jet"]

_KEY_T_S = 600.0
_KEY_XY_ARCSEC = 100.0


@dataclass
class JetEvent:
    """One coronal jet, merged from its detections.

    Attributes
    ----------
    start_utc, peak_utc, end_utc : str
        ISO 8601 UTC.
    base_hpc_arcsec : (float, float)
        Base point, helioprojective arcsec.
    hgs_lat, hgs_lon : float
        Stonyhurst position of the base (NaN beyond the limb).
    carrington_lon : float
        Carrington longitude of the base (NaN beyond the limb or without L0).
    direction_deg : float
        Position angle of the axis (0 = north, 90 = east).
    length_arcsec : float
    speed_km_s : float or None
    probability : float
        0..1 (see the module notes).
    detectors : list of str
        Detectors that saw it (``baseline``, ``convlstm``).
    degraded : bool
        Made from degraded input (a short window, flagged frames).
    key : str
        Natural key (see the module notes).
    n_detections : int
        Detections merged into it.
    """

    start_utc: str
    peak_utc: str
    end_utc: str
    base_hpc_arcsec: tuple[float, float]
    hgs_lat: float
    hgs_lon: float
    carrington_lon: float
    direction_deg: float
    length_arcsec: float
    speed_km_s: float | None
    probability: float
    detectors: list[str] = field(default_factory=list)
    degraded: bool = False
    key: str = ""
    n_detections: int = 0

    def as_dict(self) -> dict[str, Any]:
        """Strict-JSON-ready dict (NaN becomes None), with ``detector`` as the detectors joined by ``+``."""

        def clean(v: Any) -> Any:
            if isinstance(v, float) and not math.isfinite(v):
                return None
            if isinstance(v, tuple | list):
                return [clean(x) for x in v]
            return v

        d = {k: clean(v) for k, v in self.__dict__.items()}
        d["detector"] = "+".join(self.detectors)
        return d


def event_key(start_t: float, base_hpc_arcsec: tuple[float, float]) -> str:
    """The natural key of a jet first seen at ``start_t`` (Unix) with its base at ``base_hpc_arcsec``."""
    t = math.floor(start_t / _KEY_T_S) * _KEY_T_S
    gx = math.floor(base_hpc_arcsec[0] / _KEY_XY_ARCSEC + 0.5) * int(_KEY_XY_ARCSEC)
    gy = math.floor(base_hpc_arcsec[1] / _KEY_XY_ARCSEC + 0.5) * int(_KEY_XY_ARCSEC)
    stamp = iso_utc(t).replace("-", "").replace(":", "")[:13]
    return f"jet-{stamp}-{gx:+05d}-{gy:+05d}"


def _seg_dist(p: tuple[float, float], d: JetDetection) -> float:
    bx, by = d.base_hpc_arcsec
    pa = math.radians(d.direction_deg)
    ux, uy = -math.sin(pa), math.cos(pa)
    length = max(d.length_arcsec, 0.0) if math.isfinite(d.length_arcsec) else 0.0
    s = min(max((p[0] - bx) * ux + (p[1] - by) * uy, 0.0), length)
    return math.hypot(p[0] - (bx + s * ux), p[1] - (by + s * uy))


def same_jet(a: JetDetection, b: JetDetection, *, max_sep_arcsec: float = 60.0, max_gap_s: float = 180.0) -> bool:
    """Whether two detections are sightings of one jet (the test :func:`merge` links them by)."""
    gap = max(a.start_t, b.start_t) - min(a.end_t, b.end_t)
    if gap > max_gap_s:
        return False
    sep = min(_seg_dist(a.base_hpc_arcsec, b), _seg_dist(b.base_hpc_arcsec, a))
    return sep <= max_sep_arcsec


def _in_box(p: tuple[float, float], box: tuple[float, float, float, float]) -> bool:
    return box[0] <= p[0] <= box[1] and box[2] <= p[1] <= box[3]


def linked(a: JetDetection, b: JetDetection, *, max_sep_arcsec: float = 60.0, max_gap_s: float = 180.0) -> bool:
    """:func:`same_jet`, or a network detection and a baseline one whose base lies in the network's tile, overlapping in time."""
    if same_jet(a, b, max_sep_arcsec=max_sep_arcsec, max_gap_s=max_gap_s):
        return True
    if max(a.start_t, b.start_t) - min(a.end_t, b.end_t) > max_gap_s:
        return False
    for net, other in ((a, b), (b, a)):
        if net.box_hpc_arcsec is not None and other.detector == "baseline" and _in_box(other.base_hpc_arcsec, net.box_hpc_arcsec):
            return True
    return False


def event_of(group: Sequence[JetDetection], *, l0_deg: float | None = None, degraded: bool = False) -> JetEvent:
    """The event of detections already known to be one jet (e.g. grouped by :func:`linked`)."""
    if not group:
        msg = "an event needs at least one detection"
        raise UsageError(msg)
    return _event(list(group), l0_deg=l0_deg, degraded=degraded)


def merge(
    detections: Iterable[JetDetection],
    *,
    max_sep_arcsec: float = 60.0,
    max_gap_s: float = 180.0,
    l0_deg: float | None = None,
    degraded: bool = False,
) -> list[JetEvent]:
    """Merge detections (any tiles, windows and detectors) into one event per jet.

    Parameters
    ----------
    detections : iterable of JetDetection
    max_sep_arcsec : float
        Largest distance between one detection's base and the other's jet segment.
    max_gap_s : float
        Largest gap between the time intervals of two detections.
    l0_deg : float or None
        Carrington longitude of disk centre, for the events' Carrington longitudes (NaN without).
    degraded : bool
        Mark every event as made from degraded input.

    Returns
    -------
    list of JetEvent
        Sorted by start time, then key.
    """
    if max_sep_arcsec < 0 or max_gap_s < 0:
        msg = f"max_sep_arcsec and max_gap_s must be >= 0 (got {max_sep_arcsec}, {max_gap_s})"
        raise UsageError(msg)
    dets: Sequence[JetDetection] = list(detections)
    n = len(dets)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    order = sorted(range(n), key=lambda i: dets[i].start_t)
    for ii, i in enumerate(order):
        for j in order[ii + 1 :]:
            if dets[j].start_t - dets[i].end_t > max_gap_s:
                break  # every later j starts later still
            if same_jet(dets[i], dets[j], max_sep_arcsec=max_sep_arcsec, max_gap_s=max_gap_s):
                ri, rj = find(i), find(j)
                if ri != rj:
                    parent[rj] = ri
    groups: dict[int, list[JetDetection]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(dets[i])
    events = [_event(g, l0_deg=l0_deg, degraded=degraded) for g in groups.values()]
    return sorted(events, key=lambda e: (e.start_utc, e.key))


def _event(group: list[JetDetection], *, l0_deg: float | None, degraded: bool) -> JetEvent:
    base_dets = [d for d in group if d.detector == "baseline"]
    best = max(base_dets or group, key=lambda d: d.score)
    first = min(group, key=lambda d: (d.start_t, -d.score))
    net = [d.score for d in group if d.detector != "baseline"]
    prob = max(net) if net else best.score
    car = (best.hgs_lon + l0_deg) % 360.0 if l0_deg is not None and math.isfinite(best.hgs_lon) else math.nan
    return JetEvent(
        start_utc=iso_from_unix(min(d.start_t for d in group)),
        peak_utc=iso_from_unix(best.peak_t),
        end_utc=iso_from_unix(max(d.end_t for d in group)),
        base_hpc_arcsec=(float(best.base_hpc_arcsec[0]), float(best.base_hpc_arcsec[1])),
        hgs_lat=float(best.hgs_lat),
        hgs_lon=float(best.hgs_lon),
        carrington_lon=float(car),
        direction_deg=float(best.direction_deg),
        length_arcsec=float(best.length_arcsec),
        speed_km_s=best.speed_km_s,
        probability=float(np.clip(prob, 0.0, 1.0)),
        detectors=sorted({d.detector for d in group}),
        degraded=degraded,
        key=event_key(first.start_t, first.base_hpc_arcsec),
        n_detections=len(group),
    )
