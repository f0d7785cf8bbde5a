"""The sparse format: a volume as framed data and hole records, so holes stay holes.

``GET /volumes/<id>/download?format=sparse`` answers with MIME_TYPE (chunked, no Content-Length), and a
chunk ``PUT`` of an upload with this Content-Type carries many runs of the file in one request:

    MAGIC                                   8 bytes, b"VSSPARS1" (format version 1)
    frames, each a HEADER: kind (1 byte), offset (u64), length (u64), big-endian, 17 bytes:
      DATA  b"D"  `length` bytes of the volume at `offset` follow the header
      HOLE  b"H"  `length` bytes at `offset` read as zeros; nothing follows
      END   b"E"  offset = the volume's size, length = the data bytes sent; nothing may follow

Frames come in volume order and cover it without overlap. A stream without its END frame was
cut off: the client must refuse it. An upload's frames need not cover the file (the END frame's offset
is still its size): they are the runs the request sends. Only data crosses the socket; a client writes each data frame
at its offset (never writing holes) and finally sets the file's size to the END frame's offset.

scripts/vstransfer.py is a standalone stdlib-only client, so it carries its own copy of these
constants: change them together (and the version in MAGIC with them).
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from typing import BinaryIO, NamedTuple

from .text import _

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


Block = Sequence[bytes | memoryview]  # a piece of a stream as it arrives: a few bytes-like pieces


class FrameReader:
    """The frames of a sparse stream arriving in blocks, checked as they come (order, overlap, totals and,
    with size, the file's end). A data frame's bytes are handed on in blocks by data(), never gathered: a
    frame may hold GiBs. What a caller leaves of a data frame is skipped at the next frame."""

    def __init__(self, blocks: Iterable[Block], *, size: int | None = None) -> None:
        self._blocks = iter(blocks)
        self._pending: deque[memoryview] = deque()
        self._pending_bytes = 0
        self._left = 0  # bytes of the current data frame not handed on yet
        self.size = size

    def _fill(self, wanted: int) -> bool:
        """Whether wanted bytes are pending, taking blocks until they are or the stream ends."""
        while self._pending_bytes < wanted:
            block = next(self._blocks, None)
            if block is None:
                return False
            for piece in block:
                if len(piece):
                    self._pending.append(memoryview(piece))
                    self._pending_bytes += len(piece)
        return True

    def _pop(self, limit: int) -> list[memoryview]:
        """Pending pieces of at most limit bytes in all, the last one split if it goes past limit."""
        block, size = [], 0
        while self._pending and size < limit:
            piece = self._pending.popleft()
            if len(piece) > limit - size:
                self._pending.appendleft(piece[limit - size:])
                piece = piece[:limit - size]
            block.append(piece)
            size += len(piece)
        self._pending_bytes -= size
        return block

    def _take(self, size: int) -> bytes:
        if not self._fill(size):
            raise FormatError(_("The sparse stream was cut off: %(got)s bytes where %(size)s were due.")
                              % {"got": self._pending_bytes, "size": size})
        return b"".join(self._pop(size))

    def data(self) -> Iterator[list[memoryview]]:
        """The current data frame's bytes, a block at a time; fewer than its length when the stream ends first."""
        while self._left and (self._pending or self._fill(1)):
            block = self._pop(self._left)
            self._left -= sum(len(piece) for piece in block)
            yield block

    def frames(self) -> Iterator[Frame]:
        """The frames (a data frame without its bytes: read them with data()); the END frame last."""
        if self._take(len(MAGIC)) != MAGIC:
            raise FormatError(_("This is not a sparse stream (its first bytes are not the format's magic)."))
        position = data_bytes = 0
        while True:
            for _block in self.data():  # what the caller left of the last data frame
                pass
            if self._left:
                raise _cut_inside(self._left)
            kind, offset, length = HEADER.unpack(self._take(HEADER.size))
            if kind == END:
                if offset < position or length != data_bytes or (self.size is not None and offset != self.size):
                    raise FormatError(_("The end frame says %(size)s bytes with %(data)s of data; the frames held "
                                        "%(held)s bytes of data, of a file of %(file)s.")
                                      % {"size": offset, "data": length, "held": data_bytes,
                                         "file": position if self.size is None else self.size})
                if self._fill(1):
                    raise FormatError(_("The sparse stream goes on after its end frame."))
                yield Frame(END, offset, length)
                return
            if kind not in (DATA, HOLE):
                raise FormatError(_("Unknown frame kind %(kind)r in the sparse stream.") % {"kind": kind})
            if offset < position:
                raise FormatError(_("The frame at %(offset)s overlaps the one before it (which ends at %(end)s): "
                                    "frames go in file order.") % {"offset": offset, "end": position})
            if self.size is not None and (length == 0 or offset + length > self.size):
                raise FormatError(_("The frame of %(length)s bytes at %(offset)s is empty or goes past the end of "
                                    "the file (%(size)s bytes).")
                                  % {"length": length, "offset": offset, "size": self.size})
            position = offset + length
            if kind == DATA:
                data_bytes += length
                self._left = length
            yield Frame(kind, offset, length)


def decode(source: BinaryIO) -> Iterator[Frame]:
    """The frames of a whole sparse stream read from source, data included, checked; the END frame last."""
    reader = FrameReader(iter(lambda: [source.read(1024 * 1024)], [b""]))
    for frame in reader.frames():
        if frame.kind == DATA:
            data = b"".join(b"".join(block) for block in reader.data())
            if len(data) != frame.length:
                raise _cut_inside(frame.length - len(data))
            frame = frame._replace(data=data)
        yield frame


def _cut_inside(missing: int) -> FormatError:
    return FormatError(_("The sparse stream was cut off inside a data frame: %(left)s bytes of it are missing.")
                       % {"left": missing})
