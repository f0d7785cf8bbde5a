"""A cancel that lands while a job runs: whatever the body was doing when the owner's cancel took its
ground away (an abandoned upload's row deleted under it), the job ends cancelled, not failed, and its log
keeps what went wrong. A failure nobody asked for stays a failure."""

from __future__ import annotations

import pytest
from django.test import RequestFactory

from audit.models import AuditRecord
from jobs import runner
from jobs.audit_records import audit_action
from jobs.models import Job
from volumes.models import Upload
from volumes.upload_job import upload_volume
from volumes.upload_views import abandon

pytestmark = pytest.mark.django_db(transaction=True)


def _queued(pool, user, kind: str = "create", **fields) -> Job:
    return Job.objects.create(kind=kind, host=pool.host, pool=pool, pool_name=pool.name, created_by=user,
                              cancellable=True, **fields)


def _run(job: Job, body) -> Job:
    runner.run_job(job.pk, body)
    job.refresh_from_db()
    return job


def test_a_body_that_fails_after_its_cancel_was_asked_ends_cancelled_with_the_failure_logged(synced, member):
    pool, _ = synced
    job = _queued(pool, member)

    def body(ctx: runner.JobContext) -> str:
        Job.objects.filter(pk=ctx.job.pk).update(cancel_requested=True)  # the owner, from another request
        raise LookupError("the row the body reads is gone")

    job = _run(job, body)
    assert (job.state, job.error) == (Job.State.CANCELLED, "Cancelled by the user.")
    assert "Failed: the row the body reads is gone" in job.log and "Cancelled at the owner's request" in job.log
    assert AuditRecord.objects.get(action=audit_action("create"), outcome="cancelled").detail["job"] == job.pk


def test_a_failure_without_a_cancel_stays_a_failure(synced, member):
    pool, _ = synced
    job = _run(_queued(pool, member), lambda ctx: (_ for _ in ()).throw(LookupError("libvirt said no")))
    assert (job.state, job.error) == (Job.State.FAILED, "libvirt said no")


def test_an_upload_abandoned_as_its_job_begins_leaves_the_job_cancelled(synced, member, settings, tmp_path):
    """The race CI once lost: the job was claimed (running), then the owner abandoned the upload before
    the body read it."""
    settings.UPLOAD_STAGING_DIR = tmp_path
    pool, _ = synced
    upload = Upload.objects.create(created_by=member, pool=pool, volume_name="gone.img", size=1024**2,
                                   capacity=1024**2, streaming=True)
    job = _queued(pool, member, kind="upload", volume_name="gone.img", params={"upload": str(upload.pk)})
    Upload.objects.filter(pk=upload.pk).update(job=job)
    upload.refresh_from_db()
    request = RequestFactory().delete("/")
    request.user = member
    send = upload_volume.run.__wrapped__  # the job's body, without its Celery wrapper

    def abandoned_then_sent(ctx: runner.JobContext) -> str:
        assert abandon(request, upload) == ""
        return send(ctx)

    job = _run(job, abandoned_then_sent)
    assert (job.state, job.error) == (Job.State.CANCELLED, "Cancelled by the user."), job.log
    assert "gone (abandoned or expired)" in job.log and not Upload.objects.filter(pk=upload.pk).exists()


def test_an_upload_expired_before_its_job_began_fails_saying_so(synced, member):
    pool, _ = synced
    job = _queued(pool, member, kind="upload", volume_name="expired.img",
                  params={"upload": "0f0f0f0f-0000-4000-8000-000000000000"})
    job = _run(job, upload_volume.run.__wrapped__)
    assert job.state == Job.State.FAILED
    assert job.error == "The upload is gone (abandoned or expired) before its job began; nothing was written."
