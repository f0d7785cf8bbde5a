"""A chunk PUT that carries many runs of the file at once: the sparse format's frames (virt/sparse_format.py)
as its body, Content-Type sparse_format.MIME_TYPE.

A chunk request costs the web server 10-20 ms of Django, session and upload-row work whatever its size, so a
sparse image sent a run per request pays for its runs, not its bytes (8 GiB holding 256 MiB in 32 runs: 32
chunk requests and a holes request). Framed, its data runs and its holes go in one request. Each data frame is
written as a chunk of its own is (staging.write_body, or onto a relayed upload's relay), each hole recorded as
declared zeros; what arrived is recorded at most every RECORD_SECONDS and at the end, so a streaming job
follows and a request cut short keeps its whole frames and what was written of the last.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from django.utils.translation import gettext as _

from virtstorage.virt.sparse_format import DATA, HOLE, Block, FormatError, FrameReader

from . import relay, staging
from .models import Upload

# Whole frames are recorded at most this often (a transaction on the Upload row, a few ms of the web's CPU, and
# a wake-up of the job): often enough that the job writing the volume follows a request of many short runs
# instead of starting when it ends, which matters where the job writes through libvirt's streams.
RECORD_SECONDS = 0.05


class FramesCut(ValueError):
    """The body ended inside a data frame: what arrived is kept, the rest is to be sent again."""


class _Arrived(staging.Unrecorded):
    """The ranges that arrived and are not recorded yet: data written, holes declared (pushed as zeros first,
    for a relayed upload). A data frame recorded while it arrives takes them along (staging.RecordPace)."""

    def __init__(self, upload: Upload) -> None:
        super().__init__(upload)
        self.unpushed = 0  # holes[unpushed:] are not on the relay yet
        self.at = time.monotonic()

    def push_holes(self) -> None:
        if self.upload.relayed and self.unpushed < len(self.holes):
            relay.push_zeros(self.upload, self.holes[self.unpushed:])
        self.unpushed = len(self.holes)

    def record(self, data: Sequence[tuple[int, int]] = ()) -> None:
        self.push_holes()
        super().record(data)
        self.unpushed, self.at = 0, time.monotonic()

    def record_if_due(self) -> None:
        if time.monotonic() - self.at >= RECORD_SECONDS:
            self.record()


def receive(blocks: Iterable[Block], upload: Upload) -> Upload:
    """Write the data frames of a framed body and record what arrived, in the order it arrived; the upload as
    recorded. Raises FormatError (a malformed body), FramesCut, ValueError or relay.BufferFull: what arrived
    before is recorded in any case."""
    reader = FrameReader(blocks, size=upload.size)
    write = relay.push_body if upload.relayed else staging.write_body
    arrived = _Arrived(upload)
    try:
        for frame in reader.frames():
            end = frame.offset + frame.length
            if frame.kind == HOLE:
                arrived.holes.append((frame.offset, end))
            elif frame.kind == DATA:
                arrived.push_holes()  # the relay's entries go in file order
                got = write(reader.data(), arrived.upload, frame.offset, frame.length, arrived)
                if got != frame.length:  # write recorded the part that arrived
                    raise FramesCut(_("The request was cut off in the data frame at %(offset)s: %(got)s of its "
                                      "%(length)s bytes arrived (those are kept); send the rest again.")
                                    % {"offset": frame.offset, "got": got, "length": frame.length})
                arrived.data.append((frame.offset, end))
            arrived.record_if_due()
    finally:
        arrived.record()
    return arrived.upload


__all__ = ["FormatError", "FramesCut", "receive"]
