"""Advances a batch one step at a time, each step safe to run again after any crash:

validating   the input file streamed once through jobs.batches.validation;
in_progress  lines started as jobs a chunk per transaction (their BatchLine rows and the file
             offset move together), while fewer than SPOOL_BATCH_ACTIVE_LINES of the owner's
             lines are queued or running; finished lines counted;
cancelling,  (or in_progress past expires_at) the running lines cancelled, then finalizing;
finalizing   the output and error files written (streamed), then the batch ends: completed,
             expired or cancelled, with its webhook event, in one transaction.

Each step returns when the next is due; a task message carries the batch's `runner_token`, so
only one chain of steps runs a batch, whatever messages are duplicated or re-sent."""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from jobs import services
from jobs.batches import lines, storage, validation
from jobs.batches.endpoints import AnsweredEndpoint, Endpoint, LineWaiting, endpoint_for
from jobs.batches.ids import BATCH_PREFIX, public_id
from jobs.batches.models import Batch, BatchLine, File, file_expiry
from jobs.models import Job
from jobs.selectors import engine_lookup
from jobs.webhooks.events import batch_ended
from jobs.worker import runtime

log = logging.getLogger(__name__)

# Lines started per transaction: a 10,000-line batch never holds one for long.
CHUNK = 50
ACTIVE = (Job.Status.QUEUED, Job.Status.RUNNING)
NOW = 0.0


def new_token() -> str:
    return uuid.uuid4().hex


def advance(batch_id: str, token: str) -> float | None:
    """One step of the batch; seconds until the next (None: it has ended, or another chain of
    steps has taken it over)."""
    batch = Batch.objects.filter(pk=batch_id).select_related("owner").first()
    if batch is None or batch.runner_token != token or batch.is_ended:
        return None
    steps: dict[str, Callable[[Batch], float | None]] = {
        Batch.Status.VALIDATING: _validate,
        Batch.Status.IN_PROGRESS: _run,
        Batch.Status.CANCELLING: _run,
        Batch.Status.FINALIZING: _finalize,
    }
    return steps[batch.status](batch)


def _locked(batch: Batch) -> Batch | None:
    """The batch's row, locked for this transaction, while this chain still owns it."""
    row = Batch.objects.select_for_update().filter(pk=batch.pk).first()
    if row is None or row.runner_token != batch.runner_token or row.is_ended:
        return None
    return row


def touch(batch: Batch) -> bool:
    """Says this chain is alive (the stale-batch tick leaves it alone); False once another chain
    has taken it over."""
    return (
        Batch.objects.filter(pk=batch.pk, runner_token=batch.runner_token).update(advanced_at=timezone.now())
        == 1
    )


def _input(batch: Batch) -> File | None:
    return File.objects.filter(pk=batch.input_file_id).first()


def _model_ok(batch: Batch) -> Callable[[str], bool]:
    def ok(model: str) -> bool:
        engine = engine_lookup(model)
        return (
            engine is not None and engine.is_active and (not batch.engines or str(engine.pk) in batch.engines)
        )

    return ok


def _raw_lines(name: str, batch: Batch) -> Iterator[bytes]:
    for count, (raw, _) in enumerate(storage.lines(name), start=1):
        if count % 5000 == 0 and not touch(batch):
            return
        yield raw


def _fail(batch: Batch, errors: list[dict[str, object]]) -> None:
    with transaction.atomic():
        row = _locked(batch)
        if row is None:
            return
        row.status, row.errors, row.failed_at = Batch.Status.FAILED, errors, timezone.now()
        row.save(update_fields=["status", "errors", "failed_at"])
        batch_ended(row.owner_id, public_id(BATCH_PREFIX, row.pk), "failed")


def _validate(batch: Batch) -> float | None:
    source = _input(batch)
    if source is None:
        missing = validation.LineError("invalid_file", "The input file was deleted before the batch started.")
        _fail(batch, [missing.to_dict()])
        return None
    outcome = validation.validate(
        _raw_lines(source.storage_name, batch),
        batch.endpoint,
        _model_ok(batch),
        settings.SPOOL.batches.max_lines,
    )
    if outcome.errors:
        _fail(batch, [e.to_dict() for e in outcome.errors])
        return None
    with transaction.atomic():
        row = _locked(batch)
        if row is None:
            return None
        row.total = outcome.total
        if row.status == Batch.Status.VALIDATING:
            row.status, row.in_progress_at = Batch.Status.IN_PROGRESS, timezone.now()
        row.advanced_at = timezone.now()
        row.save(update_fields=["total", "status", "in_progress_at", "advanced_at"])
    return NOW


def _counts(batch: Batch) -> dict[str, int]:
    return BatchLine.objects.filter(batch=batch).aggregate(
        completed=Count("pk", filter=Q(job__status=Job.Status.SUCCEEDED) | Q(answer__isnull=False)),
        failed=Count(
            "pk",
            filter=Q(refused__isnull=False)
            | Q(job__status__in=[Job.Status.FAILED, Job.Status.CANCELLED])
            | Q(job__isnull=True, refused__isnull=True, answer__isnull=True),
        ),
        active=Count("pk", filter=Q(job__status__in=ACTIVE)),
    )


def _owner_active(batch: Batch) -> int:
    return BatchLine.objects.filter(
        batch__owner_id=batch.owner_id,
        batch__status__in=[Batch.Status.IN_PROGRESS, Batch.Status.CANCELLING],
        job__status__in=ACTIVE,
    ).count()


def _start_lines(batch: Batch, endpoint: Endpoint) -> int:
    """Starts the next chunk of lines, as many as the owner's room allows; how many."""
    source = _input(batch)
    with transaction.atomic():
        row = _locked(batch)
        if row is None or row.status != Batch.Status.IN_PROGRESS or row.ending or source is None:
            return 0
        room = min(
            CHUNK, settings.SPOOL.batches.active_lines - _owner_active(row), row.total - row.lines_started
        )
        if room <= 0:
            return 0
        window_left = (row.expires_at - timezone.now()).total_seconds()
        lookup = functools.cache(engine_lookup)  # the lines of a step mostly name one model
        started, offset = 0, row.read_offset
        for raw, after in storage.lines(source.storage_name, row.read_offset):
            if started >= room:
                break
            if raw.strip():
                parsed = validation.parse(raw, row.lines_started + started + 1, row.endpoint)
                if not isinstance(parsed, validation.Line):  # validated already: the file changed
                    raise RuntimeError(f"batch {row.pk}: line at byte {offset} no longer passes validation")
                number = row.lines_started + started + 1
                custom_id = parsed.custom_id
                lines.start(row, batch.owner, endpoint, number, custom_id, parsed.body, window_left, lookup)
                started += 1
            offset = after
        row.lines_started += started
        row.read_offset = offset
        row.advanced_at = timezone.now()
        row.save(update_fields=["lines_started", "read_offset", "advanced_at"])
        return started


def _answer_lines(batch: Batch, endpoint: AnsweredEndpoint) -> int:
    """Answers the next chunk of lines of an endpoint answered without a job, all at once on the
    worker's loop, each waiting for a slot of its engine at class batch; then records, in one
    transaction, the answers of the lines read in order up to the first still waiting. Nothing is
    recorded when another chain moved the batch meanwhile (its answers are the batch's); a line
    answered twice that way costs its engine twice, and appears once."""
    source = _input(batch)
    if source is None or batch.status != Batch.Status.IN_PROGRESS or batch.ending:
        return 0
    room = min(CHUNK, batch.total - batch.lines_started)
    window_left = (batch.expires_at - timezone.now()).total_seconds()
    # A chain waiting longer than half the stale limit would be taken for a dead one.
    wait = max(1.0, min(window_left, settings.SPOOL.batches.stale_seconds / 2))
    read: list[tuple[validation.Line, int]] = []
    for raw, after in storage.lines(source.storage_name, batch.read_offset):
        if len(read) >= room:
            break
        if raw.strip():
            parsed = validation.parse(raw, batch.lines_started + len(read) + 1, batch.endpoint)
            if not isinstance(parsed, validation.Line):  # validated already: the file changed
                raise RuntimeError(
                    f"batch {batch.pk}: a line after byte {batch.read_offset} no longer passes"
                )
            read.append((parsed, after))
    owner, engines = batch.owner, frozenset(batch.engines)
    answered = runtime.run(lines.answer_all(endpoint, owner, engines, [line.body for line, _ in read], wait))
    with transaction.atomic():
        row = _locked(batch)
        if (
            row is None
            or row.status != Batch.Status.IN_PROGRESS
            or row.ending
            or row.read_offset != batch.read_offset
        ):
            return 0
        kept: list[BatchLine] = []
        for (line, _), outcome in zip(read, answered, strict=True):
            if isinstance(outcome, LineWaiting):
                break  # it and the lines after it are answered at a later step
            kept.append(lines.answered(row, row.lines_started + len(kept) + 1, line.custom_id, outcome))
        BatchLine.objects.bulk_create(kept)
        if kept:
            row.lines_started += len(kept)
            row.read_offset = read[len(kept) - 1][1]
        row.advanced_at = timezone.now()
        row.save(update_fields=["lines_started", "read_offset", "advanced_at"])
        return len(kept)


def _save_counts(batch: Batch, counts: dict[str, int], **fields: object) -> bool:
    updated = Batch.objects.filter(pk=batch.pk, runner_token=batch.runner_token).exclude(
        status__in=Batch.ENDED
    )
    return (
        updated.update(
            completed=counts["completed"], failed=counts["failed"], advanced_at=timezone.now(), **fields
        )
        == 1
    )


def _run(batch: Batch) -> float | None:
    """in_progress (and cancelling): start lines, count what ended, stop at cancel or expiry."""
    if batch.status == Batch.Status.IN_PROGRESS and not batch.ending and timezone.now() >= batch.expires_at:
        Batch.objects.filter(pk=batch.pk, runner_token=batch.runner_token).update(ending="expired")
        batch.ending = "expired"
    if batch.ending:
        # Stop the lines still queued or running; their jobs end cancelled.
        active = BatchLine.objects.filter(batch=batch, job__status__in=ACTIVE)
        for job_id in active.values_list("job_id", flat=True):
            services.job_cancel(job_id)
    endpoint = endpoint_for(batch.endpoint)
    assert endpoint is not None  # checked when the batch was created
    if batch.ending:
        started = 0
    elif isinstance(endpoint, AnsweredEndpoint):
        started = _answer_lines(batch, endpoint)
    else:
        started = _start_lines(batch, endpoint)
    counts = _counts(batch)
    batch.refresh_from_db(fields=["lines_started", "total"])
    done_starting = bool(batch.ending) or batch.lines_started >= batch.total
    if done_starting and counts["active"] == 0:
        fields = {"status": Batch.Status.FINALIZING, "finalizing_at": timezone.now()}
        return NOW if _save_counts(batch, counts, **fields) else None
    if not _save_counts(batch, counts):
        return None
    return NOW if started else settings.SPOOL.batches.poll_seconds


def _write(batch: Batch) -> tuple[storage.JsonLines, storage.JsonLines]:
    """The output and error files, in the input's order: each started line as its job ended,
    then each line never started (the batch was cancelled or expired first)."""
    endpoint = endpoint_for(batch.endpoint)
    assert endpoint is not None
    output, errors = storage.JsonLines(), storage.JsonLines()
    started = BatchLine.objects.filter(batch=batch).select_related("job", "job__engine").order_by("line")
    render = None if isinstance(endpoint, AnsweredEndpoint) else endpoint.render
    for count, line in enumerate(started.iterator(chunk_size=200), start=1):
        good, record = lines.outcome(line, render, batch.ending)
        (output if good else errors).write(record)
        if count % 2000 == 0:
            touch(batch)
    source = _input(batch)
    if batch.lines_started < batch.total and source is not None:
        number = batch.lines_started
        for raw, _ in storage.lines(source.storage_name, batch.read_offset):
            parsed = validation.parse(raw, 0, batch.endpoint) if raw.strip() else None
            if isinstance(parsed, validation.Line):
                number += 1
                errors.write(lines.unstarted(batch, number, parsed.custom_id))
    return output, errors


def _store(batch: Batch, kind: str, written: storage.JsonLines) -> File | None:
    if written.count == 0:
        return None
    name = f"batches/{batch.pk.hex}/{batch.runner_token}/{kind}.jsonl"
    stored, size = written.store(name)
    return File(
        owner_id=batch.owner_id,
        purpose=File.Purpose.BATCH_OUTPUT,
        filename=f"batch_{batch.pk.hex}_{kind}.jsonl",
        bytes=size,
        storage_name=stored,
        expires_at=file_expiry(batch.output_expires_seconds),
    )


ENDINGS = {"": Batch.Status.COMPLETED, "expired": Batch.Status.EXPIRED, "cancelled": Batch.Status.CANCELLED}


def _finalize(batch: Batch) -> float | None:
    output, errors = _write(batch)
    with output, errors:
        files = [_store(batch, "output", output), _store(batch, "error", errors)]
    kept = [f for f in files if f is not None]
    with transaction.atomic():
        row = _locked(batch)
        if row is None or row.status != Batch.Status.FINALIZING:
            # Another chain took the batch over: what this one wrote is not the batch's.
            for orphan in kept:
                storage.delete(orphan.storage_name)
            return None
        File.objects.bulk_create(kept)
        status = ENDINGS[row.ending].value
        now = timezone.now()
        row.output_file_id = files[0].pk if files[0] else None
        row.error_file_id = files[1].pk if files[1] else None
        row.completed, row.failed = output.count, errors.count
        row.status, row.advanced_at = status, now
        setattr(row, f"{status}_at", now)
        row.save()
        batch_ended(row.owner_id, public_id(BATCH_PREFIX, row.pk), status)
    log.info("batch %s %s: %d answers, %d errors", batch.pk, status, output.count, errors.count)
    return None


def resend_stale(send: Callable[[str, str], None]) -> int:
    """Batches whose chain of steps has been silent past SPOOL_BATCH_STALE_SECONDS (its task
    message was lost, or its worker died before sending the next): each gets a new token, so
    the old chain, should it wake, stops; how many were sent again."""
    cutoff = timezone.now() - timedelta(seconds=settings.SPOOL.batches.stale_seconds)
    silent = Batch.objects.exclude(status__in=Batch.ENDED).filter(advanced_at__lt=cutoff)
    sent = 0
    for batch_id, seen in silent.values_list("pk", "advanced_at")[:500]:
        token = new_token()
        taken = Batch.objects.filter(pk=batch_id, advanced_at=seen).update(
            runner_token=token, advanced_at=timezone.now()
        )
        if taken:
            log.warning("batch %s silent since %s: sent again", batch_id, seen)
            send(str(batch_id), token)
            sent += 1
    return sent
