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

from . import xmlio
from .connection import LibvirtHost
from .errors import OperationFailed, translated
from .types import VolumeInfo

# One pread and one send per chunk; memory stays a few MiB whatever the volume's size. Measured on
# libvirt 9.0 (1 GiB upload, 4 runs each): 1 MiB sends take ~1.0 s, 256 KiB ~1.2 s, 4 MiB ~2.0 s.
CHUNK_BYTES = 1024 * 1024


class TruncatedSource(OperationFailed):
    """The file to upload ended before the length that was announced."""


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


def upload_file(lv: LibvirtHost, pool_name: str, name: str, fd: int, length: int,
                progress: Callable[[int], None] | None = None, chunk: int = CHUNK_BYTES,
                available: Callable[[int], int] | None = None) -> None:
    """Send the first length bytes of fd into the volume: data as data, holes as holes.

    progress(bytes_done) is called after each chunk or hole; it may raise to stop the
    upload (a cancel), in which case the stream is aborted and the exception goes on.
    available(bytes_done), when given, returns how far fd holds final bytes (more than
    bytes_done: it waits for them, or raises to stop), so a file still being written is sent
    as it grows; without it the whole file is final.
    """
    if os.fstat(fd).st_size < length:
        raise TruncatedSource(f"the file holds {os.fstat(fd).st_size} bytes, fewer than the {length} announced")
    with translated():
        vol = lv.raw_volume(pool_name, name)
        stream = lv.raw.newStream(0)
        vol.upload(stream, 0, length, libvirt.VIR_STORAGE_VOL_UPLOAD_SPARSE_STREAM)
        try:
            done = 0
            while done < length:
                ready = min(length, available(done)) if available else length
                for segment in segments(fd, ready, start=done):
                    if segment.data:
                        _send_range(stream, fd, segment, chunk, progress)
                    else:
                        stream.sendHole(segment.length, 0)
                        if progress:
                            progress(segment.end)
                done = ready
            stream.finish()
        except BaseException:
            abort_stream(stream)
            raise


def _send_range(stream: libvirt.virStream, fd: int, segment: Segment, chunk: int,
                progress: Callable[[int], None] | None) -> None:
    pos = segment.offset
    while pos < segment.end:
        data = os.pread(fd, min(chunk, segment.end - pos), pos)
        if not data:
            raise TruncatedSource(f"the file ended at byte {pos} while {segment.end} were expected")
        sent = 0
        while sent < len(data):  # a blocking stream takes it all at once; loop in case it does not
            n = stream.send(data[sent:] if sent else data)
            if n < 0:
                raise OperationFailed("libvirt refused the data (non-blocking stream)")
            sent += n
        pos += len(data)
        if progress:
            progress(pos)


def abort_stream(stream: libvirt.virStream) -> None:
    try:
        stream.abort()
    except libvirt.libvirtError:
        pass  # already broken: nothing more to tell libvirtd
