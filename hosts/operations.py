"""A host's steps, once for the pages and the REST API: add, edit and forget it (hosts/forms.py checks the data,
the URI allow-list included), test its connection and sync it. Each step records its audit entry here; the
callers only say the outcome their own way (a message and a redirect, or JSON).

The connection test is a Celery task with no job row (it only reads the host and writes its status); the sync
is a job of the inventory's, started by its task's name (SYNC_JOB).
"""

from __future__ import annotations

from django.db import transaction
from django.utils.translation import gettext as _

from audit.log import changes, record
from jobs.models import Job
from jobs.progress import broker_available
from jobs.rows import for_update
from jobs.runner import JobError, QueueUnavailable, launch

from .forms import HostForm
from .models import Host
from .tasks import SYNC_JOB, check_host_task


def add(form: HostForm, *, user, request=None) -> tuple[Host, Job | None, str]:
    """Save the new host of a valid form and start its first sync: (host, sync job, "") or, when the sync could
    not start, (host, None, why): the host stays added either way."""
    host = form.save()
    record("host.create", request=request, target=host, detail={"uri": host.uri})
    try:
        return host, start_sync(host, user=user, request=request), ""
    except JobError as exc:
        return host, None, str(exc)


def edit(form: HostForm, *, request=None) -> Host:
    """Save a valid form's changes to its host, recording what changed."""
    host = form.save()
    record("host.edit", request=request, target=host, detail=changes(form))
    return host


def forget(host: Host, *, request=None) -> None:
    """Remove the host (and its pools, volumes and VMs) from the app. Nothing on the host itself is touched."""
    with transaction.atomic():  # recorded while the row (and its id) is there, removed with it
        # Locked first: a sync or a launch writing rows under the host (which holds it: Host.hold) finishes
        # before the cascade below looks for them, and one that comes later finds the host gone.
        if for_update(Host.objects.filter(pk=host.pk)).first() is None:
            return  # removed meanwhile by someone else: nothing left to do
        record("host.delete", request=request, target=host, detail={"uri": host.uri})
        host.delete()


def start_check(host: Host, *, request=None) -> None:
    """Queue the connection test on the host's queue. QueueUnavailable when Redis is down (recorded as refused)."""
    if not broker_available():
        record("host.test", request=request, target=host, outcome="refused")
        raise QueueUnavailable(_("Could not test the connection: the job queue (Redis) is not reachable."))
    check_host_task.apply_async((host.pk,), queue=host.queue or None)
    record("host.test", request=request, target=host, outcome="started")


def start_sync(host: Host, *, user, request=None, pools: list[str] | None = None) -> Job:
    """The sync job of the host (of these pools only, when given). Raises JobError."""
    return launch(SYNC_JOB, kind="sync", user=user, host=host, params={"pools": pools}, request=request)
