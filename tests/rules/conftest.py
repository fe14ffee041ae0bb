"""Fixtures of the business-rules tests: rules are read afresh at every build (no process
cache between a change and the feed it should change), and forgotten after each test."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from rules_app import public as rules
from tests.factories import UserFactory


@pytest.fixture(autouse=True)
def _rules_read_afresh(settings):
    settings.RULES_REFRESH_SECONDS = 0
    rules.forget()
    yield
    rules.forget()


@pytest.fixture
def staff(db):
    return UserFactory(is_staff=True, is_superuser=True)


@pytest.fixture
def staff_client(staff) -> APIClient:
    client = APIClient()
    client.force_authenticate(staff)
    return client
