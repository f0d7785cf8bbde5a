"""The Jobs page: filtered by state (links keep the scope and the state from page to page), and, while a job of
the page runs, its table follows the jobs without a reload."""

from __future__ import annotations

import pytest

from jobs.models import Job
from jobs.runner import JobContext, finish_inline
from tests.browser.browser import browser_page, log_in
from tests.conftest import running_job

pytestmark = pytest.mark.django_db(transaction=True)


def make_jobs(user, host, state: str, count: int) -> None:
    Job.objects.bulk_create([Job(kind="create", host=host, created_by=user, state=state, volume_name=f"{state}-{i}")
                             for i in range(count)])


def test_the_state_filter_and_its_pages(member, member_client, local_host):
    make_jobs(member, local_host, Job.State.FAILED, 51)
    make_jobs(member, local_host, Job.State.SUCCEEDED, 2)
    page = member_client.get("/jobs/", {"state": "failed"}).content.decode()
    assert "failed-50" in page and "succeeded-0" not in page
    assert '<a href="?state=failed" class="current" aria-current="true">Failed</a>' in page
    assert 'href="?state=failed&amp;page=2">Older' in page  # the next page keeps the filter
    assert '<a href="?" >Any state</a>' in page  # the filter dropped, and with it the page number
    second = member_client.get("/jobs/", {"state": "failed", "page": "2"}).content.decode()
    assert "failed-0" in second and "succeeded-" not in second
    assert '<a href="?state=failed&amp;scope=mine" class="current">Mine</a>' in second  # the scope: from page 1
    assert '<a href="?state=failed&amp;page=1">‹ Newer</a>' in second
    unknown = member_client.get("/jobs/", {"state": "bogus"}).content.decode()  # no such state: every job
    assert "succeeded-1" in unknown and 'class="current" aria-current="true">Any state<' in unknown
    assert 'hx-trigger="every 2s' not in unknown  # nothing runs: the table stays still


@pytest.mark.browser
def test_a_running_job_s_row_follows_it(asgi_server, member, local_host, monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # playwright's loop lives in this thread
    job = running_job(member, local_host, "wipe", volume_name="row.img")
    with browser_page(asgi_server.url) as page:
        log_in(page, member.username, "correct-horse-battery")
        page.goto("/jobs/")
        row = page.locator("#job-table tr", has_text="row.img")
        assert "Running" in row.inner_text()
        ctx = JobContext(job)
        ctx.step("Overwriting every byte")
        page.wait_for_function("document.querySelector('#job-table').textContent.includes('Overwriting every byte')")
        finish_inline(ctx, Job.State.SUCCEEDED, result="Wiped row.img")
        page.wait_for_function("document.querySelector('#job-table').textContent.includes('Wiped row.img')")
        assert "Succeeded" in row.inner_text()
        assert page.locator("#job-table").get_attribute("hx-trigger") is None  # over: the polling stopped
