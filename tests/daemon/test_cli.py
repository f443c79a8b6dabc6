"""The command-line contract: --version, strict JSON (RFC 8259), one-line errors, help, streams."""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from heliowatch.daemon.cli import build_parser, main
from heliowatch.pipelines.standin.archive import demo_archive_path


def cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "heliowatch.daemon.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=600,
    )


def strict_loads(text: str) -> object:
    """A parser that, like JSON.parse, refuses NaN and Infinity."""

    def refuse(name: str) -> object:
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def test_version() -> None:
    p = cli("--version")
    assert p.returncode == 0 and p.stdout.startswith("heliowatch ")


def test_detect_and_forecast_json_are_strict_json_with_a_schema_version() -> None:
    # The demo's 02:00 frame has regions without an opposite-polarity umbra: their delta
    # separation is undefined, written as null (it used to be Infinity).
    frame = demo_archive_path() / "magnetogram" / "hmi.M_720s_nrt.20110215_020034_TAI.3.magnetogram.fits"
    d = cli("detect", str(frame), "--json")
    assert d.returncode == 0, d.stderr
    doc = strict_loads(d.stdout)
    assert isinstance(doc, dict) and doc["schema_version"] == 1
    assert any(r["measures"].get("delta_separation_deg") is None for r in doc["regions"])
    sharps = [str(p) for p in sorted((demo_archive_path() / "sharp").glob("*.fits"))]
    f = cli("forecast", *sharps, "--json")
    assert f.returncode == 0, f.stderr
    fc = strict_loads(f.stdout)
    assert isinstance(fc, list) and fc and all(r["schema_version"] == 1 for r in fc)


def test_a_busy_metrics_port_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        t0 = time.monotonic()
        p = cli("run", "--replay", "demo", "--once", cwd=tmp_path, env={"HELIOWATCH_METRICS__PORT": str(port)})
        took = time.monotonic() - t0
    assert p.returncode == 2
    (line,) = p.stderr.strip().splitlines()
    assert line.startswith(f"heliowatch: config error: metrics.port: cannot listen on 127.0.0.1:{port} ")
    assert "set metrics.port" in line
    assert p.stdout == ""
    # Refused before any model is exported or any record polled (a run takes a minute).
    # (The single-instance lock is taken first, so its file is all the state directory holds.)
    state = tmp_path / "heliowatch-state"
    assert (not state.exists() or [f.name for f in state.iterdir()] == [".lock"]) and took < 60


@pytest.mark.parametrize("args", [["backfill", "--start", "yesterday", "--end", "2011-01-01"], ["gaps", "--last", "forever"]])
def test_bad_backfill_times_are_one_line(args: list[str], tmp_path: Path) -> None:
    p = cli(*args, "--replay", "demo", cwd=tmp_path)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and "heliowatch: error:" in p.stderr


def _commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action._name_parser_map.items():
                out += [((*path, name), child), *_commands(child, (*path, name))]
    return out


def test_every_command_has_a_description_and_config_help_without_rst() -> None:
    commands = _commands(build_parser())
    assert {("run",), ("jsoc-standin",), ("models", "list"), ("forecast", "backtest")} <= {c for c, _ in commands}
    for path, parser in commands:
        text = parser.format_help()
        assert parser.description, f"heliowatch {' '.join(path)} has no description"
        assert "--config PATH" in text and "configuration file" in text, path
        for marker in ("``", ":func:", ":class:", ".. code::", "====="):
            assert marker not in text, f"{marker!r} in heliowatch {' '.join(path)} --help"


def test_jsoc_standin_help_lists_the_faults_as_plain_text(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["jsoc-standin", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    # The fault table: a column of names, then one of descriptions, however long a name is.
    rows = [m for ln in out.splitlines() if (m := re.fullmatch(r"  ([a-z0-9_]+(?:=\S+)?) +(\S.*)", ln))]
    assert {"latency=S", "5xx=P", "down=A:B", "pending_forever", "seed=N"} <= {m[1] for m in rows}
    assert len({m.start(2) for m in rows}) == 1


def test_models_list_knows_the_models_forecasts_cite(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "list", "--model", "flare-sharp-logistic", "--model", "flare-cnn2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("flare-sharp-logistic 1.0.0: ")
    assert "TSS 0.778 ± 0.038" in out and "operational: yes" in out
    assert "flare-cnn2 0.1.0: " in out and "operational: no" in out
    assert "{'" not in out and "'}" not in out  # no Python dicts
    assert main(["models", "list", "--json", "--model", "flare-sharp-logistic"]) == 0
    (card,) = json.loads(capsys.readouterr().out)["models"]
    assert card["skill"]["tss"]["mean"] == pytest.approx(0.778, abs=1e-3) and card["operational"] is True
    # Every model a shipped forecast cites is listed.
    listed = {c["name"] for c in json.loads(_stdout(capsys, ["models", "list", "--json"]))["models"]}
    assert {"flare-sharp-logistic", "flare-sharp-gbm", "flare-region-climatology", "flare-cnn2"} <= listed


def _stdout(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 0
    return capsys.readouterr().out


def test_a_feature_model_cannot_be_exported(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "export", "--model", "flare-sharp-gbm"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "feature model" in line and "no ONNX export" in line


def _json_lines(text: str) -> list[dict]:
    lines = text.strip().splitlines()
    out = []
    for ln in lines:
        assert ln.startswith("{"), f"not a JSON log line: {ln[:200]}"
        out.append(json.loads(ln))
    return out


@pytest.mark.slow
def test_first_run_logs_its_progress_on_stderr_and_prints_the_summary_on_stdout(sharp_archive: Path, tmp_path: Path) -> None:
    env = {
        "HELIOWATCH_REPLAY__ARCHIVE": str(sharp_archive),
        "HELIOWATCH_JSOC__ENABLED_SOURCES": '["sharp"]',
        "HELIOWATCH_EMERGENCE__ENABLED": "false",
        "HELIOWATCH_METRICS__PORT": "0",
        "HELIOWATCH_MODELS__BACKEND": "onnxruntime-cpu",
        "HELIOWATCH_MODELS__EXPORT_DIR": str(tmp_path / "exports"),
    }
    (tmp_path / "one").mkdir()
    first = cli("run", "--once", cwd=tmp_path / "one", env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    assert first.stdout.startswith("heliowatch: 3 record(s) ingested")
    logs = _json_lines(first.stderr)  # nothing but JSON lines: no torch or onnxscript chatter
    assert not [x for x in logs if x["logger"].split(".")[0] in ("onnx_ir", "onnxscript", "torch") and x["level"] == "info"]
    exporting = [x for x in logs if x["event"] == "exporting_model"]
    assert [(x["model"], x["progress"]) for x in exporting] == [("flare-cnn2", "1/1")]
    assert "not exported" in exporting[0]["reason"] and "heliowatch models export" not in first.stderr
    assert [x["event"] for x in logs].index("exporting_model") < [x["event"] for x in logs].index("processing")
    # flare-cnn2 is synthetic-trained: its probability is recorded, but no occlusion map is drawn.
    assert any(x["event"] == "occlusion_maps_off" for x in logs)
    out = tmp_path / "one" / "heliowatch-state" / "outputs"
    issue = json.loads(sorted(out.glob("forecasts/*/flare-forecast-*Z.json"))[0].read_text())
    assert issue["regions"][0]["cnn"]["p"] is not None and issue["regions"][0]["occlusion_png"] is None
    assert not list(out.glob("forecasts/*/occlusion-*.png"))
    # A second run finds the exports; asked to, it draws the maps of regions above the threshold.
    (tmp_path / "two").mkdir()
    second = cli("run", "--once", cwd=tmp_path / "two", env={**env, "HELIOWATCH_FLARES__OCCLUSION_MAPS": "always"})
    assert second.returncode == 0, second.stderr[-3000:]
    assert not [x for x in _json_lines(second.stderr) if x["event"] == "exporting_model"]
    maps = list((tmp_path / "two" / "heliowatch-state" / "outputs").glob("forecasts/*/occlusion-*.png"))
    assert maps and maps[0].read_bytes().startswith(b"\x89PNG")


@pytest.mark.slow
def test_idle_polls_are_summed_up_not_logged_one_by_one(sharp_archive: Path, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "HELIOWATCH_REPLAY__ARCHIVE": str(sharp_archive),
        "HELIOWATCH_REPLAY__SPEED": "1000",
        "HELIOWATCH_JSOC__ENABLED_SOURCES": '["sharp"]',
        "HELIOWATCH_EMERGENCE__ENABLED": "false",
        "HELIOWATCH_FLARES__CNN_MODEL": "",
        "HELIOWATCH_METRICS__PORT": "0",
        "HELIOWATCH_LOGGING__POLL_SUMMARY_MINUTES": "0.05",
    }
    log = tmp_path / "daemon.log"
    with log.open("w") as err:
        p = subprocess.Popen(
            [sys.executable, "-m", "heliowatch.daemon.cli", "run", "--keep-running"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and log.read_text().count('"poll_summary"') < 2:
            assert p.poll() is None, log.read_text()[-3000:]
            time.sleep(0.5)
        p.send_signal(signal.SIGINT)
        p.wait(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    logs = _json_lines(log.read_text())
    poll_lines = [x for x in logs if x["event"] == "poll"]
    summaries = [x for x in logs if x["event"] == "poll_summary"]
    assert len(summaries) >= 2
    polls = sum(c["polls"] for s in summaries for c in s["sources"].values())
    new = sum(c["new"] for s in summaries for c in s["sources"].values())
    # Only the polls that found something are logged one by one; the summaries count them all.
    assert new >= 1 and sum(x["new"] for x in poll_lines) == new
    assert all(x["new"] or x["rejected"] for x in poll_lines) and len(poll_lines) < polls / 2


def test_third_party_info_is_quiet_and_warnings_are_json_lines() -> None:
    import io
    import logging
    import warnings

    from heliowatch.daemon.logs import configure_logging

    buf = io.StringIO()
    with warnings.catch_warnings():
        # As in a fresh process: an earlier test's configure_logging left capture switched on
        # while pytest put its own warning recorder back.
        logging.captureWarnings(False)
        configure_logging("info", "json", stream=buf)
        logging.getLogger("onnxscript.rewriter").info("applied 3 rewrite rules")
        logging.getLogger("torch.onnx").info("exporting")
        logging.getLogger("onnx_ir").warning("a real problem")
        warnings.simplefilter("always")
        warnings.warn("deprecated thing", DeprecationWarning, stacklevel=1)
        logging.captureWarnings(False)
    lines = _json_lines(buf.getvalue())
    assert lines[0]["event"] == "a real problem"
    assert lines[1]["logger"] == "py.warnings" and "deprecated thing" in lines[1]["event"]
    assert len(lines) == 2
    buf = io.StringIO()
    configure_logging("debug", "json", stream=buf)
    logging.getLogger("onnxscript.rewriter").info("applied 3 rewrite rules")
    assert _json_lines(buf.getvalue())[0]["event"] == "applied 3 rewrite rules"
    configure_logging("info", "json", stream=io.StringIO())
