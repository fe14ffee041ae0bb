"""The event log is partitioned by month: created ahead and on demand, detachable, pruned."""

from __future__ import annotations

import json
import re
import threading
import uuid
from datetime import UTC, date, datetime

import pytest
import redis
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.test.utils import CaptureQueriesContext

from features_app import partitions, services, tasks
from features_app import public as features
from features_app.models import UserEvent
from inbo.errors import ServiceUnavailable
from tests.factories import ItemFactory, UserFactory
from tests.features.utils import event

PARENT = UserEvent._meta.db_table
_PARTITION = re.compile(rf"{PARENT}_p(\d{{4}})_(\d{{2}})")


def _at(year: int, month: int, day: int = 15) -> datetime:
    return datetime(year, month, day, 12, 0, tzinfo=UTC)


def _attached() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = %s::regclass",
            [PARENT],
        )
        return {row[0] for row in cursor.fetchall()}


def _partition_of(event_id: uuid.UUID) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT tableoid::regclass::text FROM {PARENT} WHERE event_id = %s", [event_id]
        )
        return cursor.fetchone()[0]


def _months_in_plan(plan: str) -> set[date]:
    return {date(int(y), int(m), 1) for y, m in _PARTITION.findall(plan)}


@pytest.fixture
def actors(db):
    return UserFactory(), ItemFactory()


@pytest.fixture
def no_cache():
    """This process remembers no partition: every month is checked in the database."""
    partitions.forget()
    yield
    partitions.forget()


def _check_deferred_now() -> None:
    """Run the deferred foreign-key checks of this (test) transaction now: ALTER TABLE
    refuses a table with pending trigger events. In production a detach or a migration
    runs in a transaction of its own."""
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def _drop(names):
    with connection.cursor() as cursor:
        for name in names:
            cursor.execute(f"DROP TABLE IF EXISTS {name}")
    partitions.forget()


# --- what the migration built ----------------------------------------------------------


@pytest.mark.django_db
def test_migration_leaves_a_table_partitioned_by_month_of_occurred_at():
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT p.partstrat, a.attname FROM pg_partitioned_table p
            JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0]
            WHERE p.partrelid = %s::regclass
            """,
            [PARENT],
        )
        assert cursor.fetchall() == [("r", "occurred_at")]
        cursor.execute(
            """
            SELECT c.conname, c.contype, array_agg(a.attname ORDER BY k.n), c.condeferrable,
                   c.condeferred
            FROM pg_constraint c
            CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, n)
            JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
            WHERE c.conrelid = %s::regclass
            GROUP BY 1, 2, 4, 5
            """,
            [PARENT],
        )
        constraints = {name: (kind, cols, d1, d2) for name, kind, cols, d1, d2 in cursor.fetchall()}
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [PARENT])
        sequence = cursor.fetchone()[0]
    assert constraints[f"{PARENT}_pkey"][:2] == ("p", ["id", "occurred_at"])
    assert constraints["user_event_user_idempotency"][:2] == (
        "u",
        ["event_id", "user_id", "occurred_at"],
    )
    foreign = {cols[0]: (d1, d2) for kind, cols, d1, d2 in constraints.values() if kind == "f"}
    assert foreign == {"user_id": (True, True), "item_id": (True, True)}
    assert sequence == f"public.{PARENT}_id_seq"

    this_month = partitions.month_start(datetime.now(UTC))
    ahead = {partitions.partition_name(partitions.add_months(this_month, n)) for n in range(4)}
    assert ahead <= _attached()
    assert all(_PARTITION.fullmatch(name) for name in _attached())  # no DEFAULT partition


@pytest.mark.django_db
def test_ids_keep_coming_from_one_sequence(actors):
    user, item = actors
    features.events_record(
        [event(user, item, "click", _at(2026, 10)), event(user, item, "click", _at(2026, 11))]
    )
    ids = sorted(UserEvent.objects.filter(user=user).values_list("id", flat=True))
    assert ids[1] == ids[0] + 1


# --- creating partitions -----------------------------------------------------------------


@pytest.mark.django_db
def test_events_of_a_far_past_month_get_their_partition(actors, no_cache):
    user, item = actors
    old = event(user, item, "click", _at(2019, 11))
    assert f"{PARENT}_p2019_11" not in _attached()

    assert features.events_record([old]).created == 1

    assert f"{PARENT}_p2019_11" in _attached()
    assert _partition_of(old.event_id) == f"{PARENT}_p2019_11"


@pytest.mark.django_db
def test_ensure_is_idempotent(no_cache):
    first = partitions.ensure_partitions(date(2001, 1, 1), _at(2001, 3))
    again = partitions.ensure_partitions(date(2001, 1, 1), _at(2001, 3))

    assert first == [f"{PARENT}_p2001_01", f"{PARENT}_p2001_02", f"{PARENT}_p2001_03"]
    assert again == []
    assert set(first) <= _attached()
    listed = {p.name: p for p in partitions.list_partitions()}
    assert listed[f"{PARENT}_p2001_02"].month == date(2001, 2, 1)
    assert listed[f"{PARENT}_p2001_02"].attached


@pytest.mark.django_db
def test_month_boundaries_are_utc(actors, no_cache):
    user, item = actors
    # 00:30 on 1 March in Paris is still February in UTC.
    paris = datetime.fromisoformat("2002-03-01T00:30:00+01:00")
    late = event(user, item, "click", paris)
    features.events_record([late])
    assert _partition_of(late.event_id) == f"{PARENT}_p2002_02"


@pytest.mark.django_db
def test_a_month_known_to_the_process_costs_no_query(actors, django_assert_num_queries):
    user, item = actors
    partitions.ensure_partitions(_at(2003, 1), _at(2003, 1))
    partitions._known.add(date(2003, 1, 1))  # what on_commit does once the creator commits
    try:
        # The cut's shared lock, the INSERT, its pending batch (ADR 0016): no partition query.
        with django_assert_num_queries(3):
            features.events_record([event(user, item, "click", _at(2003, 1))])
    finally:
        partitions.forget()


@pytest.mark.django_db(transaction=True)
def test_concurrent_creators_create_each_partition_once():
    months = [date(2004, m, 1) for m in (1, 2, 3)]
    start = threading.Barrier(3)
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def create():
        try:
            start.wait()
            results.append(partitions.ensure_months(months))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=create) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    try:
        assert errors == []
        created = sorted(name for names in results for name in names)
        assert created == [partitions.partition_name(m) for m in months]
        assert {partitions.partition_name(m) for m in months} <= _attached()
    finally:
        _drop(partitions.partition_name(m) for m in months)


# --- detaching ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_detach_keeps_the_rows_in_a_renamed_table_and_out_of_queries(actors, no_cache):
    user, item = actors
    november = [event(user, item, "click", _at(2019, 11, d)) for d in (3, 4)]
    december = [event(user, item, "click", _at(2019, 12))]
    # Counted, not only stored: a month with events waiting to be counted is not detached.
    features.events_ingest([*november, *december])
    _check_deferred_now()

    detached = partitions.detach_partitions(date(2019, 12, 1))

    assert detached == [(f"{PARENT}_p2019_11", f"{PARENT}_d2019_11")]
    assert f"{PARENT}_p2019_11" not in _attached()
    assert {e.event_id for e in UserEvent.objects.filter(user=user)} == {december[0].event_id}
    assert partitions.count_rows(f"{PARENT}_d2019_11") == 2
    kept = [p for p in partitions.list_partitions() if not p.attached]
    assert [(p.name, p.month) for p in kept] == [(f"{PARENT}_d2019_11", date(2019, 11, 1))]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'f'",
            [f"{PARENT}_d2019_11"],
        )
        assert cursor.fetchone()[0] == 0  # an archive never blocks deleting a user or an item

    # A late event of the detached month gets a new partition; the archive is untouched.
    late = event(user, item, "read", _at(2019, 11, 20))
    assert features.events_ingest([late]).created == 1
    assert _partition_of(late.event_id) == f"{PARENT}_p2019_11"
    assert partitions.count_rows(f"{PARENT}_d2019_11") == 2

    # Detached again, it is kept beside the first archive.
    _check_deferred_now()
    assert partitions.detach_partitions(date(2019, 12, 1)) == [
        (f"{PARENT}_p2019_11", f"{PARENT}_d2019_11_2")
    ]


@pytest.mark.django_db
def test_deleting_a_user_with_archived_events_works(actors, no_cache):
    user, item = actors
    features.events_ingest([event(user, item, "click", _at(2019, 10))])
    _check_deferred_now()
    partitions.detach_partitions(date(2019, 11, 1))
    user.delete()
    _check_deferred_now()


@pytest.mark.django_db
def test_the_current_month_is_never_detached():
    with pytest.raises(partitions.PartitionError, match="only past months"):
        partitions.detach_partitions(date(2026, 12, 1), today=date(2026, 11, 29))


@pytest.mark.django_db
def test_a_month_detached_by_another_process_is_created_again(actors, no_cache):
    """This process still remembers the month: the insert fails once inside a transaction
    (the caller retries), and the memory is corrected."""
    user, item = actors
    partitions._known.add(date(2005, 6, 1))  # remembered, but no such partition
    with pytest.raises(IntegrityError), transaction.atomic():
        features.events_record([event(user, item, "click", _at(2005, 6))])
    assert features.events_record([event(user, item, "click", _at(2005, 6))]).created == 1


@pytest.mark.django_db(transaction=True)
def test_in_autocommit_a_stale_month_is_created_and_the_insert_retried():
    user, item = UserFactory(), ItemFactory()
    partitions._known.add(date(2006, 6, 1))
    try:
        assert features.events_record([event(user, item, "click", _at(2006, 6))]).created == 1
        assert f"{PARENT}_p2006_06" in _attached()
    finally:
        _drop([f"{PARENT}_p2006_06"])


# --- idempotency and queries -----------------------------------------------------------


@pytest.mark.django_db
def test_duplicates_are_ignored_across_partitions(actors):
    user, item = actors
    batch = [
        event(user, item, "click", _at(year, month))
        for year, month in ((2019, 11), (2024, 2), (2026, 11))
    ]
    assert features.events_record(batch) == features.RecordResult(created=3, duplicates=0)
    assert features.events_record([*batch, batch[0]]) == features.RecordResult(
        created=0, duplicates=4
    )
    assert UserEvent.objects.filter(user=user).count() == 3


@pytest.mark.django_db
def test_queries_by_user_and_time_read_only_their_months(actors):
    user, item = actors
    partitions.ensure_partitions(date(2001, 1, 1), date(2001, 6, 1))
    features.events_record([event(user, item, "click", _at(2001, m)) for m in range(1, 7)])

    one_month = UserEvent.objects.filter(
        user_id=user.id,
        occurred_at__gte=_at(2001, 5, 10),
        occurred_at__lt=datetime(2001, 6, 1, tzinfo=UTC),
    ).explain()
    since = UserEvent.objects.filter(user_id=user.id, occurred_at__gte=_at(2001, 4, 2)).explain()

    assert _months_in_plan(one_month) == {date(2001, 5, 1)}
    months = _months_in_plan(since)
    assert min(months) == date(2001, 4, 1)
    assert {date(2001, 5, 1), date(2001, 6, 1)} <= months


# --- command, task, schedule ---------------------------------------------------------------


@pytest.mark.django_db
def test_command_ensures_detaches_and_lists(capsys, no_cache):
    partitions.ensure_partitions(date(2001, 1, 1), date(2001, 2, 1))

    call_command("partitions", "--ensure-ahead", "5")
    call_command("partitions", "--detach-older-than", "2001-02")
    call_command("partitions", "--list", "--count")
    out = capsys.readouterr().out

    assert "created 2 partition(s)" in out or "created 1 partition(s)" in out
    assert f"detached {PARENT}_p2001_01 -> {PARENT}_d2001_01 (kept, 0 rows)" in out
    assert f"  2001-02  {PARENT}_p2001_02" in out
    assert "detached tables of features_app_userevent: 1" in out
    assert f"  2001-01  {PARENT}_d2001_01" in out


@pytest.mark.django_db
def test_command_rejects_a_bad_month_and_a_future_detach():
    with pytest.raises(CommandError, match="YYYY-MM"):
        call_command("partitions", "--detach-older-than", "2019-13")
    with pytest.raises(CommandError, match="only past months"):
        call_command("partitions", "--detach-older-than", "2999-01")


@pytest.mark.django_db
def test_beat_task_creates_the_months_ahead(no_cache):
    assert tasks.ensure_partitions.apply(args=(6,)).get() >= 2  # migration made 3 ahead
    this_month = partitions.month_start(datetime.now(UTC))
    assert partitions.partition_name(partitions.add_months(this_month, 6)) in _attached()
    entry = settings.CELERY_BEAT_SCHEDULE["features-ensure-partitions"]
    assert entry["task"] == "inbo.features.ensure_partitions"
    assert entry["options"]["expires"] > 0


# --- the way back ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_migration_reverses_to_a_plain_table_and_forward_again(actors):
    user, item = actors
    batch = [event(user, item, "click", _at(2019, 11)), event(user, item, "read", _at(2026, 11))]
    features.events_record(batch)
    before = sorted(UserEvent.objects.values_list("id", "event_id", "occurred_at"))
    _check_deferred_now()

    def relkind() -> str:
        with connection.cursor() as cursor:
            cursor.execute("SELECT relkind FROM pg_class WHERE oid = %s::regclass", [PARENT])
            return cursor.fetchone()[0]

    executor = MigrationExecutor(connection)
    executor.migrate([("features_app", "0002_counters_durable")])
    assert relkind() == "r"
    assert sorted(UserEvent.objects.values_list("id", "event_id", "occurred_at")) == before
    saved = UserEvent.objects.create(
        user=user, item=item, event_type="save", occurred_at=_at(2026, 11)
    )
    assert saved.id == before[-1][0] + 1

    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes("features_app"))
    assert relkind() == "p"
    assert {f"{PARENT}_p2019_11", f"{PARENT}_p2026_11"} <= _attached()
    assert UserEvent.objects.count() == 3
    assert features.events_record([event(user, item, "share", _at(2026, 11))]).created == 1
    assert UserEvent.objects.get(event_type="share").id == before[-1][0] + 2


# --- client events never create a partition (issue 9, point 1) ----------------------------

_DDL = re.compile(r"^\s*(CREATE|ALTER|DROP|LOCK)\b", re.IGNORECASE)


@pytest.fixture
def broker():
    """The test broker's Redis; the partition job's queue is emptied before and after."""
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    client.delete("features")
    yield client
    client.delete("features")
    client.close()


@pytest.fixture
def fresh_requests(monkeypatch):
    """This process has not asked for the partition job lately (the request is throttled)."""
    monkeypatch.setattr(services, "_partitions_requested_at", None)


@pytest.fixture
def no_partition_created(monkeypatch):
    """The request path must never reach the code that creates partitions."""

    def refuse(months):
        raise AssertionError(f"a partition was about to be created for {sorted(months)}")

    monkeypatch.setattr(partitions, "ensure_months", refuse)


def _queued_tasks(broker) -> list[str]:
    return [json.loads(m)["headers"]["task"] for m in broker.lrange("features", 0, -1)]


@pytest.mark.django_db
def test_a_partition_name_and_bounds_are_zero_padded_below_year_1000(actors, no_cache):
    user, item = actors
    ancient = event(user, item, "click", _at(999, 7))

    assert features.events_record([ancient]).created == 1

    assert partitions.partition_name(date(999, 7, 1)) == f"{PARENT}_p0999_07"
    assert _partition_of(ancient.event_id) == f"{PARENT}_p0999_07"
    listed = {p.name: p.month for p in partitions.list_partitions()}
    assert listed[f"{PARENT}_p0999_07"] == date(999, 7, 1)


@pytest.mark.django_db
def test_the_last_month_python_can_hold_gets_its_partition(actors, no_cache):
    user, item = actors
    last = event(user, item, "click", datetime(9999, 12, 31, 23, 59, tzinfo=UTC))

    assert features.events_record([last]).created == 1

    assert _partition_of(last.event_id) == f"{PARENT}_p9999_12"


@pytest.mark.django_db
def test_ensure_ahead_covers_every_month_a_client_may_report(no_cache, settings):
    settings.EVENTS_CLIENT_MAX_AGE_DAYS = 100
    today = date(2031, 5, 10)  # 100 days earlier is 30 January

    created = partitions.ensure_ahead(3, today=today)

    expected = [partitions.partition_name(date(2031, m, 1)) for m in range(1, 9)]
    assert created == expected
    assert set(expected) <= _attached()
    assert partitions.client_window_start(today) == date(2031, 1, 1)


@pytest.mark.django_db
def test_migrate_leaves_a_partition_for_every_month_a_client_may_report():
    now = datetime.now(UTC)
    months = partitions.months_between(partitions.client_window_start(now), now)
    assert {partitions.partition_name(m) for m in months} <= _attached()


@pytest.mark.django_db
def test_missing_months_reads_the_catalog_and_creates_nothing(no_cache):
    partitions.ensure_partitions(_at(2007, 1), _at(2007, 1))
    before = _attached()

    with CaptureQueriesContext(connection) as queries:
        missing = partitions.missing_months([_at(2007, 1), _at(2007, 2)])

    assert missing == {date(2007, 2, 1)}
    assert _attached() == before
    assert not [q["sql"] for q in queries if _DDL.match(q["sql"])]


@pytest.mark.django_db
def test_client_events_of_a_month_without_partition_are_refused_not_created(
    actors, no_cache, no_partition_created, broker, fresh_requests
):
    user, item = actors
    before = _attached()

    with CaptureQueriesContext(connection) as queries, pytest.raises(ServiceUnavailable) as err:
        features.events_store([event(user, item, "click", _at(2008, 3))], create_partitions=False)

    assert isinstance(err.value, partitions.PartitionMissing)
    assert err.value.status_code == 503 and err.value.retry_after > 0
    assert _attached() == before
    assert not UserEvent.objects.filter(user=user).exists()
    assert not [q["sql"] for q in queries if _DDL.match(q["sql"])]
    assert _queued_tasks(broker) == ["inbo.features.ensure_partitions"]


@pytest.mark.django_db
def test_a_burst_of_refused_client_events_queues_the_partition_job_once(
    actors, no_cache, no_partition_created, broker, fresh_requests
):
    user, item = actors
    for _ in range(3):
        with pytest.raises(partitions.PartitionMissing):
            features.events_store(
                [event(user, item, "click", _at(2008, 4))], create_partitions=False
            )
    assert _queued_tasks(broker) == ["inbo.features.ensure_partitions"]


@pytest.mark.django_db
def test_client_events_of_an_existing_month_are_stored_without_ddl(
    actors, no_cache, no_partition_created
):
    user, item = actors
    now = datetime.now(UTC)

    with CaptureQueriesContext(connection) as queries:
        stored = features.events_store([event(user, item, "click", now)], create_partitions=False)

    assert len(stored) == 1
    assert not [q["sql"] for q in queries if _DDL.match(q["sql"])]


@pytest.mark.django_db
def test_a_client_month_detached_meanwhile_is_refused_not_created(
    actors, no_cache, no_partition_created, broker, fresh_requests
):
    """This process still remembers the month, the insert finds no partition: a 503."""
    user, item = actors
    partitions._known.add(date(2005, 7, 1))  # remembered, but no such partition
    with pytest.raises(partitions.PartitionMissing), transaction.atomic():
        features.events_store([event(user, item, "click", _at(2005, 7))], create_partitions=False)
    assert date(2005, 7, 1) not in partitions._known
    assert f"{PARENT}_p2005_07" not in _attached()


# --- idempotency is per user (issue 9, point 12) -------------------------------------------


@pytest.mark.django_db
def test_two_users_may_send_the_same_event_id_at_the_same_moment(actors):
    user, item = actors
    other = UserFactory()
    shared = uuid.uuid4()
    at = _at(2026, 11)

    first = features.events_record([event(user, item, "click", at, event_id=shared)])
    second = features.events_record([event(other, item, "click", at, event_id=shared)])
    again = features.events_record([event(other, item, "click", at, event_id=shared)])

    assert (first.created, second.created, again.duplicates) == (1, 1, 1)
    assert sorted(UserEvent.objects.filter(event_id=shared).values_list("user_id", flat=True)) == (
        sorted([user.id, other.id])
    )


@pytest.mark.django_db
def test_one_batch_may_hold_the_same_event_id_for_two_users(actors):
    user, item = actors
    other = UserFactory()
    shared = uuid.uuid4()
    batch = [
        event(user, item, "click", _at(2026, 11), event_id=shared),
        event(other, item, "click", _at(2026, 11), event_id=shared),
    ]
    assert len(features.events_store(batch)) == 2
