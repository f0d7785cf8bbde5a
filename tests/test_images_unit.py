"""The uploaded-image header check (volumes/images.py), on headers qemu-img writes."""

from __future__ import annotations

import subprocess

from volumes.images import HEADER_BYTES, backing_reference


def _header(tmp_path, *args: str) -> bytes:
    path = tmp_path / "image"
    subprocess.run(["qemu-img", "create", "-q", *args, str(path), "8M"], check=True)
    return path.read_bytes()[:HEADER_BYTES]


def test_a_qcow2_backing_file_is_found(tmp_path):
    assert backing_reference(_header(tmp_path, "-f", "qcow2", "-u", "-b", "/var/lib/other.img", "-F", "raw")) == \
        "/var/lib/other.img"


def test_self_contained_images_name_nothing(tmp_path):
    assert backing_reference(_header(tmp_path, "-f", "qcow2")) is None
    assert backing_reference(_header(tmp_path, "-f", "raw")) is None
    assert backing_reference(b"") is None and backing_reference(b"QFI\xfb") is None


def test_a_name_past_the_bytes_read_is_still_refused():
    header = b"QFI\xfb" + (3).to_bytes(4, "big") + (HEADER_BYTES + 10).to_bytes(8, "big") + (5).to_bytes(4, "big")
    assert backing_reference(header) == "a backing file past the header"
