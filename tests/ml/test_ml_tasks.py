"""The learned jobs' Celery tasks as the worker runs them (real implicit, sentence-transformers,
PostgreSQL and Redis): ml_app's ALS training and fold-in, features_app's user-embedding
refresh, and the options of ``manage.py embeddings_memory_report``."""

from __future__ import annotations

import os
import re
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from experience_app import public as experience
from experience_app.models import ModelVersion
from features_app import embeddings
from features_app import public as features
from features_app import tasks as feature_tasks
from features_app.models import ItemEmbedding
from inbo import keys
from inbo import redis as inbo_redis
from ml_app import tasks
from ml_app.services import als_candidates
from tests.experience.utils import make_item
from tests.factories import CategoryFactory, ItemFactory, UserFactory
from tests.ml.test_als_serving import SMALL, event

pytestmark = pytest.mark.django_db


@pytest.fixture
def small_als():
    with SMALL:
        als_candidates._loaded.update(id=None, artifact=None)
        yield
        als_candidates._loaded.update(id=None, artifact=None)


@pytest.fixture
def world(small_als):
    """Two taste groups of ten items; each user clicked seven of their group's items five
    days ago and read one more half a day ago (after the validation cut)."""
    now = timezone.now()
    groups, events = {}, []
    for name in ("A", "B"):
        category = CategoryFactory(name=name)
        items = [make_item(hours_ago=24 * 6 + i, categories=[category]) for i in range(10)]
        users = [UserFactory() for _ in range(8)]
        for u, user in enumerate(users):
            held = [(u + k) % 10 for k in range(3)]
            events += [
                event(user, item, "click", now - timedelta(days=5, hours=i))
                for i, item in enumerate(items)
                if i not in held
            ]
            events.append(event(user, items[held[0]], "read", now - timedelta(hours=12)))
        groups[name] = {"items": items, "users": users}
    features.events_record(events)
    return groups


# --- ml_app.tasks -------------------------------------------------------------------------


def test_train_als_returns_the_id_of_the_version_it_trained_and_promoted(world):
    version_id = tasks.train_als()
    version = ModelVersion.objects.get(id=version_id)
    assert version.kind == "als" and version.version == 1
    assert experience.model_active("als").id == version_id  # the gate passed: promoted
    user = world["A"]["users"][0]
    assert inbo_redis.state().exists(keys.learned_candidates("als", user.id))
    # The lock is released: the next night trains again (gated against v1, kept as v2).
    assert not inbo_redis.state().exists(keys.learned_lock("als_train"))
    again = ModelVersion.objects.get(id=tasks.train_als())
    assert again.version == 2 and again.gate["baseline_version"] == version_id


def test_train_als_returns_none_while_another_training_holds_the_lock(world):
    lock = keys.learned_lock("als_train")
    inbo_redis.state().set(lock, "another worker", ex=60)
    assert tasks.train_als() is None
    assert not ModelVersion.objects.exists()
    assert inbo_redis.state().get(lock) == "another worker"  # not taken from its holder


def test_train_als_returns_none_when_there_is_nothing_to_train(small_als):
    assert tasks.train_als() is None
    assert not ModelVersion.objects.exists()


def test_als_fold_in_returns_the_users_it_refreshed(world):
    assert tasks.als_fold_in() == 0  # no active version yet
    tasks.train_als()
    assert tasks.als_fold_in() == 0  # nothing new since the training
    now = timezone.now()
    first, second = world["A"]["users"][0], world["B"]["users"][0]
    features.events_record(
        [
            event(first, world["B"]["items"][0], "save", now),
            event(second, world["A"]["items"][0], "click", now),
            event(second, world["A"]["items"][1], "click", now),
        ]
    )
    assert tasks.als_fold_in() == 2
    assert tasks.als_fold_in() == 0  # the watermark moved past them
    inbo_redis.state().set(keys.learned_lock("als_fold_in"), "another worker", ex=60)
    features.events_record([event(first, world["B"]["items"][1], "save", now)])
    assert tasks.als_fold_in() == 0  # busy: skipped, the event waits for the next run


# --- features_app.tasks: the user-embedding refresh ---------------------------------------

FINANCE = [
    ("Central banks raise interest rates again", "Inflation stays high, so rates go up."),
    ("Mortgage rates climb as the ECB tightens", "Borrowing costs rise across Europe."),
]
COOKING = [
    ("A sourdough bread recipe with a crisp crust", "Flour, water, salt and a starter."),
    ("Five weeknight pasta dinners", "Quick recipes with tomatoes, garlic and basil."),
]
NO_BODY = {"body": "", "url": "https://example.com/issue"}


@pytest.fixture
def embedded():
    now = timezone.now()
    items = [
        ItemFactory(title=t, summary=s, published_at=now - timedelta(hours=h), **NO_BODY)
        for h, (t, s) in enumerate(FINANCE + COOKING, start=1)
    ]
    assert feature_tasks.embed_items([i.id for i in items]) == len(items)
    return items


def test_refresh_user_embeddings_returns_the_users_it_recomputed(embedded):
    reader, other = UserFactory(), UserFactory()
    now = timezone.now()
    features.events_record(
        [
            event(reader, embedded[0], "click", now),
            event(other, embedded[2], "save", now),
            event(other, embedded[3], "impression", now),
        ]
    )
    assert feature_tasks.refresh_user_embeddings() == 2
    similar = inbo_redis.state().zrevrange(keys.learned_candidates("similar", reader.id), 0, 0)
    assert similar == [str(embedded[1].id)]  # the other finance item first
    assert feature_tasks.refresh_user_embeddings() == 0  # nothing new


def test_refresh_user_embeddings_returns_zero_while_another_run_holds_the_lock(embedded):
    user = UserFactory()
    features.events_record([event(user, embedded[0], "click", timezone.now())])
    inbo_redis.state().set(keys.learned_lock("user_embeddings"), "another worker", ex=60)
    assert feature_tasks.refresh_user_embeddings() == 0
    assert not inbo_redis.state().exists(keys.learned_candidates("similar", user.id))
    inbo_redis.state().delete(keys.learned_lock("user_embeddings"))
    assert feature_tasks.refresh_user_embeddings() == 1  # the event waited for this run


# --- embeddings_memory_report options -------------------------------------------------------


@pytest.mark.parametrize("args", [("--items", "0"), ("--batch-size", "0"), ("--throughput", "-1")])
def test_memory_report_refuses_non_positive_sizes(args):
    with pytest.raises(CommandError, match="must be positive"):
        call_command("embeddings_memory_report", *args)


def test_memory_report_without_stored_vectors_says_how_to_get_them(capsys):
    assert not ItemEmbedding.objects.exists()
    call_command("embeddings_memory_report", "--items", "100")
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (f"Embeddings: {embeddings.MODEL_VERSION}, {embeddings.DIMENSIONS} dimensions")
    assert out[1] == (
        "  in process, 100 items: float32 0.2 MB (1,536 B/item), float16 0.1 MB (768 B/item)"
    )
    assert out[2] == "  PostgreSQL: no ItemEmbedding rows yet (run manage.py embed_items first)"
    assert len(out) == 3  # no --throughput: nothing encoded


def test_memory_report_throughput_encodes_with_one_thread_and_every_core(embedded, capsys):
    import torch

    threads_before = torch.get_num_threads()
    call_command(
        "embeddings_memory_report", "--items", "100", "--throughput", "4", "--batch-size", "2"
    )
    out = capsys.readouterr().out
    assert "PostgreSQL, 4 ItemEmbedding rows: row " in out
    lines = re.findall(
        r"encoding 4 title\+summary texts, batch 2, (\d+) thread\(s\): [\d,.]+ items/s, "
        r"[\d,.]+ CPU ms/item",
        out,
    )
    assert lines == list(dict.fromkeys(["1", str(os.cpu_count() or 1)]))
    assert torch.get_num_threads() == threads_before  # restored after measuring
