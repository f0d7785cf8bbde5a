"""The image tools end to end: the volume page's Image panel (qemu-img info beside libvirt), check, convert
and import as jobs in a real Celery worker on the real libvirtd, checked with qemu-img and virsh.

What an image that names a file outside the pools gets from each tool is tests/volumes/test_image_tools_safety.py.
"""

from __future__ import annotations

import hashlib
import html
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from django.urls import reverse

from audit.models import AuditRecord
from hosts.models import Host
from inventory.sync import sync_host
from jobs.models import Job
from pools.models import StoragePool
from tests.conftest import virsh, wait_for, wait_for_job
from tests.virt.test_qemuimg import damaged_qcow2, flagged_qcow2, identical, qemu_img
from tests.volumes.test_volume_ops import (  # noqa: F401 - second_pool is a fixture (getfixturevalue)
    assert_leads_to,
    job_from,
    qemu_img_info,
    run_op,
    second_pool,
    vol_names,
    vol_sizes,
    volume_row,
)
from virtstorage.virt import open_host, qemuimg
from virtstorage.virt.connection import forget_connection
from volumes.models import Volume
from volumes.tools_forms import ImportForm

pytestmark = pytest.mark.django_db(transaction=True)

MiB = 1024 * 1024


def panel(client, volume: Volume) -> str:
    response = client.get(reverse("volumes:image_panel", args=[volume.pk]))
    assert response.status_code == 200
    return html.unescape(response.content.decode())


def exact(size: int) -> str:
    """How the size filter writes exact bytes (in a tooltip)."""
    return f'title="{size:,} bytes"'


def fill(path, *offsets: int, length: int = 2 * MiB) -> None:
    with open(path, "r+b") as f:
        for at in offsets:
            f.seek(at)
            f.write(os.urandom(length))


def sha256(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def audited(action: str) -> set[str]:
    return set(AuditRecord.objects.filter(action=action).values_list("outcome", flat=True))


# -- the Image panel ------------------------------------------------------------------------------------

def follows_or_reports(body: str, job: Job) -> bool:
    """Whether the panel a launch answered follows the job (its progress, closing on its end), or, a quick
    reading having ended between the launch and the panel's render, shows that job's report."""
    following = (f"job-{job.pk}-progress" in body and 'id="image-reading"' in body
                 and 'hx-trigger="htmx:sseClose"' in body)
    ended = f'(<a href="/jobs/{job.pk}/">job #{job.pk}</a>)' in body and 'id="image-reading"' not in body
    return following or ended


def read_panel(client, volume: Volume) -> str:
    """The panel once qemu-img has read the volume: "Read with qemu-img" (htmx) starts the info job, whose progress
    the panel shows; the panel once it has ended."""
    response = client.post(reverse("volumes:image_info", args=[volume.pk]), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    job = Job.objects.filter(kind="info", pool=volume.pool, volume_name=volume.name).latest("pk")
    body = response.content.decode()
    assert follows_or_reports(body, job), body
    job = wait_for_job(job.pk, timeout=60)
    assert job.state == Job.State.SUCCEEDED, f"{job.error}\n{job.log}"
    return panel(client, volume)


def test_the_volume_page_and_the_panel_never_run_qemu_img(member_client, synced, monkeypatch):
    """The page carries a loader for the panel, and the panel only shows what an info job read: with qemu-img gone
    from this process both render, and the panel, with nothing read yet, starts the first reading by a POST."""
    pool, _scratch = synced
    volume = volume_row(pool, "overlay.qcow2")
    monkeypatch.setattr(qemuimg, "QEMU_IMG", "qemu-img-is-not-here")
    page = member_client.get(volume.get_absolute_url()).content.decode()
    assert f'hx-get="{reverse("volumes:image_panel", args=[volume.pk])}"' in page and 'hx-trigger="load"' in page
    assert "Asking qemu-img" in page and "qemu-img-is-not-here" not in page
    body = panel(member_client, volume)
    assert 'id="image-auto-read"' in body and 'hx-trigger="load"' in body
    assert f'hx-post="{reverse("volumes:image_info", args=[volume.pk])}"' in body
    assert "is not installed" not in body and 'id="image-sizes"' not in body
    assert not Job.objects.exists()  # a GET starts nothing
    assert member_client.get(reverse("volumes:image_info", args=[volume.pk])).status_code == 405


@pytest.mark.parametrize(("name", "provisioning"), [("raw-thin.img", "thin-provisioned"),
                                                    ("raw-prealloc.img", "preallocated"),
                                                    ("overlay.qcow2", "thin-provisioned")])
def test_the_panel_puts_qemu_img_beside_libvirt(name, provisioning, member_client, celery_worker, synced):
    pool, scratch = synced
    volume = volume_row(pool, name)
    body = read_panel(member_client, volume)
    witness = qemu_img_info(str(scratch.path / name))
    capacity, allocation = vol_sizes(scratch.name, name)
    for size in (witness["virtual-size"], witness["actual-size"], capacity, allocation):
        assert exact(size) in body, size
    assert "<th class=\"num\">qemu-img info</th><th class=\"num\">libvirt</th>" in body
    assert "equal means preallocated, smaller means thin-provisioned, which allows overcommit" in body
    assert f"This image is <strong>{provisioning}</strong>" in body
    check_button = f'action="{reverse("volumes:image_check", args=[volume.pk])}"'
    assert (check_button in body) == (witness["format"] == "qcow2")
    assert reverse("volumes:image_convert", args=[volume.pk]) in body
    if name == "overlay.qcow2":
        assert 'id="image-chain"' in body and f"{pool.name} / base.qcow2: qcow2" in body
        assert exact(witness["cluster-size"]) in body and "Corrupt flag</dt><dd>not set" in body
        # qcow2's compression type is a setting, not a sign that the data is compressed
        compression = witness["format-specific"]["data"]["compression-type"]
        assert (f"Compression type</dt><dd>{compression} (used only for clusters written compressed)</dd>"
                in body)
    else:
        assert "none: it holds all its own data" in body
    job = Job.objects.get(kind="info", volume_name=name)
    assert job.params["report"]["info"]["virtual_size"] == witness["virtual-size"]
    assert {"started", "ok"} <= audited("volume.info")
    assert 'id="image-stale"' not in body and 'id="image-read"' in body  # read again at will
    assert sync_host(pool.host, pool_names=[pool.name]) is not None  # the inventory sees the volume again,
    assert 'id="image-stale"' not in panel(member_client, volume)  # unchanged: the report still holds
    virsh("vol-resize", name, str(capacity + 2**20), "--pool", scratch.name)  # changed behind the app's back
    assert sync_host(pool.host, pool_names=[pool.name]) is not None
    assert 'id="image-stale"' in panel(member_client, volume)


def test_the_panel_follows_the_reading_and_starts_it_only_once(member_client, celery_worker, synced):
    pool, _scratch = synced
    volume = volume_row(pool, "qcow2-thin.qcow2")
    url = reverse("volumes:image_info", args=[volume.pk])
    first = member_client.post(url, HTTP_HX_REQUEST="true").content.decode()
    again = member_client.post(url, HTTP_HX_REQUEST="true").content.decode()  # a second tab, while it reads
    jobs = list(Job.objects.filter(kind="info", volume_name=volume.name).order_by("pk"))
    job = wait_for_job(jobs[0].pk, timeout=60)
    assert follows_or_reports(first, job), first
    if len(jobs) == 1:  # it follows the same reading: its progress, or its report if it ended meanwhile (the
        # view found it running, and the panel it rendered a moment later found it done)
        assert follows_or_reports(again, job), again
    else:  # the first had already ended when the second came
        assert len(jobs) == 2 and job.finished_at <= jobs[1].created_at
        wait_for_job(jobs[1].pk, timeout=60)
    body = panel(member_client, volume)
    assert 'id="image-sizes"' in body and 'id="image-auto-read"' not in body  # read: no second automatic start
    # Without htmx the button is a form: it goes to the job's page.
    response = member_client.post(url)
    latest = Job.objects.filter(kind="info").latest("pk")
    assert response.status_code == 302 and response["Location"] == latest.get_absolute_url()
    assert wait_for_job(latest.pk, timeout=60).state == Job.State.SUCCEEDED


def test_a_reading_that_fails_says_why_and_does_not_start_again(member_client, celery_worker, synced):
    """A volume deleted behind the app's back (the inventory has not seen it go): the job fails with libvirt's
    words, the panel shows them and offers to read again rather than starting another reading by itself."""
    pool, scratch = synced
    volume = volume_row(pool, "raw-prealloc.img")
    virsh("vol-delete", "--pool", scratch.name, "raw-prealloc.img")
    response = member_client.post(reverse("volumes:image_info", args=[volume.pk]), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    job = wait_for_job(Job.objects.get(kind="info", volume_name="raw-prealloc.img").pk, timeout=60)
    assert job.state == Job.State.FAILED and "raw-prealloc.img" in job.error, job.log
    body = panel(member_client, volume)
    assert 'id="image-read-failed"' in body and job.error in body, body
    assert 'id="image-auto-read"' not in body and 'id="image-read"' in body and 'id="image-sizes"' not in body
    assert {"started", "failed"} <= audited("volume.info")


def _libvirt_clients_of_this_process() -> list[str]:
    """libvirtd's own list of its clients (virt-admin), those that are this test process."""
    def admin(*args: str) -> str:
        return subprocess.run(["virt-admin", *args], capture_output=True, text=True, timeout=30).stdout

    server = next(line.split()[1] for line in admin("srv-list").splitlines()[2:]
                  if len(line.split()) > 1 and line.split()[1] != "admin")
    ids = [line.split()[0] for line in admin("client-list", server).splitlines()[2:] if line.split()]
    return [cid for cid in ids if _client_pid(admin("client-info", server, cid)) == os.getpid()]


def _client_pid(info: str) -> int | None:
    """The unix_process_id line of virt-admin's client-info, as a number: pid 2180 is not pid 21806."""
    for line in info.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "unix_process_id":
            return int(value)
    return None


def test_the_panel_and_its_reading_make_no_libvirt_connection_in_the_request(member_client, celery_worker, synced,
                                                                             tmp_path, monkeypatch):
    """Neither the panel nor the POST that starts a reading opens a connection to libvirtd (its own client list has
    none of this process) or runs qemu-img (a wrapper logs every call); the job, in the worker, does both."""
    pool, _scratch = synced
    volume = volume_row(pool, "overlay.qcow2")
    log = tmp_path / "qemu-img-calls.log"
    wrapper = tmp_path / "qemu-img-wrapper"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {log}\nexec qemu-img "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setattr(qemuimg, "QEMU_IMG", str(wrapper))
    forget_connection(pool.host.uri)  # the fixtures' connection of this process
    # Another test of this process may have left a connection of its own open (to another URI, say, through
    # the qemu+tcp forwarder): what counts is that none is added. libvirtd numbers its clients afresh.
    before = set(_libvirt_clients_of_this_process())
    assert 'id="image-auto-read"' in panel(member_client, volume)
    started = member_client.post(reverse("volumes:image_info", args=[volume.pk]), HTTP_HX_REQUEST="true")
    job = Job.objects.get(kind="info", volume_name=volume.name)
    assert started.status_code == 200 and follows_or_reports(started.content.decode(), job), started.content
    job = wait_for_job(job.pk, timeout=60)
    assert job.state == Job.State.SUCCEEDED and "Running qemu-img info on 2 files" in job.log, job.error
    assert 'id="image-sizes"' in panel(member_client, volume)
    assert set(_libvirt_clients_of_this_process()) <= before and not log.exists()
    with open_host(pool.host.uri):  # the witness sees a connection of this process when there is one
        assert set(_libvirt_clients_of_this_process()) - before
    forget_connection(pool.host.uri)


def test_the_panel_shows_dirty_and_corrupt_flags(member_client, celery_worker, local_host, synced, tmp_path):
    pool, scratch = synced
    flagged_qcow2(scratch.path / "dirty.qcow2", dirty=True)
    flagged_qcow2(scratch.path / "corrupt.qcow2", corrupt=True)
    assert sync_host(local_host, refresh=True, pool_names=[pool.name]) is not None
    dirty = read_panel(member_client, volume_row(pool, "dirty.qcow2"))
    assert 'badge danger">dirty' in dirty and "Corrupt flag</dt><dd>not set" in dirty
    corrupt = read_panel(member_client, volume_row(pool, "corrupt.qcow2"))
    assert 'badge danger">corrupt' in corrupt and "Dirty flag</dt><dd>clean" in corrupt


def test_a_remote_host_is_said_to_be_out_of_reach_at_once(member_client, admin_client, transactional_db, tmp_path):
    host = Host.objects.create(name="far", uri="qemu+ssh://root@far.invalid/system", status=Host.Status.ONLINE)
    pool = StoragePool.objects.create(host=host, name="far-pool", type="dir", state=StoragePool.State.ACTIVE,
                                      capacity=100 * 2**30, available=100 * 2**30)
    volume = Volume.objects.create(pool=pool, name="disk.qcow2", format="qcow2", recorded_format="qcow2",
                                   capacity=2**30, path="/var/lib/libvirt/images/disk.qcow2")
    started = time.monotonic()
    body = panel(member_client, volume)
    assert time.monotonic() - started < 1.0
    assert "another machine" in body and 'id="image-unavailable"' in body
    read = member_client.post(reverse("volumes:image_info", args=[volume.pk]), HTTP_HX_REQUEST="true")
    assert "another machine" in html.unescape(read.content.decode())  # and no job
    check = member_client.post(reverse("volumes:image_check", args=[volume.pk]), follow=True)
    assert "another machine" in html.unescape(check.content.decode())
    convert = member_client.post(reverse("volumes:image_convert", args=[volume.pk]),
                                 {"name": "copy.raw", "target_pool": pool.pk, "format": "raw", "provisioning": "off"})
    assert convert.status_code == 400 and "another machine" in html.unescape(convert.content.decode())
    (tmp_path / "disk.img").write_bytes(os.urandom(MiB))
    imported = admin_client.post(reverse("volumes:image_import", args=[pool.pk]),
                                 {"path": str(tmp_path / "disk.img"), "name": "x.img", "provisioning": "off"})
    assert imported.status_code == 400 and "another machine" in html.unescape(imported.content.decode())
    assert not Job.objects.exists()


# -- check ----------------------------------------------------------------------------------------------

def test_check_reports_a_damaged_qcow2(member_client, celery_worker, local_host, synced):
    pool, scratch = synced
    damaged_qcow2(scratch.path / "both.qcow2")
    damaged_qcow2(scratch.path / "leaky.qcow2", corrupt=False)
    assert sync_host(local_host, refresh=True, pool_names=[pool.name]) is not None
    outcomes = {}
    for name in ("both.qcow2", "leaky.qcow2", "qcow2-thin.qcow2"):
        job = run_op(member_client, reverse("volumes:image_check", args=[volume_row(pool, name).pk]), {})
        assert job.state == Job.State.SUCCEEDED and job.kind == "check" and job.volume_name == name, job.error
        outcomes[name] = job
    both = outcomes["both.qcow2"]
    assert "the image is corrupted (leaked clusters: 1, corruptions: 1)" in both.result
    assert "-r all` can repair" in both.result and "ERROR cluster 0 refcount=0 reference=1" in both.log
    assert "leaked clusters, but no corruption (leaked clusters: 1, corruptions: 0)" in outcomes["leaky.qcow2"].result
    assert "-r leaks" in outcomes["leaky.qcow2"].result
    assert "no errors were found" in outcomes["qcow2-thin.qcow2"].result
    assert {"started", "ok"} <= audited("volume.check")
    body = panel(member_client, volume_row(pool, "both.qcow2"))
    assert f"#{both.pk}" in body and "the image is corrupted" in body  # the panel shows the last check
    assert sha256(scratch.path / "both.qcow2") == sha256(damaged_qcow2(scratch.path.parent / "again.qcow2"))


def test_a_raw_volume_has_nothing_to_check(member_client, celery_worker, synced):
    pool, _scratch = synced
    raw = volume_row(pool, "raw-thin.img")
    response = member_client.post(reverse("volumes:image_check", args=[raw.pk]), follow=True)
    assert "only qcow2 images have metadata to check" in html.unescape(response.content.decode())
    assert not Job.objects.filter(kind="check").exists()
    assert member_client.get(reverse("volumes:image_check", args=[raw.pk])).status_code == 405


# -- convert --------------------------------------------------------------------------------------------

def test_convert_raw_to_qcow2_to_raw_keeps_every_byte(member_client, celery_worker, synced, request):
    pool, scratch = synced
    other_pool = request.getfixturevalue("second_pool")
    source = scratch.path / "raw-thin.img"
    fill(source, 0, 7 * MiB + 4097, 60 * MiB)
    job = run_op(member_client, reverse("volumes:image_convert", args=[volume_row(pool, "raw-thin.img").pk]),
                 {"name": "copy.qcow2", "target_pool": pool.pk, "format": "qcow2", "provisioning": "off"})
    assert job.state == Job.State.SUCCEEDED and job.kind == "convert", job.error
    assert job.progress_total == 64 * MiB and job.progress_done == job.progress_total and job.cancellable
    assert "qemu-img convert" in job.log
    copy = volume_row(pool, "copy.qcow2")  # in the inventory as soon as the job has ended
    assert (copy.format, copy.recorded_format, copy.unsafe_reason, copy.capacity) == ("qcow2", "qcow2", "", 64 * MiB)
    assert qemu_img_info(copy.path)["format"] == "qcow2"
    job = run_op(member_client, reverse("volumes:image_convert", args=[copy.pk]),
                 {"name": "back.raw", "target_pool": other_pool.pk, "format": "raw", "provisioning": "off"})
    assert job.state == Job.State.SUCCEEDED, job.error
    back = volume_row(other_pool, "back.raw")
    assert back.format == "raw" and back.capacity == 64 * MiB
    assert_leads_to(member_client, job, other_pool, "back.raw")
    assert identical(source, "raw", copy.path, "qcow2") and identical(source, "raw", back.path, "raw")
    assert open(source, "rb").read() == open(back.path, "rb").read()
    assert back.allocation < 16 * MiB  # 6 MiB of data: the holes stayed holes
    assert {"started", "ok"} <= audited("volume.convert")


def test_a_copy_that_libvirt_reads_as_another_format_is_removed(member_client, celery_worker, synced, tmp_path):
    """The bytes of a raw volume became a qcow2 image after the inventory recorded it (a guest wrote one), and
    libvirt has not probed it since: a raw copy holds that image too. The check of the copy's first bytes, after
    qemu-img wrote it, finds qcow2, so the job removes it instead of leaving a "raw" volume that is a qcow2 (which
    libvirt would take for one at its next rescan)."""
    pool, scratch = synced
    image = tmp_path / "inside.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", str(image), "64M")
    with open(scratch.path / "raw-thin.img", "r+b") as f:
        f.write(image.read_bytes())
    job = run_op(member_client, reverse("volumes:image_convert", args=[volume_row(pool, "raw-thin.img").pk]),
                 {"name": "copy.raw", "target_pool": pool.pk, "format": "raw", "provisioning": "off"})
    assert job.state == Job.State.FAILED, job.log
    assert "stated to be raw, but its content is a qcow2 image" in job.error
    assert job.error.endswith("The new volume was removed.")
    assert "copy.raw" not in vol_names(scratch.name) and not (scratch.path / "copy.raw").exists()
    assert not Volume.objects.filter(pool=pool, name="copy.raw").exists()


def test_convert_flattens_a_backing_chain(member_client, celery_worker, local_host, synced):
    pool, scratch = synced
    for path, pattern, where in ((scratch.path / "base.qcow2", "0x11", "0 2M"),
                                 (scratch.path / "overlay.qcow2", "0x22", "1M 64k")):
        subprocess.run(["qemu-io", "-f", "qcow2", "-c", f"write -P {pattern} {where}", str(path)], check=True,
                       capture_output=True, timeout=60)
    assert sync_host(local_host, pool_names=[pool.name]) is not None
    job = run_op(member_client, reverse("volumes:image_convert", args=[volume_row(pool, "overlay.qcow2").pk]),
                 {"name": "flat.raw", "target_pool": pool.pk, "format": "raw", "provisioning": "off"})
    assert job.state == Job.State.SUCCEEDED, job.error
    assert "overlay.qcow2 (qcow2) → " in job.log and "base.qcow2 (qcow2)" in job.log
    flat = volume_row(pool, "flat.raw")
    assert flat.backing_path == "" and identical(scratch.path / "overlay.qcow2", "qcow2", flat.path, "raw")
    data = open(flat.path, "rb").read(2 * MiB)
    assert data[:MiB] == b"\x11" * MiB and data[MiB:MiB + 65536] == b"\x22" * 65536


def test_convert_compressed_and_preallocated(member_client, celery_worker, synced):
    pool, scratch = synced
    source = scratch.path / "raw-thin.img"
    with open(source, "r+b") as f:
        f.write(b"compress me " * (16 * MiB // 12))
    raw = volume_row(pool, "raw-thin.img")
    url = reverse("volumes:image_convert", args=[raw.pk])
    job = run_op(member_client, url, {"name": "packed.qcow2", "target_pool": pool.pk, "format": "qcow2",
                                      "provisioning": "off", "compress": "on"})
    assert job.state == Job.State.SUCCEEDED, job.error
    packed = volume_row(pool, "packed.qcow2")
    assert packed.allocation < 2 * MiB and identical(source, "raw", packed.path, "qcow2")
    job = run_op(member_client, url, {"name": "full.raw", "target_pool": pool.pk, "format": "raw",
                                      "provisioning": "full"})
    assert job.state == Job.State.SUCCEEDED, job.error
    capacity, allocation = vol_sizes(scratch.name, "full.raw")
    assert allocation >= capacity == 64 * MiB and identical(source, "raw", scratch.path / "full.raw", "raw")
    for refused, why in [({"format": "raw", "compress": "on"}, "Only a qcow2 volume can be compressed"),
                         ({"format": "qcow2", "compress": "on", "provisioning": "full"}, "compressed volume is thin"),
                         ({"format": "raw", "provisioning": "metadata"}, "Metadata preallocation exists only"),
                         ({"name": "packed.qcow2"}, "already has a volume named packed.qcow2"),
                         ({"name": "bad name"}, "not allowed")]:
        data = {"name": "other.img", "target_pool": pool.pk, "format": "qcow2", "provisioning": "off", **refused}
        response = member_client.post(url, data)
        assert response.status_code == 400 and why in html.unescape(response.content.decode()), why
    assert Job.objects.filter(kind="convert").count() == 2


def qemu_img_writing(path) -> list[int]:
    """The qemu-img processes that hold path open (the app hands it its target as an inherited descriptor)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "comm").read_text().strip() == "qemu-img" and any(
                    os.readlink(fd) == str(path) for fd in (entry / "fd").iterdir()):
                found.append(int(entry.name))
        except OSError:
            continue  # gone meanwhile, or a descriptor closed while read
    return found


def test_a_cancelled_convert_removes_its_half_written_volume(member_client, celery_worker, local_host, synced):
    pool, scratch = synced
    scratch.create_volume("big.img", "256M")
    block = os.urandom(MiB)
    with open(scratch.path / "big.img", "r+b") as f:
        for _ in range(256):
            f.write(block)
    assert sync_host(local_host, pool_names=[pool.name]) is not None
    job = job_from(member_client.post(reverse("volumes:image_convert", args=[volume_row(pool, "big.img").pk]),
                                      {"name": "half.qcow2", "target_pool": pool.pk, "format": "qcow2",
                                       "provisioning": "off", "compress": "on"}))
    # qemu-img is held still (SIGSTOP) once it runs, so the cancel comes mid-write however fast this machine
    # compresses; the job's kill (SIGKILL) ends a stopped process too.
    pids = wait_for(lambda: qemu_img_writing(scratch.path / "half.qcow2"), timeout=60, interval=0.01,
                    message="qemu-img writing half.qcow2")
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    assert "half.qcow2" in vol_names(scratch.name)
    assert member_client.post(reverse("jobs:cancel", args=[job.pk])).status_code == 302
    job = wait_for_job(job.pk)
    assert job.state == Job.State.CANCELLED and job.progress_done < job.progress_total, job.log
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids), "the cancel left qemu-img running"
    assert "half.qcow2" not in vol_names(scratch.name)
    assert not Volume.objects.filter(pool=pool, name="half.qcow2").exists()
    assert not (scratch.path / "half.qcow2").exists()


# -- import ---------------------------------------------------------------------------------------------

def test_import_reads_the_format_from_the_content_never_the_name(admin_client, celery_worker, synced, tmp_path):
    pool, scratch = synced
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    raw = incoming / "disk.qcow2"  # a raw file with a qcow2 name
    raw.write_bytes(os.urandom(3 * MiB) + b"\0" * MiB)
    qcow2 = incoming / "disk.img"  # a qcow2 with a raw name
    qemu_img("create", "-q", "-f", "qcow2", str(qcow2), "32M")
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x33 4M 1M", str(qcow2)], check=True,
                   capture_output=True, timeout=60)
    overlay = incoming / "on-a-pool-volume.qcow2"  # backed by a volume of the pool: allowed, copied flat
    fill(scratch.path / "raw-thin.img", 0)
    qemu_img("create", "-q", "-f", "qcow2", "-b", str(scratch.path / "raw-thin.img"), "-F", "raw", str(overlay))
    before = {path: sha256(path) for path in (raw, qcow2, overlay)}
    url = reverse("volumes:image_import", args=[pool.pk])
    for path, name, fmt, expect in [(raw, "was-named-qcow2", "", "raw"), (qcow2, "was-named-img", "", "qcow2"),
                                    (qcow2, "made-raw", "raw", "raw"), (overlay, "flat", "", "qcow2")]:
        job = run_op(admin_client, url, {"path": str(path), "name": name, "format": fmt, "provisioning": "off"})
        assert job.state == Job.State.SUCCEEDED and job.kind == "import", job.error
        row = volume_row(pool, name)
        assert (row.format, row.recorded_format, row.backing_path, row.unsafe_reason) == (expect, expect, "", "")
        assert f"<format type='{expect}'/>" in virsh("vol-dumpxml", "--pool", scratch.name, name)
        assert identical(path, "qcow2" if path != raw else "raw", row.path, expect), name
        assert_leads_to(admin_client, job, pool, name)
    assert volume_row(pool, "was-named-qcow2").capacity == 4 * MiB
    assert {path: sha256(path) for path in (raw, qcow2, overlay)} == before  # the files stay as they were
    assert {"started", "ok"} <= audited("volume.import")


def test_import_is_for_admins_and_files_inside_the_import_roots(member_client, admin_client, synced, tmp_path,
                                                                settings):
    pool, _scratch = synced
    url = reverse("volumes:image_import", args=[pool.pk])
    good = tmp_path / "good.img"
    good.write_bytes(os.urandom(MiB))
    assert member_client.post(url, {"path": str(good), "name": "x.img", "provisioning": "off"}).status_code == 403
    assert 'id="import-image"' not in member_client.get(pool.get_absolute_url()).content.decode()
    assert 'id="import-image"' in admin_client.get(pool.get_absolute_url()).content.decode()
    (tmp_path / "to-etc").symlink_to("/etc/passwd")
    (tmp_path / ".hidden.img").write_bytes(b"x" * 512)
    (tmp_path / "empty.img").touch()
    (tmp_path / "dir.img").mkdir()
    vmdk = tmp_path / "disk.vmdk"
    qemu_img("create", "-q", "-f", "vmdk", str(vmdk), "4M")
    refusals = {"/etc/passwd": "system directory /etc", str(tmp_path / "to-etc"): "leads to /etc/passwd",
                f"{tmp_path}/../{tmp_path.name}/good.img": "without '..'", "good.img": "absolute path",
                str(tmp_path / "missing.img"): "cannot be reached", str(tmp_path / ".hidden.img"): "hidden file",
                str(tmp_path / "empty.img"): "is empty", str(tmp_path / "dir.img"): "not a regular file",
                str(vmdk): "vmdk"}
    for path, why in refusals.items():
        response = admin_client.post(url, {"path": path, "name": "x.img", "provisioning": "off"})
        assert response.status_code == 400 and why in html.unescape(response.content.decode()), (path, why)
    narrow = tmp_path / "narrow"
    narrow.mkdir()
    shutil.copyfile(good, narrow / "inside.img")
    settings.IMPORT_ROOTS = [str(narrow)]
    outside = ImportForm({"path": str(good), "name": "x.img", "provisioning": "off"}, pool=pool)
    assert not outside.is_valid() and "outside the import roots" in str(outside.errors["path"])
    assert f"only from {narrow} (IMPORT_ROOTS)" in str(outside.errors["path"])
    inside = ImportForm({"path": str(narrow / "inside.img"), "name": "x.img", "provisioning": "off"}, pool=pool)
    assert inside.is_valid(), inside.errors
    assert not Job.objects.exists()


# -- in a browser ---------------------------------------------------------------------------------------

@pytest.mark.browser
def test_the_panel_loads_after_the_page_and_its_buttons_start_the_jobs(asgi_server, celery_worker, synced, member):
    from tests.browser.browser import browser_page, log_in

    pool, scratch = synced
    volume = volume_row(pool, "qcow2-thin.qcow2")
    with browser_page(asgi_server.url) as page:
        log_in(page, member.username, "correct-horse-battery")
        page.goto(volume.get_absolute_url())
        # The panel starts the first reading itself, follows its job, and shows the report once it has ended.
        page.wait_for_selector("#image-sizes", timeout=60_000)
        assert "thin-provisioned" in page.locator("#image-provisioning").inner_text()
        first = page.locator("#image-tools h2 a").inner_text()  # "job #N", the reading shown
        page.click("#image-read button")  # read again: a new job, then its report
        page.wait_for_function("first => { const a = document.querySelector('#image-tools h2 a');"
                               " return a && a.textContent !== first && document.querySelector('#image-sizes'); }",
                               arg=first, timeout=60_000)
        page.click("#image-tools button:has-text('Check')")
        page.wait_for_url("**/jobs/*/")
        page.wait_for_selector(".progress[data-state=succeeded]", timeout=60_000)
        page.goto(volume.get_absolute_url())
        page.wait_for_selector("#image-last-check")
        assert "no errors were found" in page.locator("#image-last-check").inner_text()
        page.click("#image-tools >> text=Convert…")
        page.fill("#id_name", "from-browser.raw")
        page.select_option("#id_format", "raw")
        page.click("button:has-text('Start convert')")
        page.wait_for_url("**/jobs/*/")
        page.wait_for_selector(".progress[data-state=succeeded]", timeout=60_000)
    assert identical(scratch.path / "qcow2-thin.qcow2", "qcow2", scratch.path / "from-browser.raw", "raw")
