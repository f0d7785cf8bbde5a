"""Direct file I/O on volumes (virtstorage/virt/localfile.py): the file opened must be the one
libvirt names, and both ways of moving bytes (the file itself, libvirt's streams) must give the
same volume, byte for byte and hole for hole. Pure checks use a fake libvirt; the rest a real one."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tests.conftest import LIBVIRT_URI, virsh
from tests.volumes.test_upload_download import disk_usage_bytes, make_sparse_file, sha256_file
from virtstorage.virt import downloads, localfile, open_host, streams

MiB = 1024 * 1024


# -- pure: which file may be opened -------------------------------------------------------------

@pytest.mark.parametrize("uri, local", [
    ("qemu:///system", True), ("qemu:///session", True), ("qemu+unix:///system", True),
    ("qemu+unix:///system?socket=/run/other.sock", True),
    ("qemu+ssh://root@kvm1/system", False), ("qemu+tls://kvm2/system", False), ("qemu+tcp://h:16509/system", False),
    ("qemu+ssh:///system", False), ("qemu://kvm3/system", False),
])
def test_only_a_daemon_of_this_machine_is_local(uri, local):
    assert localfile.is_local_uri(uri) is local


class FakeVolume:
    def __init__(self, xml: str) -> None:
        self.xml = xml

    def XMLDesc(self, flags: int) -> str:  # noqa: N802 - libvirt's name
        return self.xml


class FakeHost:
    """What open_volume_file asks of a LibvirtHost: its URI and one volume's XML."""

    def __init__(self, uri: str, xml: str) -> None:
        self.uri, self.xml = uri, xml

    def raw_volume(self, pool_name: str, name: str) -> FakeVolume:
        return FakeVolume(self.xml)


def _xml(path: Path, *, ctime_ns: int, size: int, kind: str = "file") -> str:
    seconds, nanos = divmod(ctime_ns, 1_000_000_000)
    return (f"<volume type='{kind}'><name>v</name><key>{path}</key><capacity>{size}</capacity>"
            f"<allocation>0</allocation><physical>{size}</physical><target><path>{path}</path>"
            f"<format type='raw'/><timestamps><ctime>{seconds}.{nanos:09d}</ctime></timestamps></target></volume>")


def test_a_file_is_opened_only_when_libvirt_vouches_for_it(tmp_path):
    path = tmp_path / "v.img"
    path.write_bytes(b"x" * 4096)
    st = path.stat()
    link = tmp_path / "link.img"
    link.symlink_to(path)
    opened = localfile.open_volume_file(FakeHost("qemu:///system", _xml(path, ctime_ns=st.st_ctime_ns, size=4096)),
                                        "p", "v")
    assert opened is not None and opened.size == 4096 and os.pread(opened.fd, 4, 0) == b"xxxx"
    opened.close()
    opened.close()  # twice is harmless
    refused = {
        "another ctime (another file at that path)": _xml(path, ctime_ns=st.st_ctime_ns + 1, size=4096),
        "another size": _xml(path, ctime_ns=st.st_ctime_ns, size=8192),
        "no timestamps reported": _xml(path, ctime_ns=st.st_ctime_ns, size=4096).replace(
            "<timestamps>", "<x>").replace("</timestamps>", "</x>"),
        "a block volume": _xml(path, ctime_ns=st.st_ctime_ns, size=4096, kind="block"),
        "a missing file": _xml(tmp_path / "gone.img", ctime_ns=st.st_ctime_ns, size=4096),
        "a directory": _xml(tmp_path, ctime_ns=tmp_path.stat().st_ctime_ns, size=tmp_path.stat().st_size),
        "a symlink": _xml(link, ctime_ns=st.st_ctime_ns, size=4096),
    }
    for why, xml in refused.items():
        assert localfile.open_volume_file(FakeHost("qemu:///system", xml), "p", "v") is None, why
    good = _xml(path, ctime_ns=st.st_ctime_ns, size=4096)
    assert localfile.open_volume_file(FakeHost("qemu+ssh://kvm1/system", good), "p", "v") is None


def test_a_fifo_at_the_path_is_refused_without_hanging(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    xml = _xml(fifo, ctime_ns=fifo.stat().st_ctime_ns, size=0)
    assert localfile.open_volume_file(FakeHost("qemu:///system", xml), "p", "v") is None


def test_copy_range_copies_in_pieces_and_refuses_a_short_source(tmp_path):
    source = tmp_path / "s"
    source.write_bytes(os.urandom(3 * localfile.COPY_BYTES // 2))
    target = tmp_path / "t"
    target.touch()
    done: list[int] = []
    src, dst = os.open(source, os.O_RDONLY), os.open(target, os.O_WRONLY)
    try:
        localfile.copy_range(src, dst, 100, source.stat().st_size - 100, done.append)
        with pytest.raises(localfile.TruncatedSource):
            localfile.copy_range(src, dst, source.stat().st_size - 10, 20)
    finally:
        os.close(src)
        os.close(dst)
    assert done == [100 + localfile.COPY_BYTES, source.stat().st_size]
    assert target.read_bytes()[100:source.stat().st_size] == source.read_bytes()[100:]
    assert target.read_bytes()[:100] == bytes(100)


# -- real libvirtd: both ways give the same volume -----------------------------------------------

def test_uploads_direct_and_through_libvirt_write_the_same_thin_volume(scratch_pool, tmp_path):
    size = 40 * MiB + 4096
    src = make_sparse_file(tmp_path / "src.img", size, [(0, MiB), (17 * MiB + 4096, 3 * MiB), (size - 4096, 4096)])
    fd = os.open(src, os.O_RDONLY)
    try:
        with open_host(LIBVIRT_URI, shared=False) as lv:
            kinds = {}
            for name, direct in (("direct.img", True), ("streamed.img", False)):
                streams.prepare_volume(lv, scratch_pool.name, name, replace=False)
                writer = streams.open_writer(lv, scratch_pool.name, name, size, direct=direct)
                kinds[name] = type(writer)
                streams.send_file(writer, fd, size)
            assert kinds == {"direct.img": streams.FileWriter, "streamed.img": streams.StreamWriter}
            # libvirt sees what was written behind it (the pool was refreshed): size and allocation.
            info = lv.volume(scratch_pool.name, "direct.img")
            assert info.capacity == size and info.allocation < 6 * MiB
            # A volume that holds data is never written in place: its old bytes would show through holes.
            virsh("vol-upload", "--pool", scratch_pool.name, "streamed.img", str(src))
            writer = streams.open_writer(lv, scratch_pool.name, "streamed.img", size, direct=True)
            assert isinstance(writer, streams.StreamWriter)
            writer.abort()
    finally:
        os.close(fd)
    direct, streamed = scratch_pool.path / "direct.img", scratch_pool.path / "streamed.img"
    assert sha256_file(direct) == sha256_file(streamed) == sha256_file(src)
    assert direct.stat().st_size == size and disk_usage_bytes(direct) == disk_usage_bytes(src)


def test_a_cancelled_direct_upload_stops_and_closes_the_file(scratch_pool, tmp_path):
    src = make_sparse_file(tmp_path / "src.img", 64 * MiB, [(0, 64 * MiB)])
    fd = os.open(src, os.O_RDONLY)
    try:
        with open_host(LIBVIRT_URI, shared=False) as lv:
            streams.prepare_volume(lv, scratch_pool.name, "c.img", replace=False)
            writer = streams.open_writer(lv, scratch_pool.name, "c.img", 64 * MiB, direct=True)
            assert isinstance(writer, streams.FileWriter)

            def cancel(done: int) -> None:
                if done >= 16 * MiB:
                    raise KeyboardInterrupt("cancelled")

            with pytest.raises(KeyboardInterrupt):
                streams.send_file(writer, fd, 64 * MiB, cancel)
            assert writer.target.fd == -1
    finally:
        os.close(fd)
    assert (scratch_pool.path / "c.img").stat().st_size < 64 * MiB  # stopped early, not finished


@pytest.mark.parametrize("sparse", [False, True])
def test_the_file_reader_gives_what_libvirts_streams_give(scratch_pool, tmp_path, sparse):
    size = 24 * MiB + 512
    src = make_sparse_file(tmp_path / "src.img", size, [(4096, 2 * MiB), (10 * MiB, MiB + 7), (size - 512, 512)])
    virsh("vol-create-as", scratch_pool.name, "r.img", str(size), "--allocation", "0", "--format", "raw")
    virsh("vol-upload", "--sparse", "--pool", scratch_pool.name, "r.img", str(src))
    virsh("vol-resize", "--pool", scratch_pool.name, "r.img", str(size))

    def connect():
        return open_host(LIBVIRT_URI, shared=False)

    outputs = {}
    for direct in (True, False):
        reader = downloads.open_reader(connect, scratch_pool.name, "r.img", sparse=sparse, direct=direct)
        try:
            assert isinstance(reader, downloads.LocalVolumeReader) is direct
            assert reader.length == size
            blocks = []
            while block := reader.read(MiB):
                assert len(block) <= MiB
                blocks.append(block)
            outputs[direct] = (hashlib.sha256(b"".join(blocks)).hexdigest(), reader.done)
            if sparse or direct:  # holes were found, not read: only the data counts as data
                assert reader.data_bytes < 5 * MiB
        finally:
            reader.close()
    assert outputs[True] == outputs[False] == (sha256_file(src), size)


def test_a_closed_file_reader_refuses_to_go_on(scratch_pool):
    virsh("vol-create-as", scratch_pool.name, "c.img", "8M", "--allocation", "8M", "--format", "raw")

    def connect():
        return open_host(LIBVIRT_URI, shared=False)

    reader = downloads.open_reader(connect, scratch_pool.name, "c.img", direct=True)
    assert isinstance(reader, downloads.LocalVolumeReader)
    assert reader.read(MiB)
    reader.close()
    with pytest.raises(downloads.ReaderClosed):
        reader.read(MiB)
