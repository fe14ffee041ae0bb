"""The staff rules API keeps its published contract (regressions found by tests/api/test_fuzz.py
once it fuzzed the rules operations as staff): values of the wrong JSON type are refused, what
the schema can say about a field it says (so a schema-valid field is not refused for a reason
the schema hides), and every status the API answers is documented."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from rules_app.models import Rule
from tests.factories import ItemFactory

pytestmark = pytest.mark.django_db

RULES = "/api/v1/rules/"
VARIETY = {"name": "Variety", "kind": "diversity", "max_per_provider": 2}


def error(response) -> dict:
    body = response.json()
    assert set(body) == {"error"}, body
    return body["error"]


@pytest.fixture
def rule_in(client) -> dict:
    schema = client.get("/api/schema/?format=json").json()
    return schema["components"]["schemas"]["RuleInRequest"]["properties"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"mmr_lambda": False}, "mmr_lambda"),  # was stored as 0.0
        ({"mmr_lambda": "0.5"}, "mmr_lambda"),
        ({"relevance_floor": True}, "relevance_floor"),
        ({"value": "1.5"}, "value"),
        ({"active": "false"}, "active"),  # was read as False
        ({"active": 1}, "active"),
    ],
)
def test_a_value_of_the_wrong_json_type_is_a_400(staff_client, change, field):
    response = staff_client.post(RULES, {**VARIETY, **change}, format="json")
    assert response.status_code == 400, response.content
    assert error(response)["code"] == "invalid" and field in error(response)["details"]
    assert not Rule.objects.exists()

    rule = staff_client.post(RULES, VARIETY, format="json").json()
    response = staff_client.patch(f"{RULES}{rule['id']}/", change, format="json")
    assert response.status_code == 400, response.content
    assert field in error(response)["details"]
    assert Rule.objects.get().mmr_lambda is None and Rule.objects.get().active is True


def test_the_schema_bounds_each_field_as_the_server_does(rule_in):
    assert (rule_in["mmr_lambda"]["minimum"], rule_in["mmr_lambda"]["maximum"]) == (0.0, 1.0)
    assert (rule_in["value"]["minimum"], rule_in["value"]["maximum"]) == (-10.0, 100.0)
    for count in ("budget", "user_cap_per_day", "max_per_provider", "max_per_category"):
        assert rule_in[count]["minimum"] == 1, count
    positions = rule_in["positions"]
    assert positions["items"]["maximum"] == settings.EXPERIENCE_SECTION_PAGE_SIZE - 1
    assert positions["uniqueItems"] is True
    assert rule_in["active"]["type"] == "boolean"
    assert rule_in["mmr_lambda"]["type"] == "number"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"mmr_lambda": 999999.0}, "mmr_lambda"),
        ({"max_per_provider": 0}, "max_per_provider"),
        ({"name": "\n"}, "name"),
        ({"name": "a\x00b"}, "name"),
    ],
)
def test_what_the_schema_refuses_the_server_refuses(staff_client, rule_in, change, field):
    response = staff_client.post(RULES, {**VARIETY, **change}, format="json")
    assert response.status_code == 400, response.content
    assert field in error(response)["details"]
    value = change[field]
    spec = rule_in[field]
    if isinstance(value, str):
        assert re.search(spec["pattern"], value) is None
    else:
        assert not spec["minimum"] <= value <= spec["maximum"]


def test_values_at_the_schema_bounds_are_accepted(staff_client, rule_in):
    assert re.search(rule_in["name"]["pattern"], " Variety ")
    body = {**VARIETY, "name": " Variety ", "mmr_lambda": 1.0, "max_per_category": 1000}
    response = staff_client.post(RULES, body, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["name"] == "Variety"
    rule = staff_client.post(
        RULES,
        {"name": "Floor", "kind": "diversity", "mmr_lambda": 0.0, "active": False},
        format="json",
    )
    assert rule.status_code == 201, rule.content
    # A campaign's floor at the schema's bound was refused (the services' bound was open).
    campaign = {
        "name": "Launch week",
        "kind": "sponsored",
        "starts_at": (timezone.now() - timedelta(days=1)).isoformat(),
        "ends_at": (timezone.now() + timedelta(days=6)).isoformat(),
        "item_ids": [ItemFactory().id],
        "budget": 1,
        "positions": [settings.EXPERIENCE_SECTION_PAGE_SIZE - 1],
        "user_cap_per_day": 1,
        "relevance_floor": rule_in["relevance_floor"]["maximum"],
    }
    response = staff_client.post(RULES, campaign, format="json")
    assert response.status_code == 201, response.content


def test_a_history_path_without_a_number_is_a_documented_404(staff_client, client):
    response = staff_client.get(f"{RULES}null,null/versions/")
    assert response.status_code == 404
    assert error(response)["code"] == "not_found"
    schema = client.get("/api/schema/?format=json").json()
    responses = schema["paths"]["/api/v1/rules/{rule_id}/versions/"]["get"]["responses"]
    assert "404" in responses
