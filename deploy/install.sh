#!/usr/bin/env bash
# Install heliowatch's service files on an observatory box. Idempotent: re-running changes
# nothing that is already in place (an existing /etc/heliowatch/config.toml is never replaced).
#
#   deploy/install.sh [--dry-run] [--root DIR] [--no-user] [--venv /opt/heliowatch]
#
# --dry-run   print what would be done, change nothing
# --root DIR  install under DIR instead of / (staging, packaging, tests)
# --no-user   do not create the heliowatch system user (it must exist, or --root is used)
# --venv DIR  where the heliowatch virtual environment is (ExecStart points at DIR/bin/heliowatch)
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
root=""
dry=0
mkuser=1
venv="/opt/heliowatch"
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry=1 ;;
    --root) root="${2:?--root needs a directory}"; shift ;;
    --no-user) mkuser=0 ;;
    --venv) venv="${2:?--venv needs a directory}"; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

changed=0
say() { printf '%s\n' "$*"; }
run() { if [ "$dry" = 1 ]; then say "would: $*"; else "$@"; fi; }

# install SRC DEST MODE: copy only when the content differs.
put() {
  local src="$1" dest="$root$2" mode="$3"
  if [ -f "$dest" ] && cmp -s "$src" "$dest"; then
    return 0
  fi
  changed=1
  say "install $2"
  run install -D -m "$mode" "$src" "$dest"
}

# keep SRC DEST: install only if DEST does not exist (operator-owned files).
keep() {
  local src="$1" dest="$root$2"
  if [ -e "$dest" ]; then
    return 0
  fi
  changed=1
  say "install $2 (new)"
  run install -D -m 0640 "$src" "$dest"
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
keep "$here/daemon/default_config.toml" /etc/heliowatch/config.toml

unit="$(mktemp)"
trap 'rm -f "$unit"' EXIT
sed "s|/opt/heliowatch/bin/heliowatch|$venv/bin/heliowatch|" "$here/systemd/heliowatch.service" > "$unit"
put "$unit" /etc/systemd/system/heliowatch.service 0644
put "$here/systemd/heliowatch.service.d/hardening.conf" /etc/systemd/system/heliowatch.service.d/hardening.conf 0644
for u in heliowatch-backfill@.service heliowatch-gapfill.service heliowatch-gapfill.timer; do
  sed "s|/opt/heliowatch/bin/heliowatch|$venv/bin/heliowatch|" "$here/systemd/$u" > "$unit"
  put "$unit" "/etc/systemd/system/$u" 0644
done
put "$here/deploy/prometheus/heliowatch-rules.yml" /etc/prometheus/rules.d/heliowatch-rules.yml 0644
put "$here/deploy/grafana/provisioning/datasources/heliowatch.yaml" /etc/grafana/provisioning/datasources/heliowatch.yaml 0644
put "$here/deploy/grafana/provisioning/dashboards/heliowatch.yaml" /etc/grafana/provisioning/dashboards/heliowatch.yaml 0644
put "$here/deploy/grafana/heliowatch-dashboard.json" /var/lib/grafana/dashboards/heliowatch/heliowatch-dashboard.json 0644

if [ -z "$root" ] && [ "$changed" = 1 ] && command -v systemctl >/dev/null 2>&1; then
  run systemctl daemon-reload
fi
if [ "$changed" = 0 ]; then
  say "heliowatch: already installed, nothing to do"
else
  say "heliowatch: installed${root:+ under $root}. Next: put the JSOC e-mail and SMTP password in /etc/heliowatch/credentials/, review /etc/heliowatch/config.toml, then: systemctl enable --now heliowatch heliowatch-gapfill.timer"
fi
