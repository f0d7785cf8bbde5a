"""On a phone (390 × 844): no page an admin reaches from the dashboard is wider than the screen (a wide table
scrolls inside its card), and the header's links and buttons stay inside the header's bar, where they can be read
(they had run past its right edge, white on the light page)."""

from __future__ import annotations

import pytest

from tests.browser.browser import browser_page, log_in
from tests.crawl import crawl, things_to_see
from tests.provisioning.conftest import PASSWORD, build_world

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

PHONE = (390, 844)

# What the page shows beyond the screen's width, and the header's controls drawn outside its bar.
LAYOUT = """() => {
  const width = document.documentElement.clientWidth;
  const bar = document.querySelector('.topbar').getBoundingClientRect();
  const outside = [...document.querySelectorAll('.topbar a, .topbar button, .topbar select')].filter(e => {
    const r = e.getBoundingClientRect();
    return r.width > 0 && (r.right > width + 1 || r.left < -1 || r.bottom > bar.bottom + 1);
  }).map(e => e.textContent.trim() || e.tagName);
  return {scroll: document.documentElement.scrollWidth, width: width, outside: outside};
}"""


def test_no_page_is_wider_than_a_phone_and_the_header_stays_in_its_bar(asgi_server, synced, monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # playwright's loop lives in this thread
    world = build_world(synced)
    things_to_see(world)
    problems: list[str] = []
    with browser_page(asgi_server.url, viewport=PHONE) as page:
        log_in(page, world.ada.username, PASSWORD)

        def fetch(path: str) -> tuple[int, str, str]:
            response = page.goto(path)
            page.wait_for_load_state("networkidle")  # what the page loads by itself (htmx on load) has come
            if "text/html" in response.headers.get("content-type", ""):
                layout = page.evaluate(LAYOUT)
                if layout["scroll"] > layout["width"] + 1:
                    problems.append(f"{path}: {layout['scroll']} px wide on a {layout['width']} px screen")
                if layout["outside"]:
                    problems.append(f"{path}: outside the header's bar: {', '.join(layout['outside'])}")
            return response.status, response.headers.get("content-type", ""), page.content()

        pages, _bad = crawl(fetch, max_pages=40, variants=0)
    assert pages > 25, pages
    assert problems == [], "\n".join(problems)
