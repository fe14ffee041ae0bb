"""Connections and web servers compared in one run (``make bench``, after its other phases).

Two comparisons, each against a baseline measured minutes apart on the same machine:

* **pooling** — how each web process holds its PostgreSQL connections (inbo/settings.py,
  ``DATABASE_CONNECTIONS``), measured on the cold home (a feed built per request: the most
  queries) and on the ceiling endpoint (no query: what the connection handling alone costs):

  - ``persistent`` — one connection per thread kept open (``CONN_MAX_AGE`` 60; baseline);
  - ``pool`` — psycopg's pool in each process (``DATABASE_CONNECTIONS=pool``);
  - ``pgbouncer`` — persistent connections to PgBouncer (the Debian package, started here on
    ``BENCH_PGBOUNCER_PORT`` from bench/pgbouncer.ini) in transaction mode, with the app's
    PgBouncer settings (``DATABASE_PGBOUNCER=true``); PgBouncer's own CPU is counted with
    the app's, since it is a hop every query pays;

  all on the bench's server (gunicorn, ``BENCH_WORKERS`` sync workers);

* **serving** — the web server, on the warm home (feeds cached: what most requests are) and
  the ceiling: gunicorn ``sync`` (``BENCH_WORKERS`` x 1 thread; baseline), gunicorn
  ``gthread`` and granian (the image's server, ADR 0015) with ``BENCH_STACK_THREADS``
  threads per worker, and granian with one thread per worker (like for like with sync).

Each measurement is ``BENCH_STACK_DURATION`` seconds (10) after ``BENCH_STACK_WARMUP`` (2);
``BENCH_STACK=0`` skips both comparisons. The baseline runs first and again last
(``<baseline>_again``; ``BENCH_STACK_REPEAT_BASELINE=0``: once): the ratios are to the mean
of its two runs, and their difference (``drift``) says how far the machine moved meanwhile,
so a ratio inside the drift is no difference. The figures go to ``results.json`` under
``stack``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from bench.common import ROOT, VAR, env_int, say
from bench.server import Server, _process_cpu, wrk

ENABLED = os.environ.get("BENCH_STACK", "1").strip().lower() not in {"0", "false", "no", "off"}
DURATION = env_int("BENCH_STACK_DURATION", 10)
WARMUP = env_int("BENCH_STACK_WARMUP", 2)
THREADS = env_int("BENCH_STACK_THREADS", 4)  # as the image runs granian (WEB_THREADS)
PGBOUNCER_PORT = env_int("BENCH_PGBOUNCER_PORT", 6488)
REPEAT_BASELINE = env_int("BENCH_STACK_REPEAT_BASELINE", 1) == 1
AGAIN = "_again"

POOLING = ("persistent", "pool", "pgbouncer")
# name -> (server kind, threads per worker)
SERVING = {
    "gunicorn_sync": ("gunicorn", 1),
    "gunicorn_gthread": ("gunicorn", THREADS),
    "granian": ("granian", THREADS),
    "granian_1thread": ("granian", 1),
}


# --- PgBouncer -------------------------------------------------------------------------


class PgBouncer:
    """The Debian package's pgbouncer on loopback, transaction pooling, for one phase."""

    def __init__(self, database_url: str, pool_size: int, port: int = PGBOUNCER_PORT) -> None:
        self.database_url, self.pool_size, self.port = database_url, pool_size, port
        self.proc: subprocess.Popen | None = None
        self.dir = Path(tempfile.mkdtemp(prefix="inbo-bench-pgbouncer-"))

    @property
    def url(self) -> str:
        """The app's DATABASE_URL through PgBouncer (same database and user)."""
        parts = urlsplit(self.database_url)
        user = f"{parts.username}@" if parts.username else ""
        return urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{self.port}"))

    def start(self) -> None:
        from django.conf import settings

        binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
        if not Path(binary).exists():
            raise SystemExit("bench: pgbouncer is not installed (apt-get install -y pgbouncer)")
        parts = urlsplit(self.database_url)
        config = (
            (ROOT / "bench" / "pgbouncer.ini")
            .read_text()
            .format(
                dbname=parts.path.lstrip("/"),
                pg_port=parts.port or 5432,
                statement_timeout_ms=settings.DATABASE_STATEMENT_TIMEOUT_MS,
                port=self.port,
                auth_file=self.dir / "userlist.txt",
                pool_size=self.pool_size,
            )
        )
        (self.dir / "pgbouncer.ini").write_text(config)
        (self.dir / "userlist.txt").write_text(f'"{parts.username or "postgres"}" ""\n')
        # PgBouncer will not run as root: it switches to the postgres user, who must read these.
        for path in (self.dir, *self.dir.iterdir()):
            path.chmod(0o755 if path.is_dir() else 0o644)
        command = [binary, str(self.dir / "pgbouncer.ini")]
        if os.geteuid() == 0:
            command[1:1] = ["-u", "postgres"]
        VAR.mkdir(parents=True, exist_ok=True)
        log = open(VAR / "pgbouncer.log", "a")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"bench: pgbouncer exited; see {VAR / 'pgbouncer.log'}")
            ready = subprocess.run(
                ["pg_isready", "-q", "-h", "127.0.0.1", "-p", str(self.port)], check=False
            )
            if ready.returncode == 0:
                return
            time.sleep(0.2)
        self.stop()
        raise SystemExit("bench: pgbouncer did not answer within 10 s")

    def cpu_seconds(self) -> float:
        return _process_cpu(self.proc.pid) if self.proc else 0.0

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


# --- measurements ----------------------------------------------------------------------


def _measure(
    server: Server,
    path: str,
    tokens_file: str,
    connections: int,
    bouncer: PgBouncer | None = None,
) -> dict:
    """A warm-up, then one measured wrk run; PgBouncer's CPU added to the app's."""
    wrk(server, path, "get.lua", [tokens_file], connections=connections, duration=WARMUP)
    before = bouncer.cpu_seconds() if bouncer else 0.0
    result = wrk(server, path, "get.lua", [tokens_file], connections=connections, duration=DURATION)
    if bouncer:
        used = bouncer.cpu_seconds() - before
        result["cpu_ms_per_request"]["pgbouncer"] = round(
            1000 * used / max(result["requests"], 1), 2
        )
    return result


def _app_cpu(figure: dict) -> float:
    """App CPU per request, PgBouncer's included where it ran."""
    cost = figure["cpu_ms_per_request"]
    return cost["app"] + cost.get("pgbouncer", 0.0)


def _cold(server, users, bouncer=None) -> dict:
    from bench import load

    load.forget_feeds([u for u, _ in users])
    load.forget_co_read()
    tokens = load.write_lines("tokens_stack_cold.txt", [t for _, t in users])
    before = load.cache_stats()
    result = _measure(server, load.HOME, tokens, load.COLD_CONNECTIONS, bouncer)
    after = load.cache_stats()
    result["cache_hits"] = after["hit"] - before["hit"]
    result["cache_misses"] = after["miss"] - before["miss"]
    load.forget_feeds([u for u, _ in users])
    return result


def _warm(server, users) -> dict:
    from bench import load

    ids = [u for u, _ in users]
    load.forget_feeds(ids)
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = set(pool.map(lambda t: load.get(load.HOME, t), [t for _, t in users]))
    if statuses != {200}:
        raise SystemExit(f"bench: priming home answered {sorted(statuses)}")
    tokens = load.write_lines("tokens_stack_warm.txt", [t for _, t in users])
    # The warm-up builds nothing more; the measured run must be all hits.
    wrk(server, load.HOME, "get.lua", [tokens], connections=load.CONNECTIONS, duration=WARMUP)
    before = load.cache_stats()
    result = wrk(
        server, load.HOME, "get.lua", [tokens], connections=load.CONNECTIONS, duration=DURATION
    )
    after = load.cache_stats()
    result["cache_hits"] = after["hit"] - before["hit"]
    result["cache_misses"] = after["miss"] - before["miss"]
    load.forget_feeds(ids)
    return result


def _ceiling(server, tokens_file, bouncer=None) -> dict:
    from bench import load

    return _measure(server, load.CEILING, tokens_file, load.CONNECTIONS, bouncer)


def _with_server(server: Server, body: Callable[[], dict]) -> dict:
    server.start()
    try:
        return body()
    finally:
        server.stop()


def pooling(env: dict[str, str], cold_users, tokens_file: str) -> dict:
    """persistent, pool and PgBouncer on the bench's sync gunicorn: ceiling and cold home."""
    from bench import load

    out: dict[str, dict] = {}
    for name in _with_baseline_again(POOLING):
        mode, bouncer = name.removesuffix(AGAIN), None
        extra = {"DATABASE_CONNECTIONS": "persistent"}
        if mode == "pool":
            extra = {
                "DATABASE_CONNECTIONS": "pool",
                "DATABASE_POOL_MIN": "1",
                "DATABASE_POOL_MAX": str(max(2, load.THREADS)),
            }
        elif mode == "pgbouncer":
            # One server connection per app worker: the hop is measured, not a queue.
            bouncer = PgBouncer(env["DATABASE_URL"], pool_size=load.WORKERS * load.THREADS)
            bouncer.start()
            extra |= {"DATABASE_URL": bouncer.url, "DATABASE_PGBOUNCER": "true"}
        server = Server(load.WORKERS, load.THREADS, {**env, **extra})
        say(f"pooling {name}: {server.label}, ceiling then cold home, {DURATION}s each")
        try:
            out[name] = _with_server(
                server,
                lambda s=server, b=bouncer: {
                    "ceiling": _ceiling(s, tokens_file, b),
                    "home_cold": _cold(s, cold_users, b),
                },
            )
        finally:
            if bouncer:
                bouncer.stop()
    return out


def serving(env: dict[str, str], warm_users, tokens_file: str) -> dict:
    """gunicorn sync and gthread, granian: ceiling and warm home, same worker count."""
    from bench import load

    out: dict[str, dict] = {}
    for name in _with_baseline_again(tuple(SERVING)):
        kind, threads = SERVING[name.removesuffix(AGAIN)]
        server = Server(load.WORKERS, threads, env, kind=kind)
        say(f"serving {name}: {server.label}, ceiling then warm home, {DURATION}s each")
        out[name] = _with_server(
            server,
            lambda s=server: {
                "ceiling": _ceiling(s, tokens_file),
                "home_warm": _warm(s, warm_users),
            },
        )
        out[name]["server"] = server.label
    return out


def _with_baseline_again(order: tuple[str, ...]) -> tuple[str, ...]:
    return (*order, order[0] + AGAIN) if REPEAT_BASELINE else order


def _endpoints(figures: dict) -> list[str]:
    return [k for k, v in figures.items() if isinstance(v, dict)]


def _baseline(variants: dict[str, dict], baseline: str) -> dict:
    """The baseline's figures, the mean of its two runs when it ran twice."""
    runs = [variants[n] for n in (baseline, baseline + AGAIN) if n in variants]
    out = {}
    for endpoint in _endpoints(runs[0]):
        figures = [r[endpoint] for r in runs]
        out[endpoint] = {
            "rps": sum(f["rps"] for f in figures) / len(figures),
            "p99_ms": sum(f["p99_ms"] for f in figures) / len(figures),
            "cpu_ms_per_request": {"app": sum(_app_cpu(f) for f in figures) / len(figures)},
        }
    return out


def drift(variants: dict[str, dict], baseline: str) -> dict:
    """The baseline's second run over its first, per endpoint (1.0: the machine held still)."""
    again = variants.get(baseline + AGAIN)
    if again is None:
        return {}
    first = variants[baseline]
    return {
        endpoint: {
            "rps": round(again[endpoint]["rps"] / max(first[endpoint]["rps"], 1e-9), 3),
            "app_cpu": round(_app_cpu(again[endpoint]) / max(_app_cpu(first[endpoint]), 1e-9), 3),
        }
        for endpoint in _endpoints(first)
    }


def compare(variants: dict[str, dict], baseline: str) -> dict:
    """Each variant's figures over its baseline's (the mean of its runs), per endpoint."""
    base = _baseline(variants, baseline)
    out: dict[str, dict] = {}
    for name, figures in variants.items():
        out[name] = {}
        for endpoint, f in figures.items():
            if not isinstance(f, dict):
                continue
            b = base[endpoint]
            out[name][endpoint] = {
                "rps_vs_baseline": round(f["rps"] / max(b["rps"], 1e-9), 3),
                "p99_vs_baseline": round(f["p99_ms"] / max(b["p99_ms"], 1e-9), 3),
                "app_cpu_vs_baseline": round(_app_cpu(f) / max(_app_cpu(b), 1e-9), 3),
            }
    return out


def best(variants: dict[str, dict]) -> dict:
    """Per endpoint: the variant with the most requests per second and the one with the
    least app CPU per request."""
    names = [n for n in variants if not n.endswith(AGAIN)]
    out = {}
    for endpoint in _endpoints(variants[names[0]]):
        out[endpoint] = {
            "rps": max(names, key=lambda n: variants[n][endpoint]["rps"]),
            "app_cpu": min(names, key=lambda n: _app_cpu(variants[n][endpoint])),
        }
    return out


def run(env: dict[str, str], *, cold_users, warm_users, tokens_file: str) -> dict:
    """Both comparisons; the server is started and stopped here for each variant."""
    started = time.monotonic()
    pool = pooling(env, cold_users, tokens_file)
    serve = serving(env, warm_users, tokens_file)
    return {
        "duration_s": DURATION,
        "warmup_s": WARMUP,
        "threads": THREADS,
        "pooling": pool,
        "pooling_vs_persistent": compare(pool, "persistent"),
        "pooling_drift": drift(pool, "persistent"),
        "pooling_best": best(pool),
        "serving": serve,
        "serving_vs_gunicorn_sync": compare(serve, "gunicorn_sync"),
        "serving_drift": drift(serve, "gunicorn_sync"),
        "serving_best": best(serve),
        "seconds": round(time.monotonic() - started, 1),
    }


def report(stack: dict | None) -> list[str]:
    """The two comparison tables for ``make bench``'s output."""
    if not stack:
        return []
    lines = [""]
    for title, key, baseline in (
        ("connections (gunicorn sync)", "pooling", "persistent"),
        ("web servers", "serving", "gunicorn_sync"),
    ):
        ratios = stack[f"{key}_vs_{baseline}"]
        head = (
            f"{title + ':':<31}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>7}"
            f"{'app ms/req':>11}  vs {baseline}: req/s, p99, app cpu"
        )
        lines += [head, "-" * len(head)]
        for name, figures in stack[key].items():
            for endpoint, f in figures.items():
                if not isinstance(f, dict):
                    continue
                r = ratios[name][endpoint]
                lines.append(
                    f"{name + ' ' + endpoint:<31}{f['rps']:>9,.1f}{f['p50_ms']:>9.1f}"
                    f"{f['p99_ms']:>9.1f}{f['errors']:>7}{_app_cpu(f):>11.2f}"
                    f"  {r['rps_vs_baseline']:.2f} / {r['p99_vs_baseline']:.2f}"
                    f" / {r['app_cpu_vs_baseline']:.2f}"
                )
        for endpoint, moved in stack.get(f"{key}_drift", {}).items():
            lines.append(
                f"  {endpoint}: {baseline} again / first: req/s {moved['rps']:.2f}, "
                f"app CPU {moved['app_cpu']:.2f} (the machine's drift meanwhile)"
            )
        for endpoint, won in stack[f"{key}_best"].items():
            lines.append(
                f"  {endpoint}: most req/s {won['rps']}, least app CPU per request {won['app_cpu']}"
            )
        lines.append("")
    lines.append(
        "  (pgbouncer's app ms/req includes PgBouncer's own CPU; "
        f"{stack['duration_s']}s per measurement, {stack['seconds']:.0f}s in all)"
    )
    return lines


def main() -> None:
    """``python -m bench.stack``: the two comparisons alone, on a seeded world."""
    import json
    import random

    from bench import load, personalization
    from bench.common import setup_django

    env = setup_django()
    VAR.mkdir(parents=True, exist_ok=True)
    users = load.bench_users()
    if not users:
        raise SystemExit("bench: no world; run python -m bench.seed_world first")
    random.Random(7).shuffle(users)
    warm, cold = users[: load.WARM_USERS], users[load.WARM_USERS :]
    tokens = load.write_lines("tokens_all.txt", [t for _, t in users])
    off = {"EXPERIENCE_PERSONALIZATION_OFF": personalization.PARTS}
    load.learned.candidates_forget([u for u, _ in users])
    figures = run(
        {**env, **off, "ML_RERANKER_ENABLED": "false"},
        cold_users=cold,
        warm_users=warm,
        tokens_file=tokens,
    )
    (VAR / "stack.json").write_text(json.dumps(figures, indent=2) + "\n")
    print("\n".join(report(figures)))
    print(f"\nresults: {VAR / 'stack.json'}")


if __name__ == "__main__":
    main()
