"""An upload's staging file: a sparse file of the upload's size that chunks are written into as they arrive,
what has arrived recorded on the Upload row, and the staging space's reserve.

The upload job (upload_job.py) reads the file and writes the volume; the views (upload_views.py) hand
request bodies here. Zero pieces in ranges not received before are never written, so the file stays thin.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterable, Iterator, Sequence

import redis
from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django.utils.translation import gettext as _

from jobs import progress
from jobs.rows import for_update
from virtstorage.virt.sparse_format import Block
from virtstorage.virt.units import binary_size

from .asgi_upload import BODY_STREAM_KEY, BodyAborted
from .models import Upload, merge_range

BODY_PIECE = 1024 * 1024  # the request body is copied to the staging file in pieces this big
# While a chunk arrives its bytes are recorded as received every RECORD_BYTES, and at most every
# RECORD_SECONDS: a record is a transaction on the Upload row run by the view thread, holding the GIL the
# server needs to hand over the next body message, and at 16 MiB apart it took a fifth of the web's CPU
# for a fast client (64 a GiB); a slow client's chunk is still recorded every 16 MiB.
RECORD_BYTES = 16 * 1024 * 1024
RECORD_SECONDS = 0.25
_ZERO_PIECE = bytes(BODY_PIECE)


def create_staging_file(upload: Upload) -> None:
    """A sparse file of the upload's size, readable by this user only: ranges never written (holes) read as
    zeros and cost no disk."""
    path = upload.staging_path
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        os.ftruncate(fd, upload.size)
    except OSError:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    os.close(fd)


def body_blocks(request: HttpRequest) -> Iterator[list[bytes]]:
    """The request body in blocks of pieces: streamed from the connection when the ASGI wrapper
    (asgi_upload) left it there, else read from Django's spooled body (tests, WSGI)."""
    stream = getattr(request, "scope", {}).get(BODY_STREAM_KEY)
    if stream is None:
        while piece := request.read(BODY_PIECE):
            yield [piece]
        return
    while block := stream.next_block():
        yield block


def all_zeros(piece: bytes) -> bool:
    # startswith compares with memcmp; slices of a memoryview copy nothing (of bytes they would).
    view = memoryview(piece)
    return all(_ZERO_PIECE.startswith(view[i:i + BODY_PIECE]) for i in range(0, len(piece), BODY_PIECE))


class Unrecorded:
    """A request's ranges that arrived and are not recorded on the upload's row yet (a framed request's whole
    frames). A chunk's bytes recorded while they arrive (RecordPace) go in the same write, after these: the row
    gets a request's ranges in the order they arrived, so a reader never sees a frame without those before it."""

    def __init__(self, upload: Upload) -> None:
        self.upload = upload
        self.data: list[tuple[int, int]] = []
        self.holes: list[tuple[int, int]] = []

    def record(self, data: Sequence[tuple[int, int]] = ()) -> None:
        """Record the ranges held, and data after them, in one write (self.upload is then the row as recorded)."""
        if self.data or self.holes or data:
            self.upload = record(self.upload, [*self.data, *data], holes=self.holes)
        self.data, self.holes = [], []


class RecordPace:
    """When the bytes of a chunk written so far are next recorded as received (see RECORD_BYTES), and with what
    arrived before them and is not recorded yet (earlier)."""

    def __init__(self, offset: int, earlier: Unrecorded | None = None) -> None:
        self.recorded = offset  # the chunk's bytes before this are recorded
        self.earlier = earlier
        self._at = time.monotonic()

    def due(self, pos: int, end: int) -> bool:
        """Whether to record up to pos now (never the chunk's last byte: the view records the whole chunk)."""
        return (pos < end and pos - self.recorded >= RECORD_BYTES
                and time.monotonic() - self._at >= RECORD_SECONDS)

    def done(self, pos: int) -> None:
        self.recorded, self._at = pos, time.monotonic()

    def keep(self, upload: Upload, pos: int) -> None:
        """Record the chunk's bytes from the last record up to pos."""
        (self.earlier or Unrecorded(upload)).record([(self.recorded, pos)])
        self.done(pos)

    def keep_cut(self, upload: Upload, pos: int, end: int) -> None:
        """A chunk that stopped before its end (cut short, refused) keeps what arrived up to pos."""
        if self.recorded < pos < end:
            self.keep(upload, pos)


def write_body(blocks: Iterable[Block], upload: Upload, offset: int, length: int,
               earlier: Unrecorded | None = None) -> int:
    """Copy a chunk's body (body_blocks, or a data frame's) into the staging file at offset; returns bytes read
    (compare to length). What arrived before it and is not recorded yet (earlier) is recorded with its bytes.

    Pieces of zeros in ranges not received before are skipped: the staging file is sparse,
    so they already read as zeros and a script's dense upload still stays thin. The bytes
    written so far are recorded as received while the chunk arrives (RecordPace): a streaming
    job follows a large chunk, and a chunk cut short keeps what did arrive.
    """
    fresh = not any(lo < offset + length and offset < hi for lo, hi in upload.received)
    fd = os.open(upload.staging_path, os.O_WRONLY)
    pos = offset
    pace = RecordPace(offset, earlier)
    end = offset + length
    try:
        for pieces in blocks:
            size = sum(len(piece) for piece in pieces)
            if pos + size > end:
                raise ValueError(_("The body holds more than the %(length)s bytes announced.") % {"length": length})
            if not (fresh and all(all_zeros(piece) for piece in pieces)):
                written = os.pwritev(fd, pieces, pos)  # one system call per block, no copy to join pieces
                if written < size:  # a full disk: writing the rest raises the error
                    os.pwrite(fd, b"".join(pieces)[written:], pos + written)
            pos += size
            if pace.due(pos, end):
                pace.keep(upload, pos)
    except BodyAborted:
        pass  # the client is gone; the short count says so
    finally:
        os.close(fd)
    pace.keep_cut(upload, pos, end)
    return pos - offset


def record(upload: Upload, data: Sequence[tuple[int, int]] = (), *, holes: Sequence[tuple[int, int]] = ()) -> Upload:
    """Add [start, end) ranges to what the upload has received: data written, and holes (declared zeros, not
    sent), in one write, so a reader never sees a framed request's data without its holes; then tell its job
    (announce)."""
    with transaction.atomic():
        upload = for_update(Upload.objects).get(pk=upload.pk)
        received = upload.received
        for start, end in data:
            received = merge_range(received, start, end)
        with_data = sum(hi - lo for lo, hi in received)
        for start, end in holes:
            received = merge_range(received, start, end)
        upload.received = received
        upload.received_bytes = sum(hi - lo for lo, hi in received)
        upload.hole_bytes += upload.received_bytes - with_data
        upload.state = Upload.State.RECEIVING
        upload.save(update_fields=["received", "received_bytes", "hole_bytes", "state", "updated_at"])
        transaction.on_commit(lambda: announce(upload.pk))
    return upload


# A job writing a new volume while its chunks arrive waits for news of its upload's row (a range recorded,
# the client's complete, an abandon) on this Redis list, holding at most one wake-up; it re-reads the row at
# least every upload_job.WAIT_MAX_SECONDS all the same, so a lost wake-up (Redis restarted) only slows it.
def _news_key(upload_pk) -> str:
    return progress.key("upload", upload_pk, "news")


def announce(upload_pk) -> None:
    """Wake the upload's job, if it waits: its row changed."""
    key = _news_key(upload_pk)
    try:
        progress.client().pipeline(transaction=False).rpush(key, 1).ltrim(key, 0, 0).expire(key, 3600).execute()
    except redis.RedisError:
        pass


def wait_for_news(upload_pk, seconds: float) -> None:
    """Sleep until the upload's row changes (announce) or for seconds."""
    try:
        progress.client().blpop([_news_key(upload_pk)], timeout=seconds)
    except redis.RedisError:
        time.sleep(seconds)


def no_room_for(length: int) -> str | None:
    """Why writing length bytes is refused (it would leave the staging file system less than its reserve),
    or None when there is room."""
    free = shutil.disk_usage(settings.UPLOAD_STAGING_DIR).free
    if free - length >= settings.UPLOAD_STAGING_RESERVE_BYTES:
        return None
    return _("The server has %(free)s free for uploads and keeps %(reserve)s in reserve, so it cannot take this "
             "%(chunk)s chunk. Nothing was written; ask an admin to free space, then resume.") % {
        "free": binary_size(free), "reserve": binary_size(settings.UPLOAD_STAGING_RESERVE_BYTES),
        "chunk": binary_size(length)}
