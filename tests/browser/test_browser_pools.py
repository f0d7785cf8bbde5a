"""Pool lifecycle in Debian's chromium: stop and start from the pool card, live progress, card updated in place."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.browser.browser import browser_page, log_in
from tests.conftest import running_job, virsh

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def _state(name: str) -> str:
    out = virsh("pool-info", name)
    return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("State:"))


def test_stop_and_start_from_the_pool_card(asgi_server, admin_user, synced, celery_worker, monkeypatch):
    pool, scratch = synced
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # playwright's loop lives in this thread
    django_client = Client()
    django_client.force_login(admin_user)
    with browser_page(asgi_server.url) as page:
        page.context.add_cookies([{"name": "sessionid", "value": django_client.cookies["sessionid"].value,
                                   "url": asgi_server.url}])
        page.goto(pool.get_absolute_url())
        # libvirt's own view arrives after the page, next to the inventory.
        page.wait_for_selector("#pool-live dd:has-text('running')")
        page.on("dialog", lambda dialog: dialog.accept())  # the Stop confirmation says data is kept
        page.click("#pool-lifecycle-actions button:has-text('Stop')")
        # The job's progress streams into the card; when it ends the card reloads with the new state.
        page.wait_for_selector("#pool-job [data-state='succeeded']", timeout=60_000)
        page.wait_for_selector("#pool-state:has-text('Stopped')", timeout=30_000)
        assert _state(scratch.name) == "inactive"
        assert "stopped" in page.inner_text("#pool-state-badges")
        assert "keeps the data intact" in page.inner_text("#pool-card")
        # The header's buttons were swapped too: Start is offered now.
        page.click("#pool-lifecycle-actions button:has-text('Start')")
        page.wait_for_selector("#pool-state:has-text('Running')", timeout=60_000)
        assert _state(scratch.name) == "running"
        assert "Started pool" in page.inner_text("#pool-job")
        assert page.locator("#pool-lifecycle-actions button:has-text('Stop')").count() == 1


def test_the_volume_table_follows_a_job_that_ends_on_the_page(asgi_server, admin_user, synced, monkeypatch):
    """A job followed in the pool page's "Running jobs" ends: the table reloads as it stands (its sort kept)."""
    from inventory.sync import sync_volumes
    from jobs.models import Job
    from jobs.runner import JobContext, finish_inline

    pool, scratch = synced
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # playwright's loop lives in this thread
    job = running_job(admin_user, pool.host, "create", pool=pool, volume_name="late.img")
    with browser_page(asgi_server.url) as page:
        log_in(page, admin_user.username, "correct-horse-battery")
        page.goto(pool.get_absolute_url())
        page.click("#volume-table th >> text=Disk size")  # sorted: the reload keeps it
        page.wait_for_function("location.search.includes('sort=-allocation')")
        assert page.locator("#volume-table").count() == 1  # swapped whole, not nested in the old one
        assert page.locator("#volume-table >> text=late.img").count() == 0
        scratch.create_volume("late.img", "1M")  # what the job made, synced as the job's end does
        assert sync_volumes(pool.host, [(pool.name, "late.img")]) is not None
        finish_inline(JobContext(job), Job.State.SUCCEEDED, result="Created late.img")
        page.locator("#volume-table >> text=late.img").wait_for()
        assert page.locator("#volume-table").count() == 1
        assert "sort=-allocation" in page.locator("#volume-table").get_attribute("hx-get")
