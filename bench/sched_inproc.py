"""What no face takes yet (a priority class, an Idempotency-Key), done in this process through
Spool's own services.job_create on the benchmark's database, as a face would; and the scheduler's
view of an engine (admission.status). Django is set up here once, on the stack's environment."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.sched_jobs import PROMPT, Created
from bench.sched_stack import SchedStack

_ready: list[bool] = []


def setup(stack: SchedStack) -> None:
    if _ready:
        return
    os.environ.update(stack.env())
    import django

    django.setup()
    _ready.append(True)


def _closing(work: Callable[[], Any]) -> Any:
    """work() in a thread of a pool, its Django connection closed after (the pool's threads outlive it)."""
    from django.db import connection

    try:
        return work()
    finally:
        connection.close()


def _creator(owner: str, engine: str, **placement: Any) -> Callable[[], Created]:
    """One more job of this owner on this engine per call, made by services.job_create with
    Placement(**placement), as a face makes it from its request."""
    from django.contrib.auth import get_user_model

    from engine.types import GenerationRequest
    from jobs import services
    from jobs.models import Engine
    from jobs.placement import Placement

    user = get_user_model().objects.get(username=owner)
    row = Engine.objects.get(name=engine)
    chosen = Placement(**placement)

    def make() -> Created:
        job = services.job_create(
            owner=user,
            engine=row,
            request=GenerationRequest(messages=PROMPT),
            options={},
            face="jobs",
            placement=chosen,
        )
        return Created(str(job.pk), 0)

    return make


def create_many(owner: str, engine: str, n: int, threads: int = 4, **placement: Any) -> list[Created]:
    """n jobs, from `threads` threads at once."""
    make = _closing(lambda: _creator(owner, engine, **placement))

    def share(count: int) -> list[Created]:
        return _closing(lambda: [make() for _ in range(count)])

    counts = [n // threads + (1 if i < n % threads else 0) for i in range(threads)]
    with ThreadPoolExecutor(threads) as pool:
        return [created for part in pool.map(share, counts) for created in part]


def create_spread(owner: str, engine: str, n: int, seconds: float, **placement: Any) -> list[Created]:
    """n jobs, one every seconds/n (clients arriving), from one thread."""
    make = _closing(lambda: _creator(owner, engine, **placement))
    start = time.monotonic()

    def paced() -> list[Created]:
        made = []
        for i in range(n):
            time.sleep(max(0.0, start + i * seconds / n - time.monotonic()))
            made.append(make())
        return made

    return list(_closing(paced))


def create_at_once(owner: str, engine: str, callers: int, idempotency_key: str) -> list[Created]:
    """`callers` threads released together, each creating the same job with one idempotency key."""
    from django.contrib.auth import get_user_model

    from engine.types import GenerationRequest
    from jobs import services
    from jobs.models import Engine
    from jobs.placement import Placement

    user = get_user_model().objects.get(username=owner)
    row = Engine.objects.get(name=engine)
    gate = threading.Barrier(callers)
    results: list[Created] = [Created("", 0, "not run")] * callers

    def one(i: int) -> None:
        def make() -> Created:
            gate.wait(timeout=60)
            try:
                job = services.job_create(
                    owner=user,
                    engine=row,
                    request=GenerationRequest(messages=PROMPT),
                    options={},
                    face="jobs",
                    placement=Placement(idempotency_key=idempotency_key),
                )
            except Exception as exc:  # counted and reported: a conflict or a deadlock is a finding
                return Created("", 0, f"{type(exc).__name__}: {exc}"[:200])
            return Created(str(job.pk), 0)

        results[i] = _closing(make)

    workers = [threading.Thread(target=one, args=(i,)) for i in range(callers)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    return results


def running(engine: str) -> tuple[int, dict[str, int]]:
    """(slots in use, waiting jobs per class) as the scheduler sees the engine now."""
    from jobs.models import Engine
    from jobs.scheduling import admission

    status = _closing(lambda: admission.status(Engine.objects.get(name=engine)))
    return status.running, status.waiting


def cancel_unfinished(engine: str) -> int:
    """End the engine's jobs still queued or running (a scenario past its time bound)."""
    from jobs import services
    from jobs.models import Job

    def work() -> int:
        jobs = list(
            Job.objects.select_related("engine").filter(
                engine__name=engine, status__in=(Job.Status.QUEUED, Job.Status.RUNNING)
            )
        )
        for job in jobs:
            services.job_cancel(job.pk)
        return len(jobs)

    return int(_closing(work))


def engine_id(engine: str) -> str:
    from jobs.models import Engine

    return str(_closing(lambda: Engine.objects.get(name=engine).pk))


def engine(stack: SchedStack, name: str, model: str, max_concurrency: int | None) -> str:
    """An openai engine on the fake upstream (services.engine_upsert, as manage.py spool_engine
    makes one, without a process's start-up); max_concurrency None: no limit."""
    from jobs import services

    def make() -> str:
        row = services.engine_upsert(
            name=name, kind="openai", config={"base_url": f"{stack.upstream}/v1", "model": model}
        )
        row.max_concurrency = max_concurrency
        row.save(update_fields=["max_concurrency"])
        return row.name

    return str(_closing(make))
