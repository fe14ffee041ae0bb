"""A user's own reading state over the API: subscriptions, progress, continue, saves.

Another user's object always answers 404 (never 403: nothing to probe), and is left as it was.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from reading_app.models import Item, ReadingProgress, SavedItem, Subscription
from tests.factories import (
    CategoryFactory,
    ItemFactory,
    ProviderFactory,
    ReadingProgressFactory,
    SavedItemFactory,
    SubscriptionFactory,
)
from tests.reading.utils import assert_error

pytestmark = pytest.mark.django_db

SUBSCRIPTIONS = "/api/v1/subscriptions/"
CONTINUE = "/api/v1/reading/continue/"
SAVES = "/api/v1/reading/saves/"


def progress_url(item_id: int) -> str:
    return f"/api/v1/reading/progress/{item_id}/"


def save_url(item_id: int) -> str:
    return f"{SAVES}{item_id}/"


# --- Subscriptions -------------------------------------------------------------------------


def test_subscribe_then_subscribe_again_is_201_then_200(auth_client, user):
    provider = ProviderFactory(slug="platformer")

    first = auth_client.post(SUBSCRIPTIONS, {"provider": "platformer"})
    second = auth_client.post(SUBSCRIPTIONS, {"provider": "platformer"})

    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"]
    assert first.json()["provider"]["slug"] == "platformer"
    assert first.json()["status"] == "active"
    assert Subscription.objects.get().user == user
    assert Subscription.objects.get().provider == provider


def test_subscribe_to_unknown_provider_is_400_naming_the_field(auth_client):
    assert_error(
        auth_client.post(SUBSCRIPTIONS, {"provider": "nope"}), 400, "invalid", ["provider"]
    )
    assert not Subscription.objects.exists()


def test_unsubscribe_keeps_the_row_as_cancelled_and_resubscribe_reactivates_it(auth_client):
    ProviderFactory(slug="platformer")
    sub_id = auth_client.post(SUBSCRIPTIONS, {"provider": "platformer"}).json()["id"]

    assert auth_client.delete(f"{SUBSCRIPTIONS}{sub_id}/").status_code == 204
    assert Subscription.objects.get(pk=sub_id).status == Subscription.Status.CANCELLED
    assert auth_client.get(f"{SUBSCRIPTIONS}{sub_id}/").json()["status"] == "cancelled"

    again = auth_client.post(SUBSCRIPTIONS, {"provider": "platformer"})
    assert again.status_code == 201
    assert (again.json()["id"], again.json()["status"]) == (sub_id, "active")
    assert Subscription.objects.count() == 1


def test_subscriptions_list_and_status_filter(auth_client, user):
    active = SubscriptionFactory(user=user)
    cancelled = SubscriptionFactory(user=user, status=Subscription.Status.CANCELLED)

    everything = auth_client.get(SUBSCRIPTIONS).json()
    only_active = auth_client.get(SUBSCRIPTIONS, {"status": "active"}).json()

    assert everything["count"] == 2
    assert {s["id"] for s in everything["results"]} == {active.id, cancelled.id}
    assert [s["id"] for s in only_active["results"]] == [active.id]
    # Empty means no filter, as for every filter, and the schema lists "" among the values.
    assert auth_client.get(SUBSCRIPTIONS, {"status": ""}).json()["count"] == 2


def test_other_users_subscriptions_are_never_listed(auth_client, user, other_user):
    mine = SubscriptionFactory(user=user)
    SubscriptionFactory(user=other_user)
    assert [s["id"] for s in auth_client.get(SUBSCRIPTIONS).json()["results"]] == [mine.id]


def test_other_users_subscription_detail_is_404(auth_client, other_user):
    theirs = SubscriptionFactory(user=other_user)
    assert_error(auth_client.get(f"{SUBSCRIPTIONS}{theirs.id}/"), 404, "not_found")


def test_other_users_subscription_cannot_be_cancelled(auth_client, other_user):
    theirs = SubscriptionFactory(user=other_user)
    assert_error(auth_client.delete(f"{SUBSCRIPTIONS}{theirs.id}/"), 404, "not_found")
    theirs.refresh_from_db()
    assert theirs.status == Subscription.Status.ACTIVE


def test_subscribing_to_a_provider_another_user_follows_creates_my_own(auth_client, other_user):
    theirs = SubscriptionFactory(user=other_user, status=Subscription.Status.CANCELLED)

    response = auth_client.post(SUBSCRIPTIONS, {"provider": theirs.provider.slug})

    assert response.status_code == 201
    assert response.json()["id"] != theirs.id
    theirs.refresh_from_db()
    assert theirs.status == Subscription.Status.CANCELLED


# --- Reading progress ----------------------------------------------------------------------


def test_put_progress_records_it_and_get_returns_it(auth_client, user):
    item = ItemFactory()

    put = auth_client.put(progress_url(item.id), {"progress": 0.4, "position": 1200})
    get = auth_client.get(progress_url(item.id))

    assert put.status_code == 200
    assert get.status_code == 200
    for body in (put.json(), get.json()):
        assert (body["item"]["id"], body["progress"], body["position"]) == (item.id, 0.4, 1200)
        assert body["completed_at"] is None
    assert ReadingProgress.objects.get().user == user


def test_position_defaults_to_zero(auth_client):
    item = ItemFactory()
    assert auth_client.put(progress_url(item.id), {"progress": 0}).json()["position"] == 0


def test_completed_at_is_set_once_at_the_end_and_kept_when_reading_again(auth_client):
    item = ItemFactory()
    url = progress_url(item.id)

    assert auth_client.put(url, {"progress": 0.9}).json()["completed_at"] is None
    completed_at = auth_client.put(url, {"progress": 1.0}).json()["completed_at"]
    assert completed_at is not None
    assert auth_client.put(url, {"progress": 1}).json()["completed_at"] == completed_at
    later = auth_client.put(url, {"progress": 0.1}).json()
    assert (later["progress"], later["completed_at"]) == (0.1, completed_at)


def test_a_first_put_of_1_completes_the_item_at_the_instant_it_started(auth_client, user):
    item = ItemFactory()

    body = auth_client.put(progress_url(item.id), {"progress": 1.0}).json()

    row = ReadingProgress.objects.get(user=user, item=item)
    assert row.completed_at is not None
    assert row.completed_at == row.started_at
    assert body["completed_at"] is not None


def test_completed_at_is_never_before_started_at(auth_client, user):
    item = ItemFactory()
    auth_client.put(progress_url(item.id), {"progress": 0.5})
    auth_client.put(progress_url(item.id), {"progress": 1.0})

    row = ReadingProgress.objects.get(user=user, item=item)
    assert row.completed_at >= row.started_at


def test_progress_without_a_record_is_404(auth_client):
    assert_error(auth_client.get(progress_url(ItemFactory().id)), 404, "not_found")


@pytest.mark.parametrize("status", [None, Item.Status.UNAVAILABLE])
def test_progress_on_an_unknown_or_unavailable_item_is_404(auth_client, status):
    item_id = ItemFactory(status=status).id if status else 987654
    assert_error(auth_client.put(progress_url(item_id), {"progress": 0.5}), 404, "not_found")
    assert not ReadingProgress.objects.exists()


def test_other_users_progress_is_404(auth_client, other_user):
    theirs = ReadingProgressFactory(user=other_user)
    assert_error(auth_client.get(progress_url(theirs.item_id)), 404, "not_found")


def test_recording_progress_never_changes_another_users(auth_client, user, other_user):
    theirs = ReadingProgressFactory(user=other_user, progress=0.3)

    assert auth_client.put(progress_url(theirs.item_id), {"progress": 1.0}).status_code == 200

    theirs.refresh_from_db()
    assert (theirs.progress, theirs.completed_at) == (0.3, None)
    assert ReadingProgress.objects.get(user=user).progress == 1.0


# --- Continue reading ----------------------------------------------------------------------


def test_continue_lists_started_unfinished_items_latest_first(auth_client, user, other_user):
    first, second, done = ItemFactory(), ItemFactory(), ItemFactory()
    auth_client.put(progress_url(first.id), {"progress": 0.2})
    auth_client.put(progress_url(second.id), {"progress": 0.5})
    auth_client.put(progress_url(done.id), {"progress": 1.0})
    auth_client.put(progress_url(first.id), {"progress": 0.3})  # touched last
    ReadingProgressFactory(user=other_user)
    gone = ReadingProgressFactory(user=user, item=ItemFactory(status=Item.Status.UNAVAILABLE))
    assert gone.pk

    response = auth_client.get(CONTINUE)

    assert response.status_code == 200
    assert [row["item"]["id"] for row in response.json()["results"]] == [first.id, second.id]
    assert response.json()["results"][0]["progress"] == 0.3


def test_continue_cursor_pagination_walks_every_row_once(auth_client, user):
    rows = [ReadingProgressFactory(user=user) for _ in range(5)]

    seen: list[int] = []
    url: str | None = f"{CONTINUE}?page_size=2"
    while url:
        body = auth_client.get(url).json()
        seen += [row["item"]["id"] for row in body["results"]]
        url = body["next"]

    assert seen == [r.item_id for r in sorted(rows, key=lambda r: r.updated_at, reverse=True)]


# --- Saves ---------------------------------------------------------------------------------


def test_saving_twice_is_201_then_200(auth_client, user):
    item = ItemFactory()

    first = auth_client.put(save_url(item.id))
    second = auth_client.put(save_url(item.id))

    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["item"]["id"] == item.id
    assert first.json()["created_at"] == second.json()["created_at"]
    assert SavedItem.objects.filter(user=user).count() == 1


def test_saved_item_get_list_and_unsave(auth_client, user):
    old, new = ItemFactory(), ItemFactory()
    auth_client.put(save_url(old.id))
    auth_client.put(save_url(new.id))

    assert auth_client.get(save_url(old.id)).json()["item"]["id"] == old.id
    assert [s["item"]["id"] for s in auth_client.get(SAVES).json()["results"]] == [new.id, old.id]

    assert auth_client.delete(save_url(old.id)).status_code == 204
    assert_error(auth_client.get(save_url(old.id)), 404, "not_found")
    assert_error(auth_client.delete(save_url(old.id)), 404, "not_found")
    assert [s["item"]["id"] for s in auth_client.get(SAVES).json()["results"]] == [new.id]


def test_saving_an_unknown_or_unavailable_item_is_404(auth_client):
    gone = ItemFactory(status=Item.Status.UNAVAILABLE)
    assert_error(auth_client.put(save_url(987654)), 404, "not_found")
    assert_error(auth_client.put(save_url(gone.id)), 404, "not_found")
    assert not SavedItem.objects.exists()


def test_a_saved_item_that_became_unavailable_is_no_longer_listed(auth_client, user):
    saved = SavedItemFactory(user=user)
    Item.objects.filter(pk=saved.item_id).update(status=Item.Status.UNAVAILABLE)

    assert auth_client.get(SAVES).json()["results"] == []
    assert_error(auth_client.get(save_url(saved.item_id)), 404, "not_found")
    assert auth_client.delete(save_url(saved.item_id)).status_code == 204  # still removable


def test_other_users_saves_are_never_listed(auth_client, user, other_user):
    mine = SavedItemFactory(user=user)
    SavedItemFactory(user=other_user)
    assert [s["item"]["id"] for s in auth_client.get(SAVES).json()["results"]] == [mine.item_id]


def test_other_users_save_is_404(auth_client, other_user):
    theirs = SavedItemFactory(user=other_user)
    assert_error(auth_client.get(save_url(theirs.item_id)), 404, "not_found")


def test_other_users_save_cannot_be_removed(auth_client, other_user):
    theirs = SavedItemFactory(user=other_user)
    assert_error(auth_client.delete(save_url(theirs.item_id)), 404, "not_found")
    assert SavedItem.objects.filter(pk=theirs.pk).exists()


def test_saving_an_item_another_user_saved_creates_my_own(auth_client, user, other_user):
    theirs = SavedItemFactory(user=other_user)
    assert auth_client.put(save_url(theirs.item_id)).status_code == 201
    assert SavedItem.objects.filter(item_id=theirs.item_id).count() == 2


# --- Query counts: constant however many rows ------------------------------------------------


def _subscriptions(user, n: int) -> None:
    for _ in range(n):
        SubscriptionFactory(user=user)


def _in_progress(user, n: int) -> None:
    category = CategoryFactory(slug="topic-with-parent", parent=CategoryFactory(slug="root"))
    for i in range(n):
        item = ItemFactory(categories=[category], published_at=timezone.now() - timedelta(days=i))
        ReadingProgressFactory(user=user, item=item)


def _saves(user, n: int) -> None:
    for _ in range(n):
        SavedItemFactory(user=user)


@pytest.mark.parametrize(
    ("url", "make", "queries"),
    [
        (SUBSCRIPTIONS, _subscriptions, 2),  # count, page (with providers)
        (CONTINUE, _in_progress, 1),  # page (with items and providers)
        (SAVES, _saves, 1),  # page (with items and providers)
    ],
    ids=["subscriptions", "continue", "saves"],
)
def test_reading_lists_run_a_constant_number_of_queries(
    auth_client, user, other_user, django_assert_num_queries, url, make, queries
):
    auth_client.get(url)  # the token's first use reads it; then it is cached (no query)
    make(other_user, 3)  # someone else's rows change nothing
    make(user, 2)
    with django_assert_num_queries(queries):
        assert len(auth_client.get(url).json()["results"]) == 2

    make(user, 13)
    with django_assert_num_queries(queries):
        assert len(auth_client.get(url).json()["results"]) == 15
