"""No image tool lets qemu-img open a file outside the pools: info (the volume page's panel), check, convert
and import each refuse an image that names one, whichever way it names it, both when the inventory already
marked it and when it changed after the last sync (the job checks again right before qemu-img runs).

The class, closed by variants: an external data file; a backing file on the host; a backing chain whose
second level escapes; a backing name that is a protocol (nbd:, http:), each pointing at a socket of this
test that counts connections; a relative backing name that climbs out of the pool; a symbolic link out of the
pool. The host file such an image names is checked byte for byte and by its atime (tests/volumes/
test_image_safety.py's HostFile): while the inventory has the image marked, nothing reads it.

When the inventory is stale, the check asks libvirt for the volume first, and libvirt's refresh of a volume
reads the header of what its backing name or its link leads to (to size it: the app cannot stop that; see
the README). There the witnesses are qemu-img's own: the panel's qemu-img is a wrapper that logs every call,
and a job's log says when it starts qemu-img, which it never reaches. The host file is never written.
"""

from __future__ import annotations

import html
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.urls import reverse

from inventory.sync import sync_host
from jobs.models import Job
from jobs.runner import launch
from tests.conftest import wait_for_job
from tests.virt.test_qemuimg import qemu_img
from tests.volumes.test_image_safety import (
    READ_BY_LIBVIRT,
    HostFile,
    alone_when_read_by_libvirt,
    backed_image,
    data_file_image,
)
from tests.volumes.test_volume_ops import vol_names
from virtstorage.virt import qemuimg
from volumes import info_job, tools_tasks
from volumes.models import Volume

pytestmark = pytest.mark.django_db(transaction=True)

KINDS = ["data file", "backing file", "second-level backing", "nbd backing", "http backing", "relative backing",
         "symlink"]
REFUSED = {"data file": "data file", "backing file": "backing file", "second-level backing": "backing",
           "nbd backing": "protocol", "http backing": "protocol", "relative backing": "backing file",
           "symlink": "symbolic link"}


class Listener:
    """A TCP port on 127.0.0.1 that counts the connections made to it (an nbd or http backing's server)."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.port = self.server.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="backing-witness", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.server.close()


@pytest.fixture
def witness() -> Iterator[Listener]:
    listener = Listener()
    yield listener
    listener.close()


@pytest.fixture
def host_file(tmp_path_factory) -> HostFile:
    return HostFile(tmp_path_factory.mktemp("host") / "secret.bin")


def plant(kind: str, directory: Path, host_file: HostFile, witness: Listener, pool_dir: Path) -> str:
    """An image of kind in directory, naming the host file (or the witness's port); returns its file name.
    A second-level chain puts its lower links into pool_dir (they are volumes the inventory must see)."""
    directory.mkdir(parents=True, exist_ok=True)
    top = directory / "evil.qcow2"
    if kind == "data file":
        data_file_image(top, host_file)
    elif kind == "backing file":
        backed_image(top, host_file)
    elif kind == "second-level backing":
        backed_image(pool_dir / "evil-base.qcow2", host_file)
        qemu_img("create", "-q", "-f", "qcow2", "-u", "-b", str(pool_dir / "evil-base.qcow2"), "-F", "qcow2",
                 str(pool_dir / "mid.qcow2"), "1M")
        qemu_img("create", "-q", "-f", "qcow2", "-u", "-b", str(pool_dir / "mid.qcow2"), "-F", "qcow2", str(top),
                 "1M")
    elif kind in ("nbd backing", "http backing"):
        name = f"nbd:127.0.0.1:{witness.port}" if kind == "nbd backing" else f"http://127.0.0.1:{witness.port}/d"
        qemu_img("create", "-q", "-f", "qcow2", "-u", "-b", name, "-F", "raw", str(top), "1M")
    elif kind == "relative backing":
        climb = os.path.relpath(host_file.path, directory)
        assert climb.startswith("../")
        qemu_img("create", "-q", "-f", "qcow2", "-u", "-b", climb, "-F", "raw", str(top), "1M")
    elif kind == "symlink":
        top = directory / "link.img"
        top.symlink_to(host_file.path)
    return top.name


def _planted_in_pool(kind, local_host, synced, host_file, witness) -> Volume:
    pool, scratch = synced
    name = plant(kind, scratch.path, host_file, witness, scratch.path)
    assert sync_host(local_host, refresh=True, pool_names=[pool.name]) is not None
    # libvirt's own rescan may stat or read what a backing name or a link leads to: counting starts after it
    host_file.forget_reads()
    witness.connections = 0
    return Volume.objects.get(pool=pool, name=name)


def _assert_nothing_opened(host_file: HostFile, witness: Listener, *, read_by_libvirt: bool = False) -> None:
    if read_by_libvirt:  # its header, by libvirt's refresh: unchanged, and not read by the app
        host_file.forget_reads()
    host_file.assert_untouched()
    assert witness.connections == 0, "qemu-img (or libvirt) connected to the backing's server"


def _run_here(task, kind: str, user, pool, volume_name: str) -> Job:
    """A job run by this process (the task called, not queued), ended."""
    job = Job.objects.create(kind=kind, host=pool.host, pool=pool, pool_name=pool.name, volume_name=volume_name,
                             created_by=user)
    task(job.pk)
    return Job.objects.get(pk=job.pk)



@pytest.fixture
def qemu_img_calls(tmp_path, monkeypatch):
    """This process's qemu-img, wrapped: returns the calls made so far (one line of arguments each)."""
    log = tmp_path / "qemu-img-calls.log"
    wrapper = tmp_path / "qemu-img-wrapper"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {log}\nexec qemu-img "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setattr(qemuimg, "QEMU_IMG", str(wrapper))
    return lambda: log.read_text().splitlines() if log.exists() else []


@pytest.mark.parametrize("kind", alone_when_read_by_libvirt(KINDS))
def test_info_check_and_convert_refuse_it_from_the_inventory_and_again_when_the_inventory_is_stale(
        kind, member, member_client, celery_worker, local_host, synced, host_file, witness, qemu_img_calls):
    pool, scratch = synced
    volume = _planted_in_pool(kind, local_host, synced, host_file, witness)
    assert REFUSED[kind] in volume.unsafe_reason, volume.unsafe_reason
    body = html.unescape(member_client.get(reverse("volumes:image_panel", args=[volume.pk])).content.decode())
    assert 'id="image-refused"' in body and REFUSED[kind] in body
    check = member_client.post(reverse("volumes:image_check", args=[volume.pk]), follow=True)
    assert "Refused" in html.unescape(check.content.decode())
    convert = member_client.post(reverse("volumes:image_convert", args=[volume.pk]),
                                 {"name": "copy.raw", "target_pool": pool.pk, "format": "raw", "provisioning": "off"})
    assert convert.status_code == 400 and "Refused" in html.unescape(convert.content.decode())
    assert not Job.objects.exists()
    _assert_nothing_opened(host_file, witness)

    # As if the sync had not seen it yet: the panel's reading (the info job) and each job check the image again
    # themselves. The reading runs here, in this process, so that the wrapper sees its qemu-img.
    Volume.objects.filter(pool=pool).update(unsafe_reason="", inspected="")
    panel_url = reverse("volumes:image_panel", args=[volume.pk])
    assert 'id="image-auto-read"' in member_client.get(panel_url).content.decode()  # it only shows readings
    info = _run_here(info_job.image_info_job, "info", member, pool, volume.name)
    assert info.state == Job.State.FAILED and REFUSED[kind] in info.error and "Running qemu-img" not in info.log
    body = html.unescape(member_client.get(panel_url).content.decode())
    assert 'id="image-refused"' in body and REFUSED[kind] in body
    assert qemu_img_calls() == []
    clean = Volume.objects.get(pool=pool, name="raw-thin.img")
    assert _run_here(info_job.image_info_job, "info", member, pool, clean.name).state == Job.State.SUCCEEDED
    panel = member_client.get(reverse("volumes:image_panel", args=[clean.pk])).content.decode()
    assert "This image is" in panel and len(qemu_img_calls()) == 1  # the witness does see a call
    for task, kind_of_job, params in [
        (info_job.image_info_job, "info", {}),
        (tools_tasks.check_image_job, "check", {}),
        (tools_tasks.convert_volume_job, "convert", {"name": "copy.raw", "target_pool": pool.name, "format": "raw",
                                                     "provisioning": "off", "compress": False}),
    ]:
        Volume.objects.filter(pool=pool).update(unsafe_reason="", inspected="")
        job = wait_for_job(launch(task, kind=kind_of_job, user=member, host=local_host, pool=pool,
                                  volume_name=volume.name, params=params).pk)
        assert job.state == Job.State.FAILED and REFUSED[kind] in job.error, (kind_of_job, job.error)
        assert "Running qemu-img" not in job.log and "Writing it with qemu-img" not in job.log, job.log
    assert REFUSED[kind] in Volume.objects.get(pk=volume.pk).unsafe_reason  # marked again
    assert "copy.raw" not in vol_names(scratch.name)
    _assert_nothing_opened(host_file, witness, read_by_libvirt=kind in READ_BY_LIBVIRT)


@pytest.mark.parametrize("kind", alone_when_read_by_libvirt(KINDS, {"second-level backing"}))  # in the pool
def test_an_import_of_it_is_refused_by_the_form_and_by_the_job(kind, admin_client, admin_user, celery_worker,
                                                               local_host, synced, host_file, witness, tmp_path):
    pool, scratch = synced
    incoming = tmp_path / "incoming"
    name = plant(kind, incoming, host_file, witness, scratch.path)
    if kind == "symlink":  # inside the import roots, a link to a host file would be a file like any other there:
        (incoming / name).unlink()  # a link out of them is the escape
        (incoming / name).symlink_to("/etc/passwd")
    if kind == "second-level backing":
        assert sync_host(local_host, refresh=True, pool_names=[pool.name]) is not None
        assert Volume.objects.get(pool=pool, name="mid.qcow2").unsafe_reason
    host_file.forget_reads()
    witness.connections = 0
    path = str(incoming / name)
    response = admin_client.post(reverse("volumes:image_import", args=[pool.pk]),
                                 {"path": path, "name": "imported.img", "format": "", "provisioning": "off"})
    body = html.unescape(response.content.decode())
    assert response.status_code == 400 and ("Refused" in body or "not importable" in body), body[-3000:]
    assert not Job.objects.exists()
    _assert_nothing_opened(host_file, witness)

    # As if the sync had not seen the pool's images:
    Volume.objects.filter(pool=pool).update(unsafe_reason="", inspected="")
    job = wait_for_job(launch(tools_tasks.import_image_job, kind="import", user=admin_user, host=local_host,
                              pool=pool, volume_name="imported.img",
                              params={"path": path, "name": "imported.img", "format": "", "provisioning": "off",
                                      "compress": False}).pk)
    assert job.state == Job.State.FAILED, job.log
    expected = "system directory /etc" if kind == "symlink" else REFUSED[kind]
    assert expected in job.error, job.error
    assert "imported.img" not in vol_names(scratch.name)
    assert not Volume.objects.filter(pool=pool, name="imported.img").exists()
    assert "Writing it with qemu-img" not in job.log, job.log
    _assert_nothing_opened(host_file, witness, read_by_libvirt=kind == "second-level backing")
