"""The admin overview in a real browser against a running Spool: an operator signs in and lands on
the charts of the last 24 hours and the live figures, which show a job running and a reader
waiting for it."""

from __future__ import annotations

import re
import threading

import openai
from playwright.sync_api import Page, expect

from tests.browser.support import browser_test, sign_in_admin
from tests.e2e.helpers import Frontend, make_engine
from tests.e2e.openai_helpers import NO_EOT, client

pytestmark = browser_test


def figure(page: Page, name: str) -> int:
    return int(page.inner_text(f'[data-figure="{name}"] .spool-figure-value'))


def test_an_operator_lands_on_the_overview_and_sees_the_day_and_the_moment(
    spool, page, people, seeded, pg, shots
):
    from jobs import services
    from jobs.models import Job

    # A job that ended through the worker just now: the charts count it.
    alice = Frontend(spool, spool.alice)
    done = alice.submit(spool.engine_id, "A short one.", {"max_completion_tokens": 8})
    assert alice.stream(done)[-1]["status"] == "ProgressComplete"

    # A job that runs for minutes (a token every 20 s), and a client waiting for its answer.
    make_engine("overview-slow", tokens_per_second=0.05)
    waiting = client(spool, timeout=600)
    answers: list[object] = []

    def ask() -> None:
        try:
            answers.append(
                waiting.chat.completions.create(
                    model="overview-slow",
                    messages=[{"role": "user", "content": "Take your time."}],
                    max_tokens=20,
                    logit_bias=NO_EOT,
                )
            )
        except openai.APIError as exc:  # the cancel below ends it with an error: expected
            answers.append(exc)

    reader = threading.Thread(target=ask, daemon=True)
    reader.start()

    sign_in_admin(page, spool.base_url, people["operator"])  # lands on /admin/
    expect(page.locator("#spool-overview")).to_be_visible()
    # The request reaches the server in its own time: reload until it is waiting.
    while figure(page, "readers") < 1:
        assert reader.is_alive(), f"the client stopped waiting: {answers}"
        page.reload()
    assert figure(page, "running") >= 1
    queue = spool.processes.env["SPOOL_CELERY_QUEUE"]
    assert figure(page, "queue-depth") >= 0 and page.locator(f'[data-queue="{queue}"]').count() == 1

    # The four charts, each an image with a title and a table of its figures.
    for chart in ("jobs", "ttft", "tokens", "errors"):
        svg = page.locator(f"#spool-chart-{chart} svg[role=img]")
        expect(svg).to_be_visible()
        assert svg.locator("title").first.text_content()
    ended = int(
        re.search(r"([\d,]+) jobs ended", page.inner_text("#spool-overview")).group(1).replace(",", "")
    )
    assert ended >= 1
    assert page.locator('#spool-chart-jobs path[data-series="succeeded"]').get_attribute("d")
    page.screenshot(path=shots / "admin-overview.png", full_page=True)
    page.click("#spool-table-tokens summary")
    expect(page.locator("#spool-table-tokens")).to_contain_text("spool-offline")

    # The models are still a click away.
    expect(page.locator("text=Stored completions")).to_be_visible()

    slow = Job.objects.filter(engine__name="overview-slow").exclude(status__in=Job.TERMINAL).get()
    services.job_cancel(slow.pk)
    reader.join(timeout=120)
    assert answers, "the waiting client never got an answer"
