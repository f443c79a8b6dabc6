"""Deployment artefacts: Prometheus rules (promtool), the Grafana dashboard, systemd units, install.sh."""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from pathlib import Path

from tests.e2e.conftest import ROOT, need

DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "heliowatch-dashboard.json"


def test_alert_rules_check_and_unit_tests() -> None:
    promtool = need("promtool")
    p = subprocess.run(
        [promtool, "check", "rules", str(DEPLOY / "prometheus" / "heliowatch-rules.yml")], capture_output=True, text=True
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert "SUCCESS: 8 rules found" in p.stdout
    t = subprocess.run(
        [promtool, "test", "rules", str(DEPLOY / "prometheus" / "tests" / "heliowatch-rules.test.yml")],
        capture_output=True,
        text=True,
    )
    assert t.returncode == 0, t.stdout + t.stderr
    c = subprocess.run(
        [promtool, "check", "config", "--syntax-only", str(DEPLOY / "prometheus" / "prometheus.yml")],
        capture_output=True,
        text=True,
    )
    assert c.returncode == 0, c.stdout + c.stderr


def _exprs() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]


def test_dashboard_structure_and_datasource() -> None:
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] == "heliowatch-main" and dash["id"] is None
    prov = (DEPLOY / "grafana" / "provisioning" / "datasources" / "heliowatch.yaml").read_text()
    assert "uid: heliowatch-prometheus" in prov
    for p in dash["panels"]:
        assert p["datasource"] == {"type": "prometheus", "uid": "heliowatch-prometheus"}, p["title"]
        assert {"x", "y", "w", "h"} <= set(p["gridPos"])
    titles = " ".join(p["title"] for p in dash["panels"]).lower()
    for want in ("full-disk", "regions", "magnetogram", "latency", "health", "jets", "emergence"):
        assert want in titles


def test_every_dashboard_expression_parses(tmp_path: Path) -> None:
    promtool = need("promtool")
    rules = {
        "groups": [{"name": "dashboard", "rules": [{"record": f"dashboard:expr_{i}", "expr": e} for i, e in enumerate(_exprs())]}]
    }
    f = tmp_path / "exprs.yml"
    f.write_text(json.dumps(rules))  # YAML is a superset of JSON
    p = subprocess.run([promtool, "check", "rules", str(f)], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


_PROMQL_WORDS = {"sum", "by", "rate", "increase", "histogram_quantile", "time", "le", "on", "and", "or", "max", "min"}


def _metric_names(exprs: list[str]) -> set[str]:
    names = set()
    for e in exprs:
        bare = re.sub(r'\{[^}]*\}|"[^"]*"|\[[^\]]*\]', " ", e)
        names |= {w for w in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", bare) if w.startswith("heliowatch_") or w == "up"}
    return names


def test_dashboard_and_rules_reference_only_exported_metrics(live_daemon: dict) -> None:
    text = urllib.request.urlopen(live_daemon["base"] + "/metrics", timeout=10).read().decode()
    exported = set(re.findall(r"^# TYPE (\S+) ", text, re.M))
    for hist in [n for n in exported if f"# TYPE {n} histogram" in text]:
        exported |= {f"{hist}_bucket", f"{hist}_count", f"{hist}_sum"}
    exported |= {n + "_total" for n in exported if f"# TYPE {n} counter" in text}
    exported.add("up")  # Prometheus's own
    rules = (DEPLOY / "prometheus" / "heliowatch-rules.yml").read_text()
    rule_exprs = re.findall(r"expr: (.+)", rules)
    used = _metric_names(_exprs()) | _metric_names(rule_exprs)
    assert used, "no metric names found"
    missing = sorted(used - exported)
    assert not missing, f"referenced but not exported: {missing}"


def test_systemd_units_verify(tmp_path: Path) -> None:
    analyze = need("systemd-analyze")
    exe = Path(__import__("shutil").which("heliowatch") or ROOT / ".venv" / "bin" / "heliowatch")
    unit = tmp_path / "heliowatch.service"
    unit.write_text((ROOT / "systemd" / "heliowatch.service").read_text().replace("/opt/heliowatch/bin/heliowatch", str(exe)))
    (tmp_path / "heliowatch.service.d").mkdir()
    (tmp_path / "heliowatch.service.d" / "hardening.conf").write_text(
        (ROOT / "systemd" / "heliowatch.service.d" / "hardening.conf").read_text()
    )
    p = subprocess.run([analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True)
    ours = [line for line in (p.stdout + p.stderr).splitlines() if "heliowatch" in line]
    assert p.returncode == 0 and not ours, p.stdout + p.stderr
    text = unit.read_text()
    for want in (
        "Type=notify",
        "NotifyAccess=main",
        "WatchdogSec=",
        "Restart=on-failure",
        "StateDirectory=heliowatch",
        "CacheDirectory=heliowatch",
        "CUDA_CACHE_PATH=",
        "TORCH_HOME=",
        "SUNPY_CONFIGDIR=",
    ):
        assert want in text
    hardening = (ROOT / "systemd" / "heliowatch.service.d" / "hardening.conf").read_text()
    assert "DeviceAllow=char-nvidia rw" in hardening and "\nPrivateDevices" not in hardening
    # The backfill unit (a template: one instance per range), the nightly gap fill and its timer.
    inst = tmp_path / "heliowatch-backfill@2024-05-01--2024-06-01.service"
    units = {
        tmp_path / "heliowatch-backfill@.service": "heliowatch-backfill@.service",
        inst: "heliowatch-backfill@.service",
        tmp_path / "heliowatch-gapfill.service": "heliowatch-gapfill.service",
        tmp_path / "heliowatch-gapfill.timer": "heliowatch-gapfill.timer",
    }
    for dest, src in units.items():
        dest.write_text((ROOT / "systemd" / src).read_text().replace("/opt/heliowatch/bin/heliowatch", str(exe)))
        p = subprocess.run([analyze, "verify", "--man=no", str(dest)], capture_output=True, text=True)
        assert p.returncode == 0 and not [x for x in (p.stdout + p.stderr).splitlines() if "heliowatch" in x], p.stdout + p.stderr
    assert "--range %I" in (ROOT / "systemd" / "heliowatch-backfill@.service").read_text()
    assert "--gaps --last 48h" in (ROOT / "systemd" / "heliowatch-gapfill.service").read_text()
    assert "Persistent=true" in (ROOT / "systemd" / "heliowatch-gapfill.timer").read_text()


def test_install_script_is_idempotent_and_has_a_dry_run(tmp_path: Path) -> None:
    script = DEPLOY / "install.sh"
    dry = subprocess.run(["bash", str(script), "--root", str(tmp_path), "--dry-run"], capture_output=True, text=True)
    assert dry.returncode == 0 and "would: install" in dry.stdout
    assert not any(tmp_path.iterdir()), "dry run changed files"
    first = subprocess.run(["bash", str(script), "--root", str(tmp_path), "--venv", "/srv/hw"], capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    unit = tmp_path / "etc/systemd/system/heliowatch.service"
    assert "ExecStart=/srv/hw/bin/heliowatch run" in unit.read_text()
    (tmp_path / "etc/heliowatch/config.toml").write_text("# operator's edits\n")
    second = subprocess.run(["bash", str(script), "--root", str(tmp_path), "--venv", "/srv/hw"], capture_output=True, text=True)
    assert "already installed, nothing to do" in second.stdout
    assert (tmp_path / "etc/heliowatch/config.toml").read_text() == "# operator's edits\n"  # never overwritten
    for f in (
        "etc/prometheus/rules.d/heliowatch-rules.yml",
        "var/lib/grafana/dashboards/heliowatch/heliowatch-dashboard.json",
        "etc/systemd/system/heliowatch.service.d/hardening.conf",
        "etc/systemd/system/heliowatch-backfill@.service",
        "etc/systemd/system/heliowatch-gapfill.timer",
    ):
        assert (tmp_path / f).exists(), f
    bad = subprocess.run(["bash", str(script), "--bogus"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown option" in bad.stderr
