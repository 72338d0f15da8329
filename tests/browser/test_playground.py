"""The playground in a real browser: a prompt streams in over several polls and finishes, tool-call
fragments assemble, Stop cancels, and errors are shown."""

from __future__ import annotations

import json
import secrets

import pytest

import fakeupstream
from tests.browser.support import browser_test, sign_in_playground
from tests.e2e.helpers import make_engine
from tests.support import WEATHER_TOOL

pytestmark = browser_test

UPSTREAM_KEY = "sk-browser-" + secrets.token_hex(8)
LENGTH = "sel => document.querySelector(sel).textContent.length"
GROWS = "([sel, n]) => document.querySelector(sel).textContent.length > n"


@pytest.fixture
def playground(spool, page, people):
    sign_in_playground(page, spool.base_url, people["player"])
    return page


def run(page, engine_id: str, prompt: str, max_tokens: int, params: dict | None = None) -> None:
    page.reload()  # the engine may be newer than the page
    page.select_option("#engine", engine_id)
    page.fill("#prompt", prompt)
    page.fill("#max-tokens", str(max_tokens))
    if params:
        page.click("summary")
        page.fill("#params", json.dumps(params))
    page.click("#run")


def watch_grow(page, selector: str, times: int) -> list[int]:
    """Lengths of the element's text at `times` + 1 moments, each longer than the last."""
    lengths = [page.evaluate(LENGTH, selector)]
    for _ in range(times):
        page.wait_for_function(GROWS, arg=[selector, lengths[-1]])
        lengths.append(page.evaluate(LENGTH, selector))
    return lengths


def test_a_prompt_streams_in_over_several_polls_and_finishes(spool, playground, pg, shots):
    page = playground
    engine_id = make_engine("browser-slow", tokens_per_second=20)
    run(page, engine_id, "Tell me of the king and his daughters.", 40, {"seed": 3, "logit_bias": {"0": -100}})

    lengths = watch_grow(page, "#output", 3)
    assert lengths == sorted(set(lengths)) and len(lengths) == 4
    assert page.get_attribute("#status", "data-status") in {"Streaming", "InProgress", "Submitted"}
    page.screenshot(path=shots / "playground-running.png")

    page.wait_for_selector("#finish-reason:text('length')")
    assert page.inner_text("#usage").endswith("40 out")
    assert page.get_attribute("#status", "data-status") == "ProgressComplete"
    assert int(page.inner_text("#polls")) >= 3
    assert page.is_hidden("#error")
    page.screenshot(path=shots / "playground-finished.png")


def test_stop_cancels_a_running_prompt(spool, playground, pg):
    from jobs.models import Job

    page = playground
    engine_id = make_engine("browser-slow", tokens_per_second=20)
    run(page, engine_id, "A story that never ends.", 2000, {"logit_bias": {"0": -100}})
    watch_grow(page, "#output", 2)
    page.click("#stop")
    page.wait_for_selector("#finish-reason:text('cancelled')")
    assert page.get_attribute("#status", "data-status") == "Canceled"
    assert page.is_hidden("#error")  # a cancel the person asked for is not an error
    job = Job.objects.get(pk=page.inner_text("#job-id"))
    assert job.status == Job.Status.CANCELLED and job.result["choices"][0]["content"]


def test_tool_call_fragments_are_shown_as_they_assemble(spool, playground, django_db_blocker):
    from jobs import services

    page = playground
    with fakeupstream.running(port=0, api_key=UPSTREAM_KEY) as base_url, django_db_blocker.unblock():
        config = {"base_url": base_url, "model": "replay:parallel?tps=8", "read_timeout": 10}
        engine = services.engine_upsert(
            name="browser-tools", kind="openai", config=config, secret=UPSTREAM_KEY
        )
        run(page, str(engine.pk), "Weather in Boston and Tokyo?", 200, {"tools": [WEATHER_TOOL]})
        page.wait_for_selector("#tool-calls li")
        lengths = watch_grow(page, "#tool-calls", 3)  # arguments arrive fragment by fragment
        page.wait_for_selector("#finish-reason:text('tool_calls')")
    assert lengths == sorted(set(lengths))
    calls = page.locator("#tool-calls li")
    assert calls.count() == 2
    assert "get_current_weather(" in calls.nth(0).inner_text() and "Boston" in calls.nth(0).inner_text()
    assert '"T\\u014dkyo"' in calls.nth(1).inner_text()  # the arguments exactly as the upstream sent them
    assert page.inner_text("#output") == "I'll check both cities."


def test_errors_are_shown_not_swallowed(spool, playground):
    page = playground
    run(page, spool.engine_id, "Hello", 10, {"temperature": 9})
    page.wait_for_selector("#error:not([hidden])")
    assert "temperature" in page.inner_text("#error")
    assert page.get_attribute("#status", "data-status") == "Error"

    page.fill("#params", "{not json")
    page.click("#run")
    page.wait_for_selector("#error:has-text('More parameters')")
