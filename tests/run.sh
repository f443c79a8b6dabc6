#!/usr/bin/env bash
# Set up and run heliowatch's whole test suite (the README's test command; .ci/run calls it).
#
# 1. Debian packages for the end-to-end tests: promtool (prometheus), chromium, postgresql,
#    systemd-analyze (systemd), faketime (libfaketime, for the wall-clock step test). Installed when
#    running as root with apt; otherwise those tests skip locally with a reason (under CI=true they
#    fail instead). The full-disk and read-only tests mount small tmpfs file systems: root only.
# 2. A private PostgreSQL on 127.0.0.1 for the store/state tests, stopped at exit.
# 3. The virtual environment with the cpu and test extras, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  need=""
  command -v promtool >/dev/null 2>&1 || need="$need prometheus"
  command -v chromium >/dev/null 2>&1 || need="$need chromium"
  command -v systemd-analyze >/dev/null 2>&1 || need="$need systemd"
  command -v faketime >/dev/null 2>&1 || need="$need faketime"
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need="$need postgresql"
  if [ -n "$need" ]; then
    echo "tests/run.sh: installing Debian packages:$need" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null
  fi
fi

pg_started=""
if [ -z "${HELIOWATCH_TEST_PG_URL:-}" ] && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  pgbin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
  pgdata="$(mktemp -d /tmp/heliowatch-pg.XXXXXX)"
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  as_pg=()
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    chown postgres "$pgdata"
    as_pg=(runuser -u postgres --)
  fi
  "${as_pg[@]}" "$pgbin/initdb" -D "$pgdata" -A trust -U postgres >/dev/null
  "${as_pg[@]}" "$pgbin/pg_ctl" -D "$pgdata" -o "-k $pgdata -h 127.0.0.1 -p $port" -l "$pgdata/log" -w start >/dev/null
  pg_started="$pgdata"
  trap '"${as_pg[@]}" "$pgbin/pg_ctl" -D "$pg_started" -m fast -w stop >/dev/null 2>&1 || true; rm -rf "$pg_started"' EXIT
  "${as_pg[@]}" "$pgbin/createdb" -h 127.0.0.1 -p "$port" -U postgres heliowatch_test
  export HELIOWATCH_TEST_PG_URL="postgresql+psycopg://postgres@127.0.0.1:$port/heliowatch_test"
fi

python3 -m venv .venv
. .venv/bin/activate
pip install -q -e '.[cpu,test]'
python -m pytest -q "$@"
