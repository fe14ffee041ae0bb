"""The personalization path in the benchmark world (issue 13): rules, sessions, time, place.

``make bench`` measures the linear path with issue 13's per-request parts switched off
(``EXPERIENCE_PERSONALIZATION_OFF=session,time_place,rules``: the home as it was before
them), then a ``personalized`` path with them on, the server restarted between, and compares
the two by app CPU per request (bench/load.py). What the personalized path pays on a build:

- **rules**: 20 active rules, as an operator creates them through rules_app's services
  (2 sponsored campaigns with pacing, 5 blocks of which 2 keywords, 12 boosts of which 3
  dated, 1 diversity rule with per-page caps and MMR);
- **sessions**: every measured user has a session in progress (three engagements through
  the interactions service, the path a client's batch takes), so a build reads the session
  and runs session-kNN over the world's recent sessions, and ``up_next`` is filled;
- **time and place**: every measured user has a profile with a time zone, a country and a
  language, so a build reads it, the hour-of-week profile, the items' hours and the
  country's popularity, and the events above count in the time and place counters;
- segments are read on every request on both paths (the read shares the cache's MGET).

A cache hit runs none of this except the segment read. Everything is created at the start
of the phase and deleted at its end (rules and their versions, profiles, the session state
in Redis); the three engagements per user stay in the event log, as any reader's would.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

RULE_PREFIX = "bench "
STAFF = "bench-rules"
ZONES = ("America/New_York", "America/Sao_Paulo", "Europe/Berlin", "Europe/London", "UTC")
COUNTRIES = ("US", "BR", "DE", "GB", "FR")
ENGAGEMENTS = 3
# The value of EXPERIENCE_PERSONALIZATION_OFF for the phases before the personalized one.
PARTS = "session,time_place,rules"


def _ids(sql: str, params: list | None = None) -> list[int]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        return [row[0] for row in cursor.fetchall()]


def _staff():
    from django.contrib.auth import get_user_model

    staff, _ = get_user_model().objects.get_or_create(
        username=STAFF, defaults={"is_staff": True, "email": f"{STAFF}@example.org"}
    )
    return staff


def _rules(now) -> int:
    """The 20 rules (bench/rules.py's mix) on the world's providers, categories and items."""
    from bench.rules import rule_specs
    from reading_app.public import recent_item_ids
    from rules_app.public import rule_create

    staff = _staff()
    providers = _ids("SELECT id FROM reading_app_provider ORDER BY id LIMIT 40")
    categories = _ids("SELECT id FROM reading_app_category ORDER BY id LIMIT 12")
    items = recent_item_ids(since=now - timedelta(days=7), limit=500)
    specs = rule_specs(providers, categories, items, now)
    for n, spec in enumerate(specs):
        rule_create({"name": f"{RULE_PREFIX}{n}", **spec}, user=staff)
    return len(specs)


def start(user_ids: list[int], now) -> dict[str, int]:
    """Rules, profiles and sessions in progress for ``user_ids``; what was created."""
    import random

    from django.db import connection

    from experience_app.public import interactions
    from reading_app.public import recent_item_ids

    forget(user_ids)
    rules = _rules(now)
    with connection.cursor() as cursor:  # what PATCH /me/profile/ stores, in one statement
        cursor.executemany(
            "INSERT INTO experience_app_readerprofile (user_id, timezone, country, region,"
            " language, updated_at) VALUES (%s, %s, %s, '', 'en', now())"
            " ON CONFLICT (user_id) DO NOTHING",
            [(u, ZONES[u % len(ZONES)], COUNTRIES[u % len(COUNTRIES)]) for u in user_ids],
        )
    pool = recent_item_ids(since=now - timedelta(days=3), limit=300)
    rng = random.Random(13)
    events = 0
    for u in user_ids:
        batch = [
            interactions.InteractionIn(
                event_id=uuid.uuid4(),
                item_id=item,
                interaction_type="click",
                occurred_at=now - timedelta(minutes=10 - k),
                session_id=f"bench-{u}",
            )
            for k, item in enumerate(rng.sample(pool, ENGAGEMENTS))
        ]
        result = interactions.interactions_record(user_id=u, interactions=batch, now=now)
        events += result.accepted
    return {"rules": rules, "profiles": len(user_ids), "engagements": events}


def forget(user_ids: list[int]) -> None:
    """Delete what :func:`start` created (and what a run that did not finish left)."""
    from django.db import connection

    from inbo import keys
    from inbo import redis as inbo_redis
    from rules_app.public import rule_delete

    staff = _staff()
    for rule_id in _ids("SELECT id FROM rules_app_rule WHERE name LIKE %s", [RULE_PREFIX + "%"]):
        rule_delete(rule_id, user=staff)
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM experience_app_readerprofile WHERE user_id = ANY(%s)", [user_ids]
        )
    client = inbo_redis.state()
    for chunk in range(0, len(user_ids), 1000):
        names = [keys.session_current(u) for u in user_ids[chunk : chunk + 1000]]
        if names:
            client.delete(*names)


def report(figures: dict, ratios: dict) -> list[str]:
    """The personalized path's lines of ``make bench``'s table."""
    f, r = figures, ratios
    cold, warm = f["home_cold"], f["home_warm"]
    pc, pw = f["home_cold_personalized"], f["home_warm_personalized"]

    def app(x: dict) -> float:
        return float(x["cpu_ms_per_request"]["app"])

    return [
        f"personalized path (rules, sessions, time and place on; off on the linear path): app "
        f"CPU per request cold {app(pc):.2f} vs {app(cold):.2f} ms = "
        f"{r['personalized_cold_app_cpu_vs_linear']:.2f}x, warm {app(pw):.2f} vs "
        f"{app(warm):.2f} ms = {r['personalized_warm_app_cpu_vs_linear']:.2f}x; app+pg+redis "
        f"cold {r['personalized_cold_cpu_cost_vs_linear']:.2f}x, warm "
        f"{r['personalized_warm_cpu_cost_vs_linear']:.2f}x; cold p95 {pc['p95_ms']:.1f} vs "
        f"{cold['p95_ms']:.1f} ms",
        f"personalized sample answer: sections {', '.join(pc['sections'])}; "
        f"{pc['sponsored']} sponsored items",
        f"personalized feed cache: warm run {pw['cache_hits']:,} hits / "
        f"{pw['cache_misses']:,} misses; cold run {pc['cache_hits']:,} hits / "
        f"{pc['cache_misses']:,} misses",
    ]
