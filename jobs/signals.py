"""``job_finished``: sent once a job reaches its final state (succeeded, failed, cancelled), with the job.

Apps above the jobs app learn of a job's end through it without the runner importing them (provisioning marks
its request ready or failed). Receivers run in the process that ended the job, after the job's row is saved
and before its watchers hear the end; a receiver's failure is logged and never changes the job.
"""

from __future__ import annotations

import logging

from django.dispatch import Signal

log = logging.getLogger(__name__)

job_finished = Signal()  # sender: the Job class; job=the Job


def announce_end(job) -> None:
    for receiver, result in job_finished.send_robust(sender=type(job), job=job):
        if isinstance(result, Exception):
            log.error("job %s: a job_finished receiver (%s) failed: %s", job.pk, receiver, result,
                      exc_info=(type(result), result, result.__traceback__))
