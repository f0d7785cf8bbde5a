"""Volume downloads over libvirt streams: no Django imports."""

from __future__ import annotations

import functools

import libvirt

from . import xmlio
from .connection import LibvirtHost
from .errors import InvalidRequest, OperationFailed, translated
from .streams import abort_stream

# libvirt hands a download over in messages of at most 256 KiB: recv() never returns more, and
# asking for more only makes libvirt-python allocate (and zero) a larger buffer on every call.
RECV_BYTES = 256 * 1024
READ_BYTES = 1024 * 1024  # what VolumeReader.read gathers per block by default
WINDOW_BYTES = 16 * 1024 * 1024  # a download's read-ahead bound (one stream per window; no slower)


@functools.lru_cache(maxsize=4)
def _zeros(n: int) -> bytes:
    """n zero bytes, the same object each time: a hole's blocks cost no allocation or copy."""
    return bytes(n)


class VolumeReader:
    """Reads a volume through libvirt streams, in blocks, for a download.

    sparse=True asks libvirt for holes instead of zeros (VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM):
    the host does not read or send them; read() still returns them as zeros, since an HTTP
    body has no holes. Call close() (or abort()) when done; the connection is the caller's.

    libvirt streams have no flow control: the connection's event loop thread reads whatever
    libvirtd sends into memory, however far ahead of read() it runs (a slow HTTP client made a
    1 GiB download hold ~400 MiB). So the volume is read in windows of WINDOW_BYTES, one stream
    each, the next asked for only when the last is read: at most one window is ever buffered.
    """

    def __init__(self, lv: LibvirtHost, pool_name: str, name: str, *, sparse: bool = False) -> None:
        with translated():
            self._vol = lv.raw_volume(pool_name, name)
            self.info = xmlio.parse_volume(self._vol.XMLDesc(0))
            if self.info.type not in ("file", "block"):
                raise InvalidRequest(f"volume {name} is a {self.info.type}: only file and block volumes download")
        # The file's size, not the virtual size: a qcow2 downloads as the qcow2 file it is.
        self.length = self.info.physical or self.info.capacity
        self.sparse = sparse
        self._lv = lv
        self._flags = libvirt.VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM if sparse else 0
        self.done = 0
        self._hole_left = 0
        self._window_end = 0
        self._stream: libvirt.virStream | None = None
        self._finished = False
        self._next_window()

    def _next_window(self) -> None:
        """Open the stream of the next window, or mark the end (caller holds translated())."""
        if self._window_end >= self.length:
            self._stream = None
            self._finished = True
            return
        start = self._window_end
        self._window_end = min(self.length, start + WINDOW_BYTES)
        with translated():
            self._stream = self._lv.raw.newStream(0)
            self._vol.download(self._stream, start, self._window_end - start, self._flags)

    def read(self, limit: int = READ_BYTES) -> bytes:
        """Up to limit bytes (data, or zeros for a hole); b"" at the end."""
        if self._finished:
            return b""
        if self._hole_left:
            n = min(self._hole_left, limit)
            self._hole_left -= n
            self.done += n
            return _zeros(n)
        parts: list[bytes] = []
        size = 0
        with translated():
            while size < limit and self._stream is not None:
                want = min(limit - size, RECV_BYTES)
                if self.sparse:
                    got = self._stream.recvFlags(want, libvirt.VIR_STREAM_RECV_STOP_AT_HOLE)
                else:
                    got = self._stream.recv(want)
                if got == -3:  # a hole starts here
                    self._hole_left = self._stream.recvHole(0)
                    break
                if isinstance(got, int):
                    raise OperationFailed(f"libvirt stream returned {got}")
                if not got:  # this window is over
                    self._stream.finish()
                    self._next_window()
                    continue
                parts.append(got)
                size += len(got)
        if not parts and self._hole_left:
            return self.read(limit)
        self.done += size
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def abort(self) -> None:
        if not self._finished:
            self._finished = True
            if self._stream is not None:
                abort_stream(self._stream)

    close = abort
