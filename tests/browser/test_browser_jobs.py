"""The job page in a real browser: while the job runs, its log and details follow it without a reload."""

from __future__ import annotations

import pytest

from accounts.models import Membership, Team
from accounts.teams import join
from jobs.models import Job
from jobs.runner import JobContext, finish_inline
from pools.models import PoolGrant, StoragePool
from tests.browser.browser import browser_page, log_in
from tests.conftest import running_job

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def test_the_job_page_shows_new_log_lines_and_the_end_as_they_happen(asgi_server, member, local_host, monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # playwright's loop lives in this thread
    pool = StoragePool.objects.create(host=local_host, name="live-pool", state=StoragePool.State.ACTIVE)
    PoolGrant.objects.create(team=Team.objects.create(name="live-team"), pool=pool)
    join(member, Team.objects.get(name="live-team"), Membership.Role.MEMBER)
    job = running_job(member, local_host, "create", pool=pool, pool_name=pool.name, volume_name="live.qcow2")
    ctx = JobContext(job)
    with browser_page(asgi_server.url) as page:
        log_in(page, member.username, "correct-horse-battery")
        page.goto(f"/jobs/{job.pk}/")
        facts = page.locator(f"#job-{job.pk}-facts")
        assert facts.locator("pre.log").inner_text() == "(empty)"
        page.wait_for_function("document.querySelector('.job-watch') && "
                               "document.querySelector('.job-watch').dataset.polling === undefined")

        ctx.step("Creating the first half")  # as the worker does: saved, then published (Redis -> SSE)
        facts.locator("pre.log", has_text="Creating the first half").wait_for()
        finished = facts.locator("xpath=.//dt[normalize-space()='Finished']/following-sibling::dd[1]")
        assert finished.inner_text() == "—"
        uninterruptible = page.locator("text=This kind of job cannot be interrupted safely")
        assert uninterruptible.is_visible()  # a create has no safe point to stop at: no Cancel, and why

        ctx.step("Creating the second half")
        facts.locator("pre.log", has_text="Creating the second half").wait_for()
        finish_inline(ctx, Job.State.SUCCEEDED, result="Created live.qcow2")
        page.wait_for_selector(".progress[data-state=succeeded]")
        facts.locator("pre.log", has_text="Created live.qcow2").wait_for()
        assert Job.objects.get(pk=job.pk).finished_at is not None and finished.inner_text() != "—"
        assert uninterruptible.count() == 0  # over: nothing left to interrupt
        log = facts.locator("pre.log").inner_text().splitlines()
        assert [line.split(" ", 1)[1] for line in log] == [
            "Creating the first half", "Creating the second half", "Created live.qcow2"]
        # the result is said once, not also as the last step beside the state
        assert page.locator(f"#job-{job.pk}-progress").inner_text().count("Created live.qcow2") == 1
        assert not facts.get_attribute("hx-get")  # over: nothing reloads it any more
        assert "{#" not in page.inner_text("main") and "{% comment" not in page.inner_text("main")  # no notes shown
        page.click("#job-volume")  # the volume's name leads to its pool's table, searched for it
        page.wait_for_url(f"**/pools/{pool.pk}/?q=live.qcow2#volume-table")
        assert page.input_value("#volume-search") == "live.qcow2"


def test_a_refused_htmx_click_is_said_on_the_page(asgi_server, member, local_host, monkeypatch):
    """htmx swaps nothing on an error answer: the page says what the server said instead of ignoring the click."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # playwright's loop lives in this thread

    def cancellable_job() -> Job:
        return running_job(member, local_host, "wipe", cancellable=True, volume_name="w.img")

    with browser_page(asgi_server.url) as page:
        log_in(page, member.username, "correct-horse-battery")
        problem = page.locator("#request-problem")
        gone = cancellable_job().pk
        page.goto(f"/jobs/{gone}/")
        assert problem.is_hidden()
        Job.objects.filter(pk=gone).delete()  # removed meanwhile: the cancel answers 404
        page.click(f"#job-{gone}-progress button:has-text('Cancel')")
        problem.wait_for()
        assert problem.inner_text() == "Not found: There is nothing here, or nothing you may see."

        job = cancellable_job()
        page.goto(f"/jobs/{job.pk}/")
        page.route("**/cancel/", lambda route: route.abort())  # no answer at all, as from a server that is down
        page.click(f"#job-{job.pk}-progress button:has-text('Cancel')")
        page.wait_for_function("document.getElementById('request-problem').textContent.includes('could not be "
                               "reached')")
        page.unroute("**/cancel/")
        other = page.context.new_page()  # a login in another tab changes the session's CSRF token
        log_in(other, member.username, "correct-horse-battery")
        page.click(f"#job-{job.pk}-progress button:has-text('Cancel')")
        page.wait_for_function("document.getElementById('request-problem').textContent.includes('security token "
                               "is out of date')")
        assert not Job.objects.get(pk=job.pk).cancel_requested  # nothing was done

        page.reload()  # a fresh page: its token is the current one, and the click goes through
        assert problem.is_hidden()
        page.click(f"#job-{job.pk}-progress button:has-text('Cancel')")
        page.wait_for_selector("text=Cancelling at the next safe point")
        assert Job.objects.get(pk=job.pk).cancel_requested and problem.is_hidden()


def test_a_stream_that_ends_before_the_job_leaves_the_page_polling(asgi_server, member, local_host, monkeypatch):
    """The server ends the events with the last state it read when Redis goes away: the page then polls."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # playwright's loop lives in this thread
    from django.template.loader import render_to_string

    from jobs import progress

    job = running_job(member, local_host, "wipe", volume_name="quiet.img")
    running = render_to_string("jobs/_progress.html", {"snap": progress.snapshot(job)}).replace("\n", " ")
    with browser_page(asgi_server.url) as page:
        log_in(page, member.username, "correct-horse-battery")
        # What the events view sends when Redis is away: the state it read, then the end.
        stream = f"event: job\ndata: {running}\n\nevent: end\ndata: \n\n"
        page.route(f"**/jobs/{job.pk}/events/",
                   lambda route: route.fulfill(status=200, content_type="text/event-stream", body=stream), times=1)
        page.goto(f"/jobs/{job.pk}/")
        page.wait_for_function("document.querySelector('.job-watch').dataset.polling === '1'")
        finish_inline(JobContext(job), Job.State.SUCCEEDED, result="Wiped quiet.img")
        page.wait_for_selector(f"#job-{job.pk}-progress[data-state=succeeded]", timeout=10_000)
        page.locator(f"#job-{job.pk}-facts pre.log", has_text="Wiped quiet.img").wait_for()


def test_a_long_log_line_wraps_in_its_column_and_leaves_the_details_readable(asgi_server, member, local_host,
                                                                            monkeypatch):
    """A log line longer than the page once widened the log's column until the details' column was a few letters
    wide, each date and name broken letter by letter."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    line = "Attaching pool-with-a-long-name/volume-with-a-long-name.qcow2 to a-vm-with-a-long-name " * 3
    job = Job.objects.create(kind="vm-attach", host=local_host, created_by=member, state=Job.State.SUCCEEDED,
                             log=f"23:35:27 {line}", result="attached")
    with browser_page(asgi_server.url) as page:
        log_in(page, member.username, "correct-horse-battery")
        page.goto(f"/jobs/{job.pk}/")
        facts = page.locator(f"#job-{job.pk}-facts")
        details, log = facts.locator("section.card").first, facts.locator("section.card").last
        assert abs(details.bounding_box()["width"] - log.bounding_box()["width"]) < 2  # two equal columns
        pre = log.locator("pre.log")
        assert pre.evaluate("e => e.scrollWidth <= e.clientWidth")  # wrapped, not scrolled sideways
        kind = details.locator("xpath=.//dt[normalize-space()='Kind']/following-sibling::dd[1]")
        assert kind.inner_text() == "VM disk attach" and kind.bounding_box()["height"] < 30  # one line
