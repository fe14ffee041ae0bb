"""Measure the home feed, ingestion and the ceiling endpoint on loopback, in one run.

    python -m bench.load        (after python -m bench.seed_world; ``make bench`` runs both)

Starts the real app under gunicorn on ``BENCH_BIND`` (127.0.0.1:8765) with the benchmark's
database and Redis, drives it with wrk (Lua scripts in bench/wrk/ rotate the users' tokens)
and stops it at the end. Phases, in order:

1. ``ceiling`` — ``GET /api/v1/_bench/ceiling/``: token auth and one cached Redis value;
   then ``floor`` — ``GET /floor/`` on the same server (kind, workers) restarted with
   bench/floor_settings.py: no middleware, no authentication, one Redis GET and a body the
   size of this run's home answer (bench/floor.py); the ceiling's and the home's
   throughput are reported as ratios to it;
2. ``home_cold`` — ``GET /api/v1/experience/home/``, every request a different user whose
   cached feed was deleted first, at one connection per core (latency with the cores busy
   but no queueing), then ``home_cold_saturated`` at the full connection count;
3. ``home_warm`` — the same endpoint for a fixed set of users whose feeds were built first,
   so every request is a cache hit (checked with the feed cache's hit/miss counters);
   phases 2-3 run on the linear path (no learned candidates, ``ML_RERANKER_ENABLED=false``);
4. ``home_cold_learned`` and ``home_warm_learned`` — the same two on the learned path, the
   server restarted with the benchmark's reranker active and learned candidates in Redis
   for the measured users (bench/learned.py), compared by app CPU per request;
5. ``home_cold_experiments`` and ``home_warm_experiments`` — the linear path's two again with
   experiments running (started through experiments_app's services, the server restarted so
   its processes read them; bench/experiments.py): builds log exposures and bandit decisions,
   hits check the user's treatment; compared by app CPU per request with the linear path;
6. ``home_cold_personalized`` and ``home_warm_personalized`` — issue 13's per-request parts:
   phases 2-5 run with them switched off (``EXPERIENCE_PERSONALIZATION_OFF``), this one with
   them on and 20 business rules, sessions in progress, profiles with a time zone and a
   country for the measured users (bench/personalization.py); compared by app CPU per
   request with the linear path;
7. ``ingest`` — ``POST /api/v1/experience/interactions/``, batches of fresh interactions,
   with the server restarted as ONE worker process (4 threads, as the image runs it).

Prints a table with the ratios to the ceiling and writes var/bench/results.json.
"""

from __future__ import annotations

import io
import json
import platform
import random
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from bench import experiments, learned, personalization, stack
from bench.common import ROOT, VAR, env_int, say, setup_django
from bench.server import BASE, BIND, CPUS, WRK_THREADS, Server, wrk

CEILING = "/api/v1/_bench/ceiling/"
FLOOR = "/floor/"
FLOOR_SETTINGS = "bench.floor_settings"
HOME = "/api/v1/experience/home/"
INTERACTIONS = "/api/v1/experience/interactions/"

# Two sync workers per core (docs/BENCHMARKS.md, "Server"): with a few keep-alive
# connections, gthread workers split them unevenly (one process can hold most of them and
# its GIL caps it at one core), which made runs bimodal; sync workers take one request at
# a time and always share the load.
WORKERS = env_int("BENCH_WORKERS", 2 * CPUS)
THREADS = env_int("BENCH_THREADS", 1)
INGEST_THREADS = env_int("BENCH_INGEST_THREADS", 4)  # one process, as the image runs it
CONNECTIONS = env_int("BENCH_CONNECTIONS", 16)
COLD_CONNECTIONS = env_int("BENCH_COLD_CONNECTIONS", CPUS)  # one request per core
DURATION = env_int("BENCH_DURATION", 20)
COLD_DURATION = env_int("BENCH_COLD_DURATION", 20)
WARMUP = env_int("BENCH_WARMUP", 3)
WARM_USERS = env_int("BENCH_WARM_USERS", 200)
INGEST_BATCH = env_int("BENCH_INGEST_BATCH", 100)
INGEST_WORKERS = 1  # the target is per web process

TARGETS = {
    # The stack's own cost (authentication, middleware) against a bare Django/DRF
    # view of the same body size and one Redis GET, same server and worker count.
    "ceiling_rps_vs_floor": 0.60,
    "warm_home_rps_vs_ceiling": 0.80,
    # A cold feed build against a ceiling request, in app CPU, and the saturated cold
    # throughput against the ceiling's; ingestion as events stored (in PostgreSQL) from one
    # web process per ceiling request served. Ratios, so the machine's drift cancels out.
    "cold_home_app_cpu_x_ceiling": 5.0,
    "cold_saturated_rps_vs_ceiling": 0.20,
    "ingest_events_per_ceiling_request": 15.0,
    # Issue 11: the learned path's app CPU per request over the linear path's, in this run.
    # "Nothing" added to a warm hit is read as within 10%, the spread of back-to-back runs.
    "learned_cold_app_cpu_vs_linear": 1.20,
    "learned_warm_app_cpu_vs_linear": 1.10,
    # Issue 12: running experiments (treatment check on every request; exposures and bandit
    # decisions inserted on a build) over the linear path without them, in this run.
    "experiments_cold_app_cpu_vs_linear": 1.15,
    "experiments_warm_app_cpu_vs_linear": 1.10,
}
LOWER_IS_BETTER = ("_ms", "_vs_linear", "_x_ceiling")


# --- the world and its state ---------------------------------------------------------


def bench_users() -> list[tuple[int, str]]:
    """(user id, token) of every bench user, by id."""
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    users = get_user_model().objects.filter(username__startswith="bench_user_")
    rows = Token.objects.filter(user__in=users).order_by("user_id").values_list("user_id", "key")
    return [(int(u), str(k)) for u, k in rows]


def published_item_ids() -> list[int]:
    from reading_app.public import recent_item_ids

    since = datetime.fromtimestamp(0, UTC)
    return recent_item_ids(since=since, limit=1_000_000)


def forget_feeds(user_ids: list[int]) -> None:
    """Delete cached feeds (a user without one gets a freshly built feed on the next call)
    and the served-feed buffer (Celery beat, which drains it, does not run here)."""
    from inbo import keys
    from inbo import redis as inbo_redis

    client = inbo_redis.state()
    for start in range(0, len(user_ids), 5000):
        client.delete(*[keys.feed(u) for u in user_ids[start : start + 5000]])
    client.delete(keys.served_buffer())


def ensure_segments() -> None:
    """Segments as the hourly job leaves them: without its copies in Redis every home request
    would read the reader's segment from PostgreSQL, which no running deployment does."""
    from django.core.management import call_command

    from inbo import keys
    from inbo import redis as inbo_redis

    if not inbo_redis.state().exists(keys.segments_written()):
        started = time.perf_counter()
        call_command("segments", stdout=io.StringIO())
        say(f"segments computed for the world in {time.perf_counter() - started:.1f}s")


def forget_snapshots() -> int:
    from inbo import keys
    from inbo import redis as inbo_redis

    client = inbo_redis.state()
    found = list(client.scan_iter(match=keys.feed_snapshot("*", "*"), count=5000))  # type: ignore[arg-type]
    for start in range(0, len(found), 5000):
        client.delete(*found[start : start + 5000])
    return len(found)


def forget_co_read() -> int:
    """Delete the co-reading lists cached per anchor item (10 minutes), so each cold run,
    on either path, starts from the same state rather than from the previous run's."""
    from inbo import keys
    from inbo import redis as inbo_redis

    client = inbo_redis.state()
    found = list(client.scan_iter(match=keys.co_read("*"), count=5000))  # type: ignore[arg-type]
    for start in range(0, len(found), 5000):
        client.delete(*found[start : start + 5000])
    return len(found)


def home_answer(token: str) -> dict:
    """A home answer's head: the ranker and the experiments it names (a cache hit right
    after a build)."""
    request = urllib.request.Request(BASE + HOME, headers={"Authorization": f"Token {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.loads(response.read())
    return {
        "ranker": str(answer["ranker"]),
        "experiments": dict(answer.get("experiments") or {}),
        "sections": [s["key"] for s in answer["sections"]],
        "sponsored": sum(bool(e.get("sponsored")) for s in answer["sections"] for e in s["items"]),
    }


def cached_feeds(user_ids: list[int]) -> int:
    from inbo import keys
    from inbo import redis as inbo_redis

    pipe = inbo_redis.state().pipeline(transaction=False)
    for u in user_ids:
        pipe.exists(keys.feed(u))
    return sum(pipe.execute())


def cache_stats() -> dict[str, int]:
    from inbo import keys
    from inbo import redis as inbo_redis

    raw = inbo_redis.state().hgetall(keys.feed_cache_stats())
    return {"hit": int(raw.get("hit", 0)), "miss": int(raw.get("miss", 0))}


def interactions_stored() -> int:
    from django.apps import apps
    from django.db import connection

    table = apps.get_model("experience_app.ExperienceInteraction")._meta.db_table
    with connection.cursor() as cursor:
        # The planner's estimate would be wrong right after a bulk insert: count exactly.
        cursor.execute(f"SELECT count(*) FROM {table}")
        return int(cursor.fetchone()[0])


def body_size(path: str, token: str) -> int:
    request = urllib.request.Request(BASE + path, headers={"Authorization": f"Token {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return len(response.read())


def get(path: str, token: str) -> int:
    request = urllib.request.Request(BASE + path, headers={"Authorization": f"Token {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()
        return response.status


def write_lines(name: str, values: list) -> str:
    path = VAR / name
    path.write_text("".join(f"{v}\n" for v in values))
    return str(path)


# --- the phases ----------------------------------------------------------------------


def run_ceiling(server: Server, tokens_file: str) -> dict:
    say("ceiling: GET /api/v1/_bench/ceiling/")
    args = [tokens_file]
    wrk(server, CEILING, "get.lua", args, connections=CONNECTIONS, duration=WARMUP)
    return wrk(server, CEILING, "get.lua", args, connections=CONNECTIONS, duration=DURATION)


def run_floor(server: Server, body_bytes: int) -> dict:
    say(f"floor: GET /floor/ (bench/floor_settings.py: no middleware, no auth, {body_bytes:,} B)")
    args = [write_lines("tokens_floor.txt", ["none"])]
    wrk(server, FLOOR, "get.lua", args, connections=CONNECTIONS, duration=WARMUP)
    result = wrk(server, FLOOR, "get.lua", args, connections=CONNECTIONS, duration=DURATION)
    result["body_bytes"] = body_bytes
    return result


def run_cold(
    server: Server,
    users: list[tuple[int, str]],
    connections: int,
    name: str,
    logged: Callable[[], dict[str, int]] | None = None,
) -> dict:
    """``logged``: counts of rows the run writes (bench/experiments.py), reported as
    the difference over the run."""
    say(f"{name}: GET home, a different user with no cached feed every request, c={connections}")
    forget_feeds([u for u, _ in users])
    forget_co_read()
    tokens_file = write_lines(f"tokens_{name}.txt", [t for _, t in users])
    rows = logged() if logged else {}
    before = cache_stats()
    result = wrk(
        server, HOME, "get.lua", [tokens_file], connections=connections, duration=COLD_DURATION
    )
    after = cache_stats()
    if logged:
        time.sleep(1)  # requests still in flight when wrk stopped
        result.update({k: v - rows[k] for k, v in logged().items()})
    result["cache_hits"] = after["hit"] - before["hit"]
    result["cache_misses"] = after["miss"] - before["miss"]
    result["distinct_users"] = min(result["requests"], len(users))
    if result["requests"] > len(users):
        say(f"  warning: {result['requests']} requests over {len(users)} users: some were warm")
    result.update(home_answer(users[0][1]))
    return result


def run_warm(
    server: Server,
    users: list[tuple[int, str]],
    name: str = "home_warm",
    logged: Callable[[], dict[str, int]] | None = None,
) -> dict:
    """``logged``: as for :func:`run_cold`, over the priming (``primed_*``) and the run."""
    say(f"{name}: GET home for {len(users)} users whose feeds are cached")
    ids = [u for u, _ in users]
    forget_feeds(ids)
    rows = logged() if logged else {}
    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=WORKERS * 2) as pool:
        statuses = list(pool.map(lambda t: get(HOME, t), [t for _, t in users]))
    if set(statuses) != {200}:
        raise SystemExit(f"bench: priming home answered {sorted(set(statuses))}")
    primed = cached_feeds(ids)
    say(f"  primed {primed}/{len(ids)} feeds in {time.monotonic() - began:.1f}s")
    answer = home_answer(users[0][1])
    tokens_file = write_lines("tokens_warm.txt", [t for _, t in users])
    wrk(server, HOME, "get.lua", [tokens_file], connections=CONNECTIONS, duration=WARMUP)
    primed_rows = logged() if logged else {}
    before = cache_stats()
    result = wrk(server, HOME, "get.lua", [tokens_file], connections=CONNECTIONS, duration=DURATION)
    after = cache_stats()
    if logged:
        time.sleep(1)
        result.update({f"primed_{k}": v - rows[k] for k, v in primed_rows.items()})
        result.update({k: v - primed_rows[k] for k, v in logged().items()})
    result["cache_hits"] = after["hit"] - before["hit"]
    result["cache_misses"] = after["miss"] - before["miss"]
    result["distinct_users"] = len(users)
    result.update(answer)
    forget_feeds(ids)
    return result


def run_ingest(server: Server, users: list[tuple[int, str]], items: list[int]) -> dict:
    say(
        f"ingest: POST batches of {INGEST_BATCH} interactions, 1 worker process x "
        f"{INGEST_THREADS} threads"
    )
    tokens_file = write_lines("tokens_ingest.txt", [t for _, t in users])
    items_file = write_lines("items.txt", items)
    nonce = random.SystemRandom().getrandbits(32)

    def args(salt: int) -> list[str]:
        return [tokens_file, items_file, str(INGEST_BATCH), str((nonce + salt) % 2**32)]

    wrk(server, INTERACTIONS, "ingest.lua", args(0), connections=CONNECTIONS, duration=WARMUP)
    time.sleep(1)
    before = interactions_stored()
    result = wrk(
        server, INTERACTIONS, "ingest.lua", args(1), connections=CONNECTIONS, duration=DURATION
    )
    time.sleep(2)  # requests still in flight when wrk stopped
    stored = interactions_stored() - before
    result["batch"] = INGEST_BATCH
    result["events_sent"] = result["requests"] * INGEST_BATCH
    result["events_stored"] = stored
    result["events_per_s"] = round(result["events_sent"] / result["seconds"], 1)
    forget_feeds([u for u, _ in users])
    return result


# --- report --------------------------------------------------------------------------


def ratios(figures: dict) -> dict:
    ceiling = figures["ceiling"]
    out = {}
    for name in ("home_warm", "home_cold", "home_cold_saturated"):
        f = figures[name]
        out[f"{name}_rps_vs_ceiling"] = round(f["rps"] / ceiling["rps"], 3)
        out[f"{name}_p50_vs_ceiling"] = round(f["p50_ms"] / ceiling["p50_ms"], 2)
        out[f"{name}_p95_vs_ceiling"] = round(f["p95_ms"] / ceiling["p95_ms"], 2)
    out["ingest_rps_vs_ceiling"] = round(figures["ingest"]["rps"] / ceiling["rps"], 3)
    out["ingest_events_per_ceiling_request"] = round(
        figures["ingest"]["events_per_s"] / ceiling["rps"], 2
    )
    out["home_cold_app_cpu_x_ceiling"] = round(
        figures["home_cold"]["cpu_ms_per_request"]["app"]
        / max(ceiling["cpu_ms_per_request"]["app"], 1e-9),
        1,
    )
    # The stack's own cost: every figure against the bare floor of the same run.
    floor = figures["floor"]
    for name in ("ceiling", "home_warm", "home_cold_saturated"):
        out[f"{name}_rps_vs_floor"] = round(figures[name]["rps"] / floor["rps"], 3)
        app = figures[name]["cpu_ms_per_request"]["app"]
        out[f"{name}_app_cpu_vs_floor"] = round(
            app / max(floor["cpu_ms_per_request"]["app"], 1e-9), 2
        )
    # The same comparison by CPU cost (app + PostgreSQL + Redis per request): what the
    # throughput ratio would be on an otherwise idle machine, whatever else ran meanwhile.
    cost = {name: sum(f["cpu_ms_per_request"].values()) for name, f in figures.items()}
    paths = ("home_warm", "home_cold", "home_warm_learned", "home_cold_learned")
    paths += ("home_warm_experiments", "home_cold_experiments")
    paths += ("home_warm_personalized", "home_cold_personalized")
    for name in paths:
        out[f"{name}_cpu_cost_ratio"] = round(cost["ceiling"] / max(cost[name], 1e-9), 3)
    # The learned path and the experiments path against the linear path, same run: app CPU
    # per request, and the whole cost (app + PostgreSQL + Redis) beside it.
    for path in ("learned", "experiments", "personalized"):
        for kind in ("cold", "warm"):
            linear, other = figures[f"home_{kind}"], figures[f"home_{kind}_{path}"]
            app = other["cpu_ms_per_request"]["app"] / max(
                linear["cpu_ms_per_request"]["app"], 1e-9
            )
            out[f"{path}_{kind}_app_cpu_vs_linear"] = round(app, 3)
            whole = cost[f"home_{kind}_{path}"] / max(cost[f"home_{kind}"], 1e-9)
            out[f"{path}_{kind}_cpu_cost_vs_linear"] = round(whole, 3)
    return out


def targets(figures: dict, ratio: dict) -> list[dict]:
    measured = {
        "ceiling_rps_vs_floor": ratio["ceiling_rps_vs_floor"],
        "warm_home_rps_vs_ceiling": ratio["home_warm_rps_vs_ceiling"],
        "cold_home_app_cpu_x_ceiling": ratio["home_cold_app_cpu_x_ceiling"],
        "cold_saturated_rps_vs_ceiling": ratio["home_cold_saturated_rps_vs_ceiling"],
        "ingest_events_per_ceiling_request": ratio["ingest_events_per_ceiling_request"],
        "learned_cold_app_cpu_vs_linear": ratio["learned_cold_app_cpu_vs_linear"],
        "learned_warm_app_cpu_vs_linear": ratio["learned_warm_app_cpu_vs_linear"],
        "experiments_cold_app_cpu_vs_linear": ratio["experiments_cold_app_cpu_vs_linear"],
        "experiments_warm_app_cpu_vs_linear": ratio["experiments_warm_app_cpu_vs_linear"],
    }
    out = []
    for name, target in TARGETS.items():
        value = measured[name]
        met = value <= target if name.endswith(("_vs_linear", "_x_ceiling")) else value < target
        met = met if name.endswith(LOWER_IS_BETTER) else value >= target
        out.append({"name": name, "target": target, "measured": value, "met": met})
    return out


def table(results: dict) -> str:
    f, r = results["figures"], results["ratios"]
    phases = (
        ("floor", "floor"),
        ("ceiling", "ceiling"),
        ("home warm", "home_warm"),
        ("learned warm", "home_warm_learned"),
        ("exp. warm", "home_warm_experiments"),
        ("pers. warm", "home_warm_personalized"),
        ("home cold", "home_cold"),
        ("learned cold", "home_cold_learned"),
        ("exp. cold", "home_cold_experiments"),
        ("pers. cold", "home_cold_personalized"),
        ("home cold sat.", "home_cold_saturated"),
        ("ingest (1 proc)", "ingest"),
    )
    rows = [(label, f[n], f"{f[n]['rps'] / f['ceiling']['rps']:.2f}") for label, n in phases]
    head = (
        f"{'phase':<16}{'conns':>6}{'requests':>10}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}"
        f"{'p99 ms':>9}{'errors':>7}{'vs ceil':>8}  cpu % wrk/app/pg/redis/rest  app cpu ms/req"
    )
    lines = [head, "-" * len(head)]
    for name, x, ratio in rows:
        cpu = x["cpu_pct"]
        lines.append(
            f"{name:<16}{x['connections']:>6}{x['requests']:>10,}{x['rps']:>9,.1f}"
            f"{x['p50_ms']:>9.1f}{x['p95_ms']:>9.1f}{x['p99_ms']:>9.1f}{x['errors']:>7}"
            f"{ratio:>8}  {cpu['wrk']:.0f}/{cpu['app']:.0f}/{cpu['postgres']:.0f}"
            f"/{cpu['redis']:.0f}/{cpu['rest']:.0f}"
            f"{x['cpu_ms_per_request']['app']:>11.2f}"
        )
    ingest = f["ingest"]
    lines.append("")
    lines.append(
        f"ingestion: {ingest['events_per_s']:,.0f} events/s from one web process "
        f"({ingest['batch']} per batch; {ingest['events_sent']:,} sent, "
        f"{ingest['events_stored']:,} stored)"
    )
    lines.append(
        f"by CPU cost per request (app+pg+redis): home warm {r['home_warm_cpu_cost_ratio']:.2f}"
        f" of the ceiling, home cold {r['home_cold_cpu_cost_ratio']:.3f}"
    )
    lines.append(
        f"against the bare floor ({f['floor']['body_bytes']:,} B body, as home's): ceiling "
        f"{r['ceiling_rps_vs_floor']:.2f} of its throughput "
        f"(app CPU x{r['ceiling_app_cpu_vs_floor']:.2f}), "
        f"home warm {r['home_warm_rps_vs_floor']:.2f} (x{r['home_warm_app_cpu_vs_floor']:.2f}), "
        f"home cold sat. {r['home_cold_saturated_rps_vs_floor']:.3f}"
    )
    warm, cold = f["home_warm"], f["home_cold"]
    lines.append(
        f"feed cache: warm run {warm['cache_hits']:,} hits / {warm['cache_misses']:,} misses; "
        f"cold run {cold['cache_hits']:,} hits / {cold['cache_misses']:,} misses"
    )
    lines += learned.report(f, r)
    lines += experiments.report(f, r)
    lines += personalization.report(f, r)
    lines.append("")
    lines.append("targets:")
    for t in results["targets"]:
        sign = ">=" if not t["name"].endswith(LOWER_IS_BETTER) else "<"
        sign = "<=" if t["name"].endswith("_vs_linear") else sign
        lines.append(
            f"  {'MET ' if t['met'] else 'MISS'} {t['name']}: {t['measured']:,} "
            f"(target {sign} {t['target']:,})"
        )
    return "\n".join(lines)


def environment(env: dict[str, str], world: dict) -> dict:
    from django.db import connection

    from inbo import redis as inbo_redis

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg = cursor.fetchone()[0]
    git = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.split("\n")
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout
    return {
        "cpus": CPUS,
        "python": platform.python_version(),
        "postgresql": pg,
        "redis": inbo_redis.state().info("server")["redis_version"],
        "wrk": wrk_version.splitlines()[0] if wrk_version else "wrk",
        "git_head": git,
        "git_modified": sorted(line[3:] for line in dirty if line.strip()),
        "database": env["DATABASE_URL"].rsplit("/", 1)[-1],
        "redis_dbs": {
            role: env[f"REDIS_{role}_URL"].rsplit("/", 1)[-1]
            for role in ("BROKER", "CACHE", "STATE")
        },
        "world": world,
    }


def main() -> None:
    env = setup_django()
    if shutil.which("wrk") is None:
        raise SystemExit("bench: wrk is not installed (apt-get install -y wrk)")
    VAR.mkdir(parents=True, exist_ok=True)
    from bench.seed_world import world_summary

    users = bench_users()
    items = published_item_ids()
    world = world_summary()
    if not users or not items:
        raise SystemExit("bench: no world; run python -m bench.seed_world first")
    ensure_segments()
    rng = random.Random(7)
    shuffled = users[:]
    rng.shuffle(shuffled)
    warm_users = shuffled[:WARM_USERS]
    # Disjoint quarters (2,450 users each in the default world, several times what a cold
    # run of 20 s serves): nothing one cold run cached for its users serves another.
    cold_users = shuffled[WARM_USERS:]
    fifth = len(cold_users) // 5
    cold_linear, cold_saturated = cold_users[:fifth], cold_users[fifth : 2 * fifth]
    cold_learned = cold_users[2 * fifth : 3 * fifth]
    cold_experiments = cold_users[3 * fifth : 4 * fifth]
    cold_personalized = cold_users[4 * fifth :]
    personalized_ids = [u for u, _ in [*cold_personalized, *warm_users]]
    say(
        f"{len(users):,} users, {len(items):,} published items; gunicorn {WORKERS} workers x "
        f"{THREADS} thread(s) on {BIND}; wrk {WRK_THREADS} thread, {CONNECTIONS} connections "
        f"({COLD_CONNECTIONS} for cold latency), {DURATION}s runs"
    )
    figures: dict[str, dict] = {}
    learned_ids = [u for u, _ in [*cold_learned, *warm_users]]
    # The linear path: no learned candidates and no reranker (bench/learned.py says why).
    learned.candidates_forget([u for u, _ in users])
    # Phases before the personalized one: issue 13's per-request parts off ("before").
    off = {"EXPERIENCE_PERSONALIZATION_OFF": personalization.PARTS}
    server = Server(WORKERS, THREADS, {**env, **off, "ML_RERANKER_ENABLED": "false"})
    try:
        server.start()
        write_lines("tokens_all.txt", [t for _, t in shuffled])
        # The warm users' tokens, as the warm home sends them: the token cache holds them
        # after the warm-up, as it holds an active client's (a token's first request, a
        # query and a Redis write, is not what the ceiling stands for).
        figures["ceiling"] = run_ceiling(
            server, write_lines("tokens_ceiling.txt", [t for _, t in warm_users])
        )
        # The floor, right after, on the same server restarted with the bare settings; its
        # body is as large as a home answer of this world (one home build, forgotten below).
        home_bytes = body_size(HOME, warm_users[0][1])
        forget_feeds([warm_users[0][0]])
        server.stop()
        server = Server(
            WORKERS,
            THREADS,
            {
                **env,
                "DJANGO_SETTINGS_MODULE": FLOOR_SETTINGS,
                "BENCH_FLOOR_BODY_BYTES": str(home_bytes),
            },
        )
        server.start()
        figures["floor"] = run_floor(server, home_bytes)
        server.stop()
        server = Server(WORKERS, THREADS, {**env, **off, "ML_RERANKER_ENABLED": "false"})
        server.start()
        figures["home_cold"] = run_cold(server, cold_linear, COLD_CONNECTIONS, "home_cold")
        figures["home_cold_saturated"] = run_cold(
            server, cold_saturated, CONNECTIONS, "home_cold_saturated"
        )
        figures["home_warm"] = run_warm(server, warm_users)
        figures["home_warm"]["body_bytes"] = home_bytes
        server.stop()
        # The learned path: the same server restarted with a reranker active and the
        # measured users' learned candidates in Redis.
        label = learned.reranker_activate()
        written = learned.candidates_write(learned_ids, learned.candidate_pool())
        say(f"learned path: reranker {label} active, {written:,} learned candidate lists")
        server = Server(WORKERS, THREADS, {**env, **off, "ML_RERANKER_ENABLED": "true"})
        server.start()
        figures["home_cold_learned"] = run_cold(
            server, cold_learned, COLD_CONNECTIONS, "home_cold_learned"
        )
        figures["home_warm_learned"] = run_warm(server, warm_users, "home_warm_learned")
        server.stop()
        learned.candidates_forget(learned_ids)
        learned.reranker_retire()
        # The experiments path: the linear path's settings with experiments running, the
        # server restarted so that its processes read them on their first request.
        started = experiments.start()
        say("experiments path: " + ", ".join(f"{k} (layer {v})" for k, v in started.items()))
        server = Server(WORKERS, THREADS, {**env, **off, "ML_RERANKER_ENABLED": "false"})
        server.start()
        figures["home_cold_experiments"] = run_cold(
            server, cold_experiments, COLD_CONNECTIONS, "home_cold_experiments", experiments.logged
        )
        figures["home_warm_experiments"] = run_warm(
            server, warm_users, "home_warm_experiments", experiments.logged
        )
        server.stop()
        for name in ("home_cold_experiments", "home_warm_experiments"):
            if sorted(figures[name]["experiments"]) != sorted(experiments.EXPERIMENTS):
                say(f"  warning: {name} answered experiments {figures[name]['experiments']}")
        experiments.forget()
        # The personalized path: the linear path's settings with issue 13's parts on.
        created = personalization.start(personalized_ids, datetime.now(UTC))
        say("personalized path: " + ", ".join(f"{v:,} {k}" for k, v in created.items()))
        server = Server(WORKERS, THREADS, {**env, "ML_RERANKER_ENABLED": "false"})
        server.start()
        figures["home_cold_personalized"] = run_cold(
            server, cold_personalized, COLD_CONNECTIONS, "home_cold_personalized"
        )
        figures["home_warm_personalized"] = run_warm(server, warm_users, "home_warm_personalized")
        server.stop()
        personalization.forget(personalized_ids)
        server = Server(INGEST_WORKERS, INGEST_THREADS, env)
        server.start()
        figures["ingest"] = run_ingest(server, shuffled, items)
    finally:
        server.stop()
        learned.candidates_forget(learned_ids)
        learned.reranker_retire()
        experiments.forget()
        personalization.forget(personalized_ids)
        forget_feeds([u for u, _ in users])
        forget_snapshots()
    # Connections and web servers compared on the linear path (bench/stack.py).
    stack_figures = None
    if stack.ENABLED:
        stack_figures = stack.run(
            {**env, **off, "ML_RERANKER_ENABLED": "false"},
            cold_users=cold_linear,
            warm_users=warm_users,
            tokens_file=str(VAR / "tokens_all.txt"),
        )
    results = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "server": {
            "bind": BIND,
            "workers": WORKERS,
            "threads": THREADS,
            "worker_class": "gthread" if THREADS > 1 else "sync",
            "ingest_workers": INGEST_WORKERS,
            "ingest_threads": INGEST_THREADS,
        },
        "client": {
            "tool": "wrk",
            "threads": WRK_THREADS,
            "connections": CONNECTIONS,
            "cold_connections": COLD_CONNECTIONS,
            "duration_s": DURATION,
            "cold_duration_s": COLD_DURATION,
            "warmup_s": WARMUP,
            "warm_users": len(warm_users),
        },
        "environment": environment(env, world),
        "figures": figures,
        "stack": stack_figures,
    }
    results["ratios"] = ratios(figures)
    results["targets"] = targets(figures, results["ratios"])
    (VAR / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print()
    print(table(results))
    print("\n".join(stack.report(stack_figures)))
    print(f"\nresults: {VAR / 'results.json'}")


if __name__ == "__main__":
    main()
