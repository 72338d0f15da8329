"""How a request asks its job to be queued: its priority class, whether a client waits on it,
its deadlines, its idempotency key. Every face builds a Placement from its own parameters and
headers; job_create turns it into the job's options (`queue_options`)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings

INTERACTIVE = "interactive"
DEFAULT = "default"
BATCH = "batch"
# Highest first: a waiting job of a class starts before any of the classes after it.
CLASSES = (INTERACTIVE, DEFAULT, BATCH)

# OpenAI's service_tier -> a class. "auto" and "default" leave the face's own default; "fast" is
# OpenAI's alias of "priority", "ultrafast" the Responses API's faster still.
SERVICE_TIERS = {
    "priority": INTERACTIVE,
    "fast": INTERACTIVE,
    "ultrafast": INTERACTIVE,
    "flex": BATCH,
    "default": None,
    "auto": None,
    "scale": None,
}
# The longest a timeout may be: a job waits or runs at most this long (30 days).
MAX_SECONDS = 30 * 86400.0


class InvalidPlacement(ValueError):
    """A priority or timeout the request gave that is not one; each face answers 400 with `param`."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True, slots=True)
class Placement:
    priority: str | None = None  # asked for; None: the face's default (see `priority_class`)
    waiting: bool = False  # a client streams the answer or waits for it
    queue_timeout: float | None = None  # seconds it may wait to start; None: the setting
    run_timeout: float | None = None  # seconds it may run, within SPOOL_JOB_MAX_SECONDS
    idempotency_key: str | None = None
    cap: str = INTERACTIVE  # the highest class the caller's key may ask for
    weight: int = 1  # the caller's share against other owners (the key's weight)
    # What the client sent, when the job's request is built from more than that (a SEMOSS call
    # adds its room's history, which grows once the first call ends): an idempotency key's
    # fingerprint is taken over this instead, so a retry after the first call ended is a replay.
    basis: Any = None


def check_class(value: Any, param: str) -> str:
    if value not in CLASSES:
        raise InvalidPlacement(f"'{param}' must be one of {', '.join(CLASSES)}; got {value!r}.", param)
    return str(value)


def check_seconds(value: Any, param: str) -> float | None:
    """A timeout given as a number of seconds (or a numeric string, as headers carry it)."""
    if value is None or value == "":
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = -1.0
    if isinstance(value, bool) or not 0 < seconds <= MAX_SECONDS:
        raise InvalidPlacement(
            f"'{param}' must be a number of seconds above 0 and at most {MAX_SECONDS:g}; got {value!r}.",
            param,
        )
    return seconds


def priority_class(placement: Placement) -> str:
    """The class the job runs at: what was asked for, else interactive for a request a client
    waits on and default for background work; never above the key's cap."""
    asked = placement.priority or (INTERACTIVE if placement.waiting else DEFAULT)
    return max(asked, placement.cap, key=CLASSES.index)


def queue_options(placement: Placement, now: float | None = None) -> dict[str, Any]:
    """What the job's options keep of its placement: the class it runs at (and the one asked
    for when the key's cap lowered it), when it expires if it has not started (epoch seconds),
    and how long it may run."""
    now = time.time() if now is None else now
    runs_at = priority_class(placement)
    queue_timeout = placement.queue_timeout or settings.SPOOL.scheduling.queue_timeout_seconds
    options: dict[str, Any] = {"priority": runs_at}
    if placement.priority and placement.priority != runs_at:
        options["priority_asked"] = placement.priority
    if queue_timeout:
        options["queue_deadline"] = round(now + queue_timeout, 3)
    if placement.run_timeout:
        options["run_timeout"] = min(placement.run_timeout, settings.SPOOL.worker.job_max_seconds)
    return options


def run_seconds(options: dict[str, Any]) -> float:
    return float(options.get("run_timeout") or settings.SPOOL.worker.job_max_seconds)
