"""User segments (FEAT-002): engagement at its thresholds, interest clusters, the run's
writes (assignments, daily sizes, Redis copy), the serving read and its uses (experiment
targeting, the ranking signal, metrics, admin pages)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from django.core.management import call_command
from django.test import override_settings

from features_app import public as features
from features_app.contracts import Forgetting
from features_app.models import SegmentAssignment, SegmentSize, UserEvent
from features_app.partitions import ensure_partitions
from features_app.segments import affinity_matrix, compute_segments
from inbo import keys
from inbo import redis as inbo_redis
from tests.factories import CategoryFactory, ItemFactory, UserFactory

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
LONG_AGO = NOW - timedelta(days=400)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _partitions(db):
    ensure_partitions(NOW - timedelta(days=60), NOW)


def _user(joined: datetime = LONG_AGO):
    user = UserFactory()
    user.date_joined = joined
    user.save(update_fields=["date_joined"])
    return user


def _events(user, item, kind: str, days_ago: list[float], **context) -> None:
    UserEvent.objects.bulk_create(
        UserEvent(
            user=user,
            item=item,
            event_type=kind,
            occurred_at=NOW - timedelta(days=d),
            event_id=uuid.uuid4(),
            context=context,
        )
        for d in days_ago
    )


def _engagement() -> dict[int, str]:
    compute_segments(now=NOW)
    return dict(SegmentAssignment.objects.values_list("user_id", "engagement"))


# --- engagement -----------------------------------------------------------------------


@override_settings(
    SEGMENTS_NEW_DAYS=7,
    SEGMENTS_DORMANT_DAYS=14,
    SEGMENTS_REGULAR_DAYS=4,
    SEGMENTS_POWER_DAYS=12,
    SEGMENTS_POWER_DEPTH=0.5,
)
def test_engagement_segments_change_exactly_at_their_thresholds():
    item = ItemFactory()
    new = _user(joined=NOW - timedelta(days=6.9))
    not_new = _user(joined=NOW - timedelta(days=7.1))  # no event at all: dormant
    _events(not_new, item, "impression", [0.1])  # impressions are not activity
    dormant = _user()
    _events(dormant, item, "click", [14.1])
    casual = _user()
    _events(casual, item, "click", [13.9, 20, 21])  # 3 active days: below regular
    regular = _user()
    _events(regular, item, "click", [1, 2, 3, 4])  # 4 days: regular
    shallow = _user()
    _events(shallow, item, "click", [float(d) for d in range(1, 15)])  # 14 days, no reads
    power = _user()
    days = [float(d) for d in range(1, 13)]  # 12 days
    _events(power, item, "click", days)
    _events(power, item, "read", days[:6])  # depth 6/12 = 0.5
    almost = _user()
    _events(almost, item, "click", days[:11])  # 11 days
    _events(almost, item, "read", days[:11])
    dwell = _user()
    _events(dwell, item, "click", days[:6], dwell_ms=45_000)  # a long dwell counts as deep
    _events(dwell, item, "click", days[6:], dwell_ms=29_999)
    segments = _engagement()
    assert segments[new.pk] == "new"
    assert segments[not_new.pk] == "dormant"
    assert segments[dormant.pk] == "dormant"
    assert segments[casual.pk] == "casual"
    assert segments[regular.pk] == "regular"
    assert segments[shallow.pk] == "regular"
    assert segments[power.pk] == "power"
    assert segments[almost.pk] == "regular"
    assert segments[dwell.pk] == "power"
    row = SegmentAssignment.objects.get(user=power)
    assert (row.active_days, row.depth) == (12, 0.5)


def test_thresholds_come_from_settings():
    item = ItemFactory()
    user = _user()
    _events(user, item, "click", [1, 2])
    assert _engagement()[user.pk] == "casual"
    with override_settings(SEGMENTS_REGULAR_DAYS=2):
        assert _engagement()[user.pk] == "regular"


def test_inactive_users_lose_their_segment():
    user = _user()
    compute_segments(now=NOW)
    assert SegmentAssignment.objects.filter(user=user).exists()
    user.is_active = False
    user.save(update_fields=["is_active"])
    compute_segments(now=NOW + timedelta(hours=1))
    assert not SegmentAssignment.objects.filter(user=user).exists()


# --- interest clusters ----------------------------------------------------------------


def test_clusters_group_a_synthetic_population_by_taste_and_name_it():
    tech = CategoryFactory(name="Technology")
    cooking = CategoryFactory(name="Cooking")
    sport = CategoryFactory(name="Sport")
    items = {}
    for category in (tech, cooking, sport):
        items[category.pk] = [ItemFactory() for _ in range(3)]
        for item in items[category.pk]:
            item.categories.set([category])
    population: dict[int, int] = {}
    for category in (tech, cooking, sport):
        for n in range(6):
            user = _user()
            for i, item in enumerate(items[category.pk]):
                _events(user, item, "click", [1 + i + n / 10])
            # a little noise: one click elsewhere
            other = tech if category != tech else sport
            _events(user, items[other.pk][n % 3], "click", [2.5])
            population[user.pk] = category.pk
    taste_free = _user()
    _events(taste_free, items[tech.pk][0], "hide", [1])  # only negative taste: no cluster
    with override_settings(SEGMENTS_CLUSTERS=3):
        run = compute_segments(now=NOW)
    assert run.clustered == 18
    assert sorted(run.clusters.values()) == ["Cooking", "Sport", "Technology"]
    rows = SegmentAssignment.objects.in_bulk(list(population))
    by_category: dict[int, set[int | None]] = {}
    for user_id, category_id in population.items():
        by_category.setdefault(category_id, set()).add(rows[user_id].cluster)
    assert all(len(c) == 1 for c in by_category.values())  # one cluster per taste
    assert len({next(iter(c)) for c in by_category.values()}) == 3  # three different ones
    label = {c: run.clusters[c] for c in run.clusters}
    assert label[rows[next(u for u, c in population.items() if c == tech.pk)].cluster] == (
        "Technology"
    )
    assert SegmentAssignment.objects.get(user=taste_free).cluster is None
    # The same population clusters the same way again (fixed seed, numbered by label).
    with override_settings(SEGMENTS_CLUSTERS=3):
        again = compute_segments(now=NOW + timedelta(minutes=5))
    assert again.clusters == run.clusters


# --- what readers asked to forget (ADR 0023) ------------------------------------------


@pytest.fixture
def forget():
    """Records of removals and resets, served through a subscribed source."""
    records: list[Forgetting] = []

    def source(user_ids):
        return [r for r in records if user_ids is None or r.user_id in user_ids]

    features.subscribe_forgetting(source)
    yield records
    features.unsubscribe_forgetting(source)


def test_a_removed_category_or_a_reset_no_longer_pulls_the_readers_cluster(forget):
    tech, cooking = CategoryFactory(name="Technology"), CategoryFactory(name="Cooking")
    items: dict[int, list] = {}
    for category in (tech, cooking):
        items[category.pk] = [ItemFactory() for _ in range(4)]
        for item in items[category.pk]:
            item.categories.set([category])
        for n in range(5):  # readers of one taste, to cluster around
            user = _user()
            for item in items[category.pk]:
                _events(user, item, "click", [1 + n / 10])
    both = ItemFactory()
    both.categories.set([tech, cooking])
    # Ten days ago a lot of technology (and a read filed under both); since, some cooking.
    reader, twin, reset = _user(), _user(), _user()
    for user in (reader, twin, reset):
        for item in items[tech.pk]:
            _events(user, item, "click", [10])
        _events(user, both, "read", [9])
        _events(user, items[cooking.pk][0], "click", [2])
    _events(reader, items[tech.pk][0], "click", [1])  # after the removal: counts again
    forget.append(
        Forgetting(user_id=reader.pk, before=NOW - timedelta(days=5), category_id=tech.pk)
    )
    forget.append(Forgetting(user_id=reset.pk, before=NOW - timedelta(days=1)))

    with override_settings(SEGMENTS_CLUSTERS=2):
        run = compute_segments(now=NOW)

    rows = SegmentAssignment.objects.in_bulk([reader.pk, twin.pk, reset.pk])
    assert run.clusters[rows[twin.pk].cluster] == "Technology"  # no rule: as before
    assert run.clusters[rows[reader.pk].cluster] == "Cooking"
    assert rows[reset.pk].cluster is None  # nothing left to cluster
    # Exactly what reconcile keeps: the read still counts towards Cooking, the click after
    # the removal towards Technology, nothing earlier towards Technology.
    user_ids, category_ids, matrix = affinity_matrix(NOW)
    vector = matrix[user_ids.index(reader.pk)]
    expected = np.zeros(len(category_ids))
    expected[category_ids.index(tech.pk)] = 1.0
    expected[category_ids.index(cooking.pk)] = 2.0 + 1.0
    assert np.allclose(vector, expected / np.linalg.norm(expected))
    assert reset.pk not in user_ids
    twin_vector = matrix[user_ids.index(twin.pk)]
    assert twin_vector[category_ids.index(tech.pk)] > twin_vector[category_ids.index(cooking.pk)]


# --- the run's writes and the serving read --------------------------------------------


def test_a_run_writes_the_day_sizes_and_the_redis_copy():
    item = ItemFactory()
    users = [_user() for _ in range(3)]
    for user in users[:2]:
        _events(user, item, "click", [1, 2, 3, 4])
    run = compute_segments(now=NOW)
    assert run.users == 3 and run.redis_written
    sizes = dict(
        SegmentSize.objects.filter(day=NOW.date(), kind="engagement").values_list("key", "users")
    )
    assert sizes == {"new": 0, "casual": 0, "regular": 2, "power": 0, "dormant": 1}
    assert features.segment_sizes() == sizes
    raw = inbo_redis.state().get(keys.user_segment(users[0].pk))
    assert raw is not None
    segment = features.user_segment(users[0].pk)
    assert segment is not None
    assert (segment.engagement, segment.engagement_level, segment.computed_at) == (
        "regular",
        3,
        NOW,
    )


def test_the_serving_read_falls_back_to_postgresql_when_redis_lost_the_segments(
    django_assert_num_queries,
):
    user = _user()
    assert features.user_segment(user.pk) is None  # before the first run
    compute_segments(now=NOW)
    later = _user()  # joined after the run: not segmented, known without a query
    with django_assert_num_queries(0):
        assert features.user_segment(later.pk) is None
        assert features.user_segment_decode(later.pk, None) is None
    inbo_redis.state().delete(keys.user_segment(user.pk), keys.segments_written())
    with django_assert_num_queries(1):
        segment = features.user_segment(user.pk)
    assert segment is not None and segment.engagement == "dormant"
    assert features.user_segment_decode(user.pk, b"{not json", copies_complete=True) == segment
    assert features.user_segment_decode(user.pk, None, copies_complete=False) == segment


def test_the_command_reports_progress_and_writes_history(capsys):
    _user()
    call_command("segments")
    out = capsys.readouterr().out
    assert "engagement: 1 users" in out
    assert "redis: written" in out
    assert SegmentSize.objects.filter(kind="engagement").count() == 5


def test_the_beat_task_writes_history():
    from django.conf import settings

    from features_app.tasks import compute_segments as task

    assert settings.CELERY_BEAT_SCHEDULE["features-compute-segments"]["task"] == task.name
    _user()
    assert task.apply().get() == 1
    assert SegmentSize.objects.filter(kind="engagement").exists()


# --- uses: experiment targeting, the ranking signal, metrics, admin --------------------


@pytest.fixture
def segmented(user, other_user):
    """``user`` is a regular reader (joined long ago, active on 4 days), ``other_user`` new;
    a few items to fill the feed; segments computed now."""
    from django.utils import timezone

    now = timezone.now()
    ensure_partitions(now - timedelta(days=30), now)
    user.date_joined = now - timedelta(days=400)
    user.save(update_fields=["date_joined"])
    items = [ItemFactory(published_at=now - timedelta(hours=1 + i)) for i in range(6)]
    UserEvent.objects.bulk_create(
        UserEvent(
            user=user,
            item=items[0],
            event_type="click",
            occurred_at=now - timedelta(days=d),
            event_id=uuid.uuid4(),
        )
        for d in (1, 2, 3, 4)
    )
    compute_segments(now=now)
    return items


HOME = "/api/v1/experience/home/"


def test_targeting_by_segment_assigns_only_matching_users(
    segmented, user, other_user, auth_client, other_client
):
    from experiments_app import serving
    from experiments_app.models import Exposure
    from experiments_app.services import lifecycle
    from experiments_app.services.validation import VariantSpec

    serving.reset_cache()
    experiment = lifecycle.experiment_start(
        lifecycle.experiment_create(
            key="regulars-only",
            hypothesis="Regular readers like trending first.",
            layer_key="home",
            targeting={"segment": "regular"},
            variants=[
                VariantSpec("control", 0, True, {}),
                VariantSpec("treat", 100, False, {"section_order": ["trending", "for_you"]}),
            ],
        )
    )
    try:
        assert auth_client.get(HOME).json()["experiments"] == {"regulars-only": "treat"}
        assert other_client.get(HOME).json()["experiments"] == {}
        assert list(Exposure.objects.filter(experiment=experiment).values_list("user_id")) == [
            (user.pk,)
        ]
        # Without the Redis copy the segment comes from PostgreSQL: still targeted.
        inbo_redis.state().delete(
            keys.user_segment(user.pk), keys.segments_written(), keys.feed(user.pk)
        )
        assert auth_client.get(HOME).json()["experiments"] == {"regulars-only": "treat"}
    finally:
        serving.reset_cache()


def test_an_unknown_segment_in_targeting_is_refused():
    from experiments_app.services.validation import validate_targeting
    from inbo.errors import InvalidInput

    validate_targeting({"segment": "power"})
    with pytest.raises(InvalidInput, match="segment must be one of new, casual, regular"):
        validate_targeting({"segment": "heavy-readers"})


def test_the_engagement_level_is_in_every_explanation(segmented, auth_client, other_client):
    body = auth_client.get(HOME).json()
    explained = [e["explanation"] for s in body["sections"] for e in s["items"]]
    assert explained and all(x["engagement_level"] == 3.0 for x in explained)
    # ... and in the served log, which the learned reranker trains on.
    from experience_app.models import ServedFeed
    from experience_app.services.feed import served_log

    served_log.flush()
    logged = [i["signals"] for f in ServedFeed.objects.all() for i in f.items]
    assert logged and all(s["engagement_level"] == 3.0 for s in logged)
    new = other_client.get(HOME).json()
    assert all(
        e["explanation"]["engagement_level"] == 1.0 for s in new["sections"] for e in s["items"]
    )


def test_a_user_never_segmented_has_no_engagement_level(auth_client):
    from django.utils import timezone

    now = timezone.now()
    for i in range(3):
        ItemFactory(published_at=now - timedelta(hours=1 + i))
    body = auth_client.get(HOME).json()
    explained = [e["explanation"] for s in body["sections"] for e in s["items"]]
    assert explained and all("engagement_level" not in x for x in explained)


def test_metrics_export_users_per_segment(segmented, client):
    text = client.get("/metrics").content.decode()
    assert 'inbo_user_segment_users{segment="regular"} 1.0' in text
    assert 'inbo_user_segment_users{segment="new"} 1.0' in text


@pytest.fixture
def staff_client(db):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def test_admin_lists_users_by_segment_and_plots_sizes(segmented, staff_client, user):
    page = staff_client.get("/admin/features_app/segmentassignment/?engagement=regular")
    assert page.status_code == 200 and user.username in page.content.decode()
    assert (
        staff_client.get("/admin/features_app/segmentassignment/?cluster=none").status_code == 200
    )
    assert staff_client.get("/admin/features_app/segmentassignment/?cluster=x1").status_code == 200
    sizes = staff_client.get("/admin/features_app/segmentsize/")
    html = sizes.content.decode()
    assert sizes.status_code == 200 and "<svg" in html and "<polyline" not in html  # one day
    assert "<th>regular</th>" in html
    for query in ("?kind=cluster&days=90", "?kind=nope&days=-1", "?days=99999999999999999999"):
        assert staff_client.get(f"/admin/features_app/segmentsize/{query}").status_code == 200


def test_the_sizes_chart_draws_a_line_per_segment_and_escapes_labels():
    from datetime import date

    from features_app.charts import lines_svg

    svg = lines_svg(
        {"<b>": [(date(2026, 12, 1), 3.0), (date(2026, 12, 2), 5.0)], "power": []},
        title="a & b",
    )
    assert svg.count("<polyline") == 1 and "&lt;b&gt;" in svg and "a &amp; b" in svg
    assert "No data yet." in lines_svg({})
