"""The upload page in Debian's chromium against the real ASGI server, worker and libvirtd."""

from __future__ import annotations

import pytest
from django.test import Client

from jobs.models import Job
from tests.volumes.test_upload_download import MiB, make_sparse_file, sha256_file
from virtstorage.virt.units import binary_size
from volumes.models import Upload

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]

# Records every width the two bars take, so the test sees them move, not only their end.
RECORD_BARS = """
window.barWidths = {upload: [], job: []};
new MutationObserver(() => {
  const up = document.getElementById('upload-bar');
  if (up) window.barWidths.upload.push(parseFloat(up.style.width));
  const job = document.querySelector('#upload-job [role=progressbar]');
  if (job) window.barWidths.job.push(parseInt(job.getAttribute('aria-valuenow')));
}).observe(document.body, {subtree: true, childList: true, attributes: true});
"""


@pytest.fixture
def page(asgi_server, member, monkeypatch):
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; the test's ORM calls are still plain sync code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    django_client = Client()
    django_client.force_login(member)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        context = browser.new_context(base_url=asgi_server.url)
        context.add_cookies([{"name": "sessionid", "value": django_client.cookies["sessionid"].value,
                              "url": asgi_server.url}])
        try:
            yield context.new_page()
        finally:
            browser.close()


def test_browser_upload_sends_holes_shows_progress_and_the_job_finishes(page, synced, celery_worker, tmp_path):
    pool, scratch = synced
    size = 56 * MiB  # 7 chunks of 8 MiB: data, zeros, zeros, data, zeros, zeros, data
    src = make_sparse_file(tmp_path / "browser.img", size, [(0, MiB), (24 * MiB + 5, 100), (size - MiB, MiB)])
    page.goto(f"/volumes/uploads/new/?pool={pool.pk}")
    assert page.locator("#upload-cancel").is_hidden()  # "Stop sending" only while sending
    assert "Sent in chunks of 8.0 MiB;" in page.inner_text("main")  # binary units, as everywhere
    page.evaluate(RECORD_BARS)
    holes_declared = []
    page.on("request", lambda r: holes_declared.append(r.url) if r.method == "PUT" and "hole=" in r.url else None)
    page.set_input_files("#upload-file", str(src))
    assert page.input_value("#upload-volume") == "browser.img"  # defaulted from the file name
    page.click("#upload-start")
    page.wait_for_selector('#upload-job [data-state="succeeded"]', timeout=60_000)

    widths = page.evaluate("window.barWidths")
    upload_widths = [w for w in widths["upload"] if w == w]  # drop NaN before the first update
    assert len(set(upload_widths)) >= 4 and upload_widths == sorted(upload_widths), upload_widths
    assert upload_widths[-1] == 100
    assert widths["job"] and widths["job"][-1] == 100
    assert "100.0%" in page.inner_text("#upload-numbers")
    page.wait_for_selector("#upload-cancel", state="hidden")  # nothing left to stop

    upload = Upload.objects.get(pool=pool, volume_name="browser.img")
    assert upload.hole_bytes == 4 * 8 * MiB  # the four all-zero chunks were not sent
    assert len(holes_declared) == 2, holes_declared  # each run of two zero chunks in one request
    assert upload.state == Upload.State.DONE and upload.job.state == Job.State.SUCCEEDED
    assert sha256_file(scratch.path / "browser.img") == sha256_file(src)


def test_browser_shows_the_servers_refusal(page, synced):
    pool, _ = synced
    page.goto(f"/volumes/uploads/new/?pool={pool.pk}")
    page.set_input_files("#upload-file", {"name": "x.img", "mimeType": "application/octet-stream",
                                          "buffer": b"data"})
    page.fill("#upload-volume", "raw-thin.img")  # exists already
    page.click("#upload-start")
    page.wait_for_selector("#upload-errors li")
    assert "already has a volume raw-thin.img" in page.inner_text("#upload-errors")
    assert page.input_value("#upload-volume") == "raw-thin.img"  # nothing the person typed is lost


def test_browser_writes_sizes_as_the_pages_do(page, synced, celery_worker, tmp_path):
    """The upload's own progress line writes a size by the pages' rule (binary_size): 150 MiB, not 150.0."""
    pool, _ = synced
    size = 150 * MiB
    src = make_sparse_file(tmp_path / "round.img", size, [(0, MiB), (size - MiB, MiB)])
    page.goto(f"/volumes/uploads/new/?pool={pool.pk}")
    page.set_input_files("#upload-file", str(src))
    page.click("#upload-start")
    page.wait_for_selector('#upload-job [data-state="succeeded"]', timeout=60_000)
    assert f"{binary_size(size)} of {binary_size(size)}" in page.inner_text("#upload-numbers")
    assert binary_size(size) == "150 MiB"
