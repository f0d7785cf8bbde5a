"""virt/imagecheck: the image-safety inspector, on images qemu-img makes and on hand-built headers.

build_qcow2 and qemu_img are shared with test_imagecheck_fuzz.py.
"""

from __future__ import annotations

import ast
import os
import shutil
import struct
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from tests.conftest import LIBVIRT_URI, virsh
from virtstorage.virt import imagecheck
from virtstorage.virt.connection import open_host
from virtstorage.virt.errors import ObjectNotFound
from virtstorage.virt.imagecheck import (
    EXT_BACKING_FORMAT,
    EXT_BITMAPS,
    EXT_CRYPTO_HEADER,
    EXT_DATA_FILE,
    EXT_FEATURE_TABLE,
    HEAD_BYTES,
    ImageFacts,
    UnsafeImage,
    detect_format,
    inspect,
    needed_bytes,
    read_head_from_fd,
    read_volume_head,
)

MiB = 1024 * 1024


# -- helpers (also used by the fuzz test) ----------------------------------------------------------------------------

def qemu_img(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run qemu-img; the tests need it (they never skip)."""
    if shutil.which("qemu-img") is None:
        pytest.fail("qemu-img is not installed: install qemu-utils (apt-get install qemu-utils)")
    proc = subprocess.run(["qemu-img", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "LC_ALL": "C"})
    if check and proc.returncode != 0:
        raise AssertionError(f"qemu-img {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc


def file_head(path: Path) -> bytes:
    """What a caller hands to inspect(): read_head_from_fd over the whole file."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return read_head_from_fd(fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)


def created(tmp_path: Path, fmt: str, *options: str, size: str = "8M", name: str | None = None) -> bytes:
    """The head of a new image qemu-img creates: `qemu-img create -f fmt options... FILE size`."""
    path = tmp_path / (name or f"image.{fmt}")
    qemu_img("create", "-q", "-f", fmt, *options, str(path), size)
    return file_head(path)


_FIXED = struct.Struct(">4sIQIIQI")  # magic ... crypt_method: bytes 0-36
_V3 = struct.Struct(">QQQII")  # at 72: incompatible, compatible, autoclear, refcount_order, header_length

Extension = tuple[int, bytes] | tuple[int, bytes, int]  # type, payload[, declared length when it lies]


def build_qcow2(*, version: int = 3, cluster_bits: int = 16, size: int = 64 * MiB, crypt_method: int = 0,
                incompatible: int = 0, compatible: int = 0, autoclear: int = 0, refcount_order: int = 4,
                header_length: int | None = None, extensions: Sequence[Extension] = (), end_marker: bool = True,
                backing: bytes = b"", backing_offset: int | None = None, backing_size: int | None = None,
                tables: bytes = bytes(36), length: int | None = None, magic: bytes = b"QFI\xfb") -> bytes:
    """A hand-built qcow2 first cluster: header, header extensions (each padded to 8 bytes, then an end marker),
    and the backing file name right after them unless backing_offset says otherwise.

    tables: header bytes 36-72 (L1, refcount table and snapshot fields), e.g. from a template qemu-img made.
    length: bytes returned (default the cluster, at most 64 KiB, grown to hold what was placed).
    """
    if header_length is None:
        header_length = 72 if version == 2 else 112
    ext_start = 72 if version == 2 else header_length
    body = bytearray()
    for kind, payload, *declared in extensions:
        body += struct.pack(">II", kind, (declared[0] if declared else len(payload)) & 0xFFFFFFFF) + payload
        body += bytes(-len(payload) % 8)
    if end_marker:
        body += bytes(8)
    if backing and backing_offset is None:
        backing_offset = ext_start + len(body)
    backing_offset = backing_offset or 0
    backing_size = len(backing) if backing_size is None else backing_size
    cluster = 1 << cluster_bits if 9 <= cluster_bits <= 21 else 4096
    out = bytearray(length or min(cluster, 64 * 1024))
    room = len(out) + 64 * 1024  # never place anything absurdly far (lying offsets stay lies)

    def place(offset: int, data: bytes) -> None:
        if data and offset + len(data) <= room:
            if offset + len(data) > len(out):
                out.extend(bytes(offset + len(data) - len(out)))
            out[offset:offset + len(data)] = data

    place(ext_start, bytes(body))
    place(backing_offset, backing)
    header = _FIXED.pack(magic, version, backing_offset & (2**64 - 1), backing_size & 0xFFFFFFFF,
                         cluster_bits & 0xFFFFFFFF, size & (2**64 - 1), crypt_method & 0xFFFFFFFF) + tables[:36]
    if version != 2:
        header += _V3.pack(incompatible, compatible, autoclear, refcount_order & 0xFFFFFFFF,
                           header_length & 0xFFFFFFFF)
    place(0, header)
    return bytes(out)


def refused(head: bytes, stated: str | None = None, reason: str | None = None,
            backing_allowed: Callable[[str], bool] | None = None) -> UnsafeImage:
    with pytest.raises(UnsafeImage) as info:
        inspect(head, stated, backing_allowed=backing_allowed)
    exc = info.value
    assert reason is None or exc.reason == reason, f"{exc.reason}: {exc}"
    assert str(exc).endswith("Nothing was done with it."), str(exc)
    return exc


# -- raw ------------------------------------------------------------------------------------------------------------

def test_plain_raw_is_raw(tmp_path):
    for head in (b"", bytes(HEAD_BYTES), created(tmp_path, "raw"), os.urandom(4096),
                 b"\xeb\x63\x90" + bytes(507) + b"\x55\xaa"):  # an MBR boot sector
        assert detect_format(head) == "raw"
        assert inspect(head) == ImageFacts("raw", None, "")
        assert inspect(head, "raw") == ImageFacts("raw", None, "")
        assert needed_bytes(head) == len(head)


def test_raw_content_stated_qcow2_is_refused(tmp_path):
    exc = refused(created(tmp_path, "raw"), "qcow2", "format-mismatch")
    assert "stated to be qcow2" in str(exc)


def test_qcow2_content_stated_raw_is_refused(tmp_path):
    exc = refused(created(tmp_path, "qcow2"), "raw", "format-mismatch")
    assert "stated to be raw" in str(exc) and "qcow2 image" in str(exc)


@pytest.mark.parametrize("start", [
    b"QFI\xfb\x00\x00\x00\x03",  # a real qcow2 start in raw data
    b"QFI\xfb\x00\x00\x00\x00",  # versions qemu does not open
    b"QFI\xfb\x00\x00\x00\x07",
    b"QFI\x00\x00\x00\x00\x02",  # libvirt takes "QFI" with version 2 for qcow2, whatever the 4th byte
    b"QFI",
])
def test_raw_data_that_starts_like_qcow2_is_refused_as_raw(start):
    head = start + bytes(HEAD_BYTES - len(start))
    assert detect_format(head) == "qcow2"
    refused(head, "raw", "format-mismatch")
    with pytest.raises(UnsafeImage):  # not a qcow2 qemu opens either
        inspect(head, "qcow2")


def test_raw_data_that_starts_like_qcow_v1_is_refused():
    head = b"QFI\xfb\x00\x00\x00\x01" + bytes(1000)
    assert detect_format(head) == "qcow"
    assert "qcow (version 1)" in str(refused(head, "raw", "format-mismatch"))
    refused(head, None, "unsupported-format")
    refused(head, "qcow2", "format-mismatch")


def test_an_iso_counts_as_raw():
    head = bytearray(HEAD_BYTES)
    head[0x8000:0x8007] = b"\x01CD001\x01"
    head = bytes(head)
    assert detect_format(head) == "iso"
    assert inspect(head) == ImageFacts("raw", None, "")
    assert inspect(head, "raw") == ImageFacts("raw", None, "")
    refused(head, "qcow2", "format-mismatch")


@pytest.mark.parametrize("stated", ["vmdk", "QCOW2", "Raw", "", "iso"])
def test_unsupported_stated_formats_are_refused(stated):
    exc = refused(bytes(1024), stated, "unsupported-format")
    assert "only raw and qcow2" in str(exc)


# -- qcow2 that passes ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("options", [
    ["-o", "compat=0.10"],  # version 2
    ["-o", "compat=1.1"],  # version 3
    ["-o", "cluster_size=512"],
    ["-o", "cluster_size=2M"],
    ["-o", "lazy_refcounts=on,refcount_bits=64"],
    ["-o", "extended_l2=on"],  # incompatible bit 4
    ["-o", "compression_type=zstd"],  # incompatible bit 3
    ["-o", "preallocation=metadata"],
])
def test_clean_qcow2_images_pass(tmp_path, options):
    head = created(tmp_path, "qcow2", *options)
    assert detect_format(head) == "qcow2"
    facts = inspect(head, "qcow2")
    assert facts == ImageFacts("qcow2", 8 * MiB, "")
    assert inspect(head) == facts


def test_versions_2_and_3_are_what_the_header_says(tmp_path):
    v2 = created(tmp_path, "qcow2", "-o", "compat=0.10", name="v2.qcow2")
    v3 = created(tmp_path, "qcow2", name="v3.qcow2")
    assert struct.unpack_from(">I", v2, 4)[0] == 2 and struct.unpack_from(">I", v3, 4)[0] == 3
    assert inspect(v2).format == inspect(v3).format == "qcow2"


def test_a_qcow2_with_bitmaps_and_a_dirty_bit_passes(tmp_path):
    path = tmp_path / "bitmaps.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", str(path), "8M")
    qemu_img("bitmap", "--add", str(path), "b0")
    head = file_head(path)
    assert struct.pack(">I", EXT_BITMAPS) in head
    assert inspect(head, "qcow2").format == "qcow2"
    dirty = bytearray(head)
    dirty[79] |= 1  # incompatible bit 0: dirty
    dirty[79] |= 2  # bit 1: corrupt (qemu opens it read-only)
    assert inspect(bytes(dirty), "qcow2").format == "qcow2"


def test_known_and_unknown_extensions_pass():
    head = build_qcow2(extensions=[(EXT_BACKING_FORMAT, b"raw"), (EXT_FEATURE_TABLE, bytes(48)),
                                   (EXT_BITMAPS, bytes(24)), (0x12345678, b"future")])
    assert inspect(head, "qcow2") == ImageFacts("qcow2", 64 * MiB, "")


# -- backing files ---------------------------------------------------------------------------------------------------

def _with_backing(tmp_path: Path, name: str) -> bytes:
    return created(tmp_path, "qcow2", "-u", "-b", name, "-F", "raw", name="overlay.qcow2")


@pytest.mark.parametrize("name", ["/srv/images/base.img", "base.img", "../other-pool/base.img", "/etc/./passwd"])
def test_a_backing_file_is_refused_without_permission(tmp_path, name):
    head = _with_backing(tmp_path, name)
    exc = refused(head, "qcow2", "backing-file")
    assert name in str(exc)
    refused(head, None, "backing-file")
    refused(head, "qcow2", "backing-file", backing_allowed=lambda _name: False)
    refused(head, "raw", "format-mismatch")


@pytest.mark.parametrize("name", ['json:{"driver":"file","filename":"/srv/images/base.img"}',
                                  "nbd://127.0.0.1:10809/export", "nbd:127.0.0.1:10809", "file:/etc/passwd",
                                  "http://example.com/base.img", "ssh:host/x", "a:b"])
def test_protocol_backing_names_are_refused_whatever_the_callback_says(tmp_path, name):
    head = _with_backing(tmp_path, name)
    calls: list[str] = []
    exc = refused(head, "qcow2", "backing-name", backing_allowed=lambda n: calls.append(n) or True)
    assert not calls
    assert "protocol" in str(exc)


def test_backing_allowed_accepts_one_path_as_written(tmp_path):
    allowed = "/srv/images/base.img"

    def backing_allowed(name: str) -> bool:
        return name == allowed

    facts = inspect(_with_backing(tmp_path, allowed), "qcow2", backing_allowed=backing_allowed)
    assert facts == ImageFacts("qcow2", 8 * MiB, allowed)
    for other in ("/srv/images/./base.img", "/srv/images/other.img", "base.img"):
        refused(_with_backing(tmp_path, other), "qcow2", "backing-file", backing_allowed=backing_allowed)
    seen: list[str] = []
    inspect(_with_backing(tmp_path, "base.img"), "qcow2", backing_allowed=lambda n: seen.append(n) or True)
    assert seen == ["base.img"]  # relative names reach the callback as written


@pytest.mark.parametrize("answer", [1, "yes", ["/srv/a.img"], None])
def test_backing_allowed_must_return_true_itself(answer):
    head = build_qcow2(backing=b"/srv/a.img")
    refused(head, "qcow2", "backing-file", backing_allowed=lambda _n: answer)


@pytest.mark.parametrize("raw", [b"/srv/a.img\x00/etc/shadow", b"\x00", b"/srv/\xff\xfe.img", b"/srv/a\nb.img",
                                 b"/srv/\x1b[31m.img"])
def test_backing_names_that_are_no_file_names_are_refused(raw):
    refused(build_qcow2(backing=raw), "qcow2", "backing-name", backing_allowed=lambda _n: True)


def test_a_backing_size_of_zero_is_no_backing_file():
    head = build_qcow2(backing=b"/srv/a.img", backing_size=0)
    assert inspect(head, "qcow2").backing_file == ""
    head = build_qcow2(backing=b"/srv/a.img", backing_offset=0)  # offset 0: no backing file, whatever the size
    assert inspect(head, "qcow2").backing_file == ""


def test_backing_names_out_of_bounds_are_refused():
    refused(build_qcow2(backing=b"/srv/a.img", backing_offset=64 * 1024 + 8), "qcow2", "malformed")  # past cluster
    refused(build_qcow2(backing=b"/srv/a.img", backing_offset=64 * 1024 - 4), "qcow2", "malformed")  # runs past
    refused(build_qcow2(backing=b"/srv/a.img", backing_offset=16), "qcow2", "malformed")  # over the header
    refused(build_qcow2(backing=b"/" + b"a" * 1100), "qcow2", "malformed")  # longer than qemu's 1023
    head = build_qcow2(backing=b"/srv/a.img", backing_offset=40000)
    refused(head[:40004], "qcow2", "truncated")


# -- external data files -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("options", ["data_file={data}", "data_file={data},data_file_raw=on"])
def test_a_qemu_made_external_data_file_is_refused(tmp_path, options):
    data = tmp_path / "data.raw"
    head = created(tmp_path, "qcow2", "-o", options.format(data=data))
    assert data.exists()
    assert struct.pack(">I", EXT_DATA_FILE) in head
    refused(head, "qcow2", "data-file")
    refused(head, None, "data-file")
    refused(head, "raw", "format-mismatch")


def test_the_data_file_bit_without_the_extension_is_refused():
    refused(build_qcow2(incompatible=1 << 2), "qcow2", "data-file")


@pytest.mark.parametrize("version", [2, 3])
def test_the_data_file_extension_without_the_bit_is_refused(version):
    head = build_qcow2(version=version, extensions=[(EXT_FEATURE_TABLE, bytes(48)), (EXT_DATA_FILE, b"/srv/x.raw")])
    exc = refused(head, "qcow2", "data-file")
    assert '"/srv/x.raw"' in str(exc)


def test_the_data_file_raw_bit_is_refused():
    refused(build_qcow2(autoclear=1 << 1), "qcow2", "data-file")


def test_a_data_file_extension_after_the_end_marker_is_not_read():
    head = bytearray(build_qcow2())
    head[120:128] = struct.pack(">II", EXT_DATA_FILE, 8)  # after the end marker at 112: qemu stops there too
    assert inspect(bytes(head), "qcow2").format == "qcow2"


def test_a_data_file_extension_only_libvirt_finds_is_refused():
    """libvirt walks the extensions without qemu's 8-byte padding: after a 3-byte extension it reads the next
    one at 123, qemu at 128 (where it finds the end marker)."""
    head = bytearray(build_qcow2(backing=b"/srv/a.img", backing_offset=200))
    head[112:123] = struct.pack(">II", EXT_BACKING_FORMAT, 3) + b"raw"
    head[123:136] = b"DATA" + bytes(9)
    exc = refused(bytes(head), "qcow2", "data-file", backing_allowed=lambda _n: True)
    assert "where libvirt reads it" in str(exc)
    head[123:127] = bytes(4)
    assert inspect(bytes(head), "qcow2", backing_allowed=lambda _n: True).backing_file == "/srv/a.img"


# -- encryption, features, versions ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def luks_images(tmp_path_factory) -> dict[str, bytes]:
    """A LUKS-encrypted qcow2 and a LUKS raw image: made once, side by side (key derivation takes seconds)."""
    if shutil.which("qemu-img") is None:
        pytest.fail("qemu-img is not installed: install qemu-utils (apt-get install qemu-utils)")
    base = tmp_path_factory.mktemp("luks")
    secret = ["--object", "secret,id=s0,data=not-a-real-secret"]
    commands = {
        "qcow2": ["qemu-img", "create", "-q", "-f", "qcow2", *secret, "-o",
                  "encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-time=10", str(base / "enc.qcow2"), "8M"],
        "luks": ["qemu-img", "create", "-q", "-f", "luks", *secret, "-o", "key-secret=s0,iter-time=10",
                 str(base / "enc.luks"), "8M"],
    }
    errors: dict[str, str] = {}
    for _attempt in range(5):  # qemu's key derivation benchmark fails now and then: "Unable to get accurate CPU usage"
        running = {fmt: subprocess.Popen(cmd, stderr=subprocess.PIPE) for fmt, cmd in commands.items()}
        errors = {fmt: proc.communicate(timeout=120)[1].decode() for fmt, proc in running.items()
                  if proc.wait() != 0}
        commands = {fmt: commands[fmt] for fmt in errors}
        if not commands:
            break
    assert not errors, f"qemu-img create failed: {errors}"
    return {"qcow2": file_head(base / "enc.qcow2"), "luks": file_head(base / "enc.luks")}


def test_an_encrypted_qcow2_is_refused(luks_images):
    exc = refused(luks_images["qcow2"], "qcow2", "encrypted")
    assert "LUKS" in str(exc)
    refused(build_qcow2(version=2, crypt_method=1), "qcow2", "encrypted")  # the old AES
    refused(build_qcow2(extensions=[(EXT_CRYPTO_HEADER, bytes(16))]), "qcow2", "encrypted")


def test_a_luks_image_is_refused(luks_images):
    head = luks_images["luks"]
    assert detect_format(head) == "luks"
    refused(head, None, "unsupported-format")
    refused(head, "raw", "format-mismatch")


@pytest.mark.parametrize("bits", [1 << 5, 1 << 17, 1 << 63, (1 << 5) | 1])
def test_unknown_incompatible_features_are_refused(bits):
    exc = refused(build_qcow2(incompatible=bits), "qcow2", "unknown-features")
    assert "bits 5" in str(exc) or "bits 17" in str(exc) or "bits 63" in str(exc)


def test_unknown_compatible_and_autoclear_bits_pass():
    assert inspect(build_qcow2(compatible=2**64 - 1, autoclear=1 | 1 << 40), "qcow2").format == "qcow2"


@pytest.mark.parametrize("version", [0, 1, 4, 2**32 - 1])
def test_other_qcow2_versions_are_refused(version):
    with pytest.raises(UnsafeImage):
        inspect(build_qcow2(version=version), "qcow2")


# -- malformed and truncated headers ---------------------------------------------------------------------------------

@pytest.mark.parametrize("fields", [
    {"cluster_bits": 8}, {"cluster_bits": 22}, {"cluster_bits": 0}, {"cluster_bits": 2**32 - 1},
    {"header_length": 100}, {"header_length": 0}, {"header_length": 64 * 1024 + 8, "cluster_bits": 16},
    {"header_length": 1024, "cluster_bits": 9}, {"refcount_order": 7}, {"magic": b"QFI\x00"},
])
def test_malformed_headers_are_refused(fields):
    refused(build_qcow2(**fields), "qcow2", "malformed")


def test_an_extension_running_past_the_cluster_is_refused():
    refused(build_qcow2(extensions=[(0x12345678, b"x" * 16, 70000)]), "qcow2", "malformed")
    refused(build_qcow2(extensions=[(0x12345678, b"x" * 16, 2**32 - 1)]), "qcow2", "malformed")
    # the extension area ends where the backing file name starts
    refused(build_qcow2(extensions=[(EXT_BACKING_FORMAT, b"raw", 64)], backing=b"/srv/a.img", backing_offset=136),
            "qcow2", "malformed")
    # up to the last byte of the cluster is fine (no end marker needed there)
    filling = 64 * 1024 - 112 - 8
    assert inspect(build_qcow2(extensions=[(0x12345678, bytes(filling))], end_marker=False), "qcow2")


def test_an_extension_area_without_an_end_marker_is_read_to_the_cluster_end():
    head = build_qcow2(cluster_bits=12, extensions=[(EXT_BITMAPS, bytes(24))], end_marker=False)
    filled = head[:136] + b"\xaa" * (len(head) - 136)  # garbage where the end marker should be
    with pytest.raises(UnsafeImage):
        inspect(filled, "qcow2")


@pytest.mark.parametrize("cut", [0, 3, 8, 50, 71, 72, 90, 103, 111, 119, 130])
def test_truncated_headers_are_refused(cut):
    head = build_qcow2(extensions=[(EXT_BACKING_FORMAT, b"qcow2")])
    with pytest.raises(UnsafeImage) as info:
        inspect(head[:cut], "qcow2")
    assert info.value.reason in ("truncated", "format-mismatch")  # fewer than 3 bytes: not even qcow2's magic
    assert info.value.reason == "truncated" or cut < 3


def test_a_truncated_real_image_is_refused(tmp_path):
    head = created(tmp_path, "qcow2")
    refused(head[:100], "qcow2", "truncated")
    assert inspect(head[:4096], "qcow2").format == "qcow2"  # the header and its extensions end well before


def test_a_head_with_two_signatures_is_refused():
    head = bytearray(build_qcow2())
    head[0x40:0x44] = b"\x7f\x10\xda\xbe"  # vdi's signature, in a qcow2 header's snapshots_offset
    refused(bytes(head), "qcow2", "ambiguous-format")


# -- other formats ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("fmt", "options", "expected"), [
    ("vmdk", [], "vmdk"),
    ("vmdk", ["-o", "subformat=monolithicFlat"], "vmdk"),  # a text descriptor naming its extent file
    ("vmdk", ["-o", "subformat=streamOptimized"], "vmdk"),
    ("vmdk", ["-o", "subformat=twoGbMaxExtentSparse"], "vmdk"),
    ("qed", [], "qed"),
    ("vdi", [], "vdi"),
    ("vpc", [], "vpc"),
    ("vhdx", [], "vhdx"),
    ("parallels", [], "parallels"),
    ("qcow", [], "qcow"),
])
def test_other_formats_made_by_qemu_img_are_refused(tmp_path, fmt, options, expected):
    head = created(tmp_path, fmt, *options)
    assert detect_format(head) == expected
    refused(head, None, "unsupported-format")
    refused(head, "raw", "format-mismatch")
    refused(head, "qcow2", "format-mismatch")


@pytest.mark.parametrize(("head", "expected"), [
    (b"Bochs Virtual HD Image\x00" + bytes(100), "bochs"),
    (b"#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0 && mount -r -t iso9660 /dev/cloop $1\n", "cloop"),
    (b"COWD\x01\x00\x00\x00", "vmdk"),
    (b"OOOM\x00\x00\x00\x02/srv/base.img", "cow"),
    (b"version=1\nRW 8 FLAT \"/etc/shadow\" 0\n", "vmdk"),
    (b"# Disk DescriptorFile\n# comment\n   \r\nversion=1\r\n", "vmdk"),
    (b"QED\x00" + bytes(60), "qed"),
    (b"WithoutFreeSpace" + bytes(48), "parallels"),
    (bytes(0x40) + b"\x7f\x10\xda\xbe" + bytes(400), "vdi"),
])
def test_hand_made_signatures_are_detected_and_refused(head, expected):
    assert detect_format(head) == expected
    refused(head, "raw", "format-mismatch")
    refused(head, None, "unsupported-format")


@pytest.mark.parametrize("head", [b"# just a comment\nhello\n", b"\nversion=1\n", b"Version=1\n", b"QF", b"KDM"])
def test_text_and_near_misses_are_raw(head):
    assert detect_format(head) == "raw"
    assert inspect(head, "raw").format == "raw"


# -- needed_bytes and the readers --------------------------------------------------------------------------------------

def test_needed_bytes_is_the_first_cluster_of_a_qcow2(tmp_path):
    assert needed_bytes(build_qcow2(cluster_bits=21)[:HEAD_BYTES]) == 2 * MiB
    assert needed_bytes(build_qcow2(cluster_bits=16)) == 64 * 1024
    assert needed_bytes(build_qcow2(cluster_bits=9, length=HEAD_BYTES)) == HEAD_BYTES  # never less than given
    assert needed_bytes(build_qcow2(cluster_bits=9)[:300]) == 512
    assert needed_bytes(build_qcow2(cluster_bits=30, length=HEAD_BYTES)) == HEAD_BYTES  # refused anyway
    assert needed_bytes(b"QFI\xfb") == 4
    path = tmp_path / "big-clusters.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", "-o", "cluster_size=2M", str(path), "8M")
    head = file_head(path)
    assert len(head) == 2 * MiB and head == path.read_bytes()[:2 * MiB]
    assert inspect(head, "qcow2").format == "qcow2"


def test_read_head_from_fd_stops_at_size_and_at_the_end(tmp_path):
    path = tmp_path / "small"
    path.write_bytes(b"x" * 1000)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert read_head_from_fd(fd, 1000) == b"x" * 1000
        assert read_head_from_fd(fd, 10) == b"x" * 10
        assert read_head_from_fd(fd, 5000) == b"x" * 1000  # the file is shorter than announced
        assert read_head_from_fd(fd, 0) == b""
    finally:
        os.close(fd)
    big = tmp_path / "big"
    big.write_bytes(os.urandom(HEAD_BYTES * 2))
    assert file_head(big) == big.read_bytes()[:HEAD_BYTES]


def test_read_volume_head_through_libvirt(scratch_pool):
    path = Path(scratch_pool.create_volume("head.qcow2", "64M", "qcow2"))
    qemu_img("create", "-q", "-f", "qcow2", "-o", "cluster_size=2M", str(scratch_pool.path / "big.qcow2"), "8M")
    (scratch_pool.path / "small.raw").write_bytes(b"QFI\xfb" + os.urandom(5000))
    virsh("pool-refresh", scratch_pool.name)
    with open_host(LIBVIRT_URI) as lv:
        head = read_volume_head(lv, scratch_pool.name, "head.qcow2")
        assert head == path.read_bytes()[:HEAD_BYTES]
        assert inspect(head, "qcow2") == ImageFacts("qcow2", 64 * MiB, "")

        big = read_volume_head(lv, scratch_pool.name, "big.qcow2")  # a second stream for the rest of the cluster
        assert len(big) == 2 * MiB and big == (scratch_pool.path / "big.qcow2").read_bytes()[:2 * MiB]

        small = read_volume_head(lv, scratch_pool.name, "small.raw")  # shorter than HEAD_BYTES
        assert small == (scratch_pool.path / "small.raw").read_bytes()
        refused(small, "raw", "format-mismatch")

        with pytest.raises(ObjectNotFound):
            read_volume_head(lv, scratch_pool.name, "missing.qcow2")
        # the connection is still fine after all those streams
        assert read_volume_head(lv, scratch_pool.name, "head.qcow2") == head


def test_the_checks_import_nothing_but_the_standard_library():
    """libvirt is imported inside read_volume_head only; Django never (text, the translator hook, imports nothing
    but the standard library either)."""
    tree = ast.parse(Path(imagecheck.__file__).read_text())
    imported = set()
    for node in tree.body:  # module level, outside `if TYPE_CHECKING:`
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
    allowed = {"__future__", "os", "re", "struct", "collections.abc", "dataclasses", "typing", "text"}
    assert imported <= allowed, imported
    text_imports = {node.module for node in ast.parse((Path(imagecheck.__file__).parent / "text.py").read_text()).body
                    if isinstance(node, ast.ImportFrom)}
    assert text_imports <= {"__future__", "collections.abc"}, text_imports
