"""End to end in a real browser against the real ASGI server: log in, open a pool, search, open a volume."""

from __future__ import annotations

import pytest

from tests.browser.browser import browser_page, log_in

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def test_member_finds_a_volume_through_search(asgi_server, synced, member):
    pool, scratch = synced
    with browser_page(asgi_server.url) as page:
        failed = []  # every request of these pages is answered, the browser's own (the site's icon) included
        page.on("response", lambda response: failed.append(f"{response.status} {response.url}")
                if response.status >= 400 else None)
        page.on("console", lambda message: failed.append(message.text) if message.type == "error" else None)
        log_in(page, member.username, "correct-horse-battery")
        page.goto("/")
        page.click(f"text={pool.name}")
        page.wait_for_url(f"**/pools/{pool.pk}/")
        assert page.locator("#volume-table tbody tr").count() == 5
        page.fill("#volume-search", "overlay")
        # htmx swaps the table in place after the debounce
        page.wait_for_function("document.querySelectorAll('#volume-table tbody tr').length === 1")
        page.click("#volume-table >> text=overlay.qcow2")
        page.wait_for_url("**/volumes/*/")
        assert page.locator("h1").inner_text() == "Volume overlay.qcow2"
        body = page.locator("main").inner_text()
        assert "Virtual size" in body and "Disk size" in body and "thin-provisioned" in body
        assert "base.qcow2" in body  # the backing chain
        # the title of a size holds the exact bytes
        exact = page.locator(".sizes .big .size").first.get_attribute("title")
        assert exact == f"{128 * 1024**2:,} bytes"
        page.wait_for_load_state("networkidle")
        assert failed == []


def test_sorting_by_disk_size_through_htmx(asgi_server, synced, member):
    pool, _ = synced
    with browser_page(asgi_server.url) as page:
        log_in(page, member.username, "correct-horse-battery")
        page.goto(f"/pools/{pool.pk}/")
        page.click("#volume-table th >> text=Disk size")
        page.wait_for_function("location.search.includes('sort=-allocation')")
        first = page.locator("#volume-table tbody tr td a").first.inner_text()
        assert first == "raw-prealloc.img"  # the only preallocated volume holds the most disk
