"""The sync mirrors each host's VMs and their disks: rows updated in place (the owning team stays), vanished VMs
gone, disks replaced; checked against virsh. The host page links to the VM list."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import Team
from audit.models import AuditRecord
from hosts.models import Domain, DomainDisk
from inventory.sync import sync_host
from tests.conftest import virsh
from tests.vms.helpers import vm_row
from tests.vms.machines import defined_vm, disk, vm_name, vm_xml

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_sync_mirrors_vms_and_their_disks(synced, local_host, running_vm, tmp_path):
    pool, scratch = synced
    disks = [disk("vda", file=str(scratch.path / "raw-thin.img"), cache="writeback"),
             disk("sdb", "scsi", pool=scratch.name, volume="base.qcow2", fmt="qcow2", readonly=True,
                  shareable=True),
             disk("sdc", "sata", device="cdrom", readonly=True)]
    with defined_vm(tmp_path, disks=disks) as stopped:
        result = sync_host(local_host, pool_names=[])
        assert result.domains >= 2 and "VMs" in str(result)
        row = Domain.objects.get(host=local_host, uuid=stopped.uuid)
        assert (row.name, row.state, row.vcpus, row.memory_kib, row.persistent) == (
            stopped.name, "shut off", 1, 64 * 1024, True)
        assert Domain.objects.get(host=local_host, uuid=running_vm.uuid).state == "running"
        found = {d.target: d for d in row.disks.all()}
        assert {t: d.path or d.volume_name or "-" for t, d in found.items()} == stopped.blklist()
        assert (found["vda"].source_type, found["vda"].bus, found["vda"].cache, found["vda"].device) == (
            "file", "virtio", "writeback", "disk")
        sdb = found["sdb"]
        assert (sdb.source_type, sdb.pool_name, sdb.volume_name, sdb.readonly, sdb.shareable, sdb.bus) == (
            "volume", scratch.name, "base.qcow2", True, True, "scsi")
        assert (found["sdc"].device, found["sdc"].readonly, found["sdc"].path) == ("cdrom", True, "")
        # the volumes' "in use" reads the same rows
        assert [d.domain for d in pool.volumes.get(name="base.qcow2").users()] == [stopped.name]

        # an admin gives the VM to a team; the next syncs update the row in place and keep it
        team = Team.objects.create(name="web")
        Domain.objects.filter(pk=row.pk).update(team=team)
        virsh("detach-disk", stopped.name, "vda", "--config")
        sync_host(local_host, pool_names=[])
        again = Domain.objects.get(host=local_host, uuid=stopped.uuid)
        assert (again.pk, again.team_id) == (row.pk, team.pk)
        assert set(again.disks.values_list("target", flat=True)) == {"sdb", "sdc"}
    sync_host(local_host, pool_names=[])
    assert not Domain.objects.filter(uuid=stopped.uuid).exists()
    assert not DomainDisk.objects.filter(domain=stopped.name).exists()


def test_a_transient_vm_is_marked(local_host, tmp_path):
    name = vm_name("transient")
    path = tmp_path / "t.xml"
    path.write_text(vm_xml(name))
    virsh("create", str(path))
    try:
        uuid = virsh("domuuid", name).strip()
        sync_host(local_host, pool_names=[])
        row = Domain.objects.get(host=local_host, uuid=uuid)
        assert (row.persistent, row.state) == (False, "running")
    finally:
        virsh("destroy", name, check=False)


def test_vm_list_and_team_setting(synced, local_host, stopped_vm, admin_user, member_client):
    row = vm_row(local_host, stopped_vm)
    host_page = member_client.get(local_host.get_absolute_url()).content.decode()
    assert f'href="{reverse("vms:list", args=[local_host.pk])}"' in host_page
    listing = member_client.get(reverse("vms:list", args=[local_host.pk])).content.decode()
    assert f'href="{row.get_absolute_url()}"' in listing and "shut off" in listing and "64.0 MiB" in listing

    admin = Client()
    admin.force_login(admin_user)
    team = Team.objects.create(name="databases")
    assert 'id="vm-team-form"' in admin.get(row.get_absolute_url()).content.decode()
    assert 'id="vm-team-form"' not in member_client.get(row.get_absolute_url()).content.decode()
    response = admin.post(reverse("vms:team", args=[row.pk]), {"team": team.pk})
    assert response.status_code == 302
    row.refresh_from_db()
    assert row.team == team
    audit = AuditRecord.objects.get(action="vm.team")
    assert (audit.target_type, audit.target_id, audit.detail["to"], audit.user) == ("vm", str(row.pk), "databases",
                                                                                      admin_user)
    assert "databases" in member_client.get(reverse("vms:list", args=[local_host.pk])).content.decode()
    sync_host(local_host, pool_names=[])
    row.refresh_from_db()
    assert row.team == team
