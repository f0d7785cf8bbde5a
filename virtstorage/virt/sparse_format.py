"""The sparse download format: a volume as framed data and hole records, so holes stay holes.

``GET /volumes/<id>/download?format=sparse`` answers with MIME_TYPE (chunked, no Content-Length):

    MAGIC                                   8 bytes, b"VSSPARS1" (format version 1)
    frames, each a HEADER: kind (1 byte), offset (u64), length (u64), big-endian, 17 bytes:
      DATA  b"D"  `length` bytes of the volume at `offset` follow the header
      HOLE  b"H"  `length` bytes at `offset` read as zeros; nothing follows
      END   b"E"  offset = the volume's size, length = the data bytes sent; nothing may follow

Frames come in volume order and cover it without overlap. A stream without its END frame was
cut off: the client must refuse it. Only data crosses the socket; a client writes each data frame
at its offset (never writing holes) and finally sets the file's size to the END frame's offset.

scripts/vstransfer.py is a standalone stdlib-only client, so it carries its own copy of these
constants: change them together (and the version in MAGIC with them).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import BinaryIO, NamedTuple

MIME_TYPE = "application/vnd.virtstorage.sparse"
MAGIC = b"VSSPARS1"
HEADER = struct.Struct(">cQQ")
DATA, HOLE, END = b"D", b"H", b"E"


class Frame(NamedTuple):
    kind: bytes
    offset: int
    length: int
    data: bytes = b""


class FormatError(ValueError):
    """The bytes are not a whole, well-formed sparse stream."""


def data_header(offset: int, length: int) -> bytes:
    """The header of a data frame; the caller sends the length bytes after it."""
    return HEADER.pack(DATA, offset, length)


def hole_frame(offset: int, length: int) -> bytes:
    return HEADER.pack(HOLE, offset, length)


def end_frame(total: int, data_bytes: int) -> bytes:
    return HEADER.pack(END, total, data_bytes)


def _read_exactly(source: BinaryIO, size: int) -> bytes:
    data = source.read(size)
    if len(data) != size:
        raise FormatError(f"the stream was cut off: {len(data)} bytes where {size} were due")
    return data


def decode(source: BinaryIO) -> Iterator[Frame]:
    """The frames of a sparse stream, checked (order, overlap, totals); the END frame last."""
    if _read_exactly(source, len(MAGIC)) != MAGIC:
        raise FormatError("not a sparse stream (wrong magic)")
    position = data_bytes = 0
    while True:
        kind, offset, length = HEADER.unpack(_read_exactly(source, HEADER.size))
        if kind == END:
            if offset < position or length != data_bytes:
                raise FormatError(f"end frame says {offset} bytes with {length} of data; "
                                  f"the frames held {position} with {data_bytes}")
            if source.read(1):
                raise FormatError("bytes after the end frame")
            yield Frame(END, offset, length)
            return
        if kind not in (DATA, HOLE):
            raise FormatError(f"unknown frame kind {kind!r}")
        if offset < position:
            raise FormatError(f"frame at {offset} overlaps the previous one (ending at {position})")
        position = offset + length
        if kind == DATA:
            data_bytes += length
            yield Frame(DATA, offset, length, _read_exactly(source, length))
        else:
            yield Frame(HOLE, offset, length)
