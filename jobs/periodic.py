"""Periodic work in each worker process: a daemon thread that runs one job now and then every
so often, logging (never dying of) what goes wrong. The sweeper and the retention purge use it."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


def start_periodic(name: str, work: Callable[[], None], every: Callable[[], float]) -> threading.Thread:
    """Run `work` at once (finding what piled up while no worker ran), then every `every()`
    seconds, read each time so a test or a changed setting takes effect."""

    def loop() -> None:
        from django.db import close_old_connections

        while True:
            try:
                close_old_connections()
                work()
            except Exception:
                log.exception("%s failed; trying again later", name)
            finally:
                # Back to the pool: nothing is held while this thread sleeps.
                close_old_connections()
            time.sleep(every())

    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()
    return thread
