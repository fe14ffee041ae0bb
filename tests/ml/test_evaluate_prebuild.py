"""``manage.py evaluate_prebuild``: predictive caching replayed on DeskDrop-format opens."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path

from django.core.management import call_command

from ml_app.datasets import deskdrop
from ml_app.datasets.deskdrop import Interaction
from ml_app.services.prebuild_replay import Config, Replay, simulate

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "deskdrop_opens"


def _replay() -> Replay:
    return Replay.of(deskdrop.read_interactions(FIXTURE / "users_interactions_fixture.csv").rows)


def test_a_habit_is_served_pre_built_where_the_baselines_are_not():
    replay = _replay()
    start = datetime(2016, 5, 30, tzinfo=UTC).timestamp()  # the last two weeks
    end = float(replay.ts[-1]) + 1
    config = Config(budget=1)

    best = simulate(replay, start=start, end=end, config=config, policy="likelihood")
    recent = simulate(replay, start=start, end=end, config=config, policy="recent")
    shuffled = simulate(replay, start=start, end=end, config=config, policy="random")

    # Mornings: reader 1001's 08:00 in São Paulo (11:00 UTC), and the random readers' few.
    assert best.morning_opens == 22
    assert best.morning_share >= 0.7
    assert best.morning_share > 2 * max(recent.morning_share, shuffled.morning_share)
    assert best.share > max(recent.share, shuffled.share)
    # One feed per run at most: six runs an hour.
    assert best.built <= best.runs and best.runs == int((end - start) // 600) + 1


def _event(at: datetime) -> Interaction:
    return Interaction(int(at.timestamp()), "VIEW", "1", "7", "1")


def test_an_interaction_after_the_prebuild_makes_the_feed_stale():
    day = datetime(2016, 5, 20, tzinfo=UTC)
    history = [_event(day - timedelta(days=d, hours=-8)) for d in range(1, 15)]
    # 07:05 an open (served by the 07:00 run), interactions until 08:15 (the 08:00 run's feed
    # is stale after it), 08:50 an open that no run rebuilt for.
    today = [day + timedelta(hours=7, minutes=m) for m in (5, 20, 35, 50, 75, 110)]
    replay = Replay.of(history + [_event(at) for at in today])
    config = Config(budget=1, interval=3600, lookahead=60, ttl=7200)

    out = simulate(
        replay,
        start=(day + timedelta(hours=6)).timestamp(),
        end=(day + timedelta(hours=12)).timestamp(),
        config=config,
        policy="likelihood",
    )

    assert (out.opens, out.served) == (2, 1)
    assert out.morning_opens == 2  # 07:05 and 08:50 UTC: no country, read in UTC
    assert out.built == 3  # at 06:00 (valid until 07:05), 08:00 and 09:00


def test_the_command_prints_each_policy_at_each_budget():
    out = StringIO()
    call_command(
        "evaluate_prebuild",
        "--data",
        str(FIXTURE),
        "--budgets",
        "1,2",
        "--no-tune",
        "--json",
        stdout=out,
    )
    result = json.loads(out.getvalue())
    rows = [(r["budget"], r["policy"]) for r in result["outcomes"]]
    assert rows == [(b, p) for b in (1, 2) for p in ("likelihood", "recent", "random")]
    assert all(0.0 <= r["share"] <= 1.0 and r["opens"] > 0 for r in result["outcomes"])
