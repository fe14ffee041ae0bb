"""pg_stat_statements in the application's database, where it can be had.

A migration rather than a step of ``db_report``: every database the app migrates (local,
test, production) gets the extension without a manual step, and the report only reads.
Guarded: the library must be preloaded (``shared_preload_libraries``; the view errors
otherwise) and the role allowed to create it. A managed PostgreSQL whose role may not
(the extension is then created once by its administrator, docs/OPERATIONS.md "Index
discipline") migrates all the same, with a notice.
"""

from django.db import migrations

CREATE = """
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_stat_statements')
       AND 'pg_stat_statements' = ANY(
           string_to_array(replace(current_setting('shared_preload_libraries'), ' ', ''), ','))
    THEN
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
