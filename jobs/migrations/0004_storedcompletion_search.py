# Full-text search of stored completions (jobs/search.py), added to a table of millions of rows
# without holding a lock that stops writes for long:
# - the nullable column needs no table rewrite (a generated column would rewrite the table under
#   an ACCESS EXCLUSIVE lock: measured in docs/DASHBOARD.md), and the trigger fills it from then on;
# - existing rows are filled in batches, each its own short transaction (atomic = False);
# - the GIN index is built CONCURRENTLY.

from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.operations import AddIndexConcurrently
from django.contrib.postgres.search import SearchVectorField
from django.db import migrations


def install(apps, schema_editor):
    from jobs import search

    search.install(using=schema_editor.connection.alias)


def uninstall(apps, schema_editor):
    from jobs import search

    schema_editor.execute(search.DROP_SQL)


def backfill(apps, schema_editor):
    from jobs import search

    search.backfill(using=schema_editor.connection.alias)


class Migration(migrations.Migration):

    atomic = False

    dependencies = [
        ('jobs', '0003_created_indexes'),
    ]

    operations = [
        migrations.AddField(
            model_name='storedcompletion',
            name='search',
            field=SearchVectorField(editable=False, null=True),
        ),
        # The planner's estimate of how many rows a word matches decides between walking the
        # created_at index newest first (common words) and the GIN index (rare ones). With the
        # default statistics only the 1,000 commonest lexemes have a frequency, and a word past
        # them (18,902 matches of 'Antium' at 1M rows) was guessed at 4,996: a bitmap read of
        # every match, 160-480 ms instead of 60-110 ms (docs/DASHBOARD.md).
        migrations.RunSQL(
            'ALTER TABLE jobs_storedcompletion ALTER COLUMN search SET STATISTICS 1000',
            migrations.RunSQL.noop,
        ),
        migrations.RunPython(install, uninstall),
        migrations.RunPython(backfill, migrations.RunPython.noop),
        AddIndexConcurrently(
            model_name='storedcompletion',
            index=GinIndex(fields=['search'], name='storedcmpl_search'),
        ),
    ]
