"""Erasure of one user: everything Spool keeps of them (API keys, webhook endpoints and their
deliveries, stored completions and responses, jobs with their chunk logs in Postgres and Redis,
rooms with their messages, Batch API batches and files with their bytes), then the user. The
large sets go in the batches retention deletes with (jobs/retention.py), so erasing a user with a
million jobs holds no long lock either."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.contrib.auth.models import User
from django.db.models import QuerySet

from jobs import chunklog, retention
from jobs.batches import retention as batch_retention
from jobs.batches.models import Batch, File
from jobs.models import ApiKey, Job, Room, RoomMessage, StoredCompletion, StoredResponse
from jobs.webhooks.models import WebhookDelivery, WebhookEndpoint

# How long erasure waits for the user's running jobs to stop once asked to. A worker holds every
# chunk of a running job and writes its log back when it finds it gone, so the Redis keys are
# deleted once the job has stopped, not while it runs.
STOP_WAIT_SECONDS = 30.0


def counts(user: User) -> dict[str, int]:
    """What erase() would delete, by kind."""
    return {
        "api keys": ApiKey.objects.filter(owner=user).count(),
        "webhook endpoints": WebhookEndpoint.objects.filter(owner=user).count(),
        "webhook deliveries": WebhookDelivery.objects.filter(endpoint__owner=user).count(),
        "stored completions": StoredCompletion.objects.filter(owner=user).count(),
        "stored responses": StoredResponse.objects.filter(owner=user).count(),
        "jobs": Job.objects.filter(owner=user).count(),
        "rooms": Room.objects.filter(owner=user).count(),
        "room messages": RoomMessage.objects.filter(room__owner=user).count(),
        "batches": Batch.objects.filter(owner=user).count(),
        "files": File.objects.filter(owner=user).count(),
    }


def _stop_running(user: User, wait: float, sleep: Callable[[float], None], clock: Callable[[], float]) -> int:
    """Ask the user's unfinished jobs to stop and wait (up to `wait` s) until none runs; how many
    still ran when the wait ended (their logs expire with the log's TTL)."""
    unfinished = Job.objects.filter(owner=user, status__in=[Job.Status.QUEUED, Job.Status.RUNNING])
    for job_id in unfinished.values_list("id", flat=True):
        chunklog.request_cancel(str(job_id))
    deadline = clock() + wait
    while True:
        running = unfinished.filter(status=Job.Status.RUNNING).count()
        if not running or clock() >= deadline:
            return running
        sleep(0.2)


def _delete(rows: QuerySet[Any]) -> int:
    """Django's delete, for the small sets; how many rows of the model itself went."""
    _, by_model = rows.delete()
    return by_model.get(rows.model._meta.label, 0)


def erase(
    user: User,
    *,
    batch: int = retention.BATCH,
    observe: retention.Observer | None = None,
    wait: float = STOP_WAIT_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Delete everything of `user`, then the user; how many of each went."""
    owner = [user.pk]
    done: dict[str, Any] = {}
    # First the keys: no new job or endpoint once the web's key cache has forgotten them.
    done["api keys"] = _delete(ApiKey.objects.filter(owner=user))
    done["jobs still running"] = _stop_running(user, wait, sleep, clock)
    done["webhook deliveries"] = 0
    for endpoint_id in WebhookEndpoint.objects.filter(owner=user).values_list("id", flat=True):
        for ids in retention.windows(
            WebhookDelivery._meta.db_table, where="t.endpoint_id = %s", params=[endpoint_id], batch=batch
        ):
            done["webhook deliveries"] += retention.delete_deliveries(ids, observe)
    done["webhook endpoints"] = _delete(WebhookEndpoint.objects.filter(owner=user))
    for model in (StoredCompletion, StoredResponse):
        table = model._meta.db_table
        done[f"{model._meta.verbose_name}s"] = sum(
            retention.delete_rows(table, ids, observe)
            for ids in retention.windows(table, where="t.owner_id = %s", params=owner, batch=batch)
        )
    done["jobs"] = sum(
        retention.delete_jobs(ids, observe)
        for ids in retention.windows(retention.JOBS, where="t.owner_id = %s", params=owner, batch=batch)
    )
    done["rooms"] = sum(
        retention.delete_rooms(ids, observe)
        for ids in retention.windows(Room._meta.db_table, where="t.owner_id = %s", params=owner, batch=batch)
    )
    done.update(
        batch_retention.erase(
            user.pk, windows=retention.windows, execute=retention.observed(observe), batch=batch
        )
    )
    # What is left is small (the admin's log entries of this user, say): Django's cascade.
    user.delete()
    done["user"] = 1
    return done
