"""Each worker looks now and then for batches whose chain of steps went silent, and sends them
again (jobs.batches.runner.resend_stale)."""

from __future__ import annotations

import logging
import threading

from django.conf import settings

from jobs import queueing
from jobs.batches.runner import resend_stale
from jobs.periodic import start_periodic

log = logging.getLogger(__name__)


def tick() -> None:
    resend_stale(queueing.send_batch)


def start_background_batch_tick() -> threading.Thread:
    return start_periodic("spool-batches", tick, lambda: max(settings.SPOOL.batches.stale_seconds / 4, 1.0))
