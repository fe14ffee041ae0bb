"""The staff rules API: each kind created, bad rules a 400, contradictions a 409, every
change recorded with its author, staff only."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from rules_app.models import Rule, RuleVersion
from tests.factories import CategoryFactory, ItemFactory, ProviderFactory

pytestmark = pytest.mark.django_db

RULES = "/api/v1/rules/"


def url(rule_id: int, tail: str = "") -> str:
    return f"{RULES}{rule_id}/{tail}"


def when(days: float) -> str:
    return (timezone.now() + timedelta(days=days)).isoformat()


def campaign(**fields):
    item = fields.pop("item", None) or ItemFactory()
    return {
        "name": "Launch week",
        "kind": "sponsored",
        "starts_at": when(-1),
        "ends_at": when(6),
        "item_ids": [item.id],
        "budget": 1000,
        "positions": [2],
        "user_cap_per_day": 3,
        "relevance_floor": 0.1,
        **fields,
    }


def error(response) -> dict:
    body = response.json()
    assert set(body) == {"error"}, body
    return body["error"]


def test_each_kind_is_created_and_listed(staff_client):
    provider, category, item = ProviderFactory(), CategoryFactory(), ItemFactory()
    bodies = [
        campaign(),
        {"name": "No spam", "kind": "block", "target": "keyword", "keyword": "Crypto Giveaway"},
        {"name": "No X", "kind": "block", "target": "provider", "target_id": provider.id},
        {
            "name": "Space week",
            "kind": "boost",
            "target": "category",
            "target_id": category.id,
            "mode": "multiply",
            "value": 1.5,
            "starts_at": when(0),
            "ends_at": when(7),
        },
        {
            "name": "Item",
            "kind": "boost",
            "target": "item",
            "target_id": item.id,
            "mode": "add",
            "value": 0.3,
        },
        {"name": "Variety", "kind": "diversity", "max_per_provider": 2, "mmr_lambda": 0.7},
    ]
    for body in bodies:
        response = staff_client.post(RULES, body, format="json")
        assert response.status_code == 201, response.json()
    listed = staff_client.get(RULES).json()
    assert listed["count"] == len(bodies)
    assert {r["kind"] for r in listed["results"]} == {"sponsored", "block", "boost", "diversity"}
    keyword = Rule.objects.get(name="No spam")
    assert keyword.keyword == "crypto giveaway"
    assert staff_client.get(RULES, {"kind": "boost"}).json()["count"] == 2
    assert staff_client.get(RULES, {"kind": "pin"}).status_code == 400


def test_fields_of_other_kinds_are_cleared(staff_client):
    provider = ProviderFactory()
    body = {
        "name": "Block",
        "kind": "block",
        "target": "provider",
        "target_id": provider.id,
        "budget": 5,
        "mmr_lambda": 0.5,
    }
    created = staff_client.post(RULES, body, format="json").json()
    assert created["budget"] is None and created["mmr_lambda"] is None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"ends_at": when(-2)}, "ends_at"),  # end before start
        ({"user_cap_per_day": 0}, "user_cap_per_day"),
        ({"budget": 0}, "budget"),
        ({"positions": [10]}, "positions"),  # page size 10: 0..9
        ({"positions": [1, 1]}, "positions"),
        ({"positions": []}, "positions"),
        ({"item_ids": [987654321]}, "item_ids"),
        ({"provider_id": 987654321}, "provider_id"),
        ({"item_ids": [], "provider_id": None}, "item_ids"),
        ({"starts_at": None}, "starts_at"),
        ({"budget": "many"}, "budget"),
        ({"item_ids": list(range(1, 200))}, "item_ids"),
    ],
)
def test_a_bad_campaign_is_a_400_naming_the_field(staff_client, change, field):
    response = staff_client.post(RULES, campaign(**change), format="json")
    assert response.status_code == 400
    assert field in error(response)["details"]
    assert not Rule.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "block", "target": "category", "target_id": 1}, "target"),
        ({"kind": "block", "target": "keyword", "keyword": "  "}, "keyword"),
        ({"kind": "block", "target": "item", "target_id": 987654321}, "target_id"),
        (
            {
                "kind": "boost",
                "target": "category",
                "target_id": 987654321,
                "mode": "add",
                "value": 1,
            },
            "target_id",
        ),
        (
            {"kind": "boost", "target": "item", "target_id": None, "mode": "add", "value": 1},
            "target_id",
        ),
        (
            {"kind": "boost", "target": "keyword", "keyword": "x", "mode": "add", "value": 1},
            "target",
        ),
        ({"kind": "diversity", "max_per_category": 0}, "max_per_category"),
        ({"kind": "diversity", "mmr_lambda": 1.5}, "mmr_lambda"),
        ({"kind": "diversity"}, "max_per_provider"),
        ({"kind": "zap"}, "kind"),
    ],
)
def test_a_bad_rule_is_a_400_naming_the_field(staff_client, body, field):
    response = staff_client.post(RULES, {"name": "r", **body}, format="json")
    assert response.status_code == 400, response.json()
    assert field in error(response)["details"]


def test_a_boost_value_is_bounded(staff_client):
    item = ItemFactory()
    body = {"name": "b", "kind": "boost", "target": "item", "target_id": item.id}
    for mode, value in (("multiply", 0), ("multiply", 1000), ("add", 50)):
        response = staff_client.post(RULES, {**body, "mode": mode, "value": value}, format="json")
        assert response.status_code == 400
        assert "value" in error(response)["details"]


def test_an_item_blocked_and_boosted_or_sponsored_is_a_409(staff_client):
    item = ItemFactory()
    block = {"name": "b", "kind": "block", "target": "item", "target_id": item.id}
    assert staff_client.post(RULES, block, format="json").status_code == 201
    boost = {
        "name": "up",
        "kind": "boost",
        "target": "item",
        "target_id": item.id,
        "mode": "add",
        "value": 1,
    }
    response = staff_client.post(RULES, boost, format="json")
    assert response.status_code == 409
    assert error(response)["code"] == "conflict"
    assert "blocked and boosted" in error(response)["details"]["conflicts"][0]
    assert staff_client.post(RULES, campaign(item=item), format="json").status_code == 409
    # An inactive rule contradicts nothing.
    assert staff_client.post(RULES, {**boost, "active": False}, format="json").status_code == 201


def test_a_provider_blocked_and_its_item_sponsored_is_a_409(staff_client):
    item = ItemFactory()
    created = staff_client.post(RULES, campaign(item=item), format="json")
    assert created.status_code == 201
    block = {"name": "b", "kind": "block", "target": "provider", "target_id": item.provider_id}
    response = staff_client.post(RULES, block, format="json")
    assert response.status_code == 409
    assert "provider" in error(response)["message"]


def test_two_campaigns_on_one_slot_conflict_only_when_their_times_overlap(staff_client):
    assert staff_client.post(RULES, campaign(), format="json").status_code == 201
    overlapping = campaign(starts_at=when(3), ends_at=when(10), positions=[2, 5])
    response = staff_client.post(RULES, overlapping, format="json")
    assert response.status_code == 409
    assert "position(s) [2]" in error(response)["message"]
    later = campaign(starts_at=when(6), ends_at=when(10))  # starts when the first ends
    assert staff_client.post(RULES, later, format="json").status_code == 201
    other_slot = campaign(positions=[5])
    assert staff_client.post(RULES, other_slot, format="json").status_code == 201


def test_an_update_is_validated_as_the_whole_rule(staff_client):
    rule = staff_client.post(RULES, campaign(), format="json").json()
    response = staff_client.patch(url(rule["id"]), {"ends_at": when(-3)}, format="json")
    assert response.status_code == 400
    assert "ends_at" in error(response)["details"]
    response = staff_client.patch(url(rule["id"]), {"budget": 5000}, format="json")
    assert response.status_code == 200
    assert response.json()["budget"] == 5000
    assert staff_client.patch(url(987654321), {"budget": 1}, format="json").status_code == 404


def test_every_change_is_recorded_with_its_author(staff_client, staff):
    rule = staff_client.post(RULES, campaign(), format="json").json()
    staff_client.patch(url(rule["id"]), {"budget": 5000, "name": "Renamed"}, format="json")
    assert staff_client.delete(url(rule["id"])).status_code == 204
    assert not Rule.objects.filter(id=rule["id"]).exists()
    versions = staff_client.get(url(rule["id"], "versions/")).json()
    assert [v["action"] for v in versions["results"]] == ["delete", "update", "create"]
    assert {v["changed_by"] for v in versions["results"]} == {staff.username}
    update = versions["results"][1]
    assert update["changes"] == {"budget": [1000, 5000], "name": ["Launch week", "Renamed"]}
    assert RuleVersion.objects.filter(rule_id=rule["id"], changed_by=staff).count() == 3
    assert staff_client.get(url(rule["id"])).status_code == 404


def test_only_staff_reach_the_rules(auth_client, api_client):
    assert auth_client.get(RULES).status_code == 403
    assert auth_client.post(RULES, campaign(), format="json").status_code == 403
    assert api_client.get(RULES).status_code == 401


def test_the_list_is_paginated(staff_client):
    for i in range(3):
        item = ItemFactory()
        body = {"name": f"b{i}", "kind": "block", "target": "item", "target_id": item.id}
        staff_client.post(RULES, body, format="json")
    page = staff_client.get(RULES, {"page_size": 2}).json()
    assert page["count"] == 3 and len(page["results"]) == 2 and page["next"]
    assert staff_client.get(RULES, {"page_size": 0}).status_code == 400


@pytest.mark.parametrize(
    "body",
    [
        {},
        [],
        "rule",
        {"name": None, "kind": "block"},
        {"name": "r", "kind": ["block"]},
        {"name": "r", "kind": "block", "target": "item", "target_id": "7"},
        {"name": "r", "kind": "block", "target": "item", "target_id": 2**70},
        {"name": "r", "kind": "block", "target": "item", "target_id": True},
        {"name": "r", "kind": "block", "target": "keyword", "keyword": 5},
        {"name": "r", "kind": "block", "target": "keyword", "keyword": "a\x00b"},
        {"name": "x" * 500, "kind": "diversity", "max_per_provider": 2},
        {
            "name": "r",
            "kind": "boost",
            "target": "item",
            "target_id": 1,
            "mode": "add",
            "value": "1e999",
        },
        {"name": "r", "kind": "sponsored", "item_ids": "1,2", "positions": {"a": 1}},
        {"name": "r", "kind": "sponsored", "item_ids": [0], "positions": [-1]},
        {"name": "r", "kind": "sponsored", "starts_at": "yesterday", "ends_at": 5},
        {"name": "r", "kind": "diversity", "mmr_lambda": "nan"},
    ],
)
def test_malformed_input_is_a_400_never_a_500(staff_client, body):
    response = staff_client.post(RULES, body, format="json")
    assert response.status_code == 400, response.content
    assert error(response)["code"] == "invalid"


def test_an_id_out_of_range_is_a_404(staff_client):
    for path in (url(2**70), url(0), url(2**70, "versions/")):
        response = staff_client.get(path)
        assert response.status_code in (404, 200), path
        if response.status_code == 200:  # an empty history
            assert response.json()["count"] == 0
    assert staff_client.patch(url(2**70), {"budget": 1}, format="json").status_code == 404
    assert staff_client.delete(url(2**70)).status_code == 404
