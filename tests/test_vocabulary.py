"""One enum per concept: the apps that share a vocabulary import it from the app that owns it.

The feature store owns the event types (experience_app's interactions are forwarded as
events); reading_app owns the catalog's kinds (search indexes one document type per kind).
"""

from __future__ import annotations

import importlib

import pytest

from experience_app.api.serializers import InteractionSerializer
from experience_app.models import ExperienceInteraction
from features_app.contracts import EVENT_TYPE_CHOICES, EventType
from features_app.models import UserEvent
from reading_app.contracts import CatalogKind
from search_app.contracts import SearchQuery
from search_app.models import SearchDocument


def test_interaction_types_are_the_feature_stores_event_types():
    assert [value for value, _ in EVENT_TYPE_CHOICES] == [t.value for t in EventType]
    field = ExperienceInteraction._meta.get_field("interaction_type")
    assert field.choices == UserEvent._meta.get_field("event_type").choices == EVENT_TYPE_CHOICES
    accepted = InteractionSerializer().fields["type"].choices
    assert list(accepted) == [t.value for t in EventType]


def test_experience_app_defines_no_interaction_enum_of_its_own():
    assert not hasattr(importlib.import_module("experience_app.models"), "InteractionType")


def test_search_document_types_are_the_catalog_kinds():
    assert SearchQuery("").doc_type is CatalogKind.ITEMS
    field = SearchDocument._meta.get_field("doc_type")
    assert [value for value, _ in field.choices] == [k.value for k in CatalogKind]


@pytest.mark.parametrize("module", ["search_app.contracts", "search_app.public"])
def test_search_has_no_doc_type_enum_of_its_own(module):
    assert not hasattr(importlib.import_module(module), "DocType")
