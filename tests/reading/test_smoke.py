import pytest

from tests.factories import ItemFactory

pytestmark = pytest.mark.django_db


def test_items_list_shows_published_items(api_client):
    item = ItemFactory()
    response = api_client.get("/api/v1/items/")
    assert response.status_code == 200
    assert [row["id"] for row in response.json()["results"]] == [item.id]
