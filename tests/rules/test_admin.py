"""Rules in the admin: the pages render, a contradiction is a form error, and every save is
recorded with its author and shown on the rule's page."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from rules_app import services
from rules_app.models import Rule, RuleVersion
from tests.factories import ItemFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/rules_app/rule/"


def form(**fields):
    data = {
        "name": "rule",
        "kind": "block",
        "active": "on",
        "starts_at_0": "",
        "starts_at_1": "",
        "ends_at_0": "",
        "ends_at_1": "",
        "target": "",
        "target_id": "",
        "keyword": "",
        "mode": "",
        "value": "",
        "provider_id": "",
        "item_ids": "",
        "budget": "",
        "positions": "",
        "user_cap_per_day": "",
        "relevance_floor": "",
        "max_per_provider": "",
        "max_per_category": "",
        "mmr_lambda": "",
    }
    data.update(fields)
    return data


def test_the_admin_pages_render(admin_client, admin_user):
    item = ItemFactory()
    now = timezone.now()
    rule = services.rule_create(
        {
            "name": "Launch",
            "kind": "sponsored",
            "starts_at": now,
            "ends_at": now + timedelta(days=1),
            "item_ids": [item.id],
            "budget": 10,
            "positions": [1],
            "user_cap_per_day": 1,
        },
        user=admin_user,
    )
    for url in (
        CHANGELIST,
        f"{CHANGELIST}add/",
        f"{CHANGELIST}{rule.id}/change/",
        "/admin/rules_app/ruleversion/",
        f"/admin/rules_app/ruleversion/{RuleVersion.objects.get().id}/change/",
    ):
        response = admin_client.get(url)
        assert response.status_code == 200, url
    page = admin_client.get(f"{CHANGELIST}{rule.id}/change/").content.decode()
    assert "0 of 10" in page  # impressions delivered
    assert admin_user.username in page and "Created" in page  # its history


def test_a_save_in_the_admin_is_validated_and_recorded(admin_client, admin_user):
    item = ItemFactory()
    response = admin_client.post(
        f"{CHANGELIST}add/", form(name="No item", target="item", target_id=str(item.id))
    )
    assert response.status_code == 302
    rule = Rule.objects.get()
    version = RuleVersion.objects.get(rule_id=rule.id)
    assert version.action == "create" and version.changed_by == admin_user
    # A boost of the blocked item contradicts it: a form error, nothing saved.
    response = admin_client.post(
        f"{CHANGELIST}add/",
        form(kind="boost", target="item", target_id=str(item.id), mode="add", value="1"),
    )
    assert response.status_code == 200
    assert "both blocked and boosted" in response.content.decode()
    assert Rule.objects.count() == 1
    # A bad field is an error on that field.
    response = admin_client.post(f"{CHANGELIST}add/", form(kind="diversity", max_per_provider="0"))
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["max_per_provider"]
    # An edit records what changed; a deletion keeps the history.
    response = admin_client.post(
        f"{CHANGELIST}{rule.id}/change/",
        form(name="Renamed", target="item", target_id=str(item.id)),
    )
    assert response.status_code == 302
    update = RuleVersion.objects.filter(rule_id=rule.id, action="update").get()
    assert update.changes == {"name": ["No item", "Renamed"]}
    response = admin_client.post(f"{CHANGELIST}{rule.id}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert [v.action for v in RuleVersion.objects.filter(rule_id=rule.id)] == [
        "delete",
        "update",
        "create",
    ]
