"""A download's reader: the image check, then the bytes the request asks for (HTTP's single Range, guarded by an
ETag), read one way or the other (virtstorage/virt/downloads.py).

Where the bytes are read: in the web's download view (volumes/download_view.py), or by a host's own worker for a
relayed download (volumes/download_relay.py), which gets the request's Range and If-Range headers with its task.
"""

from __future__ import annotations

import functools
from typing import Any

from virtstorage.virt import downloads, open_host
from virtstorage.virt.types import VolumeInfo

from . import safety


class Unsatisfiable(Exception):
    """The Range asked for lies past the volume's end (416, which names the volume's length)."""

    def __init__(self, length: int) -> None:
        super().__init__(length)
        self.length = length


def byte_range(header: str, length: int) -> tuple[int, int] | None:
    """[start, stop) of a single-range ``Range: bytes=…`` header (RFC 9110 14.2: first-last, first-, -suffix),
    within length bytes; None to send the whole volume (no header, another unit, several ranges, or a header
    this cannot read, which a server may ignore). Unsatisfiable when the range starts past the end."""
    unit, _eq, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash or not (first or last) or not all(part.isdigit() for part in (first, last) if part):
        return None
    if not first:  # the last N bytes
        if int(last) == 0:
            raise Unsatisfiable(length)
        return max(0, length - int(last)), length
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= length:
        raise Unsatisfiable(length)
    return start, min(length, int(last) + 1) if last else length


def validator(info: VolumeInfo) -> str:
    """The volume's strong ETag, from its file's status-change time (to the nanosecond: it moves with every
    write) and its size: an If-Range with it resumes a download only of the same bytes. "" when libvirt reports
    no such time."""
    return f'"{info.ctime_ns:x}-{info.file_bytes:x}"' if info.ctime_ns else ""


def wanted_range(range_header: str | None, if_range: str | None, length: int, etag: str) -> tuple[int, int] | None:
    """The range to send, or None for the whole volume: none is asked, or an If-Range names other bytes (the
    volume changed since the first part: resuming would splice two versions), or there is no ETag (the framed
    format: its frames are not the volume's bytes)."""
    if not range_header or not etag or (if_range is not None and if_range != etag):
        return None
    return byte_range(range_header, length)


def open_checked(host: Any, pool_name: str, name: str, *, sparse: bool, framed: bool = False,
                 range_header: str | None = None, if_range: str | None = None) -> tuple[downloads.Reader, str]:
    """The image check every operation makes (volumes/safety.py), then a reader of the bytes asked for (all of
    them for the framed format) and the ETag the response carries ("" for the framed format). Raises UnsafeImage,
    VirtError or Unsatisfiable. The reader's streams are its own connections: they end with the download."""
    with open_host(host.uri) as lv:
        info = safety.verify(host, lv, pool_name, name)
    etag = "" if framed else validator(info)
    part = wanted_range(range_header, if_range, info.file_bytes, etag)
    connect = functools.partial(open_host, host.uri, shared=False)
    reader = downloads.open_reader(connect, pool_name, name, sparse=sparse, direct=host.direct_io,
                                   **({"offset": part[0], "stop": part[1]} if part else {}))
    return reader, etag
