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
        migrations.RunPython(install, uninstall),
        migrations.RunPython(backfill, migrations.RunPython.noop),
        AddIndexConcurrently(
            model_name='storedcompletion',
            index=GinIndex(fields=['search'], name='storedcmpl_search'),
        ),
    ]
