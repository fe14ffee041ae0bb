"""Predictive caching (OPT-002): open profiles, the likelihood, the prebuild run and task."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from django.utils import timezone

from experience_app import open_times
from experience_app.public import prebuild_stats
from experience_app.services import prebuild
from experience_app.services.feed import cache, opens
from experience_app.tasks import prebuild_feeds
from inbo import keys
from inbo import redis as inbo_redis
from monitoring.metrics import _prebuild
from tests.experience.utils import make_item
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

# A Monday, 07:50 UTC.
MONDAY_0750 = datetime(2026, 3, 2, 7, 50, tzinfo=UTC)


def _opens(user_id: int, times: list[datetime], place: str = "", platform: str = "") -> None:
    """Home requests at ``times``, counted by the script every home request runs."""
    pipe = inbo_redis.state().pipeline(transaction=False)
    for at in times:
        opens.record_open(pipe, user_id, now=at, place=place, platform=platform)
    pipe.execute()


def _daily(hour: int, minute: int = 0, days: int = 14) -> list[datetime]:
    return [
        MONDAY_0750.replace(hour=hour, minute=minute) - timedelta(days=d)
        for d in range(days, 0, -1)
    ]


def test_an_open_is_counted_once_per_session_at_its_utc_hour_of_week(user):
    client = inbo_redis.state()
    t = MONDAY_0750
    _opens(user.id, [t, t + timedelta(minutes=10), t + timedelta(minutes=50)], place="FR-")

    raw = client.hgetall(keys.open_profile(user.id))
    # 07:50 and 08:40: two opens (the request ten minutes in is the same session).
    assert {k: float(v) for k, v in raw.items() if k.startswith("h")} == {"h7": 1.0, "h8": 1.0}
    assert float(raw["n"]) == 2.0
    assert float(raw["t"]) == (t + timedelta(minutes=50)).timestamp()
    assert raw["p"] == "FR-"
    assert client.zscore(keys.openers(), str(user.id)) == float(raw["t"])
    assert 0 < client.ttl(keys.open_profile(user.id)) <= keys.OPEN_PROFILE_TTL_SECONDS


def test_the_script_halves_past_the_cap_as_the_pure_update_does(user):
    client = inbo_redis.state()
    mass = {f"h{h}": 1.0 for h in range(int(open_times.CAP))}  # 120 hours, one open each
    mass["h3"] = 0.06  # halved below the floor: dropped
    client.hset(keys.open_profile(user.id), mapping={**mass, "n": sum(mass.values())})
    expected = np.zeros(open_times.HOURS)
    for field, value in mass.items():
        expected[int(field[1:])] = value

    _opens(user.id, [MONDAY_0750])
    open_times.add_open(expected, open_times.hour_of_week(MONDAY_0750.timestamp()))

    counts = opens.profiles([user.id]).counts[0]
    np.testing.assert_allclose(counts, expected, atol=1e-6)
    assert counts[3] == 0.0 and counts[7] == 1.0  # 07:xx on Monday: 1 + 1, halved
    assert float(client.hget(keys.open_profile(user.id), "n")) == pytest.approx(expected.sum())


def test_a_reader_who_opens_at_eight_every_day_ranks_first_at_seven_fifty():
    counts = np.zeros((4, open_times.HOURS))
    now = MONDAY_0750.timestamp()
    for day in range(7):
        counts[0, day * 24 + 8] += 2  # every day at 08:00, two weeks
        counts[1, day * 24 + 20] += 4  # a heavier reader, in the evening
        counts[2, day * 24 + 8] += 2  # at 08:00 too, but not seen for a month
    counts[3, 8] = 1  # one Monday open at 08:00: too little to be sure
    last = np.array([now - 86400, now - 3600, now - 30 * 86400, now - 7 * 86400])

    scores = open_times.likelihood(counts, last, now=now, minutes=30)

    assert next(u for u, _ in open_times.ranked([10, 11, 12, 13], scores)) == 10
    assert scores[0] > 5 * scores[1]
    assert open_times.pick([10, 11, 12, 13], scores, budget=1, skip={10}) != [10]
    # The window covers 07:50-08:20: a third of it falls in the 07h hour, two thirds in 08h.
    window = open_times.window_hours(now, 30)
    assert window[7] == pytest.approx(1 / 6) and window[8] == pytest.approx(1 / 3)


@pytest.fixture
def catalog(db):
    return [make_item(hours_ago=1 + i) for i in range(12)]


def test_the_run_builds_the_likeliest_feeds_within_its_budget_and_the_next_home_is_prebuilt(
    catalog,
):
    early, late, evening = UserFactory(), UserFactory(), UserFactory()
    _opens(early.id, _daily(8), platform="ios")
    _opens(late.id, _daily(8, 30, days=5))
    _opens(evening.id, _daily(20))
    client = inbo_redis.state()

    result = prebuild.run(now=MONDAY_0750, budget=2, budget_seconds=60, minimum=0.0, ttl=2400)

    assert (result.candidates, result.built, result.skipped, result.failed) == (3, 2, 0, 0)
    assert result.budget_spent is True
    assert client.get(keys.feed_prebuilt(early.id)) is not None
    assert client.get(keys.feed_prebuilt(late.id)) is not None
    assert client.get(keys.feed(evening.id)) is None
    assert 2000 < client.ttl(keys.feed(early.id)) <= 2400

    # The reader opens at 08:01: the feed a request's cache miss would have built, cached.
    first = cache.home(early.id, now=MONDAY_0750 + timedelta(minutes=11))
    again = cache.home(early.id, now=MONDAY_0750 + timedelta(minutes=12))
    built = cache.home(evening.id, now=MONDAY_0750 + timedelta(minutes=12))

    assert first["cached"] is True and again["cached"] is True and built["cached"] is False
    assert first["generated_at"] == again["generated_at"]
    assert first["sections"] and first["sections"][0]["items"]
    assert client.get(keys.feed_prebuilt(early.id)) is None
    assert client.ttl(keys.feed(early.id)) <= 300  # once hit, it lives as any cached feed
    stats = prebuild_stats()
    assert stats is not None
    assert (stats["home_prebuilt"], stats["home_cached"], stats["home_built"]) == (1, 1, 1)
    assert (stats["prebuild_runs"], stats["prebuild_built"]) == (1, 2)
    metrics = {m.name: m for m in _prebuild(stats)}
    assert {s.labels["source"]: s.value for s in metrics["inbo_home_requests"].samples} == {
        "prebuilt": 1.0,
        "cached": 1.0,
        "built": 1.0,
    }


def test_a_cached_feed_is_skipped_and_feedback_after_a_prebuild_builds_again(catalog):
    cached, prebuilt = UserFactory(), UserFactory()
    _opens(cached.id, _daily(8))
    _opens(prebuilt.id, _daily(8, days=7))
    cache.home(cached.id, now=MONDAY_0750 - timedelta(minutes=2))  # its feed is cached

    result = prebuild.run(now=MONDAY_0750, budget=5, budget_seconds=60, minimum=0.0, ttl=2400)
    assert (result.built, result.skipped) == (1, 1)

    cache.invalidate(prebuilt.id)  # the reader's feedback, after the prebuild
    body = cache.home(prebuilt.id, now=MONDAY_0750 + timedelta(minutes=5))

    assert body["cached"] is False
    assert prebuild_stats()["home_prebuilt"] == 0


def test_the_task_runs_once_at_a_time_and_records_its_figures(catalog, settings):
    reader = UserFactory()
    _opens(reader.id, [timezone.now() - timedelta(days=1)])
    settings.EXPERIENCE_PREBUILD_MIN_LIKELIHOOD = 0.0
    client = inbo_redis.state()
    client.set(keys.features_lock("prebuild_feeds"), "other", px=60_000)
    assert prebuild_feeds() == {}  # another run holds the lock
    client.delete(keys.features_lock("prebuild_feeds"))

    figures = prebuild_feeds()

    assert figures["candidates"] == 1
    status = client.hgetall(keys.features_job_status("prebuild_feeds"))
    assert status["state"] == "ok" and status["candidates"] == "1"
