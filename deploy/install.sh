#!/usr/bin/env bash
# Install heliowatch's service files on an observatory box. Idempotent: re-running changes
# nothing that is already in place (an existing /etc/heliowatch/config.toml is never replaced).
#
#   deploy/install.sh [--dry-run] [--root DIR] [--no-user] [--venv /opt/heliowatch] [--status-url URL]
#
# --dry-run         print what would be done, change nothing
# --root DIR        install under DIR instead of / (staging, packaging, tests)
# --no-user         do not create the heliowatch system user (it must exist, or --root is used)
# --venv DIR        where the heliowatch virtual environment is (ExecStart points at DIR/bin/heliowatch)
# --status-url URL  where viewers' browsers reach the status page (a reverse proxy; heliowatch
#                   binds 127.0.0.1): the Grafana dashboard's quicklook panel loads URL/quicklook.png
#
# Prometheus: the rules go to /etc/prometheus/rules.d/. prometheus.yml is never edited; when it
# does not load those rules or has no heliowatch scrape job, the exact lines to add are printed.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
root=""
dry=0
mkuser=1
venv="/opt/heliowatch"
status_url=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry=1 ;;
    --root) root="${2:?--root needs a directory}"; shift ;;
    --no-user) mkuser=0 ;;
    --venv) venv="${2:?--venv needs a directory}"; shift ;;
    --status-url) status_url="${2:?--status-url needs a URL}"; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [ -n "$status_url" ] && ! [[ "$status_url" =~ ^https?://[^[:space:]\"\'\<\>]+$ ]]; then
  echo "install.sh: --status-url must be an http(s):// URL (got $status_url)" >&2
  exit 2
fi

changed=0
say() { printf '%s\n' "$*"; }
run() { if [ "$dry" = 1 ]; then say "would: $*"; else "$@"; fi; }

# copy SRC DEST MODE [ORIGIN]: ORIGIN names a generated SRC's template in a dry run's output.
copy() {
  if [ "$dry" = 1 ]; then
    say "would: install -D -m $3 ${4:-$1} $2"
  else
    install -D -m "$3" "$1" "$2"
  fi
}

# put SRC DEST MODE [ORIGIN]: copy only when the content differs.
put() {
  local src="$1" dest="$root$2" mode="$3"
  if [ -f "$dest" ] && cmp -s "$src" "$dest"; then
    return 0
  fi
  changed=1
  say "install $2"
  copy "$src" "$dest" "$mode" "${4:-}"
}

# keep SRC DEST [ORIGIN]: install only if DEST does not exist (operator-owned files).
keep() {
  local src="$1" dest="$root$2"
  if [ -e "$dest" ]; then
    return 0
  fi
  changed=1
  say "install $2 (new)"
  copy "$src" "$dest" 0640 "${3:-}"
}

dir() {
  local d="$root$1" mode="$2"
  if [ -d "$d" ]; then
    return 0
  fi
  changed=1
  say "mkdir $1"
  run install -d -m "$mode" "$d"
}

if [ "$mkuser" = 1 ] && [ -z "$root" ]; then
  if ! id heliowatch >/dev/null 2>&1; then
    changed=1
    say "create system user heliowatch"
    run useradd --system --home-dir /var/lib/heliowatch --shell /usr/sbin/nologin --groups video,render heliowatch
  fi
fi

dir /etc/heliowatch 0750
dir /etc/heliowatch/credentials 0700
dir /var/lib/heliowatch 0750
dir /var/cache/heliowatch 0750
dir /var/log/heliowatch 0750

unit="$(mktemp)"
trap 'rm -f "$unit"' EXIT
# The shipped config's state_dir is the demo's (relative: next to the config file); the
# service's is /var/lib/heliowatch, so `heliowatch status --config ...` finds the service's state.
sed 's|^state_dir = .*|state_dir = "/var/lib/heliowatch"|' "$here/daemon/default_config.toml" > "$unit"
keep "$unit" /etc/heliowatch/config.toml "$here/daemon/default_config.toml(state_dir=/var/lib/heliowatch)"
sed "s|/opt/heliowatch/bin/heliowatch|$venv/bin/heliowatch|" "$here/systemd/heliowatch.service" > "$unit"
put "$unit" /etc/systemd/system/heliowatch.service 0644 "$here/systemd/heliowatch.service(with $venv/bin/heliowatch)"
put "$here/systemd/heliowatch.service.d/hardening.conf" /etc/systemd/system/heliowatch.service.d/hardening.conf 0644
for u in heliowatch-backfill@.service heliowatch-gapfill.service heliowatch-gapfill.timer; do
  sed "s|/opt/heliowatch/bin/heliowatch|$venv/bin/heliowatch|" "$here/systemd/$u" > "$unit"
  put "$unit" "/etc/systemd/system/$u" 0644 "$here/systemd/$u(with $venv/bin/heliowatch)"
done
put "$here/deploy/prometheus/heliowatch-rules.yml" /etc/prometheus/rules.d/heliowatch-rules.yml 0644
put "$here/deploy/grafana/provisioning/datasources/heliowatch.yaml" /etc/grafana/provisioning/datasources/heliowatch.yaml 0644
put "$here/deploy/grafana/provisioning/dashboards/heliowatch.yaml" /etc/grafana/provisioning/dashboards/heliowatch.yaml 0644
if [ -n "$status_url" ]; then
  sed "s|\"http://127.0.0.1:9464\"|\"${status_url%/}\"|g" "$here/deploy/grafana/heliowatch-dashboard.json" > "$unit"
else
  cp "$here/deploy/grafana/heliowatch-dashboard.json" "$unit"
fi
put "$unit" /var/lib/grafana/dashboards/heliowatch/heliowatch-dashboard.json 0644 \
  "$here/deploy/grafana/heliowatch-dashboard.json${status_url:+(heliowatch_url=${status_url%/})}"

if [ -z "$root" ] && [ "$changed" = 1 ] && command -v systemctl >/dev/null 2>&1; then
  run systemctl daemon-reload
fi
# -- Prometheus wiring: report, never edit (prometheus.yml is the operator's) -----------------
rules_path=/etc/prometheus/rules.d/heliowatch-rules.yml
promyml=/etc/prometheus/prometheus.yml
hwconf="$root/etc/heliowatch/config.toml"
[ -f "$hwconf" ] || hwconf="$here/daemon/default_config.toml"
# [metrics] host and port of the installed config (the daemon's defaults otherwise).
mport="$(awk '/^\[/{s=$0} s=="[metrics]" && /^port *=/{sub(/^port *= */,""); sub(/[^0-9].*$/,""); print; exit}' "$hwconf")"
mhost="$(awk '/^\[/{s=$0} s=="[metrics]" && /^host *=/{sub(/^host *= *["\047]/,""); sub(/["\047].*$/,""); print; exit}' "$hwconf")"
mport="${mport:-9464}"
mhost="${mhost:-127.0.0.1}"
case "$mhost" in 0.0.0.0|::) mhost=127.0.0.1 ;; esac
target="$mhost:$mport"
has_rules=0
has_job=0
if [ -f "$root$promyml" ]; then
  grep -Eq "^[[:space:]]*-[[:space:]]*[\"']?/etc/prometheus/rules\.d/(\*|heliowatch-rules)\.ya?ml[\"']?[[:space:]]*(#.*)?$" "$root$promyml" && has_rules=1
  grep -Eq "^[[:space:]]*-?[[:space:]]*job_name:[[:space:]]*[\"']?heliowatch[\"']?[[:space:]]*(#.*)?$" "$root$promyml" && has_job=1
fi
say "Prometheus wiring:"
say "  rules:  $rules_path (promtool-tested alert rules; their job label is \"heliowatch\")"
say "  scrape: http://$target/metrics (metrics.host and metrics.port of ${hwconf#"$root"})"
if [ ! -f "$root$promyml" ]; then
  say "  $promyml does not exist: add the lines below to your Prometheus configuration."
elif [ "$has_rules" = 1 ] && [ "$has_job" = 1 ]; then
  if grep -Fq "$target" "$root$promyml"; then
    say "  $promyml loads the rules and has a heliowatch job: nothing to add."
  else
    say "  $promyml loads the rules and has a heliowatch job, but $target is not in it: check the job's targets."
  fi
else
  missing=""
  [ "$has_rules" = 1 ] || missing="no rule_files entry for $rules_path"
  [ "$has_job" = 1 ] || missing="${missing:+$missing and }no heliowatch scrape job"
  say "  $promyml has $missing."
  say "  install.sh does not edit it: merge the lines below into its rule_files: and scrape_configs: lists,"
  say "  then run: promtool check config $promyml && systemctl reload prometheus"
fi
if [ "$has_rules" = 0 ] || [ "$has_job" = 0 ]; then
  say "----- prometheus.yml -----"
  if [ "$has_rules" = 0 ]; then
    say "rule_files:"
    say "  - $rules_path"
  fi
  if [ "$has_job" = 0 ]; then
    say "scrape_configs:"
    say "  - job_name: heliowatch"
    say "    static_configs:"
    say "      - targets: [\"$target\"]"
  fi
  say "----- end -----"
fi

if [ "$changed" = 0 ]; then
  say "heliowatch: already installed, nothing to do"
elif [ "$dry" = 1 ]; then
  say "heliowatch: dry run, nothing changed${root:+ under $root}"
else
  say "heliowatch: installed${root:+ under $root}. Next: put the JSOC e-mail and SMTP password in /etc/heliowatch/credentials/, review /etc/heliowatch/config.toml, then: systemctl enable --now heliowatch heliowatch-gapfill.timer"
fi
