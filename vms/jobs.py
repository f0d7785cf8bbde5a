"""Starting the attach and detach jobs: one place for what a job is on and what it is given, whoever asks
(the pages here, the API). Raises jobs.runner.JobError (queue down, volume busy) for the caller to show."""

from __future__ import annotations

from django.conf import settings

from hosts.models import Domain
from jobs.models import Job
from jobs.runner import launch
from volumes.models import Volume

from . import tasks
from .classify import DiskView


def start_attach(*, user, request, vm: Domain, volume: Volume, params: dict) -> Job:
    """The attach job, on the volume: jobs on one volume exclude each other. params: a form's job_params."""
    return launch(tasks.attach_disk_job, kind="vm-attach", user=user, request=request, host=vm.host,
                  pool=volume.pool, volume_name=volume.name, params=params)


def start_detach(*, user, request, vm: Domain, disk: DiskView) -> Job:
    """The detach job of one disk: on its volume when the user may see that volume's pool (else their own job
    page would hide from them), waiting VM_DETACH_TIMEOUT_SECONDS for a running guest."""
    volume = disk.volume if disk.managed and Volume.objects.visible_to(user).filter(pk=disk.volume.pk).exists() \
        else None
    params = {"domain": vm.name, "uuid": vm.uuid, "target": disk.disk.target,
              "timeout": settings.VM_DETACH_TIMEOUT_SECONDS}
    return launch(tasks.detach_disk_job, kind="vm-detach", user=user, request=request, host=vm.host,
                  pool=volume.pool if volume else None, volume_name=volume.name if volume else "", params=params)
