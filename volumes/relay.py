"""Uploads into a host with a worker of its own, relayed through Redis: the chunks go where the job runs.

A worker beside a remote libvirt host (Host.queue) cannot read the web server's disk. For such a host
(settings.UPLOAD_RELAY) the chunk view writes no staging file: it pushes the body onto the upload's Redis
stream, data as (offset, bytes) entries of at most PIECE bytes and zeros as (offset, length) markers, and
the upload job, started with the upload on the host's transfers queue, takes the entries off into a staging
file of its own (under its VAR_DIR), holes left as holes. From that file the job writes the volume as it
does for a staged upload.

Memory stays bounded: at most UPLOAD_RELAY_BUFFER_BYTES of an upload wait in Redis. A view that would go past
that waits for the job to take some, up to UPLOAD_RELAY_WAIT_SECONDS, then gives up with BufferFull (a 503
with Retry-After, which clients retry). The job counts a range as arrived only once it is in its own file.
A job that fails keeps the file and a note of its ranges beside it, so a later job of the upload on the same
machine goes on from there; a job that holds less than the Upload row says (a killed worker's bytes) corrects
the row, and the client sends the rest again.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from itertools import chain
from pathlib import Path
from typing import Any

import redis
from django.conf import settings
from django.db import transaction
from django.utils.translation import gettext as _

from jobs import progress
from jobs.rows import for_update
from jobs.runner import JobCancelled, JobContext
from virtstorage.virt.sparse_format import Block

from . import staging
from .asgi_upload import BodyAborted
from .models import Upload, merge_ranges

log = logging.getLogger(__name__)

PIECE = 1024 * 1024  # data entries are at most this big
ZERO_PAIR_COST = 16  # what a zeros marker counts against the buffer, per range
TAKE_ENTRIES = 32  # entries the job takes off the stream per read
BLOCK_MS = 500  # how long the job waits on the stream before it looks at the Upload row
CANCEL_CHECK_SECONDS = 0.2
NOTE_SECONDS = 1.0  # the note of what the staging file holds is rewritten at least this often while bytes come
_ZEROS = bytes(PIECE)


def relayed(pool: Any, mode: str | None = None) -> bool:
    """Whether a transfer with this pool goes through a relay: a host with a worker of its own ("auto"). mode: the
    setting of that kind of transfer (UPLOAD_RELAY, the default, or DOWNLOAD_RELAY)."""
    mode = mode or settings.UPLOAD_RELAY
    return mode == "always" or (mode == "auto" and bool(pool.host.queue))


def _keys(upload_id: Any) -> tuple[str, str]:
    return progress.key("upload", upload_id, "data"), progress.key("upload", upload_id, "buffered")


class BufferFull(Exception):
    """The upload's relay buffer stayed full for UPLOAD_RELAY_WAIT_SECONDS: its job is not taking the bytes."""

    retry_after = 5


def discard(upload_id: Any) -> None:
    """Drop what the relay holds of an upload (abandoned, expired or done); quiet when Redis is away, as the keys
    expire anyway."""
    try:
        progress.client().delete(*_keys(upload_id))
    except redis.RedisError as exc:
        log.warning("could not drop the relay keys of upload %s: %s", upload_id, exc)


# -- The web's end: pushing a chunk ---------------------------------------------------

class _Pusher:
    def __init__(self, upload: Upload) -> None:
        self.data_key, self.count_key = _keys(upload.pk)
        self.redis = progress.client()
        self.ttl = max(60, int(settings.UPLOAD_EXPIRE_HOURS * 3600))
        self.buffered = int(self.redis.get(self.count_key) or 0)

    def _fits(self, cost: int) -> bool:
        # An empty buffer takes any entry, so a bound smaller than PIECE cannot stop an upload.
        return self.buffered <= 0 or self.buffered + cost <= settings.UPLOAD_RELAY_BUFFER_BYTES

    def _wait_for_room(self, cost: int) -> None:
        deadline = time.monotonic() + settings.UPLOAD_RELAY_WAIT_SECONDS
        pause = 0.005
        while not self._fits(cost):
            if time.monotonic() >= deadline:
                raise BufferFull(
                    _("The host's worker is not taking this upload's bytes (%(bytes)s bytes wait for it); nothing "
                      "more was taken. Send the chunk again in a moment.") % {"bytes": self.buffered})
            time.sleep(pause)
            pause = min(pause * 2, 0.2)
            self.buffered = int(self.redis.get(self.count_key) or 0)

    def push(self, fields: dict, cost: int) -> None:
        self._wait_for_room(cost)
        pipe = self.redis.pipeline()
        pipe.xadd(self.data_key, fields)
        pipe.incrby(self.count_key, cost)
        pipe.expire(self.data_key, self.ttl)
        pipe.expire(self.count_key, self.ttl)
        self.buffered = pipe.execute()[1]

    def zeros(self, ranges: list[tuple[int, int]]) -> None:
        flat = [n for start, end in ranges for n in (start, end - start)]
        self.push({"z": struct.pack(f"<{len(flat)}q", *flat)}, ZERO_PAIR_COST * len(ranges))


@contextmanager
def _redis_answers() -> Iterator[None]:
    """Redis away is a retryable refusal too (503), as a full buffer is."""
    try:
        yield
    except redis.RedisError as exc:
        raise BufferFull(_("Redis, which carries uploads to the host's worker, is not answering (%(error)s). Send "
                           "the chunk again in a moment.") % {"error": exc}) from exc


def push_zeros(upload: Upload, ranges: list[tuple[int, int]]) -> None:
    """Declared zeros ([start, end) ranges, not sent): a marker the job applies in order. Raises BufferFull."""
    if ranges:
        with _redis_answers():
            _Pusher(upload).zeros(ranges)


def push_body(blocks: Iterable[Block], upload: Upload, offset: int, length: int,
              earlier: staging.Unrecorded | None = None) -> int:
    """Push a chunk's body (staging.body_blocks, or a data frame's) onto the relay; returns the bytes pushed
    (compare to length). Raises ValueError for a body longer than length, BufferFull when the job does not take
    the bytes (what was pushed is recorded, after what arrived before it and is not recorded yet: earlier).

    Zero pieces go as markers, whether or not their range arrived before: the job writes zeros only over data
    it holds there, so holes stay holes and a chunk sent again still replaces what it covers."""
    with _redis_answers():
        return _push_body(blocks, upload, offset, length, earlier)


def _push_body(blocks: Iterable[Block], upload: Upload, offset: int, length: int,
               earlier: staging.Unrecorded | None) -> int:
    pusher = _Pusher(upload)
    pusher._wait_for_room(min(length, PIECE))  # a full buffer refuses the chunk before any of its body is read
    end = offset + length
    pos = pushed = offset  # read from the body / on the relay
    pace = staging.RecordPace(offset, earlier)  # and recorded on the row
    zeros_from: int | None = None

    def flush_zeros(upto: int) -> None:
        nonlocal zeros_from, pushed
        if zeros_from is not None and zeros_from < upto:
            pusher.zeros([(zeros_from, upto)])
            pushed = upto
        zeros_from = None

    try:
        try:
            for pieces in blocks:
                block = pieces[0] if len(pieces) == 1 else b"".join(pieces)
                if pos + len(block) > end:
                    raise ValueError(_("The body holds more than the %(length)s bytes announced.") % {"length": length})
                view = memoryview(block)
                for i in range(0, len(block), PIECE):
                    piece = view[i:i + PIECE]
                    if staging.all_zeros(piece):
                        zeros_from = pos + i if zeros_from is None else zeros_from
                        continue
                    flush_zeros(pos + i)
                    pusher.push({"o": pos + i, "d": piece}, len(piece))
                    pushed = pos + i + len(piece)
                pos += len(block)
                if pace.due(pos, end):
                    flush_zeros(pos)
                    pace.keep(upload, pos)
        except BodyAborted:
            pass  # the client is gone; the short count says so
        flush_zeros(pos)
    finally:
        pace.keep_cut(upload, pushed, end)  # a chunk cut short (or refused) keeps what went onto the relay
    return pushed - offset


# -- The job's end: taking the entries into a staging file of its own -------------------

def sweep_orphans(directory: Path) -> None:
    """Staging files and notes of uploads gone for UPLOAD_EXPIRE_HOURS: the shared expiry (expire_uploads) runs
    where beat sends it, not on a host's own worker."""
    if not directory.is_dir():
        return
    cutoff = time.time() - settings.UPLOAD_EXPIRE_HOURS * 3600
    known = {str(pk) for pk in Upload.objects.values_list("pk", flat=True)}
    for path in chain(directory.glob("*.part"), directory.glob("*.ranges")):
        try:
            if path.stem not in known and path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)
        except OSError:
            pass


class Receiver:
    """The upload job's end of the relay. available() is what streams.send_file asks: how far the job's own
    staging file holds the bytes from `done`, taking entries off the stream and waiting for them."""

    def __init__(self, ctx: JobContext, upload: Upload, *, truncated: Callable[[Upload], BaseException],
                 stalled: Callable[[int], BaseException]) -> None:
        self.ctx, self.upload, self.size = ctx, upload, upload.size
        self.truncated, self.stalled = truncated, stalled
        self.path = upload.staging_path  # this worker's VAR_DIR: the web server's disk is not needed
        self.note = self.path.with_suffix(".ranges")
        self.data_key, self.count_key = _keys(upload.pk)
        self.redis = progress.client()
        sweep_orphans(self.path.parent)
        self.ranges, self.data = self._open()
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CLOEXEC)
        self.last_id = "0"
        self.heard = self.checked = self.noted = time.monotonic()
        kept = sum(hi - lo for lo, hi in self.ranges)
        ctx.step(_("Receiving the chunks through the relay into this worker's staging file (%(kept)s bytes kept "
                   "from an earlier job)") % {"kept": kept} if kept else
                 _("Receiving the chunks through the relay into this worker's staging file"))
        while self._take(None):
            pass
        self.reconcile()

    def _open(self) -> tuple[list[list[int]], list[list[int]]]:
        """The ranges an earlier job of this upload on this machine kept, else a new empty staging file."""
        if self.path.exists() and self.note.exists():
            try:
                kept = json.loads(self.note.read_text())
                if kept["size"] == self.size == self.path.stat().st_size:
                    return merge_ranges(kept["ranges"]), merge_ranges(kept["data"])
            except (OSError, ValueError, KeyError, TypeError):
                pass
        self.note.unlink(missing_ok=True)
        staging.create_staging_file(self.upload)
        return [], []

    def _take(self, block_ms: int | None) -> bool:
        """Write the next entries into the staging file; False when there were none (after block_ms)."""
        reply = self.redis.xread({self.data_key: self.last_id}, count=TAKE_ENTRIES, block=block_ms)
        if not reply or not reply[0][1]:
            return False
        ids, cost, added = [], 0, []
        for entry_id, fields in reply[0][1]:
            ids.append(entry_id)
            self.last_id = entry_id
            if b"d" in fields:
                offset, data = int(fields[b"o"]), fields[b"d"]
                written = 0
                while written < len(data):
                    written += os.pwrite(self.fd, memoryview(data)[written:], offset + written)
                self.data = merge_ranges([*self.data, [offset, offset + len(data)]])
                added.append([offset, offset + len(data)])
                cost += len(data)
            else:
                flat = struct.unpack(f"<{len(fields[b'z']) // 8}q", fields[b"z"])
                pairs = [[flat[i], flat[i] + flat[i + 1]] for i in range(0, len(flat), 2)]
                self._zero_data(pairs)
                added.extend(pairs)
                cost += ZERO_PAIR_COST * len(pairs)
        self.ranges = merge_ranges(self.ranges + added)
        pipe = self.redis.pipeline()
        pipe.xdel(self.data_key, *ids)
        pipe.decrby(self.count_key, cost)
        pipe.execute()
        self.heard = time.monotonic()
        if len(ids) < TAKE_ENTRIES or self.heard - self.noted >= NOTE_SECONDS:
            self._write_note()  # caught up, or a while since: a killed worker's next job here keeps what it says
        return True

    def _write_note(self) -> None:
        tmp = self.note.with_suffix(".ranges-new")
        tmp.write_text(json.dumps({"size": self.size, "ranges": self.ranges, "data": self.data}))
        tmp.replace(self.note)
        self.noted = time.monotonic()

    def _zero_data(self, zeros: list[list[int]]) -> None:
        """Zeros declared over data this file holds replace it (a chunk sent again); elsewhere they stay holes."""
        if not self.data:
            return
        for start, end in zeros:
            for lo, hi in self.data:
                pos, stop = max(lo, start), min(hi, end)
                while pos < stop:
                    pos += os.pwrite(self.fd, _ZEROS[:min(PIECE, stop - pos)], pos)

    def _run_end(self, done: int) -> int:
        for lo, hi in self.ranges:
            if lo <= done < hi:
                return hi
        return done

    def _completed(self) -> bool:
        completed = Upload.objects.filter(pk=self.upload.pk).values_list("completed", flat=True).first()
        if completed is None:
            raise JobCancelled(_("The upload was abandoned by its owner; the new volume was removed."))
        return completed

    def _check_cancel(self) -> None:
        now = time.monotonic()
        if now - self.checked >= CANCEL_CHECK_SECONDS:
            self.checked = now
            self.ctx.check_cancel()

    def _idle(self, done: int, said: bool) -> bool:
        """Nothing came: raise when the client stopped for UPLOAD_IDLE_SECONDS or on a cancel; say once that the
        job waits. Returns whether it said so."""
        quiet = time.monotonic() - self.heard
        if quiet > settings.UPLOAD_IDLE_SECONDS:
            raise self.stalled(done)
        if not said and quiet > 2:
            said = True
            self.ctx.step(_("Waiting for the client's chunks from byte %(offset)s") % {"offset": done})
        self.ctx.check_cancel()
        return said

    def available(self, done: int) -> int:
        said = False
        while True:
            self._take(None)  # take what is there at once: the web's buffer stays short
            end = self._run_end(done)
            if end > done:
                if said:
                    self.ctx.step(_("Chunks arrive again: sending from byte %(offset)s") % {"offset": done})
                self._check_cancel()
                return end
            if self._take(BLOCK_MS):
                continue
            if self._completed():
                # Every push comes before its range is recorded, and the client completes after its last
                # chunk's answer: what the stream does not hold now never comes.
                while self._take(None):
                    pass
                if self._run_end(done) > done:
                    continue
                self.reconcile()
                self.upload.received = self.ranges
                raise self.truncated(self.upload)
            said = self._idle(done, said)

    def receive_all(self) -> None:
        """Take every byte, then wait for the client's complete (it may still send a chunk again)."""
        done = 0
        while done < self.size:
            done = self.available(done)
            self.ctx.report(done, self.size)
        said = False
        while not self._completed():
            if not self._take(BLOCK_MS):
                said = self._idle(self.size, said)
        while self._take(None):
            pass

    def reconcile(self) -> None:
        """Make the Upload row say what this job holds (less than it said when a killed job's bytes are lost),
        so the client's next look at the upload sends the rest.

        With the row locked, the web records no range; each range it recorded before was pushed before it was
        recorded, so taking every entry now makes this job hold all of them. Without that, a chunk recorded
        between the job's last take and this lock would be written out of the row, and the client told to send
        it again."""
        with transaction.atomic():
            row = for_update(Upload.objects.filter(pk=self.upload.pk)).first()
            while self._take(None):
                pass
            if row is None or row.received == self.ranges:
                return
            row.received = [list(r) for r in self.ranges]
            row.received_bytes = sum(hi - lo for lo, hi in self.ranges)
            row.hole_bytes = min(row.hole_bytes, row.received_bytes)
            row.save(update_fields=["received", "received_bytes", "hole_bytes", "updated_at"])

    def close(self, *, keep: bool) -> None:
        """keep: the upload goes on (a failed job); its bytes and their note stay for the next job here.
        Otherwise the staging file and the relay's keys go."""
        os.close(self.fd)
        if keep:
            self._write_note()
            return
        self.path.unlink(missing_ok=True)
        self.note.unlink(missing_ok=True)
        discard(self.upload.pk)
