"""A volume that another VM has read-write goes to a second VM only when both disks are shareable: refused at the
form from the inventory, and again in the job from libvirt (for a VM the inventory has not seen yet)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from jobs.models import Job
from tests.vms.helpers import run_job, vm_row
from tests.vms.machines import defined_vm, disk

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_volume_used_read_write_elsewhere_is_refused_unless_both_are_shareable(
        member_client, celery_worker, synced, stopped_vm, local_host, tmp_path):
    pool, scratch = synced
    row = vm_row(local_host, stopped_vm)
    url = reverse("vms:attach", args=[row.pk])
    by_path = str(scratch.path / "raw-thin.img")
    with defined_vm(tmp_path, "holder", disks=[disk("vdb", file=by_path),
                                               disk("vdc", pool=scratch.name, volume="raw-prealloc.img",
                                                    shareable=True)]) as holder:
        vm_row(local_host, holder)  # the inventory knows who holds what

        for extra in ({}, {"shareable": "on"}, {"readonly": "on"}):
            response = member_client.post(url, {"pool": pool.pk, "volume": "raw-thin.img", "bus": "virtio", **extra})
            assert response.status_code == 400
            assert (f"Refused: VM {holder.name} already uses this volume read-write as vdb"
                    in response.content.decode()), extra
        response = member_client.post(url, {"pool": pool.pk, "volume": "raw-prealloc.img", "bus": "virtio"})
        assert response.status_code == 400 and "as vdc (shareable): both disks must be marked shareable" in (
            response.content.decode())
        assert not Job.objects.exists() and stopped_vm.blklist(inactive=True) == {}

        job = run_job(member_client, url, {"pool": pool.pk, "volume": "raw-prealloc.img", "bus": "virtio",
                                           "shareable": "on"})
        assert job.state == Job.State.SUCCEEDED, job.error
        assert stopped_vm.blklist(inactive=True) == {"vda": "raw-prealloc.img"}
        assert stopped_vm.disk("vda", inactive=True).find("shareable") is not None

        response = member_client.post(url, {"pool": pool.pk, "volume": "raw-prealloc.img", "bus": "scsi",
                                            "shareable": "on"})
        assert response.status_code == 400
        assert f"VM {stopped_vm.name} already has this volume as vda." in response.content.decode()


def test_the_job_asks_libvirt_again(member_client, celery_worker, synced, stopped_vm, local_host, tmp_path):
    """A VM defined after the last sync holds the volume: the form cannot know, the job refuses."""
    pool, scratch = synced
    row = vm_row(local_host, stopped_vm)
    with defined_vm(tmp_path, "late", disks=[disk("vdb", pool=scratch.name, volume="base.qcow2", fmt="qcow2")]) as late:
        job = run_job(member_client, reverse("vms:attach", args=[row.pk]),
                      {"pool": pool.pk, "volume": "base.qcow2", "bus": "virtio"})
        assert job.state == Job.State.FAILED
        assert job.error == (f"Refused: VM {late.name} already uses this volume read-write as vdb: both disks "
                             "must be marked shareable.")
        assert stopped_vm.blklist(inactive=True) == {}
