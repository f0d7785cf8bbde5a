"""Uploads and downloads through the real ASGI server, Celery worker and libvirtd.

Uploaded bytes are checked against the volume file and a download; sparseness against
`du` and `virsh vol-info`; faults (bad input, truncation, cancel, a killed worker) end
with a clear message and lose nothing.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from django.urls import reverse

from jobs.models import Job
from jobs.tasks import reap_stale_jobs
from tests.conftest import assert_moved_by, virsh, wait_for, wait_for_job
from tests.volumes.conftest import Api
from volumes.models import Upload, Volume

pytestmark = pytest.mark.django_db(transaction=True)

MiB = 1024 * 1024


@pytest.fixture(autouse=True)
def _remove_staging_files():
    """Uploads a test leaves unfinished must not leave their (GiB-sized) staging files behind."""
    yield
    for upload in Upload.objects.all():
        upload.staging_path.unlink(missing_ok=True)


def make_sparse_file(path: Path, size: int, data_at: list[tuple[int, int]]) -> Path:
    """A sparse file of size bytes, random data at each (offset, length), holes elsewhere."""
    with open(path, "wb") as f:
        f.truncate(size)
        for offset, length in data_at:
            f.seek(offset)
            f.write(os.urandom(length))
    return path


def sha256_file(path: Path | str, extra_zeros: int = 0) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(MiB):
            digest.update(block)
    zeros = bytes(MiB)
    while extra_zeros:
        n = min(extra_zeros, MiB)
        digest.update(zeros[:n])
        extra_zeros -= n
    return digest.hexdigest()


def disk_usage_bytes(path: Path | str) -> int:
    return int(subprocess.run(["du", "-B1", str(path)], capture_output=True, text=True, check=True).stdout.split()[0])


def download_sha256(api: Api, volume_pk: int, sparse: bool = False) -> tuple[str, int, httpx.Headers]:
    digest = hashlib.sha256()
    count = 0
    with api.http.stream("GET", f"/volumes/{volume_pk}/download", params={"sparse": "1"} if sparse else {}) as r:
        assert r.status_code == 200, r.read()
        for block in r.iter_bytes():
            digest.update(block)
            count += len(block)
        headers = r.headers
    return digest.hexdigest(), count, headers


def test_a_qcow2_download_is_named_as_one(api, synced):
    from inventory.sync import sync_host

    pool, scratch = synced
    scratch.create_volume("disk", "1M", "qcow2")  # a qcow2 named without its extension
    assert sync_host(pool.host, pool_names=[scratch.name]) is not None
    for name, saved in (("disk", "disk.qcow2"), ("base.qcow2", "base.qcow2"), ("raw-thin.img", "raw-thin.img")):
        _digest, _count, headers = download_sha256(api, Volume.objects.get(pool=pool, name=name).pk)
        assert headers["content-disposition"] == f'attachment; filename="{saved}"', (name, headers)


def test_sparse_upload_into_new_volume_reads_back_and_stays_thin(api, synced, celery_worker, tmp_path, io_path):
    pool, scratch = synced
    size = 96 * MiB
    src = make_sparse_file(tmp_path / "disk.img", size, [(0, MiB), (40 * MiB + 12345, 3 * MiB), (size - 10, 10)])
    created = api.create(pool=pool.pk, volume="uploaded.img", mode="new", size=str(size), capacity="128M")
    assert created.status_code == 201, created.text
    state = api.send_file(created.json(), src)
    assert state["missing"] == [] and state["hole_bytes"] > 80 * MiB  # zero chunks were not sent
    started = api.complete(created.json())
    assert started.status_code == 202, started.text
    job = wait_for_job(started.json()["job"])
    assert job.state == Job.State.SUCCEEDED, job.error
    assert job.kind == "upload" and job.progress_done == size
    assert job.params["result_url"] == reverse("volumes:by_name", args=[pool.pk, "uploaded.img"])  # "Open it"
    assert_moved_by(job, io_path)

    volume_file = scratch.path / "uploaded.img"
    info = scratch.vol_info("uploaded.img")
    assert int(info["Capacity"].split()[0]) == 128 * MiB  # restored after libvirt truncated it to the data
    assert sha256_file(volume_file) == sha256_file(src, extra_zeros=128 * MiB - size)
    assert disk_usage_bytes(volume_file) < 8 * MiB  # holes stayed holes: ~4 MiB of data
    assert int(info["Allocation"].split()[0]) < 8 * MiB

    # The inventory was refreshed by the job, and both downloads give the same bytes.
    row = Volume.objects.get(pool=pool, name="uploaded.img")
    assert row.capacity == 128 * MiB and row.allocation < 8 * MiB
    for sparse in (False, True):
        digest, count, headers = download_sha256(api, row.pk, sparse=sparse)
        assert count == 128 * MiB and int(headers["content-length"]) == count
        assert digest == sha256_file(volume_file)
        assert headers["content-disposition"] == 'attachment; filename="uploaded.img"'
        download = wait_for(lambda job_id=int(headers["x-job-id"]): Job.objects.exclude(
            state__in=Job.ACTIVE_STATES).filter(pk=job_id).first(), timeout=10, message="download job end")
        assert download.kind == "download" and download.state == Job.State.SUCCEEDED
        assert download.progress_done == count and download.params == {"sparse": sparse}
        assert_moved_by(download, io_path)
    assert not Upload.objects.get(pk=created.json()["id"]).staging_path.exists()


def test_replacing_a_volume_leaves_no_old_bytes_and_keeps_capacity(api, synced, celery_worker, tmp_path, io_path):
    pool, scratch = synced
    old = tmp_path / "old.bin"
    old.write_bytes(os.urandom(16 * MiB))
    virsh("vol-upload", "--pool", scratch.name, "raw-prealloc.img", str(old))  # the volume holds data everywhere
    # The new file has a hole where the old data was: the old bytes must not show through it.
    src = make_sparse_file(tmp_path / "new.img", 12 * MiB, [(0, 100), (8 * MiB, MiB)])
    fields = dict(pool=pool.pk, volume="raw-prealloc.img", mode="existing", size=12 * MiB)
    refused = api.create(**fields)
    assert refused.status_code == 400 and "type its name" in refused.text
    created = api.create(**fields, confirm="raw-prealloc.img")
    assert created.status_code == 201, created.text
    api.send_file(created.json(), src)
    job = wait_for_job(api.complete(created.json()).json()["job"])
    assert job.state == Job.State.SUCCEEDED, job.error
    assert_moved_by(job, io_path)
    volume_file = scratch.path / "raw-prealloc.img"
    assert int(scratch.vol_info("raw-prealloc.img")["Capacity"].split()[0]) == 16 * MiB
    assert sha256_file(volume_file) == sha256_file(src, extra_zeros=4 * MiB)


def test_bad_input_is_refused_before_anything_is_written(api, synced, celery_worker, tmp_path, local_host):
    pool, scratch = synced
    staging_before = set(Upload.objects.values_list("pk", flat=True))
    cases = [
        (dict(pool=pool.pk, volume="raw-prealloc.img", mode="existing", size=17 * MiB, confirm="raw-prealloc.img"),
         "larger than volume raw-prealloc.img"),
        (dict(pool=pool.pk, volume="not-here.img", mode="existing", size=MiB, confirm="not-here.img"),
         f"Pool {pool.name} has no volume not-here.img"),
        (dict(pool=pool.pk, volume="raw-thin.img", mode="new", size=MiB), "already has a volume raw-thin.img"),
        (dict(pool=pool.pk, volume="../etc/passwd", mode="new", size=MiB), "cannot contain '/'"),
        (dict(pool=pool.pk, volume="x.img", mode="new", size="lots"), "is not a size"),
        (dict(pool=pool.pk, volume="x.img", mode="new", size=0), "The file is empty"),
        (dict(pool=pool.pk, volume="x.img", mode="new", size=2 * MiB, capacity="1M"), "smaller than the file"),
        (dict(pool=999999, volume="x.img", mode="new", size=MiB), "No such pool"),
    ]
    for fields, message in cases:
        r = api.create(**fields)
        assert r.status_code == 400, (fields, r.text)
        assert message in r.text, (message, r.text)
    assert set(Upload.objects.values_list("pk", flat=True)) == staging_before

    # A volume of another pool: pool B does not have pool A's volume.
    from inventory.sync import sync_host
    from pools.models import StoragePool
    from tests.conftest import _cleanup_pool, make_scratch_pool

    other = make_scratch_pool(tmp_path / "other")
    try:
        sync_host(local_host, pool_names=[other.name])
        other_pool = StoragePool.objects.get(host=local_host, name=other.name)
        r = api.create(pool=other_pool.pk, volume="raw-thin.img", mode="existing", size=MiB, confirm="raw-thin.img")
        assert r.status_code == 400 and f"Pool {other.name} has no volume raw-thin.img" in r.text
    finally:
        _cleanup_pool(other.name)

    # Wrong offsets on a real upload: each refused with the reason, and nothing recorded.
    upload = api.create(pool=pool.pk, volume="offsets.img", mode="new", size=8 * MiB).json()
    url = upload["chunks_url"]
    wrong = [
        ({"offset": -1}, b"x", {}, "offset must be >= 0"),
        ({"offset": 8 * MiB - 1}, b"xy", {}, "go past the end of the file"),
        ({"offset": 8 * MiB, "hole": 1}, b"", {}, "go past the end of the file"),
        ({}, b"x", {}, "Give ?offset=N"),
        ({"offset": "abc"}, b"x", {}, "Give ?offset=N"),
        ({}, b"xy", {"Content-Range": "bytes 0-1/999"}, "this upload is of 8388608"),
        ({"offset": 5}, b"xy", {"Content-Range": "bytes 0-1/8388608"}, "disagree"),
        ({"offset": 0, "hole": 10}, b"data", {}, "A hole has no body"),
    ]
    for params, body, headers, message in wrong:
        r = api.http.put(url, params=params, content=body, headers=headers)
        assert r.status_code == 400 and message in r.text, (params, r.text)
    ok = api.http.put(url, content=b"ab", headers={"Content-Range": "bytes 0-1/8388608"})
    assert ok.status_code == 200 and ok.json()["received"] == [[0, 2]]


def test_truncated_upload_fails_the_job_then_resumes(api, synced, celery_worker, tmp_path):
    pool, scratch = synced
    src = make_sparse_file(tmp_path / "t.img", 24 * MiB, [(0, 24 * MiB)])
    upload = api.create(pool=pool.pk, volume="trunc.img", mode="new", size=24 * MiB).json()
    api.send_file(upload, src, stop=12 * MiB)
    r = api.complete(upload)
    assert r.status_code == 202 and "truncated" in r.json()["warning"]
    job = wait_for_job(r.json()["job"])
    assert job.state == Job.State.FAILED
    assert "The upload is truncated: 12582912 of 25165824 bytes never arrived" in job.error
    assert "trunc.img" not in virsh("vol-list", scratch.name)  # nothing was written
    # Resume: the server says where to go on, the rest arrives, and the upload completes.
    state = api.http.get(upload["url"]).json()
    assert state["state"] == "failed" and state["next_offset"] == 12 * MiB
    api.send_file(upload, src, start=state["next_offset"])
    job = wait_for_job(api.complete(upload).json()["job"])
    assert job.state == Job.State.SUCCEEDED, job.error
    assert sha256_file(scratch.path / "trunc.img") == sha256_file(src)


def test_uploads_belong_to_their_creator(api, synced, asgi_server, admin_user):
    from django.contrib.auth import get_user_model

    from accounts.roles import grant

    pool, _ = synced
    upload = api.create(pool=pool.pk, volume="mine.img", mode="new", size=MiB).json()
    other = get_user_model().objects.create_user(username="otto", password="x-correct-horse")
    grant(other, "member")
    stranger = Api(asgi_server.url, other)
    assert stranger.http.get(upload["url"]).status_code == 404
    assert stranger.http.put(upload["chunks_url"], params={"offset": 0}, content=b"x").status_code == 404
    assert stranger.complete(upload).status_code == 404
    assert Api(asgi_server.url, admin_user).http.get(upload["url"]).status_code == 200
    # Without the CSRF header a browser-style PUT is refused.
    no_csrf = httpx.put(asgi_server.url + upload["chunks_url"], params={"offset": 0}, content=b"x",
                        cookies=dict(api.http.cookies))
    assert no_csrf.status_code == 403


def _dense_upload(api: Api, pool, tmp_path: Path, name: str, size: int) -> dict:
    src = tmp_path / f"{name}.src"
    with open(src, "wb") as f:
        block = os.urandom(MiB)
        for _ in range(size // MiB):
            f.write(block)
    upload = api.create(pool=pool.pk, volume=name, mode="new", size=size).json()
    api.send_file(upload, src)
    src.unlink()
    return upload


def _random_file(path: Path, size: int) -> Path:
    with open(path, "wb") as f:
        for _ in range(size // MiB):
            f.write(os.urandom(MiB))
    return path


def _allocation(scratch, name: str) -> int:
    return int(virsh("vol-info", "--pool", scratch.name, name, "--bytes").split("Allocation:")[1].split()[0])


def _streaming(api: Api, synced, tmp_path: Path, name: str, size: int, *, sent: int) -> tuple[dict, Path]:
    """An upload of a random file into a new volume, the first `sent` bytes sent and its job writing them."""
    pool, scratch = synced
    src = _random_file(tmp_path / f"{name}.src", size)
    upload = api.create(pool=pool.pk, volume=name, mode="new", size=size).json()
    api.send_file(upload, src, stop=sent)
    wait_for(lambda: name in virsh("vol-list", scratch.name), timeout=60, message="the job to start")
    return upload, src


def _finish(api: Api, upload: dict, src: Path, scratch, *, sent: int) -> None:
    """Send the rest of an upload, complete it, and check that the volume holds the file."""
    api.send_file(upload, src, start=sent)
    job = wait_for_job(api.complete(upload).json()["job"])
    assert job.state == Job.State.SUCCEEDED, job.error
    assert sha256_file(scratch.path / upload["volume"]) == sha256_file(src)


def test_a_new_volume_is_written_while_the_chunks_arrive(api, synced, celery_worker, tmp_path, io_path):
    pool, scratch = synced
    src = _random_file(tmp_path / "s.img", 64 * MiB)
    upload = api.create(pool=pool.pk, volume="streamed.img", mode="new", size=64 * MiB).json()
    assert upload["job"], "an upload into a new volume starts its job at once"
    api.send_file(upload, src, stop=32 * MiB)
    # Half the file is in the volume before the client has sent the rest or said it is done.
    wait_for(lambda: "streamed.img" in virsh("vol-list", scratch.name) and _allocation(scratch, "streamed.img")
             >= 32 * MiB, timeout=60, message="the first half to reach the volume")
    assert Job.objects.get(pk=upload["job"]).state == Job.State.RUNNING
    api.send_file(upload, src, start=32 * MiB)
    r = api.complete(upload)
    assert r.status_code == 202 and r.json()["job"] == upload["job"]
    job = wait_for_job(upload["job"])
    assert job.state == Job.State.SUCCEEDED, job.error
    assert sha256_file(scratch.path / "streamed.img") == sha256_file(src)
    assert_moved_by(job, io_path)
    assert api.complete(upload).status_code == 202  # said twice: the same answer, no second job
    assert Job.objects.filter(kind="upload", volume_name="streamed.img").count() == 1


def test_cancel_stops_a_streaming_upload_and_removes_its_new_volume(api, synced, celery_worker, tmp_path):
    pool, scratch = synced
    upload, src = _streaming(api, synced, tmp_path, "cancel.img", 64 * MiB, sent=16 * MiB)
    assert api.http.post(f"/jobs/{upload['job']}/cancel/").status_code in (200, 302)
    job = wait_for_job(upload["job"])
    assert job.state == Job.State.CANCELLED, (job.state, job.error)
    assert "cancel.img" not in virsh("vol-list", scratch.name)  # half a file is of no use: removed
    assert Upload.objects.get(pk=upload["id"]).state == Upload.State.FAILED
    # The bytes received are kept: sending the rest and completing writes the volume after all.
    _finish(api, upload, src, scratch, sent=16 * MiB)


def test_abandoning_a_streaming_upload_stops_its_job(api, synced, celery_worker, tmp_path):
    pool, scratch = synced
    upload, _ = _streaming(api, synced, tmp_path, "abandoned.img", 32 * MiB, sent=8 * MiB)
    assert api.http.delete(upload["url"]).status_code == 200
    job = wait_for_job(upload["job"])
    assert job.state == Job.State.CANCELLED, (job.state, job.error)
    assert "abandoned.img" not in virsh("vol-list", scratch.name)
    assert not Upload.objects.filter(pk=upload["id"]).exists()


def test_killed_worker_fails_the_upload_with_a_reason(api, synced, celery_worker, tmp_path, io_path):
    pool, scratch = synced
    upload, src = _streaming(api, synced, tmp_path, "killed.img", 64 * MiB, sent=16 * MiB)
    job = wait_for(lambda: Job.objects.filter(pk=upload["job"], message__startswith="Writing").first(), timeout=60,
                   interval=0.02, message="the upload to start sending")
    pid = int(job.worker.rsplit(":", 1)[1])
    os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()
    try:
        def reaped():
            reap_stale_jobs()  # what celery beat runs every 15 s
            return Job.objects.get(pk=job.pk).state == Job.State.FAILED

        wait_for(reaped, timeout=60, interval=1, message="the reaper to fail the job")
        assert time.monotonic() - killed_at < 60
        job = Job.objects.get(pk=job.pk)
        assert "stopped responding" in job.error and "killed or crashed" in job.error
    finally:
        celery_worker.restart()
    # The upload follows its job, keeps what arrived, and finishes after all: the rest is sent, a new
    # job replaces the half-written volume the killed one left.
    state = api.http.get(upload["url"]).json()
    assert state["state"] == "failed" and "stopped responding" in state["error"]
    _finish(api, upload, src, scratch, sent=16 * MiB)


def test_download_records_the_client_going_away(api, synced, celery_worker, tmp_path, io_path):
    pool, scratch = synced
    virsh("vol-resize", "--pool", scratch.name, "raw-thin.img", "512M")
    from inventory.sync import sync_host
    sync_host(pool.host, pool_names=[pool.name])
    volume = Volume.objects.get(pool=pool, name="raw-thin.img")
    with api.http.stream("GET", f"/volumes/{volume.pk}/download") as r:
        job_id = int(r.headers["x-job-id"])
        assert int(r.headers["content-length"]) == 512 * MiB
        next(r.iter_bytes())  # read a little, then hang up
    job = wait_for(lambda: Job.objects.filter(pk=job_id).exclude(state=Job.State.RUNNING).first(), timeout=30,
                   message="the download job to end")
    assert job.state == Job.State.FAILED and "client went away" in job.error
    assert_moved_by(job, io_path)


def test_chunk_bodies_stream_to_disk_and_bad_bodies_are_refused(api, synced, asgi_server, tmp_path):
    """Chunk bodies bypass Django's spool (volumes/asgi_upload.py): a body longer than its range records
    nothing; of one cut off by the client, what arrived is kept; a large chunk arrives intact in one request."""
    import socket
    from urllib.parse import urlsplit

    pool, _ = synced
    size = 24 * MiB
    upload = api.create(pool=pool.pk, volume="streamed.img", mode="new", size=size).json()
    url = upload["chunks_url"]

    longer = api.http.put(url, content=b"abcd", headers={"Content-Range": "bytes 0-1/" + str(size)})
    assert longer.status_code == 400 and "holds more than the 2 bytes" in longer.text
    assert api.http.get(upload["url"]).json()["received"] == []

    # A client that announces 4 MiB, sends 3 and hangs up: the whole blocks that arrived are kept.
    server = urlsplit(asgi_server.url)
    cookies = "; ".join(f"{k}={v}" for k, v in api.http.cookies.items())
    sent = os.urandom(3 * MiB)
    with socket.create_connection((server.hostname, server.port)) as raw:
        raw.sendall((f"PUT {url}?offset=0 HTTP/1.1\r\nHost: {server.netloc}\r\nCookie: {cookies}\r\n"
                     f"X-CSRFToken: {api.http.headers['X-CSRFToken']}\r\nContent-Length: {4 * MiB}\r\n\r\n").encode()
                    + sent)
        time.sleep(0.5)
    received = wait_for(lambda: api.http.get(upload["url"]).json()["received"] or None, timeout=10,
                        message="the blocks that arrived to be recorded")
    assert len(received) == 1 and received[0][0] == 0 and MiB <= received[0][1] <= 3 * MiB, received
    kept = received[0][1]
    staging = Upload.objects.get(pk=upload["id"]).staging_path
    with open(staging, "rb") as f:
        assert f.read(kept) == sent[:kept]

    # One 24 MiB request (many blocks through the bounded queue): every byte lands at its offset.
    data = os.urandom(size)
    whole = api.http.put(url, params={"offset": 0}, content=data)
    assert whole.status_code == 200 and whole.json()["received"] == [[0, size]]
    assert hashlib.sha256(staging.read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()


def test_holes_are_declared_many_at_once_and_bad_ones_refused(api, synced, celery_worker, tmp_path):
    pool, scratch = synced
    size = 64 * MiB
    src = make_sparse_file(tmp_path / "h.img", size, [(10 * MiB, MiB), (40 * MiB, 2 * MiB)])
    upload = api.create(pool=pool.pk, volume="holes.img", mode="new", size=size).json()
    for bad in ({"holes": [[0, 0]]}, {"holes": [[-1, 5]]}, {"holes": [[size - 1, 2]]}, {"holes": [["0", 5]]},
                {"holes": "all"}, {}):
        r = api.http.post(upload["holes_url"], json=bad)
        assert r.status_code == 400 and r.json()["received"] == [], (bad, r.text)
    holes = [[0, 10 * MiB], [11 * MiB, 29 * MiB], [42 * MiB, size - 42 * MiB]]
    state = api.http.post(upload["holes_url"], json={"holes": holes}).json()
    assert state["hole_bytes"] == size - 3 * MiB and state["missing"] == [[10 * MiB, 11 * MiB], [40 * MiB, 42 * MiB]]
    state = api.send_file(upload, src, start=10 * MiB, stop=11 * MiB)
    state = api.send_file(upload, src, start=40 * MiB, stop=42 * MiB)
    assert state["missing"] == []
    job = wait_for_job(api.complete(upload).json()["job"])
    assert job.state == Job.State.SUCCEEDED, job.error
    assert sha256_file(scratch.path / "holes.img") == sha256_file(src)
    assert disk_usage_bytes(scratch.path / "holes.img") < 8 * MiB


def _qcow2(path: Path, backing: str | None = None) -> Path:
    args = ["-b", backing, "-F", "raw"] if backing else []
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", *args, str(path), "16M"], check=True)
    return path


def test_an_image_with_a_backing_file_is_refused_before_anything_is_written(api, synced, celery_worker, tmp_path):
    pool, scratch = synced
    overlay = _qcow2(tmp_path / "overlay.qcow2", backing="/etc/hostname")
    size = overlay.stat().st_size
    upload = api.create(pool=pool.pk, volume="backed.qcow2", mode="new", size=size).json()
    api.send_file(upload, overlay)
    job = wait_for_job(api.complete(upload).json()["job"])
    assert job.state == Job.State.FAILED and 'backing file, "/etc/hostname"' in job.error, job.error
    assert "backed.qcow2" not in virsh("vol-list", scratch.name)
    # Replacing a volume with it: the volume keeps what it held.
    before = sha256_file(scratch.path / "raw-prealloc.img")
    upload = api.create(pool=pool.pk, volume="raw-prealloc.img", mode="existing", size=size,
                        confirm="raw-prealloc.img").json()
    api.send_file(upload, overlay)
    job = wait_for_job(api.complete(upload).json()["job"])
    assert job.state == Job.State.FAILED and "Nothing was done with it" in job.error
    assert sha256_file(scratch.path / "raw-prealloc.img") == before
    # A self-contained qcow2 goes in, and libvirt sees it as one.
    plain = _qcow2(tmp_path / "plain.qcow2")
    upload = api.create(pool=pool.pk, volume="plain.qcow2", mode="new", size=plain.stat().st_size).json()
    api.send_file(upload, plain)
    job = wait_for_job(api.complete(upload).json()["job"])
    assert job.state == Job.State.SUCCEEDED, job.error
    assert Volume.objects.get(pool=pool, name="plain.qcow2").format == "qcow2"
