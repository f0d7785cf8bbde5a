"""What the VM tests share: the inventory's row of a test VM, and a job started from a page."""

from __future__ import annotations

from hosts.models import Domain
from inventory.sync import sync_host
from jobs.models import Job
from tests.conftest import wait_for_job
from tests.vms.machines import TestVM
from tests.volumes.test_volume_ops import job_from


def vm_row(host, vm: TestVM) -> Domain:
    """The VM as the inventory has it after a sync of the host's VMs."""
    assert sync_host(host, pool_names=[]) is not None
    return Domain.objects.get(host=host, uuid=vm.uuid)


def run_job(client, url: str, data: dict, timeout: float = 120) -> Job:
    return wait_for_job(job_from(client.post(url, data)).pk, timeout=timeout)
