"""Adopting an unmanaged image into a pool, and switching a stopped VM's disk to the copy, end to end: the forms,
the jobs in a real Celery worker, qemu-img and libvirt, checked with cmp, qemu-img compare and virsh."""

from __future__ import annotations

import html
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from django.urls import reverse

from audit.models import AuditRecord
from jobs.models import Job
from tests.conftest import TEST_POOL_PREFIX, virsh
from tests.virt.test_qemuimg import identical, qemu_img
from tests.vms.helpers import run_job, vm_row
from tests.vms.machines import defined_vm, disk
from tests.volumes.test_volume_ops import assert_leads_to
from volumes.models import Volume

pytestmark = pytest.mark.django_db(transaction=True)
MiB = 1024**2


def _adopt_url(host, **query) -> str:
    return reverse("vms:adopt", args=[host.pk]) + "?" + "&".join(f"{k}={v}" for k, v in query.items())


def _form(pool, name: str, path, **extra) -> dict:
    return {"path": str(path), "target_pool": pool.pk, "name": name, "format": "", "provisioning": "off", **extra}


def _outcomes(action: str) -> set[str]:
    return set(AuditRecord.objects.filter(action=action).values_list("outcome", flat=True))


def test_adopt_copies_a_stray_file_byte_for_byte_and_keeps_its_holes(admin_client, celery_worker, synced,
                                                                      local_host):
    pool, scratch = synced
    stray = scratch.path / "stray.img"
    with open(stray, "wb") as f:
        f.truncate(64 * MiB)
        for at in (0, 17 * MiB, 63 * MiB):
            f.seek(at)
            f.write(os.urandom(MiB))
    page = admin_client.get(_adopt_url(local_host, path=stray))
    assert page.status_code == 200 and f'value="{stray}"' in page.content.decode()
    job = run_job(admin_client, _adopt_url(local_host), _form(pool, "adopted.img", stray))
    assert job.state == Job.State.SUCCEEDED, job.error
    assert (job.kind, job.pool_id, job.volume_name) == ("vm-adopt", pool.pk, "adopted.img")
    assert job.progress_done == job.progress_total == 64 * MiB
    copy = scratch.path / "adopted.img"
    subprocess.run(["cmp", str(stray), str(copy)], check=True)  # byte for byte
    assert os.stat(copy).st_blocks * 512 < 8 * MiB  # 3 MiB of data: the holes stayed holes
    row = Volume.objects.get(pool=pool, name="adopted.img")
    assert (row.format, row.recorded_format, row.capacity, row.unsafe_reason) == ("raw", "raw", 64 * MiB, "")
    assert job.params["copied"]["size"] == 64 * MiB and stray.exists()  # the file stays
    assert_leads_to(admin_client, job, pool, "adopted.img")
    assert _outcomes("vm.adopt") == {"started", "ok"}
    taken = admin_client.post(_adopt_url(local_host), _form(pool, "adopted.img", stray))
    assert taken.status_code == 400 and "already has a volume named adopted.img" in html.unescape(
        taken.content.decode())


def test_adopt_a_vm_disk_then_switch_the_stopped_vm_to_the_volume(admin_client, member_client, celery_worker,
                                                                  synced, local_host, tmp_path):
    pool, scratch = synced
    image = tmp_path / "vm-disk.img"  # a qcow2 with a raw name, outside every pool
    qemu_img("create", "-q", "-f", "qcow2", str(image), "32M")
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 1M 2M", str(image)], check=True,
                   capture_output=True, timeout=60)
    disks = [disk("vdb", "scsi", file=str(image), fmt="qcow2", cache="none")]
    with defined_vm(tmp_path, disks=disks) as vm:
        row = vm_row(local_host, vm)
        url = _adopt_url(local_host, path=image, vm=row.pk, target="vdb")
        assert "readonly" in admin_client.get(url).content.decode()
        assert member_client.get(url).status_code == 403
        job = run_job(admin_client, url, _form(pool, "vm-disk.qcow2", image, vm=row.pk, target="vdb"))
        assert job.state == Job.State.SUCCEEDED, job.error
        assert (job.params["uuid"], job.params["target"]) == (vm.uuid, "vdb")
        copy = scratch.path / "vm-disk.qcow2"
        assert identical(image, "qcow2", copy, "qcow2")
        assert Volume.objects.get(pool=pool, name="vm-disk.qcow2").recorded_format == "qcow2"

        page = admin_client.get(row.get_absolute_url()).content.decode()
        switch = reverse("vms:switch", args=[row.pk, "vdb", job.pk])
        assert f'href="{switch}"' in page and switch not in member_client.get(row.get_absolute_url()).content.decode()

        # The file is written after the copy: the switch is refused, the definition stays.
        with open(image, "r+b") as f:
            f.seek(5 * MiB)
            f.write(b"late")
        refused = run_job(admin_client, switch, {"confirm": "vdb"})
        assert refused.state == Job.State.FAILED and "changed since it was copied" in refused.error
        assert vm.disk("vdb", inactive=True).find("source").get("file") == str(image)

        # Adopted again, unchanged since: the switch rewrites the disk, same target, bus and cache.
        Volume.objects.filter(pool=pool, name="vm-disk.qcow2").delete()
        virsh("vol-delete", "--pool", scratch.name, "vm-disk.qcow2")
        again = run_job(admin_client, url, _form(pool, "vm-disk.qcow2", image, vm=row.pk, target="vdb"))
        assert again.state == Job.State.SUCCEEDED, again.error
        switched = run_job(admin_client, reverse("vms:switch", args=[row.pk, "vdb", again.pk]), {"confirm": "vdb"})
        assert switched.state == Job.State.SUCCEEDED, switched.error
        assert switched.kind == "vm-switch" and "which stays where it is" in switched.result
        element = vm.disk("vdb", inactive=True)
        assert element.get("type") == "volume"
        assert element.find("source").attrib == {"pool": scratch.name, "volume": "vm-disk.qcow2"}
        assert element.find("target").attrib == {"dev": "vdb", "bus": "scsi"}
        assert element.find("driver").get("type") == "qcow2" and element.find("driver").get("cache") == "none"
        assert vm.blklist(inactive=True) == {"vdb": "vm-disk.qcow2"}
        assert row.disks.get(target="vdb").volume_name == "vm-disk.qcow2"  # the job re-synced the VMs
        assert image.exists() and _outcomes("vm.switch") == {"started", "ok", "failed"}
        assert f'href="{switch}"' not in admin_client.get(row.get_absolute_url()).content.decode()


def test_a_running_vm_disk_is_not_copied(admin_client, celery_worker, synced, local_host, tmp_path):
    pool, _scratch = synced
    home = Path(tempfile.mkdtemp(prefix=f"{TEST_POOL_PREFIX}{os.getpid()}-", dir=tempfile.gettempdir()))
    home.chmod(0o755)  # qemu (libvirt-qemu) must reach the disk of the running VM
    image = home / "running.img"
    image.write_bytes(b"\x11" * MiB)
    try:
        with defined_vm(tmp_path, disks=[disk("vdb", file=str(image))]) as vm:
            row = vm_row(local_host, vm)
            url = _adopt_url(local_host, path=image, vm=row.pk, target="vdb")
            data = _form(pool, "running.img", image, vm=row.pk, target="vdb")
            vm.start()  # the inventory still says shut off: the form passes, the job asks libvirt
            job = run_job(admin_client, url, data)
            assert job.state == Job.State.FAILED and "writes to" in job.error and "Shut it off" in job.error
            assert "running.img" not in virsh("vol-list", pool.name)
            vm_row(local_host, vm)  # now the inventory knows it runs: the form refuses at once
            refused = admin_client.post(url, data)
            assert refused.status_code == 400 and "Shut it off first" in html.unescape(refused.content.decode())
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_links_and_images_naming_files_outside_the_pools_are_refused(admin_client, synced, local_host, tmp_path):
    pool, scratch = synced
    outside = tmp_path / "base.img"
    outside.write_bytes(b"\0" * MiB)
    overlay = scratch.path / "overlay-out.qcow2"  # a stray qcow2 backed by a file outside the pools
    qemu_img("create", "-q", "-f", "qcow2", "-b", str(outside), "-F", "raw", str(overlay))
    (scratch.path / "link.img").symlink_to(outside)
    for path, why in [(overlay, "backing file"), (scratch.path / "link.img", "is a symbolic link (to")]:
        response = admin_client.post(_adopt_url(local_host), _form(pool, "x.img", path))
        assert response.status_code == 400 and why in html.unescape(response.content.decode()), path
    assert not Job.objects.exists()
