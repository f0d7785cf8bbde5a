"""The command-line client's uploads (scripts/vstransfer.py), run as a user runs it, against the real
ASGI server, Celery worker and libvirtd."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.utils import timezone

from jobs import progress
from jobs.models import Job
from tests.conftest import virsh
from tests.volumes.conftest import Api
from tests.volumes.test_upload_download import disk_usage_bytes, make_sparse_file, sha256_file
from volumes.models import Upload

pytestmark = pytest.mark.django_db(transaction=True)

MiB = 1024 * 1024
CLIENT = Path(__file__).resolve().parents[2] / "scripts" / "vstransfer.py"


def vstransfer(url: str, *args: str, password: str = "correct-horse-battery") -> subprocess.CompletedProcess:
    env = dict(os.environ, VIRTSTORAGE_PASSWORD=password)
    return subprocess.run([sys.executable, str(CLIENT), "--url", url, "--user", "mia", *args], env=env,
                          capture_output=True, text=True, timeout=300)


def test_upload_sends_only_data_and_the_volume_reads_back(asgi_server, synced, celery_worker, member, tmp_path):
    pool, scratch = synced
    size = 200 * MiB
    src = make_sparse_file(tmp_path / "img", size, [(0, 3 * MiB), (100 * MiB + 7, 9 * MiB), (size - 5, 5)])
    done = vstransfer(asgi_server.url, "upload", str(src), "--pool", str(pool.pk), "--volume", "cli.img",
                      "--capacity", "256M")
    assert done.returncode == 0, done.stderr
    assert "Uploaded" in done.stdout
    upload = Upload.objects.get(volume_name="cli.img")
    assert upload.state == Upload.State.DONE and upload.streaming
    assert upload.received_bytes == size and upload.hole_bytes > size - 16 * MiB  # holes were declared, not sent
    volume_file = scratch.path / "cli.img"
    assert sha256_file(volume_file) == sha256_file(src, extra_zeros=56 * MiB)
    assert disk_usage_bytes(volume_file) < 20 * MiB  # holes stayed holes in the volume
    assert int(scratch.vol_info("cli.img")["Capacity"].split()[0]) == 256 * MiB


def test_resume_sends_only_what_is_missing(asgi_server, synced, celery_worker, member, tmp_path):
    pool, scratch = synced
    src = make_sparse_file(tmp_path / "img", 48 * MiB, [(0, 48 * MiB)])
    api = Api(asgi_server.url, member)
    upload = api.create(pool=pool.pk, volume="resumed.img", mode="new", size=48 * MiB).json()
    api.send_file(upload, src, stop=16 * MiB)  # an earlier run got this far
    done = vstransfer(asgi_server.url, "upload", str(src), "--pool", str(pool.pk), "--volume", "resumed.img",
                      "--resume", upload["id"])
    assert done.returncode == 0, done.stderr
    assert sha256_file(scratch.path / "resumed.img") == sha256_file(src)
    assert Job.objects.filter(volume_name="resumed.img", kind="upload").count() == 1  # one streaming job


def test_refusals_are_printed_and_nothing_is_written(asgi_server, synced, celery_worker, member, tmp_path):
    pool, scratch = synced
    src = make_sparse_file(tmp_path / "img", MiB, [(0, MiB)])
    taken = vstransfer(asgi_server.url, "upload", str(src), "--pool", str(pool.pk), "--volume", "raw-thin.img")
    assert taken.returncode == 1 and "already has a volume raw-thin.img" in taken.stderr
    bad = vstransfer(asgi_server.url, "upload", str(src), "--pool", str(pool.pk), "--volume", "../etc")
    assert bad.returncode == 1 and "volume:" in bad.stderr
    wrong = vstransfer(asgi_server.url, "upload", str(src), "--pool", str(pool.pk), "--volume", "x.img",
                       password="not-it")
    assert wrong.returncode == 1 and "login as mia failed" in wrong.stderr
    assert "x.img" not in virsh("vol-list", scratch.name) and not Upload.objects.exists()


def test_many_short_data_runs_go_framed_in_few_requests_and_arrive_exactly(asgi_server, synced, celery_worker,
                                                                         member, tmp_path, monkeypatch):
    """A file of many short data runs goes framed: its runs and holes in requests of up to CHUNK_BYTES of data
    (here 4 MiB: three runs of a little over 1 MiB each), not a request per run; the volume is the file byte for
    byte, its holes still holes."""
    from scripts import vstransfer as client

    pool, scratch = synced
    size = 96 * MiB
    src = make_sparse_file(tmp_path / "runs.img", size, [(i * 6 * MiB + 4096, MiB + 17) for i in range(16)])
    monkeypatch.setattr(client, "CHUNK_BYTES", 4 * MiB)
    sent: dict[str, list] = {"framed": [], "range": [], "holes": []}
    for kind, name in (("framed", "_put_frames"), ("range", "_put_range"), ("holes", "_put_holes")):
        real = getattr(client, name)
        monkeypatch.setattr(client, name, lambda *a, real=real, kind=kind: sent[kind].append(a) or real(*a))
    session = client.Session(asgi_server.url)
    session.login("mia", "correct-horse-battery")
    job = client.upload(session, str(src), pool.pk, "runs.img", quiet=True)
    assert job["state"] == "succeeded", job
    assert len(sent["framed"]) == 6 and not sent["range"] and not sent["holes"], sent  # 16 runs, 3 a request
    assert [kind for kind, _offset, _length in sent["framed"][0][3]][:3] == [b"H", b"D", b"H"]
    volume_file = scratch.path / "runs.img"
    assert sha256_file(volume_file) == sha256_file(src)
    assert disk_usage_bytes(volume_file) < 40 * MiB  # 16 MiB of data in 96: the holes stayed holes


def test_a_dense_file_goes_a_chunk_at_a_time(asgi_server, synced, celery_worker, member, tmp_path, monkeypatch):
    """Long runs are not framed: a chunk each, in file order, so the job writes while the next one arrives."""
    from scripts import vstransfer as client

    pool, scratch = synced
    src = make_sparse_file(tmp_path / "dense.img", 40 * MiB, [(0, 40 * MiB)])
    monkeypatch.setattr(client, "CHUNK_BYTES", 16 * MiB)
    monkeypatch.setattr(client, "FRAMED_BELOW_BYTES", 8 * MiB)  # runs of 13 MiB on average are long here
    ranges = []
    real = client._put_range
    monkeypatch.setattr(client, "_put_range", lambda *a: ranges.append(a[3:5]) or real(*a))
    session = client.Session(asgi_server.url)
    session.login("mia", "correct-horse-battery")
    job = client.upload(session, str(src), pool.pk, "dense.img", quiet=True)
    assert job["state"] == "succeeded", job
    assert ranges == [(0, 16 * MiB), (16 * MiB, 16 * MiB), (32 * MiB, 8 * MiB)]
    assert sha256_file(scratch.path / "dense.img") == sha256_file(src)


def _following(client, session, job: Job) -> tuple[threading.Thread, dict, list[str]]:
    """follow_job of the command-line client in a thread, and the paths it asks for JSON."""
    asked: list[str] = []
    json_of = session.json
    session.json = lambda method, path, *args, **kwargs: asked.append(path) or json_of(method, path, *args, **kwargs)
    result: dict = {}
    follower = threading.Thread(target=lambda: result.update(client.follow_job(session, job.pk,
                                                                                client._Progress(quiet=True))))
    follower.start()
    return follower, result, asked


def _work_then_succeed(job: Job) -> None:
    for done in (250, 500, 750):  # 1.2 s of progress the client hears of
        time.sleep(0.4)
        job.progress_done = done
        job.save()
        progress.publish(job)
    job.state, job.result, job.finished_at, job.progress_done = Job.State.SUCCEEDED, "all done", timezone.now(), 1000
    job.save()
    progress.publish(job)


def test_the_client_waits_for_the_job_on_its_events_not_by_polling(asgi_server, member, local_host):
    """The client follows the job's server-sent events, as the pages do: it asks for the job's snapshot once, at
    the end, however long the job works (it asked every 50 ms before)."""
    from scripts import vstransfer as client

    job = Job.objects.create(kind="upload", host=local_host, created_by=member, state=Job.State.RUNNING,
                             started_at=timezone.now(), progress_done=0, progress_total=1000)
    session = client.Session(asgi_server.url)
    session.login("mia", "correct-horse-battery")
    follower, result, asked = _following(client, session, job)
    _work_then_succeed(job)
    follower.join(15)
    assert not follower.is_alive() and result["state"] == "succeeded" and result["result"] == "all done"
    assert asked == [f"/jobs/{job.pk}/"], asked


def test_the_client_polls_where_the_events_do_not_get_through(asgi_server, member, local_host, monkeypatch):
    """A proxy that does not pass the event stream (here: its connection refused) leaves the client polling the
    job's snapshot, and it still sees the end."""
    from scripts import vstransfer as client

    job = Job.objects.create(kind="upload", host=local_host, created_by=member, state=Job.State.RUNNING,
                             started_at=timezone.now(), progress_done=0, progress_total=1000)
    session = client.Session(asgi_server.url)
    session.login("mia", "correct-horse-battery")
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{closed.getsockname()[1]}"
    monkeypatch.setattr(client.Session, "twin", lambda self: client.Session(nowhere))
    follower, result, asked = _following(client, session, job)
    _work_then_succeed(job)
    follower.join(15)
    assert not follower.is_alive() and result["state"] == "succeeded"
    assert len(asked) > 5 and set(asked) == {f"/jobs/{job.pk}/"}, asked
