"""Hosts (add, edit, test, sync, remove) and the image tools (check, convert, import) through the API, end to end
on the real libvirtd with each job followed to its end; virsh, qemu-img and the files are the witnesses."""

from __future__ import annotations

import os
import subprocess

import pytest

from audit.models import AuditRecord
from hosts.models import Host
from inventory.sync import sync_host
from jobs.models import Job
from pools.models import StoragePool
from tests.api.conftest import post
from tests.api.helpers import follow_named, succeeded
from tests.conftest import LIBVIRT_URI, virsh, wait_for
from tests.virt.test_qemuimg import damaged_qcow2, identical, qemu_img, qemu_img_info
from volumes.models import Volume

pytestmark = pytest.mark.django_db(transaction=True)
MiB = 1024 * 1024


def test_a_host_is_added_edited_tested_synced_and_removed(filled_pool, celery_worker, admin_api, api) -> None:
    assert post(api, "/api/hosts/", {"name": "api-host", "uri": LIBVIRT_URI}).status_code == 403  # not an admin
    refused = post(admin_api, "/api/hosts/", {"name": "api-host", "uri": "qemu+ext:///system?command=/bin/true"})
    assert refused.status_code == 400 and set(refused.json()["errors"]) == {"uri"}
    assert not Host.objects.exists()

    added = post(admin_api, "/api/hosts/", {"name": "api-host", "uri": LIBVIRT_URI, "description": "by script"})
    assert added.status_code == 201, added.content
    host = added.json()["host"]
    assert (host["name"], host["enabled"], host["direct_io"], added.json()["warnings"]) == ("api-host", True, True, [])
    sync = follow_named(admin_api, added.json()["sync"])
    assert sync["state"] == "succeeded", sync["error"]
    assert (sync["kind"], sync["host"]) == ("sync", host["id"])
    pool = StoragePool.objects.get(host_id=host["id"], name=filled_pool.name)
    assert admin_api.get(f"/api/volumes/?pool={pool.pk}").json()["count"] == 5
    assert admin_api.get(f"/api/hosts/{host['id']}/").json()["status"] == "online"
    taken = post(admin_api, "/api/hosts/", {"name": "api-host", "uri": "test:///default"})
    assert taken.status_code == 400 and "already exists" in taken.json()["errors"]["name"][0]["message"]

    assert post(api, f"/api/hosts/{host['id']}/edit/", {"description": "mine"}).status_code == 403
    edited = post(admin_api, f"/api/hosts/{host['id']}/edit/", {"description": "lab", "direct_io": False})
    assert edited.status_code == 200, edited.content
    row = Host.objects.get(pk=host["id"])  # the fields left out kept their values
    assert (row.name, row.uri, row.enabled, row.direct_io, row.description) == ("api-host", LIBVIRT_URI, True, False,
                                                                                "lab")
    assert AuditRecord.objects.get(action="host.edit").detail == {
        "description": {"from": "by script", "to": "lab"}, "direct_io": {"from": True, "to": False}}
    bad = post(admin_api, f"/api/hosts/{host['id']}/edit/", {"uri": "qemu+ssh://h/system?command=x"})
    assert bad.status_code == 400 and "uri" in bad.json()["errors"] and Host.objects.get(pk=row.pk).uri == LIBVIRT_URI

    assert post(api, f"/api/hosts/{host['id']}/check/").status_code == 403
    Host.objects.filter(pk=row.pk).update(status=Host.Status.UNKNOWN, libvirt_version="", last_checked_at=None)
    checking = post(admin_api, f"/api/hosts/{host['id']}/check/")
    assert checking.status_code == 202 and checking.json() == {"host": row.pk, "url": f"/api/hosts/{row.pk}/",
                                                                 "last_checked_at": None}

    def tested() -> dict | None:
        found = admin_api.get(checking.json()["url"]).json()
        return found if found["last_checked_at"] else None

    checked = wait_for(tested, message="the connection test")
    assert checked["status"] == "online" and checked["libvirt_version"]
    assert {"started"} == set(AuditRecord.objects.filter(action="host.test").values_list("outcome", flat=True))

    virsh("vol-delete", "--pool", filled_pool.name, "raw-prealloc.img")  # behind the app's back: a sync sees it
    job = succeeded(api, post(api, f"/api/hosts/{host['id']}/sync/"))  # whoever sees the host syncs it
    assert job["kind"] == "sync" and Job.objects.get(pk=job["id"]).created_by.username == "mia"
    assert not Volume.objects.filter(pool=pool, name="raw-prealloc.img").exists()

    unconfirmed = post(admin_api, f"/api/hosts/{host['id']}/delete/", {"confirm_name": "api-hos"})
    assert unconfirmed.status_code == 400 and "confirm_name" in unconfirmed.json()["errors"]
    assert post(api, f"/api/hosts/{host['id']}/delete/", {"confirm_name": "api-host"}).status_code == 403
    assert Host.objects.filter(pk=row.pk).exists()
    removed = post(admin_api, f"/api/hosts/{host['id']}/delete/", {"confirm_name": "api-host"})
    assert removed.status_code == 204 and not Host.objects.exists() and not StoragePool.objects.exists()
    assert filled_pool.name in virsh("pool-list", "--name") and (filled_pool.path / "raw-thin.img").exists()
    assert admin_api.get(f"/api/hosts/{host['id']}/").status_code == 404


def test_check_finds_what_qemu_img_finds_and_refuses_a_raw_volume(synced, celery_worker, api) -> None:
    pool, scratch = synced
    damaged_qcow2(scratch.path / "damaged.qcow2")
    assert sync_host(pool.host, refresh=True, pool_names=[pool.name]) is not None
    reports = {}
    for name in ("damaged.qcow2", "qcow2-thin.qcow2"):
        volume = Volume.objects.get(pool=pool, name=name)
        job = succeeded(api, post(api, f"/api/volumes/{volume.pk}/check/"))
        assert (job["kind"], job["volume_name"]) == ("check", name)
        reports[name] = job["result"]
    assert "the image is corrupted (leaked clusters: 1, corruptions: 1)" in reports["damaged.qcow2"]
    assert "no errors were found" in reports["qcow2-thin.qcow2"]
    raw = Volume.objects.get(pool=pool, name="raw-thin.img")
    refused = post(api, f"/api/volumes/{raw.pk}/check/")
    assert refused.status_code == 409 and refused.json()["code"] == "refused"
    assert "only qcow2 images have metadata to check" in refused.json()["message"]
    assert Job.objects.filter(kind="check").count() == 2


def test_info_reports_what_qemu_img_reports_and_refuses_a_quarantined_volume(synced, celery_worker, api) -> None:
    pool, scratch = synced
    volume = Volume.objects.get(pool=pool, name="qcow2-thin.qcow2")
    job = succeeded(api, post(api, f"/api/volumes/{volume.pk}/info/"))
    assert (job["kind"], job["volume_name"]) == ("info", "qcow2-thin.qcow2")
    report = api.get(f"/api/jobs/{job['id']}/").json()["params"]["report"]
    witness = qemu_img_info(str(scratch.path / "qcow2-thin.qcow2"))
    assert report["info"]["format"] == "qcow2" and report["info"]["virtual_size"] == witness["virtual-size"]
    assert report["live"]["capacity"] == witness["virtual-size"]
    Volume.objects.filter(pk=volume.pk).update(unsafe_reason="Quarantined for the test.")
    refused = post(api, f"/api/volumes/{volume.pk}/info/")
    assert refused.status_code == 409 and refused.json() == {"code": "refused", "message": "Quarantined for the test.",
                                                            "errors": {}}
    assert Job.objects.filter(kind="info").count() == 1


def test_convert_raw_to_qcow2_keeps_every_byte(synced, celery_worker, api) -> None:
    pool, scratch = synced
    source = scratch.path / "raw-thin.img"
    with open(source, "r+b") as f:
        for at in (0, 7 * MiB + 4097, 60 * MiB):
            f.seek(at)
            f.write(os.urandom(2 * MiB))
    raw = Volume.objects.get(pool=pool, name="raw-thin.img")
    url = f"/api/volumes/{raw.pk}/convert/"
    wrong = post(api, url, {"name": "c.qcow2", "target_pool": pool.pk, "format": "raw", "provisioning": "off",
                            "compress": True})
    assert wrong.status_code == 400 and "Only a qcow2 volume can be compressed" in str(wrong.json()["errors"])
    job = succeeded(api, post(api, url, {"name": "c.qcow2", "target_pool": pool.pk, "format": "qcow2",
                                         "provisioning": "off"}))
    assert (job["kind"], job["target_volume_name"], job["progress_done"]) == ("convert", "c.qcow2", 64 * MiB)
    copy = api.get(f"/api/volumes/?pool={pool.pk}&search=c.qcow2").json()["results"][0]
    assert (copy["format"], copy["capacity"], copy["unsafe_reason"]) == ("qcow2", 64 * MiB, "")
    assert qemu_img_info(copy["path"])["format"] == "qcow2"
    assert identical(source, "raw", scratch.path / "c.qcow2", "qcow2")
    flat = scratch.path.parent / "flat.raw"  # the data read back through qemu-img, byte for byte
    qemu_img("convert", "-f", "qcow2", "-O", "raw", str(scratch.path / "c.qcow2"), str(flat))
    assert flat.read_bytes() == source.read_bytes()
    taken = post(api, url, {"name": "c.qcow2", "target_pool": pool.pk, "format": "qcow2", "provisioning": "off"})
    assert taken.status_code == 400 and "already has a volume named c.qcow2" in taken.json()["errors"]["name"][0][
        "message"]


def test_import_of_a_file_into_a_pool_is_for_admins(synced, celery_worker, admin_api, api, tmp_path) -> None:
    pool, scratch = synced
    image = tmp_path / "disk.img"  # a qcow2 with a raw name: the content decides
    qemu_img("create", "-q", "-f", "qcow2", str(image), "32M")
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 4M 3M", str(image)], check=True,
                   capture_output=True, timeout=60)
    before = image.read_bytes()
    url = f"/api/pools/{pool.pk}/import/"
    data = {"path": str(image), "name": "imported.qcow2", "provisioning": "off"}
    assert post(api, url, data).status_code == 403  # an operator of the team: not the pool's admin
    outside = post(admin_api, url, {**data, "path": "/etc/passwd"})
    assert outside.status_code == 400 and "system directory /etc" in outside.json()["errors"]["path"][0]["message"]
    job = succeeded(admin_api, post(admin_api, url, data))
    assert (job["kind"], job["volume_name"], job["pool"]) == ("import", "imported.qcow2", pool.pk)
    row = Volume.objects.get(pool=pool, name="imported.qcow2")
    assert (row.format, row.capacity, row.backing_path, row.unsafe_reason) == ("qcow2", 32 * MiB, "", "")
    assert "<format type='qcow2'/>" in virsh("vol-dumpxml", "--pool", scratch.name, "imported.qcow2")
    assert identical(image, "qcow2", scratch.path / "imported.qcow2", "qcow2")
    assert image.read_bytes() == before  # the source stays as it was
