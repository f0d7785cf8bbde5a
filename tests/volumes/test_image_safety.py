"""Members are confined to the images the app gives them: an image that names a file outside itself
(an external data file, a backing file outside the pools), a symbolic link, or a raw volume whose bytes
turn into another format never reaches qemu-img or libvirt as such, whether it was uploaded, dropped into
the pool directory and synced, or changed between the sync and the job.

The host file such an image names is checked byte for byte and by its times: its atime is set before
its mtime, so under relatime any read at all moves it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from django.urls import reverse

from inventory.sync import sync_host
from jobs.models import Job
from jobs.runner import launch
from tests.conftest import virsh, wait_for_job
from tests.volumes.conftest import Api, upload_and_wait
from tests.volumes.test_upload_download import sha256_file
from tests.volumes.test_volume_ops import job_from, vol_names, volume_row
from volumes import tasks
from volumes.models import Volume

pytestmark = pytest.mark.django_db(transaction=True)

MiB = 1024 * 1024
OLD_ATIME = 1_000_000_000  # 2001: older than any mtime, so relatime updates it on the next read


class HostFile:
    """A file of the host outside every pool, holding bytes no member may read or change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.write_bytes(os.urandom(MiB))
        self.digest = hashlib.sha256(path.read_bytes()).hexdigest()
        os.utime(path, (OLD_ATIME, path.stat().st_mtime))
        self.mtime_ns = path.stat().st_mtime_ns

    def forget_reads(self) -> None:
        """libvirt's own rescan reads a file a backing name or a symlink in a pool leads to (to size it):
        the app cannot stop that, so tests of what the app does start counting reads after it."""
        os.utime(self.path, ns=(OLD_ATIME * 10**9, self.mtime_ns))

    def assert_untouched(self) -> None:
        st = self.path.stat()
        assert st.st_size == MiB and st.st_mtime_ns == self.mtime_ns, "the host file was changed"
        assert int(st.st_atime) == OLD_ATIME, "the host file was read"
        os.utime(self.path, (OLD_ATIME, st.st_mtime))  # reading it here for the digest must not count
        assert hashlib.sha256(self.path.read_bytes()).hexdigest() == self.digest
        os.utime(self.path, ns=(OLD_ATIME * 10**9, self.mtime_ns))


# What libvirt's refresh of a pool reads of an image planted in it: a backing file's header, a link's target.
READ_BY_LIBVIRT = {"backing file", "second-level backing", "relative backing", "symlink"}


def alone_when_read_by_libvirt(kinds: list[str], read: set[str] = READ_BY_LIBVIRT) -> list:
    """The kinds as parameters, those in read marked serial: a full sync of the host, by any test process,
    refreshes every pool libvirtd has, this test's too, and that read of the host file would count as the app's.
    Alone, the reads after forget_reads are this test's."""
    return [pytest.param(kind, marks=pytest.mark.serial) if kind in read else kind for kind in kinds]


@pytest.fixture
def host_file(tmp_path_factory) -> HostFile:
    return HostFile(tmp_path_factory.mktemp("host") / "secret.bin")


def qemu_img(*args: str) -> None:
    subprocess.run(["qemu-img", *args], check=True, capture_output=True, timeout=60)


def data_file_image(path: Path, target: HostFile) -> Path:
    """A qcow2 whose data lives in the host file: made against a stand-in, then pointed at the host file
    by name only (qemu-img amend would open it)."""
    stand_in = path.parent / "stand-in.bin"
    qemu_img("create", "-q", "-f", "qcow2", "-o", f"data_file={stand_in},data_file_raw=on", str(path), "1M")
    image = bytearray(path.read_bytes())
    old = str(stand_in).encode()
    new = str(target.path).encode()
    assert len(new) <= len(old) + 64
    at = image.index(old)
    # the extension's length field stands right before the name; the name is padded to 8 bytes
    length_at = at - 4
    ext_len = int.from_bytes(image[length_at:length_at + 4], "big")
    assert ext_len == len(old)
    padded = (len(old) + 7) // 8 * 8
    new_padded = (len(new) + 7) // 8 * 8
    assert new_padded <= padded, "keep the temp path short enough to patch in place"
    image[length_at:length_at + 4] = len(new).to_bytes(4, "big")
    image[at:at + padded] = new.ljust(padded, b"\0")
    path.write_bytes(bytes(image))
    stand_in.unlink()
    return path


def backed_image(path: Path, target: HostFile) -> Path:
    qemu_img("create", "-q", "-f", "qcow2", "-u", "-b", str(target.path), "-F", "raw", str(path), "1M")
    return path


def drop_into_pool(local_host, pool, scratch, image: Path, name: str) -> Volume:
    """Someone puts a file into the pool directory; the next sync (which asks libvirt to rescan) sees it."""
    shutil.copyfile(image, scratch.path / name)
    assert sync_host(local_host, refresh=True, pool_names=[pool.name]) is not None
    return volume_row(pool, name)


# -- files dropped into a pool directory ------------------------------------------------------

@pytest.mark.parametrize("kind", alone_when_read_by_libvirt(["data file", "backing file"]))
def test_a_dropped_image_naming_a_host_file_is_marked_and_every_member_operation_is_refused(
        kind, member_client, celery_worker, local_host, synced, host_file, tmp_path):
    pool, scratch = synced
    make = data_file_image if kind == "data file" else backed_image
    volume = drop_into_pool(local_host, pool, scratch, make(tmp_path / "i.qcow2", host_file), "evil.qcow2")
    assert kind in volume.unsafe_reason, volume.unsafe_reason
    assert volume_row(pool, "overlay.qcow2").unsafe_reason == ""  # a backing volume inside the pools is fine
    if kind == "data file":
        host_file.assert_untouched()  # libvirt knows nothing of data files: not even its rescan reads it
    host_file.forget_reads()
    attempts = {
        "clone": {"name": "copy.raw", "target_pool": pool.pk, "format": "raw"},
        "resize": {"capacity": "64M"},
        "wipe": {"algorithm": "zero", "confirm": "evil.qcow2"},
        "delete": {"confirm": "evil.qcow2"},
    }
    for op, data in attempts.items():
        response = member_client.post(reverse(f"volumes:{op}", args=[volume.pk]), data)
        assert response.status_code == 400 and "Refused" in response.content.decode(), op
    shrink = member_client.post(reverse("volumes:resize", args=[volume.pk]), {"capacity": "512K",
                                                                                "confirm_shrink": "evil.qcow2"})
    assert shrink.status_code == 400
    download = member_client.get(reverse("volumes:download", args=[volume.pk]))
    assert download.status_code == 409 and b"Refused" in download.content
    page = member_client.get(volume.get_absolute_url()).content.decode()
    assert "Unsafe image" in page and kind in page
    assert "unsafe image" in member_client.get(pool.get_absolute_url()).content.decode()
    assert not Job.objects.exclude(kind="download").filter(volume_name="evil.qcow2").exists()
    assert "copy.raw" not in vol_names(scratch.name)
    host_file.assert_untouched()


def test_an_admin_removes_an_unsafe_volume(client, admin_user, celery_worker, local_host, synced, host_file,
                                           tmp_path):
    pool, scratch = synced
    volume = drop_into_pool(local_host, pool, scratch, data_file_image(tmp_path / "i.qcow2", host_file), "evil.qcow2")
    client.force_login(admin_user)
    job = wait_for_job(job_from(client.post(reverse("volumes:delete", args=[volume.pk]),
                                            {"confirm": "evil.qcow2"})).pk)
    assert job.state == Job.State.SUCCEEDED, job.error
    assert "evil.qcow2" not in vol_names(scratch.name)
    host_file.assert_untouched()


@pytest.mark.serial  # see alone_when_read_by_libvirt
def test_a_symbolic_link_in_a_pool_is_marked(member_client, local_host, synced, host_file):
    pool, scratch = synced
    (scratch.path / "link.img").symlink_to(host_file.path)
    assert sync_host(local_host, refresh=True, pool_names=[pool.name]) is not None
    host_file.forget_reads()
    volume = volume_row(pool, "link.img")
    assert "symbolic link" in volume.unsafe_reason
    assert member_client.get(reverse("volumes:download", args=[volume.pk])).status_code == 409
    host_file.assert_untouched()


# -- between the sync and the job ------------------------------------------------------------

def test_the_job_checks_the_image_again_right_before_libvirt_opens_it(member, celery_worker, local_host, synced,
                                                                      host_file, tmp_path):
    """The inventory said the volume was a plain qcow2; by the time the job runs it names a data file."""
    pool, scratch = synced
    plain = volume_row(pool, "qcow2-thin.qcow2")
    assert plain.unsafe_reason == "" and plain.recorded_format == "qcow2"
    data_file_image(tmp_path / "i.qcow2", host_file)
    shutil.copyfile(tmp_path / "i.qcow2", plain.path)
    virsh("pool-refresh", pool.name)
    for task, kind, params in [
        (tasks.clone_volume_job, "clone", {"name": "copy.raw", "target_pool": pool.name, "format": "raw"}),
        (tasks.resize_volume_job, "resize", {"capacity": 64 * MiB, "allocate": False, "shrink": False}),
        (tasks.wipe_volume_job, "wipe", {"algorithm": "zero", "force": False}),
    ]:
        Volume.objects.filter(pk=plain.pk).update(unsafe_reason="")  # as if the sync had not seen it yet
        job = wait_for_job(launch(task, kind=kind, user=member, host=local_host, pool=pool,
                                  volume_name=plain.name, params=params).pk)
        assert job.state == Job.State.FAILED and "data file" in job.error, (kind, job.error)
    assert "copy.raw" not in vol_names(scratch.name)
    assert "data file" in volume_row(pool, "qcow2-thin.qcow2").unsafe_reason
    host_file.assert_untouched()


def test_a_raw_volume_whose_bytes_become_qcow2_is_never_opened_as_qcow2(member, member_client, celery_worker,
                                                                        local_host, synced, host_file, tmp_path):
    """A guest writes a qcow2 header naming a host file into its raw disk: libvirt's next rescan reads the
    volume as qcow2, and the app, which recorded it as raw, refuses it."""
    pool, scratch = synced
    raw = volume_row(pool, "raw-thin.img")
    assert raw.recorded_format == "raw"
    header = backed_image(tmp_path / "h.qcow2", host_file).read_bytes()
    with open(raw.path, "r+b") as disk:
        disk.write(header)
    assert sync_host(local_host, refresh=True, pool_names=[pool.name]) is not None
    raw = volume_row(pool, "raw-thin.img")
    assert "recorded as raw" in raw.unsafe_reason and raw.format == "qcow2", raw.unsafe_reason
    response = member_client.post(reverse("volumes:clone", args=[raw.pk]),
                                  {"name": "copy.raw", "target_pool": pool.pk, "format": "raw"})
    assert response.status_code == 400
    Volume.objects.filter(pk=raw.pk).update(unsafe_reason="")
    job = wait_for_job(launch(tasks.resize_volume_job, kind="resize", user=member, host=local_host, pool=pool,
                              volume_name=raw.name, params={"capacity": 128 * MiB}).pk)
    assert job.state == Job.State.FAILED and "recorded as raw" in job.error, job.error


# -- uploads -----------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["data file", "backing file"])
def test_an_uploaded_image_naming_a_host_file_is_refused_new_or_replacing(kind, api, celery_worker, synced,
                                                                         host_file, tmp_path):
    pool, scratch = synced
    make = data_file_image if kind == "data file" else backed_image
    image = make(tmp_path / "i.qcow2", host_file)
    job = upload_and_wait(api, pool, image, "evil.qcow2")
    assert job.state == Job.State.FAILED and kind in job.error, job.error
    assert "evil.qcow2" not in vol_names(scratch.name)
    before = sha256_file(scratch.path / "raw-prealloc.img")
    job = upload_and_wait(api, pool, image, "raw-prealloc.img", mode="existing", confirm="raw-prealloc.img")
    assert job.state == Job.State.FAILED and kind in job.error
    assert sha256_file(scratch.path / "raw-prealloc.img") == before
    host_file.assert_untouched()


def test_an_upload_must_be_the_format_it_says(api, celery_worker, synced, tmp_path):
    pool, scratch = synced
    qcow2 = tmp_path / "plain.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", str(qcow2), "4M")
    job = upload_and_wait(api, pool, qcow2, "said-raw.img", format="raw")
    assert job.state == Job.State.FAILED and "qcow2" in job.error, job.error
    raw = tmp_path / "plain.raw"
    raw.write_bytes(os.urandom(MiB))
    job = upload_and_wait(api, pool, raw, "said-qcow2.qcow2", format="qcow2")
    assert job.state == Job.State.FAILED and "raw" in job.error, job.error
    assert not {"said-raw.img", "said-qcow2.qcow2"} & vol_names(scratch.name)
    vmdk = tmp_path / "disk.vmdk"
    qemu_img("create", "-q", "-f", "vmdk", str(vmdk), "4M")
    job = upload_and_wait(api, pool, vmdk, "disk.vmdk")
    assert job.state == Job.State.FAILED and "vmdk" in job.error, job.error
    assert api.create(pool=pool.pk, volume="x.img", mode="new", size=MiB, format="vmdk").status_code == 400
    # A self-contained qcow2, stated or read from its header, goes in and is recorded as qcow2.
    job = upload_and_wait(api, pool, qcow2, "ok.qcow2", format="qcow2")
    assert job.state == Job.State.SUCCEEDED, job.error
    row = volume_row(pool, "ok.qcow2")
    assert row.recorded_format == "qcow2" and row.unsafe_reason == ""


def test_a_replacing_upload_of_a_vms_disk_is_refused_unless_an_admin_forces(
        api, admin_user, asgi_server, celery_worker, local_host, synced, domain_using, tmp_path):
    pool, scratch = synced
    assert sync_host(local_host, pool_names=[pool.name]) is not None  # the inventory learns of the VM
    source = tmp_path / "new.img"
    source.write_bytes(os.urandom(MiB))
    before = sha256_file(scratch.path / "raw-thin.img")
    fields = {"pool": pool.pk, "volume": "raw-thin.img", "mode": "existing", "size": MiB, "confirm": "raw-thin.img"}
    refused = api.create(**fields, force=True)  # a member's force means nothing
    assert refused.status_code == 400 and domain_using in refused.text, refused.text
    # The inventory may be stale: the job asks libvirt again.
    from hosts.models import DomainDisk

    DomainDisk.objects.all().delete()
    job = upload_and_wait(api, pool, source, "raw-thin.img", mode="existing", confirm="raw-thin.img")
    assert job.state == Job.State.FAILED and domain_using in job.error, job.error
    assert sha256_file(scratch.path / "raw-thin.img") == before
    admin = Api(asgi_server.url, admin_user)
    job = upload_and_wait(admin, pool, source, "raw-thin.img", mode="existing", confirm="raw-thin.img", force=True)
    assert job.state == Job.State.SUCCEEDED, job.error
    assert sha256_file(scratch.path / "raw-thin.img", extra_zeros=0) != before
