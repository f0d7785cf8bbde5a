"""How often a chunk's bytes are recorded as received while it arrives (staging.RecordPace)."""

from __future__ import annotations

import os
import socket
import time
from urllib.parse import urlsplit

from tests.conftest import wait_for
from tests.volumes.conftest import Api
from volumes import staging

MiB = 1024 * 1024


def test_a_chunk_is_recorded_every_16_mib_but_not_more_than_four_times_a_second(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(staging.time, "monotonic", lambda: clock[0])
    pace = staging.RecordPace(offset=8 * MiB)
    end = 8 * MiB + 256 * MiB
    assert not pace.due(8 * MiB + 16 * MiB, end)  # 16 MiB, but at once: a fast client's bytes wait
    clock[0] += staging.RECORD_SECONDS
    assert not pace.due(8 * MiB + 15 * MiB, end)  # time enough, bytes not
    assert pace.due(8 * MiB + 16 * MiB, end)
    pace.done(8 * MiB + 16 * MiB)
    assert pace.recorded == 24 * MiB
    clock[0] += 10
    assert not pace.due(end, end)  # the chunk's end is the view's to record, with the whole chunk
    assert pace.due(end - MiB, end)


def test_a_slow_chunk_is_recorded_while_it_arrives(asgi_server, member, synced):
    """A client that sends half a large chunk and pauses: the half is recorded before the chunk ends
    (what a streaming job follows), and the whole chunk at its end."""
    pool, _ = synced
    api = Api(asgi_server.url, member)
    size = 40 * MiB
    upload = api.create(pool=pool.pk, volume="paced.img", mode="new", size=size).json()
    server = urlsplit(asgi_server.url)
    cookies = "; ".join(f"{k}={v}" for k, v in api.http.cookies.items())
    data = os.urandom(size)
    with socket.create_connection((server.hostname, server.port)) as raw:
        raw.sendall((f"PUT {upload['chunks_url']}?offset=0 HTTP/1.1\r\nHost: {server.netloc}\r\nCookie: {cookies}\r\n"
                     f"X-CSRFToken: {api.http.headers['X-CSRFToken']}\r\nContent-Length: {size}\r\n\r\n").encode()
                    + data[:20 * MiB])
        time.sleep(staging.RECORD_SECONDS)
        raw.sendall(data[20 * MiB:21 * MiB])  # the block after the pause finds the time rule met
        received = wait_for(lambda: api.http.get(upload["url"]).json()["received"] or None, timeout=10,
                            message="the first half to be recorded while the chunk is open")
        assert received[0][0] == 0 and 16 * MiB <= received[0][1] < size, received
        raw.sendall(data[21 * MiB:])
        answer = raw.makefile("rb").readline()
    assert answer.startswith(b"HTTP/1.1 200"), answer
    assert api.http.get(upload["url"]).json()["received"] == [[0, size]]
