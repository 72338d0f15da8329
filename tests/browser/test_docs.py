"""The API documents' Swagger UI pages in a real browser: drf-spectacular's generated documents,
rendered from the sidecar's own files (no network)."""

from __future__ import annotations

import pytest

from tests.browser.support import browser_test

pytestmark = browser_test


@pytest.mark.parametrize(
    ("url", "operation"),
    [("/v1/docs", "createChatCompletion"), ("/Monolith/api/docs", "runPixelAsync")],
    ids=["v1", "semoss"],
)
def test_the_docs_page_renders_the_generated_document_offline(spool, page, shots, url, operation):
    outside = []
    page.on(
        "request",
        lambda request: outside.append(request.url) if not request.url.startswith(spool.base_url) else None,
    )
    page.goto(url)
    page.wait_for_selector(f"[id$='{operation}']")
    assert page.locator(".opblock").count() >= 7
    assert outside == [], "every file comes from Spool itself"
    page.screenshot(path=shots / f"docs-{url.strip('/').replace('/', '-')}.png")
