"""Pure pieces of transfers: the data/hole segmenter, received-range bookkeeping, stream aborts."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from virtstorage.virt import streams
from volumes.models import merge_range, missing_ranges

BLOCK = 4096  # file systems report holes in whole blocks


def test_segments_follow_data_and_holes(tmp_path):
    path = tmp_path / "sparse.img"
    with open(path, "wb") as f:
        f.truncate(64 * BLOCK)
        f.seek(4 * BLOCK)
        f.write(b"x" * 2 * BLOCK)
        f.seek(40 * BLOCK)
        f.write(b"y" * BLOCK)
    fd = os.open(path, os.O_RDONLY)
    try:
        found = [(s.offset // BLOCK, s.length // BLOCK, s.data) for s in streams.segments(fd, 64 * BLOCK)]
        assert found == [(0, 4, False), (4, 2, True), (6, 34, False), (40, 1, True), (41, 23, False)]
        # Bounded by length, and a file shorter than length ends with a hole.
        assert [(s.offset, s.length, s.data) for s in streams.segments(fd, 5 * BLOCK)] == [
            (0, 4 * BLOCK, False), (4 * BLOCK, BLOCK, True)]
        tail = list(streams.segments(fd, 70 * BLOCK))[-1]
        assert (tail.offset, tail.end, tail.data) == (41 * BLOCK, 70 * BLOCK, False)
    finally:
        os.close(fd)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 63), st.integers(1, 8)), max_size=6))
def test_segments_cover_the_file_exactly_and_data_holds_every_written_byte(tmp_path_factory, writes):
    path = tmp_path_factory.mktemp("seg") / "f.img"
    with open(path, "wb") as f:
        f.truncate(64 * BLOCK)
        for block, count in writes:
            f.seek(block * BLOCK)
            f.write(b"\x01" * count * BLOCK)
    written = {b for block, count in writes for b in range(block, block + count)}
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        segs = list(streams.segments(fd, size))
    finally:
        os.close(fd)
    assert segs[0].offset == 0 and segs[-1].end == size
    assert all(a.end == b.offset and a.data != b.data for a, b in zip(segs, segs[1:], strict=False))
    in_data = {b for s in segs if s.data for b in range(s.offset // BLOCK, s.end // BLOCK)}
    assert written <= in_data


@given(st.lists(st.tuples(st.integers(0, 200), st.integers(0, 50)), max_size=20))
def test_merged_ranges_are_the_union_and_missing_is_the_rest(pairs):
    ranges: list[list[int]] = []
    covered: set[int] = set()
    for start, length in pairs:
        ranges = merge_range(ranges, start, start + length)
        covered |= set(range(start, start + length))
    assert all(a[1] < b[0] for a, b in zip(ranges, ranges[1:], strict=False))  # disjoint, not touching
    assert {i for lo, hi in ranges for i in range(lo, hi)} == covered
    size = 220
    missing = missing_ranges(ranges, size)
    assert {i for lo, hi in missing for i in range(lo, hi)} == set(range(size)) - covered


class FakeStream:
    def __init__(self) -> None:
        self.sent: list[int] = []
        self.holes: list[int] = []
        self.aborted = self.finished = False

    def send(self, data: bytes) -> int:
        self.sent.append(len(data))
        return len(data)

    def sendHole(self, length: int, flags: int) -> None:  # noqa: N802 - libvirt's name
        self.holes.append(length)

    def abort(self) -> None:
        self.aborted = True

    def finish(self) -> None:
        self.finished = True


class FakeVolume:
    def upload(self, stream, offset, length, flags) -> None:
        self.args = (offset, length, flags)


class FakeConnection:
    def __init__(self) -> None:
        self.stream = FakeStream()
        self.volume = FakeVolume()

    def storagePoolLookupByName(self, name):  # noqa: N802 - libvirt's name
        return self

    def storageVolLookupByName(self, name):  # noqa: N802
        return self.volume

    def newStream(self, flags):  # noqa: N802
        return self.stream


class FakeHost:
    """Stands in for LibvirtHost: the same lookups, on the fake connection."""

    def __init__(self) -> None:
        self.raw = FakeConnection()

    def raw_pool(self, name: str):
        return self.raw.storagePoolLookupByName(name)

    def raw_volume(self, pool_name: str, name: str):
        return self.raw_pool(pool_name).storageVolLookupByName(name)


def _sparse(tmp_path, size: int, data_at: list[int]) -> int:
    path = tmp_path / "src.img"
    with open(path, "wb") as f:
        f.truncate(size)
        for offset in data_at:
            f.seek(offset)
            f.write(b"z" * BLOCK)
    return os.open(path, os.O_RDONLY)


def test_upload_sends_data_and_holes_with_the_exact_length(tmp_path):
    import libvirt

    host = FakeHost()
    fd = _sparse(tmp_path, 32 * BLOCK, [0, 16 * BLOCK])
    done: list[int] = []
    streams.upload_file(host, "p", "v", fd, 32 * BLOCK, done.append, chunk=BLOCK)
    os.close(fd)
    stream = host.raw.stream
    assert host.raw.volume.args == (0, 32 * BLOCK, libvirt.VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM)
    assert sum(stream.sent) == 2 * BLOCK and sum(stream.holes) == 30 * BLOCK
    assert stream.finished and not stream.aborted
    assert done == sorted(done) and done[-1] == 32 * BLOCK


def test_an_error_in_progress_aborts_the_stream(tmp_path):
    host = FakeHost()
    fd = _sparse(tmp_path, 8 * BLOCK, [0, BLOCK, 2 * BLOCK])

    def cancel(done: int) -> None:
        raise KeyboardInterrupt("cancelled")

    with pytest.raises(KeyboardInterrupt):
        streams.upload_file(host, "p", "v", fd, 8 * BLOCK, cancel, chunk=BLOCK)
    os.close(fd)
    assert host.raw.stream.aborted and not host.raw.stream.finished


def test_a_file_shorter_than_announced_is_refused_before_libvirt_sees_it(tmp_path):
    host = FakeHost()
    fd = _sparse(tmp_path, 4 * BLOCK, [0])
    with pytest.raises(streams.TruncatedSource):
        streams.upload_file(host, "p", "v", fd, 5 * BLOCK)
    os.close(fd)
    assert not hasattr(host.raw.volume, "args")


def test_data_goes_in_messages_of_libvirts_own_size(tmp_path):
    """libvirtd takes a larger send as one message and pays for it (see streams.CHUNK_BYTES): by default a
    dense run goes in sends of 256 KiB, the last one shorter, in order and nothing left out."""
    host = FakeHost()
    path = tmp_path / "dense.img"
    length = 3 * streams.CHUNK_BYTES + 5 * BLOCK
    path.write_bytes(b"d" * length)
    fd = os.open(path, os.O_RDONLY)
    try:
        streams.upload_file(host, "p", "v", fd, length)
    finally:
        os.close(fd)
    assert streams.CHUNK_BYTES == 256 * 1024
    assert host.raw.stream.sent == [streams.CHUNK_BYTES] * 3 + [5 * BLOCK]
