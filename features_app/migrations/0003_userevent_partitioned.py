"""UserEvent becomes a table partitioned by RANGE (occurred_at), one partition per UTC month.

PostgreSQL cannot turn a plain table into a partitioned one in place, so the migration
builds the partitioned table next to the old one, creates a partition for every month that
holds events and for this month and the next three, moves the rows, drops the old table and only then
builds the keys and indexes (one bulk build per partition instead of row-by-row upkeep).
It holds an ACCESS EXCLUSIVE lock on the event log for its whole run: plan a short
maintenance window on a large log.

* Primary key ``(id, occurred_at)``: a partitioned table's unique keys must contain the
  partition key. Django keeps ``id`` as its primary key in the model state.
* ``id`` keeps counting where it was: PostgreSQL 15 has no identity columns on partitioned
  tables, so a plain sequence (owned by the column) takes over, starting after the old
  identity sequence's last value and the highest id.
* Foreign keys to ``auth_user`` (the default user model, ADR 0008) and ``reading_app_item``
  keep Django's names and stay DEFERRABLE INITIALLY DEFERRED (Django emulates the CASCADE
  in Python). The single-column foreign-key indexes are not rebuilt: ``(user_id,
  occurred_at)`` and ``(item_id, occurred_at)`` serve the same lookups (state: ``db_index=
  False``).
* Partition names ``features_app_userevent_pYYYY_MM`` and bounds ``[month start, next month
  start)`` in UTC are the convention of ``features_app.partitions``, which creates later
  months (beat task ``inbo.features.ensure_partitions``, and on demand when events of a
  new month are stored).

The reverse builds a plain table again from every attached partition. Tables detached with
``manage.py partitions --detach-older-than`` are left as they are.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

TABLE = "features_app_userevent"
COLUMNS = "id, event_type, occurred_at, received_at, event_id, source, context, item_id, user_id"
FK_USER = "features_app_userevent_user_id_e13ac8b1_fk_auth_user_id"
FK_ITEM = "features_app_userevent_item_id_efac3fa7_fk_reading_app_item_id"
# The single-column foreign-key indexes of migration 0001, rebuilt only by the reverse.
FK_USER_INDEX = "features_app_userevent_user_id_e13ac8b1"
FK_ITEM_INDEX = "features_app_userevent_item_id_efac3fa7"


def _columns(id_definition: str) -> str:
    return f"""(
    id bigint NOT NULL {id_definition},
    event_type varchar(16) NOT NULL,
    occurred_at timestamp with time zone NOT NULL,
    received_at timestamp with time zone NOT NULL,
    event_id uuid NOT NULL,
    source varchar(32) NOT NULL,
    context jsonb NOT NULL,
    item_id bigint NOT NULL,
    user_id integer NOT NULL
)"""


_KEYS_AND_FOREIGN_KEYS = [
    f"ALTER TABLE {TABLE} ADD CONSTRAINT user_event_idempotency UNIQUE (event_id, occurred_at)",
    f"CREATE INDEX user_event_user_time_idx ON {TABLE} (user_id, occurred_at)",
    f"CREATE INDEX user_event_item_time_idx ON {TABLE} (item_id, occurred_at)",
    f"""ALTER TABLE {TABLE} ADD CONSTRAINT {FK_USER} FOREIGN KEY (user_id)
        REFERENCES auth_user (id) DEFERRABLE INITIALLY DEFERRED""",
    f"""ALTER TABLE {TABLE} ADD CONSTRAINT {FK_ITEM} FOREIGN KEY (item_id)
        REFERENCES reading_app_item (id) DEFERRABLE INITIALLY DEFERRED""",
]

FORWARD = [
    f"LOCK TABLE {TABLE} IN ACCESS EXCLUSIVE MODE",
    f"ALTER TABLE {TABLE} RENAME TO {TABLE}_unpartitioned",
    f"CREATE TABLE {TABLE} {_columns('')} PARTITION BY RANGE (occurred_at)",
    # A partition for every UTC month that holds events, and for this month and the next
    # three. Months in between are created when events for them arrive (gaps cost nothing,
    # while every empty partition is one more table for the planner to consider). No
    # DEFAULT partition: see features_app/partitions.py.
    f"""
DO $$
DECLARE
    this_month date := date_trunc('month', now() AT TIME ZONE 'UTC')::date;
    m date;
BEGIN
    FOR m IN
        SELECT DISTINCT date_trunc('month', occurred_at AT TIME ZONE 'UTC')::date
          FROM {TABLE}_unpartitioned
        UNION
        SELECT (this_month + make_interval(months => n))::date
          FROM generate_series(0, 3) AS n
        ORDER BY 1
    LOOP
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF {TABLE} FOR VALUES FROM (%L) TO (%L)',
            '{TABLE}_p' || to_char(m, 'YYYY_MM'),
            to_char(m, 'YYYY-MM-DD') || ' 00:00:00+00',
            to_char((m + interval '1 month')::date, 'YYYY-MM-DD') || ' 00:00:00+00'
        );
    END LOOP;
END $$""",
    f"INSERT INTO {TABLE} ({COLUMNS}) SELECT {COLUMNS} FROM {TABLE}_unpartitioned",
    # The old identity sequence goes with the old table: note where it was first.
    f"""
DO $$
DECLARE
    next_id bigint;
BEGIN
    SELECT greatest(
               coalesce(max(id), 0),
               coalesce(pg_sequence_last_value(
                   pg_get_serial_sequence('{TABLE}_unpartitioned', 'id')::regclass), 0)
           ) + 1
      INTO next_id
      FROM {TABLE}_unpartitioned;
    DROP TABLE {TABLE}_unpartitioned;
    EXECUTE format('CREATE SEQUENCE {TABLE}_id_seq AS bigint START WITH %s', next_id);
END $$""",
    f"ALTER TABLE {TABLE} ALTER COLUMN id SET DEFAULT nextval('{TABLE}_id_seq')",
    f"ALTER SEQUENCE {TABLE}_id_seq OWNED BY {TABLE}.id",
    f"ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_pkey PRIMARY KEY (id, occurred_at)",
    *_KEYS_AND_FOREIGN_KEYS,
]

REVERSE = [
    f"LOCK TABLE {TABLE} IN ACCESS EXCLUSIVE MODE",
    f"ALTER TABLE {TABLE} RENAME TO {TABLE}_partitioned",
    f"ALTER SEQUENCE {TABLE}_id_seq RENAME TO {TABLE}_partitioned_id_seq",
    f"CREATE TABLE {TABLE} {_columns('GENERATED BY DEFAULT AS IDENTITY')}",
    f"INSERT INTO {TABLE} ({COLUMNS}) SELECT {COLUMNS} FROM {TABLE}_partitioned",
    f"""
DO $$
DECLARE
    last_id bigint;
BEGIN
    SELECT greatest(
               coalesce(max(id), 0),
               coalesce(pg_sequence_last_value('{TABLE}_partitioned_id_seq'::regclass), 0)
           )
      INTO last_id
      FROM {TABLE}_partitioned;
    IF last_id > 0 THEN
        PERFORM setval(pg_get_serial_sequence('{TABLE}', 'id'), last_id);
    END IF;
    DROP TABLE {TABLE}_partitioned;
END $$""",
    f"ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_pkey PRIMARY KEY (id)",
    f"CREATE INDEX {FK_USER_INDEX} ON {TABLE} (user_id)",
    f"CREATE INDEX {FK_ITEM_INDEX} ON {TABLE} (item_id)",
    *_KEYS_AND_FOREIGN_KEYS,
]


class Migration(migrations.Migration):

    dependencies = [
        ("features_app", "0002_counters_durable"),
        ("reading_app", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunSQL(sql=FORWARD, reverse_sql=REVERSE)],
            state_operations=[
                migrations.AlterField(
                    model_name="userevent",
                    name="item",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="events",
                        to="reading_app.item",
                    ),
                ),
                migrations.AlterField(
                    model_name="userevent",
                    name="user",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="events",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
        ),
    ]
