"""``manage.py evaluate_ranking``: metrics as MIND's evaluate.py, the replay, isolation."""

from __future__ import annotations

import re
import uuid
from io import StringIO
from pathlib import Path

import pytest
import redis
from django.apps import apps
from django.conf import settings
from django.core.management import CommandError, call_command

from features_app.public import EventIn, EventType, events_ingest
from inbo import keys
from inbo import redis as inbo_redis
from ml_app import evaluation
from tests.factories import ItemFactory

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
EVAL_NEWS = FIXTURES / "mind_eval" / "news.tsv"
EVAL_BEHAVIORS = FIXTURES / "mind_eval" / "behaviors.tsv"
MIND_NEWS = FIXTURES / "mind" / "news.tsv"
MIND_BEHAVIORS = FIXTURES / "mind" / "behaviors.tsv"
PREDICTION_LINE = re.compile(r"^\d+ \[\d+(,\d+)*\]$")


def run(*args: str) -> tuple[str, str]:
    # The text-similarity feature (a sentence-transformers model) is tested in
    # test_walk_forward.py; these tests skip it to stay fast.
    out, err = StringIO(), StringIO()
    call_command("evaluate_ranking", *args, "--no-similarity", stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def eval_client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_EVAL_URL, decode_responses=True)


# --- the replay's bookkeeping ---------------------------------------------------------


def test_method_scores_leave_single_class_impressions_out_of_auc_only():
    s = evaluation.MethodScores()
    s.add([1, 0], [1, 2])  # perfect
    s.add([1, 1], [2, 1])  # all clicked: no AUC, MRR (1/1 + 1/2) / 2, nDCG 1
    assert s.impressions == 2
    assert s.auc_n == 1 and s.auc_skipped == 1 and s.auc == 1.0
    assert s.mrr == pytest.approx((1.0 + 0.75) / 2)
    assert s.ndcg5 == pytest.approx(1.0)


def test_position_ranks_follow_the_order_and_keep_repeated_ids_together():
    assert evaluation._position_ranks(["a", "b", "c"], ["c", "a", "b"]) == [2, 3, 1]
    assert evaluation._position_ranks(["a", "b", "a"], ["b", "a"]) == [2, 1, 3]


# --- the replay -------------------------------------------------------------------------


@pytest.mark.django_db
def test_replay_prints_every_method_with_its_metrics():
    out, _ = run("--news", str(EVAL_NEWS), "--behaviors", str(EVAL_BEHAVIORS))
    assert "Replayed 4 impressions of 3 users" in out
    for method, label in evaluation.METHOD_LABELS.items():
        row = next(line for line in out.splitlines() if line.startswith(label))
        figures = row[len(label) :].split()
        assert len(figures) == 5  # AUC, MRR, nDCG@5, nDCG@10, impressions
        # The learned ranker scores only the days after the first (one impression here).
        assert figures[4] == ("1" if method == evaluation.LEARNED else "4")
        assert all(0.0 <= float(f) <= 1.0 for f in figures[:4])
    assert "AUC over 4 impressions (0 skipped" in out


@pytest.mark.django_db
def test_each_impression_is_ranked_only_on_what_was_ingested_before_it(monkeypatch):
    seen: list[tuple[object, list]] = []
    real_rank = evaluation.rank

    def spy(candidates, user, signals, *, now, weights=None, learned=None):
        ranked = real_rank(candidates, user, signals, now=now, weights=weights, learned=learned)
        seen.append((now, ranked))
        return ranked

    monkeypatch.setattr(evaluation, "rank", spy)
    run("--news", str(EVAL_NEWS), "--behaviors", str(EVAL_BEHAVIORS))

    times = [now for now, _ in seen]
    assert times == sorted(times)  # time order, not file order
    first = seen[0][1]  # impression 1: nothing about its candidates is known yet
    assert len({s.score for s in first}) == 1
    assert all(s.signals["popularity"] == 0.0 for s in first)
    # Impression 2 (same user, 30 minutes later): N3 was clicked in impression 1 and ranks
    # first; N2 and N4 were shown to this user without a click.
    second = seen[1][1]
    assert second[0].signals["popularity"] > 0
    assert [s.signals["seen"] for s in second] == [0.0, 1.0, 1.0]


@pytest.mark.django_db
def test_predictions_are_written_in_the_mind_competition_format(tmp_path):
    target = tmp_path / "prediction.txt"
    out, _ = run(
        "--news",
        str(EVAL_NEWS),
        "--behaviors",
        str(EVAL_BEHAVIORS),
        "--predictions",
        str(target),
    )
    lines = target.read_text().splitlines()
    assert all(PREDICTION_LINE.match(line) for line in lines)
    # One line per impression, in the file's order, each a permutation of 1..n.
    assert [line.split()[0] for line in lines] == ["3", "1", "2", "4"]
    sizes = [3, 4, 3, 2]
    for line, size in zip(lines, sizes, strict=True):
        ranks = [int(r) for r in line.split()[1].strip("[]").split(",")]
        assert sorted(ranks) == list(range(1, size + 1))
    # Impression 3 (N1, N2, N3): N3, clicked twice before, ranks first.
    assert lines[0].endswith(",1]")
    assert f"Predictions written to {target}" in out


@pytest.mark.django_db
def test_limit_replays_only_the_first_lines_of_the_file(tmp_path):
    target = tmp_path / "prediction.txt"
    out, _ = run(
        "--news",
        str(EVAL_NEWS),
        "--behaviors",
        str(EVAL_BEHAVIORS),
        "--limit",
        "2",
        "--predictions",
        str(target),
    )
    assert "Replayed 2 impressions of 2 users" in out
    assert [line.split()[0] for line in target.read_text().splitlines()] == ["3", "1"]


@pytest.mark.django_db
def test_per_day_prints_one_table_per_date():
    out, _ = run("--news", str(EVAL_NEWS), "--behaviors", str(EVAL_BEHAVIORS), "--per-day")
    assert "2019-11-10 (no learned model" in out and "2019-11-11 (model trained on" in out
    day_rows = [line for line in out.splitlines() if line.startswith("  linear ranking (rank)")]
    # One row per day, then the mean over the scored days (no impressions column).
    assert [row.split()[-1] for row in day_rows[:2]] == ["3", "1"]
    assert len(day_rows) == 3


@pytest.mark.django_db
def test_malformed_lines_are_skipped_and_reported():
    out, err = run("--news", str(MIND_NEWS), "--behaviors", str(MIND_BEHAVIORS))
    assert "Replayed 4 impressions" in out
    assert "8 lines skipped" in out
    assert "behaviors.tsv:4: skipped: bad time" in err


@pytest.mark.django_db
def test_freshness_half_life_defaults_to_the_product_setting_and_can_be_set(settings):
    settings.EXPERIENCE_FRESHNESS_HALF_LIFE_HOURS = 24.0
    out, _ = run("--news", str(EVAL_NEWS), "--behaviors", str(EVAL_BEHAVIORS))
    assert "freshness half-life 24h" in out
    out, _ = run(
        "--news", str(EVAL_NEWS), "--behaviors", str(EVAL_BEHAVIORS), "--freshness-half-life", "1"
    )
    assert "freshness half-life 1h" in out


# --- isolation --------------------------------------------------------------------------


def _row_counts() -> dict[str, int]:
    return {m._meta.label: m._default_manager.count() for m in apps.get_models()}


def _state_snapshot() -> dict[str, object]:
    client = inbo_redis.state()
    return {key: client.dump(key) for key in client.keys("*")}


@pytest.mark.django_db(transaction=True)
def test_a_run_leaves_postgresql_and_the_main_redis_state_unchanged(user):
    # Some real data in both stores first.
    item = ItemFactory()
    events_ingest(
        [
            EventIn(
                user_id=user.id,
                item_id=item.id,
                event_type=EventType.CLICK,
                occurred_at=item.published_at,
                event_id=uuid.uuid4(),
            )
        ]
    )
    inbo_redis.state().set("probe", "kept")
    rows, state = _row_counts(), _state_snapshot()
    assert state

    run("--news", str(MIND_NEWS), "--behaviors", str(MIND_BEHAVIORS))
    run("--news", str(EVAL_NEWS), "--behaviors", str(EVAL_BEHAVIORS))

    assert _row_counts() == rows
    assert _state_snapshot() == state
    assert eval_client().dbsize() == 0  # the scratch database is flushed after the run


def test_use_state_client_swaps_the_state_client_and_restores_it():
    main = inbo_redis.state()
    with inbo_redis.use_state_client(settings.REDIS_EVAL_URL) as scratch:
        assert inbo_redis.state() is scratch
        assert scratch is not main
    assert inbo_redis.state() is main


@pytest.mark.django_db
def test_a_second_run_cannot_share_the_scratch_database():
    client = eval_client()
    client.set(keys.evaluation_lock(), "another-run", px=60_000)
    try:
        with pytest.raises(CommandError, match="Another evaluation"):
            run("--news", str(EVAL_NEWS), "--behaviors", str(EVAL_BEHAVIORS))
        assert client.get(keys.evaluation_lock()) == "another-run"  # not flushed
    finally:
        client.delete(keys.evaluation_lock())


@pytest.mark.django_db
def test_the_scratch_database_must_not_be_the_state_database(settings):
    settings.REDIS_EVAL_URL = settings.REDIS_STATE_URL
    inbo_redis.state().set("probe", "kept")
    with pytest.raises(CommandError, match="REDIS_STATE_URL"):
        run("--news", str(EVAL_NEWS), "--behaviors", str(EVAL_BEHAVIORS))
    assert inbo_redis.state().get("probe") == "kept"


def test_missing_files_and_bad_arguments_are_errors(tmp_path):
    with pytest.raises(CommandError, match="does not exist"):
        run("--news", str(tmp_path / "none.tsv"), "--behaviors", str(EVAL_BEHAVIORS))
    with pytest.raises(CommandError, match="--limit"):
        run("--news", str(EVAL_NEWS), "--behaviors", str(EVAL_BEHAVIORS), "--limit", "0")
    with pytest.raises(CommandError, match="--freshness-half-life"):
        run(
            "--news",
            str(EVAL_NEWS),
            "--behaviors",
            str(EVAL_BEHAVIORS),
            "--freshness-half-life",
            "0",
        )
