"""`job|snapshot`: a Job as the snapshot partials/job_watch.html renders, for lists of running jobs."""

from __future__ import annotations

from typing import Any

from django import template

from jobs import progress
from jobs.models import Job

register = template.Library()


@register.filter
def snapshot(job: Job) -> dict[str, Any]:
    return progress.snapshot(job)
