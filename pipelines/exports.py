"""Community event formats: HEK-style JSON and VOEvent 2.0 XML for region, emergence and jet events.

HEK fields follow the HEK/SolarSoft event specification (``event_type``, ``event_starttime``,
``event_coordsys``, ``frm_name``, ...): ``AR`` for active regions, ``EF`` (emerging flux)
for emergence warnings, ``CJ`` (coronal jet) for jets. VOEvent 2.0 (IVOA) documents carry the
same content in ``Who``/``What``/``WhereWhen``/``How``/``Why`` for brokers that speak it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from heliowatch.models.core import jsonio
from heliowatch.models.core.times import SystemClock, iso_utc

__all__ = ["HEK_TYPES", "hek_event", "voevent_xml", "write_event"]

HEK_TYPES = {"region": "AR", "emergence": "EF", "jet": "CJ"}
_INSTRUMENT = {"region": ("SDO", "HMI", "6173"), "emergence": ("SDO", "HMI", "6173"), "jet": ("SDO", "AIA", "304")}
VOE_NS = "http://www.ivoa.net/xml/VOEvent/v2.0"


def hek_event(kind: str, p: dict[str, Any], *, version: str) -> dict[str, Any]:
    """A HEK-style event dictionary from a product payload.

    ``p`` needs ``time_utc`` and ``hgs_lat``/``hgs_lon``; optional ``end_utc``, ``probability``,
    ``mtwilson``, ``noaa_ar``, ``id``.
    """
    if kind not in HEK_TYPES:
        msg = f"no HEK event type for product {kind!r} (exportable: {', '.join(HEK_TYPES)})"
        raise ValueError(msg)
    obs, inst, chan = _INSTRUMENT[kind]
    lon, lat = p.get("hgs_lon"), p.get("hgs_lat")
    on_disk = isinstance(lon, int | float) and isinstance(lat, int | float) and lon == lon and lat == lat
    if on_disk:
        coords = {"event_coordsys": "UTC-HGS-TOPO", "event_coordunit": "degrees", "event_coord1": lon, "event_coord2": lat}
    else:
        # Beyond the limb there is no Stonyhurst position: HEK takes helioprojective arcsec.
        x, y = p.get("base_hpc_arcsec") or (None, None)
        coords = {"event_coordsys": "UTC-HPC-TOPO", "event_coordunit": "arcseconds", "event_coord1": x, "event_coord2": y}
    ev: dict[str, Any] = {
        "event_type": HEK_TYPES[kind],
        "event_starttime": p["time_utc"],
        "event_endtime": p.get("end_utc", p["time_utc"]),
        **coords,
        "event_probability": p.get("probability"),
        "frm_name": "heliowatch",
        "frm_identifier": f"heliowatch {version}",
        "frm_institute": p.get("institute", "heliowatch"),
        "frm_humanflag": "F",
        "frm_daterun": iso_utc(SystemClock().now())[:19],
        "obs_observatory": obs,
        "obs_instrument": inst,
        "obs_channelid": chan,
        "kb_archivid": f"ivo://heliowatch/{kind}#{p.get('id', p['time_utc'])}",
    }
    if p.get("peak_utc"):
        ev["event_peaktime"] = p["peak_utc"]
    if kind == "jet":
        if p.get("base_hpc_arcsec"):
            ev["hpc_x"], ev["hpc_y"] = p["base_hpc_arcsec"]
        if p.get("carrington_lon") is not None:
            ev["hgc_x"], ev["hgc_y"] = p["carrington_lon"], lat if on_disk else None
        ev["event_description"] = (
            f"coronal jet, PA {p.get('direction_deg')} deg, length {p.get('length_arcsec')} arcsec,"
            f" speed {p.get('speed_km_s')} km/s; detectors {p.get('detector')}"
        )
        ev["obs_meanwavel"], ev["obs_wavelunit"] = 304, "Angstroms"
    if kind == "emergence":
        if p.get("carrington_lon") is not None:
            ev["hgc_x"], ev["hgc_y"] = p["carrington_lon"], lat
        ev["event_description"] = (
            f"flux emergence expected within 24 h ({p.get('lead_time_class', '?')}); method {p.get('method')},"
            f" patch {p.get('patch_id')}"
        )
        ev["obs_meanwavel"], ev["obs_wavelunit"] = 6173, "Angstroms"
    if kind == "region":
        ev["ar_mtwilsoncls"] = p.get("mtwilson")
        ev["ar_noaanum"] = p.get("noaa_ar")
    if p.get("synthetic_model"):
        ev["frm_specificid"] = "model trained on synthetic data"
    return ev


def voevent_xml(kind: str, p: dict[str, Any], *, version: str) -> str:
    """A VOEvent 2.0 document for the same event."""
    hek = hek_event(kind, p, version=version)
    ET.register_namespace("voe", VOE_NS)
    root = ET.Element(f"{{{VOE_NS}}}VOEvent", {"ivorn": hek["kb_archivid"], "role": "observation", "version": "2.0"})
    who = ET.SubElement(root, "Who")
    ET.SubElement(who, "AuthorIVORN").text = "ivo://heliowatch"
    ET.SubElement(who, "Date").text = hek["frm_daterun"]
    what = ET.SubElement(root, "What")
    for name in ("event_type", "event_probability", "ar_mtwilsoncls", "ar_noaanum", "obs_instrument", "obs_channelid"):
        if hek.get(name) is not None:
            ET.SubElement(what, "Param", {"name": name, "value": str(hek[name])})
    ww = ET.SubElement(root, "WhereWhen")
    loc = ET.SubElement(ET.SubElement(ww, "ObsDataLocation"), "ObservationLocation")
    ET.SubElement(loc, "AstroCoordSystem", {"id": hek["event_coordsys"]})
    coords = ET.SubElement(loc, "AstroCoords", {"coord_system_id": hek["event_coordsys"]})
    ET.SubElement(ET.SubElement(ET.SubElement(coords, "Time"), "TimeInstant"), "ISOTime").text = hek["event_starttime"]
    unit = "deg" if hek["event_coordunit"] == "degrees" else "arcsec"
    pos = ET.SubElement(ET.SubElement(coords, "Position2D", {"unit": unit}), "Value2")
    ET.SubElement(pos, "C1").text = f"{float(hek['event_coord1']):.3f}"
    ET.SubElement(pos, "C2").text = f"{float(hek['event_coord2']):.3f}"
    how = ET.SubElement(root, "How")
    ET.SubElement(
        how, "Description"
    ).text = f"heliowatch {version} {kind} detection on {hek['obs_observatory']}/{hek['obs_instrument']}"
    why = ET.SubElement(root, "Why")
    ET.SubElement(why, "Concept").text = {"AR": "active region", "EF": "emerging flux", "CJ": "coronal jet"}[hek["event_type"]]
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


def write_event(kind: str, p: dict[str, Any], out_dir: Path, *, version: str) -> list[Path]:
    """Write ``<kind>-<time>.hek.json`` and ``.voevent.xml``; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{kind}-{str(p['time_utc']).replace(':', '').replace('-', '')}-{p.get('id', 0)}"
    j = out_dir / f"{stem}.hek.json"
    j.write_text(jsonio.dumps(hek_event(kind, p, version=version), indent=2))
    x = out_dir / f"{stem}.voevent.xml"
    x.write_text(voevent_xml(kind, p, version=version))
    return [j, x]
