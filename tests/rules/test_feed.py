"""The rules applied to the home feed, against the real PostgreSQL and Redis: blocklists,
boosts and their dates, sponsored slots (labels, pacing, per-user caps, the relevance
floor), diversity caps, MMR over stored embeddings, and the feed without Redis."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from experience_app.models import ServedFeed
from experience_app.services.feed import build_feed, invalidate, served_log
from features_app.embeddings import MODEL_VERSION, to_bytes
from features_app.models import ItemEmbedding
from inbo import keys
from inbo import redis as inbo_redis
from rules_app import pacing, services
from tests.experience.utils import HOME, all_ids, ingest, make_item, sections
from tests.factories import (
    CategoryFactory,
    ProviderFactory,
    ReadingProgressFactory,
    SubscriptionFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


def rule(staff, **fields):
    return services.rule_create({"name": fields.pop("name", "rule"), **fields}, user=staff)


def home(client, user):
    invalidate(user.id)  # every call builds again
    response = client.get(HOME)
    assert response.status_code == 200
    return response.json()


def for_you(body):
    return sections(body).get("for_you", {"items": []})["items"]


@pytest.fixture
def world(user):
    """A cold reader following one newsletter, with a read started, and a popular crowd."""
    tech, food = CategoryFactory(name="Tech"), CategoryFactory(name="Food")
    loud, quiet, followed = ProviderFactory(), ProviderFactory(), ProviderFactory()
    SubscriptionFactory(user=user, provider=followed)
    loud_items = [make_item(hours_ago=2 + i, categories=[tech], provider=loud) for i in range(8)]
    quiet_items = [make_item(hours_ago=3 + i, categories=[food], provider=quiet) for i in range(8)]
    fresh = [make_item(hours_ago=1 + i, provider=followed) for i in range(3)]
    started = make_item(hours_ago=30, provider=loud)
    ReadingProgressFactory(user=user, item=started, progress=0.4)
    crowd = UserFactory()
    for n, item in enumerate(loud_items[:5]):
        for _ in range(5 - n):
            ingest(crowd, item, "click", hours_ago=1)
    return {
        "tech": tech,
        "food": food,
        "loud": loud,
        "quiet": quiet,
        "followed": followed,
        "loud_items": loud_items,
        "quiet_items": quiet_items,
        "fresh": fresh,
        "started": started,
    }


# --- blocklists -----------------------------------------------------------------------------


def test_a_blocked_provider_item_and_keyword_leave_every_section(auth_client, user, staff, world):
    before = home(auth_client, user)
    assert world["started"].id in all_ids(before)  # continue_reading holds it
    war = make_item(hours_ago=1, title="The War on Spam", provider=world["quiet"])
    warsaw = make_item(hours_ago=1, title="Warsaw by night", provider=world["quiet"])
    item = world["quiet_items"][0]
    rule(staff, kind="block", target="provider", target_id=world["loud"].id)
    rule(staff, kind="block", target="item", target_id=item.id)
    rule(staff, kind="block", target="keyword", keyword="war")

    body = home(auth_client, user)
    served = all_ids(body)
    loud = {i.id for i in world["loud_items"]} | {world["started"].id}
    assert not loud & set(served)
    assert item.id not in served and war.id not in served
    assert warsaw.id in served
    firsts = [s["items"][0]["explanation"] for s in body["sections"]]
    assert any(e.get("rule_removed", 0) >= 1 for e in firsts)


def test_keywords_match_whole_words_whatever_the_case():
    from rules_app.snapshot import keyword_pattern

    pattern = keyword_pattern(["war", "crypto giveaway"])
    assert pattern is not None
    for title in ("WAR news", "After the war.", "A crypto  Giveaway!", "war-time"):
        assert pattern.search(title), title
    for title in ("Warsaw", "Software", "Award season", "cryptogiveaway", "crypto gift"):
        assert not pattern.search(title), title


def test_keyword_verdicts_of_the_candidate_window_are_read_once_per_load(staff, world):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from rules_app import engine, memo, public, snapshot

    war = make_item(hours_ago=1, title="War at sea", provider=world["quiet"])
    rule(staff, kind="block", target="keyword", keyword="war")
    now = timezone.now()
    rules_now = snapshot.current(now)
    ids = [war.id, *(i.id for i in world["quiet_items"])]
    assert engine.blocked_ids(rules_now, ids, {}, now) == {war.id}
    public.forget_memos()  # a process that has not seen these candidates: no title read
    assert not memo.titles.values
    with CaptureQueriesContext(connection) as queries:
        assert engine.blocked_ids(rules_now, ids, {}, now) == {war.id}
    assert len(queries) == 0
    # An item published after the window was read is checked on its own title.
    later = make_item(hours_ago=0.5, title="Another war story", provider=world["quiet"])
    calm = make_item(hours_ago=0.5, title="Peace talks", provider=world["quiet"])
    assert engine.blocked_ids(rules_now, [*ids, later.id, calm.id], {}, now) == {war.id, later.id}


def test_an_item_published_after_the_rules_loaded_is_blocked_by_keyword(
    auth_client, user, staff, world
):
    rule(staff, kind="block", target="keyword", keyword="war")
    first = make_item(hours_ago=1, title="War at sea", provider=world["quiet"])
    assert first.id not in all_ids(home(auth_client, user))
    later = make_item(hours_ago=0.5, title="Another war story", provider=world["quiet"])
    calm = make_item(hours_ago=0.5, title="Peace talks", provider=world["quiet"])
    served = all_ids(home(auth_client, user))
    assert later.id not in served and first.id not in served
    assert calm.id in served


# --- boosts -----------------------------------------------------------------------------------


def test_a_boost_lifts_an_item_only_between_its_dates(user, staff, world):
    now = timezone.now()
    target = world["quiet_items"][-1]
    rule(
        staff,
        kind="boost",
        target="item",
        target_id=target.id,
        mode="add",
        value=5.0,
        starts_at=now + timedelta(hours=1),
        ends_at=now + timedelta(hours=3),
    )

    def top(at):
        feed = build_feed(user.id, now=at)
        entries = feed.section("for_you").entries
        return entries[0].item_id, {e.item_id: e for s in feed.sections for e in s.entries}

    first, entries = top(now)
    assert first != target.id
    assert "rule_boost" not in entries[target.id].signals
    first, entries = top(now + timedelta(hours=2))
    assert first == target.id
    assert entries[target.id].signals["rule_boost"] == 5.0
    first, _ = top(now + timedelta(hours=4))
    assert first != target.id


def test_a_multiplicative_category_boost_reorders_before_sections_are_cut(user, staff, world):
    now = timezone.now()
    rule(
        staff,
        kind="boost",
        target="category",
        target_id=world["food"].id,
        mode="multiply",
        value=50.0,
    )
    entries = build_feed(user.id, now=now).section("for_you").entries
    food = {i.id for i in world["quiet_items"]}
    assert entries[0].item_id in food
    assert all(e.signals.get("rule_boost", 0) > 0 for e in entries if e.item_id in food)


# --- sponsored --------------------------------------------------------------------------------


def campaign(staff, item, **fields):
    now = timezone.now()
    defaults = {
        "kind": "sponsored",
        "starts_at": now - timedelta(hours=1),
        "ends_at": now + timedelta(hours=23),
        "item_ids": [item.id],
        "budget": 1000,
        "positions": [2],
        "user_cap_per_day": 2,
    }
    return rule(staff, **{**defaults, **fields})


def test_a_campaign_item_takes_its_slot_labelled_sponsored(auth_client, user, staff, world):
    sponsored = make_item(hours_ago=200, provider=world["quiet"])  # not otherwise a candidate
    c = campaign(staff, sponsored)
    body = home(auth_client, user)
    entries = for_you(body)
    assert entries[2]["item"]["id"] == sponsored.id
    assert entries[2]["sponsored"] is True
    assert entries[2]["explanation"]["sponsored"] == 1.0
    assert entries[2]["explanation"]["campaign"] == c.id
    assert all(
        not e["sponsored"] for s in body["sections"] for e in s["items"] if e is not entries[2]
    )
    assert all_ids(body).count(sponsored.id) == 1
    assert pacing.delivered([c.id]) == {c.id: 1}
    # The served log keeps the label with the item's signals.
    served_log.flush()
    record = ServedFeed.objects.filter(user_id=user.id).latest("served_at")
    logged = next(i for i in record.items if i["item_id"] == sponsored.id)
    assert logged["signals"]["sponsored"] == 1.0 and logged["position"] == 2


def test_a_user_sees_a_campaign_at_most_its_cap_a_day(auth_client, user, staff, world):
    sponsored = make_item(hours_ago=200, provider=world["quiet"])
    c = campaign(staff, sponsored, user_cap_per_day=2)
    bodies = [home(auth_client, user) for _ in range(3)]
    assert [any(e["sponsored"] for e in for_you(b)) for b in bodies] == [True, True, False]
    assert sponsored.id not in all_ids(bodies[2])
    assert pacing.delivered([c.id]) == {c.id: 2}
    # Another reader is not capped by the first one's impressions.
    other = UserFactory()
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(other)
    assert any(e["sponsored"] for e in for_you(home(client, other)))


def test_the_relevance_floor_keeps_a_campaign_from_readers_it_does_not_suit(
    auth_client, user, staff, world
):
    sponsored = make_item(hours_ago=200, provider=world["quiet"])
    c = campaign(staff, sponsored, relevance_floor=100.0)
    body = home(auth_client, user)
    assert not any(e["sponsored"] for s in body["sections"] for e in s["items"])
    assert sponsored.id not in all_ids(body)  # never shown unlabelled either
    assert pacing.delivered([c.id]) == {c.id: 0}


def test_pacing_spreads_the_budget_over_the_campaign(user, staff, world):
    now = timezone.now()
    sponsored = make_item(hours_ago=200, provider=world["quiet"])
    c = campaign(
        staff,
        sponsored,
        starts_at=now - timedelta(days=1),
        ends_at=now + timedelta(days=9),  # 10% of its time has passed
        budget=100,
        user_cap_per_day=1000,
    )
    client = inbo_redis.state()

    def served(delivered):
        client.set(keys.rules_delivered(c.id), delivered)
        feed = build_feed(user.id, now=now)
        return any(e.signals.get("sponsored") for e in feed.section("for_you").entries)

    assert served(5)  # behind: 5 of an allowance of 10 (+1 slack)
    assert not served(11)  # ahead of its pace
    later = now + timedelta(days=5)  # 60%: 60 (+1)
    client.set(keys.rules_delivered(c.id), 40)
    assert any(
        e.signals.get("sponsored")
        for e in build_feed(user.id, now=later).section("for_you").entries
    )
    assert not served(100)  # the budget is spent


def test_allowance_grows_with_the_campaign_time():
    from rules_app.snapshot import Campaign, Window

    start = timezone.now()
    c = Campaign(1, Window(start, start + timedelta(days=10)), (1,), 1000, (0,), 1, None)
    assert pacing.allowance(c, start) == 10  # the slack: 1% of the budget
    assert pacing.allowance(c, start + timedelta(days=5)) == 510
    assert pacing.allowance(c, start + timedelta(days=10)) == 1000
    assert pacing.allowance(c, start + timedelta(days=20)) == 1000
    assert pacing.allowance(c, start - timedelta(days=1)) == 10


def test_without_redis_the_feed_answers_without_sponsored_items(
    auth_client, user, staff, world, redis_state_server
):
    sponsored = make_item(hours_ago=200, provider=world["quiet"])
    campaign(staff, sponsored)
    redis_state_server.stop()
    response = auth_client.get(HOME)
    assert response.status_code == 200
    body = response.json()
    assert body["degraded"] is True
    assert sponsored.id not in all_ids(body)
    assert not any(e["sponsored"] for s in body["sections"] for e in s["items"])


# --- diversity --------------------------------------------------------------------------------


def test_a_first_page_holds_at_most_n_items_of_a_provider(auth_client, user, staff, world):
    before = for_you(home(auth_client, user))
    loud = {i.id for i in world["loud_items"]}
    assert sum(e["item"]["id"] in loud for e in before[:10]) > 2
    for n in range(8):  # enough other newsletters to fill a page
        make_item(hours_ago=4 + n, provider=ProviderFactory())
    rule(staff, kind="diversity", max_per_provider=2)
    body = home(auth_client, user)
    for s in body["sections"]:
        if s["key"] in ("continue_reading", "fresh"):  # the user's own choices: uncapped
            continue
        # Over the cap only where too few other items were left, and then marked.
        held = [e for e in s["items"][:10] if "rule_cap_relaxed" not in e["explanation"]]
        providers = [e["item"]["provider"]["id"] for e in held]
        assert all(providers.count(p) <= 2 for p in providers), s["key"]
    page = for_you(body)[:10]
    providers = [e["item"]["provider"]["id"] for e in page]
    assert all(providers.count(p) <= 2 for p in providers)  # enough variety: strict
    assert not any("rule_cap_relaxed" in e["explanation"] for e in page)
    demoted = [
        e for s in body["sections"] for e in s["items"] if "rule_demoted" in e["explanation"]
    ]
    assert all(e["item"]["id"] in loud for e in demoted)
    relaxed = [
        e for e in sections(body)["trending"]["items"] if "rule_cap_relaxed" in e["explanation"]
    ]
    assert relaxed  # trending holds loud items only: it keeps them, marked
    assert all(e["item"]["id"] in loud for e in relaxed)


def test_a_first_page_holds_at_most_n_items_of_a_category(user, staff, world):
    rule(staff, kind="diversity", max_per_category=3)
    feed = build_feed(user.id, now=timezone.now())
    page = feed.section("for_you").entries[:10]
    tech = [e for e in page if e.item_id in {i.id for i in world["loud_items"]}]
    assert len(tech) <= 3


def _vector(seed: int, base: np.ndarray | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.normal(size=384).astype(np.float32)
    if base is not None:
        v = base + 0.01 * v
    return v / np.linalg.norm(v)


def test_mmr_spreads_near_copies_apart_when_embeddings_exist(user, staff, world):
    now = timezone.now()
    ranked = build_feed(user.id, now=now).section("for_you").entries
    top = [e.item_id for e in ranked[:3]]
    base = _vector(1)
    # The three best items say the same thing; every other item something else.
    for n, entry in enumerate(ranked):
        vector = _vector(100 + n, base) if entry.item_id in top else _vector(200 + n)
        ItemEmbedding.objects.create(
            item_id=entry.item_id,
            model_version=MODEL_VERSION,
            vector=to_bytes(vector),
            text_hash="x",
        )
    rule(staff, kind="diversity", mmr_lambda=0.3)
    reranked = build_feed(user.id, now=now).section("for_you").entries
    assert reranked[0].item_id == top[0]
    assert reranked[1].item_id not in top  # the near-copy waits
    assert sum(e.item_id in top for e in reranked[:3]) == 1
    similar = [e.signals["rule_mmr_sim"] for e in reranked[1:5] if "rule_mmr_sim" in e.signals]
    assert similar and all(s < 0.5 for s in similar)


def test_mmr_without_embeddings_keeps_the_ranking(user, staff, world):
    now = timezone.now()
    ranked = [e.item_id for e in build_feed(user.id, now=now).section("for_you").entries]
    rule(staff, kind="diversity", mmr_lambda=0.3)
    assert [e.item_id for e in build_feed(user.id, now=now).section("for_you").entries] == ranked


def test_no_rules_cost_nothing_and_change_nothing(user, world, django_assert_num_queries):
    from rules_app import public as rules

    rules.campaign_item_ids(timezone.now())  # loads the (empty) rules once
    with django_assert_num_queries(1):  # the version check (RULES_REFRESH_SECONDS is 0 here)
        rules.campaign_item_ids(timezone.now())


def test_a_first_page_without_enough_variety_is_filled_and_marked():
    from dataclasses import dataclass

    from reading_app.contracts import ItemFacets
    from rules_app.engine import first_page

    @dataclass(frozen=True)
    class E:
        item_id: int
        score: float
        signals: dict

    now = timezone.now()
    facets = {i: ItemFacets(i, 1 if i < 5 else i, (), now, True) for i in range(1, 8)}
    entries = [E(i, 1.0 - i / 10, {}) for i in range(1, 8)]
    out = first_page(entries, page=4, facets=facets, max_per_provider=2, max_per_category=None)
    assert [e.item_id for e in out] == [1, 2, 5, 6, 3, 4, 7]
    assert out[4].signals == {"rule_demoted": 1.0}
    short = first_page(
        entries[:4], page=4, facets=facets, max_per_provider=2, max_per_category=None
    )
    assert [e.item_id for e in short] == [1, 2, 3, 4]
    assert short[2].signals == short[3].signals == {"rule_cap_relaxed": 1.0}


def test_the_exploration_slot_never_draws_a_campaign_item(user, staff, world):
    from experience_app.treatments import Treatment

    sponsored = make_item(hours_ago=1, provider=world["quiet"])
    campaign(staff, sponsored, user_cap_per_day=1000)
    treatment = Treatment(explore={"position": 2, "pool": 50, "max_age_hours": 500.0})
    feed = build_feed(user.id, now=timezone.now(), treatment=treatment)
    explored = [d for d in feed.decisions if d.kind == "explore"]
    assert explored  # the slot drew from a pool
    for decision in explored:
        assert decision.arm != str(sponsored.id)
        assert sponsored.id not in {c["item_id"] for c in decision.candidates}
    shown = [e for s in feed.sections for e in s.entries if e.item_id == sponsored.id]
    assert len(shown) == 1 and shown[0].signals["sponsored"] == 1.0


def test_a_new_block_reaches_a_cached_home_at_once(auth_client, user, staff, world):
    """A cached home built before a rule changed is built again: a block (a takedown) does
    not wait for the feed cache to expire."""
    first = auth_client.get(HOME).json()
    assert auth_client.get(HOME).json()["cached"] is True
    shown = [i for i in all_ids(first) if i != world["started"].id]
    target = shown[0]

    rule(staff, kind="block", target="item", target_id=target)
    body = auth_client.get(HOME).json()

    assert body["cached"] is False
    assert target not in all_ids(body)
    assert auth_client.get(HOME).json()["cached"] is True  # and cached again under it
