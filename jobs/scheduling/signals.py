"""What keeps an engine's queue in step with its row: a deployment added, changed or removed sets
the engine's `has_deployments`; an engine saved (its limits edited in the admin or by
`manage.py spool_engine`) admits what a raised limit lets through at once, and an engine left
without any limit sends its waiting jobs to the workers."""

from __future__ import annotations

import logging
from typing import Any

import redis
from django.db import transaction
from django.db.models.signals import post_delete, post_save

from jobs.models import Deployment, Engine
from jobs.scheduling import admission, deployments

log = logging.getLogger(__name__)


def _tell_queue(engine_id: Any) -> None:
    engine = Engine.objects.filter(pk=engine_id).first()
    if engine is None:  # deleted with its deployments
        return
    try:
        admission.limits_changed(engine)
    except redis.RedisError as exc:
        # The queue catches up without it: the sweeper's next tick admits, and finds the jobs
        # of an engine without limits that nobody sent.
        log.warning("engine %s changed, but its queue could not be told (%s)", engine.name, exc)


def _engine_saved(sender: type, instance: Engine, created: bool, **_: Any) -> None:
    if not created:
        transaction.on_commit(lambda: _tell_queue(instance.pk))


def _deployment_changed(sender: type, instance: Deployment, **_: Any) -> None:
    deployments.refresh_flag(instance)
    transaction.on_commit(lambda: _tell_queue(instance.engine_id))


post_save.connect(_engine_saved, sender=Engine, dispatch_uid="spool-engine-saved")
post_save.connect(_deployment_changed, sender=Deployment, dispatch_uid="spool-deployment-saved")
post_delete.connect(_deployment_changed, sender=Deployment, dispatch_uid="spool-deployment-deleted")
