"""When the app has libvirt rescan a pool (a rescan reads every file of the pool: 0.2 CPU-seconds of libvirtd in a
pool of 10,000 volumes), on the real libvirtd with a real worker.

A rescan is how libvirt learns what was written behind its back. A stray file put in the pool's directory
shows which operations rescan: libvirt lists it only after one. Thin creates and raw images written in place (an
upload, a convert) do not rescan; a preallocated create, a qcow2 written in place and the periodic sync of a pool
a raw image marked (StoragePool.rescan_wanted_at) do, and only that sync clears the mark.
"""

from __future__ import annotations

import os
import subprocess
import threading

import pytest
from django.urls import reverse

from inventory.sync import sync_host
from jobs.models import Job
from pools.models import StoragePool
from tests.conftest import cloning, virsh
from tests.volumes.conftest import upload_and_wait
from tests.volumes.test_volume_ops import run_op
from virtstorage.virt.connection import LibvirtHost
from volumes.models import Volume

# serial: a full sync in another test process (refresh) rescans every pool of the libvirtd, this one's too.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.serial]

MiB = 1024**2


def listed_by_libvirt(pool: str) -> set[str]:
    return {line.split()[0] for line in virsh("vol-list", pool).splitlines()[2:] if line.split()}


def stray_file(scratch) -> str:
    """A file put in the pool's directory behind libvirt's back: libvirt lists it after its next rescan only."""
    (scratch.path / "stray.img").write_bytes(b"\0" * 4096)
    assert "stray.img" not in listed_by_libvirt(scratch.name)
    return "stray.img"


def libvirt_pool_allocation(pool: str) -> int:
    line = next(line for line in virsh("pool-info", "--bytes", pool).splitlines() if line.startswith("Allocation:"))
    return int(line.split()[1])


def test_a_thin_create_does_not_rescan_the_pool_and_a_preallocated_one_does(member_client, celery_worker, synced):
    pool, scratch = synced
    stray = stray_file(scratch)
    url = reverse("volumes:create", args=[pool.pk])
    for fmt, provisioning in (("raw", "off"), ("qcow2", "off"), ("qcow2", "metadata")):
        job = run_op(member_client, url, {"name": f"thin-{fmt}-{provisioning}", "capacity": "64M", "format": fmt,
                                          "provisioning": provisioning})
        assert job.state == Job.State.SUCCEEDED, job.error
        assert "free space" not in job.log, job.log
    assert stray not in listed_by_libvirt(scratch.name)
    job = run_op(member_client, url, {"name": "full.img", "capacity": "16M", "format": "raw", "provisioning": "full"})
    assert job.state == Job.State.SUCCEEDED, job.error
    assert f"Checking the free space of {scratch.name}" in job.log
    assert stray in listed_by_libvirt(scratch.name)


def test_a_raw_upload_written_in_place_marks_the_pool_and_the_next_sync_rescans_it(api, synced, celery_worker,
                                                                                    local_host, tmp_path,
                                                                                    member_client):
    pool, scratch = synced
    stray = stray_file(scratch)
    source = tmp_path / "data.img"
    source.write_bytes(os.urandom(24 * MiB))
    allocation_before = libvirt_pool_allocation(scratch.name)
    job = upload_and_wait(api, pool, source, "uploaded.img", format="raw")
    assert job.state == Job.State.SUCCEEDED, job.error
    assert "straight into" in job.log, job.log

    # No rescan: libvirt does not list the stray file, and its pool figures are those of before the write
    # (a thin create of an empty file adds nothing). The volume's own sizes are current: libvirt re-stats it.
    assert stray not in listed_by_libvirt(scratch.name)
    assert libvirt_pool_allocation(scratch.name) == allocation_before
    row = Volume.objects.get(pool=pool, name="uploaded.img")
    assert (row.format, row.capacity) == ("raw", 24 * MiB) and row.allocation >= 24 * MiB
    marked_at = StoragePool.objects.get(pk=pool.pk).rescan_wanted_at
    assert marked_at is not None and marked_at >= job.started_at
    page = member_client.get(reverse("pools:detail", args=[pool.pk])).content.decode()
    assert 'id="pool-rescan-due"' in page and "libvirt rescans the pool at the next sync" in page

    # The periodic sync (no refresh asked) rescans the marked pool, stores its new figures and clears the mark.
    assert sync_host(local_host, pool_names=[scratch.name]) is not None
    assert stray in listed_by_libvirt(scratch.name)
    pool.refresh_from_db()
    assert pool.rescan_wanted_at is None
    assert pool.allocation == libvirt_pool_allocation(scratch.name) != allocation_before
    assert 'id="pool-rescan-due"' not in member_client.get(reverse("pools:detail", args=[pool.pk])).content.decode()
    assert Volume.objects.filter(pool=pool, name=stray).exists()

    # With no mark, the next periodic sync leaves libvirt alone.
    (scratch.path / "second-stray.img").write_bytes(b"\0" * 4096)
    assert sync_host(local_host, pool_names=[scratch.name]) is not None
    assert "second-stray.img" not in listed_by_libvirt(scratch.name)


def test_a_qcow2_upload_written_in_place_rescans_at_once(api, synced, celery_worker, tmp_path):
    """libvirt made the volume raw: only a rescan makes it probe the qcow2 that was written."""
    pool, scratch = synced
    stray = stray_file(scratch)
    image = tmp_path / "disk.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "64M"], check=True)
    job = upload_and_wait(api, pool, image, "uploaded.qcow2", format="qcow2")
    assert job.state == Job.State.SUCCEEDED, job.error
    assert "straight into" in job.log, job.log
    assert stray in listed_by_libvirt(scratch.name)
    assert "<format type='qcow2'/>" in virsh("vol-dumpxml", "--pool", scratch.name, "uploaded.qcow2")
    assert StoragePool.objects.get(pk=pool.pk).rescan_wanted_at is None


def test_a_convert_to_raw_marks_the_pool_and_one_to_qcow2_rescans_it(member_client, celery_worker, synced):
    pool, scratch = synced
    stray = stray_file(scratch)
    url = reverse("volumes:image_convert", args=[Volume.objects.get(pool=pool, name="base.qcow2").pk])
    job = run_op(member_client, url, {"name": "flat.raw", "target_pool": pool.pk, "format": "raw",
                                      "provisioning": "off"})
    assert job.state == Job.State.SUCCEEDED, job.error
    assert stray not in listed_by_libvirt(scratch.name)
    assert StoragePool.objects.get(pk=pool.pk).rescan_wanted_at is not None
    assert Volume.objects.get(pool=pool, name="flat.raw").format == "raw"
    job = run_op(member_client, url, {"name": "copy.qcow2", "target_pool": pool.pk, "format": "qcow2",
                                      "provisioning": "off"})
    assert job.state == Job.State.SUCCEEDED, job.error
    assert stray in listed_by_libvirt(scratch.name)
    assert Volume.objects.get(pool=pool, name="copy.qcow2").format == "qcow2"


def test_a_mark_set_again_during_the_sync_stays_for_the_next(synced, local_host, monkeypatch):
    """An upload that ends while the sync rescans wrote after the rescan began: its mark must outlive this sync."""
    pool, scratch = synced
    StoragePool.objects.filter(pk=pool.pk).want_rescan()
    rescan = LibvirtHost.refresh_pool

    def rescan_then_a_write_lands(self, name, **kwargs):
        done = rescan(self, name, **kwargs)
        StoragePool.objects.filter(pk=pool.pk).want_rescan()
        return done

    monkeypatch.setattr(LibvirtHost, "refresh_pool", rescan_then_a_write_lands)
    assert sync_host(local_host, pool_names=[scratch.name]) is not None
    assert StoragePool.objects.get(pk=pool.pk).rescan_wanted_at is not None
    monkeypatch.setattr(LibvirtHost, "refresh_pool", rescan)
    assert sync_host(local_host, pool_names=[scratch.name]) is not None
    assert StoragePool.objects.get(pk=pool.pk).rescan_wanted_at is None


def test_a_busy_pool_keeps_its_mark_and_the_periodic_sync_does_not_wait_for_it(synced, local_host, caplog):
    """libvirt refuses to rescan a pool while it builds a volume in it: the periodic sync goes on at once, and its
    log says that only the rescan waits, not the pool's sync."""
    pool, scratch = synced
    StoragePool.objects.filter(pk=pool.pk).want_rescan()
    done = threading.Event()
    thread = cloning(scratch, done)
    thread.start()
    try:
        kept = False
        while not done.is_set() and not kept:
            assert sync_host(local_host, pool_names=[scratch.name]) is not None
            if StoragePool.objects.get(pk=pool.pk).rescan_wanted_at is None:
                StoragePool.objects.filter(pk=pool.pk).want_rescan()  # it rescanned before the clone began
            else:
                kept = not done.is_set()  # a sync that waited out the clone would have cleared the mark
    finally:
        thread.join()
    assert kept, "the clone ended before a sync found the pool busy"
    skipped = [r.getMessage() for r in caplog.records if "skipped this time" in r.getMessage()]
    assert skipped and all(m.startswith(f"rescan of pool {scratch.name} (its volumes are synced without it)")
                           for m in skipped), skipped
    assert sync_host(local_host, pool_names=[scratch.name]) is not None
    assert StoragePool.objects.get(pk=pool.pk).rescan_wanted_at is None
