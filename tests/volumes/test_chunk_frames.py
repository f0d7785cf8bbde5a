"""Framed chunk PUTs (volumes/chunk_frames.py): many data runs and holes of the file in one request, through the
real ASGI server, Celery worker and libvirtd. A malformed or cut body is refused with its reason and keeps what
arrived before it; nothing else is recorded."""

from __future__ import annotations

import os
import socket
import time
from urllib.parse import urlsplit

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobs.models import Job
from tests.conftest import wait_for, wait_for_job
from tests.virt.test_sparse_format import encode as framed  # a body: frames, then the end frame
from tests.volumes.conftest import Api
from tests.volumes.test_upload_download import (  # noqa: F401 - _remove_staging_files: an autouse fixture
    _remove_staging_files,
    disk_usage_bytes,
    make_sparse_file,
    sha256_file,
)
from virtstorage.virt import sparse_format as sf
from volumes.models import Upload

pytestmark = pytest.mark.django_db(transaction=True)

MiB = 1024 * 1024


def put_framed(api: Api, upload: dict, body: bytes):
    return api.http.put(upload["chunks_url"], content=body, headers={"Content-Type": sf.MIME_TYPE})


def test_runs_and_holes_in_one_request_make_the_volume_byte_for_byte(api, synced, celery_worker, tmp_path):
    pool, scratch = synced
    size = 64 * MiB
    runs = [(5 * MiB + 3, 3 * MiB), (20 * MiB, MiB + 1), (size - 7, 7)]
    src = make_sparse_file(tmp_path / "runs.img", size, runs)
    content = src.read_bytes()
    frames, position = [], 0
    for offset, length in runs:
        if offset > position:
            frames.append((sf.HOLE, position, offset - position))
        frames.append((sf.DATA, offset, content[offset:offset + length]))
        position = offset + length
    upload = api.create(pool=pool.pk, volume="framed.img", mode="new", size=size).json()
    r = put_framed(api, upload, framed(frames, size))
    assert r.status_code == 200, r.text
    state = r.json()
    assert state["missing"] == [] and state["received_bytes"] == size
    assert state["hole_bytes"] == size - sum(length for _, length in runs)
    job = wait_for_job(api.complete(upload).json()["job"])
    assert job.state == Job.State.SUCCEEDED, job.error
    assert sha256_file(scratch.path / "framed.img") == sha256_file(src)
    assert disk_usage_bytes(scratch.path / "framed.img") < 12 * MiB  # the holes stayed holes


@pytest.mark.parametrize("body, refusal, kept", [
    (b"NOTMAGIC" + sf.end_frame(8 * MiB, 0), "not a sparse stream", []),
    (framed([(sf.DATA, 8 * MiB - 2, b"abc")], 8 * MiB), "past the end", []),
    (framed([(sf.DATA, 0, b"a" * 10), (sf.DATA, 5, b"b" * 10)], 8 * MiB), "overlaps", [[0, 10]]),
    (framed([(sf.HOLE, 0, 10)], 4 * MiB), "end frame says", [[0, 10]]),
    (framed([(sf.DATA, 0, b"abc")], 8 * MiB)[:-1], "cut off", [[0, 3]]),
    (framed([(sf.HOLE, 0, 10)], 8 * MiB) + b"more", "after its end frame", [[0, 10]]),
])
def test_a_malformed_body_is_refused_and_keeps_only_the_whole_frames_before_it(api, synced, asgi_server, body,
                                                                               refusal, kept):
    pool, _ = synced
    upload = api.create(pool=pool.pk, volume="bad-frames.img", mode="new", size=8 * MiB).json()
    r = put_framed(api, upload, body)
    assert r.status_code == 400 and refusal in r.json()["error"], r.text
    assert r.json()["received"] == kept
    assert Upload.objects.get(pk=upload["id"]).received == kept


def test_a_client_cut_off_mid_frame_keeps_the_whole_frames_and_what_arrived_of_the_last(api, synced, asgi_server):
    pool, _ = synced
    size = 32 * MiB
    upload = api.create(pool=pool.pk, volume="cut-frames.img", mode="new", size=size).json()
    first, second = os.urandom(2 * MiB), os.urandom(6 * MiB)
    body = framed([(sf.HOLE, 0, MiB), (sf.DATA, MiB, first), (sf.DATA, 8 * MiB, second)], size)
    server = urlsplit(str(api.http.base_url))
    cookies = "; ".join(f"{k}={v}" for k, v in api.http.cookies.items())
    sent = body[:len(sf.MAGIC) + 3 * sf.HEADER.size + len(first) + 4 * MiB]  # 4 MiB of the second run
    with socket.create_connection((server.hostname, server.port)) as raw:
        raw.sendall((f"PUT {upload['chunks_url']} HTTP/1.1\r\nHost: {server.netloc}\r\nCookie: {cookies}\r\n"
                     f"X-CSRFToken: {api.http.headers['X-CSRFToken']}\r\nContent-Type: {sf.MIME_TYPE}\r\n"
                     f"Content-Length: {len(body)}\r\n\r\n").encode() + sent)
        time.sleep(0.5)

    def recorded():
        received = Upload.objects.get(pk=upload["id"]).received
        return received if received and received[-1][1] > 8 * MiB else None

    received = wait_for(recorded, timeout=10, message="the frames that arrived to be recorded")
    assert received[0] == [0, 3 * MiB] and received[1][0] == 8 * MiB and received[1][1] <= 12 * MiB, received
    kept = received[1][1] - 8 * MiB
    staging = Upload.objects.get(pk=upload["id"]).staging_path
    with open(staging, "rb") as f:
        f.seek(MiB)
        assert f.read(2 * MiB) == first
        f.seek(8 * MiB)
        assert f.read(kept) == second[:kept]
    assert Upload.objects.get(pk=upload["id"]).hole_bytes == MiB


def test_a_framed_resend_of_received_data_replaces_it(api, synced, asgi_server):
    """Data sent again over a range that arrived before replaces it, zeros included (the staging file is only
    left thin where nothing arrived before)."""
    pool, _ = synced
    upload = api.create(pool=pool.pk, volume="again.img", mode="new", size=8 * MiB).json()
    assert put_framed(api, upload, framed([(sf.DATA, 0, b"x" * MiB)], 8 * MiB)).status_code == 200
    assert put_framed(api, upload, framed([(sf.DATA, 0, bytes(MiB))], 8 * MiB)).status_code == 200
    staging = Upload.objects.get(pk=upload["id"]).staging_path
    with open(staging, "rb") as f:
        assert f.read(MiB) == bytes(MiB)


def test_a_frames_data_and_holes_are_recorded_in_one_write(api, synced):
    """A reader of the upload's row (its job, the client's status) sees a framed request's holes with its data,
    never the data alone: both are recorded under one lock, and the holes alone count as declared zeros."""
    from volumes import chunk_frames

    pool, _ = synced
    upload = Upload.objects.get(pk=api.create(pool=pool.pk, volume="together.img", mode="new",
                                              size=16 * MiB).json()["id"])
    arrived = chunk_frames._Arrived(upload)
    arrived.data, arrived.holes = [(MiB, 3 * MiB), (8 * MiB, 9 * MiB)], [(0, MiB), (2 * MiB, 4 * MiB)]
    with CaptureQueriesContext(connection) as queries:
        arrived.record()
    assert sum(q["sql"].startswith('UPDATE "volumes_upload"') for q in queries) == 1, queries.captured_queries
    upload.refresh_from_db()
    assert upload.received == [[0, 4 * MiB], [8 * MiB, 9 * MiB]]
    assert (upload.received_bytes, upload.hole_bytes) == (5 * MiB, 2 * MiB)  # the holes' part not already data


@pytest.mark.parametrize("cut", [False, True], ids=["recorded-while-it-arrives", "cut-off"])
def test_a_framed_requests_ranges_are_recorded_in_the_order_they_arrived(api, synced, monkeypatch, cut):
    """Whole frames not recorded yet go in the same write as a later frame's bytes recorded while it arrives
    (every RECORD_BYTES) or where the body was cut: a reader of the row never sees a frame without those before
    it (a fresh-clone CI run once read the cut frame's bytes alone)."""
    from volumes import chunk_frames, staging

    pool, _ = synced
    size = 64 * MiB
    upload = Upload.objects.get(pk=api.create(pool=pool.pk, volume="in-order.img", mode="new",
                                              size=size).json()["id"])
    monkeypatch.setattr(staging, "RECORD_SECONDS", 0)  # a frame's bytes are recorded every RECORD_BYTES
    monkeypatch.setattr(chunk_frames, "RECORD_SECONDS", 3600)  # whole frames only at the end, or with those
    seen, record = [], staging.record

    def seen_record(*args, **kwargs):
        row = record(*args, **kwargs)
        seen.append(row.received)
        return row

    monkeypatch.setattr(staging, "record", seen_record)
    body = framed([(sf.HOLE, 0, MiB), (sf.DATA, MiB, os.urandom(2 * MiB)), (sf.DATA, 8 * MiB, os.urandom(24 * MiB))],
                  size)
    if cut:
        body = body[:len(sf.MAGIC) + 3 * sf.HEADER.size + 2 * MiB + 4 * MiB]  # 4 MiB of the last frame
    blocks = ([body[i:i + MiB]] for i in range(0, len(body), MiB))
    if cut:
        with pytest.raises(chunk_frames.FramesCut):
            chunk_frames.receive(blocks, upload)
        assert seen == [[[0, 3 * MiB], [8 * MiB, 12 * MiB]]]
    else:
        chunk_frames.receive(blocks, upload)
        assert len(seen) == 2 and seen[0][0] == [0, 3 * MiB] and 24 * MiB <= seen[0][1][1] < 32 * MiB, seen
        assert seen[1] == [[0, 3 * MiB], [8 * MiB, 32 * MiB]]
    assert Upload.objects.get(pk=upload.pk).hole_bytes == MiB
