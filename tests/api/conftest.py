"""Fixtures for tests that call the live test server over HTTP (fuzzing, the example client)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.core.servers.basehttp import WSGIRequestHandler
from django.utils import timezone

from reading_app.models import Category, Item, Provider
from search_app.services import indexing
from tests.factories import CategoryFactory, ItemFactory, ProviderFactory

PASSWORD = "correct-horse-battery"  # tests.factories.UserFactory's password


@pytest.fixture
def http_server(live_server, settings, monkeypatch):
    """pytest-django's live server, fast and unthrottled.

    The server writes headers and body in separate packets; with Nagle's algorithm on, each
    keep-alive response then waits for the client's delayed ACK (~40 ms), 20x the request's
    own time. Rate limits stay on, set high enough never to answer 429 to a test client that
    sends thousands of requests from one address.
    """
    monkeypatch.setattr(WSGIRequestHandler, "disable_nagle_algorithm", True)
    settings.THROTTLE_RATES = {scope: "1000000/min" for scope in settings.THROTTLE_RATES}
    return live_server


@dataclass(frozen=True)
class Catalog:
    categories: list[Category]
    providers: list[Provider]
    items: list[Item]


@pytest.fixture
def catalog(transactional_db) -> Catalog:
    """A small searchable catalog: a category tree, three newsletters, a dozen issues."""
    space = CategoryFactory(slug="space", name="Space")
    rockets = CategoryFactory(slug="rockets", name="Rockets", parent=space)
    cooking = CategoryFactory(slug="cooking", name="Cooking")
    providers = [
        ProviderFactory(slug="orbit-weekly", name="Orbit Weekly", categories=[space, rockets]),
        ProviderFactory(slug="launch-notes", name="Launch Notes", categories=[rockets]),
        ProviderFactory(slug="kitchen-letters", name="Kitchen Letters", categories=[cooking]),
    ]
    titles = [
        ("Reusable rockets land again", [rockets]),
        ("The economics of reusable boosters", [rockets, space]),
        ("A telescope at the edge of the solar system", [space]),
        ("Why orbits decay", [space]),
        ("Launch windows explained", [rockets]),
        ("Engines that burn methane", [rockets]),
        ("Bread with a slow levain", [cooking]),
        ("Knife skills for weeknights", [cooking]),
        ("A pantry of spices", [cooking]),
    ]
    # Published in the last hours whatever ran before: the factory's own dates step back an
    # hour per item made in the session, and the home feed only takes recent items.
    now = timezone.now()
    items = [
        ItemFactory(
            provider=providers[2 if cats[0] == cooking else i % 2],
            title=t,
            categories=cats,
            published_at=now - timedelta(hours=i + 1),
        )
        for i, (t, cats) in enumerate(titles)
    ]
    indexing.index_pending()
    return Catalog(categories=[space, rockets, cooking], providers=providers, items=items)
