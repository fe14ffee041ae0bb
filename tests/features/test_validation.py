"""Validation before sync: invalid counters are quarantined and reported, never written."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from features_app import public as features
from features_app import sync
from features_app.models import CounterQuarantine, ItemFeature
from features_app.validation import OUTLIER_MIN_JUMP, validate
from inbo import keys
from inbo import redis as inbo_redis
from tests.factories import ItemFactory, UserFactory
from tests.features.utils import T0, event, impressions

pytestmark = pytest.mark.django_db


def _counts(**values: int) -> dict[str, int]:
    base = dict.fromkeys(
        ("impressions", "clicks", "reads", "saves", "shares", "dismisses", "hides"), 0
    )
    return {**base, **values}


def _reasons(item) -> set[tuple[str, str]]:
    return set(
        CounterQuarantine.objects.filter(item=item).values_list("counter", "reason").distinct()
    )


def _tamper(item, field: str, by: int) -> None:
    client = inbo_redis.state()
    client.hincrby(keys.item_counts(item.id), field, by)
    client.sadd(keys.dirty_items(), item.id)


# --- the rules --------------------------------------------------------------------------


def test_valid_counters_have_no_problem():
    assert validate(_counts(impressions=10, clicks=3), None) == []
    assert validate(_counts(impressions=10, clicks=3), _counts(impressions=9, clicks=3)) == []


def test_a_negative_counter_is_a_problem():
    [problem] = validate(_counts(impressions=5, saves=-1), None)
    assert (problem.counter, problem.value, problem.reason) == ("saves", -1, "negative")


def test_clicks_may_run_ahead_of_impressions_only_within_the_tolerance():
    assert validate(_counts(impressions=0, clicks=5), None) == []  # absolute tolerance
    assert validate(_counts(impressions=100, clicks=110), None) == []  # 10 % tolerance
    [problem] = validate(_counts(impressions=0, clicks=6), None)
    assert (problem.counter, problem.reason) == ("clicks", "clicks_exceed_impressions")
    [problem] = validate(_counts(impressions=100, clicks=111), None)
    assert problem.detail == "111 clicks for 100 impressions"


def test_a_total_that_decreased_since_the_last_sync_is_a_problem():
    [problem] = validate(_counts(impressions=9), _counts(impressions=10))
    assert (problem.counter, problem.value, problem.previous, problem.reason) == (
        "impressions",
        9,
        10,
        "decreased",
    )


def test_a_jump_by_orders_of_magnitude_is_an_outlier():
    jump = OUTLIER_MIN_JUMP + 10
    [problem] = validate(_counts(impressions=jump + 10), _counts(impressions=10))
    assert problem.reason == "outlier"
    # Big but proportionate growth is not an outlier, nor is a first sync.
    assert validate(_counts(impressions=jump * 2), _counts(impressions=jump)) == []
    assert validate(_counts(impressions=jump), None) == []


# --- in the sync -------------------------------------------------------------------------


def test_invalid_items_are_quarantined_and_a_valid_one_in_the_batch_is_written():
    user = UserFactory()
    valid, negative, clicky, decreased, outlier = (ItemFactory() for _ in range(5))
    everyone = [valid, negative, clicky, decreased, outlier]
    features.events_ingest(
        [*impressions(user, everyone), event(user, valid, "click"), event(user, decreased, "save")]
    )
    sync.sync_features(now=T0)  # a first, clean sync: the baseline of "previous"
    before = {f.item_id: f.impressions for f in ItemFeature.objects.all()}
    features.events_ingest([event(user, valid, "read")])
    _tamper(negative, "dismiss", -3)
    _tamper(clicky, "click", 50)
    _tamper(decreased, "save", -1)
    _tamper(outlier, "impression", OUTLIER_MIN_JUMP * 2)

    report = sync.sync_features(now=T0)

    assert (report.synced, report.quarantined) == (1, 4)
    assert _reasons(valid) == set()
    assert _reasons(negative) == {("dismisses", "negative")}
    assert _reasons(clicky) == {("clicks", "clicks_exceed_impressions")}
    assert _reasons(decreased) == {("saves", "decreased")}
    assert _reasons(outlier) == {("impressions", "outlier")}
    quarantined = CounterQuarantine.objects.get(item=decreased)
    assert (quarantined.value, quarantined.previous, quarantined.resolved_at) == (0, 1, None)
    # Nothing of the invalid values reached ItemFeature; the valid item's read did.
    rows = {f.item_id: f for f in ItemFeature.objects.all()}
    assert {i: f.impressions for i, f in rows.items()} == before
    assert (rows[negative.id].dismisses, rows[clicky.id].clicks, rows[decreased.id].saves) == (
        0,
        0,
        1,
    )
    assert rows[valid.id].reads == 1
    assert any("clicks_exceed_impressions" in p for p in report.problems)


def test_an_invalid_item_on_its_first_sync_gets_no_row():
    user, item = UserFactory(), ItemFactory()
    features.events_ingest([event(user, item, "click") for _ in range(7)])  # no impression
    report = sync.sync_features(now=T0)
    assert (report.synced, report.quarantined) == (0, 1)
    assert not ItemFeature.objects.filter(item=item).exists()
    assert _reasons(item) == {("clicks", "clicks_exceed_impressions")}


def test_quarantine_rows_are_not_duplicated_when_the_same_value_is_synced_again():
    user, item = UserFactory(), ItemFactory()
    features.events_ingest(impressions(user, [item]))
    _tamper(item, "impression", -5)
    sync.sync_features(now=T0)
    assert CounterQuarantine.objects.count() == 1

    for _ in range(2):
        inbo_redis.state().sadd(keys.dirty_items(), item.id)
        assert sync.sync_features(now=T0).quarantined == 1  # still reported...
    assert CounterQuarantine.objects.count() == 1  # ...but recorded once

    _tamper(item, "impression", -1)  # another wrong value is another row
    sync.sync_features(now=T0)
    assert list(CounterQuarantine.objects.values_list("value", flat=True)) == [
        -5,
        -4,
    ]  # newest first


def test_quarantined_counters_are_listed_in_the_admin(client):
    user, item = UserFactory(), ItemFactory(title="Suspicious issue")
    features.events_ingest([event(user, item, "click") for _ in range(9)])
    sync.sync_features(now=T0)
    staff = UserFactory(is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_counterquarantine"))
    client.force_login(staff)

    response = client.get("/admin/features_app/counterquarantine/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "Suspicious issue" in page
    assert "Clicks exceed impressions" in page
    assert response.context["cl"].result_count == 1
    response = client.get("/admin/features_app/counterquarantine/?reason=negative")
    assert response.context["cl"].result_count == 0


def test_the_admin_is_closed_to_non_staff(client):
    client.force_login(UserFactory())
    response = client.get("/admin/features_app/counterquarantine/")
    assert response.status_code == 302
