"""Volume operations in a real browser: create a volume, watch its job finish, then delete it by name."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from django.urls import reverse

from inventory.sync import sync_volumes
from jobs.models import Job
from jobs.runner import JobContext, finish_inline
from tests.browser.browser import browser_page, log_in
from tests.conftest import running_job, virsh

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def create_qcow2(page, name: str, capacity: str) -> None:
    """Fill the open create form, submit it, and wait on the job page for the job to succeed."""
    page.fill("#id_name", name)
    page.fill("#id_capacity", capacity)
    page.select_option("#id_format", "qcow2")
    page.click("button:has-text('Create volume')")
    page.wait_for_url("**/jobs/*/")
    # the live progress partial, swapped in by SSE, ends in the final state
    page.wait_for_selector(".progress[data-state=succeeded]", timeout=60_000)


def test_create_then_delete_a_volume_from_the_browser(asgi_server, celery_worker, synced, member):
    pool, scratch = synced
    with browser_page(asgi_server.url) as page:
        log_in(page, member.username, "correct-horse-battery")
        page.goto(f"/pools/{pool.pk}/")
        page.click("text=New volume")
        create_qcow2(page, "from-browser.qcow2", "2G")
        info = scratch.vol_info("from-browser.qcow2")
        assert info["Capacity"].startswith(str(2 * 1024**3))

        page.goto(f"/pools/{pool.pk}/")
        page.click("#volume-table >> text=from-browser.qcow2")
        assert "thin" in page.locator(".sizes h2").inner_text()
        page.click(".actions >> text=Delete")
        page.fill("#id_confirm", "wrong-name")
        page.click("button:has-text('Delete for good')")
        assert page.locator(".errorlist").count() >= 1  # refused: the name was not typed
        page.fill("#id_confirm", "from-browser.qcow2")
        page.click("button:has-text('Delete for good')")
        page.wait_for_url("**/jobs/*/")
        page.wait_for_selector(".progress[data-state=succeeded]", timeout=60_000)
    assert "from-browser.qcow2" not in virsh("vol-list", scratch.name)


def test_metadata_preallocation_is_offered_for_qcow2_only(asgi_server, synced, member):
    """qcow2's "metadata only" is off while raw is chosen, and a choice of it falls back to thin; the form still
    refuses the pair for a browser without scripts (tests/volumes/test_ops_validation.py)."""
    pool, _scratch = synced
    with browser_page(asgi_server.url) as page:
        log_in(page, member.username, "correct-horse-battery")
        page.goto(reverse("volumes:create", args=[pool.pk]))
        metadata, thin = "input[name=provisioning][value=metadata]", "input[name=provisioning][value=off]"
        assert page.is_enabled(metadata)  # qcow2 first
        page.check(metadata)
        page.select_option("#id_format", "raw")
        assert page.is_disabled(metadata) and page.is_checked(thin)
        page.select_option("#id_format", "qcow2")
        assert page.is_enabled(metadata) and page.is_checked(thin)


def test_pick_a_backing_volume_by_searching_for_it(asgi_server, celery_worker, synced, member):
    from volumes.models import Volume

    pool, scratch = synced
    Volume.objects.bulk_create(Volume(pool=pool, name=f"bulk-{i:04}.qcow2", format="qcow2", capacity=2**20)
                               for i in range(120))  # rows only: more than the picker lists at once
    base = Volume.objects.get(pool=pool, name="raw-thin.img")
    Volume.objects.filter(pk=base.pk).update(name="zz-base.img")  # sorted past the first 50
    virsh("vol-clone", "--pool", scratch.name, "raw-thin.img", "zz-base.img")
    Volume.objects.filter(pk=base.pk).update(path=str(scratch.path / "zz-base.img"))
    with browser_page(asgi_server.url) as page:
        log_in(page, member.username, "correct-horse-battery")
        page.goto(f"/volumes/new/in-pool/{pool.pk}/")
        assert page.locator("#id_backing option", has_text="zz-base.img").count() == 0
        page.fill("input[name=backing_search]", "zz-base")
        page.wait_for_selector("#id_backing option:has-text('zz-base.img')", state="attached")
        page.select_option("#id_backing", label=page.locator("#id_backing option", has_text="zz-base.img")
                           .inner_text())
        create_qcow2(page, "picked-overlay.qcow2", "64M")
    assert "zz-base.img" in virsh("vol-dumpxml", "--pool", scratch.name, "picked-overlay.qcow2")


@contextmanager
def volume_page_during(kind: str, asgi_server, synced, member):
    """raw-thin.img's page, open while a job of this kind runs on the volume; yields (page, job context, volume,
    pool, scratch pool). The test plays the worker: libvirt's change, the job's sync of the volume, its end."""
    from volumes.models import Volume

    pool, scratch = synced
    volume = Volume.objects.get(pool=pool, name="raw-thin.img")
    job = running_job(member, pool.host, kind, pool=pool, volume_name=volume.name)
    with browser_page(asgi_server.url) as page:
        log_in(page, member.username, "correct-horse-battery")
        page.goto(volume.get_absolute_url())
        yield page, JobContext(job), volume, pool, scratch


def test_the_volume_page_reloads_when_the_job_on_it_ends(asgi_server, synced, member, monkeypatch):
    """A job followed on the volume's page ends: the page shows the volume as the job left it."""
    from volumes.models import Volume

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # playwright's loop lives in this thread
    with volume_page_during("resize", asgi_server, synced, member) as (page, ctx, volume, pool, scratch):
        resize_card = page.locator(f".volume-job:has(#job-{ctx.job.pk}-progress)")
        assert resize_card.count() == 1
        virsh("vol-resize", "--pool", scratch.name, volume.name, "200M")
        assert sync_volumes(pool.host, [(pool.name, volume.name)]) is not None
        assert Volume.objects.get(pk=volume.pk).capacity == 200 * 1024**2
        assert page.locator("section.sizes .big").first.inner_text() == "64.0 MiB"  # the page: as it was loaded
        finish_inline(ctx, Job.State.SUCCEEDED, result="Resized raw-thin.img to 200 MiB")
        resize_card.wait_for(state="detached")  # reloaded (the Image panel may have started a reading meanwhile)
        assert page.locator("section.sizes .big").first.inner_text() == "200 MiB"  # the virtual size
        assert page.locator("#volume-page").count() == 1  # replaced, not nested


def test_a_delete_that_ends_on_the_volume_page_leads_to_the_pool(asgi_server, synced, member, monkeypatch):
    """The volume is gone when its delete ends: the page does not reload into a 404, its card links the pool."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # playwright's loop lives in this thread
    with volume_page_during("delete", asgi_server, synced, member) as (page, ctx, volume, pool, scratch):
        virsh("vol-delete", "--pool", scratch.name, volume.name)
        assert sync_volumes(pool.host, [(pool.name, volume.name)]) is not None
        ctx.leads_to(pool.get_absolute_url())
        finish_inline(ctx, Job.State.SUCCEEDED, result="Deleted raw-thin.img")
        page.wait_for_selector(f"#job-{ctx.job.pk}-progress[data-state=succeeded]")
        page.click(f"#job-{ctx.job.pk}-progress a.result-link")
        page.wait_for_url(f"**{pool.get_absolute_url()}")
        assert page.locator("#volume-table >> text=raw-thin.img").count() == 0
