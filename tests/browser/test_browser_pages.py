"""Every page an admin reaches from the dashboard, in chromium: none logs a script error or fails to load a part of
itself (a static file, an htmx fragment, the site's icon), besides the link checks of tests/test_links.py."""

from __future__ import annotations

import pytest

from tests.browser.browser import browser_page, log_in
from tests.crawl import crawl, things_to_see
from tests.provisioning.conftest import PASSWORD, build_world

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def test_no_page_logs_an_error_or_fails_a_request(asgi_server, synced, monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # playwright's loop lives in this thread
    world = build_world(synced)
    things_to_see(world)
    with browser_page(asgi_server.url) as page:
        log_in(page, world.ada.username, PASSWORD)
        errors: list[str] = []
        current = {"path": "/"}
        page.on("console", lambda message: errors.append(f"{current['path']}: {message.text}")
                if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(f"{current['path']}: {error}"))
        page.on("requestfailed", lambda request: errors.append(f"{current['path']}: {request.url} {request.failure}")
                if request.failure != "net::ERR_ABORTED" else None)  # aborted: the crawl left the page (a job's events)

        def fetch(path: str) -> tuple[int, str, str]:
            current["path"] = path
            response = page.goto(path)
            page.wait_for_load_state("networkidle")  # what the page loads by itself (htmx on load) has come
            return response.status, response.headers.get("content-type", ""), page.content()

        pages, bad = crawl(fetch, max_pages=60, variants=1)
    assert pages > 30, pages
    assert bad == [] and errors == [], "\n".join(bad + errors)
