"""Volume uploads and downloads over libvirt streams: no Django imports.

Facts this module designs around (measured on libvirt 9.0):
- a sparse upload (VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM) turns holes into
  seek+truncate, so into a volume that already holds data it leaves the old
  bytes in the holes, and it truncates the volume to the end of the stream.
  So an upload always goes into a freshly created, empty volume
  (``prepare_volume``) and the capacity is restored afterwards
  (``restore_capacity``);
- with length 0 a larger source silently grows the volume: we always pass the
  exact length;
- ``virStream.sparseSendAll`` does not abort the stream when a handler raises;
  our own send loop aborts it on any error, so libvirtd never waits for data
  that will not come;
- libvirt refreshes the pool after an upload and probes the file's format, so a
  qcow2 image uploaded into a fresh raw volume shows as qcow2.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import libvirt

from . import imagecheck, localfile, xmlio
from .connection import LibvirtHost
from .errors import OperationFailed, translated
from .localfile import TruncatedSource
from .text import _
from .types import VolumeInfo

# One pread and one send per chunk, of libvirt's own message size (VIR_NET_MESSAGE_LEGACY_PAYLOAD_MAX: what
# virStreamSendAll, and so virsh, sends); memory stays small whatever the volume's size. libvirtd takes a
# larger send as one message and pays for it. Measured on libvirt 9.0, 1 GiB from Python, 3 alternating
# runs each: 1 MiB sends cost libvirtd 2.1-2.5 CPU-s over the local socket and 1.5-1.7 over TCP, 256 KiB
# sends 1.4-1.7 and 1.3-1.4 (and the sender 0.65 CPU-s instead of 1.7 locally).
CHUNK_BYTES = 256 * 1024


@dataclass(frozen=True)
class Segment:
    """A run of a file: data to send, or a hole (zeros the file does not store)."""

    offset: int
    length: int
    data: bool

    @property
    def end(self) -> int:
        return self.offset + self.length


def segments(fd: int, length: int, start: int = 0) -> Iterator[Segment]:
    """Data and hole runs of the open file fd from start up to length, by SEEK_DATA/SEEK_HOLE.

    A file shorter than length ends with a hole up to length (the caller decides whether
    that is an error). File systems without SEEK_DATA report everything as data.
    """
    size = os.fstat(fd).st_size
    pos = start
    while pos < length:
        if pos >= size:
            yield Segment(pos, length - pos, data=False)
            return
        try:
            data_at = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # no data after pos: the rest is a hole
                data_at = size
            elif exc.errno == errno.EINVAL:  # no SEEK_DATA support here
                yield Segment(pos, min(size, length) - pos, data=True)
                pos = min(size, length)
                continue
            else:
                raise
        if data_at > pos:
            end = length if data_at >= size else min(data_at, length)  # a hole runs on past the end
            yield Segment(pos, end - pos, data=False)
            pos = end
            continue
        hole_at = os.lseek(fd, pos, os.SEEK_HOLE)
        end = min(hole_at, length)
        yield Segment(pos, end - pos, data=True)
        pos = end


def prepare_volume(lv: LibvirtHost, pool_name: str, name: str, *, replace: bool) -> VolumeInfo:
    """An empty raw volume to upload into: the old one (if replace) is deleted first.

    A sparse upload leaves old bytes where the source has holes, so writing into a
    volume that holds data would mix old and new: a fresh empty file cannot.
    """
    with translated():
        pool = lv.raw_pool(pool_name)
        if replace:
            pool.storageVolLookupByName(name).delete(0)
        vol = pool.createXML(xmlio.volume_xml(name, 0, fmt="raw", allocation=0), 0)
        return xmlio.parse_volume(vol.XMLDesc(0))


def after_write_in_place(lv: LibvirtHost, pool_name: str, target: localfile.VolumeFile, image_format: str) -> bool:
    """After an image_format image was written into a volume's own file (target, still open; libvirt made the
    volume raw: prepare_volume), make sure libvirt takes the file for what it is.

    A qcow2: libvirt rescans the pool, so it probes the file's format and backing file anew (libvirt 9.0
    re-reads a volume's sizes at each lookup, its format only in a rescan), as it does after its own uploads.
    A raw image: libvirt's record of the volume already holds, and a rescan reads every file of the pool (0.2
    CPU-seconds of libvirtd in a pool of 10,000 volumes), so the file's first bytes are checked here instead
    (imagecheck: UnsafeImage if they carry any signature qemu or libvirt would probe, as a raw volume whose guest
    wrote a qcow2 header does), and the pool is not rescanned. True then: libvirt's figures for the pool itself
    (allocation, free space) are those of before the write."""
    if image_format == "raw":
        imagecheck.inspect(imagecheck.read_head_from_fd(target.fd, os.fstat(target.fd).st_size), "raw")
        return True
    lv.refresh_pool(pool_name)  # waits out another job building a volume in the pool
    return False


def restore_capacity(lv: LibvirtHost, pool_name: str, name: str, capacity: int) -> VolumeInfo:
    """Grow a raw volume back to capacity (a sparse upload truncates it to the data's end).

    Image formats (qcow2...) carry their own virtual size, which is left alone.
    """
    with translated():
        vol = lv.raw_volume(pool_name, name)
        info = xmlio.parse_volume(vol.XMLDesc(0))
        if info.format == "raw" and info.capacity < capacity:
            vol.resize(capacity, 0)
            info = xmlio.parse_volume(vol.XMLDesc(0))
        return info


class StreamWriter:
    """Writes a volume through libvirt's sparse upload stream (any host, any volume type)."""

    # libvirtd rescans the whole pool itself when an upload stream ends, so its figures are current after it.
    leaves_pool_unscanned = False

    @property
    def how(self) -> str:
        return _("through libvirt's sparse stream")

    def __init__(self, lv: LibvirtHost, pool_name: str, name: str, length: int) -> None:
        with translated():
            vol = lv.raw_volume(pool_name, name)
            self.stream = lv.raw.newStream(0)
            vol.upload(self.stream, 0, length, libvirt.VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM)

    def data(self, fd: int, segment: Segment, chunk: int, progress: Callable[[int], None] | None) -> None:
        _send_range(self.stream, fd, segment, chunk, progress)

    def hole(self, segment: Segment) -> None:
        self.stream.sendHole(segment.length, 0)

    def finish(self) -> None:
        self.stream.finish()

    def abort(self) -> None:
        abort_stream(self.stream)


class FileWriter:
    """Writes a new, empty volume's own file in place (localfile): data copied in the kernel, holes
    left as the holes they already are, the size set at the end as a sparse stream sets it; then
    after_write_in_place (leaves_pool_unscanned says what it did)."""

    leaves_pool_unscanned = False

    @property
    def how(self) -> str:
        return _("straight into %(file)s") % {"file": _(localfile.VOLUME_FILE)}

    def __init__(self, lv: LibvirtHost, pool_name: str, target: localfile.VolumeFile, length: int,
                 image_format: str) -> None:
        self.lv, self.pool_name, self.target, self.length = lv, pool_name, target, length
        self.image_format = image_format

    def data(self, fd: int, segment: Segment, chunk: int, progress: Callable[[int], None] | None) -> None:
        localfile.copy_range(fd, self.target.fd, segment.offset, segment.length, progress)

    def hole(self, segment: Segment) -> None:
        pass  # the file is empty: whatever is not written reads as zeros and takes no space

    def finish(self) -> None:
        os.ftruncate(self.target.fd, self.length)
        try:
            self.leaves_pool_unscanned = after_write_in_place(self.lv, self.pool_name, self.target, self.image_format)
        finally:
            self.target.close()

    def abort(self) -> None:
        self.target.close()


VolumeWriter = StreamWriter | FileWriter


def open_writer(lv: LibvirtHost, pool_name: str, name: str, length: int, *, direct: bool = False,
                image_format: str = "") -> VolumeWriter:
    """A writer of length bytes, an image_format image ("": not known), into the empty volume (see
    prepare_volume): its own file when direct I/O is allowed and possible (localfile), else libvirt's sparse
    stream."""
    if direct:
        target = localfile.open_volume_file(lv, pool_name, name, write=True)
        if target is not None:
            if target.size == 0:
                return FileWriter(lv, pool_name, target, length, image_format)
            target.close()  # not the empty file prepare_volume makes: its old bytes must not stay
    return StreamWriter(lv, pool_name, name, length)


def upload_file(lv: LibvirtHost, pool_name: str, name: str, fd: int, length: int,
                progress: Callable[[int], None] | None = None, chunk: int = CHUNK_BYTES,
                available: Callable[[int], int] | None = None, *, direct: bool = False) -> None:
    """Write the first length bytes of fd into the empty volume: open_writer, then send_file."""
    _require_length(fd, length)  # before libvirt sees anything
    send_file(open_writer(lv, pool_name, name, length, direct=direct), fd, length, progress, chunk, available)


def send_file(writer: VolumeWriter, fd: int, length: int, progress: Callable[[int], None] | None = None,
              chunk: int = CHUNK_BYTES, available: Callable[[int], int] | None = None) -> None:
    """Send the first length bytes of fd through the writer: data as data, holes as holes.

    progress(bytes_done) is called after each chunk or hole; it may raise to stop the
    upload (a cancel), in which case the writer is aborted and the exception goes on.
    available(bytes_done), when given, returns how far fd holds final bytes (more than
    bytes_done: it waits for them, or raises to stop), so a file still being written is sent
    as it grows; without it the whole file is final.
    """
    try:
        _require_length(fd, length)
        with translated():
            done = 0
            while done < length:
                ready = min(length, available(done)) if available else length
                for segment in segments(fd, ready, start=done):
                    if segment.data:
                        writer.data(fd, segment, chunk, progress)
                    else:
                        writer.hole(segment)
                        if progress:
                            progress(segment.end)
                done = ready
            writer.finish()
    except BaseException:
        writer.abort()
        raise


def _require_length(fd: int, length: int) -> None:
    if os.fstat(fd).st_size < length:
        raise TruncatedSource(_("the file holds %(size)s bytes, fewer than the %(length)s announced")
                              % {"size": os.fstat(fd).st_size, "length": length})


def _send_range(stream: libvirt.virStream, fd: int, segment: Segment, chunk: int,
                progress: Callable[[int], None] | None) -> None:
    pos = segment.offset
    while pos < segment.end:
        data = os.pread(fd, min(chunk, segment.end - pos), pos)
        if not data:
            raise TruncatedSource(_("the file ended at byte %(position)s while %(end)s were expected")
                                  % {"position": pos, "end": segment.end})
        sent = 0
        while sent < len(data):  # a blocking stream takes it all at once; loop in case it does not
            n = stream.send(data[sent:] if sent else data)
            if n < 0:
                raise OperationFailed(_("libvirt refused the data (non-blocking stream)"))
            sent += n
        pos += len(data)
        if progress:
            progress(pos)


def abort_stream(stream: libvirt.virStream) -> None:
    try:
        stream.abort()
    except libvirt.libvirtError:
        pass  # already broken: nothing more to tell libvirtd
