"""Celery tasks of the inventory: periodic and on-demand syncs, never in a request.

Their names are the ones they had when they lived in the hosts app, so messages already queued, beat's
schedule and views that start them by name (hosts.tasks.SYNC_JOB) keep finding them.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.utils.translation import gettext as _

from hosts.models import Host, HostRemoved
from jobs.runner import job_task

from .sync import sync_host

log = logging.getLogger(__name__)


@shared_task(name="virtstorage.hosts.tasks.sync_host_task", ignore_result=True)
def sync_host_task(host_id: int, refresh: bool = False, pool_names: list[str] | None = None) -> None:
    """A quiet sync (periodic, or after an operation): no job record."""
    host = Host.objects.filter(pk=host_id, enabled=True).first()
    if host is None:
        return
    try:
        sync_host(host, refresh=refresh, pool_names=pool_names)
    except HostRemoved as exc:  # an admin removed it while libvirt was asked: nothing to keep
        log.info("%s", exc)


@shared_task(name="virtstorage.hosts.tasks.sync_all_hosts", ignore_result=True)
def sync_all_hosts() -> None:
    for host_id, queue in Host.objects.filter(enabled=True).values_list("pk", "queue"):
        sync_host_task.apply_async((host_id,), queue=queue or None)  # a host's own queue: its worker syncs it


@job_task("sync", name="virtstorage.hosts.tasks.sync_job")
def sync_job(job) -> str:
    """An on-demand sync a user asked for: tracked as a job so its outcome shows."""
    host = job.host
    job.step(_("Connecting to %(uri)s") % {"uri": host.uri})
    result = sync_host(host, refresh=True, pool_names=job.params.get("pools"))
    if result is None:
        host.refresh_from_db()
        if host.disabled_reason:  # its URI is refused: nothing was opened
            raise RuntimeError(f"{host.name}: {host.disabled_reason}")
        raise RuntimeError(_("%(host)s is unreachable: %(error)s") % {"host": host.name, "error": host.last_error})
    return _("Synced %(result)s") % {"result": result}
