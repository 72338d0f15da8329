"""An engine's deployments as its queue sees them: which are active (read once per
CACHE_SECONDS per process: every admission names them), the engine object each job runs on,
and the engine row's `has_deployments`, kept by signals so the row alone says whether its jobs
go through the queue."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import Exists, OuterRef

from engine.registry import cached_engine
from jobs.models import Deployment, Engine
from jobs.ttlcache import TtlCache

CACHE_SECONDS = 2.0
_active: TtlCache[list[Deployment]] = TtlCache()


def active(engine: Engine) -> list[Deployment]:
    if not engine.has_deployments:
        return []
    key = str(engine.pk)
    found = _active.get(key)
    if found is None:
        found = list(Deployment.objects.filter(engine_id=engine.pk, is_active=True).select_related("engine"))
        _active.put(key, found, CACHE_SECONDS)
    return found


def spec(engine: Engine) -> str:
    """What the admission script reads: "id weight max" per active deployment."""
    return " ".join(f"{d.pk} {d.weight or 1} {d.max_concurrency or 0}" for d in active(engine))


def built(engine: Engine, deployment_id: str) -> Any:
    """The engine object for a job placed on that deployment; the engine's own when it has none
    (or the deployment went away: the engine's own URL then serves)."""
    deployment = next((d for d in active(engine) if str(d.pk) == deployment_id), None)
    if deployment is None:
        return engine.built()
    # The upstream's own retries are few: another deployment is the better retry.
    config = {"max_retries": 1, **deployment.engine_config()}
    return cached_engine(f"{engine.pk}/{deployment.pk}", engine.kind, config)


def cooldown_seconds() -> float:
    return settings.SPOOL.scheduling.deployment_cooldown_seconds


def refresh_flag(instance: Deployment) -> None:
    Engine.objects.filter(pk=instance.engine_id).update(
        has_deployments=Exists(Deployment.objects.filter(engine=OuterRef("pk"), is_active=True))
    )
    _active.clear()
