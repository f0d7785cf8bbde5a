"""Managed and unmanaged disks, by volume reference and by path, as the VM page shows them."""

from __future__ import annotations

import pytest
from django.urls import reverse

from inventory.sync import sync_host
from tests.conftest import virsh
from tests.vms.helpers import vm_row
from tests.vms.machines import defined_vm, disk
from vms.classify import classify

pytestmark = pytest.mark.django_db(transaction=True)


def test_managed_by_volume_reference_and_by_path_unmanaged_otherwise(member_client, synced, local_host, tmp_path):
    pool, scratch = synced
    (scratch.path / "stray.img").write_bytes(b"\0" * 4096)  # in the pool's directory, unknown to the inventory
    outside = tmp_path / "outside.img"
    disks = [
        disk("vda", pool=scratch.name, volume="qcow2-thin.qcow2", fmt="qcow2"),
        disk("vdb", file=str(scratch.path / "raw-thin.img")),
        disk("vdc", file=str(scratch.path / "stray.img")),
        disk("vdd", file=str(outside)),
        disk("vde", pool=scratch.name, volume="missing.img"),
        disk("sda", "sata", device="cdrom", readonly=True),
    ]
    with defined_vm(tmp_path, disks=disks) as vm:
        row = vm_row(local_host, vm)
        found = {view.disk.target: view for view in classify(list(row.disks.all()))}
        assert found["vda"].managed and found["vda"].volume == pool.volumes.get(name="qcow2-thin.qcow2")
        assert found["vdb"].managed and found["vdb"].volume == pool.volumes.get(name="raw-thin.img")
        assert not found["vdc"].managed and f"in pool {scratch.name}'s directory" in found["vdc"].reason
        assert (found["vdd"].managed, found["vdd"].reason) == (False, "not in a started pool")
        assert (found["vde"].managed, found["vde"].reason) == (
            False, f"pool {scratch.name} has no volume missing.img in the inventory")
        assert (found["sda"].managed, found["sda"].reason) == (False, "no medium")

        page = member_client.get(reverse("vms:detail", args=[row.pk])).content.decode()
        for name in ("qcow2-thin.qcow2", "raw-thin.img"):
            assert f'href="{pool.volumes.get(name=name).get_absolute_url()}"' in page
        assert page.count(">managed</span>") == 2 and page.count(">unmanaged</span>") == 4
        assert str(outside) in page

        # A file the pool's rescan now knows is managed; a stopped pool's files are not (by path) while a
        # volume reference still names its volume.
        sync_host(local_host, refresh=True, pool_names=[scratch.name])
        assert classify([row.disks.get(target="vdc")])[0].managed
        virsh("pool-destroy", scratch.name)
        sync_host(local_host, pool_names=[scratch.name])
        by_target = {view.disk.target: view for view in classify(list(row.disks.all()))}
        assert by_target["vda"].managed and not by_target["vdb"].managed
        assert by_target["vdb"].reason == "not in a started pool"
