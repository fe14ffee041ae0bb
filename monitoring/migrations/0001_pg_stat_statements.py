"""pg_stat_statements in the application's database, where it can be had.

A migration rather than a step of ``db_report``: every database the app migrates (local,
test, production) gets the extension without a manual step, and the report only reads.
Guarded: where the server does not ship it, or the role may not create it (a managed
PostgreSQL; its administrator then creates it once, docs/OPERATIONS.md "Index discipline"),
the migration goes on with a notice. Created even where the library is not preloaded yet:
harmless (only its view refuses to answer, and ``db_report`` says why) and ready for the
restart that loads it.
"""

from django.db import migrations

CREATE = """
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_stat_statements') THEN
        BEGIN
            CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE 'pg_stat_statements: not allowed to create the extension';
        END;
    END IF;
END
$$;
"""


class Migration(migrations.Migration):
    dependencies: list = []

    operations = [
        # Not dropped on the way back: other tools of the cluster may read it.
        migrations.RunSQL(CREATE, reverse_sql=migrations.RunSQL.noop, elidable=False),
    ]
