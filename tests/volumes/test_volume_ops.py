"""Volume operations end to end: form -> job in a real Celery worker -> libvirt, checked with virsh and qemu-img."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest
from django.urls import resolve, reverse

from inventory.sync import sync_host
from jobs.models import Job
from pools.models import StoragePool
from tests.conftest import make_scratch_pool, virsh, wait_for, wait_for_job
from volumes.models import Volume

pytestmark = pytest.mark.django_db(transaction=True)

MiB = 1024**2
GiB = 1024**3


def qemu_img_info(path: str) -> dict:
    out = subprocess.run(["qemu-img", "info", "-U", "--output=json", path], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    return json.loads(out)


def vol_sizes(pool: str, name: str) -> tuple[int, int]:
    """(capacity, allocation) in bytes as virsh sees them."""
    out = virsh("vol-info", "--bytes", "--pool", pool, name)
    fields = {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in out.splitlines() if ":" in line)}
    return int(fields["Capacity"].split()[0]), int(fields["Allocation"].split()[0])


def vol_names(pool: str) -> set[str]:
    return {line.split()[0] for line in virsh("vol-list", pool).splitlines() if line.split()}


def job_from(response) -> Job:
    assert response.status_code == 302, response.content.decode()[:3000]
    match = resolve(response.url)
    assert match.view_name == "jobs:detail", response.url
    return Job.objects.get(pk=match.kwargs["pk"])


def run_op(client, url: str, data: dict, timeout: float = 120) -> Job:
    return wait_for_job(job_from(client.post(url, data)).pk, timeout=timeout)


def volume_row(pool: StoragePool, name: str) -> Volume:
    return Volume.objects.get(pool=pool, name=name)


def assert_leads_to(client, job: Job, pool: StoragePool, name: str) -> None:
    """The succeeded job's page links the volume it made ("Open it"), and the link opens that volume's page."""
    link = reverse("volumes:by_name", args=[pool.pk, name])
    assert f'<a href="{link}" class="result-link">' in client.get(job.get_absolute_url()).content.decode()
    opened = client.get(link)
    assert opened.status_code == 302 and opened.url == volume_row(pool, name).get_absolute_url()


def write_pattern(path: str, size: int, byte: bytes = b"\xa5") -> None:
    with open(path, "r+b") as f:
        f.write(byte * size)


# -- create ---------------------------------------------------------------

@pytest.mark.smoke
@pytest.mark.parametrize(
    ("fmt", "provisioning", "expect_full"),
    [("raw", "off", False), ("raw", "full", True), ("qcow2", "off", False), ("qcow2", "metadata", False),
     ("qcow2", "full", True)],
)
def test_create_volume(member_client, celery_worker, synced, fmt, provisioning, expect_full):
    pool, scratch = synced
    name = f"new-{fmt}-{provisioning}.img"
    job = run_op(member_client, reverse("volumes:create", args=[pool.pk]),
                 {"name": name, "capacity": "64 MiB", "format": fmt, "provisioning": provisioning})
    assert job.state == Job.State.SUCCEEDED, job.error
    assert job.kind == "create" and job.volume_name == name
    capacity, allocation = vol_sizes(scratch.name, name)
    assert capacity == 64 * MiB
    info = qemu_img_info(str(scratch.path / name))
    assert info["format"] == fmt and info["virtual-size"] == 64 * MiB
    if expect_full:
        assert allocation >= 64 * MiB
    else:
        assert allocation < 8 * MiB
    if provisioning == "metadata":
        assert info["actual-size"] > qemu_img_info(str(scratch.path / "qcow2-thin.qcow2"))["actual-size"]
    row = volume_row(pool, name)  # the job refreshed the inventory
    assert (row.capacity, row.allocation, row.format) == (capacity, allocation, fmt)
    assert_leads_to(member_client, job, pool, name)


def test_create_qcow2_overlay_on_a_backing_volume(member_client, celery_worker, synced):
    pool, scratch = synced
    base = volume_row(pool, "base.qcow2")
    job = run_op(member_client, reverse("volumes:create", args=[pool.pk]),
                 {"name": "child.qcow2", "capacity": "128M", "format": "qcow2", "provisioning": "off",
                  "backing": base.pk})
    assert job.state == Job.State.SUCCEEDED, job.error
    info = qemu_img_info(str(scratch.path / "child.qcow2"))
    assert info["backing-filename"] == base.path and info["backing-filename-format"] == "qcow2"
    assert volume_row(pool, "child.qcow2").backing_path == base.path


def test_thin_volume_past_the_pool_capacity_is_created_with_a_warning(member_client, celery_worker, synced):
    pool, scratch = synced
    size = pool.capacity + GiB  # thin: fits the disk, overcommits the pool
    response = member_client.post(reverse("volumes:create", args=[pool.pk]),
                                  {"name": "huge-thin.img", "capacity": str(size), "format": "raw",
                                   "provisioning": "off"}, follow=True)
    assert "overcommitted" in response.content.decode()
    job = wait_for_job(Job.objects.get(volume_name="huge-thin.img").pk)
    assert job.state == Job.State.SUCCEEDED, job.error
    assert vol_sizes(scratch.name, "huge-thin.img")[0] == size


# -- clone ----------------------------------------------------------------

@pytest.fixture
def second_pool(local_host, tmp_path_factory) -> Iterator[StoragePool]:
    scratch = make_scratch_pool(tmp_path_factory.mktemp("pools"))
    try:
        sync_host(local_host, pool_names=[scratch.name])
        yield StoragePool.objects.get(host=local_host, name=scratch.name)
    finally:
        virsh("pool-destroy", scratch.name, check=False)
        virsh("pool-undefine", scratch.name, check=False)
        shutil.rmtree(scratch.path, ignore_errors=True)


def test_clone_into_another_pool_reports_progress(member_client, celery_worker, synced, second_pool):
    pool, scratch = synced
    scratch.create_volume("data.img", "3G", "raw")
    source_path = str(scratch.path / "data.img")
    with open(source_path, "r+b") as f:  # 2 GiB of data: libvirt's copy takes seconds, polled several times
        chunk = os.urandom(MiB)
        for _ in range(2048):
            f.write(chunk)
        f.flush()
        os.fsync(f.fileno())  # written back: its allocation no longer moves between the sync's and the job's reading
    sync_host(pool.host, pool_names=[pool.name])
    source = volume_row(pool, "data.img")
    job = run_op(member_client, reverse("volumes:clone", args=[source.pk]),
                 {"name": "data-copy.img", "target_pool": second_pool.pk, "format": ""})
    assert job.state == Job.State.SUCCEEDED, job.error
    assert job.cancellable is False
    assert job.progress_total == source.allocation  # progress was measured against the source's disk size
    target_path = os.path.join(second_pool.target_path, "data-copy.img")
    assert qemu_img_info(target_path)["format"] == "raw"
    assert subprocess.run(["cmp", source_path, target_path], timeout=120).returncode == 0
    assert vol_sizes(second_pool.name, "data-copy.img")[0] == 3 * GiB
    assert volume_row(second_pool, "data-copy.img").capacity == 3 * GiB
    assert_leads_to(member_client, job, second_pool, "data-copy.img")  # the copy, in the other pool
    gone = member_client.get(reverse("volumes:by_name", args=[second_pool.pk, "no-such.img"]))
    assert gone.status_code == 404 and "There is no volume no-such.img in that pool now" in gone.content.decode()


def test_clone_converts_raw_to_qcow2(member_client, celery_worker, synced):
    pool, scratch = synced
    source = volume_row(pool, "raw-prealloc.img")
    with open(source.path, "r+b") as f:
        f.write(os.urandom(4 * MiB))
    job = run_op(member_client, reverse("volumes:clone", args=[source.pk]),
                 {"name": "converted.qcow2", "target_pool": pool.pk, "format": "qcow2"})
    assert job.state == Job.State.SUCCEEDED, job.error
    assert (job.target_pool_id, job.target_volume_name) == (pool.pk, "converted.qcow2")  # held while it ran
    target_path = str(scratch.path / "converted.qcow2")
    info = qemu_img_info(target_path)
    assert info["format"] == "qcow2" and info["virtual-size"] == source.capacity
    compare = subprocess.run(["qemu-img", "compare", "-U", "-f", "raw", "-F", "qcow2", source.path, target_path],
                             capture_output=True, text=True, timeout=120)
    assert compare.returncode == 0, compare.stdout + compare.stderr
    assert volume_row(pool, "converted.qcow2").format == "qcow2"


# -- resize ---------------------------------------------------------------

def test_grow_raw_volume_and_allocate(member_client, celery_worker, synced):
    pool, scratch = synced
    vol = volume_row(pool, "raw-thin.img")
    job = run_op(member_client, reverse("volumes:resize", args=[vol.pk]), {"capacity": "96M", "allocate": "on"})
    assert job.state == Job.State.SUCCEEDED, job.error
    capacity, allocation = vol_sizes(scratch.name, "raw-thin.img")
    assert capacity == 96 * MiB
    assert allocation >= 32 * MiB  # the new 32 MiB were allocated; the old thin part stays thin
    assert volume_row(pool, "raw-thin.img").capacity == 96 * MiB


def test_grow_qcow2_volume(member_client, celery_worker, synced):
    pool, scratch = synced
    vol = volume_row(pool, "qcow2-thin.qcow2")
    job = run_op(member_client, reverse("volumes:resize", args=[vol.pk]), {"capacity": "2G"})
    assert job.state == Job.State.SUCCEEDED, job.error
    assert qemu_img_info(str(scratch.path / "qcow2-thin.qcow2"))["virtual-size"] == 2 * GiB


def test_shrink_needs_the_name_and_then_drops_the_tail(member_client, celery_worker, synced):
    pool, scratch = synced
    path = str(scratch.path / "raw-thin.img")
    write_pattern(path, 4 * MiB)
    with open(path, "r+b") as f:  # data past the new end
        f.seek(48 * MiB)
        f.write(b"\x5a" * MiB)
    sync_host(pool.host, pool_names=[pool.name])
    vol = volume_row(pool, "raw-thin.img")
    url = reverse("volumes:resize", args=[vol.pk])
    refused = member_client.post(url, {"capacity": "32M"})
    assert refused.status_code == 400
    assert "is lost" in refused.content.decode()
    assert not Job.objects.exists()
    assert vol_sizes(scratch.name, "raw-thin.img")[0] == 64 * MiB
    job = run_op(member_client, url, {"capacity": "32M", "confirm_shrink": "raw-thin.img"})
    assert job.state == Job.State.SUCCEEDED, job.error
    assert vol_sizes(scratch.name, "raw-thin.img")[0] == 32 * MiB
    assert os.path.getsize(path) == 32 * MiB
    data = open(path, "rb").read()
    assert data[: 4 * MiB] == b"\xa5" * 4 * MiB and b"\x5a" not in data  # the head survives, the tail is gone


def test_shrink_below_the_allocated_size_is_a_form_error(member_client, synced):
    pool, scratch = synced
    vol = volume_row(pool, "raw-prealloc.img")  # 16 MiB, all allocated: libvirt refuses to cut into it
    response = member_client.post(reverse("volumes:resize", args=[vol.pk]),
                                  {"capacity": "8M", "confirm_shrink": "raw-prealloc.img"})
    assert response.status_code == 400
    assert "below its disk size" in response.content.decode()
    assert not Job.objects.exists() and vol_sizes(scratch.name, "raw-prealloc.img")[0] == 16 * MiB
    # and the form does not offer what it would refuse: no name to type to shrink, and it says why
    page = member_client.get(reverse("volumes:resize", args=[vol.pk])).content.decode()
    assert 'name="confirm_shrink"' not in page and "it can only grow" in page
    thin = member_client.get(reverse("volumes:resize", args=[volume_row(pool, "raw-thin.img").pk])).content.decode()
    assert 'name="confirm_shrink"' in thin and "it can only grow" not in thin


# -- delete and wipe ------------------------------------------------------

def test_delete_needs_the_exact_name(member_client, celery_worker, synced):
    pool, scratch = synced
    vol = volume_row(pool, "raw-thin.img")
    url = reverse("volumes:delete", args=[vol.pk])
    for wrong in ("", "raw-thin", "RAW-THIN.IMG", " raw-thin.img"):
        response = member_client.post(url, {"confirm": wrong})
        assert response.status_code == 400
    assert "raw-thin.img" in vol_names(scratch.name) and not Job.objects.exists()
    job = run_op(member_client, url, {"confirm": "raw-thin.img"})
    assert job.state == Job.State.SUCCEEDED, job.error
    assert "raw-thin.img" not in vol_names(scratch.name)
    assert not Volume.objects.filter(pk=vol.pk).exists()
    assert job.params["result_url"] == pool.get_absolute_url()  # where the volume was, said as such
    page = member_client.get(job.get_absolute_url()).content.decode()
    assert f'<a href="{pool.get_absolute_url()}" class="result-link">Open the pool</a>' in page


def test_wipe_zero_overwrites_the_data(member_client, celery_worker, synced):
    pool, scratch = synced
    vol = volume_row(pool, "raw-prealloc.img")
    write_pattern(vol.path, 16 * MiB)
    job = run_op(member_client, reverse("volumes:wipe", args=[vol.pk]),
                 {"algorithm": "zero", "confirm": "raw-prealloc.img"})
    assert job.state == Job.State.SUCCEEDED, job.error
    assert job.cancellable is False
    assert job.result.startswith("Wiped raw-prealloc.img with Zeros (1 pass);")  # as the form names it, not "zero"
    assert open(vol.path, "rb").read() == b"\0" * 16 * MiB


def test_wipe_page_offers_what_the_host_can_do(member_client, synced):
    pool, _ = synced
    vol = volume_row(pool, "qcow2-thin.qcow2")
    html = member_client.get(reverse("volumes:wipe", args=[vol.pk])).content.decode()
    assert 'value="gutmann"' in html and 'value="zero"' in html  # scrub is installed on this host
    assert 'value="trim"' not in html and "not supported on file-based pools" in html  # listed, not offered
    assert "qcow2 structure" in html  # says what wiping does to a qcow2 volume


def test_wipe_with_a_scrub_pattern(member_client, celery_worker, synced):
    pool, _ = synced
    vol = volume_row(pool, "raw-prealloc.img")
    write_pattern(vol.path, 16 * MiB)
    job = run_op(member_client, reverse("volumes:wipe", args=[vol.pk]),
                 {"algorithm": "random", "confirm": "raw-prealloc.img"})
    assert job.state == Job.State.SUCCEEDED, job.error
    data = open(vol.path, "rb").read()
    assert len(data) >= 16 * MiB and data.count(b"\xa5") < 16 * MiB // 100  # random bytes, not the old pattern


def test_wiping_qcow2_leaves_a_raw_volume_of_the_old_file_size(member_client, celery_worker, synced):
    pool, _ = synced
    vol = volume_row(pool, "qcow2-thin.qcow2")
    physical = os.path.getsize(vol.path)
    job = run_op(member_client, reverse("volumes:wipe", args=[vol.pk]),
                 {"algorithm": "zero", "confirm": "qcow2-thin.qcow2"})
    assert job.state == Job.State.SUCCEEDED, job.error
    info = qemu_img_info(vol.path)
    assert info["format"] == "raw"
    assert physical <= info["virtual-size"] < physical + 4096  # the old file size, rounded up to a whole block
    assert volume_row(pool, "qcow2-thin.qcow2").format == "raw"


# -- volumes used by a defined VM -----------------------------------------

def test_volume_used_by_a_vm_is_refused_unless_an_admin_forces(client, member, admin_user, celery_worker,
                                                               synced, domain_using):
    pool, scratch = synced
    client.force_login(member)
    by_path = volume_row(pool, "raw-thin.img")
    job = run_op(client, reverse("volumes:delete", args=[by_path.pk]), {"confirm": "raw-thin.img", "force": "on"})
    assert job.state == Job.State.FAILED
    assert domain_using in job.error and "ask an admin" in job.error
    assert "raw-thin.img" in vol_names(scratch.name)
    by_name = volume_row(pool, "qcow2-thin.qcow2")
    # the delete job's sync told the inventory about the VM: now the form refuses, before any job
    refused = client.post(reverse("volumes:wipe", args=[by_name.pk]),
                          {"algorithm": "zero", "confirm": "qcow2-thin.qcow2"})
    assert refused.status_code == 400 and f"virtual machine(s) {domain_using}" in refused.content.decode()
    assert Job.objects.filter(kind="wipe").count() == 0
    assert qemu_img_info(by_name.path)["format"] == "qcow2"  # untouched
    assert "Force" not in client.get(reverse("volumes:delete", args=[by_path.pk])).content.decode()

    client.force_login(admin_user)
    assert "Force" in client.get(reverse("volumes:delete", args=[by_path.pk])).content.decode()
    refused = client.post(reverse("volumes:delete", args=[by_path.pk]), {"confirm": "raw-thin.img"})
    assert refused.status_code == 400 and "Refused to delete" in refused.content.decode()  # an admin ticks "force"
    job = run_op(client, reverse("volumes:delete", args=[by_path.pk]), {"confirm": "raw-thin.img", "force": "on"})
    assert job.state == Job.State.SUCCEEDED, job.error
    assert "raw-thin.img" not in vol_names(scratch.name)


# -- conflicts and live progress on the pages -------------------------------

def test_second_job_on_a_busy_volume_is_refused_and_the_running_one_shows(member_client, celery_worker, synced):
    pool, scratch = synced
    scratch.create_volume("big.img", "2G", "raw", prealloc=True)  # a zero wipe of 2 GiB takes seconds
    sync_host(pool.host, pool_names=[pool.name])
    vol = volume_row(pool, "big.img")
    wipe = job_from(member_client.post(reverse("volumes:wipe", args=[vol.pk]),
                                       {"algorithm": "zero", "confirm": "big.img"}))
    refused = member_client.post(reverse("volumes:delete", args=[vol.pk]), {"confirm": "big.img"})
    assert refused.status_code == 400
    assert f"busy with job #{wipe.pk}" in refused.content.decode()
    assert Job.objects.count() == 1
    wait_for(lambda: Job.objects.get(pk=wipe.pk).state == Job.State.RUNNING, message="the wipe to start")
    for url in (reverse("volumes:detail", args=[vol.pk]), reverse("pools:detail", args=[pool.pk])):
        html = member_client.get(url).content.decode()
        assert reverse("jobs:events", args=[wipe.pk]) in html, url  # live progress over SSE
    assert wait_for_job(wipe.pk).state == Job.State.SUCCEEDED
    job = run_op(member_client, reverse("volumes:delete", args=[vol.pk]), {"confirm": "big.img"})
    assert job.state == Job.State.SUCCEEDED, job.error
    assert "big.img" not in vol_names(scratch.name)
