"""The learned DeskDrop ranker (candidates, then LightGBM) on small synthetic data."""

from __future__ import annotations

import io
import itertools
import random

import numpy as np
import pytest
from django.core.management import call_command

from ml_app.datasets.deskdrop import Interaction
from ml_app.services import deskdrop_baselines as baselines
from ml_app.services.deskdrop_evaluation import LEARNED, evaluate
from ml_app.services.deskdrop_features import FEATURES, build_window
from ml_app.services.deskdrop_learned import (
    LABEL,
    POPULARITY,
    LearnedParams,
    candidates,
    fit_learned,
    init_scores,
    recommend_learned,
)

HEADER = "timestamp,eventType,contentId,personId,sessionId,userAgent,userRegion,userCountry\n"
DAY = 86_400
START = 1_460_000_000


def synthetic(days: int = 40, users: int = 30, seed: int = 3) -> list[Interaction]:
    """Three items shared a day; two reader groups, each reading its own kind of item (even
    or odd ids) while the item is fresh; a few users are heavy readers, some events are
    likes or comments."""
    rng = random.Random(seed)
    rows = []
    for day in range(days):
        for user in range(users):
            if rng.random() > (0.9 if user < 5 else 0.5):
                continue
            for _ in range(rng.randint(1, 3)):
                age = min(day, int(rng.expovariate(0.4)))
                item = 3 * (day - age) + rng.randint(0, 2)
                if item % 2 != user % 2 and rng.random() < 0.8:
                    item = item + 1 if item % 3 != 2 else item - 1
                event = rng.choice(["VIEW"] * 8 + ["LIKE", "COMMENT CREATED"])
                at = START + day * DAY + rng.randint(0, DAY - 1)
                rows.append(Interaction(at, event, f"a{item}", f"u{user}", f"s{day}{user}"))
    return sorted(rows, key=lambda r: (r.timestamp, r.person_id, r.content_id))


def write(path, rows):
    """The rows as a users_interactions file; item ``a12`` is ``12``, user ``u1`` is ``901``."""
    lines = [
        f"{r.timestamp},{r.event},{r.content_id[1:]},{900 + int(r.person_id[1:])},1,,,\n"
        for r in rows
    ]
    path.write_text(HEADER + "".join(lines))


def test_the_window_refuses_interactions_at_or_after_its_moment():
    rows = synthetic(days=5)
    with pytest.raises(ValueError, match="not before"):
        build_window(rows, rows[-1].timestamp, {"a0": START})


def test_the_ranker_trains_and_ranks_unseen_catalog_items_with_its_features():
    rows = synthetic()
    now = rows[-1].timestamp + 1
    shared = {}
    for row in rows:
        shared.setdefault(row.content_id, row.timestamp)
    ranker = fit_learned(rows, now=now, shared_at=shared)

    assert ranker.booster is not None
    assert ranker.booster.feature_name() == list(FEATURES)
    assert ranker.timings.als_s > 0 and ranker.timings.lgbm_s > 0
    user = "u0"
    ranked = ranker.rank(user)
    seen = set(ranker.window.seen[user])
    assert not seen & set(ranked)
    assert sorted(ranked) == sorted(set(shared) - seen)  # the whole catalog, once each
    assert ranker.rank(user, limit=7) == ranked[:7]


def test_a_cold_user_gets_decayed_popularity_and_everyone_gets_50_unseen_items():
    rows = synthetic()
    users = ["u1", "u2", "never-seen"]
    ranked, timings = recommend_learned(rows, users, k=50)

    assert timings.lgbm_s > 0
    decayed = baselines.recommend_for_users(rows, ["never-seen"], k=50)
    assert ranked["never-seen"] == decayed["never-seen"]
    for user in ("u1", "u2"):
        seen = {r.content_id for r in rows if r.person_id == user}
        assert len(ranked[user]) == 50 == len(set(ranked[user]))
        assert not seen & set(ranked[user])


def test_recommend_offline_serves_the_learned_ranker_and_never_reads_the_test_items(tmp_path):
    rows = synthetic()
    train = tmp_path / "train.csv"
    write(train, rows)
    users = "901,902,42"
    # Two test files with the same users; one holds items never seen in training, the other
    # garbage in every column but personId. The output must not differ.
    first = tmp_path / "test_a.csv"
    first.write_text(
        HEADER + "".join(f"{START},LIKE,5550{k},{u},1,,,\n" for k, u in enumerate(users.split(",")))
    )
    second = tmp_path / "test_b.csv"
    second.write_text(HEADER + "".join(f"x,??,,{u},y,z,,\n" for u in users.split(",")))
    outputs = []
    for test in (first, second):
        out = tmp_path / f"out_{test.stem}.txt"
        stdout = io.StringIO()
        call_command(
            "recommend_offline",
            *("--dataset", "deskdrop", "--train", str(train), "--test", str(test)),
            *("--out", str(out)),
            stdout=stdout,
        )
        assert "warm 2, cold 1" in stdout.getvalue()
        assert "learned ranker" in stdout.getvalue() and "LightGBM" in stdout.getvalue()
        outputs.append(out.read_text())
    assert outputs[0] == outputs[1]
    lines = [line.split() for line in outputs[0].splitlines()]
    assert [line[0] for line in lines] == ["901", "902", "42"]
    train_items = {r.content_id.removeprefix("a") for r in rows}
    for line in lines:
        assert len(line) == 51 and set(line[1:]) <= train_items
        assert not any(item.startswith("5550") for item in line[1:])
    read_by_901 = {r.content_id.removeprefix("a") for r in rows if r.person_id == "u1"}
    assert not read_by_901 & set(lines[0][1:])


def test_recommend_offline_baseline_flag_serves_decayed_popularity(tmp_path):
    rows = synthetic(days=20)
    train, test, out = tmp_path / "train.csv", tmp_path / "test.csv", tmp_path / "out.txt"
    write(train, rows)
    test.write_text(HEADER + f"{START},VIEW,1,42,1,,,\n")
    stdout = io.StringIO()
    call_command(
        "recommend_offline",
        *("--dataset", "deskdrop", "--train", str(train), "--test", str(test)),
        *("--out", str(out), "--baseline"),
        stdout=stdout,
    )
    assert "time-decayed popularity" in stdout.getvalue()
    assert len(out.read_text().split()) == 51


def test_evaluation_reports_the_learned_ranker_beside_the_baselines_with_training_times(
    tmp_path,
):
    rows = synthetic()
    result = evaluate(rows, methods=[*baselines.METHODS, LEARNED], bootstrap=20)
    assert result.timings is not None and result.timings.lgbm_s > 0
    for group in ("all", "warm"):
        assert set(result.figures[group]) == {*baselines.METHODS, LEARNED}
        assert 0.0 <= result.figures[group][LEARNED]["ndcg10"].mean <= 1.0

    data = tmp_path / "data"
    data.mkdir()
    write(data / "users_interactions.csv", rows)
    out = io.StringIO()
    call_command("evaluate_deskdrop", "--data", str(data), "--bootstrap", "5", stdout=out)
    printed = out.getvalue()
    assert LABEL in printed and "popularity, decayed" in printed
    assert "ALS" in printed and "LightGBM" in printed


def test_boosting_from_decayed_popularity_starts_from_its_order():
    """With ``init_scale`` the served score is init_scale * log1p(decayed popularity) plus the
    trees; with a negligible learning rate the head keeps the decayed-popularity order."""
    rows = synthetic()
    now = rows[-1].timestamp + 1
    shared = {}
    for row in rows:
        shared.setdefault(row.content_id, row.timestamp)
    params = LearnedParams(init_scale=1.0, learning_rate=1e-9, rounds=2)
    ranker = fit_learned(rows, now=now, shared_at=shared, params=params)

    assert ranker.booster is not None
    w = ranker.window
    user = "u3"
    scores = w.pair_scores(user)
    cands = candidates(w, user, scores, params.per_source)
    assert 0 < len(cands) <= 5 * params.per_source
    features = w.features(user, cands, scores)
    assert np.allclose(init_scores(features, 2.0), 2.0 * features[:, POPULARITY])
    assert not init_scores(features, 0.0).any()
    head = ranker.rank(user, limit=len(cands))
    popularity = [features[list(cands).index(w.item_index[item]), POPULARITY] for item in head]
    assert all(a >= b - 1e-6 for a, b in itertools.pairwise(popularity))
    assert sorted(ranker.rank(user)) == sorted(set(shared) - set(w.seen[user]))
