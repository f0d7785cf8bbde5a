"""A provisioning request in two real browsers: a member files it, an admin approves it from the approval queue,
and the member's request page, left open and never reloaded, shows the job's live progress and then the ready
volume; the member's bell shows the notifications."""

from __future__ import annotations

from contextlib import contextmanager

import pytest

from tests.browser.browser import browser_page, log_in
from tests.conftest import TEST_QUEUE
from tests.provisioning.conftest import build_world

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


@pytest.fixture
def world(synced):
    """The provisioning tests' team, pool and people (tests/provisioning/conftest.py)."""
    return build_world(synced)


@contextmanager
def jobs_held():
    """The test worker stops taking jobs from the test queue until the block ends: a job stays queued, so the
    page is seen showing it before it runs (a create job is over in a blink)."""
    from virtstorage.celery import app

    workers = [name for reply in app.control.ping(timeout=2.0) for name in reply
               if name.startswith(f"test-{TEST_QUEUE}@")]
    assert workers, "the test Celery worker does not answer"
    app.control.cancel_consumer(TEST_QUEUE, destination=workers, reply=True, timeout=5.0)
    try:
        yield
    finally:
        app.control.add_consumer(TEST_QUEUE, destination=workers, reply=True, timeout=5.0)


def test_member_requests_admin_approves_member_watches(asgi_server, celery_worker, world):
    pool, scratch = world.pool, world.scratch
    with browser_page(asgi_server.url) as member:
        log_in(member, world.rita.username, "correct-horse-battery")
        member.goto(f"/pools/{pool.pk}/")
        member.click("text=Request a volume…")
        member.fill("#id_name", "asked-in-browser.qcow2")
        member.fill("#id_capacity", "80M")
        member.select_option("#id_format", "qcow2")
        member.fill("#id_purpose", "CI cache for the browser test")
        member.click("button:has-text('Submit request')")
        member.wait_for_url("**/requests/*/")
        assert "Pending approval" in member.locator("#request-state h2").inner_text()
        member.evaluate("window.__leftOpen = true")  # gone if the page ever reloads
        pk = int(member.url.rstrip("/").rsplit("/", 1)[1])  # no ORM here: playwright's loop runs in this thread

        admin = member.context.browser.new_context(base_url=asgi_server.url).new_page()
        admin.set_default_timeout(15_000)
        log_in(admin, world.ada.username, "correct-horse-battery")
        with jobs_held():
            admin.goto("/requests/approvals/")
            assert "Approvals (1)" in admin.locator("header nav").inner_text()
            admin.check(f"input[name=requests][value='{pk}']")
            admin.fill("#id_comment", "go ahead")
            admin.click("button:has-text('Approve selected')")
            admin.wait_for_selector(f"text=Approved request #{pk}")
            # the member's open page learns of the approval and shows the job, live and still queued
            member.wait_for_selector("#request-state .job-watch .progress[data-state=queued]", timeout=20_000)
            assert "Provisioning" in member.locator("#request-state h2").inner_text()
        # the job runs: its progress streams in, then the state reloads with the ready volume
        member.wait_for_selector("#ready-volume a:has-text('asked-in-browser.qcow2')", timeout=60_000)
        assert member.evaluate("window.__leftOpen === true")
        assert "Ready" in member.locator("#request-state h2").inner_text()
        timeline = member.locator("#request-state .timeline").inner_text()
        assert "Approved by ada: go ahead" in timeline and "Ready" in timeline
        assert scratch.vol_info("asked-in-browser.qcow2")["Capacity"].startswith(str(80 * 1024**2))
        # the bell polls: it shows the approval and the ready notifications
        member.wait_for_selector("#notification-bell .count", timeout=25_000)
        assert int(member.locator("#notification-bell .count").inner_text()) >= 2
    from provisioning.models import ProvisioningRequest

    req = ProvisioningRequest.objects.get(pk=pk)
    assert req.state == ProvisioningRequest.State.READY and req.volume.name == "asked-in-browser.qcow2"
