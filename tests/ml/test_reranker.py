"""The learned reranker end to end, with real LightGBM: training from the served log, the
gate, the registry (promote, rollback), serving with hot reload, fallback on a corrupt
artifact, and the feed's explanation."""

from __future__ import annotations

import random
import uuid
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings
from django.utils import timezone
from prometheus_client import REGISTRY

from experience_app.learned import FEATURES, feature_vector
from experience_app.models import ExperienceInteraction, ModelVersion, ServedFeed
from experience_app.ranking import Scored, Weights, linear_score
from experience_app.services import registry, rerank
from experience_app.services.feed import cache, served_log
from inbo.errors import Conflict
from ml_app.services.reranker_training import collect, grade_of, train_reranker
from ml_app.tasks import train_reranker as train_reranker_task
from tests.experience.utils import HOME, ingest, make_item, sections
from tests.factories import CategoryFactory, ItemFactory, UserFactory

pytestmark = pytest.mark.django_db

NOW = timezone.now()


@pytest.fixture(autouse=True)
def _fresh_model_cache():
    rerank.reset()
    yield
    rerank.reset()


def _signals(rng: random.Random, quality: float) -> dict[str, float]:
    """Logged features of one shown item: ``quality`` shows in ``saves_log`` (which the
    linear ranking does not weigh); ``popularity`` is noise the linear ranking trusts."""
    return {
        "popularity": round(rng.gauss(0, 1), 4),
        "freshness": round(rng.random(), 4),
        "affinity": 0.0,
        "provider_affinity": 0.0,
        "subscribed": 0.0,
        "seen": 0.0,
        "ctr": 0.04,
        "saves_log": round(quality * 3 + rng.gauss(0, 0.2), 4),
        "age_hours_log": round(rng.random() * 4, 4),
    }


def served_world(responses: int = 160, seed: int = 7, *, end=NOW - timedelta(days=2)):
    """A served log whose clicks follow a feature the linear ranking ignores."""
    rng = random.Random(seed)
    users = [UserFactory() for _ in range(8)]
    items = [ItemFactory() for _ in range(40)]
    quality = {item.id: rng.random() for item in items}
    rows, acts = [], []
    for n in range(responses):
        user = users[n % len(users)]
        served_at = end - timedelta(minutes=10 * (responses - n))
        shown = rng.sample(items, 10)
        rows.append(
            ServedFeed(
                request_id=uuid.uuid4(),
                user=user,
                served_at=served_at,
                items=[
                    {
                        "item_id": item.id,
                        "section": "for_you",
                        "position": p,
                        "score": 0.0,
                        "signals": _signals(rng, quality[item.id]),
                    }
                    for p, item in enumerate(shown)
                ],
            )
        )
        best = max(shown, key=lambda i: quality[i.id] + rng.gauss(0, 0.1))
        worst = min(shown, key=lambda i: quality[i.id])
        for item, kind in ((best, "click"), (worst, "dismiss")):
            acts.append(
                ExperienceInteraction(
                    user=user,
                    item=item,
                    interaction_type=kind,
                    event_id=uuid.uuid4(),
                    occurred_at=served_at + timedelta(minutes=1),
                    request_id=rows[-1].request_id,
                )
            )
    ServedFeed.objects.bulk_create(rows)
    ExperienceInteraction.objects.bulk_create(acts)
    return users, items


def register_trained(gate_passed: bool = True, baseline_version=None) -> ModelVersion:
    served_world(responses=80, seed=3)
    result = train_reranker(now=NOW, days=7, promote=False, min_groups=10)
    version = result.version
    version.gate = {**version.gate, "passed": gate_passed, "baseline_version": baseline_version}
    version.save(update_fields=["gate"])
    return version


# --- labels ---------------------------------------------------------------------------


def test_grades_put_a_dismissal_below_an_ignored_item_and_a_deep_read_above_a_click():
    assert grade_of({"dismiss", "click"}, None) == 0
    assert grade_of(set(), None) == 1
    assert grade_of({"click"}, 0.2) == 2
    assert grade_of({"click"}, 0.8) == 3
    assert grade_of({"read"}, None) == 4
    assert grade_of({"click", "save"}, None) == 5


def test_collect_labels_only_what_happened_after_serving_and_within_the_window():
    user, item, other = UserFactory(), ItemFactory(), ItemFactory()
    served_at = NOW - timedelta(days=3)
    ServedFeed.objects.create(
        user=user,
        served_at=served_at,
        items=[
            {"item_id": i.id, "section": "for_you", "position": p, "score": 0, "signals": {}}
            for p, i in enumerate((item, other))
        ],
    )
    for kind, at in (
        ("save", served_at - timedelta(hours=1)),
        ("click", served_at + timedelta(hours=30)),
    ):
        ExperienceInteraction.objects.create(
            user=user, item=item, interaction_type=kind, event_id=uuid.uuid4(), occurred_at=at
        )
    # Before serving and after the label window: nothing to learn from this response.
    assert len(collect(NOW - timedelta(days=7), NOW, max_groups=100)) == 0
    ExperienceInteraction.objects.create(
        user=user,
        item=other,
        interaction_type="click",
        event_id=uuid.uuid4(),
        occurred_at=served_at + timedelta(hours=2),
    )
    groups = collect(NOW - timedelta(days=7), NOW, max_groups=100)
    assert groups.sizes == [2] and groups.grades == [1, 2]
    assert len(groups.rows[0]) == len(FEATURES)


# --- training and the gate ------------------------------------------------------------


def test_training_learns_what_the_served_log_shows_and_passes_its_gate_on_later_responses():
    served_world()
    lines: list[str] = []
    result = train_reranker(now=NOW, days=7, promote=True, min_groups=20, out=lines.append)
    version = result.version
    assert version is not None and version.kind == "reranker"
    gate = version.gate
    assert gate["passed"] and gate["baseline_name"] == "linear"
    assert gate["candidate"] > gate["baseline"] + 0.05
    # Validated on responses after everything it was trained on.
    assert gate["validation"]["from"] > version.trained_to.isoformat()
    assert version.features == list(FEATURES)
    assert version.artifact_sha256 == registry.checksum(bytes(version.artifact))
    assert max(version.metrics["importance_gain"], key=version.metrics["importance_gain"].get) == (
        "saves_log"
    )
    assert result.promoted and registry.active("reranker").id == version.id
    assert any(line.startswith("gate: nDCG@10") and "passed" in line for line in lines)

    # The next training is gated against the now active version, on its own later data.
    second = train_reranker(now=NOW, days=7, promote=False, min_groups=20)
    assert second.gate["baseline_name"] == version.label
    assert second.gate["baseline_version"] == version.id


def test_too_little_served_log_trains_nothing():
    served_world(responses=5)
    result = train_reranker(now=NOW, days=7, min_groups=50)
    assert result.version is None and ModelVersion.objects.count() == 0


def test_a_version_whose_gate_failed_or_is_stale_is_not_promoted():
    failed = register_trained(gate_passed=False)
    with pytest.raises(Conflict, match="gate did not pass"):
        registry.promote(failed.id)
    stale = register_trained(gate_passed=True, baseline_version=12345)
    with pytest.raises(Conflict, match="measured against"):
        registry.promote(stale.id)
    assert registry.active("reranker") is None
    with pytest.raises(CommandError, match="cannot be promoted"):
        call_command("model_promote", str(failed.id))
    # An operator may still force a known version.
    call_command("model_promote", str(failed.id), "--force")
    assert registry.active("reranker").id == failed.id


# --- serving: hot reload, rollback, fallback ------------------------------------------


@override_settings(ML_MODEL_RELOAD_SECONDS=0)
def test_workers_pick_up_a_promotion_and_a_rollback_without_a_restart(capsys):
    first = register_trained()
    registry.promote(first.id)
    assert rerank.current().version_id == first.id
    second = register_trained(baseline_version=first.id)
    call_command("model_promote", str(second.id))
    assert rerank.current().version_id == second.id  # same process, no reset
    call_command("model_rollback", "reranker")
    assert rerank.current().version_id == first.id
    assert "serving reranker:v1" in capsys.readouterr().out
    call_command("model_rollback", "reranker")
    assert rerank.current() is None  # the linear ranking


def _fallbacks(reason: str) -> float:
    value = REGISTRY.get_sample_value(
        "inbo_model_fallbacks_total", {"kind": "reranker", "reason": reason}
    )
    return value or 0.0


@override_settings(ML_MODEL_RELOAD_SECONDS=0)
def test_a_corrupt_artifact_falls_back_to_the_previous_version_then_to_linear(caplog):
    good = register_trained()
    registry.promote(good.id)
    bad = register_trained(baseline_version=good.id)
    registry.promote(bad.id)
    before = _fallbacks("checksum")
    raw = bytearray(bytes(bad.artifact))
    raw[100] ^= 0xFF
    ModelVersion.objects.filter(id=bad.id).update(artifact=bytes(raw))
    rerank.reset()
    assert rerank.current().version_id == good.id
    assert _fallbacks("checksum") == before + 1
    assert "experience.model_fallback" in caplog.text

    # Both unusable (one missing, one unreadable with a matching checksum): linear.
    garbage = b"not a lightgbm model"
    ModelVersion.objects.filter(id=good.id).update(
        artifact=garbage, artifact_sha256=registry.checksum(garbage)
    )
    ModelVersion.objects.filter(id=bad.id).update(artifact=None)
    rerank.reset()
    assert rerank.current() is None
    assert _fallbacks("unreadable") >= 1 and _fallbacks("missing") >= 1


# --- the feed -------------------------------------------------------------------------


@override_settings(ML_MODEL_RELOAD_SECONDS=0)
def test_the_home_feed_is_reranked_by_the_active_version_and_explains_each_item(auth_client, user):
    version = register_trained()
    registry.promote(version.id)
    tech = CategoryFactory()
    for i in range(12):
        make_item(hours_ago=1 + i, categories=[tech])
    crowd = UserFactory()
    ingest(crowd, ItemFactory(), "click", hours_ago=1)

    body = auth_client.get(HOME).json()
    assert body["ranker"] == version.label
    for_you = sections(body)["for_you"]["items"]
    assert for_you and all(e["top_features"] for e in for_you)
    # Boosted from the linear ranking: "linear" competes with the features for a place.
    named = {f["feature"] for e in for_you for f in e["top_features"]}
    assert named <= {*FEATURES, "linear"} and named - {"linear"}
    scores = [e["score"] for e in for_you]
    assert scores == sorted(scores, reverse=True)
    served_log.flush()
    assert ServedFeed.objects.filter(user=user).latest("served_at").ranker == version.label

    # A cached hit says the same, and a corrupt active version never breaks the feed.
    assert auth_client.get(HOME).json()["ranker"] == version.label
    ModelVersion.objects.filter(id=version.id).update(artifact=b"x")
    rerank.reset()
    cache.invalidate(user.id)
    response = auth_client.get(HOME)
    assert response.status_code == 200 and response.json()["ranker"] == "linear"


def test_model_list_prints_versions_with_their_gate(capsys):
    register_trained()
    call_command("model_list")
    out = capsys.readouterr().out
    assert "reranker:v1" in out and "candidate" in out and "gate passed: ndcg@10" in out


@override_settings(ML_MODEL_RELOAD_SECONDS=0)
def test_a_model_boosted_from_the_linear_ranking_adds_its_corrections_to_the_linear_score():
    version = register_trained()
    registry.promote(version.id)
    model = rerank.current()
    assert model.boost_from_linear and version.params["init_score"] == "linear"
    rng = random.Random(1)
    ranked = [Scored(i, float(i) / 10, _signals(rng, rng.random())) for i in range(1, 30)]
    rows = [feature_vector(s.signals, model.features) for s in ranked]
    corrections = model.booster.predict(rows, num_threads=1)
    expected = {s.item_id: s.score + c for s, c in zip(ranked, corrections, strict=True)}
    reranked = rerank.rerank(ranked, model)
    for s in reranked:
        assert s.score == pytest.approx(expected[s.item_id], abs=1e-9)
    assert [s.score for s in reranked] == sorted(expected.values(), reverse=True)

    # Explaining: the contributions and the linear score add up to the score (all of them
    # when every one is named; TOP_FEATURES names the largest).
    top = rerank.explain([s.signals for s in ranked], model)
    for s, named in zip(ranked, top, strict=True):
        assert 0 < len(named) <= rerank.TOP_FEATURES
        linear = linear_score(s.signals, Weights.from_settings())
        assert dict(named).get("linear", linear) == pytest.approx(linear, abs=1e-4)
        magnitudes = [abs(c) for _, c in named]
        assert magnitudes == sorted(magnitudes, reverse=True)


def test_the_daily_task_trains_gates_and_promotes():
    served_world()
    version_id = train_reranker_task()
    version = ModelVersion.objects.get(id=version_id)
    assert version.status == ModelVersion.Status.ACTIVE and version.gate["passed"]
