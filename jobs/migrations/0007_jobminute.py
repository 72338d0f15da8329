# The per-minute rollup of ended jobs the admin overview reads (jobs/rollup.py), added beside a
# jobs table of millions of rows without holding a lock that stops writes for long:
# - the rollup is a new table; the triggers are created on jobs_job in a moment's lock;
# - jobs that ended before the triggers existed are counted in batches of the (created_at, id)
#   index, each its own short transaction (atomic = False); only the last BACKFILL_DAYS, as the
#   overview reads 24 hours.

from datetime import timedelta

import django.contrib.postgres.fields
import django.db.models.deletion
from django.db import migrations, models

BACKFILL_DAYS = 7


def install(apps, schema_editor):
    from jobs import rollup

    rollup.install(using=schema_editor.connection.alias)


def uninstall(apps, schema_editor):
    from jobs import rollup

    schema_editor.execute(rollup.DROP_SQL)


def backfill(apps, schema_editor):
    from jobs import rollup

    with schema_editor.connection.cursor() as cursor:
        # Jobs ending from now on are the triggers' (installed just before): count only earlier ends.
        cursor.execute("SELECT now()")
        (installed,) = cursor.fetchone()
    rollup.backfill(
        since=installed - timedelta(days=BACKFILL_DAYS),
        before=installed,
        using=schema_editor.connection.alias,
    )


class Migration(migrations.Migration):

    atomic = False

    dependencies = [
        ('jobs', '0006_webhooks'),
    ]

    operations = [
        migrations.CreateModel(
            name='JobMinute',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('minute', models.DateTimeField()),
                ('status', models.CharField(choices=[('queued', 'Queued'), ('running', 'Running'), ('succeeded', 'Succeeded'), ('failed', 'Failed'), ('cancelled', 'Cancelled')], max_length=16)),
                ('code', models.CharField(blank=True, max_length=32)),
                ('jobs', models.PositiveIntegerField()),
                ('ttft_jobs', models.PositiveIntegerField(help_text='Jobs that sent a first chunk.')),
                ('ttft_ms_sum', models.BigIntegerField()),
                ('ttft_buckets', django.contrib.postgres.fields.ArrayField(base_field=models.PositiveIntegerField(), size=None)),
                ('input_tokens', models.BigIntegerField()),
                ('output_tokens', models.BigIntegerField()),
                ('engine', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='jobs.engine')),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('minute', 'engine', 'status', 'code'), name='jobminute_key')],
            },
        ),
        # Each row is rewritten once per job that ends in its minute on its engine: room in its page
        # lets Postgres write the new version there (a HOT update, no index entry) and prune the
        # old one, rather than spreading versions over new pages until autovacuum comes.
        migrations.RunSQL(
            'ALTER TABLE jobs_jobminute SET (fillfactor = 50)',
            'ALTER TABLE jobs_jobminute RESET (fillfactor)',
        ),
        migrations.RunPython(install, uninstall),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
