"""Attach and detach end to end: the form, the job in a real Celery worker, libvirt, checked with virsh domblklist and
the domain XML; persistently on a stopped VM, live on a running one, and what a running VM refuses."""

from __future__ import annotations

from html import unescape

import pytest
from django.urls import reverse

from accounts.models import Membership, Team
from audit.models import AuditRecord
from hosts.models import Domain, DomainDisk
from jobs.models import Job
from pools.models import PoolGrant
from tests.conftest import virsh
from tests.pools.test_team_pages import account
from tests.vms.helpers import run_job, vm_row
from volumes.models import Volume

pytestmark = pytest.mark.django_db(transaction=True)


def test_attach_to_a_stopped_vm_from_its_page_then_detach(member_client, celery_worker, synced, stopped_vm,
                                                          local_host):
    pool, scratch = synced
    row = vm_row(local_host, stopped_vm)
    page = member_client.get(reverse("vms:detail", args=[row.pk])).content.decode()
    assert "Attach a volume" in page and "No disks." in page

    job = run_job(member_client, reverse("vms:attach", args=[row.pk]),
                  {"pool": pool.pk, "volume": "qcow2-thin.qcow2", "bus": "virtio", "cache": "none"})
    assert job.state == Job.State.SUCCEEDED, job.error
    assert (job.kind, job.pool_id, job.volume_name) == ("vm-attach", pool.pk, "qcow2-thin.qcow2")
    assert job.result.startswith(f"vda attached persistently on {stopped_vm.name}.")
    assert "not running" in job.result
    assert stopped_vm.blklist(inactive=True) == {"vda": "qcow2-thin.qcow2"}
    element = stopped_vm.disk("vda", inactive=True)
    assert element.get("type") == "volume"
    assert element.find("source").attrib == {"pool": scratch.name, "volume": "qcow2-thin.qcow2"}
    assert element.find("driver").get("type") == "qcow2" and element.find("driver").get("cache") == "none"

    # the job re-synced the host: the VM page lists the disk, managed, linked to the volume
    disk = DomainDisk.objects.get(machine=row)
    assert (disk.target, disk.source_type, disk.pool_name, disk.volume_name, disk.bus, disk.cache) == (
        "vda", "volume", scratch.name, "qcow2-thin.qcow2", "virtio", "none")
    volume = Volume.objects.get(pool=pool, name="qcow2-thin.qcow2")
    page = member_client.get(reverse("vms:detail", args=[row.pk])).content.decode()
    assert f'href="{volume.get_absolute_url()}"' in page and ">managed</span>" in page
    volume_page = member_client.get(volume.get_absolute_url()).content.decode()
    assert f"VM <strong>{stopped_vm.name}</strong> as vda" in volume_page
    assert AuditRecord.objects.filter(action="vm.attach", outcome="ok", detail__job=job.pk).exists()

    detach_url = reverse("vms:detach", args=[row.pk, "vda"])
    assert "The volume and its data stay" in member_client.get(detach_url).content.decode()
    unconfirmed = member_client.post(detach_url, {})
    assert unconfirmed.status_code == 200 and not Job.objects.filter(kind="vm-detach").exists()
    job = run_job(member_client, detach_url, {"confirm": "vda"})
    assert job.state == Job.State.SUCCEEDED, job.error
    assert job.result == f"vda detached persistently on {stopped_vm.name}."
    assert stopped_vm.blklist(inactive=True) == {}
    assert not DomainDisk.objects.filter(machine=row).exists()
    assert "<target dev='vda'" not in virsh("dumpxml", "--inactive", stopped_vm.name)


def test_attach_live_from_the_volume_page_then_detach_live(member_client, celery_worker, live_pool, running_vm,
                                                           local_host):
    pool, scratch = live_pool
    row = vm_row(local_host, running_vm)
    volume = Volume.objects.get(pool=pool, name="live-a.img")
    page = member_client.get(volume.get_absolute_url()).content.decode()
    assert 'id="volume-attach"' in page and running_vm.name in page
    assert 'id="no-vm"' not in member_client.get(reverse("vms:attach_volume", args=[volume.pk])).content.decode()

    job = run_job(member_client, reverse("vms:attach_volume", args=[volume.pk]), {"vm": row.pk, "bus": "scsi"})
    assert job.state == Job.State.SUCCEEDED, job.error
    assert job.result == f"sda attached persistently and live on {running_vm.name}."
    assert running_vm.blklist() == {"sda": "live-a.img"}
    assert running_vm.blklist(inactive=True) == {"sda": "live-a.img"}

    job = run_job(member_client, reverse("vms:detach", args=[row.pk, "sda"]), {"confirm": "sda"})
    assert job.state == Job.State.SUCCEEDED, job.error
    assert job.result == f"sda detached persistently and live on {running_vm.name}."
    assert running_vm.blklist() == {} and running_vm.blklist(inactive=True) == {}


def test_a_live_virtio_detach_that_the_guest_never_answers_times_out(member_client, celery_worker, live_pool,
                                                                      running_vm, local_host, settings):
    settings.VM_DETACH_TIMEOUT_SECONDS = 1  # the view hands it to the job
    pool, scratch = live_pool
    row = vm_row(local_host, running_vm)
    job = run_job(member_client, reverse("vms:attach", args=[row.pk]), {"pool": pool.pk, "volume": "live-b.qcow2",
                                                                         "bus": "virtio"})
    assert job.state == Job.State.SUCCEEDED, job.error
    assert job.result == f"vda attached persistently and live on {running_vm.name}."

    job = run_job(member_client, reverse("vms:detach", args=[row.pk, "vda"]), {"confirm": "vda"})
    assert job.state == Job.State.FAILED
    assert "The guest did not release vda within 1 s" in job.error
    assert "out of the VM's persistent definition" in job.error and "still attached to the running VM" in job.error
    assert "vda" in running_vm.blklist() and "vda" not in running_vm.blklist(inactive=True)
    assert DomainDisk.objects.filter(machine=row, target="vda").exists()  # the running VM still has it
    page = member_client.get(reverse("vms:detail", args=[row.pk])).content.decode()
    assert "did not release vda" in page


def test_sata_on_a_running_vm_is_attached_for_its_next_start(member_client, celery_worker, live_pool, running_vm,
                                                             local_host):
    pool, scratch = live_pool
    row = vm_row(local_host, running_vm)
    job = run_job(member_client, reverse("vms:attach", args=[row.pk]),
                  {"pool": pool.pk, "volume": "live-a.img", "bus": "sata", "shareable": "on"})
    assert job.state == Job.State.SUCCEEDED, job.error
    assert job.result.startswith(f"sda attached persistently on {running_vm.name}. Not attached live: sata has no "
                                 "hotplug.")
    assert running_vm.blklist() == {}
    assert running_vm.blklist(inactive=True) == {"sda": "live-a.img"}
    assert running_vm.disk("sda", inactive=True).find("shareable") is not None


def test_the_form_checks_the_target_the_pool_and_the_image(member_client, synced, stopped_vm, local_host):
    pool, scratch = synced
    row = vm_row(local_host, stopped_vm)
    url = reverse("vms:attach", args=[row.pk])
    response = member_client.post(url, {"pool": pool.pk, "volume": "no-such.img", "bus": "virtio"})
    assert response.status_code == 400 and "has no volume no-such.img" in response.content.decode()
    response = member_client.post(url, {"pool": pool.pk, "volume": "raw-thin.img", "bus": "scsi", "target": "vdq"})
    assert response.status_code == 400 and "A scsi disk's name starts with sd." in unescape(response.content.decode())
    response = member_client.post(url, {"pool": pool.pk, "volume": "raw-thin.img", "bus": "sata", "readonly": "on"})
    assert response.status_code == 400 and "libvirt refuses read-only sata disks" in response.content.decode()
    Volume.objects.filter(pool=pool, name="raw-thin.img").update(unsafe_reason="It names a backing file outside.")
    response = member_client.post(url, {"pool": pool.pk, "volume": "raw-thin.img", "bus": "virtio"})
    assert response.status_code == 400 and "Refused: It names a backing file outside." in response.content.decode()
    assert not Job.objects.exists() and stopped_vm.blklist(inactive=True) == {}


def test_the_attach_page_says_when_no_vm_is_there_to_attach_to(synced, stopped_vm, local_host):
    """No VM of the host that the user may change: said, and Attach is off. The host's other VMs (here one of no
    team, on a user's host any it runs) belong to no team of an operator whose team may use this pool only."""
    pool, _scratch = synced
    row = vm_row(local_host, stopped_vm)  # in the inventory, of no team
    web = Team.objects.create(name="web")
    PoolGrant.objects.create(team=web, pool=pool)
    operator = account("wo", "web", Membership.Role.OPERATOR)
    volume = Volume.objects.filter(pool=pool).first()
    page = operator.get(reverse("vms:attach_volume", args=[volume.pk])).content.decode()
    assert 'id="no-vm"' in page and "is one you may change" in page
    assert '<button type="submit" class="primary" disabled>Attach</button>' in page
    Domain.objects.filter(pk=row.pk).update(team=web)  # once the team owns the VM, it is offered
    page = operator.get(reverse("vms:attach_volume", args=[volume.pk])).content.decode()
    assert 'id="no-vm"' not in page and f'value="{row.pk}"' in page
