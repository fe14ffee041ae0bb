"""Read replicas against a real streaming replica (``conftest.py``): lag-tolerant reads on the
replica, writes and a writer's reads on the primary, a lagging or lost replica skipped with
a metric, and never a 5xx for it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connections, transaction
from django.db.models.expressions import RawSQL
from django.utils import timezone
from prometheus_client import REGISTRY
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from inbo import keys, replicas
from inbo import redis as inbo_redis
from reading_app.models import Provider
from reading_app.selectors import recent_item_ids
from search_app.selectors import analytics_summary
from tests.factories import ItemFactory, ProviderFactory, UserFactory
from tests.replica.conftest import Cluster

pytestmark = pytest.mark.slow  # starts two PostgreSQL servers (scripts/replica.sh)


def _reads(replica: str = "replica_1") -> float:
    return REGISTRY.get_sample_value("inbo_db_replica_reads_total", {"replica": replica}) or 0.0


def _fallbacks(reason: str) -> float:
    return REGISTRY.get_sample_value("inbo_db_replica_fallbacks_total", {"reason": reason}) or 0.0


def _gauge(name: str) -> float | None:
    return REGISTRY.get_sample_value(name, {"replica": "replica_1"})


def _server_port_of(slug: str) -> tuple[int, str]:
    """Read the provider through the ORM; (port of the server that answered, its name)."""
    row = (
        Provider.objects.filter(slug=slug)
        .annotate(port=RawSQL("inet_server_port()", ()))
        .values_list("port", "name")
        .get()
    )
    return row[0], row[1]


@replicas.lag_tolerant
def _tolerant_read(slug: str) -> tuple[int, str]:
    return _server_port_of(slug)


def test_a_lag_tolerant_read_is_served_by_the_replica_writes_and_others_by_the_primary(
    streaming: Cluster,
):
    primary, replica = streaming.port("default"), streaming.port("replica_1")
    provider = ProviderFactory(name="Streamed")
    assert provider._state.db == "default"
    streaming.wait_replayed()
    before = _reads()

    assert _tolerant_read(provider.slug) == (replica, "Streamed")
    assert _reads() == before + 1
    assert _gauge("inbo_db_replica_up") == 1
    assert _gauge("inbo_db_replica_lag_seconds") == 0
    # Not marked lag-tolerant: the primary.
    assert _server_port_of(provider.slug) == (primary, "Streamed")

    @replicas.lag_tolerant
    def read_then_write() -> tuple[int, str]:
        port = _server_port_of(provider.slug)[0]
        # Writes inside a lag-tolerant call still go to the primary...
        created = ProviderFactory(name="Written inside")
        assert created._state.db == "default"
        # ...and so do reads inside a transaction, which must see its writes.
        with transaction.atomic():
            inside = _server_port_of(created.slug)
        return port, inside[0]

    assert read_then_write() == (replica, primary)
    # The call sites: feed candidate pools and search analytics read the replica too.
    now = timezone.now()
    item = ItemFactory(provider=provider)
    streaming.wait_replayed()
    reads = _reads()
    assert item.pk in recent_item_ids(since=now - timedelta(days=30), limit=50)
    assert analytics_summary(now - timedelta(days=1), now).searches >= 0
    assert _reads() == reads + 2
    # What fills a cache emptied on change reads the primary.
    with replicas.on_primary():
        assert _tolerant_read(provider.slug) == (primary, "Streamed")


def _signed_in(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


SEARCH = "/api/v1/search/"  # PostgreSQL search: lag-tolerant, not page-cached


def test_a_user_who_just_wrote_reads_from_the_primary(streaming: Cluster, settings):
    user = UserFactory()
    client = _signed_in(user)
    provider = ProviderFactory()
    streaming.wait_replayed()

    reads = _reads()
    assert client.get(SEARCH, {"q": "streams"}).status_code == 200
    assert _reads() == reads + 1  # no write yet: the replica

    assert client.post(
        "/api/v1/subscriptions/", {"provider": provider.slug}, format="json"
    ).status_code in {200, 201}
    ttl = inbo_redis.state().ttl(keys.recent_write(user.pk))
    assert 0 < ttl <= settings.READ_YOUR_WRITES_SECONDS

    recent, reads = _fallbacks("recent_write"), _reads()
    assert client.get(SEARCH, {"q": "streams"}).status_code == 200
    assert _fallbacks("recent_write") == recent + 1
    assert _reads() == reads
    # Someone else still reads from the replica.
    assert _signed_in(UserFactory()).get(SEARCH, {"q": "streams"}).status_code == 200
    assert _reads() == reads + 1


def test_a_lagging_replica_is_skipped_until_it_catches_up(streaming: Cluster, settings):
    settings.DATABASE_REPLICA_MAX_LAG_SECONDS = 0.0  # any lag at all is too much
    primary, replica = streaming.port("default"), streaming.port("replica_1")
    with connections["replica_1"].cursor() as cursor:
        cursor.execute("SELECT pg_wal_replay_pause()")
    late = ProviderFactory(name="Written while replay is paused")
    lagging = _fallbacks("lagging")

    # The replica has not replayed the write: the read goes to the primary, and finds it.
    assert _tolerant_read(late.slug) == (primary, "Written while replay is paused")
    assert _fallbacks("lagging") == lagging + 1
    assert _gauge("inbo_db_replica_lag_seconds") > 0
    assert _gauge("inbo_db_replica_up") == 1  # lagging, not down

    with connections["replica_1"].cursor() as cursor:
        cursor.execute("SELECT pg_wal_replay_resume()")
    streaming.wait_replayed()
    replicas.health_reset()  # the next check, without waiting for it
    assert _tolerant_read(late.slug) == (replica, "Written while replay is paused")
    assert _gauge("inbo_db_replica_lag_seconds") == 0


def test_losing_the_replica_costs_no_5xx(streaming: Cluster, settings):
    settings.DATABASE_REPLICA_CHECK_SECONDS = 3600.0  # the check still says "healthy" after
    item = ItemFactory(title="Served whatever happens")
    client = _signed_in(UserFactory())
    streaming.wait_replayed()
    assert client.get(SEARCH, {"q": "served"}).status_code == 200
    reads = _reads()

    streaming.crash_replica()
    lost, down = _fallbacks("lost"), _fallbacks("down")
    # Lost during the request: its reads run again on the primary.
    assert client.get(SEARCH, {"q": "served"}).status_code == 200
    assert _fallbacks("lost") == lost + 1
    assert _gauge("inbo_db_replica_up") == 0
    # Marked down: later requests go to the primary without trying it.
    assert client.get(SEARCH, {"q": "whatever"}).status_code == 200
    assert _fallbacks("down") == down + 1
    # The catalog answers too (from the primary, or its page cache).
    response = APIClient().get("/api/v1/items/")
    assert response.status_code == 200
    assert item.pk in [row["id"] for row in response.json()["results"]]
    assert APIClient().get(f"/api/v1/items/{item.pk}/").status_code == 200
    # A fresh check (another process, or after the retry delay) finds it down too.
    replicas.health_reset()
    down = _fallbacks("down")
    assert _tolerant_read(item.provider.slug)[0] == streaming.port("default")
    assert _fallbacks("down") == down + 1
    assert _reads() == reads

    streaming.start()  # back: the next check uses it again
    streaming.wait_replayed()
    replicas.health_reset()
    assert _tolerant_read(item.provider.slug)[0] == streaming.port("replica_1")
    assert _reads() == reads + 1
