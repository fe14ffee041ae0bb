"""Content embeddings with the real packaged model (all-MiniLM-L6-v2, loaded once per run),
real PostgreSQL, Redis and broker."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import numpy as np
import pytest
from django.core.management import call_command
from django.utils import timezone

from features_app import embedding_jobs, embeddings, tasks
from features_app import public as features
from features_app.models import ItemEmbedding, ProviderEmbedding, UserEmbedding
from inbo import keys
from inbo import redis as inbo_redis
from inbo.celery import app as celery_app
from tests.factories import ItemFactory, ProviderFactory, UserFactory
from tests.features.utils import event

pytestmark = pytest.mark.django_db

FINANCE = [
    ("Central banks raise interest rates again", "Inflation stays high, so rates go up."),
    ("Why the Federal Reserve fights inflation", "Monetary policy, bond yields and prices."),
    ("Mortgage rates climb as the ECB tightens", "Borrowing costs rise across Europe."),
    ("Stock markets fall on rate fears", "Investors sell shares as central banks hike."),
]
COOKING = [
    ("A sourdough bread recipe with a crisp crust", "Flour, water, salt and a starter."),
    ("Five weeknight pasta dinners", "Quick recipes with tomatoes, garlic and basil."),
    ("How to roast vegetables in the oven", "Carrots, potatoes and onions, caramelised."),
    ("Baking chocolate chip cookies", "Butter, sugar and a pinch of sea salt."),
]
# Title and summary only: the factory's filler body would make every item alike.
NO_BODY = {"body": "", "url": "https://example.com/issue"}
HOUR = timedelta(hours=1)


@pytest.fixture(scope="session")
def model():
    """The packaged model, loaded once for the whole run."""
    return embeddings.model()


@pytest.fixture
def catalog(model):
    """Eight recent items in two topics from two providers, embedded."""
    now = timezone.now()
    money, kitchen = ProviderFactory(), ProviderFactory()
    items = {
        topic: [
            ItemFactory(provider=p, title=t, summary=s, published_at=now - h * HOUR, **NO_BODY)
            for h, (t, s) in enumerate(texts, start=1)
        ]
        for topic, p, texts in (("finance", money, FINANCE), ("cooking", kitchen, COOKING))
    }
    features.embed_items([i.id for group in items.values() for i in group])
    return items


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b))


def test_vectors_are_unit_length_384d_and_stored_with_the_model_version(catalog):
    item = catalog["finance"][0]
    row = ItemEmbedding.objects.get(item=item)
    assert row.model_version == features.EMBEDDING_MODEL_VERSION == embeddings.MODEL_VERSION
    vector = features.item_embeddings([item.id])[item.id]
    assert vector.dtype == np.float32 and vector.shape == (384,)
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)
    assert len(bytes(row.vector)) == 384 * 4


def test_close_texts_are_closer_than_unrelated_ones(model):
    bank, fed, bread = features.embed_texts(
        [
            "How central banks fight inflation with interest rates",
            "The Federal Reserve raised rates to curb rising prices",
            "A recipe for sourdough bread with a crispy crust",
        ]
    )
    assert _cos(bank, fed) > _cos(bank, bread) + 0.2


def test_an_unchanged_text_is_not_recomputed_a_changed_one_is(catalog):
    item = catalog["cooking"][0]
    before = ItemEmbedding.objects.get(item=item)

    again = features.embed_items([item.id])
    assert (again.embedded, again.unchanged) == (0, 1)
    assert ItemEmbedding.objects.get(item=item).updated_at == before.updated_at

    item.summary = "Rye, spelt and a long cold proof."
    item.save()
    edited = features.embed_items([item.id])
    assert edited.item_ids == (item.id,)
    assert bytes(ItemEmbedding.objects.get(item=item).vector) != bytes(before.vector)


def test_a_vector_of_an_older_model_version_is_recomputed_and_never_served(catalog):
    item = catalog["cooking"][1]
    ItemEmbedding.objects.filter(item=item).update(model_version="older@0")
    assert features.item_embeddings([item.id]) == {}
    assert features.embed_items([item.id]).embedded == 1
    assert item.id in features.item_embeddings([item.id])


def test_an_unpublished_item_loses_its_vector(catalog):
    item = catalog["cooking"][2]
    item.status = "draft"
    item.save()
    assert features.embed_items([item.id]).removed == 1
    assert not ItemEmbedding.objects.filter(item=item).exists()


def test_providers_get_the_mean_of_their_recent_items(catalog):
    money = catalog["finance"][0].provider
    kitchen = catalog["cooking"][0].provider
    vectors = features.provider_embeddings([money.id, kitchen.id])
    assert ProviderEmbedding.objects.get(provider=money).item_count == len(FINANCE)
    assert np.linalg.norm(vectors[money.id]) == pytest.approx(1.0, abs=1e-5)
    rates = features.item_embeddings([catalog["finance"][0].id])[catalog["finance"][0].id]
    assert _cos(rates, vectors[money.id]) > _cos(rates, vectors[kitchen.id])


def _queued(queue: str) -> list[tuple[str, list]]:
    """(task name, args) of the messages waiting in a broker queue."""
    client = celery_app.connection_for_write().default_channel.client
    messages = []
    for raw in client.lrange(queue, 0, -1):
        message = json.loads(raw)
        args = json.loads(base64.b64decode(message["body"]))[0]
        messages.append((message["headers"]["task"], args))
    return messages


def test_a_catalog_change_queues_the_embedding_task_after_commit(
    model, django_capture_on_commit_callbacks
):
    client = celery_app.connection_for_write().default_channel.client
    client.delete("features")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        item = ItemFactory(title="Central banks and inflation", summary="Rates rise.", **NO_BODY)
    assert _queued("features") == []  # nothing before the commit, nothing inline
    assert not ItemEmbedding.objects.filter(item=item).exists()
    for callback in callbacks:
        callback()

    [(_, [ids])] = [m for m in _queued("features") if m[0] == embedding_jobs.EMBED_TASK]
    assert ids == [item.id]
    client.delete("features")

    # What the worker runs for that message.
    assert tasks.embed_items(ids) == 1
    assert ItemEmbedding.objects.get(item=item).model_version == embeddings.MODEL_VERSION


def test_the_task_writes_item_neighbours(catalog):
    item = ItemFactory(title="Bond yields jump after the rate", summary="Inflation.", **NO_BODY)
    assert tasks.embed_items([item.id]) == 1
    neighbours = inbo_redis.state().zrevrange(
        keys.item_neighbours("similar", item.id), 0, -1, withscores=True
    )
    assert str(item.id) not in dict(neighbours)
    finance = {str(i.id) for i in catalog["finance"]}
    assert {m for m, _ in neighbours[:3]} <= finance
    assert inbo_redis.state().ttl(keys.item_neighbours("similar", item.id)) > 0


def test_a_dismiss_moves_the_user_away_from_that_item(catalog):
    user, now = UserFactory(), timezone.now()
    bank, bread, pasta = catalog["finance"][0], catalog["cooking"][0], catalog["cooking"][1]
    features.events_record([event(user, bank, "click", now), event(user, bread, "click", now)])
    before = embedding_jobs.user_tastes([user.id], now=now)[user.id].vector

    features.events_record([event(user, pasta, "dismiss", now)])
    after = embedding_jobs.user_tastes([user.id], now=now)[user.id].vector

    vectors = features.item_embeddings([pasta.id, bank.id])
    assert _cos(after, vectors[pasta.id]) < _cos(before, vectors[pasta.id])
    assert _cos(after, vectors[bank.id]) > _cos(before, vectors[bank.id])


def test_old_engagement_weighs_less_than_recent(catalog):
    user, now = UserFactory(), timezone.now()
    bank, bread = catalog["finance"][0], catalog["cooking"][0]
    features.events_record(
        [event(user, bank, "click", now - timedelta(days=40)), event(user, bread, "click", now)]
    )
    vector = embedding_jobs.user_tastes([user.id], now=now)[user.id].vector
    vectors = features.item_embeddings([bank.id, bread.id])
    assert _cos(vector, vectors[bread.id]) > _cos(vector, vectors[bank.id])


def test_the_similar_job_writes_candidates_without_engaged_items_and_advances(catalog):
    user, other, now = UserFactory(), UserFactory(), timezone.now()
    clicked, dismissed = catalog["finance"][0], catalog["cooking"][3]
    stored = features.events_record(
        [
            event(user, clicked, "click", now),
            event(user, dismissed, "dismiss", now),
            event(other, catalog["cooking"][0], "impression", now),  # moves nothing
        ]
    )
    assert stored.created == 3

    result = features.refresh_user_embeddings(now=now)

    assert (result.users, result.candidates, result.skipped) == (1, 1, "")
    state = inbo_redis.state()
    key = keys.learned_candidates("similar", user.id)
    ranked = [int(m) for m in state.zrevrange(key, 0, -1)]
    assert clicked.id not in ranked and dismissed.id not in ranked
    assert set(ranked[:3]) == {i.id for i in catalog["finance"][1:]}
    assert 0 < state.ttl(key) <= keys.LEARNED_CANDIDATES_TTL_SECONDS
    assert not state.exists(keys.learned_candidates("similar", other.id))
    assert UserEmbedding.objects.filter(user=user).exists()
    watermark = int(state.get(keys.learned_watermark("user_embeddings")))
    assert watermark == features_max_event_id()
    assert state.exists(keys.item_neighbours("similar", clicked.id))

    # Nothing new: nobody is recomputed; a new event brings its user back.
    assert features.refresh_user_embeddings(now=now).users == 0
    features.events_record([event(other, catalog["cooking"][0], "save", now)])
    again = features.refresh_user_embeddings(now=now)
    assert (again.users, again.candidates) == (1, 1)
    assert int(state.get(keys.learned_watermark("user_embeddings"))) > watermark


def test_a_user_who_only_rejected_gets_no_vector_and_loses_old_candidates(catalog):
    user, now = UserFactory(), timezone.now()
    key = keys.learned_candidates("similar", user.id)
    inbo_redis.state().zadd(key, {"1": 0.5})
    features.events_record([event(user, catalog["cooking"][0], "hide", now)])
    result = features.refresh_user_embeddings(now=now)
    assert (result.users, result.candidates) == (1, 0)
    assert not inbo_redis.state().exists(key)
    assert features.user_embeddings([user.id]) == {}


def features_max_event_id() -> int:
    from features_app.models import UserEvent

    return UserEvent.objects.order_by("-id").values_list("id", flat=True).first()


def test_the_job_sweeps_recent_items_a_lost_message_left_unembedded(catalog):
    item = ItemFactory(
        title="Pancakes for breakfast",
        summary="Eggs, milk and flour.",
        published_at=timezone.now() - HOUR,  # recent, whatever the factory's sequence says
        **NO_BODY,
    )
    ItemEmbedding.objects.filter(item=item).delete()  # the message never arrived
    result = features.refresh_user_embeddings()
    assert result.items_embedded == 1
    assert item.id in features.item_embeddings([item.id])


def test_the_job_is_one_run_at_a_time(catalog):
    inbo_redis.state().set(keys.learned_lock("user_embeddings"), "someone", ex=60)
    assert features.refresh_user_embeddings().skipped == "busy"


def test_redis_down_neither_raises_nor_advances(catalog, redis_state_server):
    user, now = UserFactory(), timezone.now()
    features.events_record([event(user, catalog["finance"][0], "click", now)])
    redis_state_server.stop()

    assert features.refresh_user_embeddings(now=now).skipped == "redis"
    item = ItemFactory(title="Gilts sell off", summary="Yields rise.", **NO_BODY)
    assert tasks.embed_items([item.id]) == 1  # stored; neighbours skipped

    redis_state_server.start()
    inbo_redis.reset_clients()
    assert features.refresh_user_embeddings(now=now).users == 1


def test_embed_items_command_embeds_the_missing_and_reports(catalog, capsys):
    item = ItemFactory(title="Tax season tips", summary="Deductions and deadlines.", **NO_BODY)
    call_command("embed_items", "--batch-size", "4", "--threads", "1")
    out = capsys.readouterr().out
    assert "embedded 1, unchanged 0, removed 0 of 1 items" in out and "items/s" in out
    assert item.id in features.item_embeddings([item.id])


def test_memory_report_command(catalog, capsys):
    call_command("embeddings_memory_report", "--items", "1000")
    out = capsys.readouterr().out
    assert "float32 1.5 MB (1,536 B/item)" in out
    assert "ItemEmbedding rows" in out


def test_the_admin_lists_embeddings(catalog, admin_client):
    for model in ("itemembedding", "providerembedding", "userembedding"):
        response = admin_client.get(f"/admin/features_app/{model}/")
        assert response.status_code == 200, model
    item_id = catalog["finance"][0].id
    page = admin_client.get(f"/admin/features_app/itemembedding/{item_id}/change/")
    assert page.status_code == 200
