"""Deterministic assignment (ADR 0021): sha256 buckets stable across processes, the split
follows the weights, a layer's experiments never share a user and keep their users when
others start or stop, anonymous users get the control, exposures are logged once."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from experiments_app.assignment import TargetingContext, assign, bucket, targeting_matches
from experiments_app.models import LAYER_BUCKETS, Experiment, Exposure, Layer
from experiments_app.services import lifecycle
from experiments_app.services.exposures import log_exposure
from experiments_app.services.validation import VariantSpec
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
USERS = range(1, 20_001)
AT = datetime(2026, 12, 1, 12, tzinfo=UTC)


def running(
    key: str, layer: str = "feed", traffic: int = 100, weights=(50, 50), **kw
) -> Experiment:
    variants = [VariantSpec(f"v{i}", w, is_control=i == 0) for i, w in enumerate(weights)]
    experiment = lifecycle.experiment_create(
        key=key,
        hypothesis="h",
        layer_key=layer,
        variants=variants,
        traffic_share=traffic,
        **kw,
    )
    # Fixed salts: the assertions on shares below hold for these, run after run.
    Layer.objects.filter(key=layer).update(salt=f"layer-{layer}")
    lifecycle.experiment_update(experiment, salt=f"salt-{key}")
    lifecycle.experiment_start(experiment)
    return reload(key)


def reload(key: str) -> Experiment:
    return Experiment.objects.select_related("layer").prefetch_related("variants").get(key=key)


def assignments(experiment: Experiment) -> dict[int, str | None]:
    return {u: (v.key if (v := assign(experiment, u)) is not None else None) for u in USERS}


def test_bucket_is_sha256_and_the_same_in_another_process():
    assert bucket("salt", 42) == bucket("salt", "42")
    assert 0 <= bucket("salt", 42) < LAYER_BUCKETS
    assert bucket("salt", 42) != bucket("other", 42) or bucket("salt", 43) != bucket("other", 43)
    code = (
        "from experiments_app.assignment import bucket;"
        "print([bucket('salt', u) for u in range(50)])"
    )
    # A fresh interpreter has another PYTHONHASHSEED: Python's hash() would differ.
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345", "PATH": "", "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
    )
    assert out.stdout.strip() == str([bucket("salt", u) for u in range(50)])


def test_assignment_is_deterministic_and_follows_the_weights():
    experiment = running("split", weights=(20, 30, 50))
    first = assignments(experiment)
    assert assignments(reload("split")) == first
    counts = Counter(first.values())
    assert None not in counts  # 100% traffic: every user is in
    for key, weight in (("v0", 20), ("v1", 30), ("v2", 50)):
        share = 100 * counts[key] / len(USERS)
        assert abs(share - weight) <= 1.5, (key, share)


def test_traffic_share_puts_that_share_of_the_layer_in_the_experiment():
    experiment = running("tenth", traffic=10)
    inside = sum(v is not None for v in assignments(experiment).values())
    assert abs(100 * inside / len(USERS) - 10) <= 1.5
    assert (experiment.layer_slot_start, experiment.layer_slot_end) == (0, 1000)


def test_experiments_of_one_layer_never_share_a_user_and_keep_theirs():
    first = running("first", traffic=40)
    second = running("second", traffic=40)
    assert (second.layer_slot_start, second.layer_slot_end) == (4000, 8000)
    a, b = assignments(first), assignments(second)
    both = [u for u in USERS if a[u] is not None and b[u] is not None]
    assert both == []
    assert all(
        a[u] is not None or b[u] is not None or bucket(first.layer.salt, u) >= 8000 for u in USERS
    )

    third = running("third", traffic=20)
    assert (third.layer_slot_start, third.layer_slot_end) == (8000, 10000)
    assert assignments(reload("first")) == a
    assert lifecycle.experiment_stop(second).status == "stopped"
    assert assignments(reload("first")) == a
    assert all(v is None for v in assignments(reload("second")).values())

    # The freed slot is reused by the next start; the first keeps its users still.
    fourth = running("fourth", traffic=30)
    assert (fourth.layer_slot_start, fourth.layer_slot_end) == (4000, 7000)
    assert assignments(reload("first")) == a
    c = assignments(fourth)
    assert not [u for u in USERS if a[u] is not None and c[u] is not None]


def test_experiments_in_different_layers_overlap_independently():
    a = assignments(running("colour", layer="ui"))
    b = assignments(running("ranker", layer="ranking"))
    both = Counter((a[u], b[u]) for u in USERS)
    assert len(both) == 4 and min(both.values()) > 0.2 * len(USERS)


def test_anonymous_users_get_the_control_and_draft_or_stopped_assign_nobody():
    experiment = running("anon", traffic=1)
    control = assign(experiment, None)
    assert control is not None and control.is_control and control.key == "v0"
    stopped = lifecycle.experiment_stop(experiment)
    assert assign(reload(stopped.key), None) is None
    draft = lifecycle.experiment_create(
        key="draft",
        hypothesis="h",
        layer_key="feed",
        variants=[VariantSpec("a", 50, True), VariantSpec("b", 50)],
    )
    assert assign(draft, 1) is None and assign(draft, None) is None


def test_targeting_keeps_other_users_out():
    now = AT
    experiment = running("newbies", targeting={"new_users_days": 7, "platform": "ios"})
    fresh = TargetingContext(now=now, joined_at=now - timedelta(days=2), platform="ios")
    old = TargetingContext(now=now, joined_at=now - timedelta(days=30), platform="ios")
    web = TargetingContext(now=now, joined_at=now - timedelta(days=2), platform="web")
    assert assign(experiment, 5, context=fresh) is not None
    assert assign(experiment, 5, context=old) is None
    assert assign(experiment, 5, context=web) is None
    assert assign(experiment, 5) is None  # targeted, nothing known about the user
    assert targeting_matches({}, None)
    assert targeting_matches({"segment": "heavy"}, TargetingContext(now=now, segment="heavy"))
    assert not targeting_matches({"segment": "heavy"}, TargetingContext(now=now))


def test_an_exposure_is_logged_once_per_user_and_experiment():
    user = UserFactory()
    experiment = running("exposed")
    variant = assign(experiment, user.id)
    assert variant is not None
    assert log_exposure(experiment, variant, user.id, AT) is True
    assert log_exposure(experiment, variant, user.id, AT + timedelta(hours=1)) is False
    other = next(v for v in experiment.variants.all() if v.id != variant.id)
    assert log_exposure(experiment, other, user.id, AT + timedelta(hours=2)) is False
    row = Exposure.objects.get()
    assert (row.variant_id, row.exposed_at, row.user_id) == (variant.id, AT, user.id)

    assert log_exposure(experiment, variant, None, AT) is False  # anonymous: not logged
    assert log_exposure(experiment, variant, 987_654_321, AT) is False  # no such user
    assert Exposure.objects.count() == 1
    second = running("exposed-too", layer="other")
    assert log_exposure(second, second.variants.all()[0], user.id, AT) is True
    assert Exposure.objects.count() == 2
    with pytest.raises(ValueError):
        log_exposure(second, variant, user.id, AT)
