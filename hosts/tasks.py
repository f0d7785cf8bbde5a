"""Celery tasks for hosts: the connection check runs here, never in a request.

The sync tasks are the inventory's (inventory/tasks.py); views below it start them by name:
``SYNC_JOB`` is that task's name in the queue.
"""

from __future__ import annotations

from celery import shared_task

from .models import Host
from .status import check_host

SYNC_JOB = "virtstorage.hosts.tasks.sync_job"  # inventory.tasks.sync_job


@shared_task(name="virtstorage.hosts.tasks.check_host_task", ignore_result=True)
def check_host_task(host_id: int) -> None:
    host = Host.objects.filter(pk=host_id).first()
    if host is not None:
        check_host(host)
