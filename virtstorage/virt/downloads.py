"""Volume downloads: no Django imports.

``open_reader`` gives a ``LocalVolumeReader`` (the volume's own file, when the host is this
machine: see localfile) or a ``VolumeReader``, which reads a volume through several libvirt
streams at once, in bounded windows. Either hands the volume out in order: as plain bytes
(``read``, holes as zeros) or as records (``next_record``: ``Data`` and ``Hole``) for a consumer
that keeps holes as holes, such as ``SparseEncoder``, which writes the framed format of
``sparse_format``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Callable
from typing import NamedTuple

import libvirt

from . import localfile, sparse_format, streams, xmlio
from .connection import LibvirtHost
from .errors import InvalidRequest, OperationFailed, VirtError, translated
from .streams import abort_stream
from .text import _
from .types import VolumeInfo

# libvirt hands a download over in messages of at most 256 KiB: recv() never returns more, and
# asking for more only makes libvirt-python allocate (and zero) a larger buffer on every call.
RECV_BYTES = 256 * 1024
READ_BYTES = 1024 * 1024  # what VolumeReader.read gathers per block by default
# Streams read at once, each on its own connection, and the data a worker reads before it hands
# it over. One stream is bound by round trips, so several in parallel go faster when the CPU has
# room; at most STREAMS * WINDOW_BYTES (plus one libvirt message each) are buffered, whatever the
# volume's size. Measured here (2 cores shared with other work, so noisy; reader alone, volume in
# the page cache, best of 3-4), 1 GiB dense: 1 stream x 16 MiB 1.69 s; 2 x 8 MiB 1.21 s;
# 4 x 4 MiB 1.20 s; 4 x 8 MiB 1.21 s; 4 x 16 MiB 1.19 s; 8 x 8 MiB 1.21 s. 8 GiB sparse with
# 256 MiB of data: fixed 8 MiB ranges (1024 round trips) 4 x 8 MiB 0.6-1.2 s; with ranges of
# holes growing (SPAN_GROWTH, ~90 round trips) 0.37 s, against 0.21 s for one stream over the
# whole volume (unbounded memory) and 0.23 s for virsh vol-download --sparse.
STREAMS = 4
WINDOW_BYTES = 8 * 1024 * 1024
SPAN_GROWTH = 8  # a worker's next range is this many times longer after one without data
MAX_SPAN_BYTES = 1024 * 1024 * 1024  # ranges of holes grow up to this
HOLE_SPAN_PER_READ = 256  # SparseEncoder.read(limit) covers at most limit * this of the volume
JOIN_SECONDS = 30.0  # how long close() waits for a worker still inside a libvirt call


class Data(NamedTuple):
    """Bytes of the volume at offset."""

    offset: int
    data: bytes


class Hole(NamedTuple):
    """length bytes at offset that the volume does not hold (they read as zeros)."""

    offset: int
    length: int


Record = Data | Hole
Connect = Callable[[], contextlib.AbstractContextManager[LibvirtHost]]


class ReaderClosed(VirtError):
    """The reader was closed (or aborted) before the end of the volume."""


@functools.lru_cache(maxsize=4)
def _zeros(n: int) -> bytes:
    """n zero bytes, the same object each time: a hole's blocks cost no allocation or copy."""
    return bytes(n)


class _Part(NamedTuple):
    """What a worker read of range seq: records from its start (or from the previous part's end)."""

    seq: int
    records: list[Record]
    end: int  # the offset the records reach
    last: bool  # the range is whole with this part
    worker: _Worker


class _Worker:
    """One connection and thread reading ranges of a volume, each taken when it has room for one.

    A worker reads a range (or, past WINDOW_BYTES of data, a part of it), posts it, and waits for
    the consumer to be done with it before it asks libvirt for more: libvirt streams have no flow
    control (the client library buffers whatever libvirtd sends), so asking only when there is
    room is what bounds memory.
    """

    def __init__(self, reader: VolumeReader, lv: LibvirtHost, index: int) -> None:
        self.reader, self.lv, self.index = reader, lv, index
        self.credit = threading.Semaphore(1)  # given back by the consumer when a part is used up
        self.thread = threading.Thread(target=self._run, name=f"volume-reader-{index}", daemon=True)

    def _wait_for_room(self) -> None:
        self.credit.acquire()
        if self.reader.stopped.is_set():
            raise ReaderClosed(_("the download was stopped"))

    def _run(self) -> None:
        reader = self.reader
        try:
            with translated():
                volume = self.lv.raw_volume(reader.pool_name, reader.name)
            span = reader.window
            while True:
                self._wait_for_room()
                taken = reader.take_range(span)
                if taken is None:
                    return
                seq, start, end = taken
                had_data = False
                while True:
                    records, position, data = self._read_part(volume, start, end)
                    had_data = had_data or data > 0
                    reader.post(_Part(seq, records, position, position >= end, self))
                    if position >= end:
                        break
                    self._wait_for_room()
                    start = position
                # Holes cost no memory (a record each) but a range costs a round trip: after a range
                # without data, ask for a longer one; after data, for a window again.
                span = reader.window if had_data else min(span * SPAN_GROWTH, MAX_SPAN_BYTES)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            reader.fail(exc)

    def _read_part(self, volume: libvirt.virStorageVol, start: int, end: int) -> tuple[list[Record], int, int]:
        """Records from start towards end: all of them, or those up to WINDOW_BYTES of data.

        Returns (records, the offset they reach, data bytes). Stopping early aborts the stream:
        what libvirtd sent past that point is dropped, and the rest is asked for again later.
        """
        reader = self.reader
        records: list[Record] = []
        position = start
        data = 0
        with translated():
            stream = self.lv.raw.newStream(0)
            volume.download(stream, start, end - start, reader.flags)
            try:
                while True:
                    if reader.stopped.is_set():
                        raise ReaderClosed(_("the download was stopped"))
                    if reader.sparse:
                        got = stream.recvFlags(RECV_BYTES, libvirt.VIR_STREAM_RECV_STOP_AT_HOLE)
                    else:
                        got = stream.recv(RECV_BYTES)
                    if got == -3:  # a hole starts here
                        size = stream.recvHole(0)
                        records.append(Hole(position, size))
                        position += size
                    elif isinstance(got, int):
                        raise OperationFailed(_("libvirt stream returned %(code)s") % {"code": got})
                    elif got:
                        records.append(Data(position, got))
                        position += len(got)
                        data += len(got)
                        if data >= reader.window and position < end:
                            abort_stream(stream)
                            return records, position, data
                    else:
                        break
                if position != end:  # the volume shrank under us, say: never hand out a short volume
                    raise OperationFailed(_("libvirt sent %(sent)s bytes of the range at %(start)s, not %(length)s")
                                          % {"sent": position - start, "start": start, "length": end - start})
                stream.finish()
            except BaseException:
                abort_stream(stream)
                raise
        return records, position, data


class _RecordReader:
    """What both readers share: records in volume order (``_next``, of the subclass) handed out with
    the bytes counted, and ``read`` (holes as zeros) on top of them."""

    length: int  # the volume's bytes
    sparse: bool
    how: str  # how the bytes are read, for the job's log
    offset: int  # the bytes handed out are [offset, stop): the whole volume, or a range (an HTTP Range)
    stop: int

    @property
    def size(self) -> int:
        """The bytes this reader hands out: the volume's, or its range's."""
        return self.stop - self.offset

    def _set_range(self, offset: int = 0, stop: int | None = None) -> None:
        """Once length is known: [offset, stop) of it (stop None: to the end)."""
        stop = self.length if stop is None else stop
        if not 0 <= offset <= stop <= self.length:
            raise InvalidRequest(_("the range %(offset)s-%(stop)s is not within the volume's %(length)s bytes")
                                 % {"offset": offset, "stop": stop, "length": self.length})
        self.offset, self.stop = offset, stop

    def __init__(self) -> None:
        self.done = 0  # bytes of the volume handed out, holes included
        self.data_bytes = 0  # of which data (not holes)
        self._pending: Data | None = None  # a record read() took and gave back
        self._hole: Hole | None = None  # what read() has yet to hand out of a hole
        self._closed = False

    def _next(self) -> Record | None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        self.close()

    def next_record(self) -> Record | None:
        """The next Data or Hole record, in volume order; None at the end (and after it)."""
        if self._closed:  # never let a stopped download pass for a whole one
            raise ReaderClosed(_("the download was stopped"))
        record, self._pending = self._pending or self._next(), None
        if isinstance(record, Data):
            self.done += len(record.data)
            self.data_bytes += len(record.data)
        elif record is not None:
            self.done += record.length
        return record

    def read(self, limit: int = READ_BYTES) -> bytes:
        """Up to limit bytes of the volume (holes as zeros); b"" at the end."""
        if self._closed:  # never let a stopped download pass for a whole one
            raise ReaderClosed(_("the download was stopped"))
        parts: list[bytes] = []
        size = 0
        while size < limit:
            if self._hole is not None:
                if parts:  # a hole's zeros go out as blocks of their own (one shared object)
                    break
                n = min(self._hole.length, limit)
                self._hole = Hole(self._hole.offset + n, self._hole.length - n) if n < self._hole.length else None
                return _zeros(n)
            record = self.next_record()
            if record is None:
                break
            if isinstance(record, Hole):
                self._hole = record
                continue
            data = record.data
            if size + len(data) > limit and parts:
                self._pushback(record)
                break
            parts.append(data)
            size += len(data)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _pushback(self, record: Data) -> None:
        """Give back the record just taken: read() sends it in its next block."""
        self._pending = record
        self.done -= len(record.data)
        self.data_bytes -= len(record.data)


class VolumeReader(_RecordReader):
    """Reads a volume through STREAMS libvirt streams in parallel, handed out in order.

    sparse=True asks libvirt for holes instead of zeros (VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM):
    the host does not read or send them. ``next_record()`` gives them as ``Hole`` records;
    ``read()`` as zeros, for an HTTP body that has no holes.

    The reader opens its own connections with ``connect`` (one per stream, e.g.
    ``functools.partial(open_host, uri, shared=False)``) and closes them in ``close()``, which must
    be called on every path (``abort`` is the same call): before the end it stops the streams.
    """

    def __init__(self, connect: Connect, pool_name: str, name: str, *, sparse: bool = False,
                 streams: int = STREAMS, window: int = WINDOW_BYTES, offset: int = 0, stop: int | None = None) -> None:
        super().__init__()
        self.pool_name, self.name, self.sparse = pool_name, name, sparse
        self.flags = libvirt.VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM if sparse else 0
        self.window = window
        self.stopped = threading.Event()
        self._connections = contextlib.ExitStack()
        self._workers: list[_Worker] = []
        try:
            first = self._connections.enter_context(connect())
            with translated():
                self.info: VolumeInfo = xmlio.parse_volume(first.raw_volume(pool_name, name).XMLDesc(0))
            if self.info.type not in ("file", "block"):
                raise InvalidRequest(_("volume %(name)s is a %(type)s: only file and block volumes download")
                                     % {"name": name, "type": self.info.type})
            self.length = self.info.file_bytes
            self._set_range(offset, stop)
            self.streams = max(1, min(streams, -(-self.size // window)))
            hosts = [first] + [self._connections.enter_context(connect()) for _ in range(self.streams - 1)]
        except BaseException:
            self._connections.close()
            raise
        self._ranges_lock = threading.Lock()
        self._cursor = self.offset  # where the next range starts
        self._ranges_taken = 0  # ranges handed to workers, numbered in volume order
        self._posted = threading.Condition()
        self._parts: dict[int, _Part] = {}  # by range number: at most one part of a range waits
        self._error: BaseException | None = None
        self._workers = [_Worker(self, lv, index) for index, lv in enumerate(hosts)]
        self._seq = 0  # the range next_record hands out
        self._position = self.offset  # where the records handed out reach
        self._current: list[Record] = []
        self._current_at = 0
        self._current_worker: _Worker | None = None  # whose part _current is
        for worker in self._workers:
            worker.thread.start()

    # -- worker side -------------------------------------------------------------------
    def take_range(self, span: int) -> tuple[int, int, int] | None:
        """(number, start, end) of the next range to read, at most span long; None at the end."""
        with self._ranges_lock:
            if self._cursor >= self.stop:
                return None
            start = self._cursor
            self._cursor = min(self.stop, start + span)
            self._ranges_taken += 1
            return self._ranges_taken - 1, start, self._cursor

    def post(self, part: _Part) -> None:
        with self._posted:
            self._parts[part.seq] = part
            self._posted.notify_all()

    def fail(self, exc: BaseException) -> None:
        with self._posted:
            if self._error is None:
                self._error = exc
            self._posted.notify_all()

    # -- consumer side ---------------------------------------------------------------
    def _next(self) -> Record | None:
        while self._current_at >= len(self._current):
            if self._current_worker is not None:  # its part is used up: it may read more
                self._current_worker.credit.release()
                self._current_worker = None
            if self._position >= self.stop:
                return None
            with self._posted:
                while (part := self._parts.pop(self._seq, None)) is None:
                    if self._closed:  # never let a stopped download pass for a whole one
                        raise ReaderClosed(_("the download was stopped"))
                    if self._error is not None:
                        raise self._error
                    self._posted.wait()
            if part.last:
                self._seq += 1
            self._position = part.end
            self._current, self._current_at, self._current_worker = part.records, 0, part.worker
        record = self._current[self._current_at]
        self._current_at += 1
        return record

    @property
    def how(self) -> str:
        return _("through %(count)s libvirt streams") % {"count": self.streams}

    def close(self) -> None:
        """Stop reading (libvirt aborts the streams still running) and close the connections."""
        if self._closed:
            return
        self._closed = True
        self.stopped.set()
        for worker in self._workers:
            worker.credit.release()  # a worker waiting for the consumer sees stopped
        with self._posted:
            self._posted.notify_all()
        for worker in self._workers:
            worker.thread.join(JOIN_SECONDS)
        self._current = []
        self._connections.close()


class LocalVolumeReader(_RecordReader):
    """Reads a volume's own file, opened here by localfile.open_volume_file: pread in blocks, and
    holes found with SEEK_DATA/SEEK_HOLE, so they are neither read nor sent (as Hole records;
    ``read`` turns them into zeros, which is also what libvirt would send without sparse)."""

    @property
    def how(self) -> str:
        return _("straight from %(file)s") % {"file": _(localfile.VOLUME_FILE)}

    def __init__(self, target: localfile.VolumeFile, *, sparse: bool = False, offset: int = 0,
                 stop: int | None = None) -> None:
        super().__init__()
        self.target, self.info, self.sparse = target, target.info, sparse
        self.length = target.size
        self._set_range(offset, stop)
        self._segments = streams.segments(target.fd, self.stop, self.offset)
        self._segment: streams.Segment | None = None
        self._position = self.offset

    def _next(self) -> Record | None:
        if self._position >= self.stop:
            return None
        if self._segment is None or self._position >= self._segment.end:
            self._segment = next(self._segments)
        segment, position = self._segment, self._position
        if not segment.data:
            self._position = segment.end
            return Hole(position, segment.length)
        data = os.pread(self.target.fd, min(READ_BYTES, segment.end - position), position)
        if not data:  # the file shrank under us: never hand out a short volume
            raise OperationFailed(_("the volume's file ended at byte %(position)s, before its %(length)s bytes")
                                  % {"position": position, "length": self.length})
        self._position += len(data)
        return Data(position, data)

    def close(self) -> None:
        self._closed = True
        self.target.close()


class FedReader(_RecordReader):
    """Records read somewhere else and handed in here: a worker beside a remote host reads the volume
    (volumes/download_relay.py) and this process sends it. next_from() gives the next Data or Hole
    record of [offset, stop) in volume order, None at the end (or raises what stopped the reading);
    on_close() is called once, by the first close()."""

    def __init__(self, length: int, how: str, next_from: Callable[[], Record | None], on_close: Callable[[], None],
                 *, sparse: bool = False, offset: int = 0, stop: int | None = None) -> None:
        super().__init__()
        self.length, self.how, self.sparse = length, how, sparse
        self._set_range(offset, stop)
        self._next_from, self._on_close = next_from, on_close

    def _next(self) -> Record | None:
        return self._next_from()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._on_close()


Reader = VolumeReader | LocalVolumeReader | FedReader


def open_reader(connect: Connect, pool_name: str, name: str, *, sparse: bool = False,
                direct: bool = False, offset: int = 0, stop: int | None = None) -> Reader:
    """A reader of the volume (of its bytes [offset, stop) when given): its own file when direct I/O is
    allowed and possible (localfile), else libvirt's streams. close() it on every path."""
    if direct:
        with connect() as lv:
            target = localfile.open_volume_file(lv, pool_name, name)
        if target is not None:
            try:
                return LocalVolumeReader(target, sparse=sparse, offset=offset, stop=stop)
            except BaseException:
                target.close()
                raise
    return VolumeReader(connect, pool_name, name, sparse=sparse, offset=offset, stop=stop)


class SparseEncoder:
    """The framed sparse format (see sparse_format) of a reader's records, in blocks for a response.

    Adjacent data records become one data frame of up to about limit bytes, adjacent holes one hole
    frame; the end frame closes the stream, so a client can tell a whole download from a cut one.
    """

    def __init__(self, reader: Reader) -> None:
        self.reader = reader
        self._pending: Record | None = None
        self._started = self._ended = False

    @property
    def done(self) -> int:
        return self.reader.done

    @property
    def length(self) -> int:
        return self.reader.length

    def read(self, limit: int = READ_BYTES) -> bytes:
        """The next frames, about limit bytes of them; b"" after the end frame."""
        if self._ended:
            return b""
        out: list[bytes] = [] if self._started else [sparse_format.MAGIC]
        self._started = True
        size = 0
        # Holes cost no bytes: bound the volume range one call covers too, so the caller still
        # reports progress and looks for a cancel while a huge empty volume goes by.
        covered_until = self.reader.done + limit * HOLE_SPAN_PER_READ
        while size < limit and self.reader.done < covered_until:
            record = self._pending or self.reader.next_record()
            self._pending = None
            if record is None:
                out.append(sparse_format.end_frame(self.reader.length, self.reader.data_bytes))
                self._ended = True
                break
            if isinstance(record, Hole):
                offset, length = record
                while self.reader.done < covered_until:
                    following = self.reader.next_record()
                    if not isinstance(following, Hole):
                        self._pending = following
                        break
                    length += following.length
                out.append(sparse_format.hole_frame(offset, length))
                continue
            pieces, offset, length = [record.data], record.offset, len(record.data)
            while size + length < limit:
                following = self.reader.next_record()
                if not isinstance(following, Data):
                    self._pending = following
                    break
                pieces.append(following.data)
                length += len(following.data)
            out.append(sparse_format.data_header(offset, length))
            out.extend(pieces)
            size += length
        return b"".join(out)
