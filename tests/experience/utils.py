"""Builders and probes shared by the home-experience tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.utils import timezone
from rest_framework.test import APIClient

from features_app import public as features
from features_app.contracts import EventIn, EventType
from reading_app.models import Item
from tests.factories import ItemFactory

HOME = "/api/v1/experience/home/"
INTERACTIONS = "/api/v1/experience/interactions/"
INTERESTS = "/api/v1/me/interests/"


def section_url(key: str) -> str:
    return f"/api/v1/experience/home/sections/{key}/"


def make_item(*, hours_ago: float = 1.0, categories: Iterable[Any] = (), **kwargs: Any) -> Item:
    """An item published ``hours_ago`` (the factory's own dates drift with its sequence)."""
    return ItemFactory(
        published_at=timezone.now() - timedelta(hours=hours_ago),
        categories=list(categories),
        **kwargs,
    )


def interaction(item: Any, kind: str, **fields: Any) -> dict[str, Any]:
    """One interaction as a client sends it, with a fresh client ``event_id``."""
    return {
        "event_id": str(uuid.uuid4()),
        "item_id": item if isinstance(item, int) else item.id,
        "type": kind,
        **fields,
    }


def post_interactions(client: APIClient, *interactions: dict[str, Any]):
    return client.post(INTERACTIONS, {"interactions": list(interactions)}, format="json")


def ingest(user: Any, item: Any, kind: str, *, hours_ago: float = 0.0, **context: Any) -> None:
    """History of other users, straight through the feature store's ingestion path."""
    result = features.events_ingest(
        [
            EventIn(
                user_id=user.id,
                item_id=item.id,
                event_type=EventType(kind),
                occurred_at=timezone.now() - timedelta(hours=hours_ago),
                event_id=uuid.uuid4(),
                context=context,
            )
        ]
    )
    assert result.created == 1


def sections(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["key"]: s for s in body["sections"]}


def ids(section: dict[str, Any] | None) -> list[int]:
    return [entry["item"]["id"] for entry in section["items"]] if section else []


def all_ids(body: dict[str, Any]) -> list[int]:
    return [i for s in body["sections"] for i in ids(s)]


def entry(body: dict[str, Any], item_id: int) -> dict[str, Any] | None:
    """The served entry of ``item_id`` in any section, with its section key."""
    for s in body["sections"]:
        for e in s["items"]:
            if e["item"]["id"] == item_id:
                return {**e, "section": s["key"]}
    return None


def assert_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """The response is the API's error shape with ``status`` (and ``code``)."""
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    if code is not None:
        assert body["error"]["code"] == code
    return body["error"]
