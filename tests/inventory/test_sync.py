"""Sync mirrors libvirt into the inventory, checked against virsh on a real libvirtd."""

from __future__ import annotations

import pytest

from hosts.models import Host
from inventory.sync import sync_host
from pools.models import StoragePool
from tests.conftest import virsh
from volumes.models import Volume

pytestmark = pytest.mark.django_db(transaction=True)


def test_sync_mirrors_pool_and_volumes(local_host, filled_pool):
    result = sync_host(local_host, pool_names=[filled_pool.name])
    assert result is not None
    pool = StoragePool.objects.get(host=local_host, name=filled_pool.name)
    info = virsh("pool-info", "--bytes", filled_pool.name)
    assert f"Capacity:       {pool.capacity}" in info
    assert pool.type == "dir" and pool.is_active and pool.persistent
    assert pool.target_path == str(filled_pool.path)
    volumes = {v.name: v for v in pool.volumes.all()}
    assert set(volumes) == {"raw-thin.img", "raw-prealloc.img", "base.qcow2", "qcow2-thin.qcow2", "overlay.qcow2"}
    for name, vol in volumes.items():
        witness = filled_pool.vol_info(name)
        assert vol.capacity == int(witness["Capacity"].split()[0]), name
        assert vol.allocation == int(witness["Allocation"].split()[0]), name
        assert vol.path == str(filled_pool.path / name)
    assert volumes["raw-prealloc.img"].provisioning == "preallocated"
    assert volumes["raw-thin.img"].provisioning == "thin"
    assert volumes["qcow2-thin.qcow2"].format == "qcow2"
    assert volumes["overlay.qcow2"].backing_path == str(filled_pool.path / "base.qcow2")
    assert pool.volume_count == 5
    assert pool.volume_capacity_total == sum(v.capacity for v in volumes.values())
    local_host.refresh_from_db()
    assert local_host.status == Host.Status.ONLINE and local_host.libvirt_version


def test_changes_behind_the_apps_back_show_after_sync(local_host, filled_pool):
    sync_host(local_host, pool_names=[filled_pool.name])
    filled_pool.create_volume("new.img", "8M")
    virsh("vol-resize", "--pool", filled_pool.name, "raw-thin.img", "128M")
    virsh("vol-delete", "--pool", filled_pool.name, "qcow2-thin.qcow2")
    result = sync_host(local_host, pool_names=[filled_pool.name])
    assert result.removed_volumes == 1
    names = set(Volume.objects.filter(pool__name=filled_pool.name).values_list("name", flat=True))
    assert "new.img" in names and "qcow2-thin.qcow2" not in names
    assert Volume.objects.get(pool__name=filled_pool.name, name="raw-thin.img").capacity == 128 * 1024**2


def test_files_dropped_into_the_directory_show_after_a_refreshing_sync(local_host, filled_pool):
    (filled_pool.path / "dd-made.img").write_bytes(b"\0" * 4096)
    sync_host(local_host, refresh=True, pool_names=[filled_pool.name])
    assert Volume.objects.filter(pool__name=filled_pool.name, name="dd-made.img").exists()


def test_stopped_pool_keeps_its_rows_and_deleted_pool_goes(local_host, filled_pool):
    sync_host(local_host, pool_names=[filled_pool.name])
    virsh("pool-destroy", filled_pool.name)
    sync_host(local_host, pool_names=[filled_pool.name])
    pool = StoragePool.objects.get(host=local_host, name=filled_pool.name)
    assert pool.state == StoragePool.State.INACTIVE
    assert pool.volumes.count() == 5  # stopping keeps the data: the rows stay
    virsh("pool-undefine", filled_pool.name)
    sync_host(local_host)
    assert not StoragePool.objects.filter(host=local_host, name=filled_pool.name).exists()


def test_unreachable_host_is_marked_without_exception(transactional_db):
    host = Host.objects.create(name="gone", uri="qemu+tcp://127.0.0.1:1/system")
    assert sync_host(host) is None
    host.refresh_from_db()
    assert host.status == Host.Status.UNREACHABLE
    assert host.last_error
    assert host.last_checked_at is not None and host.last_seen_at is None



def test_sync_records_which_vm_uses_which_volume(local_host, synced, domain_using, member_client):
    from django.urls import reverse

    pool, scratch = synced
    sync_host(local_host, pool_names=[pool.name])
    by_path = pool.volumes.get(name="raw-thin.img")
    by_name = pool.volumes.get(name="qcow2-thin.qcow2")
    free = pool.volumes.get(name="base.qcow2")
    assert [(d.domain, d.target) for d in by_path.users()] == [(domain_using, "vda")]
    assert [(d.domain, d.target) for d in by_name.users()] == [(domain_using, "vdb")]
    assert list(free.users()) == []
    table = member_client.get(reverse("pools:volumes", args=[pool.pk]), {"q": "thin"}).content.decode()
    assert table.count(f">in use by {domain_using}</span>") == 2  # raw-thin.img and qcow2-thin.qcow2
    page = member_client.get(reverse("volumes:detail", args=[by_name.pk])).content.decode()
    assert f"VM <strong>{domain_using}</strong> as vdb" in page
    warning = member_client.get(reverse("volumes:delete", args=[by_path.pk])).content.decode()
    assert "In use by VM" in warning and "unless an admin forces it" in warning
    virsh("undefine", domain_using)
    sync_host(local_host, pool_names=[pool.name])
    assert list(by_path.users()) == []
