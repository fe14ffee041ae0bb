"""Feed quality: cold start keeps its promise, sections mean what they say (issue 13)."""

from __future__ import annotations

import itertools

import pytest
from django.test import override_settings
from django.utils import timezone

from experience_app.datasets import demo as plan
from experience_app.ranking import Scored
from experience_app.services.demo import PRESETS, seed_demo
from experience_app.services.feed import build
from reading_app.contracts import ItemFacets
from reading_app.models import Category, Item
from tests.experience.utils import (
    HOME,
    INTERESTS,
    ids,
    ingest,
    interaction,
    make_item,
    post_interactions,
    sections,
)
from tests.factories import CategoryFactory, ProviderFactory, UserFactory

pytestmark = pytest.mark.django_db

PICKED_REASON = "Popular in topics you picked."


@pytest.fixture
def demo_world(db):
    seed_demo(**PRESETS["small"])
    return plan


def _topic_items(slugs: list[str]) -> set[int]:
    """Items tagged with the topics or any of their subcategories."""
    topics = Category.objects.filter(slug__in=slugs)
    tagged = Item.objects.filter(categories__in=Category.objects.filter(parent__in=topics))
    return set(tagged.values_list("id", flat=True)) | set(
        Item.objects.filter(categories__in=topics).values_list("id", flat=True)
    )


def _three_topics() -> list[str]:
    """Three top-level topics of the demo world (its first three by slug)."""
    return list(Category.objects.filter(parent=None).values_list("slug", flat=True)[:3])


def _picked_in_first_page(client, wanted: set[int]) -> tuple[int, dict]:
    for_you = sections(client.get(HOME).json())["for_you"]
    return sum(i in wanted for i in ids(for_you)[:10]), for_you


def test_a_fresh_user_who_picks_three_topics_sees_them_in_for_you(auth_client, demo_world):
    slugs = _three_topics()
    assert auth_client.put(INTERESTS, {"categories": slugs}, format="json").status_code == 200
    wanted = _topic_items(slugs)

    in_picked, for_you = _picked_in_first_page(auth_client, wanted)

    assert in_picked >= 8, (in_picked, slugs)
    shown = ids(for_you)
    if for_you["reason"] == PICKED_REASON:
        assert set(shown) <= wanted
    else:
        assert "topics you picked" in for_you["reason"]


def test_a_subtopic_only_item_counts_as_in_its_picked_topic(auth_client):
    tech = CategoryFactory(name="Tech", slug="tech")
    ai = CategoryFactory(name="AI", slug="tech-ai", parent=tech)
    other = CategoryFactory(name="Sport", slug="sport")
    nested = [make_item(hours_ago=20 + i, categories=[ai]) for i in range(3)]
    [make_item(hours_ago=1 + i, categories=[other]) for i in range(12)]
    crowd = UserFactory()
    for item in Item.objects.filter(categories=other)[:5]:
        ingest(crowd, item, "click", hours_ago=1)
    auth_client.put(INTERESTS, {"categories": ["tech"]}, format="json")

    body = auth_client.get(HOME).json()

    for_you = sections(body)["for_you"]
    assert ids(for_you)[:3] == [i.id for i in nested]
    assert all(e["explanation"]["affinity"] > 0 for e in for_you["items"][:3])
    assert for_you["reason"] == "From topics you picked, and popular on INBO."


def test_the_share_of_picked_topics_falls_as_feedback_accumulates(auth_client, demo_world):
    slugs = _three_topics()
    auth_client.put(INTERESTS, {"categories": slugs}, format="json")
    wanted = _topic_items(slugs)
    elsewhere = list(
        Item.objects.filter(status=Item.Status.PUBLISHED)
        .exclude(id__in=wanted)
        .order_by("-published_at")
        .values_list("id", flat=True)[:40]
    )
    counts = [_picked_in_first_page(auth_client, wanted)[0]]
    for batch in (elsewhere[:10], elsewhere[10:40]):
        response = post_interactions(auth_client, *(interaction(i, "click") for i in batch))
        assert response.status_code == 200
        counts.append(_picked_in_first_page(auth_client, wanted)[0])

    assert counts[0] >= 8
    assert counts == sorted(counts, reverse=True), counts
    assert counts[-1] < counts[0], counts


def test_cold_start_share_decays_smoothly():
    shares = [build.cold_start_share({"click": n, "impression": 500}) for n in range(0, 60, 5)]
    assert shares[0] == 1.0
    assert build.cold_start_share({"click": 10}) == 0.5
    assert all(a > b for a, b in itertools.pairwise(shares))
    assert all(a - b < 0.35 for a, b in itertools.pairwise(shares))


@pytest.mark.parametrize("share", [1.0, 0.5, 0.2])
def test_picked_first_keeps_a_share_in_every_prefix_and_each_part_in_order(share):
    ranked = [Scored(i, 100.0 - i) for i in range(40)]
    picked = {i for i in range(40) if i % 5 == 4}  # 8 picked items, ranked low
    out = build.picked_first(ranked, picked, share=share)

    assert sorted(s.item_id for s in out) == list(range(40))
    for n in range(1, 11):
        assert sum(s.item_id in picked for s in out[:n]) >= min(8, int(share * n + 0.5))
    kept = [s.item_id for s in out]
    assert [i for i in kept if i in picked] == sorted(picked)
    assert [i for i in kept if i not in picked] == sorted(set(range(40)) - picked)


def _facets(item_id, provider, *categories):
    return ItemFacets(item_id, provider, tuple(categories), timezone.now(), True)


def test_because_you_read_orders_by_closeness_then_score_and_drops_near_copies():
    facets = {
        1: _facets(1, 10, 100, 101),  # the anchor
        2: _facets(2, 20, 100, 101),  # near-copy of the dismissed item 9
        3: _facets(3, 30, 100),  # one category of two in common
        4: _facets(4, 31, 100, 101),  # both in common, lower score
        5: _facets(5, 32, 100, 101),  # both in common
        6: _facets(6, 33, 200),  # co-read, nothing in common
        9: _facets(9, 20, 101),  # dismissed
    }
    by_id = {
        2: Scored(2, 9.0),
        3: Scored(3, 8.0),
        4: Scored(4, 1.0),
        5: Scored(5, 2.0),
        6: Scored(6, 0.5),
    }

    order = build.related_order(1, [6], [2, 3, 4, 5, 6], facets, by_id, near_copies_of=[facets[9]])

    assert [s.item_id for s in order] == [6, 5, 4, 3]


@override_settings(EXPERIENCE_SECTION_PAGE_SIZE=3)
def test_because_you_read_never_leads_with_a_near_copy_of_a_dismissed_item(auth_client):
    tech, food = CategoryFactory(name="Tech"), CategoryFactory(name="Food")
    mine, copies, others = ProviderFactory(), ProviderFactory(), ProviderFactory()
    anchor = make_item(hours_ago=30, categories=[tech], provider=mine)
    dismissed = make_item(hours_ago=20, categories=[tech], provider=copies)
    near_copy = make_item(hours_ago=1, categories=[tech], provider=copies)  # the newest
    related = [make_item(hours_ago=5 + i, categories=[tech], provider=others) for i in range(4)]
    crowd = UserFactory()
    for n in range(8):  # popular food fills trending and the first page of for_you
        item = make_item(hours_ago=2 + n, categories=[food], provider=others)
        for _ in range(3):
            ingest(crowd, item, "click", hours_ago=1)
    post_interactions(auth_client, interaction(anchor, "click"))
    post_interactions(auth_client, interaction(dismissed, "dismiss"))

    body = auth_client.get(HOME).json()

    because = sections(body)["because_you_read"]
    assert anchor.title in because["reason"]
    shown = ids(because)
    assert shown and near_copy.id not in shown
    assert set(shown) <= {i.id for i in related}
    scores = [e["score"] for e in because["items"]]
    assert scores == sorted(scores, reverse=True)  # same categories: by rank score


@override_settings(EXPERIENCE_SECTION_PAGE_SIZE=3, EXPERIENCE_NEAR_COPY_SIMILARITY=0.85)
def test_because_you_read_drops_what_says_what_a_dismissed_item_said(auth_client):
    """Near-copies by meaning: another newsletter's item whose text embedding is close to a
    dismissed item's leaves ``because_you_read``; a related item on another subject stays."""
    import numpy as np

    from features_app.embeddings import MODEL_VERSION, to_bytes
    from features_app.models import ItemEmbedding

    tech, food = CategoryFactory(name="Tech"), CategoryFactory(name="Food")
    crowd = UserFactory()
    for n in range(8):  # popular food fills trending and the first page of for_you
        item = make_item(hours_ago=2 + n, categories=[food])
        for _ in range(3):
            ingest(crowd, item, "click", hours_ago=1)
    anchor = make_item(hours_ago=30, categories=[tech])
    dismissed = make_item(hours_ago=20, categories=[tech])
    same_story = make_item(hours_ago=1, categories=[tech])  # another provider, same text
    other_story = make_item(hours_ago=2, categories=[tech])
    rng = np.random.default_rng(3)
    base = rng.normal(size=384)
    unrelated = rng.normal(size=384)
    for item, vector in (
        (dismissed, base),
        (same_story, base + 0.2 * rng.normal(size=384)),
        (other_story, unrelated),
    ):
        ItemEmbedding.objects.create(
            item_id=item.id,
            model_version=MODEL_VERSION,
            vector=to_bytes((vector / np.linalg.norm(vector)).astype(np.float32)),
            text_hash="x",
        )
    assert dismissed.provider_id != same_story.provider_id
    post_interactions(auth_client, interaction(anchor, "click"))
    before = ids(sections(auth_client.get(HOME).json())["because_you_read"])
    assert same_story.id in before and other_story.id in before
    post_interactions(auth_client, interaction(dismissed, "dismiss"))

    shown = ids(sections(auth_client.get(HOME).json())["because_you_read"])

    assert other_story.id in shown
    assert same_story.id not in shown


def test_without_similar_keeps_items_without_vectors():
    ranked = [Scored(1, 1.0), Scored(2, 0.5)]
    assert build.without_similar(ranked, [99]) == ranked
