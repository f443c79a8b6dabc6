"""HEK events and IVOA VOEvent 2.0 packets of the region, jet and emergence products.

One exporter for every product event: :func:`event_files` turns a product payload (the dict
the products store holds, so a stored record can be exported again by hand) into
``events/<day>/<id>.hek.json`` and ``events/<day>/<id>.voevent.xml``:

- the HEK fields (``Event_*``, ``FRM_*``, ``OBS_*``, ``BoundBox_*`` and the type's own,
  spelled as in LMSAL's ``VOEvent_Spec.txt``), checked against the required/optional table
  vendored in ``data/formats/hek_required_fields.json`` (:func:`check_hek`). ``AR`` for a
  region in a frame (one event per region per magnetogram, as HEK's AR modules do), ``CJ``
  for a closed coronal jet, ``EF`` for an emergence warning. The ``KB_*`` fields belong to
  the HEK archivist and are never set;
- a VOEvent 2.0 packet valid against the IVOA schema (``data/formats/VOEvent-v2.0.xsd``; the
  tests validate every packet, the daemon never loads the schema). The schema's coordinate
  systems are all celestial, so ``WhereWhen`` gives the event's geocentric sky position
  (``UTC-ICRS-GEO``: RA/Dec, computed with sunpy from its solar position) and the solar
  coordinates travel as ``Param``\\ s in ``What`` (the HEK fields in one group, Stonyhurst,
  Carrington and helioprojective positions in another).

The IVORN is ``ivo://<authority>/<frm_name>#<type>-<identity>`` with the event's own identity
(a region's frame time and track id, a jet's natural key, a warning's patch and time), so two
frames of one region are two events and a rerun writes the same IVORNs (and file names) again.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np
from astropy.coordinates import GCRS, SkyCoord
from sunpy.coordinates import HeliographicStonyhurst, Helioprojective, sun

from heliowatch.models.core import jsonio
from heliowatch.models.core.times import SystemClock, iso_utc, parse_iso
from heliowatch.models.emergence.patches import MM_PER_PX, PATCH_SIZE
from heliowatch.models.measures import RSUN_REF_M

__all__ = [
    "HEK_TYPES",
    "VOE_NS",
    "ExportSettings",
    "check_hek",
    "event_files",
    "event_ivorn",
    "hek_event",
    "hek_spec",
    "hgs_extent",
    "voevent_xml",
    "write_event",
]

#: Product payload kinds -> HEK event type.
HEK_TYPES = {"region": "AR", "jet": "CJ", "emergence": "EF", "emergence_warning": "EF"}
VOE_NS = "http://www.ivoa.net/xml/VOEvent/v2.0"
_XSI = "http://www.w3.org/2001/XMLSchema-instance"
_FRM_SUFFIX = {"AR": "regions", "CJ": "jets", "EF": "emergence"}
# (observatory, instrument, channel, mean wavelength, unit) of the data each event type comes from.
_OBS = {"AR": ("SDO", "HMI", "6173", 6173.0), "EF": ("SDO", "HMI", "6173", 6173.0), "CJ": ("SDO", "AIA", "304", 304.0)}
_CONCEPT_TEXT = {"AR": "active region", "CJ": "coronal jet", "EF": "emerging flux"}
# A jet's base is located to about two pooled AIA pixels (1.8" each).
_JET_ERROR_ARCSEC = 3.6
# A detected region's centroid, when its payload predates per-pixel errors: one binned pixel near disk centre.
_REGION_ERROR_DEG = 0.5
# Half the side of an emergence patch (85 px at 1.4 Mm/px), in heliographic degrees.
_PATCH_HALF_DEG = math.degrees(PATCH_SIZE * MM_PER_PX * 1e6 / 2 / RSUN_REF_M)
# SDO (geosynchronous, <= 42,200 km from the geocentre) sees the Sun <= 58" off the geocentric direction.
_PARALLAX_DEG = 58.0 / 3600
_SOLAR_RADIUS_ARCSEC = 960.0
_UHEM_KM2 = 2 * math.pi * (RSUN_REF_M / 1e3) ** 2 * 1e-6


@dataclass(frozen=True)
class ExportSettings:
    """Who the community formats say made the events (the ``[exports]`` configuration table).

    Parameters
    ----------
    model_id : str
        The forecast method's short name at the CCMC Flare Scoreboard (``methodname_version``).
    frm_name : str
        Prefix of the HEK ``FRM_Name`` (``<frm_name>-regions``, ``-jets``, ``-emergence``) and the
        resource of the IVORNs.
    frm_version : str
        ``FRM_VersionNumber`` (the installed heliowatch version).
    frm_institute, frm_contact, frm_url : str
        HEK ``FRM_Institute``, ``FRM_Contact`` and ``FRM_URL``.
    ivorn_authority : str
        ``ivo://<authority>/...`` of the VOEvent IVORNs.
    test : bool
        Events of a replay: VOEvent ``role="test"`` and HEK ``Event_TestFlag``, so no broker
        or archive takes them for the live Sun.
    """

    model_id: str = "heliowatch_0.1"
    frm_name: str = "heliowatch"
    frm_version: str = "0.1.0"
    frm_institute: str = "heliowatch"
    frm_contact: str = "heliowatch@localhost"
    frm_url: str = "http://localhost/heliowatch"
    ivorn_authority: str = "heliowatch.localhost"
    test: bool = False


@functools.cache
def hek_spec() -> dict[str, Any]:
    """The vendored HEK field table (common and per-type required/optional fields, reserved ``KB_*``)."""
    text = resources.files("heliowatch.pipelines").joinpath("data/formats/hek_required_fields.json").read_text()
    spec: dict[str, Any] = json.loads(text)
    return spec


def _hek_time(text: str) -> str:
    """HEK's time format: UTC to the second, no zone suffix."""
    return parse_iso(text).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _local_id(text: str) -> str:
    """A fragment safe in an IVORN and a file name (stable: the same text gives the same id)."""
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", text).strip("-")


def _compact(t: str) -> str:
    return parse_iso(t).strftime("%Y%m%dT%H%M%S")


def hgs_extent(lat: np.ndarray, lon: np.ndarray) -> dict[str, list[float]]:
    """Bounding box and pixel size of a region's pixels, in Stonyhurst degrees.

    Parameters
    ----------
    lat, lon : ndarray
        Latitude and longitude of the region's pixels on a north-up grid (2-D, NaN outside
        the region or off the disk).

    Returns
    -------
    dict
        ``hgs_bbox``: ``[lon_min, lat_min, lon_max, lat_max]``; ``hgs_error_deg``:
        ``[lon, lat]`` size of one pixel there (the centroid's uncertainty).
    """
    la, lo = np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)
    ok = np.isfinite(la) & np.isfinite(lo)
    if not ok.any():
        return {"hgs_bbox": [], "hgs_error_deg": []}
    bbox = [float(np.min(lo[ok])), float(np.min(la[ok])), float(np.max(lo[ok])), float(np.max(la[ok]))]
    steps = []
    for arr, axis in ((lo, 1), (la, 0)):
        d = np.abs(np.diff(arr, axis=axis)) if arr.shape[axis] > 1 else np.array([])
        d = d[np.isfinite(d)]
        steps.append(float(np.median(d)) if d.size else _REGION_ERROR_DEG)
    return {"hgs_bbox": [round(v, 3) for v in bbox], "hgs_error_deg": [round(max(s, 1e-3), 4) for s in steps]}


@dataclass
class _Where:
    """An event's position in one of HEK's coordinate systems, with errors and bounding box."""

    sys: str  # UTC-HGS-TOPO | UTC-HPC-TOPO | UTC-HGC-TOPO
    c1: float
    c2: float
    e1: float
    e2: float
    bbox: tuple[float, float, float, float]  # C1LL, C2LL, C1UR, C2UR

    @property
    def unit(self) -> str:
        return "arcseconds" if self.sys == "UTC-HPC-TOPO" else "degrees"


def _require(p: dict[str, Any], key: str, kind: str) -> Any:
    v = p.get(key)
    if v is None or v == "":
        msg = f"{kind} payload has no {key!r}: not a {kind} product record"
        raise ValueError(msg)
    return v


def _hgs_box(lat: float, lon: float, half_lat: float, half_lon: float) -> tuple[float, float, float, float]:
    return (lon - half_lon, lat - half_lat, lon + half_lon, lat + half_lat)


def _no_class(p: dict[str, Any]) -> str:
    """Why a region payload has no Mt. Wilson class (then no ``AR_MtWilsonCls`` is exported)."""
    outcome = p.get("outcome")
    return {"no-spot-group": "none (no spot group)", "limb": "none (beyond the limb guard)"}.get(str(outcome), "unknown")


def _region(p: dict[str, Any]) -> dict[str, Any]:
    t = str(_require(p, "t_rec_utc", "region"))
    lat, lon = float(_require(p, "hgs_lat", "region")), float(_require(p, "hgs_lon", "region"))
    track = p.get("track_id")
    if track is None:
        msg = "region payload has no 'track_id': its events would have no identity across frames"
        raise ValueError(msg)
    e1, e2 = (p.get("hgs_error_deg") or [_REGION_ERROR_DEG, _REGION_ERROR_DEG])[:2]
    if p.get("hgs_bbox"):
        bbox = tuple(float(v) for v in p["hgs_bbox"][:4])
    else:
        # Older payloads: the box of a circular cap of the region's area (area_uhem 1e-6 of a hemisphere).
        cap = math.degrees(math.acos(1 - min(float(p.get("area_uhem") or 0.0), 1e6) * 1e-6))
        bbox = _hgs_box(lat, lon, cap, cap / max(math.cos(math.radians(lat)), 0.1))
    name = f"NOAA {p['noaa_ar']}" if p.get("noaa_ar") else f"track {track}"
    extra: dict[str, Any] = {
        "AR_NOAANum": p.get("noaa_ar"),
        "AR_MtWilsonCls": p.get("mtwilson") or None,
        "AR_McIntoshCls": (p.get("srs") or {}).get("mcintosh"),
    }
    if _finite(p.get("area_uhem")):
        extra["Area_AtDiskCenter"], extra["Area_Unit"] = round(float(p["area_uhem"]) * _UHEM_KM2, 1), "km2"
    return {
        "start": t,
        "end": t,
        "peak": None,
        "expires": None,
        # The frame time and the tracker's id name the event; NOAA numbers come and go with the SRS feed.
        "identity": f"{_compact(t)}-track{track}",
        "where": _Where("UTC-HGS-TOPO", lon, lat, float(e1), float(e2), bbox),  # type: ignore[arg-type]
        "probability": p.get("confidence"),
        "param_set": str(p.get("model") or "detector and classifier not recorded"),
        "description": (
            f"active region {name}, Mt. Wilson class {p.get('mtwilson') or _no_class(p)},"
            f" area {p.get('area_uhem')} uhem, HGS {lat:+.1f} {lon:+.1f}"
        ),
        "extra": extra,
        "synthetic": False,
    }


def _jet(p: dict[str, Any]) -> dict[str, Any]:
    start = str(_require(p, "start_utc", "jet"))
    key = str(_require(p, "key", "jet"))
    x, y = (float(v) for v in _require(p, "base_hpc_arcsec", "jet")[:2])
    length = float(p.get("length_arcsec") or 0.0)
    pa = math.radians(float(p.get("direction_deg") or 0.0))
    # Position angle runs from north through east; helioprojective x grows to the west.
    tip = (x - length * math.sin(pa), y + length * math.cos(pa))
    e = _JET_ERROR_ARCSEC
    bbox = (min(x, tip[0]) - e, min(y, tip[1]) - e, max(x, tip[0]) + e, max(y, tip[1]) + e)
    raw = p.get("model")
    model: dict[str, Any] = raw if isinstance(raw, dict) else {}
    names = ",".join(f"{k}={v.get('name', v) if isinstance(v, dict) else v}" for k, v in sorted(model.items()))
    return {
        "start": start,
        "end": str(p.get("end_utc") or start),
        "peak": p.get("peak_utc"),
        "expires": None,
        "identity": key,
        "where": _Where("UTC-HPC-TOPO", x, y, e, e, bbox),
        "probability": p.get("probability"),
        "param_set": f"detectors={p.get('detector') or '+'.join(p.get('detectors') or [])}; models: {names or 'none'}",
        "description": (
            f"coronal jet at {p.get('position') or f'({x:+.0f}, {y:+.0f}) arcsec'}, position angle"
            f" {p.get('direction_deg')} deg, length {p.get('length_arcsec')} arcsec, speed {p.get('speed_km_s')} km/s"
        ),
        "extra": {},
        "synthetic": bool(p.get("synthetic_model")),
    }


def _emergence(p: dict[str, Any]) -> dict[str, Any]:
    t = str(p.get("time_utc") or _require(p, "t_mid_utc", "emergence warning"))
    ident = str(_require(p, "id", "emergence warning"))
    lat = float(_require(p, "hgs_lat", "emergence warning"))
    half_lon = _PATCH_HALF_DEG / max(math.cos(math.radians(lat)), 0.1)
    if _finite(p.get("hgs_lon")):
        lon = float(p["hgs_lon"])
        where = _Where("UTC-HGS-TOPO", lon, lat, half_lon, _PATCH_HALF_DEG, _hgs_box(lat, lon, _PATCH_HALF_DEG, half_lon))
    else:  # the patch is tracked in Carrington longitude; Stonyhurst is missing when the frame lacked L0
        lon = float(_require(p, "carrington_lon", "emergence warning"))
        where = _Where("UTC-HGC-TOPO", lon, lat, half_lon, _PATCH_HALF_DEG, _hgs_box(lat, lon, _PATCH_HALF_DEG, half_lon))
    end = str(p.get("end_utc") or t)
    return {
        "start": t,
        "end": end,
        "peak": None,
        "expires": end,
        "identity": ident,
        "where": where,
        "probability": p.get("probability"),
        "param_set": (
            f"method={p.get('method')}; threshold={p.get('threshold')}; windows_above={p.get('windows_above')};"
            f" patch={p.get('patch_id')}"
        ),
        "description": (
            f"flux emergence expected {p.get('lead_time_class') or 'within 24 h'} in patch {p.get('patch_id')}"
            f" ({p.get('position') or f'HGS {lat:+.1f}'}), P = {p.get('probability')}"
        ),
        "extra": {},
        "synthetic": bool(p.get("synthetic_model")),
    }


_ADAPTERS = {"AR": _region, "CJ": _jet, "EF": _emergence}


def _type_of(kind: str) -> str:
    if kind not in HEK_TYPES:
        msg = f"no HEK event type for product {kind!r} (exportable: {', '.join(HEK_TYPES)})"
        raise ValueError(msg)
    return HEK_TYPES[kind]


def event_ivorn(kind: str, p: dict[str, Any], settings: ExportSettings | None = None) -> str:
    """The event's IVORN, ``ivo://<authority>/<frm_name>#<type>-<identity>`` (stable across reruns)."""
    s = settings or ExportSettings()
    code = _type_of(kind)
    return f"ivo://{s.ivorn_authority}/{_local_id(s.frm_name)}#{code}-{_local_id(_ADAPTERS[code](p)['identity'])}"


def hek_event(
    kind: str, p: dict[str, Any], settings: ExportSettings | None = None, *, date_run: str | None = None
) -> dict[str, Any]:
    """The HEK fields of one product event.

    Parameters
    ----------
    kind : str
        ``region``, ``jet``, ``emergence`` or ``emergence_warning`` (a record kind of the store).
    p : dict
        The product payload, as the products store holds it.
    settings : ExportSettings or None
        Who made the event (defaults: the shipped configuration).
    date_run : str or None
        ``FRM_DateRun`` (ISO UTC); now by default.

    Returns
    -------
    dict
        Field name (``VOEvent_Spec.txt`` spelling) -> value; no ``KB_*`` field, no empty value.

    Raises
    ------
    ValueError
        For a kind HEK has no type for, or a payload that lacks the event's time or identity.
    """
    s = settings or ExportSettings()
    code = _type_of(kind)
    a = _ADAPTERS[code](p)
    w: _Where = a["where"]
    obs, inst, chan, wavel = _OBS[code]
    concept = hek_spec()["types"][code]["concept"]
    ev: dict[str, Any] = {
        "Event_Type": f"{code}: {concept}",
        "Event_StartTime": _hek_time(a["start"]),
        "Event_EndTime": _hek_time(a["end"]),
        "Event_CoordSys": w.sys,
        "Event_CoordUnit": w.unit,
        "Event_Coord1": round(w.c1, 3),
        "Event_Coord2": round(w.c2, 3),
        "Event_C1Error": round(w.e1, 4),
        "Event_C2Error": round(w.e2, 4),
        "BoundBox_C1LL": round(w.bbox[0], 3),
        "BoundBox_C2LL": round(w.bbox[1], 3),
        "BoundBox_C1UR": round(w.bbox[2], 3),
        "BoundBox_C2UR": round(w.bbox[3], 3),
        "FRM_Name": f"{s.frm_name}-{_FRM_SUFFIX[code]}",
        "FRM_Identifier": s.frm_name,
        "FRM_Institute": s.frm_institute,
        "FRM_HumanFlag": "F",
        "FRM_ParamSet": a["param_set"],
        "FRM_DateRun": _hek_time(date_run or iso_utc(SystemClock().now())),
        "FRM_Contact": s.frm_contact,
        "FRM_URL": s.frm_url,
        "FRM_VersionNumber": s.frm_version,
        "OBS_Observatory": obs,
        "OBS_Instrument": inst,
        "OBS_ChannelID": chan,
        "OBS_MeanWavel": wavel,
        "OBS_WavelUnit": "Angstroms",
        "Event_TestFlag": "True" if s.test else "False",
        "Event_Description": a["description"],
    }
    if a["peak"]:
        ev["Event_PeakTime"] = _hek_time(a["peak"])
    if a["expires"]:
        ev["Event_Expires"] = _hek_time(a["expires"])
    if _finite(a["probability"]):
        ev["Event_Probability"] = round(float(a["probability"]), 4)
    if a["synthetic"]:
        ev["FRM_SpecificID"] = "model trained on synthetic data"
    ev.update({k: v for k, v in a["extra"].items() if v is not None and v != ""})
    return ev


def check_hek(ev: dict[str, Any]) -> list[str]:
    """Problems of a HEK event against the vendored table: missing or empty required fields,
    reserved ``KB_*`` fields set, fields the table does not know. Empty when it conforms."""
    spec = hek_spec()
    code = str(ev.get("Event_Type", "")).split(":", 1)[0]
    if code not in spec["types"]:
        return [f"Event_Type {ev.get('Event_Type')!r} is not one of {', '.join(spec['types'])}"]
    t = spec["types"][code]
    required = [*spec["common"]["required"], *t["required"]]
    known = {*required, *spec["common"]["optional"], *t["optional"]}
    problems = []
    for name in required:
        v = ev.get(name)
        if v is None or (isinstance(v, str) and not v.strip()) or (isinstance(v, float) and not math.isfinite(v)):
            problems.append(f"{name}: required, missing or empty")
    problems += [f"{name}: reserved for the HEK archivist" for name in ev if name in spec["reserved"]]
    problems += [f"{name}: not a field of {code} events" for name in ev if name not in known and name not in spec["reserved"]]
    return problems


def _sky(w: _Where, t: str) -> tuple[float, float, float]:
    """Geocentric RA, Dec and an error radius (deg) of an event's solar position."""
    obstime = parse_iso(t).replace(tzinfo=None)
    if w.sys == "UTC-HPC-TOPO":
        c = SkyCoord(
            w.c1 * u.arcsec, w.c2 * u.arcsec, distance=1 * u.AU, frame=Helioprojective(observer="earth", obstime=obstime)
        )
        err = max(w.e1, w.e2) / 3600
    else:
        lon = w.c1
        if w.sys == "UTC-HGC-TOPO":  # Carrington -> Stonyhurst through the disk centre's Carrington longitude
            lon = w.c1 - float(sun.L0(obstime).deg)
        c = SkyCoord(lon * u.deg, w.c2 * u.deg, frame=HeliographicStonyhurst(obstime=obstime))
        # A heliographic degree spans at most R_sun * pi / 180 on the sky (at disk centre).
        err = max(w.e1, w.e2) * math.radians(1) * _SOLAR_RADIUS_ARCSEC / 3600
    g = c.transform_to(GCRS(obstime=obstime))
    return float(g.ra.deg), float(g.dec.deg), math.hypot(err, _PARALLAX_DEG)


def _param(parent: ET.Element, name: str, value: Any, unit: str | None = None) -> None:
    if value is None or value == "":
        return
    attrs = {"name": name, "value": str(value)}
    if isinstance(value, bool):
        attrs["value"] = "true" if value else "false"
    elif isinstance(value, int):
        attrs["dataType"] = "int"
    elif isinstance(value, float):
        if not math.isfinite(value):
            return
        attrs["dataType"] = "float"
    if unit:
        attrs["unit"] = unit
    ET.SubElement(parent, "Param", attrs)


def voevent_xml(kind: str, p: dict[str, Any], settings: ExportSettings | None = None, *, date_run: str | None = None) -> str:
    """The VOEvent 2.0 packet of one product event (valid against the IVOA VOEvent 2.0 schema).

    ``role`` is ``test`` for a replay's events, ``prediction`` for emergence warnings and
    ``observation`` for detections. Parameters as :func:`hek_event`.
    """
    s = settings or ExportSettings()
    hek = hek_event(kind, p, s, date_run=date_run)
    code = _type_of(kind)
    a = _ADAPTERS[code](p)
    w: _Where = a["where"]
    role = "test" if s.test else ("prediction" if code == "EF" else "observation")
    ET.register_namespace("voe", VOE_NS)
    ET.register_namespace("xsi", _XSI)
    root = ET.Element(
        f"{{{VOE_NS}}}VOEvent",
        {
            "ivorn": event_ivorn(kind, p, s),
            "role": role,
            "version": "2.0",
            f"{{{_XSI}}}schemaLocation": f"{VOE_NS} http://www.ivoa.net/xml/VOEvent/VOEvent-v2.0.xsd",
        },
    )
    who = ET.SubElement(root, "Who")
    ET.SubElement(who, "AuthorIVORN").text = f"ivo://{s.ivorn_authority}/{_local_id(s.frm_name)}"
    ET.SubElement(who, "Date").text = hek["FRM_DateRun"]
    author = ET.SubElement(who, "Author")
    ET.SubElement(author, "shortName").text = s.frm_name
    ET.SubElement(author, "title").text = s.frm_institute
    ET.SubElement(author, "contactEmail").text = s.frm_contact

    what = ET.SubElement(root, "What")
    fields = ET.SubElement(what, "Group", {"name": "HEK", "type": f"{hek['Event_Type']} (LMSAL VOEvent_Spec.txt fields)"})
    for name, value in hek.items():
        _param(fields, name, value)
    solar = ET.SubElement(what, "Group", {"name": "solar_position", "type": "heliographic and helioprojective coordinates"})
    _param(solar, "hgs_lat", p.get("hgs_lat"), "deg")
    _param(solar, "hgs_lon", p.get("hgs_lon"), "deg")
    _param(solar, "carrington_lon", p.get("carrington_lon", p.get("hgc_lon")), "deg")
    hpc = p.get("base_hpc_arcsec")
    if isinstance(hpc, list | tuple) and len(hpc) == 2:
        _param(solar, "hpc_x", hpc[0], "arcsec")
        _param(solar, "hpc_y", hpc[1], "arcsec")
    ET.SubElement(what, "Description").text = hek["Event_Description"]

    ra, dec, err = _sky(w, a["start"])
    ww = ET.SubElement(root, "WhereWhen")
    loc = ET.SubElement(ww, "ObsDataLocation")
    ET.SubElement(loc, "ObservatoryLocation", {"id": hek["OBS_Observatory"]})
    obs = ET.SubElement(loc, "ObservationLocation")
    ET.SubElement(obs, "AstroCoordSystem", {"id": "UTC-ICRS-GEO"})
    coords = ET.SubElement(obs, "AstroCoords", {"coord_system_id": "UTC-ICRS-GEO"})
    ET.SubElement(ET.SubElement(ET.SubElement(coords, "Time", {"unit": "s"}), "TimeInstant"), "ISOTime").text = hek[
        "Event_StartTime"
    ]
    pos = ET.SubElement(coords, "Position2D", {"unit": "deg"})
    ET.SubElement(pos, "Name1").text = "RA"
    ET.SubElement(pos, "Name2").text = "Dec"
    v2 = ET.SubElement(pos, "Value2")
    ET.SubElement(v2, "C1").text = f"{ra:.5f}"
    ET.SubElement(v2, "C2").text = f"{dec:.5f}"
    ET.SubElement(pos, "Error2Radius").text = f"{err:.5f}"
    ET.SubElement(ww, "Description").text = (
        f"geocentric sky position of the event; solar position {hek['Event_CoordSys']}"
        f" ({hek['Event_Coord1']}, {hek['Event_Coord2']}) {hek['Event_CoordUnit']}"
    )

    how = ET.SubElement(root, "How")
    ET.SubElement(how, "Description").text = (
        f"{hek['FRM_Name']} {s.frm_version} on {hek['OBS_Observatory']}/{hek['OBS_Instrument']} {hek['OBS_ChannelID']}"
        f"; {hek['FRM_ParamSet']}"
    )
    ET.SubElement(how, "Reference", {"uri": s.frm_url, "type": "url"})

    why_attrs = {"expires": hek["Event_Expires"]} if hek.get("Event_Expires") else {}
    why = ET.SubElement(root, "Why", why_attrs)
    inference = ET.SubElement(
        why, "Inference", {"probability": f"{hek['Event_Probability']:.4f}"} if "Event_Probability" in hek else {}
    )
    ET.SubElement(inference, "Concept").text = _CONCEPT_TEXT[code]
    ET.SubElement(inference, "Name").text = hek["Event_Type"]
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


def event_files(
    kind: str, p: dict[str, Any], settings: ExportSettings | None = None, *, date_run: str | None = None
) -> list[tuple[Path, bytes]]:
    """``[(events/<day>/<id>.hek.json, ...), (events/<day>/<id>.voevent.xml, ...)]`` of one event.

    The paths are relative to the output directory and named after the IVORN's fragment, so
    a rerun rewrites the same two files.
    """
    s = settings or ExportSettings()
    code = _type_of(kind)
    a = _ADAPTERS[code](p)
    stem = f"{code}-{_local_id(a['identity'])}"
    day = Path("events") / _hek_time(a["start"])[:10]
    hek = hek_event(kind, p, s, date_run=date_run)
    return [
        (day / f"{stem}.hek.json", jsonio.dumps(hek, indent=2).encode()),
        (day / f"{stem}.voevent.xml", voevent_xml(kind, p, s, date_run=hek["FRM_DateRun"]).encode()),
    ]


def write_event(kind: str, p: dict[str, Any], out_dir: Path, settings: ExportSettings | None = None) -> list[Path]:
    """Write the HEK JSON and VOEvent of a (stored) product event under ``out_dir``; returns the paths."""
    paths = []
    for rel, data in event_files(kind, p, settings):
        path = out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        tmp.write_bytes(data)
        tmp.replace(path)
        paths.append(path)
    return paths
