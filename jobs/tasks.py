from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from . import progress
from .audit_records import audit_job
from .models import Job
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
        updated = Job.objects.filter(pk=job.pk, state=Job.State.RUNNING, heartbeat_at__lt=cutoff).update(
            state=Job.State.FAILED, finished_at=timezone.now(), error=error)
        if updated:
            job.refresh_from_db()
            audit_job(job, "failed", error=job.error)
            announce_end(job)
            progress.publish(job)
    return len(stale)
