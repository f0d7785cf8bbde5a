"""Cancelling a job, once for the job page and the REST API: a queued job is cancelled at once (and recorded);
a running one is asked to stop at its next safe point (JobContext.check_cancel)."""

from __future__ import annotations

from django.utils import translation
from django.utils.translation import gettext as _

from .audit_records import audit_job
from .models import Job
from .progress import publish
from .signals import announce_end


def request_cancel(job: Job, *, request=None) -> bool:
    """Ask the job to stop; False when it is not active or cannot be cancelled. The job is refreshed."""
    if not (job.is_active and job.cancellable):
        return False
    if job.state == Job.State.QUEUED:
        with translation.override(job.language or translation.get_language()):  # the job's language, as its steps
            error = _("Cancelled before it started.")
        if Job.objects.filter(pk=job.pk, state=Job.State.QUEUED).update(
                state=Job.State.CANCELLED, cancel_requested=True, error=error):
            audit_job(job, "cancelled", request=request, error=error)
            job.refresh_from_db()
            announce_end(job)
    else:
        Job.objects.filter(pk=job.pk).update(cancel_requested=True)
    job.refresh_from_db()
    publish(job)
    return True
