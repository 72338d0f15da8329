# Phrases found by an index that knows which words stand side by side (jobs/search.py, PAIRS_SQL):
# the function first, then its GIN index, built CONCURRENTLY so writes go on (a plain build took
# 10.5 minutes at 1,000,000 rows on a loaded 2-core machine, 282 MB: docs/DASHBOARD.md).

from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations
from django.db.models import F

from jobs.search import Pairs


def install(apps, schema_editor):
    from jobs import search

    schema_editor.execute(search.PAIRS_SQL)


def uninstall(apps, schema_editor):
    from jobs import search

    schema_editor.execute(search.PAIRS_DROP_SQL)


class Migration(migrations.Migration):

    atomic = False

    dependencies = [
        ('jobs', '0008_key_lifecycle'),
    ]

    operations = [
        migrations.RunPython(install, uninstall),
        AddIndexConcurrently(
            model_name='storedcompletion',
            index=GinIndex(Pairs(F('search')), name='storedcmpl_search_pairs'),
        ),
    ]
