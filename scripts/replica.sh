#!/usr/bin/env bash
# A private PostgreSQL primary and a streaming replica of it, on loopback, for development and
# for tests/replica (docs/OPERATIONS.md "Read replicas").
#
#   scripts/replica.sh start     initdb the primary (first time), start it, create the database,
#                                clone it with `pg_basebackup -R` (first time), start the replica
#   scripts/replica.sh stop      stop both (fast shutdown); the data stays for the next start
#   scripts/replica.sh destroy   stop both and delete their data
#   scripts/replica.sh crash     stop the replica at once (immediate shutdown, as a crash)
#   scripts/replica.sh status    pg_ctl status of both
#   scripts/replica.sh env       the DATABASE_URL and DATABASE_REPLICA_URLS that point at them
#
# Environment: REPLICA_DIR (data and logs, default var/replica), REPLICA_PRIMARY_PORT (5442),
# REPLICA_PORT (5443), REPLICA_DB (inbo), PG_BIN (/usr/lib/postgresql/15/bin). Run as root,
# the servers run as the `postgres` OS user; run as anyone else, as that user.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DIR="${REPLICA_DIR:-$ROOT/var/replica}"
PRIMARY_PORT="${REPLICA_PRIMARY_PORT:-5442}"
REPLICA_PORT="${REPLICA_PORT:-5443}"
DB="${REPLICA_DB:-inbo}"
PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
PRIMARY="$DIR/primary"
REPLICA="$DIR/replica"

as_pg() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

log() { printf '==> %s\n' "$*" >&2; }

prepare_dir() {
  mkdir -p "$DIR"
  if [ "$(id -u)" = 0 ]; then
    chown postgres: "$DIR"
    # The servers run as postgres: every parent of the directory must let that user in.
    if ! runuser -u postgres -- test -w "$DIR"; then
      echo "the postgres user cannot write $DIR: choose another REPLICA_DIR" >&2
      exit 1
    fi
  fi
}

start_primary() {
  if [ ! -f "$PRIMARY/PG_VERSION" ]; then
    log "initdb: primary in $PRIMARY"
    as_pg "$PG_BIN/initdb" -D "$PRIMARY" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 --no-sync \
      >"$DIR/initdb.log"
    # A throwaway cluster: no fsync. Replication slots are not used: the replica streams
    # from WAL the primary still keeps (wal_keep_size), enough for tests and development.
    cat >>"$PRIMARY/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PRIMARY_PORT
unix_socket_directories = '$DIR'
wal_level = replica
max_wal_senders = 4
wal_keep_size = 256MB
hot_standby = on
fsync = off
full_page_writes = off
shared_buffers = 32MB
max_connections = 40
EOF
  fi
  if ! as_pg "$PG_BIN/pg_ctl" -D "$PRIMARY" status >/dev/null 2>&1; then
    log "starting the primary on 127.0.0.1:$PRIMARY_PORT"
    as_pg "$PG_BIN/pg_ctl" -D "$PRIMARY" -l "$DIR/primary.log" -w -t 30 start >/dev/null
  fi
  if [ -z "$(as_pg "$PG_BIN/psql" -h 127.0.0.1 -p "$PRIMARY_PORT" -U postgres -d postgres -Atc \
    "SELECT 1 FROM pg_database WHERE datname = '$DB'")" ]; then
    as_pg "$PG_BIN/createdb" -h 127.0.0.1 -p "$PRIMARY_PORT" -U postgres "$DB"
  fi
}

start_replica() {
  if [ ! -f "$REPLICA/PG_VERSION" ]; then
    log "pg_basebackup -R: replica in $REPLICA"
    as_pg "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$PRIMARY_PORT" -U postgres -D "$REPLICA" \
      -R -X stream -c fast --no-sync
    printf 'port = %s\n' "$REPLICA_PORT" >>"$REPLICA/postgresql.conf"
  fi
  if ! as_pg "$PG_BIN/pg_ctl" -D "$REPLICA" status >/dev/null 2>&1; then
    log "starting the replica on 127.0.0.1:$REPLICA_PORT"
    as_pg "$PG_BIN/pg_ctl" -D "$REPLICA" -l "$DIR/replica.log" -w -t 30 start >/dev/null
  fi
}

stop_one() {
  if [ -f "$1/PG_VERSION" ] && as_pg "$PG_BIN/pg_ctl" -D "$1" status >/dev/null 2>&1; then
    as_pg "$PG_BIN/pg_ctl" -D "$1" -m fast -w stop >/dev/null
  fi
}

case "${1:-}" in
  start)
    prepare_dir
    start_primary
    start_replica
    log "primary 127.0.0.1:$PRIMARY_PORT, replica 127.0.0.1:$REPLICA_PORT, database $DB"
    ;;
  stop)
    stop_one "$REPLICA"
    stop_one "$PRIMARY"
    ;;
  destroy)
    # The data goes anyway: no shutdown checkpoint to wait for.
    for d in "$REPLICA" "$PRIMARY"; do
      if [ -f "$d/PG_VERSION" ] && as_pg "$PG_BIN/pg_ctl" -D "$d" status >/dev/null 2>&1; then
        as_pg "$PG_BIN/pg_ctl" -D "$d" -m immediate -w stop >/dev/null
      fi
    done
    rm -rf "$DIR"
    ;;
  crash)
    if as_pg "$PG_BIN/pg_ctl" -D "$REPLICA" status >/dev/null 2>&1; then
      as_pg "$PG_BIN/pg_ctl" -D "$REPLICA" -m immediate -w stop >/dev/null
    fi
    ;;
  status)
    for d in "$PRIMARY" "$REPLICA"; do
      printf '%s: ' "$d"
      as_pg "$PG_BIN/pg_ctl" -D "$d" status >/dev/null 2>&1 && echo running || echo stopped
    done
    ;;
  env)
    echo "DATABASE_URL=postgres://postgres@127.0.0.1:$PRIMARY_PORT/$DB"
    echo "DATABASE_REPLICA_URLS=postgres://postgres@127.0.0.1:$REPLICA_PORT/$DB"
    ;;
  *)
    echo "usage: $0 start|stop|destroy|crash|status|env" >&2
    exit 2
    ;;
esac
