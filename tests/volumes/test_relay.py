"""Transfers with a host that has a worker of its own go through Redis to and from that worker: uploads
(volumes/relay.py), where the web server and the worker share no disk, and downloads (volumes/download_relay.py),
which that worker reads beside the host.

The web server here runs with a VAR_DIR of its own whose `uploads` is a plain file, so it cannot have staged a
byte; the host's worker runs with another VAR_DIR and listens only to the host's queues.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings

from inventory.sync import sync_host
from jobs import progress
from jobs.models import Job
from jobs.progress import client as redis_client
from tests.conftest import TEST_QUEUE, AsgiServer, CeleryWorker, _free_port, virsh, wait_for, wait_for_job
from tests.volumes.conftest import Api
from tests.volumes.test_download_ranges import assert_a_download_resumes, write_ranged_volume
from tests.volumes.test_upload_download import disk_usage_bytes, make_sparse_file, sha256_file
from volumes import relay
from volumes.models import Upload

pytestmark = pytest.mark.django_db(transaction=True)

MiB = 1024 * 1024
BUFFER = 8 * MiB  # the web server's UPLOAD_RELAY_BUFFER_BYTES here
NEAR_QUEUE = f"{TEST_QUEUE}-relay"
WEB_UPLOADS_MARK = b"the web server never stages a relayed upload\n"
RELAY_WAIT_SECONDS = 3  # the web server's DOWNLOAD_RELAY_WAIT_SECONDS here
DOWNLOAD_BUFFER = 4 * MiB  # the host's worker's DOWNLOAD_RELAY_BUFFER_BYTES here


def near_worker(queue: str, var_dir: Path, log_path: Path, **env: str) -> CeleryWorker:
    """The host's own worker, with a VAR_DIR of its own: another machine's disk."""
    return CeleryWorker.on_queue(queue, log_path, env={"VIRTSTORAGE_VAR_DIR": str(var_dir),
                                                       "UPLOAD_STAGING_DIR": str(var_dir / "uploads"),
                                                       "SECRET_KEY": settings.SECRET_KEY, **env})


@pytest.fixture(scope="module")
def web_var(tmp_path_factory) -> Path:
    var = tmp_path_factory.mktemp("web-var")
    (var / "uploads").write_bytes(WEB_UPLOADS_MARK)  # a file: no staging file can be made under it
    return var


@pytest.fixture(scope="module")
def relay_web(django_db_setup, tmp_path_factory, web_var) -> Iterator[AsgiServer]:
    server = AsgiServer(_free_port(), tmp_path_factory.mktemp("logs") / "relay-granian.log", env={
        "VIRTSTORAGE_VAR_DIR": str(web_var), "UPLOAD_STAGING_DIR": str(web_var / "uploads"),
        "SECRET_KEY": settings.SECRET_KEY, "UPLOAD_RELAY_BUFFER_BYTES": str(BUFFER), "UPLOAD_RELAY_WAIT_SECONDS": "2",
        "DOWNLOAD_RELAY_WAIT_SECONDS": str(RELAY_WAIT_SECONDS)})
    with server.running():
        yield server


@pytest.fixture(scope="module")
def near_var(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("near-var")


@pytest.fixture(scope="module")
def near(django_db_setup, tmp_path_factory, near_var) -> Iterator[CeleryWorker]:
    with near_worker(NEAR_QUEUE, near_var, tmp_path_factory.mktemp("logs") / "near.log").running() as worker:
        yield worker


@pytest.fixture
def relay_api(relay_web, member) -> Api:
    return Api(relay_web.url, member)


def _own_queue(pool, queue: str = NEAR_QUEUE):
    host = pool.host
    host.queue = queue
    host.save(update_fields=["queue"])
    return pool


def _relay_keys_gone(upload_id: str) -> bool:
    return not redis_client().exists(*relay._keys(upload_id))


def _ran_on(job: Job, worker: CeleryWorker) -> bool:
    pid = int(job.worker.rsplit(":", 1)[1])
    with open(f"/proc/{pid}/status") as status:
        return int(next(line for line in status if line.startswith("PPid:")).split()[1]) == worker.proc.pid


def _web_never_staged(web_var: Path) -> None:
    assert (web_var / "uploads").read_bytes() == WEB_UPLOADS_MARK


def test_a_relayed_upload_arrives_byte_for_byte_with_its_holes(relay_api, synced, near, near_var, web_var, tmp_path):
    pool, scratch = synced
    _own_queue(pool)
    size = 96 * MiB
    # 20 MiB of data in a row (more than the relay's 8 MiB buffer: the web waits for the worker), a chunk that
    # is half zeros, and a last byte.
    src = make_sparse_file(tmp_path / "disk.img", size, [(0, 20 * MiB), (40 * MiB + 123, MiB), (size - 1, 1)])
    created = relay_api.create(pool=pool.pk, volume="relayed.img", mode="new", size=size, capacity="128M")
    assert created.status_code == 201, created.text
    upload = created.json()
    assert upload["job"], "a relayed upload's job starts with it: it takes the chunks"
    assert Upload.objects.get(pk=upload["id"]).relayed
    state = relay_api.send_file(upload, src)
    assert state["missing"] == [] and state["hole_bytes"] >= 64 * MiB
    assert relay_api.complete(upload).status_code == 202
    job = wait_for_job(upload["job"])
    assert job.state == Job.State.SUCCEEDED, job.error
    assert _ran_on(job, near), job.worker  # the host's own worker wrote it
    assert "through the relay into this worker's staging file" in job.log, job.log

    volume_file = scratch.path / "relayed.img"
    assert sha256_file(volume_file) == sha256_file(src, extra_zeros=128 * MiB - size)
    assert disk_usage_bytes(volume_file) < 28 * MiB  # 21 MiB of data in 96: the holes stayed holes
    _web_never_staged(web_var)
    assert (near_var / "uploads").is_dir() and not (near_var / "uploads" / f"{upload['id']}.part").exists()
    assert _relay_keys_gone(upload["id"])


def test_a_framed_upload_is_relayed_byte_for_byte(relay_web, synced, near, member, web_var, tmp_path,
                                                  monkeypatch):
    """Many short runs framed in few requests (the command-line client's way with a sparse file): their data and
    holes go onto the relay in file order, and the host's worker writes the volume; the web stages nothing."""
    from scripts import vstransfer as client

    pool, scratch = synced
    _own_queue(pool)
    size = 80 * MiB
    # 12 runs of 1.5 MiB: more data than the relay's buffer in one request, so the web waits for the worker.
    src = make_sparse_file(tmp_path / "runs.img", size, [(i * 6 * MiB + 777, 3 * MiB // 2) for i in range(12)])
    monkeypatch.setattr(client, "CHUNK_BYTES", 12 * MiB)
    framed = []
    real = client._put_frames
    monkeypatch.setattr(client, "_put_frames", lambda *a: framed.append(a) or real(*a))
    session = client.Session(relay_web.url)
    session.login("mia", "correct-horse-battery")
    job = client.upload(session, str(src), pool.pk, "framed-relayed.img", quiet=True)
    assert job["state"] == "succeeded", job
    assert len(framed) == 2, framed  # 18 MiB of data, 12 MiB a request
    assert _ran_on(Job.objects.get(pk=job["id"]), near)
    volume_file = scratch.path / "framed-relayed.img"
    assert sha256_file(volume_file) == sha256_file(src)
    assert disk_usage_bytes(volume_file) < 30 * MiB  # 18 MiB of data in 80: the holes stayed holes
    _web_never_staged(web_var)


def test_the_relay_buffer_is_bounded_until_the_worker_takes_it(relay_api, synced, web_var, tmp_path,
                                                                tmp_path_factory):
    pool, scratch = synced
    late = f"{TEST_QUEUE}-late"
    _own_queue(pool, late)  # no worker listens to it yet: the job stays queued
    size = 24 * MiB
    src = make_sparse_file(tmp_path / "dense.img", size, [(0, size)])
    upload = relay_api.create(pool=pool.pk, volume="bounded.img", mode="new", size=size).json()
    assert relay_api.send_file(upload, src, stop=BUFFER)["received"] == [[0, BUFFER]]

    started = time.monotonic()
    r = relay_api.http.put(upload["chunks_url"], params={"offset": BUFFER}, content=src.read_bytes()[BUFFER:12 * MiB])
    assert r.status_code == 503 and r.headers["Retry-After"] == "5", r.text
    assert time.monotonic() - started >= 2  # it waited for room first
    assert "not taking this upload's bytes" in r.json()["error"] and r.json()["received"] == [[0, BUFFER]]
    data_key, count_key = relay._keys(upload["id"])
    held = sum(len(fields.get(b"d", b"")) for _, fields in redis_client().xrange(data_key))
    assert held == int(redis_client().get(count_key)) == BUFFER  # what waits in Redis, and no more
    assert Job.objects.get(pk=upload["job"]).state == Job.State.QUEUED

    with near_worker(late, tmp_path_factory.mktemp("late-var"), tmp_path / "late.log").running() as worker:
        relay_api.send_file(upload, src, start=BUFFER)
        job = wait_for_job(relay_api.complete(upload).json()["job"])
        assert job.state == Job.State.SUCCEEDED, job.error
        assert _ran_on(job, worker)
    assert sha256_file(scratch.path / "bounded.img") == sha256_file(src)
    _web_never_staged(web_var)
    assert _relay_keys_gone(upload["id"])


def test_a_dropped_chunk_is_resumed_relayed(relay_api, relay_web, synced, near, tmp_path):
    pool, scratch = synced
    _own_queue(pool)
    size = 16 * MiB
    src = make_sparse_file(tmp_path / "r.img", size, [(0, size)])
    upload = relay_api.create(pool=pool.pk, volume="dropped.img", mode="new", size=size).json()
    # A client that announces 4 MiB, sends 3 and hangs up: what went onto the relay is kept.
    server = urlsplit(relay_web.url)
    cookies = "; ".join(f"{k}={v}" for k, v in relay_api.http.cookies.items())
    with socket.create_connection((server.hostname, server.port)) as raw:
        raw.sendall((f"PUT {upload['chunks_url']}?offset=0 HTTP/1.1\r\nHost: {server.netloc}\r\n"
                     f"Cookie: {cookies}\r\nX-CSRFToken: {relay_api.http.headers['X-CSRFToken']}\r\n"
                     f"Content-Length: {4 * MiB}\r\n\r\n").encode() + src.read_bytes()[:3 * MiB])
        time.sleep(0.5)
    received = wait_for(lambda: relay_api.http.get(upload["url"]).json()["received"] or None, timeout=10,
                        message="the pieces that arrived to be recorded")
    assert len(received) == 1 and received[0][0] == 0 and MiB <= received[0][1] <= 3 * MiB, received
    state = relay_api.http.get(upload["url"]).json()
    relay_api.send_file(upload, src, start=state["next_offset"])
    job = wait_for_job(relay_api.complete(upload).json()["job"])
    assert job.state == Job.State.SUCCEEDED, job.error
    assert sha256_file(scratch.path / "dropped.img") == sha256_file(src)


def test_a_truncated_relayed_upload_fails_then_resumes_from_the_workers_bytes(relay_api, synced, near, near_var,
                                                                               tmp_path):
    pool, scratch = synced
    _own_queue(pool)
    size = 24 * MiB
    src = make_sparse_file(tmp_path / "t.img", size, [(0, size)])
    upload = relay_api.create(pool=pool.pk, volume="trunc.img", mode="new", size=size).json()
    relay_api.send_file(upload, src, stop=12 * MiB)
    r = relay_api.complete(upload)
    assert r.status_code == 202 and "truncated" in r.json()["warning"]
    job = wait_for_job(r.json()["job"])
    assert job.state == Job.State.FAILED and "12582912 of 25165824 bytes never arrived" in job.error, job.error
    assert "trunc.img" not in subprocess.run(["virsh", "-q", "vol-list", scratch.name], capture_output=True,
                                             text=True).stdout
    # The worker kept what it took, with a note of it; the next chunk starts a new job that goes on from there.
    assert (near_var / "uploads" / f"{upload['id']}.ranges").exists()
    state = relay_api.http.get(upload["url"]).json()
    assert state["state"] == "failed" and state["next_offset"] == 12 * MiB
    state = relay_api.send_file(upload, src, start=12 * MiB)
    assert state["job"] != job.pk
    job = wait_for_job(relay_api.complete(upload).json()["job"])
    assert job.state == Job.State.SUCCEEDED, job.error
    assert "12582912 bytes kept from an earlier job" in job.log, job.log
    assert sha256_file(scratch.path / "trunc.img") == sha256_file(src)
    assert not os.path.exists(near_var / "uploads" / f"{upload['id']}.ranges")


def test_a_relayed_replace_waits_for_complete_and_an_abandon_leaves_nothing(relay_api, synced, near, near_var,
                                                                            tmp_path):
    pool, scratch = synced
    _own_queue(pool)
    old = tmp_path / "old.bin"
    old.write_bytes(os.urandom(16 * MiB))
    subprocess.run(["virsh", "-q", "vol-upload", "--pool", scratch.name, "raw-prealloc.img", str(old)], check=True)
    src = make_sparse_file(tmp_path / "new.img", 12 * MiB, [(0, 100), (8 * MiB, MiB)])
    upload = relay_api.create(pool=pool.pk, volume="raw-prealloc.img", mode="existing", size=12 * MiB,
                              confirm="raw-prealloc.img").json()
    assert upload["job"]  # it takes the chunks from the start...
    assert relay_api.send_file(upload, src)["missing"] == []
    time.sleep(2)  # ...but leaves the volume alone until the client completes
    assert sha256_file(scratch.path / "raw-prealloc.img") == sha256_file(old)
    job = wait_for_job(relay_api.complete(upload).json()["job"])
    assert job.state == Job.State.SUCCEEDED, job.error
    assert sha256_file(scratch.path / "raw-prealloc.img") == sha256_file(src, extra_zeros=4 * MiB)

    upload = relay_api.create(pool=pool.pk, volume="gone.img", mode="new", size=16 * MiB).json()
    relay_api.send_file(upload, make_sparse_file(tmp_path / "g.img", 16 * MiB, [(0, 16 * MiB)]), stop=8 * MiB)
    assert relay_api.http.delete(upload["url"]).status_code == 200
    job = wait_for_job(upload["job"])
    assert job.state == Job.State.CANCELLED, (job.state, job.error)
    assert _relay_keys_gone(upload["id"])
    assert not list((near_var / "uploads").glob(f"{upload['id']}.*"))


def test_vstransfer_waits_out_a_full_relay_buffer(relay_web, synced, member, web_var, tmp_path, tmp_path_factory):
    """The command-line client takes the 503's Retry-After as "wait", not as a failure: started before any
    worker listens to the host's queue, it finishes once one does."""
    from tests.volumes.test_vstransfer_upload import CLIENT

    pool, scratch = synced
    late = f"{TEST_QUEUE}-cli"
    _own_queue(pool, late)
    size = 24 * MiB
    src = make_sparse_file(tmp_path / "cli.img", size, [(0, size)])
    said = tmp_path / "client.err"
    with said.open("w") as stderr:
        client = subprocess.Popen(
            [sys.executable, str(CLIENT), "--url", relay_web.url, "--user", "mia", "upload", str(src), "--pool",
             str(pool.pk), "--volume", "cli-relayed.img"],
            env=dict(os.environ, VIRTSTORAGE_PASSWORD="correct-horse-battery"), stdout=subprocess.PIPE,
            stderr=stderr, text=True)
    try:
        wait_for(lambda: "the server is busy; retrying in 5 s" in said.read_text(), timeout=90)
        assert client.poll() is None, client.communicate()
        with near_worker(late, tmp_path_factory.mktemp("cli-var"), tmp_path / "cli-worker.log").running():
            client.communicate(timeout=180)
    finally:
        if client.poll() is None:
            client.kill()
    err = said.read_text()
    assert client.returncode == 0, err
    assert sha256_file(scratch.path / "cli-relayed.img") == sha256_file(src)
    _web_never_staged(web_var)


# -- A worker beside a remote host moves the bytes on its own machine ---------------------------------------

BESIDE_QUEUE = f"{TEST_QUEUE}-beside"


@pytest.fixture(scope="module")
def beside(django_db_setup, tmp_path_factory, remote_libvirt_uri) -> Iterator[CeleryWorker]:
    """The remote host's worker, started on its machine: LIBVIRT_HOSTS_HERE names the host's registered URI."""
    with near_worker(BESIDE_QUEUE, tmp_path_factory.mktemp("beside-var"), tmp_path_factory.mktemp("logs") /
                     "beside.log", LIBVIRT_HOSTS_HERE=remote_libvirt_uri,
                     DOWNLOAD_RELAY_BUFFER_BYTES=str(DOWNLOAD_BUFFER)).running() as worker:
        yield worker


@pytest.fixture
def remote_pool(transactional_db, remote_libvirt_uri, filled_pool):
    """The filled pool, on a host registered by a qemu+tcp URI (this machine's libvirtd, remote by its URI)."""
    from hosts.models import Host
    from inventory.sync import sync_host
    from pools.models import StoragePool

    host = Host.objects.create(name="remote", uri=remote_libvirt_uri)
    assert sync_host(host, pool_names=[filled_pool.name]) is not None
    return StoragePool.objects.get(host=host, name=filled_pool.name), filled_pool


@pytest.mark.parametrize("where", ["beside", "near"])
def test_a_worker_beside_a_remote_host_writes_the_volume_in_place(where, request, relay_api, remote_pool, tmp_path):
    """Beside the host (LIBVIRT_HOSTS_HERE), the job writes the volume's file itself; a worker of the host's queue
    without the setting sends every byte through libvirt's remote protocol. The same bytes either way."""
    from virtstorage.virt.localfile import VOLUME_FILE

    worker = request.getfixturevalue(where)
    pool, scratch = remote_pool
    _own_queue(pool, BESIDE_QUEUE if where == "beside" else NEAR_QUEUE)
    size = 24 * MiB
    src = make_sparse_file(tmp_path / "disk.img", size, [(0, 3 * MiB), (17 * MiB + 5, MiB), (size - 1, 1)])
    created = relay_api.create(pool=pool.pk, volume="remote.img", mode="new", size=size, capacity="32M")
    assert created.status_code == 201, created.text
    upload = created.json()
    assert relay_api.send_file(upload, src)["missing"] == []
    assert relay_api.complete(upload).status_code == 202
    job = wait_for_job(upload["job"])
    assert job.state == Job.State.SUCCEEDED, job.error
    assert _ran_on(job, worker), job.worker
    assert (VOLUME_FILE in job.log) == (where == "beside"), job.log
    volume_file = scratch.path / "remote.img"
    assert sha256_file(volume_file) == sha256_file(src, extra_zeros=32 * MiB - size)
    assert disk_usage_bytes(volume_file) < 8 * MiB  # holes stayed holes both ways


# -- Downloads from a host with its worker beside it are read there -------------------------------------------

def _write_data(scratch, name: str, extents: list[tuple[int, int]]) -> Path:
    """Random data into a volume's file behind libvirt's back, then a refresh so libvirt vouches for the file again."""
    path = scratch.path / name
    with open(path, "r+b") as f:
        for offset, length in extents:
            f.seek(offset)
            f.write(os.urandom(length))
    virsh("pool-refresh", scratch.name)
    return path


def _download(api: Api, volume_pk: int, **params) -> tuple[int, bytes, int]:
    r = api.http.get(f"/volumes/{volume_pk}/download", params=params)
    return r.status_code, r.content, int(r.headers.get("x-job-id") or 0)


def _relay_keys() -> list[bytes]:
    """What relayed downloads hold in Redis, but the stop marks (kept an hour for a worker that comes late)."""
    return [key for key in redis_client().scan_iter(progress.key("download", "*")) if not key.endswith(b":stop")]


def test_a_download_from_a_host_with_its_worker_beside_it_is_read_there(relay_api, remote_pool, beside,
                                                                        libvirt_over_tcp):
    """The host's worker reads the file in place and the web server sends it: no libvirt connection goes over
    the host's (remote) URI for it, plain or in the framed sparse format, holes kept."""
    from virtstorage.virt import sparse_format
    from virtstorage.virt.localfile import VOLUME_FILE
    from volumes.models import Volume

    pool, scratch = remote_pool
    _own_queue(pool, BESIDE_QUEUE)
    path = _write_data(scratch, "raw-thin.img", [(0, MiB), (40 * MiB + 7, 2 * MiB)])
    volume = Volume.objects.get(pool=pool, name="raw-thin.img")
    status, body, job_id = _download(relay_api, volume.pk)  # also lets the worker check its setting once
    assert status == 200, body[:300]
    assert body == path.read_bytes()
    job = wait_for_job(job_id)
    assert job.state == Job.State.SUCCEEDED, job.error
    assert VOLUME_FILE in job.log and "through the relay" in job.log, job.log

    before = libvirt_over_tcp.connections
    status, body, job_id = _download(relay_api, volume.pk, format="sparse")
    assert status == 200
    job = wait_for_job(job_id)
    assert job.state == Job.State.SUCCEEDED, job.error
    frames = list(sparse_format.decode(io.BytesIO(body)))
    data = sum(f.length for f in frames if f.kind == sparse_format.DATA)
    assert 3 * MiB <= data <= 4 * MiB + 64 * 1024  # only the data crossed, holes as hole frames
    assert libvirt_over_tcp.connections == before, "nothing went through the host's remote URI"
    assert wait_for(lambda: not _relay_keys(), timeout=10, message=f"the relay's keys to go: {_relay_keys()}")


def test_a_relayed_download_resumes_too(relay_api, remote_pool, beside):
    """The host's worker takes the Range and If-Range with its task: 206 from where the client stopped, 416 past
    the end, the whole new volume once the old ETag no longer holds."""
    from volumes.models import Volume

    pool, scratch = remote_pool
    _own_queue(pool, BESIDE_QUEUE)
    path = write_ranged_volume(scratch, "ranged.img")
    assert sync_host(pool.host, pool_names=[scratch.name]) is not None
    volume = Volume.objects.get(pool=pool, name="ranged.img")
    job = assert_a_download_resumes(relay_api.http, f"/volumes/{volume.pk}/download", path,
                                    lambda: virsh("vol-wipe", "--pool", scratch.name, "ranged.img"))
    assert "through the relay" in job.log, job.log
    assert wait_for(lambda: not _relay_keys(), timeout=10, message=f"the relay's keys to go: {_relay_keys()}")


def test_a_relayed_download_is_checked_by_the_hosts_worker(relay_api, remote_pool, beside, tmp_path):
    """An image changed after the last sync to name a file outside the pools: the worker's check refuses it."""
    from volumes.models import Volume

    pool, scratch = remote_pool
    _own_queue(pool, BESIDE_QUEUE)
    volume = Volume.objects.get(pool=pool, name="qcow2-thin.qcow2")
    assert not volume.unsafe_reason
    outside = tmp_path / "secret.raw"
    outside.write_bytes(b"not for members" * 100)
    subprocess.run(["qemu-img", "rebase", "-u", "-f", "qcow2", "-b", str(outside), "-F", "raw",
                    str(scratch.path / "qcow2-thin.qcow2")], check=True)
    virsh("pool-refresh", scratch.name)
    status, body, _job = _download(relay_api, volume.pk)
    assert status == 409 and b"Refused" in body and b"secret.raw" in body, body[:300]
    assert b"not for members" not in body
    job = Job.objects.filter(kind="download").order_by("-pk").first()
    assert job.state == Job.State.FAILED and "secret.raw" in job.error, job.error


def test_a_download_for_a_host_whose_worker_is_absent_fails_clearly(relay_api, remote_pool):
    from volumes.models import Volume

    pool, _scratch = remote_pool
    _own_queue(pool, f"{TEST_QUEUE}-nobody")
    volume = Volume.objects.get(pool=pool, name="raw-thin.img")
    started = time.monotonic()
    status, body, _job = _download(relay_api, volume.pk)
    assert status == 502 and b"No worker of" in body and b"-nobody-transfers" in body, body[:300]
    assert time.monotonic() - started < RELAY_WAIT_SECONDS + 10
    job = Job.objects.filter(kind="download").order_by("-pk").first()
    assert job.state == Job.State.FAILED and "No worker of" in job.error


def test_a_client_leaving_a_relayed_download_stops_the_worker(relay_api, relay_web, remote_pool, beside):
    """The worker keeps at most DOWNLOAD_RELAY_BUFFER_BYTES in Redis for a client that reads nothing; once the web
    gives the client up, the worker stops and the keys go, and the worker serves the next download."""
    from volumes.models import Volume

    pool, scratch = remote_pool
    _own_queue(pool, BESIDE_QUEUE)
    path = _write_data(scratch, "raw-thin.img", [(0, 48 * MiB)])
    volume = Volume.objects.get(pool=pool, name="raw-thin.img")
    server = urlsplit(relay_web.url)
    cookies = "; ".join(f"{k}={v}" for k, v in relay_api.http.cookies.items())
    with socket.create_connection((server.hostname, server.port)) as raw:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        raw.sendall(f"GET /volumes/{volume.pk}/download HTTP/1.1\r\nHost: {server.netloc}\r\n"
                    f"Cookie: {cookies}\r\n\r\n".encode())
        assert raw.recv(4096).startswith(b"HTTP/1.1 200")

        def buffered() -> int:
            keys = [k for k in _relay_keys() if k.endswith(b":buffered")]
            return int(redis_client().get(keys[0]) or 0) if keys else 0

        wait_for(lambda: buffered() >= DOWNLOAD_BUFFER - MiB, timeout=20, message="the relay buffer to fill")
        time.sleep(1)
        assert buffered() <= DOWNLOAD_BUFFER  # the worker waits for room instead of reading on
    job = wait_for(lambda: Job.objects.filter(kind="download").exclude(state=Job.State.RUNNING).first(),
                   timeout=30, message="the abandoned download to end")
    assert job.state == Job.State.FAILED
    wait_for(lambda: not _relay_keys(), timeout=20, message="the worker to stop and the keys to go")
    status, body, _job = _download(relay_api, volume.pk)
    assert status == 200 and body == path.read_bytes()


def test_a_range_recorded_while_the_job_starts_stays_recorded(synced, member, settings, tmp_path):
    """The web records a chunk's range after pushing it. A job that reconciles the Upload row with what it holds
    takes every entry while the row is locked, so a range pushed and recorded after the job's last take (while
    it started) is never written out of the row, and the client is never told to send it again."""
    from jobs.runner import JobContext
    from volumes import staging

    settings.UPLOAD_STAGING_DIR = tmp_path  # this process is the job's worker here: a staging dir of its own
    pool, _ = synced
    upload = Upload.objects.create(created_by=member, pool=pool, volume_name="race.img", size=8 * MiB,
                                   capacity=8 * MiB)
    job = Job.objects.create(kind="upload", host=pool.host, pool=pool, pool_name=pool.name, volume_name="race.img",
                             state=Job.State.RUNNING)
    receiver = relay.Receiver(JobContext(job), upload, truncated=RuntimeError, stalled=RuntimeError)
    try:
        relay.push_zeros(upload, [(4 * MiB, 8 * MiB)])  # the web, between the job's last take and its reconcile
        staging.record(upload, holes=[(4 * MiB, 8 * MiB)])
        receiver.reconcile()
        upload.refresh_from_db()
        assert upload.received == [[4 * MiB, 8 * MiB]] and receiver.ranges == [[4 * MiB, 8 * MiB]]
    finally:
        receiver.close(keep=False)
        relay.discard(upload.pk)
