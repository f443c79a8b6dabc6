"""Every JSON output of the command line is strict JSON (RFC 8259) and validates against its published schema.

The schemas are ``docs/schemas/<output>.schema.json`` (JSON Schema 2020-12). The commands run in
this process through the CLI's ``main`` (the imports are paid once, not per command), on the demo
archive's files and on one small replay (two magnetograms, one of them QUALITY-flagged, a SHARP
record, a 304 A sequence with a jet) whose state ``status``, ``products``, ``gaps`` and
``backfill`` read. ``status.schema.json`` (the running daemon's ``/status.json``) belongs to the
status page and is validated by its tests; here it is only checked for the common conventions.
"""

from __future__ import annotations

import copy
import datetime as dt
import io
import json
import logging
import math
import shutil
from collections.abc import Callable, Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from heliowatch.daemon.cli import main
from heliowatch.daemon.config import load_config
from heliowatch.daemon.service import Daemon
from heliowatch.models.core import jsonio
from heliowatch.models.synthetic.fitsout import write_fits
from heliowatch.models.synthetic.magnetogram import RegionSpec, synth_magnetogram
from heliowatch.pipelines.standin.archive import demo_archive_path

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "docs" / "schemas"
DEMO = demo_archive_path()
FRAME = DEMO / "magnetogram" / "hmi.M_720s_nrt.20110215_020034_TAI.3.magnetogram.fits"
FLAGGED = DEMO / "magnetogram" / "hmi.M_720s_nrt.20110215_013634_TAI.3.magnetogram.fits"  # QUALITY 0x400
AIA = sorted((DEMO / "aia").glob("*.fits"))[:30]  # the sequence with the jet
#: The replay's time range (UTC).
START, END = "2011-02-15T01:30:00Z", "2011-02-15T02:05:00Z"

#: Each schema published here and the output it describes.
OUTPUTS = {
    "detect": "heliowatch detect FITS --json",
    "classify": "heliowatch classify FITS... --json",
    "forecast": "heliowatch forecast SHARP_FITS... --json",
    "jets": "heliowatch jets FITS...|DIR --json",
    "emergence": "heliowatch emergence FITS...|DIR --json",
    "gaps": "heliowatch gaps --json",
    "models-list": "heliowatch models list --json",
    "status-cli": "heliowatch status",
    "products": "heliowatch products",
    "backfill-report": "heliowatch backfill (outputs/backfill-START-END.json)",
}
#: Published by the status page (its own tests validate /status.json against it).
STATUS_PAGE = "status"


def strict_loads(text: str) -> Any:
    """A parser that, like ``JSON.parse``, refuses NaN and Infinity."""

    def refuse(name: str) -> Any:
        raise ValueError(f"not JSON (RFC 8259): {name}")

    return json.loads(text, parse_constant=refuse)


def schema(name: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / f"{name}.schema.json").read_text())


#: The outputs DESIGN.md fixes as JSON lists.
LISTS = ("classify", "forecast")


def errors(doc: Any, name: str) -> list[str]:
    """Every way ``doc`` breaks the published schema ``name``, one line each."""
    v = jsonschema.Draft202012Validator(schema(name))
    return [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message[:200]}" for e in v.iter_errors(doc)]


def valid(doc: Any, name: str) -> Any:
    found = errors(doc, name)
    assert not found, f"{name}: " + "; ".join(found[:10])
    return doc


def cli(*argv: str | Path, parse: bool = True) -> tuple[Any, str]:
    """``heliowatch ARGV`` in this process: its stdout (parsed strictly unless ``parse`` is false) and its stderr."""
    out, err = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        with redirect_stdout(out), redirect_stderr(err):
            rc = main([str(a) for a in argv])
    finally:
        # The command pointed logging at this call's stderr; give the other tests theirs back.
        root.handlers[:] = handlers
        root.setLevel(level)
    assert rc == 0, err.getvalue()[-2000:]
    return (strict_loads(out.getvalue()) if parse else out.getvalue()), err.getvalue()


@pytest.fixture(scope="module", autouse=True)
def work(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """For every command here: a private working and state directory, the replay archive, the torch
    backend (a fresh state directory has no ONNX exports; exporting them is not what these tests are
    about) and the jets' baseline detector alone (the network is asked for where it is tested)."""
    d = tmp_path_factory.mktemp("json-outputs")
    archive = d / "archive"
    for sub, files in (("magnetogram", [FLAGGED, FRAME]), ("sharp", sorted((DEMO / "sharp").glob("*.377.*.fits"))), ("aia", AIA)):
        (archive / sub).mkdir(parents=True)
        for f in files:
            shutil.copy(f, archive / sub / f.name)
    for extra in ("srs", "events"):
        shutil.copytree(DEMO / extra, archive / extra)
    shutil.copy(DEMO / "standin.toml", archive / "standin.toml")
    env = {
        "HELIOWATCH_DAEMON__STATE_DIR": str(d / "state"),
        "HELIOWATCH_METRICS__PORT": "0",
        "HELIOWATCH_MODELS__BACKEND": "torch-cpu",
        "HELIOWATCH_REPLAY__ARCHIVE": str(archive),
        "HELIOWATCH_JETS__DETECTORS": '["baseline"]',
    }
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(d)
        for k, v in env.items():
            mp.setenv(k, v)
        yield d


@pytest.fixture(scope="module")
def replay(work: Path) -> Path:
    """The state of one ``run --replay ARCHIVE --once`` (in process: the same daemon, without a second start-up)."""
    summary = Daemon.from_config(load_config(None), once=True).run()
    assert summary.ingested == {"hmi.M_720s_nrt": 1, "hmi.sharp_cea_720s_nrt": 1, "aia.lev1_nrt2:304": 30}, summary
    return work / "archive"


@pytest.fixture(scope="module")
def detect_doc(work: Path) -> Any:
    doc, _ = cli("detect", FRAME, "--json", "--srs", DEMO / "srs", "--cutouts", work / "cutouts")
    return doc


def test_every_schema_is_published_versioned_and_listed() -> None:
    found = {p.name.removesuffix(".schema.json") for p in SCHEMAS.glob("*.schema.json")}
    assert set(OUTPUTS) <= found and found - set(OUTPUTS) <= {STATUS_PAGE}, found
    commands_md = (ROOT / "docs" / "commands.md").read_text()
    for name in found:
        s = schema(name)
        jsonschema.Draft202012Validator.check_schema(s)
        assert s["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert s["$id"] == f"urn:heliowatch:schema:{name}:v{jsonio.SCHEMA_VERSION}" and s["title"] and s["description"], name
        # classify and forecast print lists (DESIGN.md's shape): there the version is on every entry.
        versioned = s if s["type"] == "object" else s["$defs"][s["items"]["$ref"].rsplit("/", 1)[1]]
        assert s["type"] == "object" or name in LISTS, name
        assert "schema_version" in versioned["required"], name
        assert versioned["properties"]["schema_version"]["const"] == jsonio.SCHEMA_VERSION, name
        assert f"docs/schemas/{name}.schema.json" in commands_md, f"{name} is not listed in docs/commands.md"


def test_detect(detect_doc: Any) -> None:
    valid(detect_doc, "detect")
    regions = detect_doc["regions"]
    assert {11157, 11158, 11159, 11161} <= {r["noaa_ar"] for r in regions}
    # Regions without an opposite-polarity umbra: an undefined separation is null, not Infinity.
    assert any(r["measures"]["delta_separation_deg"] is None for r in regions)
    assert all(Path(r["cutout"]["fits"]).exists() for r in regions)


def test_classify() -> None:
    files = sorted((DEMO / "sharp").glob("*.Br.fits"))
    doc, _ = cli("classify", *files, "--json")
    valid(doc, "classify")
    assert [c["file"] for c in doc] == [str(f) for f in files]


def test_forecast() -> None:
    doc, _ = cli("forecast", *sorted((DEMO / "sharp").glob("*.fits")), "--json")
    valid(doc, "forecast")
    assert sorted(f["harpnum"] for f in doc) == [377, 7115, 7115]  # one per record, not per segment file


def test_models_list() -> None:
    doc, _ = cli("models", "list", "--json")
    valid(doc, "models-list")
    names = {c["name"] for c in doc["models"]}
    assert {"flare-cnn1", "region-classifier", "jet-convlstm", "emergence-fcn"} <= names


def test_jets_baseline() -> None:
    doc, _ = cli("jets", *AIA, "--json", "--detector", "baseline")
    valid(doc, "jets")
    (event,) = doc["events"]
    assert event["detector"] == "baseline" and doc["windows"] == []


@pytest.mark.slow
def test_jets_with_the_network() -> None:
    """Twelve frames: the network's first windows are not ready (null probabilities), the last ones are."""
    doc, _ = cli("jets", *AIA[:12], "--json", "--detector", "baseline", "--detector", "convlstm")
    valid(doc, "jets")
    ready = [w["ready"] for w in doc["windows"]]
    assert ready and not ready[0] and ready[-1]
    assert all((w["probabilities"] is None) != w["ready"] for w in doc["windows"])


def _emerging_series(out: Path, n: int = 6) -> list[Path]:
    """A quiet 1024-px disk on which a bipole surfaces from the fourth frame on (as in the emergence tests)."""
    out.mkdir()
    t0 = dt.datetime(2019, 6, 21, tzinfo=dt.UTC)
    paths = []
    for k in range(n):
        t = t0 + dt.timedelta(seconds=720 * k)
        regions = [RegionSpec("beta", 10.0, -20.0, size=0.1 * (k - 2))] if k >= 3 else []
        data, hdr, _ = synth_magnetogram(t, regions, size=1024, seed=7, noise_seed=k, noise_g=1.7)
        paths.append(write_fits(out / f"hmi.M_720s_nrt.{t:%Y%m%d_%H%M%S}_TAI.magnetogram.fits", data, hdr))
    return paths


@pytest.mark.slow
def test_emergence(work: Path) -> None:
    doc, _ = cli("emergence", *_emerging_series(work / "emerging"), "--json", "--window-minutes", "36")
    valid(doc, "emergence")
    assert doc["patches"] and len(doc["warnings"]) == 1
    # The warnings are the payloads the daemon stores as emergence_warning products.
    rows = [_row("emergence_warning", w, key=w["id"], t=w["t_mid_utc"]) for w in doc["warnings"]]
    valid({"schema_version": jsonio.SCHEMA_VERSION, "counts": {"emergence_warning": 1}, "products": rows}, "products")


def _row(kind: str, payload: dict[str, Any], *, key: str, t: str) -> dict[str, Any]:
    return {"id": 1, "product": kind, "key": key, "t_utc": t, "region": None, "payload": payload, "created_utc": t}


@pytest.mark.slow
def test_status(replay: Path) -> None:
    doc, _ = cli("status")
    valid(doc, "status-cli")
    assert sorted(doc["records_per_series"].values()) == [1, 1, 30]
    assert [r["reason"] for r in doc["rejected"]] == ["quality"]
    assert doc["last_run"]["ingested"]["hmi.M_720s_nrt"] == 1


@pytest.mark.slow
def test_products(replay: Path) -> None:
    doc, _ = cli("products", "--limit", "1000")
    valid(doc, "products")
    kinds = {p["product"] for p in doc["products"]}
    assert {"region", "flare_region", "flare_forecast", "jet", "data_health"} <= kinds
    regions = [p["payload"] for p in doc["products"] if p["product"] == "region"]
    assert any(r["measures"]["delta_separation_deg"] is None for r in regions)


def test_the_products_schema_asks_only_for_fields_the_demo_writes() -> None:
    """Each kind's required payload fields are among those a full demo run stores (recorded in tests/data)."""
    recorded = json.loads((ROOT / "tests" / "data" / "demo_products.json").read_text())["fields"]
    defs = schema("products")["$defs"]
    assert set(recorded) == set(defs["kind"]["enum"])
    for kind, fields in recorded.items():
        assert set(defs[kind]["required"]) <= set(fields), kind


@pytest.mark.slow
def test_gaps(replay: Path) -> None:
    doc, _ = cli("gaps", "--replay", replay, "--start", START, "--end", END, "--json")
    valid(doc, "gaps")
    by = {s["source"]: s for s in doc["sources"]}
    mag = next(s for name, s in by.items() if name.startswith("hmi.M_"))
    assert mag["counts"]["ingested"] == 1 and mag["counts"]["rejected"] == 1


@pytest.mark.slow
def test_backfill_report(replay: Path, work: Path) -> None:
    """A backfill over the range the replay already did: nothing new, and a report that still validates."""
    cli("backfill", "--replay", replay, "--start", START, "--end", END, "--workers", "0", "--products", "regions", parse=False)
    (report,) = (work / "state" / "outputs").glob("backfill-*.json")
    doc = valid(strict_loads(report.read_text()), "backfill-report")
    assert doc["records"] == 2 and doc["already_done"] == {"regions": 1} and doc["products_written"] == {}


Mutation = Callable[[dict[str, Any]], None]

BROKEN_DETECT: dict[str, Mutation] = {
    "no schema_version": lambda d: d.pop("schema_version"),
    "a later schema_version": lambda d: d.update(schema_version=jsonio.SCHEMA_VERSION + 1),
    "a region without its class": lambda d: d["regions"][0].pop("mtwilson"),
    "an unknown Mt. Wilson class": lambda d: d["regions"][0].update(mtwilson="epsilon"),
    "a latitude as text": lambda d: d["regions"][0].update(hgs_lat="-20.0"),
    "a probability above 1": lambda d: d["regions"][0]["class_probs"].update(alpha=1.5),
    "a three-corner bbox": lambda d: d["regions"][0].update(bbox_px=[1, 2, 3]),
    "a time without its Z": lambda d: d.update(t_rec_utc="2011-02-15T02:00:00"),
    "regions as an object": lambda d: d.update(regions={"0": d["regions"][0]}),
}


@pytest.mark.parametrize("how", list(BROKEN_DETECT))
def test_a_malformed_document_fails_its_schema(detect_doc: Any, how: str) -> None:
    doc = copy.deepcopy(detect_doc)
    BROKEN_DETECT[how](doc)
    assert errors(doc, "detect"), f"{how}: accepted"


def test_each_product_kind_has_its_payload_checked() -> None:
    region = {"id": 1, "t_rec_utc": "2011-02-15T02:00:00.000Z", "mtwilson": "beta"}  # most fields missing
    doc = {"schema_version": 1, "counts": {"region": 1}, "products": [_row("region", region, key="k", t=region["t_rec_utc"])]}
    assert any("required" in e for e in errors(doc, "products"))
    doc["products"][0]["product"] = "no-such-kind"
    assert errors(doc, "products")


def test_entries_without_a_schema_version_fail() -> None:
    for name, row in (("classify", {"file": "x.fits"}), ("forecast", {"file": "x.fits"})):
        assert any("schema_version" in e for e in errors([row], name)), name
    assert errors([{"name": "m"}], "models-list")  # models list is an object: {"schema_version", "models"}


def test_non_finite_numbers_are_not_json() -> None:
    with pytest.raises(ValueError, match="Infinity"):
        strict_loads('{"delta_separation_deg": Infinity}')
    with pytest.raises(ValueError, match="NaN"):
        strict_loads('{"coverage": NaN}')
    # What the commands write instead: null, which the schemas allow where a number may be undefined.
    text = jsonio.dumps({"delta_separation_deg": math.inf, "coverage": math.nan})
    assert strict_loads(text) == {"delta_separation_deg": None, "coverage": None}
