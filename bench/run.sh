#!/usr/bin/env bash
# `make bench`: seed (or reuse) the benchmark world, then measure home (linear and learned
# paths), ingestion and the ceiling endpoint on loopback. `bench/run.sh ml` (`make bench-ml`):
# the same world, then the learned models' costs in one process (bench/ml.py).
# Sizes and knobs: BENCH_* variables (docs/BENCHMARKS.md).
# The benchmark uses its own database (inbo_bench) and its own Redis server (port 6479,
# databases 4/5/6), started here and stopped (saving its counters) when the run ends.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

mode="${1:-load}"
ensure_venv
ensure_services
if [ "$mode" = load ] && ! command -v wrk >/dev/null 2>&1; then
  log "installing wrk (the load generator)"
  if [ "$(id -u)" = 0 ]; then apt-get install -y -q wrk >/dev/null; else sudo apt-get install -y -q wrk >/dev/null; fi
fi
# PgBouncer for the connection comparison (bench/stack.py); not needed with BENCH_STACK=0.
if [ "$mode" = load ] && [ "${BENCH_STACK:-1}" != 0 ] && ! command -v pgbouncer >/dev/null 2>&1 \
  && [ ! -x /usr/sbin/pgbouncer ]; then
  log "installing pgbouncer (the connection pooler compared by the benchmark)"
  if [ "$(id -u)" = 0 ]; then apt-get install -y -q pgbouncer >/dev/null; else sudo apt-get install -y -q pgbouncer >/dev/null; fi
fi
redis_port="${BENCH_REDIS_PORT:-6479}"
redis_dir="$ROOT/var/bench/redis-$redis_port"
mkdir -p "$redis_dir"
bench_redis() { redis-cli -h 127.0.0.1 -p "$redis_port" "$@"; }
if ! bench_redis ping >/dev/null 2>&1; then
  log "starting the benchmark's Redis on 127.0.0.1:$redis_port (data in ${redis_dir#"$ROOT/"})"
  redis-server --port "$redis_port" --bind 127.0.0.1 --daemonize yes \
    --dir "$redis_dir" --dbfilename dump.rdb --save "" --appendonly no \
    --pidfile "$redis_dir/redis.pid" --logfile "$redis_dir/redis.log"
  # Ready once it answers and has loaded the counters saved by the previous run.
  for _ in $(seq 1 300); do
    bench_redis info persistence 2>/dev/null | grep -q '^loading:0' && break
    sleep 0.2
  done
fi
# Save the counters for the next run and stop the server, however this run ends.
trap 'bench_redis shutdown save >/dev/null 2>&1 || true' EXIT

reseed=()
if [ "${BENCH_RESEED:-}" = 1 ] || [ "${BENCH_RESEED:-}" = true ]; then reseed=(--reseed); fi

log "benchmark world (PostgreSQL ${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/inbo_bench})"
"$PY" -m bench.seed_world "${reseed[@]}"
if [ "$mode" = ml ]; then
  log "measuring the learned models' costs"
  "$PY" -m bench.ml
else
  log "measuring on loopback"
  "$PY" -m bench.load
fi
