"""Community exchange formats: CCMC Flare Scoreboard submissions, HEK events, VOEvent 2.0 packets,
and the differential rotation the trackers use (sunpy's)."""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
import xmlschema
from astropy.coordinates import GCRS, SkyCoord
from sunpy.coordinates import HeliographicStonyhurst
from sunpy.sun.models import differential_rotation

from heliowatch.daemon.config import load_config
from heliowatch.daemon.errors import ConfigError
from heliowatch.daemon.wiring import export_settings
from heliowatch.models.flares.forecaster import FullDiskForecast, RegionForecast
from heliowatch.models.regions.detect import DetectedRegion
from heliowatch.models.regions.tracking import Tracker, match_position
from heliowatch.pipelines.exports import (
    VOE_NS,
    ExportSettings,
    check_hek,
    event_files,
    event_ivorn,
    hek_event,
    hek_spec,
    hgs_extent,
    voevent_xml,
    write_event,
)
from heliowatch.pipelines.flare_exports import CCMC_COLUMNS, export_files, write_exports

FORMATS = Path(__file__).resolve().parents[2] / "pipelines" / "data" / "formats"
SETTINGS = ExportSettings(
    model_id="heliowatch_0.1",
    frm_contact="ops@example.org",
    frm_url="https://example.org/heliowatch",
    frm_institute="Example Observatory",
    ivorn_authority="heliowatch.example.org",
)

# Payloads as the products store holds them (JSON round trip: lists, not tuples; None for NaN).
REGION = {
    "id": 2,  # the detection's index in its frame: never part of an event's identity
    "track_id": 7,
    "t_rec_utc": "2011-02-15T02:00:00Z",
    "hgs_lat": -20.2,
    "hgs_lon": 12.8,
    "hgc_lon": 34.1,
    "area_uhem": 450.0,
    "confidence": 0.91,
    "mtwilson": "beta-gamma-delta",
    "noaa_ar": 11158,
    "harpnum": 377,
    "srs": {"mcintosh": "Ekc", "mtwilson": "beta-gamma"},
    "model": "detector: smart; classifier: rules",
    "hgs_bbox": [8.1, -24.0, 17.5, -16.9],
    "hgs_error_deg": [0.12, 0.11],
}
JET = {
    "key": "jet-20110215T015200-m650p300",
    "start_utc": "2011-02-15T01:52:00.000Z",
    "peak_utc": "2011-02-15T01:54:24.000Z",
    "end_utc": "2011-02-15T01:57:12.000Z",
    "base_hpc_arcsec": [-980.0, 300.0],  # beyond the limb: no Stonyhurst position
    "hgs_lat": None,
    "hgs_lon": None,
    "carrington_lon": None,
    "direction_deg": 60.0,
    "length_arcsec": 40.0,
    "speed_km_s": 150.0,
    "probability": 0.93,
    "detector": "baseline+convlstm",
    "model": {"encoder": {"name": "jet-encoder"}, "head": {"name": "jet-head"}},
    "synthetic_model": True,
}
WARNING = {
    "id": "c120-m15-20110214T230000Z",
    "patch_id": "c120-m15",
    "t_mid_utc": "2011-02-14T23:00:00Z",
    "time_utc": "2011-02-14T23:00:00Z",
    "end_utc": "2011-02-15T23:00:00Z",
    "hgs_lat": -15.0,
    "hgs_lon": -30.2,
    "carrington_lon": 120.0,
    "probability": 0.82,
    "method": "mtot-lda",
    "threshold": 0.75,
    "windows_above": 1,
    "lead_time_class": "within 24 h (8-24 h)",
    "synthetic_model": True,
}
EVENTS = [("region", REGION, "AR"), ("jet", JET, "CJ"), ("emergence_warning", WARNING, "EF")]


@pytest.fixture(scope="module")
def xsd() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(FORMATS / "VOEvent-v2.0.xsd"))


def _root(xml: str) -> ET.Element:
    return ET.fromstring(xml.encode())


# -- HEK ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("kind", "payload", "code"), EVENTS)
def test_hek_event_has_every_required_field_of_its_type_and_no_reserved_one(kind: str, payload: dict, code: str) -> None:
    stored = json.loads(json.dumps(payload))
    ev = hek_event(kind, stored, SETTINGS)
    spec = hek_spec()
    required = spec["common"]["required"] + spec["types"][code]["required"]
    assert len(required) >= 26
    for name in required:
        assert ev.get(name) not in (None, ""), name
    assert not [k for k in ev if k.upper().startswith("KB_")]
    assert check_hek(ev) == []
    assert ev["Event_Type"] == f"{code}: {spec['types'][code]['concept']}"
    assert ev["FRM_Contact"] == "ops@example.org" and ev["FRM_URL"] == "https://example.org/heliowatch"
    assert ev["FRM_Institute"] == "Example Observatory" and ev["FRM_Name"].startswith("heliowatch-")
    # The position lies inside its bounding box, with positive errors.
    assert ev["BoundBox_C1LL"] <= ev["Event_Coord1"] <= ev["BoundBox_C1UR"]
    assert ev["BoundBox_C2LL"] <= ev["Event_Coord2"] <= ev["BoundBox_C2UR"]
    assert ev["Event_C1Error"] > 0 and ev["Event_C2Error"] > 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", ev["Event_StartTime"])
    assert ev["Event_EndTime"] >= ev["Event_StartTime"]


def test_hek_fields_carry_each_products_own_values() -> None:
    ar = hek_event("region", REGION, SETTINGS)
    assert (ar["Event_CoordSys"], ar["Event_CoordUnit"], ar["Event_Coord1"], ar["Event_Coord2"]) == (
        "UTC-HGS-TOPO",
        "degrees",
        12.8,
        -20.2,
    )
    assert ar["AR_NOAANum"] == 11158 and ar["AR_MtWilsonCls"] == "beta-gamma-delta" and ar["AR_McIntoshCls"] == "Ekc"
    assert [ar[f"BoundBox_{c}"] for c in ("C1LL", "C2LL", "C1UR", "C2UR")] == REGION["hgs_bbox"]
    assert (ar["Event_C1Error"], ar["Event_C2Error"]) == (0.12, 0.11)
    assert (ar["OBS_Instrument"], ar["OBS_ChannelID"], ar["Event_Probability"]) == ("HMI", "6173", 0.91)
    cj = hek_event("jet", JET, SETTINGS)
    assert (cj["Event_CoordSys"], cj["Event_Coord1"], cj["Event_Coord2"]) == ("UTC-HPC-TOPO", -980.0, 300.0)
    assert cj["Event_PeakTime"] == "2011-02-15T01:54:24" and cj["OBS_ChannelID"] == "304"
    # The jet runs north-east (PA 60 deg): its tip lies east (smaller x) and north of the base.
    assert cj["BoundBox_C1LL"] < -980.0 - 30 and cj["BoundBox_C2UR"] > 300.0 + 15
    assert cj["FRM_SpecificID"] == "model trained on synthetic data"
    ef = hek_event("emergence_warning", WARNING, SETTINGS)
    assert ef["Event_Expires"] == "2011-02-15T23:00:00" and ef["Event_Probability"] == 0.82
    assert ef["BoundBox_C2UR"] - ef["BoundBox_C2LL"] == pytest.approx(9.8, abs=0.2)  # the 10-degree patch


def test_hek_event_refuses_a_payload_without_the_events_identity() -> None:
    with pytest.raises(ValueError, match="no 't_rec_utc'"):
        hek_event("region", {k: v for k, v in REGION.items() if k != "t_rec_utc"})
    with pytest.raises(ValueError, match="no 'track_id'"):
        hek_event("region", {**REGION, "track_id": None})
    with pytest.raises(ValueError, match="no HEK event type"):
        hek_event("flare_forecast", REGION)


def test_check_hek_names_what_is_wrong() -> None:
    ev = hek_event("region", REGION, SETTINGS)
    bad = {**ev, "FRM_Contact": " ", "KB_ArchivID": "ivo://x", "Made_Up": 1}
    del bad["BoundBox_C1LL"]
    problems = check_hek(bad)
    assert "FRM_Contact: required, missing or empty" in problems
    assert "BoundBox_C1LL: required, missing or empty" in problems
    assert "KB_ArchivID: reserved for the HEK archivist" in problems
    assert "Made_Up: not a field of AR events" in problems


def test_region_extent_from_its_pixels() -> None:
    lat, lon = np.meshgrid(np.linspace(-25, -15, 11), np.linspace(5, 20, 16), indexing="ij")
    inside = (np.abs(lat + 20) <= 3) & (np.abs(lon - 12) <= 4)
    ext = hgs_extent(np.where(inside, lat, np.nan), np.where(inside, lon, np.nan))
    assert ext["hgs_bbox"] == [8.0, -23.0, 16.0, -17.0]
    assert ext["hgs_error_deg"] == [1.0, 1.0]
    assert hgs_extent(np.full((3, 3), np.nan), np.full((3, 3), np.nan)) == {"hgs_bbox": [], "hgs_error_deg": []}


# -- VOEvent -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("kind", "payload", "code"), EVENTS)
@pytest.mark.parametrize("test_flag", [False, True])
def test_voevent_is_valid_against_the_ivoa_schema(
    xsd: xmlschema.XMLSchema, kind: str, payload: dict, code: str, test_flag: bool
) -> None:
    s = ExportSettings(**{**SETTINGS.__dict__, "test": test_flag})
    xml = voevent_xml(kind, payload, s)
    xsd.validate(xml)  # raises with the schema's complaint
    root = _root(xml)
    assert root.tag == f"{{{VOE_NS}}}VOEvent" and root.get("version") == "2.0"
    expected_role = "test" if test_flag else ("prediction" if code == "EF" else "observation")
    assert root.get("role") == expected_role
    hek = {p.get("name"): p.get("value") for p in root.find("What/Group[@name='HEK']").iter("Param")}
    assert hek["Event_Type"].startswith(f"{code}: ") and hek["Event_TestFlag"] == ("True" if test_flag else "False")
    assert hek["FRM_Contact"] == "ops@example.org"
    assert root.find("WhereWhen/ObsDataLocation/ObservationLocation/AstroCoordSystem").get("id") == "UTC-ICRS-GEO"
    assert root.find("WhereWhen/ObsDataLocation/ObservatoryLocation").get("id") == "SDO"


def test_voevent_sky_position_is_the_events_direction_from_the_geocentre(xsd: xmlschema.XMLSchema) -> None:
    root = _root(voevent_xml("region", REGION, SETTINGS))
    pos = root.find("WhereWhen/ObsDataLocation/ObservationLocation/AstroCoords/Position2D")
    assert (pos.findtext("Name1"), pos.findtext("Name2"), pos.get("unit")) == ("RA", "Dec", "deg")
    ra, dec = float(pos.findtext("Value2/C1")), float(pos.findtext("Value2/C2"))
    t = "2011-02-15T02:00:00"
    want = SkyCoord(12.8 * u.deg, -20.2 * u.deg, frame=HeliographicStonyhurst(obstime=t)).transform_to(GCRS(obstime=t))
    assert math.hypot((ra - want.ra.deg) * math.cos(math.radians(dec)), dec - want.dec.deg) < 1e-4
    assert 0 < float(pos.findtext("Error2Radius")) < 0.1
    solar = {p.get("name"): (p.get("value"), p.get("unit")) for p in root.find("What/Group[@name='solar_position']")}
    assert solar["hgs_lat"] == ("-20.2", "deg") and solar["hgs_lon"] == ("12.8", "deg")
    limb = _root(voevent_xml("jet", JET, SETTINGS))
    solar = {p.get("name"): p.get("value") for p in limb.find("What/Group[@name='solar_position']")}
    assert solar == {"hpc_x": "-980.0", "hpc_y": "300.0"}  # no Stonyhurst position beyond the limb


def test_ivorns_are_unique_per_event_and_stable_across_reruns() -> None:
    frame1 = REGION
    frame2 = {**REGION, "t_rec_utc": "2011-02-15T02:12:00Z", "id": 1}  # the same region, one frame later
    other = {**REGION, "track_id": 8, "noaa_ar": 11158}  # another region named after the same NOAA region
    ivorns = [event_ivorn("region", p, SETTINGS) for p in (frame1, frame2, other)]
    assert len(set(ivorns)) == 3
    assert ivorns[0] == "ivo://heliowatch.example.org/heliowatch#AR-20110215T020000-track7"
    assert event_ivorn("region", {**REGION, "id": 5, "noaa_ar": None}, SETTINGS) == ivorns[0]
    assert event_ivorn("region", json.loads(json.dumps(frame1)), SETTINGS) == ivorns[0]  # a rerun, a stored record
    assert _root(voevent_xml("region", frame2, SETTINGS)).get("ivorn") == ivorns[1]
    assert len({event_ivorn(k, p, SETTINGS) for k, p, _ in EVENTS}) == 3
    # Jet keys carry signed positions: jets mirrored about the central meridian stay two events.
    east, west = (event_ivorn("jet", {**JET, "key": f"jet-20110215T0150-{x}0200--0300"}) for x in "-+")
    assert east != west and west.endswith("#CJ-jet-20110215T0150-+0200--0300")


def test_event_files_are_named_after_the_ivorn_and_rewritten_in_place(tmp_path: Path) -> None:
    first = write_event("region", REGION, tmp_path, SETTINGS)
    again = write_event("region", REGION, tmp_path, SETTINGS)
    assert first == again and [p.name for p in first] == [
        "AR-20110215T020000-track7.hek.json",
        "AR-20110215T020000-track7.voevent.xml",
    ]
    assert first[0].parent == tmp_path / "events" / "2011-02-15"
    assert sorted(p.name for p in tmp_path.rglob("*")) == sorted([*(p.name for p in first), "events", "2011-02-15"])
    files = dict(event_files("jet", JET, SETTINGS, date_run="2011-02-15T03:00:00Z"))
    hek = json.loads(files[Path("events/2011-02-15/CJ-jet-20110215T015200-m650p300.hek.json")])
    assert hek["FRM_DateRun"] == "2011-02-15T03:00:00"


# -- CCMC Flare Scoreboard ---------------------------------------------------------------------
def _region(noaa: int | None, harp: int, p: tuple[float, float, float]) -> RegionForecast:
    return RegionForecast(
        file=f"hmi.sharp.{harp}.fits",
        harpnum=harp,
        noaa_ar=noaa,
        t_rec_utc="2011-02-15T01:59:26Z",
        hgs_lat=-20.0,
        hgs_lon=10.0,
        p_c=p[0],
        p_m=p[1],
        p_x=p[2],
        degraded=False,
        method="logistic",
        missing=[],
        models=[],
    )


ISSUE = FullDiskForecast(
    issue_time="2011-02-15T01:59:26Z",
    start_window="2011-02-15T01:59:26Z",
    end_window="2011-02-16T01:59:26Z",
    p_c=0.97654,
    p_m=0.61236,
    p_x=0.08111,
    p_limb_m=0.02,
    regions=[
        _region(11158, 377, (0.95, 0.6, 0.08)),
        _region(11158, 380, (0.5, 0.1, 0.01)),  # a second HARP of NOAA 11158
        _region(11161, 384, (0.3, 0.05, 0.001)),
        _region(None, 392, (0.2, 0.02, 0.0)),  # no NOAA number yet
    ],
    degraded=False,
    missing=[],
    models=[{"name": "flare-sharp-logistic"}],
)


def test_ccmc_text_submission_has_the_documented_header_and_rows(tmp_path: Path) -> None:
    paths = write_exports(ISSUE, tmp_path, SETTINGS)
    names = [p.name for p in paths]
    assert names == [
        "flare-forecast-20110215T015926Z.json",
        "Flare_Forecast_heliowatch_0.1_20110215_0159.txt",
        "Flare_Forecast_heliowatch_0.1_20110215_0159.json",
    ]
    lines = paths[1].read_text().splitlines()
    header = dict(line.split(": ", 1) for line in lines[:7])
    assert header == {
        "Forecasting method": "heliowatch_0.1",
        "Issue Time": "2011-02-15T01:59Z",
        "Prediction Window Start Time": "2011-02-15T01:59Z",
        "Prediction Window End Time": "2011-02-16T01:59Z",
        "Probability Bins": "M+",
        "Input data": header["Input data"],
        "Prediction window (hours)": "24",
    }
    assert "SDO/HMI" in header["Input data"]
    rows = [line for line in lines[7:] if not line.startswith("#")]
    comments = [line for line in lines[7:] if line.startswith("#")]
    assert comments[1].split() == ["#" + CCMC_COLUMNS[0], *CCMC_COLUMNS[1:]]
    assert comments[3].split() == ["#NOAA", *CCMC_COLUMNS]
    full = rows[0].split()
    assert full == ["0.0811", "-1", "-1", "0.6124", "-1", "-1", "0.9765", "-1", "-1"]
    assert all(re.fullmatch(r"\d\.\d{4}", full[i]) for i in (0, 3, 6))
    by_noaa = {int(r.split()[0]): [float(v) for v in r.split()[1:]] for r in rows[1:]}
    assert set(by_noaa) == {11158, 11161}  # one row per NOAA region; HARP 392 has no NOAA number
    assert by_noaa[11158] == [0.08, -1, -1, 0.6, -1, -1, 0.95, -1, -1]  # the likelier HARP of 11158


def test_ccmc_json_submission_has_the_documented_fields() -> None:
    files = dict(export_files(ISSUE, SETTINGS))
    sub = json.loads(files["Flare_Forecast_heliowatch_0.1_20110215_0159.json"])["forecast_submission"]
    assert sub["model"]["short_name"] == "heliowatch_0.1" and sub["issue_time"] == "2011-02-15T01:59Z"
    window = {"start_time": "2011-02-15T01:59Z", "end_time": "2011-02-16T01:59Z"}
    (fd,) = sub["full_disk_forecasts"]
    assert fd["prediction_window"] == window
    assert fd["flare_probabilities"] == [
        {"class": "C+", "probability": 0.9765},
        {"class": "M+", "probability": 0.6124},
        {"class": "X+", "probability": 0.0811},
    ]
    regions = sub["region_forecasts"]
    assert [r["region_ids"] for r in regions] == [
        [{"type": "NOAA", "number": 11158}, {"type": "HARP", "number": 377}],
        [{"type": "NOAA", "number": 11158}, {"type": "HARP", "number": 380}],
        [{"type": "NOAA", "number": 11161}, {"type": "HARP", "number": 384}],
        [{"type": "HARP", "number": 392}],
    ]
    assert all(r["prediction_window"] == window and len(r["flare_probabilities"]) == 3 for r in regions)
    assert json.loads(files["flare-forecast-20110215T015926Z.json"])["p_m"] == pytest.approx(0.61236)


# -- configuration -----------------------------------------------------------------------------
def test_exports_table_reaches_the_exporters_and_a_replay_is_a_test() -> None:
    cfg = load_config(
        None,
        environ={
            "HELIOWATCH_EXPORTS__MODEL_ID": "hw_2",
            "HELIOWATCH_EXPORTS__FRM_CONTACT": "sun@example.org",
            "HELIOWATCH_EXPORTS__IVORN_AUTHORITY": "obs.example.org",
        },
    )
    s = export_settings(cfg)
    assert (s.model_id, s.frm_contact, s.ivorn_authority, s.test) == ("hw_2", "sun@example.org", "obs.example.org", True)
    assert export_settings(load_config(None, environ={"HELIOWATCH_JSOC__SERVER": "jsoc"})).test is False
    assert dict(export_files(ISSUE, s))["Flare_Forecast_hw_2_20110215_0159.txt"].startswith(b"Forecasting method: hw_2\n")
    with pytest.raises(ConfigError, match=r"exports\.model_id.*short name"):
        load_config(None, environ={"HELIOWATCH_EXPORTS__MODEL_ID": "bad name/1"})


# -- differential rotation ---------------------------------------------------------------------
@pytest.mark.parametrize("lat", [0.0, 15.0, -30.0, 45.0, 60.0])
def test_tracking_rotates_as_sunpy_does(lat: float) -> None:
    want = differential_rotation(1 * u.day, lat * u.deg, frame_time="synodic").to_value(u.deg)
    assert Tracker.rate_deg_per_day(lat) == pytest.approx(want, abs=1e-3)
    # A region one day later, where sunpy's rotation puts it, is matched to its earlier self.
    before = {"hgs_lat": lat, "hgs_lon": -40.0, "t_rec_utc": "2011-02-14T02:00:00Z"}
    hit = match_position(lat, -40.0 + want, "2011-02-15T02:00:00Z", [before], max_deg=0.3, max_hours=30)
    assert hit is before
    tracker = Tracker(match_deg=0.3)
    tracker.update([_detection(lat, -40.0)], "2011-02-14T02:00:00Z")
    moved = _detection(lat, -40.0 + want)
    tracker.update([moved], "2011-02-15T02:00:00Z")
    assert moved.track_id == 1


def _detection(lat: float, lon: float) -> DetectedRegion:
    return DetectedRegion(
        id=0, bbox_px=[0, 0, 1, 1], hgs_lat=lat, hgs_lon=lon, hgc_lon=0.0, area_uhem=100.0, usflux_mx=1e21, confidence=1.0
    )
