"""The Celery app, configured from Django settings under the CELERY_ namespace."""

from __future__ import annotations

import logging.config
import os
from typing import Any

from celery import Celery
from celery.signals import setup_logging, task_postrun, task_prerun, worker_ready, worker_shutdown

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("spool")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@setup_logging.connect
def _log_as_django_does(**_: Any) -> None:
    """One log format for web and worker: Django's LOGGING (text or JSON, with the job id),
    in place of Celery's own set-up, which a receiver of this signal turns off."""
    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)


@worker_ready.connect
def _start_liveness(**_: Any) -> None:
    from django.conf import settings

    from jobs import liveness

    liveness.start(settings.SPOOL_WORKER_HEARTBEAT_FILE, settings.SPOOL_WORKER_HEARTBEAT_SECONDS)


@worker_shutdown.connect
def _stop_liveness(**_: Any) -> None:
    from django.conf import settings

    from jobs import liveness

    liveness.stop(settings.SPOOL_WORKER_HEARTBEAT_FILE)


# The job id on every line a run_job task logs in its own thread. Work the task hands to other
# threads or an event loop must enter jobs.logcontext.job_log_context(job_id) there itself.
@task_prerun.connect
def _bind_job_id(task: Any, args: tuple = (), **_: Any) -> None:
    if task.name == "spool.run_job" and args:
        from jobs.logcontext import bind_job_id

        bind_job_id(args[0])


@task_postrun.connect
def _unbind_job_id(**_: Any) -> None:
    from jobs.logcontext import unbind_job_id

    unbind_job_id()
