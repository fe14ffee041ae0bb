# Shared by scripts/run and scripts/test: venv, dependencies, local services.
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"
cd "$ROOT"

log() { printf '\033[1m==> %s\033[0m\n' "$*"; }

# Create the virtualenv and install the project with its dev tools; reinstall only when
# pyproject.toml changed (a stamp holds its hash).
ensure_venv() {
  local python="${PYTHON:-python3.11}"
  command -v "$python" >/dev/null 2>&1 || python=python3
  if [ ! -x "$PY" ]; then
    log "creating virtualenv in $VENV"
    "$python" -m venv "$VENV"
  fi
  local stamp="$VENV/.inbo-installed" want
  want="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    log "installing dependencies"
    "$PY" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$PY" -m pip install --quiet --disable-pip-version-check -e "$ROOT[dev]"
    echo "$want" >"$stamp"
  fi
}

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; }

wait_for() {
  local what="$1" check="$2" i
  for i in $(seq 1 60); do
    "$check" && return 0
    sleep 0.5
  done
  echo "$what did not come up" >&2
  return 1
}

# pg_stat_statements (what `manage.py db_report` reads, docs/OPERATIONS.md "Index
# discipline") is loaded at server start only: a local cluster that does not preload it gets
# it once, by ALTER SYSTEM and one restart. Runs before anything opens a connection; a
# remote DATABASE_URL or a server this machine does not manage is left alone.
ensure_pg_stat_statements() {
  case "${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/}" in
    *@127.0.0.1:5432/* | *@localhost:5432/* | *@127.0.0.1/* | *@localhost/*) ;;
    *) return 0 ;;
  esac
  local preload version item list=""
  preload="$(psql -w -h 127.0.0.1 -p 5432 -U postgres -d postgres -XAtqc \
    'SHOW shared_preload_libraries' 2>/dev/null)" || return 0
  case ",${preload// /}," in *,pg_stat_statements,*) return 0 ;; esac
  version="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n1)"
  if [ -z "$version" ] || ! command -v pg_ctlcluster >/dev/null \
    || ! pg_lsclusters -h 2>/dev/null | awk -v v="$version" '$1 == v && $2 == "main" {f=1} END {exit !f}'; then
    log "PostgreSQL does not preload pg_stat_statements: db_report will say so"
    return 0
  fi
  # A list setting: each library its own quoted element, the existing ones kept.
  for item in ${preload//,/ } pg_stat_statements; do
    list="${list:+$list, }'$item'"
  done
  log "preloading pg_stat_statements (restarts the local PostgreSQL $version once)"
  if ! psql -w -h 127.0.0.1 -p 5432 -U postgres -d postgres -Xqc \
    "ALTER SYSTEM SET shared_preload_libraries = $list"; then
    log "could not preload pg_stat_statements (not a superuser?): db_report will say so"
    return 0
  fi
  if ! pg_ctlcluster --skip-systemctl-redirect "$version" main restart; then
    log "PostgreSQL loads pg_stat_statements at its next restart"
  fi
  wait_for PostgreSQL pg_up
}

# Start PostgreSQL and Redis on this machine if they are not already answering. Only
# services on 127.0.0.1 are managed here; a remote DATABASE_URL/REDIS_URL is left alone.
ensure_services() {
  if ! pg_up; then
    log "starting PostgreSQL"
    local version
    version="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n1)"
    if [ -n "$version" ] && command -v pg_ctlcluster >/dev/null; then
      pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    fi
    wait_for PostgreSQL pg_up
  fi
  ensure_pg_stat_statements
  if ! redis_up; then
    log "starting Redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
      --dir /tmp --logfile /tmp/inbo-redis.log
    wait_for Redis redis_up
  fi
}
