from __future__ import annotations

from datetime import timedelta

from celery import current_app, shared_task
from django.conf import settings
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from . import progress
from .audit_records import audit_job
from .models import Job
from .runner import queue_for
from .signals import announce_end


@shared_task(name="virtstorage.jobs.tasks.reap_stale_jobs", ignore_result=True)
def reap_stale_jobs() -> int:
    """Fail running jobs whose worker stopped heartbeating (killed, crashed, host lost)."""
    cutoff = timezone.now() - timedelta(seconds=settings.JOB_STALE_SECONDS)
    stale = list(Job.objects.filter(state=Job.State.RUNNING, heartbeat_at__lt=cutoff))
    for job in stale:
        with translation.override(job.language or settings.LANGUAGE_CODE):  # the job's language, as its steps
            error = _("The worker running this job (%(worker)s) stopped responding at %(when)s: it was killed or "
                      "crashed. The operation may be incomplete; check the volume before using it.") % {
                "worker": job.worker or _("unknown"),
                "when": f"{timezone.localtime(job.heartbeat_at):%Y-%m-%d %H:%M:%S}"}
        _fail(job, Job.objects.filter(pk=job.pk, state=Job.State.RUNNING, heartbeat_at__lt=cutoff), error)
    return len(stale)


@shared_task(name="virtstorage.jobs.tasks.fail_unserved_jobs", ignore_result=True)
def fail_unserved_jobs() -> int:
    """Fail jobs queued for JOB_UNSERVED_SECONDS that no worker will take: no worker listens to their queue (a
    host's queue name mistyped, the worker beside the host down), or their host was removed. Running jobs are
    reap_stale_jobs'. Returns how many were failed."""
    cutoff = timezone.now() - timedelta(seconds=settings.JOB_UNSERVED_SECONDS)
    waiting = list(Job.objects.filter(state=Job.State.QUEUED, created_at__lt=cutoff).select_related("host"))
    if not waiting:
        return 0
    listened = _listened_queues()
    failed = 0
    for job in waiting:
        queue = queue_for(job.kind, job.host) if job.host else ""
        if job.host and (listened is None or queue in listened):
            continue  # served, only busy (or the workers did not answer: no verdict)
        with translation.override(job.language or settings.LANGUAGE_CODE):
            error = (_("No worker listens to queue %(queue)s, so none took this job: start one with "
                       "--queues=%(queue)s, or correct the host's queue name, then start the job again.")
                     % {"queue": queue} if job.host else
                     _("Its host was removed before a worker took it; nothing was done."))
        failed += _fail(job, Job.objects.filter(pk=job.pk, state=Job.State.QUEUED), error)
    return failed


def _listened_queues() -> set[str] | None:
    """The queues the running workers consume, by asking them (a second at most); None when none answered."""
    answers = current_app.control.inspect(timeout=1.0).active_queues()
    if not answers:
        return None
    return {queue["name"] for queues in answers.values() for queue in queues}


def _fail(job: Job, still, error: str) -> int:
    """Fail the job with error if `still` (its row, as it was found) matches; tell whoever follows it."""
    updated = still.update(state=Job.State.FAILED, finished_at=timezone.now(), error=error)
    if updated:
        job.refresh_from_db()
        audit_job(job, "failed", error=job.error)
        announce_end(job)
        progress.publish(job)
    return updated
