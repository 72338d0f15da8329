"""The operator dashboard in a real browser: sign in, filter stored completions by metadata, read
one, watch a running job's chunk log and cancel it."""

from __future__ import annotations

import uuid

import pytest
from playwright.sync_api import expect

from tests.browser.support import browser_test, sign_in_admin
from tests.e2e.helpers import NO_EOT, Frontend

pytestmark = browser_test


@pytest.fixture
def stored(spool, seeded, pg) -> dict[str, str]:
    """A completion stored by a real job through the SEMOSS face, with its own metadata."""
    from jobs.models import StoredCompletion
    from jobs.protocols.openai_chat import completion_id

    alice = Frontend(spool, spool.alice)
    run = uuid.uuid4().hex[:10]
    params = {
        "max_completion_tokens": 24, "seed": 4, "logprobs": True, "top_logprobs": 2, "store": True,
        "metadata": {"team": "browser", "run": run, "env": "prod"}, **NO_EOT,
    }  # fmt: skip
    job_id = alice.submit(spool.engine_id, "Tell me of the king and his daughters.", params)
    alice.stream(job_id)
    stored = StoredCompletion.objects.get(id=completion_id(job_id))
    return {"id": stored.id, "run": run, "text": stored.response["choices"][0]["message"]["content"]}


def test_an_operator_filters_stored_completions_by_metadata_and_reads_one(spool, page, people, stored, shots):
    sign_in_admin(page, spool.base_url, people["operator"])
    page.click("text=Stored completions")
    page.wait_for_selector("#changelist")
    assert page.locator("#result_list tbody tr").count() == 100  # seeded rows: a full first page

    # Choose a key, then one of its values.
    page.click('[data-metadata-key="team"]')
    page.click('[data-metadata-value="browser"]')
    page.wait_for_selector(".spool-active-pair")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1
    assert stored["id"].removeprefix("chatcmpl-")[:12] in rows.first.inner_text()

    # A second pair on another key combines with the first.
    page.click('[data-metadata-key="env"]')
    page.click('[data-metadata-value="prod"]')
    # The click navigates: wait for the new page rather than count on the old one.
    expect(page.locator(".spool-active-pair")).to_have_count(2)
    assert page.locator("#result_list tbody tr").count() == 1
    page.screenshot(path=shots / "admin-completions-filtered.png")

    # key=value typed in the search box does the same.
    page.goto(f"{spool.base_url}/admin/jobs/storedcompletion/")
    page.fill("#searchbar", f"run={stored['run']}")
    page.press("#searchbar", "Enter")
    page.wait_for_url("**q=run*")
    assert page.locator("#result_list tbody tr").count() == 1

    page.click("#result_list tbody tr th a")
    page.wait_for_selector("#spool-conversation")
    assert "Tell me of the king and his daughters." in page.inner_text("#spool-conversation")
    assert stored["text"][:30] in page.inner_text("#spool-response")
    assert page.locator(".spool-logprobs tbody tr").count() == 24
    assert stored["run"] in page.inner_text("#spool-metadata")
    page.screenshot(path=shots / "admin-completion-detail.png", full_page=True)


def test_an_operator_watches_a_running_jobs_chunk_log_and_cancels_it(spool, page, people, seeded, pg, shots):
    from jobs.models import Job

    alice = Frontend(spool, spool.alice)
    job_id = alice.submit(
        spool.engine_id, "A very long story, please.", {"max_completion_tokens": 3000, **NO_EOT}
    )
    sign_in_admin(page, spool.base_url, people["operator"])
    page.goto(f"{spool.base_url}/admin/jobs/job/")
    page.wait_for_selector("#result_list")
    assert job_id[:8] in page.inner_text("#result_list tbody tr:first-child")
    page.screenshot(path=shots / "admin-jobs.png")

    page.click(f"text={job_id[:8]}")
    page.wait_for_selector(".spool-log-text")
    length = "() => document.querySelector('.spool-log-text').textContent.length"
    seen = [page.evaluate(length)]
    for _ in range(3):  # the page follows the live log: the text grows while we watch
        page.wait_for_function(f"n => ({length})() > n", arg=seen[-1])
        seen.append(page.evaluate(length))
    assert seen == sorted(set(seen))
    page.screenshot(path=shots / "admin-job-running.png")

    page.click("button.spool-cancel")
    page.wait_for_selector("text=Asked the job to stop.")
    # The worker stops at its next append; the page follows the log until the job has ended.
    page.wait_for_selector(".spool-log-status:text('cancelled')")
    assert Job.objects.get(pk=job_id).status == Job.Status.CANCELLED
