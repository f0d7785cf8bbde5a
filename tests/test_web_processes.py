"""Two web processes behind one address, as production runs them: each granian server with 2 workers, both on
the same database and Redis. Nothing may live in one process only: an upload's chunks land on any process and
a job's progress reaches an SSE stream on any process, whichever process queued the job."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from jobs.models import Job
from tests.conftest import AsgiServer, _free_port, wait_for_job
from tests.jobs.test_sse import percent, sse_events
from tests.volumes.conftest import Api
from tests.volumes.test_upload_download import MiB, _remove_staging_files, sha256_file  # noqa: F401
from volumes.models import Upload, Volume

pytestmark = pytest.mark.django_db(transaction=True)

WORKERS = 2


@pytest.fixture(scope="module")
def two_servers(django_db_setup, tmp_path_factory) -> Iterator[tuple[AsgiServer, AsgiServer]]:
    logs = tmp_path_factory.mktemp("web-processes")
    servers = [AsgiServer(_free_port(), logs / f"granian-{name}.log", workers=WORKERS) for name in "ab"]
    with servers[0].running(), servers[1].running():
        yield servers[0], servers[1]


def _on(api: Api, server: AsgiServer) -> httpx.Client:
    """The same session (cookie and CSRF header) against another server. Each request opens a new connection,
    so it may also land on either granian worker of that server."""
    return httpx.Client(base_url=server.url, timeout=120, cookies=api.http.cookies,
                        headers={**api.http.headers, "Connection": "close"})


def _random_file(path: Path, size: int) -> Path:
    path.write_bytes(os.urandom(size))
    return path


def _send_chunks(clients: list[httpx.Client], upload: dict, src: Path, chunk: int, pause: float = 0.0) -> int:
    """Send the file chunk by chunk, the i-th chunk through clients[i % len(clients)]; returns the index of the
    client that took the last chunk."""
    data = src.read_bytes()
    offsets = range(0, len(data), chunk)
    for i, offset in enumerate(offsets):
        piece = data[offset:offset + chunk]
        r = clients[i % len(clients)].put(upload["chunks_url"], content=piece, headers={
            "Content-Range": f"bytes {offset}-{offset + len(piece) - 1}/{len(data)}"})
        assert r.status_code == 200, r.text
        if pause:
            threading.Event().wait(pause)
    return (len(offsets) - 1) % len(clients)


def test_an_upload_whose_chunks_alternate_between_processes_completes_byte_for_byte(
        two_servers, member, synced, celery_worker, tmp_path):
    a, b = two_servers
    pool, scratch = synced
    api = Api(a.url, member)
    clients = [_on(api, a), _on(api, b)]
    size = 6 * MiB + 12345  # the last chunk is short
    src = _random_file(tmp_path / "alternating.img", size)
    created = clients[1].post("/volumes/uploads/", json={"pool": pool.pk, "volume": "alternating.img",
                                                         "mode": "new", "size": size, "format": "raw"})
    assert created.status_code == 201, created.text
    upload = created.json()
    last = _send_chunks(clients, upload, src, MiB)
    # Each process sees every chunk, whichever process wrote it.
    for client in clients:
        state = client.get(upload["url"]).json()
        assert state["received"] == [[0, size]] and state["missing"] == [], state
    completed = clients[1 - last].post(upload["complete_url"])  # complete on the other process
    assert completed.status_code == 202, completed.text
    job = wait_for_job(completed.json()["job"])
    assert job.state == Job.State.SUCCEEDED, job.error
    assert sha256_file(scratch.path / "alternating.img") == sha256_file(src)
    assert Volume.objects.get(pool=pool, name="alternating.img").capacity == size
    assert not Upload.objects.get(pk=upload["id"]).staging_path.exists()


def _watch(client: httpx.Client, events_url: str, seen: list[tuple[str, int | None]],
           opened: threading.Event) -> None:
    """Follow the job's SSE stream to its end, recording (state, percent) of each event."""
    with client.stream("GET", events_url, headers={"Accept": "text/event-stream"}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        for event, html, _ in sse_events(r):
            opened.set()
            if event == "end":
                seen.append(("end", None))
                return
            seen.append((re.search(r'data-state="(\w+)"', html)[1], percent(html)))


def test_an_sse_stream_on_either_process_follows_a_job_queued_through_the_other(
        two_servers, member, synced, celery_worker, tmp_path):
    a, b = two_servers
    pool, scratch = synced
    api = Api(a.url, member)
    clients = [_on(api, a), _on(api, b)]
    size = 40 * MiB
    src = _random_file(tmp_path / "watched.img", size)
    # Queued by server B: a new volume's upload job starts when the upload is created.
    created = clients[1].post("/volumes/uploads/", json={"pool": pool.pk, "volume": "watched.img", "mode": "new",
                                                         "size": size, "format": "raw"})
    assert created.status_code == 201, created.text
    upload = created.json()
    watches = {}
    for name, client in (("a", clients[0]), ("b", clients[1])):
        seen: list[tuple[str, int | None]] = []
        opened = threading.Event()
        thread = threading.Thread(target=_watch, args=(client, upload["events_url"], seen, opened), daemon=True)
        thread.start()
        assert opened.wait(30), f"the SSE stream on server {name} sent nothing"
        watches[name] = (thread, seen)
    # Chunks through both servers, slowly enough that the worker publishes progress several times.
    last = _send_chunks(clients, upload, src, 4 * MiB, pause=0.3)
    assert clients[1 - last].post(upload["complete_url"]).status_code == 202
    job = wait_for_job(upload["job"])
    assert job.state == Job.State.SUCCEEDED, job.error
    for name, (thread, seen) in watches.items():
        thread.join(30)
        assert not thread.is_alive(), f"the SSE stream on server {name} did not end: {seen}"
        values = [p for state, p in seen if state == "running" and p is not None]
        assert len(set(values)) >= 3, (name, seen)  # the bar moved several times while the job ran
        assert values == sorted(values), (name, seen)
        assert seen[-2:] == [("succeeded", 100), ("end", None)], (name, seen)
    assert sha256_file(scratch.path / "watched.img") == sha256_file(src)
