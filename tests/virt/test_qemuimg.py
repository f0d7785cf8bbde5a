"""virt/qemuimg.py against the real qemu-img (no libvirt): its parsers, and that qemu-img opens exactly the
descriptors it is given, with the formats stated, and never a name written in an image.

The images made here also serve tests/volumes/test_image_tools.py (damaged qcow2s, flags set in a header).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import time
from pathlib import Path

import pytest

from virtstorage.virt import qemuimg
from virtstorage.virt.errors import InvalidRequest
from virtstorage.virt.qemuimg import ImageFile, QemuImgFailed

MiB = 1024 * 1024
OLD_ATIME = 1_000_000_000


def qemu_img(*args: str) -> str:
    return subprocess.run(["qemu-img", *args], check=True, capture_output=True, text=True, timeout=120).stdout


def qemu_img_info(path: Path) -> dict:
    return json.loads(qemu_img("info", "--output=json", "-U", str(path)))


def identical(a: Path, fmt_a: str, b: Path, fmt_b: str) -> bool:
    proc = subprocess.run(["qemu-img", "compare", "-f", fmt_a, "-F", fmt_b, str(a), str(b)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode == 0


# -- damaged and flagged qcow2 images (shared with the volume tests) ------------------------------------

def _refcount_entry(f, index: int) -> int:
    """The file offset of cluster index's 16-bit refcount in the first refcount block."""
    header = f.read(104)
    refcount_table = struct.unpack_from(">Q", header, 48)[0]
    f.seek(refcount_table)
    block = struct.unpack(">Q", f.read(8))[0]
    return block + 2 * index


def damaged_qcow2(path: Path, *, leak: bool = True, corrupt: bool = True) -> Path:
    """A 64 MiB qcow2 with a leaked cluster (one more cluster at the end, counted as used) and/or a
    corruption (the header cluster's refcount set to 0 while the header uses it)."""
    qemu_img("create", "-q", "-f", "qcow2", str(path), "64M")
    with open(path, "r+b") as f:
        cluster = 1 << struct.unpack_from(">I", f.read(24), 20)[0]
        end = -(-os.fstat(f.fileno()).st_size // cluster)  # the first cluster past the (last, partial) one
        if leak:
            f.seek(0)
            f.seek(_refcount_entry(f, end))
            f.write(struct.pack(">H", 1))
            f.seek(end * cluster)
            f.write(b"\0" * cluster)
        if corrupt:
            f.seek(0)
            f.seek(_refcount_entry(f, 0))
            f.write(struct.pack(">H", 0))
    return path


def flagged_qcow2(path: Path, *, dirty: bool = False, corrupt: bool = False) -> Path:
    """A clean 64 MiB qcow2 v3 with the dirty and/or corrupt bits of its incompatible features set."""
    qemu_img("create", "-q", "-f", "qcow2", str(path), "64M")
    with open(path, "r+b") as f:
        f.seek(79)  # last byte of the 64-bit incompatible features at 72
        bits = f.read(1)[0] | (1 if dirty else 0) | (2 if corrupt else 0)
        f.seek(79)
        f.write(bytes([bits]))
    return path


class Opened:
    """Files opened for qemu-img the way the app opens them; closed at the end of the test."""

    def __init__(self) -> None:
        self.fds: list[int] = []

    def __call__(self, path: Path, fmt: str, backing: ImageFile | None = None) -> ImageFile:
        fd = os.open(path, os.O_RDONLY)
        self.fds.append(fd)
        return ImageFile(fd, fmt, backing)

    def empty(self, path: Path) -> int:
        """A new, empty file for qemu-img to write an image into (a volume libvirt has just created)."""
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        self.fds.append(fd)
        return fd

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)


@pytest.fixture
def opened():
    files = Opened()
    yield files
    files.close()


@pytest.fixture
def host_file(tmp_path_factory) -> Path:
    """A file no image may lead qemu-img to: its atime is set before its mtime, so any read moves it."""
    path = tmp_path_factory.mktemp("host") / "secret.bin"
    path.write_bytes(os.urandom(MiB))
    os.utime(path, (OLD_ATIME, path.stat().st_mtime))
    return path


def untouched(path: Path) -> bool:
    return int(path.stat().st_atime) == OLD_ATIME


# -- parsers (pure) ----------------------------------------------------------------------------------------

def test_progress_is_read_across_chunk_boundaries() -> None:
    out = b"    (0.00/100%)\r    (12.50/100%)\r    (1"
    percent, rest = qemuimg.parse_progress(out)
    assert percent == 12.5 and rest == b"    (1"
    percent, rest = qemuimg.parse_progress(rest + b"00.00/100%)\r\n")
    assert percent == 100.0 and rest == b""
    assert qemuimg.parse_progress(b"no progress here") == (None, b"no progress here")


def test_info_json_is_read_and_bad_output_is_a_clear_error() -> None:
    parsed = qemuimg.parse_info('{"format": "qcow2", "virtual-size": 1073741824, "actual-size": 200704, '
                                '"cluster-size": 65536, "backing-filename": "base.raw", "backing-filename-format": '
                                '"raw", "dirty-flag": true, "format-specific": {"type": "qcow2", "data": '
                                '{"compat": "1.1", "corrupt": true, "lazy-refcounts": false}}}')
    assert (parsed.format, parsed.virtual_size, parsed.disk_size, parsed.cluster_size) == ("qcow2", 2**30, 200704,
                                                                                           65536)
    assert parsed.dirty and parsed.corrupt and parsed.backing_name == "base.raw" and parsed.compat == "1.1"
    assert parsed.provisioning == "thin"
    assert qemuimg.parse_info('{"format": "raw", "virtual-size": 10, "actual-size": 12}').provisioning == \
        "preallocated"
    for bad in ("", "[]", '{"format": "raw"}', "not json"):
        with pytest.raises(QemuImgFailed, match="cannot read"):
            qemuimg.parse_info(bad)


def test_check_reports_say_what_was_found_and_what_can_be_repaired() -> None:
    clean = qemuimg.parse_check(0, '{"check-errors": 0, "total-clusters": 16}', "")
    assert clean.outcome == "no errors were found" and clean.fixable == "Nothing to repair."
    leaks = qemuimg.parse_check(3, '{"leaks": 2, "check-errors": 0}', "Leaked cluster 4 refcount=1 reference=0\n")
    assert leaks.leaks == 2 and "harmless" in leaks.fixable and "-r leaks" in leaks.fixable
    refcounts = qemuimg.parse_check(2, '{"corruptions": 1, "leaks": 1}', "ERROR cluster 0 refcount=0 reference=1\n")
    assert "-r all` can repair" in refcounts.fixable and "corrupted" in refcounts.summary()
    tables = qemuimg.parse_check(2, '{"corruptions": 1}', "ERROR l2_offset=1234: Table is not cluster aligned\n")
    assert "may not repair" in tables.fixable
    unfinished = qemuimg.parse_check(1, "", "qemu-img: Check failed: Input/output error\n")
    assert unfinished.outcome.startswith("the check could not be completed") and "no repair" in unfinished.fixable
    with pytest.raises(QemuImgFailed):
        qemuimg.parse_check(2, "garbage", "")


def test_each_file_states_its_format_and_a_chain_ends_in_no_backing_at_all() -> None:
    base = ImageFile(7, "raw")
    top = ImageFile(5, "qcow2", base)
    assert top.description() == {"driver": "qcow2", "file": {"driver": "file", "filename": "/dev/fd/5"},
                                 "backing": {"driver": "raw", "file": {"driver": "file", "filename": "/dev/fd/7"}}}
    assert top.description(with_backing=False)["backing"] is None
    assert ImageFile(5, "qcow2").description()["backing"] is None
    assert "backing" not in base.description()
    assert top.descriptors() == (5, 7) and top.argument().startswith("json:{")
    with pytest.raises(InvalidRequest):
        ImageFile(5, "vmdk")
    with pytest.raises(InvalidRequest):
        ImageFile(5, "raw", base)


# -- the real qemu-img ------------------------------------------------------------------------------------

def test_info_opens_no_backing_file_whatever_the_header_names(tmp_path, opened, host_file) -> None:
    """Three overlays name a host file, a missing file and "3" (which, relative to /dev/fd, would be one of
    qemu-img's own descriptors): info of each reads the overlay alone."""
    for name in (str(host_file), str(tmp_path / "missing.raw"), "3"):
        overlay = tmp_path / "overlay.qcow2"
        qemu_img("create", "-q", "-f", "qcow2", "-u", "-b", name, "-F", "raw", str(overlay), "64M")
        found = qemuimg.info(opened(overlay, "qcow2"))
        assert (found.format, found.virtual_size, found.backing_name) == ("qcow2", 64 * MiB, name)
        assert found.disk_size == os.stat(overlay).st_blocks * 512
    assert untouched(host_file)


def test_info_of_a_file_stated_as_raw_is_raw_whatever_its_bytes(tmp_path, opened) -> None:
    qcow2 = tmp_path / "looks.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", str(qcow2), "1G")
    found = qemuimg.info(opened(qcow2, "raw"))
    assert found.format == "raw" and found.virtual_size == -(-qcow2.stat().st_size // 512) * 512


def test_flags_in_the_header_are_reported(tmp_path, opened) -> None:
    assert qemuimg.info(opened(flagged_qcow2(tmp_path / "d.qcow2", dirty=True), "qcow2")).dirty
    corrupt = qemuimg.info(opened(flagged_qcow2(tmp_path / "c.qcow2", corrupt=True), "qcow2"))
    assert corrupt.corrupt and not corrupt.dirty


def test_check_finds_leaks_and_corruptions(tmp_path, opened) -> None:
    clean = tmp_path / "clean.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", str(clean), "64M")
    assert qemuimg.check(opened(clean, "qcow2")).exit_code == 0
    leaky = qemuimg.check(opened(damaged_qcow2(tmp_path / "leak.qcow2", corrupt=False), "qcow2"))
    assert (leaky.exit_code, leaky.leaks, leaky.corruptions) == (3, 1, 0)
    both = qemuimg.check(opened(damaged_qcow2(tmp_path / "both.qcow2"), "qcow2"))
    assert (both.exit_code, both.leaks, both.corruptions) == (2, 1, 1)
    assert any(line.startswith("ERROR cluster 0") for line in both.messages)
    raw = tmp_path / "disk.raw"
    raw.write_bytes(b"\0" * MiB)
    with pytest.raises(QemuImgFailed, match="no metadata"):
        qemuimg.check(opened(raw, "raw"))


def test_convert_raw_qcow2_raw_keeps_every_byte_with_progress(tmp_path, opened) -> None:
    raw = tmp_path / "source.raw"
    with open(raw, "wb") as f:
        f.truncate(64 * MiB)
        for at in (0, 5 * MiB + 123, 40 * MiB):
            f.seek(at)
            f.write(os.urandom(3 * MiB))
    qcow2, back = tmp_path / "copy.qcow2", tmp_path / "back.raw"
    seen: list[float] = []
    qemuimg.convert(opened(raw, "raw"), opened.empty(qcow2), "qcow2", progress=seen.append)
    assert seen and seen[-1] == 100.0 and seen == sorted(seen)
    qemuimg.convert(opened(qcow2, "qcow2"), opened.empty(back), "raw")
    assert qemu_img_info(qcow2)["format"] == "qcow2" and qemu_img_info(back)["virtual-size"] == 64 * MiB
    assert identical(raw, "raw", qcow2, "qcow2") and identical(raw, "raw", back, "raw")
    assert back.stat().st_blocks * 512 < 16 * MiB  # holes stay holes


def test_convert_reads_the_stated_backing_chain_not_the_name_in_the_header(tmp_path, opened, host_file) -> None:
    """The overlay's header names the host file; it is given its real base explicitly, and the copy holds the
    base's data under the overlay's, while the host file is never read."""
    base = tmp_path / "base.raw"
    base.write_bytes(os.urandom(4 * MiB))
    overlay, flat, witness = tmp_path / "overlay.qcow2", tmp_path / "flat.raw", tmp_path / "witness.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", "-b", str(base), "-F", "raw", str(witness), "4M")
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 1M 64k", str(witness)], check=True,
                   capture_output=True, timeout=60)
    shutil.copyfile(witness, overlay)
    qemu_img("rebase", "-q", "-u", "-f", "qcow2", "-b", str(host_file), "-F", "raw", str(overlay))
    os.utime(host_file, (OLD_ATIME, host_file.stat().st_mtime))
    qemuimg.convert(opened(overlay, "qcow2", opened(base, "raw")), opened.empty(flat), "raw")
    expected = bytearray(base.read_bytes())
    expected[MiB:MiB + 65536] = b"\x5a" * 65536
    assert flat.read_bytes() == bytes(expected)
    assert untouched(host_file)


def test_compress_makes_a_smaller_qcow2_and_only_qcow2(tmp_path, opened) -> None:
    raw = tmp_path / "text.raw"
    raw.write_bytes(b"virtstorage " * (8 * MiB // 12))
    plain, packed = tmp_path / "plain.qcow2", tmp_path / "packed.qcow2"
    qemuimg.convert(opened(raw, "raw"), opened.empty(plain), "qcow2")
    qemuimg.convert(opened(raw, "raw"), opened.empty(packed), "qcow2", compress=True)
    assert packed.stat().st_size < plain.stat().st_size / 4
    assert identical(raw, "raw", packed, "qcow2")
    refused = [("raw", {"compress": True}), ("qcow2", {"compress": True, "preallocation": "full"}),
               ("raw", {"preallocation": "metadata"}), ("qcow2", {"preallocation": "lots"}), ("vmdk", {})]
    for number, (fmt, options) in enumerate(refused):
        with pytest.raises(InvalidRequest):
            qemuimg.convert(opened(raw, "raw"), opened.empty(tmp_path / f"refused-{number}"), fmt, **options)
        assert (tmp_path / f"refused-{number}").stat().st_size == 0


def test_preallocation_reserves_the_whole_virtual_size(tmp_path, opened) -> None:
    raw = tmp_path / "thin.raw"
    with open(raw, "wb") as f:
        f.truncate(64 * MiB)
        f.write(os.urandom(MiB))
    for fmt, mode in (("raw", "full"), ("qcow2", "full"), ("qcow2", "metadata"), ("qcow2", "off")):
        target = tmp_path / f"{fmt}-{mode}"
        qemuimg.convert(opened(raw, "raw"), opened.empty(target), fmt, preallocation=mode)
        held = target.stat().st_blocks * 512
        assert (held >= 64 * MiB) == (mode == "full"), (fmt, mode, held)
        assert identical(raw, "raw", target, fmt)


def test_a_cancel_from_the_progress_callback_stops_qemu_img(tmp_path, opened) -> None:
    raw = tmp_path / "big.raw"
    with open(raw, "wb") as f:
        for _ in range(128):
            f.write(os.urandom(MiB))
    target = tmp_path / "target.qcow2"

    class Stop(Exception):
        pass

    def stop(_percent: float) -> None:
        raise Stop()

    started = time.monotonic()
    with pytest.raises(Stop):
        qemuimg.convert(opened(raw, "raw"), opened.empty(target), "qcow2", compress=True, progress=stop)
    assert time.monotonic() - started < 5
    left = subprocess.run(["pgrep", "-P", str(os.getpid()), "-x", "qemu-img"], capture_output=True)
    assert left.returncode == 1, left.stdout  # no qemu-img child left: it was killed and reaped
    compare = subprocess.run(["qemu-img", "compare", "-f", "raw", "-F", "qcow2", str(raw), str(target)],
                             capture_output=True, timeout=120)
    assert compare.returncode != 0  # differs, or is not even a qcow2 yet


def test_a_hanging_qemu_img_is_stopped_and_a_missing_one_is_named(tmp_path, opened, monkeypatch) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # qemu-img's own open of it waits for a writer forever
    try:
        started = time.monotonic()
        with pytest.raises(QemuImgFailed, match="longer than 1 s"):
            qemuimg.info(ImageFile(fd, "raw"), timeout=1)
        assert time.monotonic() - started < 5
    finally:
        os.close(fd)
    (tmp_path / "fifo-is-not-opened.raw").write_bytes(b"\0" * 512)
    monkeypatch.setattr(qemuimg, "QEMU_IMG", "qemu-img-not-installed")
    with pytest.raises(QemuImgFailed, match="not installed"):
        qemuimg.info(opened(fifo.parent / "fifo-is-not-opened.raw", "raw"))
