"""Downloads: the parallel windowed reader and the sparse format (pure, with fakes), then end to
end through the real ASGI server and libvirtd with scripts/vstransfer.py's download()."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import assert_moved_by, virsh, wait_for
from virtstorage.virt import InvalidRequest, OperationFailed, downloads, sparse_format

ROOT = Path(__file__).resolve().parents[2]
KiB = 1024
MiB = 1024 * KiB
BLOCK = 4 * KiB


# -- fakes of libvirt (pure tests) -------------------------------------------------------------

class FakeStream:
    """Serves one range of a 'volume' the way libvirt's (sparse) download stream does.

    content is a list of runs: bytes, or an int for a hole of that many bytes.
    """

    def __init__(self, volume: FakeVolume, offset: int, length: int, sparse: bool) -> None:
        self.volume = volume
        self.items: list[bytes | int] = []
        pos = 0
        for run in volume.content:
            size = run if isinstance(run, int) else len(run)
            lo, hi = max(pos, offset), min(pos + size, offset + length)
            if lo < hi:
                if isinstance(run, int):
                    self.items.append(hi - lo if sparse else bytes(hi - lo))
                else:
                    self.items.append(run[lo - pos:hi - pos])
            pos += size
        self.finished = self.aborted = False
        self.delivered: list[bytes] = []

    def recvFlags(self, nbytes: int, flags: int):  # noqa: N802 - libvirt's name
        if self.volume.fail_after is not None:
            self.volume.fail_after -= 1
            if self.volume.fail_after < 0:
                return -1
        if self.volume.gate is not None:
            self.volume.gate.wait()
        if not self.items:
            return b""
        if isinstance(self.items[0], int):
            return -3
        data = self.items[0]
        self.items[0] = data[nbytes:]
        if not self.items[0]:
            self.items.pop(0)
        self.delivered.append(data[:nbytes])
        return data[:nbytes]

    def recv(self, nbytes: int):
        return self.recvFlags(nbytes, 0)

    def recvHole(self, flags: int) -> int:  # noqa: N802
        return self.items.pop(0)

    def finish(self) -> None:
        self.finished = True

    def abort(self) -> None:
        self.aborted = True


class FakeVolume:
    def __init__(self, content: list[bytes | int], kind: str = "file") -> None:
        self.content = content
        self.length = sum(r if isinstance(r, int) else len(r) for r in content)
        self.kind = kind
        self.lock = threading.Lock()
        self.requests: list[tuple[int, int, int]] = []  # (connection index, offset, length)
        self.streams: list[FakeStream] = []
        self.fail_after: int | None = None
        self.gate: threading.Event | None = None  # recv waits on it when set

    def XMLDesc(self, flags):  # noqa: N802
        return (f"<volume type='{self.kind}'><name>v</name><capacity>{self.length}</capacity>"
                f"<allocation>0</allocation><physical>{self.length}</physical></volume>")


class FakeConnection:
    def __init__(self, volume: FakeVolume, index: int) -> None:
        self.volume, self.index = volume, index
        self.closed = False

    def newStream(self, flags):  # noqa: N802
        return self

    def raw_volume(self, pool_name: str, name: str):
        connection = self

        class BoundVolume:
            def XMLDesc(self, flags):  # noqa: N802
                return connection.volume.XMLDesc(flags)

            def download(self, stream, offset, length, flags):
                import libvirt

                sparse = bool(flags & libvirt.VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM)
                with connection.volume.lock:
                    connection.volume.requests.append((connection.index, offset, length))
                    fake = FakeStream(connection.volume, offset, length, sparse)
                    connection.volume.streams.append(fake)
                connection.stream = fake

        return BoundVolume()

    @property
    def raw(self):
        return self


def _patch_stream_calls(connection: FakeConnection) -> None:
    """newStream returns the connection; route the stream calls to the stream download() made."""
    for name in ("recvFlags", "recv", "recvHole", "finish", "abort"):
        setattr(connection, name, lambda *args, _name=name: getattr(connection.stream, _name)(*args))


class FakeConnect:
    """connect() for VolumeReader: a context manager per connection, recording opens and closes."""

    def __init__(self, volume: FakeVolume) -> None:
        self.volume = volume
        self.connections: list[FakeConnection] = []

    def __call__(self):
        import contextlib

        @contextlib.contextmanager
        def opened():
            connection = FakeConnection(self.volume, len(self.connections))
            _patch_stream_calls(connection)
            self.connections.append(connection)
            try:
                yield connection
            finally:
                connection.closed = True

        return opened()

    @property
    def all_closed(self) -> bool:
        return all(c.closed for c in self.connections)


def _flatten(content: list[bytes | int]) -> bytes:
    return b"".join(bytes(r) if isinstance(r, int) else r for r in content)


def _wait(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


# -- the reader ----------------------------------------------------------------------------------

def _records_of(reader: downloads.VolumeReader) -> list[downloads.Record]:
    records = []
    while (record := reader.next_record()) is not None:
        records.append(record)
    return records


def _rebuilt(records: list[downloads.Record], length: int) -> bytes:
    """The volume the records describe, checking that they tile it in order."""
    position = 0
    out = bytearray()
    for record in records:
        assert record.offset == position
        if isinstance(record, downloads.Hole):
            position += record.length
            out += bytes(record.length)
        else:
            position += len(record.data)
            out += record.data
    assert position == length
    return bytes(out)


def test_windows_are_read_on_every_connection_and_come_out_in_order():
    content: list[bytes | int] = [os.urandom(5 * BLOCK), 7 * BLOCK, os.urandom(3 * BLOCK + 100), 2 * BLOCK,
                                  os.urandom(50)]
    volume = FakeVolume(content)
    connect = FakeConnect(volume)
    reader = downloads.VolumeReader(connect, "p", "v", sparse=True, streams=3, window=2 * BLOCK)
    records = _records_of(reader)
    reader.close()
    assert len(connect.connections) == 3 and connect.all_closed
    assert {index for index, _, _ in volume.requests} == {0, 1, 2}
    # The first ranges are a window each, in order, one per connection.
    assert sorted(r[1:] for r in volume.requests[:3]) == [(i * 2 * BLOCK, 2 * BLOCK) for i in range(3)]
    assert all((s.finished and not s.aborted) or (s.aborted and not s.finished) for s in volume.streams)
    # Records tile the volume in order; holes are records of their own, never bytes.
    assert _rebuilt(records, volume.length) == _flatten(content)
    assert reader.done == volume.length and reader.data_bytes == volume.length - 9 * BLOCK
    assert any(isinstance(r, downloads.Hole) for r in records)


def test_ranges_of_holes_grow_and_data_is_read_a_window_at_a_time(monkeypatch):
    """A long hole costs a few round trips, not one per window; no part holds much more than a window."""
    monkeypatch.setattr(downloads, "RECV_BYTES", BLOCK)  # libvirt's messages, scaled down with the window
    data = os.urandom(40 * BLOCK)
    content: list[bytes | int] = [4000 * BLOCK, data, 3000 * BLOCK, data[:BLOCK], 5 * BLOCK]
    volume = FakeVolume(content)
    reader = downloads.VolumeReader(FakeConnect(volume), "p", "v", sparse=True, streams=2, window=4 * BLOCK)
    records = _records_of(reader)
    reader.close()
    assert _rebuilt(records, volume.length) == _flatten(content)
    # 7046 blocks is 1762 windows; the data alone takes 11 of them.
    assert len(volume.requests) < 60, volume.requests
    delivered = [sum(len(r) for r in s.delivered) for s in volume.streams]
    assert max(delivered) <= 4 * BLOCK + BLOCK
    assert any(s.aborted for s in volume.streams)  # a long range ran into data and was cut


def test_read_gives_the_volume_with_holes_as_zeros_in_bounded_blocks():
    content: list[bytes | int] = [b"a" * BLOCK, 2 * BLOCK, b"b" * 2 * BLOCK, BLOCK, b"c" * 100]
    volume = FakeVolume(content)
    connect = FakeConnect(volume)
    reader = downloads.VolumeReader(connect, "p", "v", sparse=True, streams=2, window=3 * BLOCK)
    out = b""
    while block := reader.read(2 * BLOCK):
        assert len(block) <= 2 * BLOCK
        out += block
    assert out == _flatten(content) and reader.done == volume.length
    assert reader.read() == b""
    reader.close()
    assert connect.all_closed


def test_without_sparse_the_holes_come_as_data():
    content: list[bytes | int] = [b"x" * BLOCK, 3 * BLOCK]
    volume = FakeVolume(content)
    reader = downloads.VolumeReader(FakeConnect(volume), "p", "v", streams=2, window=BLOCK)
    records = []
    while (record := reader.next_record()) is not None:
        records.append(record)
    reader.close()
    assert all(isinstance(r, downloads.Data) for r in records)
    assert b"".join(r.data for r in records) == _flatten(content)


def test_at_most_one_window_per_stream_is_buffered_ahead_of_the_consumer():
    """libvirt streams have no flow control: a window is asked for only when there is room for it."""
    volume = FakeVolume([os.urandom(40 * BLOCK)])
    reader = downloads.VolumeReader(FakeConnect(volume), "p", "v", streams=4, window=2 * BLOCK)
    _wait(lambda: len(volume.requests) == 4)
    time.sleep(0.1)  # the workers have had time to run ahead, had they been free to
    assert len(volume.requests) == 4
    # Using up one window lets its worker ask for the next one, and only that.
    taken = 0
    while taken < 2 * BLOCK:
        taken += len(reader.next_record().data)
    assert len(volume.requests) == 4
    reader.next_record()  # the first record of window 1: window 0 is used up
    _wait(lambda: len(volume.requests) == 5)
    time.sleep(0.1)
    assert len(volume.requests) == 5 and volume.requests[-1][:2] == (0, 8 * BLOCK)
    reader.close()


def test_close_before_the_end_aborts_the_running_streams_and_closes_every_connection():
    volume = FakeVolume([os.urandom(64 * BLOCK)])
    volume.gate = threading.Event()  # the streams hang in recv until the gate opens
    connect = FakeConnect(volume)
    reader = downloads.VolumeReader(connect, "p", "v", streams=3, window=4 * BLOCK)
    _wait(lambda: len(volume.streams) == 3)
    closer = threading.Thread(target=reader.close)
    closer.start()
    time.sleep(0.05)
    assert not connect.all_closed  # a connection is not closed under a thread still using it
    volume.gate.set()
    closer.join(5)
    assert not closer.is_alive()
    assert connect.all_closed and len(connect.connections) == 3
    assert all(s.aborted and not s.finished for s in volume.streams)
    assert len(volume.requests) == 3
    with pytest.raises(downloads.ReaderClosed):  # a stopped download never passes for a whole one
        reader.read()
    reader.close()  # twice is harmless


def test_close_of_a_reader_waiting_for_its_consumer_ends_its_threads():
    volume = FakeVolume([os.urandom(64 * BLOCK)])
    reader = downloads.VolumeReader(FakeConnect(volume), "p", "v", streams=2, window=4 * BLOCK)
    _wait(lambda: all(s.finished for s in volume.streams) and len(volume.streams) == 2)
    reader.close()
    assert not any(w.thread.is_alive() for w in reader._workers)
    assert len(volume.requests) == 2


def test_a_libvirt_error_in_a_worker_reaches_the_consumer():
    volume = FakeVolume([os.urandom(16 * BLOCK)])
    volume.fail_after = 6
    connect = FakeConnect(volume)
    reader = downloads.VolumeReader(connect, "p", "v", streams=2, window=4 * BLOCK)
    with pytest.raises(OperationFailed, match="returned -1"):
        while reader.read(BLOCK):
            pass
    reader.close()
    assert connect.all_closed
    assert any(s.aborted for s in volume.streams)


def test_a_window_shorter_than_asked_is_an_error_not_a_short_volume():
    volume = FakeVolume([os.urandom(8 * BLOCK)])
    volume.content[0] = volume.content[0][:6 * BLOCK]  # the volume shrank after libvirt described it
    reader = downloads.VolumeReader(FakeConnect(volume), "p", "v", streams=2, window=4 * BLOCK)
    with pytest.raises(OperationFailed, match="not"):
        while reader.read():
            pass
    reader.close()


def test_a_refused_volume_closes_the_connection_it_opened():
    volume = FakeVolume([b"x" * BLOCK], kind="dir")
    connect = FakeConnect(volume)
    with pytest.raises(InvalidRequest):
        downloads.VolumeReader(connect, "p", "v")
    assert len(connect.connections) == 1 and connect.all_closed


def test_a_small_volume_opens_only_the_connections_it_needs():
    volume = FakeVolume([b"x" * 100])
    connect = FakeConnect(volume)
    reader = downloads.VolumeReader(connect, "p", "v", streams=4, window=BLOCK)
    assert reader.read() == b"x" * 100
    reader.close()
    assert len(connect.connections) == 1 and connect.all_closed


# -- the sparse format ---------------------------------------------------------------------------

runs = st.lists(st.one_of(st.binary(min_size=1, max_size=3 * BLOCK), st.integers(1, 5 * BLOCK)), max_size=8)


def _encode(content: list[bytes | int], window: int, streams: int, limit: int) -> tuple[bytes, downloads.VolumeReader]:
    volume = FakeVolume(content)
    reader = downloads.VolumeReader(FakeConnect(volume), "p", "v", sparse=True, streams=streams, window=window)
    encoder = downloads.SparseEncoder(reader)
    out = bytearray()
    while block := encoder.read(limit):
        out += block
    reader.close()
    return bytes(out), reader


@settings(max_examples=60, deadline=None)
@given(runs, st.integers(1, 4 * BLOCK), st.integers(1, 4), st.integers(1, 3 * BLOCK))
def test_sparse_format_round_trip(content, window, streams, limit):
    encoded, reader = _encode(content, window, streams, limit)
    frames = list(sparse_format.decode(io.BytesIO(encoded)))
    end = frames[-1]
    assert end.kind == sparse_format.END and end.offset == reader.length == reader.done
    rebuilt = bytearray(end.offset)
    previous = None
    for frame in frames[:-1]:
        if frame.kind == sparse_format.DATA:
            rebuilt[frame.offset:frame.offset + frame.length] = frame.data
        # Neighbouring holes are one frame, unless one read() would otherwise cover too much.
        if limit * downloads.HOLE_SPAN_PER_READ >= reader.length:
            assert not (previous is not None and previous.kind == frame.kind == sparse_format.HOLE)
        previous = frame
    assert bytes(rebuilt) == _flatten(content)
    # Only the data crossed: the holes cost a frame header each.
    data_bytes = sum(len(r) for r in content if isinstance(r, bytes))
    assert end.length == data_bytes
    assert len(encoded) <= len(sparse_format.MAGIC) + data_bytes + sparse_format.HEADER.size * (len(frames) + 1)


@settings(max_examples=30, deadline=None)
@given(runs, st.data())
def test_a_cut_sparse_stream_is_refused_wherever_it_is_cut(content, data):
    encoded, _ = _encode(content, 2 * BLOCK, 2, BLOCK)
    cut = data.draw(st.integers(0, len(encoded) - 1))
    with pytest.raises(sparse_format.FormatError):
        list(sparse_format.decode(io.BytesIO(encoded[:cut])))
    with pytest.raises(sparse_format.FormatError):
        list(sparse_format.decode(io.BytesIO(encoded + b"x")))


def test_the_script_carries_the_same_format_constants():
    vstransfer = _load_vstransfer()
    assert vstransfer.SPARSE_MAGIC == sparse_format.MAGIC
    assert vstransfer.SPARSE_MIME_TYPE == sparse_format.MIME_TYPE
    assert vstransfer.SPARSE_HEADER_BYTES == sparse_format.HEADER.size
    assert (vstransfer.SPARSE_DATA, vstransfer.SPARSE_HOLE, vstransfer.SPARSE_END) == (
        sparse_format.DATA, sparse_format.HOLE, sparse_format.END)


# -- end to end ----------------------------------------------------------------------------------

def _load_vstransfer():
    spec = importlib.util.spec_from_file_location("vstransfer", ROOT / "scripts" / "vstransfer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(MiB):
            digest.update(block)
    return digest.hexdigest()


def disk_size(path: Path) -> int:
    return os.stat(path).st_blocks * 512


@pytest.fixture
def volumes(synced):
    """A dense and a sparse volume written into the scratch pool behind libvirt's back, then synced."""
    from inventory.sync import sync_host
    from volumes.models import Volume

    pool, scratch = synced
    dense = scratch.path / "dense.img"
    dense.write_bytes(os.urandom(37 * MiB + 5 * BLOCK))  # several windows per stream, a short last one
    sparse = scratch.path / "sparse.img"
    with open(sparse, "wb") as f:
        f.truncate(200 * MiB + 3 * BLOCK)  # ends with a hole, not on a window boundary
        for offset, length in [(0, MiB), (9 * MiB - BLOCK, 2 * MiB), (100 * MiB + 5 * BLOCK, 12 * MiB + 3 * BLOCK)]:
            f.seek(offset)
            f.write(os.urandom(length))
    virsh("pool-refresh", scratch.name)
    sync_host(pool.host, pool_names=[pool.name])
    return {name: (Volume.objects.get(pool=pool, name=name), scratch.path / name)
            for name in ("dense.img", "sparse.img")}


@pytest.fixture
def session(asgi_server, member):
    password = secrets.token_urlsafe(12)
    member.set_password(password)
    member.save()
    vstransfer = _load_vstransfer()
    session = vstransfer.Session(asgi_server.url)
    session.login(member.username, password)
    return vstransfer, session


def _finished_job(job_id):
    from jobs.models import Job

    return wait_for(lambda: Job.objects.exclude(state__in=Job.ACTIVE_STATES).filter(pk=job_id).first(),
                    timeout=15, message=f"download job {job_id} to end")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("sparse", [False, True], ids=["plain", "sparse-format"])
def test_vstransfer_downloads_dense_and_sparse_volumes_exactly(session, volumes, tmp_path, sparse, io_path):
    from jobs.models import Job

    vstransfer, http = session
    for name, (volume, volume_file) in volumes.items():
        out = tmp_path / f"{name}.out"
        out.write_bytes(b"old contents that must not survive" * 1000)
        result = vstransfer.download(http, volume.pk, str(out), sparse=sparse, quiet=True)
        size = volume_file.stat().st_size
        assert result["bytes"] == size and out.stat().st_size == size and result["seconds"] > 0
        assert sha256_file(out) == sha256_file(volume_file), name
        assert str(out) in result["message"]
        if sparse:
            # Holes stayed holes: the copy takes the disk the volume takes, and only data was sent.
            assert abs(disk_size(out) - disk_size(volume_file)) <= MiB, name
            assert abs(result["data_bytes"] - disk_size(volume_file)) <= MiB, name
        job = _finished_job(int(result["job"]))
        assert job.kind == "download" and job.state == Job.State.SUCCEEDED, job.error
        assert job.progress_done == size
        assert_moved_by(job, io_path)
        assert job.params == ({"sparse": True, "format": "sparse"} if sparse else {"sparse": False})
    _, sparse_file = volumes["sparse.img"]
    if sparse:
        assert disk_size(tmp_path / "sparse.img.out") < 20 * MiB  # 15 MiB of data in 200 MiB
    else:
        assert disk_size(tmp_path / "sparse.img.out") >= 200 * MiB  # the plain stream has no holes


@pytest.mark.django_db(transaction=True)
def test_the_sparse_format_sends_only_the_data(session, volumes, asgi_server, member):
    """On the wire: the magic, the frames in order, the end record; about the data's size in all."""
    import httpx

    vstransfer, http = session
    volume, volume_file = volumes["sparse.img"]
    cookies = {k: v for k, v in http.cookies.items()}
    with httpx.stream("GET", f"{asgi_server.url}/volumes/{volume.pk}/download", params={"format": "sparse"},
                      cookies=cookies, timeout=60) as r:
        assert r.status_code == 200
        assert r.headers["content-type"] == sparse_format.MIME_TYPE
        assert "content-length" not in r.headers and int(r.headers["x-volume-size"]) == volume_file.stat().st_size
        body = r.read()
    frames = list(sparse_format.decode(io.BytesIO(body)))
    data = sum(f.length for f in frames if f.kind == sparse_format.DATA)
    assert 15 * MiB <= data <= disk_size(volume_file) + MiB and len(body) < data + 64 * KiB
    assert frames[-1].offset == volume_file.stat().st_size
    _finished_job(int(r.headers["x-job-id"]))


@pytest.mark.django_db(transaction=True)
def test_a_cut_sparse_download_is_refused_by_the_client(session, volumes, tmp_path):
    """A server that stops before the end record: the client says so instead of keeping a short file."""
    vstransfer, http = session
    volume, volume_file = volumes["sparse.img"]
    # The real server's answer, cut before its last frame, replayed by a fake server.
    import httpx

    with httpx.stream("GET", f"{http.scheme}://{http.netloc}/volumes/{volume.pk}/download",
                      params={"format": "sparse"}, cookies=dict(http.cookies), timeout=60) as r:
        body = r.read()
    _finished_job(int(r.headers["x-job-id"]))
    assert body[-sparse_format.HEADER.size:][:1] == sparse_format.END
    cuts = [(body[:-sparse_format.HEADER.size], True),  # a well-ended HTTP body without the end record
            (body[:len(body) // 2], False)]  # the connection dropped in the middle of a data frame
    for cut_body, terminated in cuts:
        with _replaying_server(cut_body, sparse_format.MIME_TYPE, terminated=terminated) as url:
            cut_session = vstransfer.Session(url)
            with pytest.raises(vstransfer.TransferError, match="cut off"):
                vstransfer.download(cut_session, volume.pk, str(tmp_path / "cut.out"), sparse=True, quiet=True)
    # A plain download cut short of its Content-Length is refused too.
    with _replaying_server(b"x" * 1000, "application/octet-stream", content_length=5000) as url:
        with pytest.raises(vstransfer.TransferError, match="cut off"):
            vstransfer.download(vstransfer.Session(url), volume.pk, str(tmp_path / "cut.out"), quiet=True)


class _replaying_server:  # noqa: N801 - used as a context manager
    """A one-request HTTP server that sends body (chunked, or with a longer Content-Length) and hangs up."""

    def __init__(self, body: bytes, content_type: str, content_length: int | None = None,
                 terminated: bool = False) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.body, self.content_type, self.content_length = body, content_type, content_length
        self.terminated = terminated  # end the chunked body properly (the last, empty chunk)
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(65536)
            if self.content_length is not None:
                head = f"Content-Length: {self.content_length}\r\n"
                payload = self.body
            else:
                head = "Transfer-Encoding: chunked\r\n"
                payload = b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n"
                                   for p in (self.body[i:i + 65536] for i in range(0, len(self.body), 65536)))
                payload += b"0\r\n\r\n" if self.terminated else b""
            conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Type: {self.content_type}\r\n{head}\r\n".encode() + payload)

    def __enter__(self) -> str:
        self.thread.start()
        host, port = self.listener.getsockname()
        return f"http://{host}:{port}"

    def __exit__(self, *exc) -> None:
        self.thread.join(10)
        self.listener.close()


@pytest.mark.django_db(transaction=True)
@contextlib.contextmanager
def _raw_download(asgi_server, session, path: str) -> Iterator[tuple[socket.socket, int]]:
    """A GET on a bare socket with a small receive buffer, left unread: (socket, the job's id) once the
    headers came; the connection closes when the block ends."""
    _, http = session
    server = urlsplit(asgi_server.url)
    cookies = "; ".join(f"{k}={v}" for k, v in http.cookies.items())
    with socket.create_connection((server.hostname, server.port)) as raw:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        raw.sendall(f"GET {path} HTTP/1.1\r\nHost: {server.netloc}\r\nCookie: {cookies}\r\n\r\n".encode())
        head = raw.recv(4096)
        assert head.startswith(b"HTTP/1.1 200"), head[:200]
        yield raw, int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                            if line.lower().startswith(b"x-job-id:")))


def test_a_client_leaving_a_sparse_download_fails_its_job(session, volumes, asgi_server):
    from jobs.models import Job

    volume, _ = volumes["dense.img"]
    with _raw_download(asgi_server, session, f"/volumes/{volume.pk}/download?format=sparse") as (_, job_id):
        pass  # the headers came: hang up
    job = wait_for(lambda: Job.objects.filter(pk=job_id).exclude(state=Job.State.RUNNING).first(), timeout=30,
                   message="the download job to end")
    assert job.state == Job.State.FAILED and "client went away" in job.error


def test_a_client_that_stops_reading_is_let_go(session, volumes, asgi_server, io_path):
    """Whether or not the server tells the response, a client that takes nothing is given up on
    after DOWNLOAD_IDLE_SECONDS (5 s in tests): the job fails and its libvirt streams close."""
    from jobs.models import Job

    volume, _ = volumes["sparse.img"]  # 200 MiB of mostly zeros: far more than the socket buffers hold
    with _raw_download(asgi_server, session, f"/volumes/{volume.pk}/download?sparse=1") as (_, job_id):
        started = time.monotonic()  # connected, reading nothing more
        job = wait_for(lambda: Job.objects.filter(pk=job_id).exclude(state=Job.State.RUNNING).first(),
                       timeout=40, message="the stalled download to be given up")
        assert time.monotonic() - started < 30
    assert job.state == Job.State.FAILED and "stopped reading" in job.error, job.error
    assert (job.progress_done or 0) < 200 * MiB
