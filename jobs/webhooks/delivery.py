"""One attempt at a delivery (run by the `spool.deliver_webhook` task), its record, and what comes
after it: the next attempt with backoff and jitter, giving up after about a day, and disabling
an endpoint that has failed for that long.

An attempt is taken by a row-count claim (attempt_count n-1 -> n), so a task message delivered
twice, or sent again by the sweeper, makes one attempt, never two.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
import orjson
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from engine.retry import retry_after_seconds
from jobs import queueing
from jobs.webhooks import addresses, secrets, signing, transport
from jobs.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

log = logging.getLogger(__name__)

# A pending delivery whose next attempt is this late has lost its task message (a broker that
# restarted empty): the sweeper sends it again.
OVERDUE_SECONDS = 60.0

_client: httpx.Client | None = None


def timeout() -> httpx.Timeout:
    return httpx.Timeout(
        settings.SPOOL.webhooks.read_timeout_seconds, connect=settings.SPOOL.webhooks.connect_timeout_seconds
    )


def client() -> httpx.Client:
    """One connection pool per process (threads share it); each connection goes to an address
    checked as it was resolved (jobs.webhooks.transport)."""
    global _client
    if _client is None:
        _client = transport.checked_client(timeout=timeout())
    return _client


def _enqueue(delivery_id: str, number: int, countdown: float = 0.0) -> None:
    queueing.send_webhook(delivery_id, number, countdown)


def send_first_attempts(delivery_ids: list[str]) -> None:
    for delivery_id in delivery_ids:
        _enqueue(delivery_id, 1)


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    latency_ms: int | None
    error: str
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def _signing_secrets(endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    found = [secrets.decrypt(endpoint.secret_encrypted)]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret_encrypted and expires is not None and expires > now:
        found.append(secrets.decrypt(endpoint.previous_secret_encrypted))
    return found


def _post(delivery: WebhookDelivery, endpoint: WebhookEndpoint, http: httpx.Client) -> Outcome:
    body = orjson.dumps(delivery.payload)
    headers = signing.headers(
        secrets=_signing_secrets(endpoint, timezone.now()),
        message_id=delivery.event_id,
        timestamp=int(time.time()),
        body=body,
    )
    headers["user-agent"] = "Spool-Webhooks/1"
    started = time.monotonic()
    try:
        answer = http.post(endpoint.url, content=body, headers=headers)
    except addresses.RefusedAddress as exc:  # from the connection: the host resolves somewhere forbidden
        return Outcome(None, None, str(exc))
    except httpx.TimeoutException as exc:
        return Outcome(None, _ms(started), f"timed out ({type(exc).__name__})")
    except httpx.HTTPError as exc:
        return Outcome(None, _ms(started), f"{type(exc).__name__}: {exc}")
    if 200 <= answer.status_code < 300:
        return Outcome(answer.status_code, _ms(started), "")
    return Outcome(
        answer.status_code,
        _ms(started),
        f"answered {answer.status_code}",
        retry_after_seconds(answer.headers.get("retry-after")),
    )


def _ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def backoff_seconds(attempt: int, rng: random.Random | None = None) -> float:
    """The wait after failed attempt `attempt`: BACKOFF doubling up to BACKOFF_MAX, drawn from
    the upper half of that (jitter), so receivers that failed together are not retried together.
    Not Celery's get_exponential_backoff_interval: it counts whole seconds (the tests wait
    fractions) and its only jitter draws from 0, which would retry a failed receiver at once."""
    ceiling = min(
        settings.SPOOL.webhooks.backoff_seconds * 2 ** (attempt - 1),
        settings.SPOOL.webhooks.backoff_max_seconds,
    )
    return (rng or random).uniform(ceiling / 2, ceiling)


def attempt(*, delivery_id: str, number: int, http: httpx.Client | None = None) -> None:
    """Make attempt `number` of the delivery, unless another task made it already; `http` is the
    process's client unless given."""
    now = timezone.now()
    # While it runs, the attempt is not overdue: no sweeper sends it again.
    busy_until = now + timedelta(
        seconds=settings.SPOOL.webhooks.connect_timeout_seconds
        + settings.SPOOL.webhooks.read_timeout_seconds
        + OVERDUE_SECONDS
    )
    claimed = WebhookDelivery.objects.filter(
        id=delivery_id, status=WebhookDelivery.Status.PENDING, attempt_count=number - 1
    ).update(attempt_count=number, next_attempt_at=busy_until)
    if not claimed:
        log.info("webhook delivery %s: attempt %d already made or not wanted; skipped", delivery_id, number)
        return
    delivery = WebhookDelivery.objects.select_related("endpoint").get(id=delivery_id)
    endpoint = delivery.endpoint
    if not endpoint.enabled:
        outcome = Outcome(None, None, f"The endpoint is disabled: {endpoint.disabled_reason}")
        _record(delivery, number, now, outcome, give_up=True)
        return
    try:
        outcome = _post(delivery, endpoint, http or client())
    except Exception as exc:
        # Recorded and retried like a failed answer (a secret encrypted under a secret key no
        # longer configured, say), instead of a task that fails until the sweeper sends it again.
        log.exception("webhook delivery %s: attempt %d failed", delivery_id, number)
        outcome = Outcome(None, None, f"{type(exc).__name__}: {exc}")
    if outcome.ok:
        _record(delivery, number, now, outcome, give_up=False)
        WebhookEndpoint.objects.filter(id=endpoint.pk).exclude(failing_since=None).update(failing_since=None)
        return
    # Counted from the start of this day of retries: a "send again" starts the backoff afresh.
    tries = delivery.attempts.filter(started_at__gte=delivery.retrying_since).count() + 1
    wait = max(
        backoff_seconds(tries), min(outcome.retry_after or 0.0, settings.SPOOL.webhooks.backoff_max_seconds)
    )
    due = timezone.now() + timedelta(seconds=wait)
    window_ends = delivery.retrying_since + timedelta(seconds=settings.SPOOL.webhooks.retry_for_seconds)
    give_up = due > window_ends
    _record(delivery, number, now, outcome, give_up=give_up, due=due)
    _endpoint_failed(endpoint, outcome)
    if not give_up:
        _enqueue(delivery_id, number + 1, countdown=wait)  # after _record's commit


@transaction.atomic
def _record(
    delivery: WebhookDelivery,
    number: int,
    started_at: datetime,
    outcome: Outcome,
    *,
    give_up: bool,
    due: datetime | None = None,
) -> None:
    WebhookAttempt.objects.create(
        delivery=delivery,
        number=number,
        started_at=started_at,
        status_code=outcome.status_code,
        latency_ms=outcome.latency_ms,
        error=outcome.error,
    )
    if outcome.ok or give_up:
        status = WebhookDelivery.Status.DELIVERED if outcome.ok else WebhookDelivery.Status.FAILED
        changes = {"status": status, "finished_at": timezone.now(), "next_attempt_at": None}
    else:
        changes = {"next_attempt_at": due}
    # Guarded by the attempt number: a "send again" meanwhile has taken the delivery over.
    WebhookDelivery.objects.filter(id=delivery.pk, attempt_count=number).update(**changes)


def _endpoint_failed(endpoint: WebhookEndpoint, outcome: Outcome) -> None:
    now = timezone.now()
    WebhookEndpoint.objects.filter(id=endpoint.pk, failing_since=None).update(failing_since=now)
    since = endpoint.failing_since or now
    if (now - since).total_seconds() < settings.SPOOL.webhooks.disable_after_seconds:
        return
    reason = (
        f"Disabled by Spool at {now:%Y-%m-%d %H:%M:%S} UTC: every delivery since "
        f"{since:%Y-%m-%d %H:%M:%S} UTC failed; the last: {outcome.error}"
    )[:500]
    if WebhookEndpoint.objects.filter(id=endpoint.pk, enabled=True).update(
        enabled=False, disabled_reason=reason
    ):
        log.warning("webhook endpoint %s disabled: %s", endpoint.pk, reason)


def resend(delivery: WebhookDelivery) -> None:
    """Send a delivery again now, with a new day of retries (the admin's and the API's "send
    again"); it keeps its event id, so a receiver that has it already can tell."""
    number = WebhookDelivery.objects.values_list("attempt_count", flat=True).get(id=delivery.pk) + 1
    now = timezone.now()
    WebhookDelivery.objects.filter(id=delivery.pk).update(
        status=WebhookDelivery.Status.PENDING, finished_at=None, retrying_since=now, next_attempt_at=now
    )
    transaction.on_commit(lambda: _enqueue(str(delivery.pk), number))


def send_overdue() -> int:
    """Send again the pending deliveries whose task message was lost (the sweeper calls this).

    Each is claimed first by moving its due time a window ahead, so it is sent again once per
    window whatever the number of sweepers: a backlog on the webhook queue (tasks late, not lost)
    must not be answered with more messages on every sweep, which would only deepen it."""
    now = timezone.now()
    with transaction.atomic():
        overdue = list(
            WebhookDelivery.objects.select_for_update(skip_locked=True)
            .filter(
                status=WebhookDelivery.Status.PENDING,
                next_attempt_at__lt=now - timedelta(seconds=OVERDUE_SECONDS),
            )
            .order_by("next_attempt_at")
            .values_list("id", "attempt_count")[:500]
        )
        WebhookDelivery.objects.filter(id__in=[delivery_id for delivery_id, _ in overdue]).update(
            next_attempt_at=now + timedelta(seconds=OVERDUE_SECONDS)
        )
    for delivery_id, made in overdue:
        _enqueue(str(delivery_id), made + 1)
    return len(overdue)
