"""The unmanaged storage report of a host, on the real libvirtd: a VM disk outside every pool, stray files in a
pool's directory (a file, a link, a FIFO), what libvirt lists left out, refresh as the fix, admins only."""

from __future__ import annotations

import html
import os

import pytest
from django.urls import reverse

from hosts.models import Host
from jobs.models import Job
from tests.conftest import wait_for_job
from tests.vms.helpers import vm_row
from tests.vms.machines import defined_vm, disk
from vms.unmanaged import build_report

pytestmark = pytest.mark.django_db(transaction=True)
MiB = 1024**2


def _page(client, host) -> str:
    response = client.get(reverse("vms:unmanaged", args=[host.pk]))
    assert response.status_code == 200
    return html.unescape(response.content.decode())


def test_the_report_finds_a_disk_outside_the_pools_and_stray_files(admin_client, member_client, celery_worker,
                                                                   synced, local_host, tmp_path):
    pool, scratch = synced
    outside = tmp_path / "outside.img"
    with open(outside, "wb") as f:
        f.write(b"\xa5" * MiB)
        f.truncate(8 * MiB)
    stray = scratch.path / "stray.img"
    stray.write_bytes(os.urandom(MiB))
    (scratch.path / "escape").symlink_to("/etc/shadow")
    os.mkfifo(scratch.path / "pipe")
    disks = [disk("vda", file=str(outside)), disk("vdb", file=str(scratch.path / "raw-thin.img")),
             disk("vdc", file=str(stray)), disk("sda", "sata", device="cdrom", readonly=True)]
    with defined_vm(tmp_path, disks=disks) as vm:
        row = vm_row(local_host, vm)
        report = build_report(local_host)
        by_target = {r.disk.target: r for r in report.disks if r.vm == row}
        assert sorted(by_target) == ["vda", "vdc"]  # the volume is managed, the empty CD-ROM no storage
        vda = by_target["vda"]
        assert (vda.reason, vda.format, vda.facts.size, vda.in_pool, vda.adoptable) == (
            "not in a started pool", "raw", 8 * MiB, None, True)
        assert vda.facts.allocated < 8 * MiB
        assert by_target["vdc"].in_pool == pool
        files = next(p for p in report.pools if p.pool == pool)
        names = {facts.name: (facts.kind, users) for facts, users in files.shown}
        assert names == {"stray.img": ("file", [vm.name]), "escape": ("symlink", [])}  # no volume, no FIFO
        assert files.scan.skipped == 1 and not files.scan.truncated

        page = _page(admin_client, local_host)
        assert str(outside) in page and "8.0 MiB" in page and "escape</code> → <code>/etc/shadow" in page
        assert f"?path={outside}&vm={row.pk}&target=vda" in page  # Adopt… of the disk's file
        assert "raw-thin.img</code>" not in page  # listed by libvirt: not in the report
        detach = admin_client.get(reverse("vms:detach", args=[row.pk, "vda"])).content.decode()
        assert "The file or device and its data stay" in detach and "The volume and its" not in detach
        assert member_client.get(reverse("vms:unmanaged", args=[local_host.pk])).status_code == 403
        for url in (reverse("hosts:detail", args=[local_host.pk]), reverse("vms:list", args=[local_host.pk])):
            assert reverse("vms:unmanaged", args=[local_host.pk]) in admin_client.get(url).content.decode()
            assert reverse("vms:unmanaged", args=[local_host.pk]) not in member_client.get(url).content.decode()

        # The fix the report offers: refresh the pool. libvirt lists the file in place; the link it lists too,
        # and the sync's image check marks it unsafe.
        refresh = reverse("pools:action", args=[pool.pk, "refresh"])
        assert f'action="{refresh}"' in page
        assert admin_client.post(refresh).status_code == 302
        job = wait_for_job(Job.objects.get(kind="pool-refresh", pool=pool).pk)
        assert job.state == Job.State.SUCCEEDED, job.error
        after = build_report(local_host)
        assert "vdc" not in {r.disk.target for r in after.disks if r.vm == row}
        shown = {facts.name for p in after.pools if p.pool == pool for facts, _users in p.shown}
        assert "stray.img" not in shown
        assert pool.volumes.get(name="stray.img").unsafe_reason == ""


def test_a_remote_host_has_no_file_part(admin_client, local_host):
    remote = Host.objects.create(name="far", uri="qemu+ssh://root@kvm1.example/system")
    page = _page(admin_client, remote)
    assert "Not available: far (qemu+ssh://root@kvm1.example/system) is another machine" in page
    assert "Adopt is not available" in page
    assert build_report(remote).pools == []
