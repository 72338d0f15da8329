"""A job's id rides on every log line written in its context, and on no other line."""

from __future__ import annotations

import asyncio
import io
import json
import logging

from django.conf import settings
from pythonjsonlogger.json import JsonFormatter

from jobs.logcontext import JobIdFilter, bind_job_id, close_scope, job_log_context, open_scope


def json_logger(name: str) -> tuple[logging.Logger, io.StringIO]:
    """A logger writing through the settings' JSON formatter and job-id filter, into a buffer
    (built by hand: dictConfig here would reconfigure the whole test process's logging)."""
    spec = dict(settings.LOGGING["formatters"]["json"])
    assert spec.pop("()") == "pythonjsonlogger.json.JsonFormatter"
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter(**spec))
    handler.addFilter(JobIdFilter())
    logger = logging.getLogger(name)
    logger.handlers = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger, out


def lines(out: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_lines_inside_a_job_context_carry_its_id_and_others_none():
    log, out = json_logger("spool.test.context")
    log.info("before")
    with job_log_context("job-1"):
        log.info("inside")
        with job_log_context("job-2"):
            log.info("nested")
        log.info("back")
    log.info("after")
    assert [(x["message"], x.get("job_id")) for x in lines(out)] == [
        ("before", None),
        ("inside", "job-1"),
        ("nested", "job-2"),
        ("back", "job-1"),
        ("after", None),
    ]
    assert all({"timestamp", "level", "logger"} <= x.keys() for x in lines(out))


def test_concurrent_tasks_keep_their_own_job_ids():
    log, out = json_logger("spool.test.tasks")

    async def request(job_id: str) -> None:
        open_scope()  # as the middleware does for each request
        bind_job_id(job_id)  # as a view does once it knows the job
        await asyncio.sleep(0)  # let the other request run in between
        log.info("polled")

    async def main() -> None:
        await asyncio.gather(request("a"), request("b"))
        log.info("no request")

    asyncio.run(main())
    assert sorted(x.get("job_id", "-") for x in lines(out)) == ["-", "a", "b"]


def test_an_explicit_job_id_wins_over_the_context():
    log, out = json_logger("spool.test.explicit")
    with job_log_context("ctx"):
        log.info("swept", extra={"job_id": "other"})
    assert lines(out)[0]["job_id"] == "other"


def test_binding_outside_a_request_or_task_labels_nothing():
    # A management command or a test calling services directly: a bind there would label every
    # later line of the thread with a job it has finished with.
    log, out = json_logger("spool.test.unscoped")
    bind_job_id("stray")
    log.info("later")
    open_scope()
    bind_job_id("in-task")
    log.info("in task")
    close_scope()
    log.info("after the task")
    assert [x.get("job_id") for x in lines(out)] == [None, "in-task", None]
