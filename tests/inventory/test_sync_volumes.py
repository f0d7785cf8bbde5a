"""The sync of named volumes (what a job that changed one or two volumes asks for): those volumes and their
pools' facts and totals, nothing else of the pools, on a real libvirtd."""

from __future__ import annotations

import os
import subprocess

import pytest

from hosts.models import DomainDisk
from inventory.sync import sync_volumes
from pools.models import StoragePool
from tests.conftest import LIBVIRT_URI, virsh
from virtstorage.virt import open_host
from virtstorage.virt import volumes as vvolumes
from volumes.models import Volume

pytestmark = pytest.mark.django_db(transaction=True)

MiB = 1024**2


def rows(pool: StoragePool) -> dict[str, Volume]:
    return {v.name: v for v in Volume.objects.filter(pool=pool)}


def test_named_volumes_are_updated_added_and_removed_and_the_others_left_alone(local_host, synced):
    pool, scratch = synced
    before = rows(pool)
    with open_host(LIBVIRT_URI) as lv:
        vvolumes.create_volume(lv, scratch.name, "made.img", 8 * MiB)
        vvolumes.resize_volume(lv, scratch.name, "raw-thin.img", 128 * MiB)
        lv.delete_volume(scratch.name, "qcow2-thin.qcow2")
    # Behind the app's back, and not named: the sync must not see these.
    virsh("vol-resize", "--pool", scratch.name, "raw-prealloc.img", "32M")
    scratch.create_volume("unnamed.img", "4M")

    result = sync_volumes(local_host, [(scratch.name, "made.img"), (scratch.name, "raw-thin.img"),
                                       (scratch.name, "qcow2-thin.qcow2")])

    assert result is not None
    assert sorted(result.updated) == [f"{scratch.name}/made.img", f"{scratch.name}/raw-thin.img"]
    assert result.removed == [f"{scratch.name}/qcow2-thin.qcow2"]
    assert "pool" not in str(result) and f"{scratch.name}/made.img" in str(result)
    after = rows(pool)
    assert set(after) == set(before) - {"qcow2-thin.qcow2"} | {"made.img"}
    assert after["made.img"].capacity == 8 * MiB and after["made.img"].path == str(scratch.path / "made.img")
    assert after["made.img"].recorded_format == "raw" and after["made.img"].inspected  # its image was checked
    assert after["raw-thin.img"].capacity == 128 * MiB
    untouched = ("raw-prealloc.img", "base.qcow2", "overlay.qcow2")
    for name in untouched:  # the same row as before, to the field: not re-read, not rewritten
        assert (after[name].synced_at, after[name].capacity, after[name].xml) == (
            before[name].synced_at, before[name].capacity, before[name].xml), name
    assert after["raw-prealloc.img"].capacity == 16 * MiB  # libvirt says 32M now; nobody asked
    pool_after = StoragePool.objects.get(pk=pool.pk)
    assert pool_after.volume_count == 5  # the rows: libvirt's 6th (unnamed.img) is not one yet
    assert pool_after.volume_capacity_total == sum(v.capacity for v in after.values())
    assert pool_after.synced_at > pool.synced_at
    info = virsh("pool-info", "--bytes", scratch.name)
    assert f"Available:      {pool_after.available}" in info  # the pool's own facts are libvirt's, now


def test_bytes_written_behind_libvirts_api_show_without_a_pool_refresh(local_host, synced):
    """An upload with direct file I/O, and qemu-img, write into the file of a volume libvirt created; a wipe
    and a resize go through libvirt. The volume's XML re-stats the file, so no pool refresh is needed."""
    pool, scratch = synced
    with open_host(LIBVIRT_URI) as lv:
        vvolumes.create_volume(lv, scratch.name, "written.img", 4 * MiB)
    sync_volumes(local_host, [(scratch.name, "written.img")])
    assert Volume.objects.get(pool=pool, name="written.img").allocation == 0
    path = scratch.path / "written.img"
    with open(path, "r+b") as f:  # as the direct upload does: data, then the file grown to its capacity
        f.write(b"\xa5" * (3 * MiB))
        f.truncate(12 * MiB)
        os.fsync(f.fileno())
    sync_volumes(local_host, [(scratch.name, "written.img")])
    row = Volume.objects.get(pool=pool, name="written.img")
    stat = path.stat()
    assert (row.capacity, row.allocation) == (stat.st_size, stat.st_blocks * 512) == (12 * MiB, 3 * MiB)

    with open_host(LIBVIRT_URI) as lv:
        vvolumes.wipe_volume(lv, scratch.name, "written.img", "zero")
    sync_volumes(local_host, [(scratch.name, "written.img")])
    row = Volume.objects.get(pool=pool, name="written.img")
    assert (row.capacity, row.allocation) == (path.stat().st_size, path.stat().st_blocks * 512)
    assert row.allocation < 3 * MiB  # a thin file wiped with zeros gives its blocks back

    subprocess.run(["qemu-img", "resize", "-f", "raw", str(path), "20M"], check=True, capture_output=True)
    sync_volumes(local_host, [(scratch.name, "written.img")])
    assert Volume.objects.get(pool=pool, name="written.img").capacity == 20 * MiB
    assert StoragePool.objects.get(pk=pool.pk).volume_capacity_total == sum(
        Volume.objects.filter(pool=pool).values_list("capacity", flat=True))


def test_only_the_named_volumes_images_are_checked(local_host, synced):
    """Both qcow2 images get a backing file outside the pools behind the app's back; only the named one is
    checked (and refused), as the full sync would have refused both."""
    pool, scratch = synced
    outside = scratch.path.parent / "outside.raw"
    outside.write_bytes(b"\0" * MiB)
    for name in ("base.qcow2", "qcow2-thin.qcow2"):
        subprocess.run(["qemu-img", "rebase", "-u", "-f", "qcow2", "-F", "raw", "-b", str(outside),
                        str(scratch.path / name)], check=True, capture_output=True)
    sync_volumes(local_host, [(scratch.name, "qcow2-thin.qcow2")])
    assert Volume.objects.get(pool=pool, name="qcow2-thin.qcow2").unsafe_reason
    assert Volume.objects.get(pool=pool, name="base.qcow2").unsafe_reason == ""


def test_a_stopped_pool_keeps_its_rows_and_its_facts_are_updated(local_host, synced):
    pool, scratch = synced
    virsh("pool-destroy", scratch.name)
    try:
        assert sync_volumes(local_host, [(scratch.name, "raw-thin.img")]) is not None
        pool.refresh_from_db()
        assert pool.state == StoragePool.State.INACTIVE
        assert pool.volumes.count() == pool.volume_count == 5
    finally:
        virsh("pool-start", scratch.name)


def test_the_pool_is_sampled_for_history(local_host, synced, settings):
    from history.models import PoolSample

    pool, scratch = synced
    settings.INVENTORY_SYNC_SECONDS = 0  # every sync is due
    with open_host(LIBVIRT_URI) as lv:
        vvolumes.create_volume(lv, scratch.name, "sampled.img", 2 * MiB)
    sync_volumes(local_host, [(scratch.name, "sampled.img")])
    pool.refresh_from_db()
    latest = PoolSample.objects.filter(pool=pool).latest("at")
    assert latest.at == pool.synced_at
    assert (latest.volume_count, latest.virtual_total) == (6, pool.volume_capacity_total)


def test_vms_alone(local_host, synced, domain_using):
    pool, scratch = synced  # synced before the VM was defined
    assert sync_volumes(local_host, [], vms=True) is not None
    assert DomainDisk.objects.filter(host=local_host, domain=domain_using).count() == 2
    virsh("undefine", domain_using)
    result = sync_volumes(local_host, [], vms=True)
    assert result is not None and result.updated == [] and result.domains is not None
    assert not DomainDisk.objects.filter(host=local_host, domain=domain_using).exists()
    assert StoragePool.objects.get(pk=pool.pk).synced_at == pool.synced_at  # no pool was read


def test_unreachable_host_returns_none(transactional_db):
    from hosts.models import Host

    host = Host.objects.create(name="gone", uri="qemu+tcp://127.0.0.1:1/system")
    assert sync_volumes(host, [("p", "v")]) is None
    host.refresh_from_db()
    assert host.status == Host.Status.UNREACHABLE


def test_a_volume_job_syncs_its_volume_alone(member_client, celery_worker, synced):
    from django.urls import resolve, reverse

    from jobs.models import Job
    from tests.conftest import wait_for_job

    pool, scratch = synced
    virsh("vol-resize", "--pool", scratch.name, "raw-prealloc.img", "32M")  # behind the app's back
    response = member_client.post(reverse("volumes:create", args=[pool.pk]),
                                  {"name": "by-job.img", "capacity": "8 MiB", "format": "raw", "provisioning": "off"})
    assert response.status_code == 302, response.content.decode()[:2000]
    job = wait_for_job(resolve(response.url).kwargs["pk"])
    assert job.state == Job.State.SUCCEEDED, job.error
    assert f"Updating the inventory of {scratch.name}/by-job.img" in job.log
    assert Volume.objects.get(pool=pool, name="by-job.img").capacity == 8 * MiB
    assert Volume.objects.get(pool=pool, name="raw-prealloc.img").capacity == 16 * MiB  # not re-read
    assert StoragePool.objects.get(pk=pool.pk).volume_count == 6
