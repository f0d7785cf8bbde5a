"""What an uploaded image's header says, read before anything is written (no Django imports).

A qcow2 image may name a backing file: attached to a guest, qemu would open that path on the host
(another guest's disk, /etc/shadow...), so uploads must be self-contained images.
"""

from __future__ import annotations

import struct

HEADER_BYTES = 64 * 1024  # a qcow2 header and its backing file name are well inside this
_QCOW2 = struct.Struct(">4sIQI")  # magic, version, backing_file_offset, backing_file_size
_QCOW2_MAGIC = b"QFI\xfb"


def backing_reference(header: bytes) -> str | None:
    """The backing file a qcow2 header names (the start of the image), or None when it names none."""
    if len(header) < _QCOW2.size:
        return None
    magic, _version, offset, size = _QCOW2.unpack_from(header)
    if magic != _QCOW2_MAGIC or not offset or not size:
        return None
    name = header[offset:offset + size]
    return name.decode("utf-8", "replace") if len(name) == size else "a backing file past the header"
