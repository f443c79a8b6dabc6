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
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    # The data source is a variable whose default is the provisioned one.
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert variables["datasource"]["current"]["value"] == "heliowatch-prometheus"
    assert variables["instance"]["definition"] == "label_values(heliowatch_up, instance)"
    assert variables["instance"]["includeAll"] and variables["instance"]["allValue"] == ".*"
    for p in dash["panels"]:
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert {"x", "y", "w", "h"} <= set(p["gridPos"])
    titles = " ".join(p["title"] for p in dash["panels"]).lower()
    for want in ("full-disk", "regions", "magnetogram", "latency", "health", "jets", "emergence", "memory"):
        assert want in titles


def test_every_dashboard_query_follows_the_instance_variable() -> None:
    for e in _exprs():
        selectors = re.findall(r"\b((?:heliowatch|process)_[a-z_]+)(\{[^}]*\})?", e)
        assert selectors, e
        for name, labels in selectors:
            assert 'instance=~"$instance"' in labels, f"{name} in {e!r} ignores $instance"


def test_quicklook_panel_uses_the_status_url_variable() -> None:
    dash = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["heliowatch_url"]["type"] == "textbox"
    panel = next(p for p in dash["panels"] if p["type"] == "text")
    html = panel["options"]["content"]
    assert "src='${heliowatch_url}/quicklook.png'" in html and "href='${heliowatch_url}/'" in html
    assert "127.0.0.1" not in html and "localhost" not in html


def test_verification_panel_shows_na_for_undefined_scores() -> None:
    dash = json.loads(DASHBOARD.read_text())
    panel = next(p for p in dash["panels"] if "verification" in p["title"].lower())
    assert panel["type"] == "stat"
    defaults = panel["fieldConfig"]["defaults"]
    assert defaults["noValue"] == "n/a"
    nan = [m for m in defaults["mappings"] if m["type"] == "special" and "nan" in m["options"]["match"]]
    assert nan and nan[0]["options"]["result"]["text"] == "n/a"


#: What the daemon exports for two regions (one without a Mt. Wilson class yet), as the region
#: table's queries see it: every label the exposition has, plus the scrape's job and instance.
_REGION_SERIES = """
      - series: 'heliowatch_flare_probability{harpnum="7115",noaa_ar="12673",level="C",job="hw",instance="i"}'
        values: '0.9x5'
      - series: 'heliowatch_flare_probability{harpnum="7115",noaa_ar="12673",level="M",job="hw",instance="i"}'
        values: '0.6x5'
      - series: 'heliowatch_flare_probability{harpnum="7115",noaa_ar="12673",level="X",job="hw",instance="i"}'
        values: '0.2x5'
      - series: 'heliowatch_flare_probability{harpnum="377",noaa_ar="11158",level="M",job="hw",instance="i"}'
        values: '0.3x5'
      - series: 'heliowatch_flare_probability{harpnum="377",noaa_ar="11158",level="X",job="hw",instance="i"}'
        values: '0.05x5'
      - series: 'heliowatch_region_position_degrees{harpnum="7115",noaa_ar="12673",coord="lat",job="hw",instance="i"}'
        values: '-9x5'
      - series: 'heliowatch_region_position_degrees{harpnum="7115",noaa_ar="12673",coord="lon",job="hw",instance="i"}'
        values: '30x5'
      - series: 'heliowatch_region_position_degrees{harpnum="377",noaa_ar="11158",coord="lat",job="hw",instance="i"}'
        values: '-20x5'
      - series: 'heliowatch_region_position_degrees{harpnum="377",noaa_ar="11158",coord="lon",job="hw",instance="i"}'
        values: '15x5'
      - series: 'heliowatch_region_class_info{harpnum="7115",noaa_ar="12673",mtwilson="beta-gamma-delta",job="hw",instance="i"}'
        values: '1x5'
"""


def test_region_table_has_one_row_per_region(tmp_path: Path) -> None:
    """Every query of the table gives one series per region with only the region's labels.

    Grafana's "merge" joins the queries' rows on their common label columns; a query that kept
    ``coord`` or ``level`` made one row per region and coordinate instead of one per region.
    """
    promtool = need("promtool")
    dash = json.loads(DASHBOARD.read_text())
    table = next(p for p in dash["panels"] if p["type"] == "table")
    assert table["transformations"][0]["id"] == "merge"
    regions = ('harpnum="7115",noaa_ar="12673"', 'harpnum="377",noaa_ar="11158"')
    expected = {
        "P(>=M)": {regions[0]: 0.6, regions[1]: 0.3},
        "P(>=X)": {regions[0]: 0.2, regions[1]: 0.05},
        "latitude": {regions[0]: -9, regions[1]: -20},
        "longitude": {regions[0]: 30, regions[1]: 15},
        "Mt. Wilson class": {regions[0] + ',mtwilson="beta-gamma-delta"': 1},
    }
    renames = next(t for t in table["transformations"] if t["id"] == "organize")["options"]["renameByName"]
    column = {f"Value #{ref}": name for ref, name in (("A", "P(>=M)"), ("B", "P(>=X)"), ("C", "latitude"), ("D", "longitude"))}
    assert {k: renames[k] for k in column} == column
    tests = []
    for target in table["targets"]:
        assert target["instant"] and target["format"] == "table"
        want = expected[column.get(f"Value #{target['refId']}", "Mt. Wilson class")]
        expr = target["expr"].replace("$instance", ".*")  # what Grafana sends with "All" selected
        samples = [{"labels": "{" + labels + "}", "value": v} for labels, v in want.items()]
        tests.append(f"      - expr: {json.dumps(expr)}\n        eval_time: 2m\n        exp_samples: {json.dumps(samples)}")
    f = tmp_path / "table.test.yml"
    f.write_text(
        "rule_files: []\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:"
        + _REGION_SERIES
        + "    promql_expr_test:\n"
        + "\n".join(tests)
        + "\n"
    )
    p = subprocess.run([promtool, "test", "rules", str(f)], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


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
        names |= {
            w for w in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", bare) if w.startswith(("heliowatch_", "process_")) or w == "up"
        }
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


def test_live_exposition_passes_promtool_with_process_metrics_and_zeros(live_daemon: dict) -> None:
    promtool = need("promtool")
    text = urllib.request.urlopen(live_daemon["base"] + "/metrics", timeout=10).read().decode()
    p = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    samples = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line[:1].isalpha()}
    assert samples["process_resident_memory_bytes"] > 10e6  # a Python process with numpy and torch
    assert samples["process_open_fds"] > 0 and samples["process_cpu_seconds_total"] > 0
    assert samples["heliowatch_replay"] == 1.0  # the rules mute their data-age checks on it
    # The health panel's failure count reads 0, not "No data", before anything has failed.
    assert samples['heliowatch_alert_delivery_failures_total{channel="mail",kind="flare_region"}'] == 0.0


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
    # No ExecReload: the daemon has no reload, and a reload by SIGTERM (or SIGHUP/SIGINT, which
    # systemd also counts as clean exits) would stop the service for good under Restart=on-failure.
    # Without one, `systemctl reload` fails ("Job type reload is not applicable") and it keeps running.
    assert not re.search(r"^ExecReload=", text, re.M)
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


#: Debian's /etc/prometheus/prometheus.yml as the package installs it: no rule files, no heliowatch job.
_DEBIAN_PROMETHEUS_YML = """global:
  scrape_interval:     15s
  evaluation_interval: 15s
alerting:
  alertmanagers:
  - static_configs:
    - targets: ['localhost:9093']
rule_files:
  # - "first_rules.yml"
scrape_configs:
  - job_name: 'prometheus'
    static_configs:
      - targets: ['localhost:9090']
  - job_name: node
    static_configs:
      - targets: ['localhost:9100']
"""


def _snippet(out: str) -> list[str]:
    lines = out.splitlines()
    return lines[lines.index("----- prometheus.yml -----") + 1 : lines.index("----- end -----")]


def test_install_dry_run_shows_the_prometheus_wiring(tmp_path: Path) -> None:
    promtool = need("promtool")
    script = DEPLOY / "install.sh"
    dry = subprocess.run(["bash", str(script), "--root", str(tmp_path), "--dry-run"], capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr
    rules = "/etc/prometheus/rules.d/heliowatch-rules.yml"
    assert f"would: install -D -m 0644 {DEPLOY / 'prometheus' / 'heliowatch-rules.yml'} {tmp_path}{rules}" in dry.stdout
    assert "/etc/prometheus/prometheus.yml does not exist" in dry.stdout
    assert _snippet(dry.stdout) == [
        "rule_files:",
        f"  - {rules}",
        "scrape_configs:",
        "  - job_name: heliowatch",
        "    static_configs:",
        '      - targets: ["127.0.0.1:9464"]',
    ]
    assert "dry run, nothing changed" in dry.stdout and not any(tmp_path.iterdir())

    # Debian's prometheus.yml and an operator's metrics port: named, not edited; the printed
    # lines merged into it make a configuration promtool accepts, with the heliowatch job.
    (tmp_path / "etc/prometheus").mkdir(parents=True)
    promyml = tmp_path / "etc/prometheus/prometheus.yml"
    promyml.write_text(_DEBIAN_PROMETHEUS_YML)
    (tmp_path / "etc/heliowatch").mkdir(parents=True)
    (tmp_path / "etc/heliowatch/config.toml").write_text("[daemon]\nstate_dir = '/var/lib/heliowatch'\n[metrics]\nport = 9470\n")
    out = subprocess.run(["bash", str(script), "--root", str(tmp_path), "--dry-run"], capture_output=True, text=True).stdout
    assert "has no rule_files entry for /etc/prometheus/rules.d/heliowatch-rules.yml and no heliowatch scrape job" in out
    assert "install.sh does not edit it" in out and "promtool check config /etc/prometheus/prometheus.yml" in out
    assert promyml.read_text() == _DEBIAN_PROMETHEUS_YML
    snippet = _snippet(out)
    assert snippet[-1] == '      - targets: ["127.0.0.1:9470"]'
    merged = _DEBIAN_PROMETHEUS_YML.replace("rule_files:\n", "rule_files:\n" + snippet[1] + "\n") + "\n".join(snippet[3:]) + "\n"
    wired = tmp_path / "wired.yml"
    wired.write_text(merged)
    c = subprocess.run([promtool, "check", "config", "--syntax-only", str(wired)], capture_output=True, text=True)
    assert c.returncode == 0, c.stdout + c.stderr

    # Once wired, install.sh says so and prints nothing to add.
    promyml.write_text(merged)
    out = subprocess.run(["bash", str(script), "--root", str(tmp_path), "--dry-run"], capture_output=True, text=True).stdout
    assert "loads the rules and has a heliowatch job: nothing to add" in out
    assert "----- prometheus.yml -----" not in out


def test_install_sets_the_dashboard_status_url_and_the_service_state_dir(tmp_path: Path) -> None:
    script = DEPLOY / "install.sh"
    url = "https://sun.example.org/heliowatch/"
    p = subprocess.run(["bash", str(script), "--root", str(tmp_path), "--status-url", url], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    dash = json.loads((tmp_path / "var/lib/grafana/dashboards/heliowatch/heliowatch-dashboard.json").read_text())
    var = next(v for v in dash["templating"]["list"] if v["name"] == "heliowatch_url")
    assert var["query"] == var["current"]["value"] == "https://sun.example.org/heliowatch"
    assert 'state_dir = "/var/lib/heliowatch"' in (tmp_path / "etc/heliowatch/config.toml").read_text()
    bad = subprocess.run(
        ["bash", str(script), "--root", str(tmp_path), "--status-url", "javascript:x'"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "--status-url must be an http(s):// URL" in bad.stderr
