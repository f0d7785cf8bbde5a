"""Direct I/O on the volume files of a libvirt host that is this machine: no Django imports.

libvirt moves a volume's bytes through libvirtd. vol-upload and vol-download copy each byte through
the daemon, its RPC socket and a client: about 1 CPU-second per GiB each way here, and one
stream is bound by round trips. When the host is this machine and the volume is a plain file
that this process may open, the same bytes can be read in place (pread, holes found by
SEEK_DATA) or copied in the kernel (copy_file_range). The result is the one libvirt's dir
backend would produce. libvirt still creates, resizes, probes and deletes the volume.

The file opened must be the one libvirt names. A path seen from here may be another file: the
app may run in a container, or see another mount. So after opening, the file's ctime (to the
nanosecond) and size must equal libvirt's report for the volume. Otherwise, and whenever the host
is remote, the file is not a regular file or cannot be opened (permissions), ``open_volume_file``
returns None and the caller uses libvirt's streams.
"""

from __future__ import annotations

import errno
import os
import stat
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

from . import xmlio
from .connection import LibvirtHost
from .errors import OperationFailed, translated
from .text import _, gettext_noop
from .types import VolumeInfo

# How a transfer's log names this way of moving bytes (tests look for it): English here, _(VOLUME_FILE) in a log.
VOLUME_FILE = gettext_noop("the volume's file (the host is this machine)")
COPY_BYTES = 16 * 1024 * 1024  # copied per copy_file_range call, between progress reports
_NO_COPY_FILE_RANGE = (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL)  # old kernels, odd file systems


class TruncatedSource(OperationFailed):
    """The file to upload ended before the length that was announced."""


def is_local_uri(uri: str) -> bool:
    """True for a URI of a libvirt daemon on this machine: no host name, no network transport
    (qemu:///system, qemu+unix:///session). Necessary, not sufficient: see open_volume_file."""
    parts = urllib.parse.urlsplit(uri)
    transport = parts.scheme.partition("+")[2]
    return not parts.netloc and transport in ("", "unix")


@dataclass
class VolumeFile:
    """A volume's file, open here; info is libvirt's report that vouched for it."""

    fd: int
    info: VolumeInfo
    size: int

    def close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)


def open_volume_file(lv: LibvirtHost, pool_name: str, name: str, *, write: bool = False) -> VolumeFile | None:
    """The volume's file opened for reading (or writing), if it is verifiably the file libvirt
    names and this process may open it; None otherwise (use libvirt's streams)."""
    if not is_local_uri(lv.uri):
        return None
    with translated():
        volume = lv.raw_volume(pool_name, name)
        path = xmlio.parse_volume(volume.XMLDesc(0)).path
    if not path:
        return None
    try:
        # O_NONBLOCK: a FIFO at the path must not hang the open (it is refused just below). O_NOFOLLOW:
        # a symlink planted where a volume was is left to libvirt.
        flags = os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK | os.O_NOFOLLOW
        fd = os.open(path, (os.O_RDWR if write else os.O_RDONLY) | flags)
    except OSError:
        return None
    try:
        with translated():
            info = xmlio.parse_volume(volume.XMLDesc(0))  # after the open: it vouches for this file
        st = os.fstat(fd)
        if (info.type != "file" or info.path != path or not stat.S_ISREG(st.st_mode) or not info.ctime_ns
                or st.st_ctime_ns != info.ctime_ns or st.st_size != info.physical):
            os.close(fd)
            return None
        os.set_blocking(fd, True)
        return VolumeFile(fd, info, st.st_size)
    except BaseException:
        os.close(fd)
        raise


def copy_range(source_fd: int, target_fd: int, offset: int, length: int,
               progress: Callable[[int], None] | None = None) -> None:
    """Copy length bytes at offset of one file to the same offset of another, in the kernel where it
    can (no copy through this process), reporting the offset reached after each COPY_BYTES."""
    position, end = offset, offset + length
    kernel_copy = True
    while position < end:
        want = min(COPY_BYTES, end - position)
        if kernel_copy:
            try:
                n = os.copy_file_range(source_fd, target_fd, want, position, position)
            except OSError as exc:
                if exc.errno not in _NO_COPY_FILE_RANGE:
                    raise
                kernel_copy = False
                continue
        else:
            n = _copy_through_memory(source_fd, target_fd, want, position)
        if not n:
            raise TruncatedSource(_("the file ended at byte %(position)s while %(end)s were expected")
                                  % {"position": position, "end": end})
        position += n
        if progress:
            progress(position)


def _copy_through_memory(source_fd: int, target_fd: int, length: int, offset: int) -> int:
    data = os.pread(source_fd, length, offset)
    view = memoryview(data)
    while view:
        written = os.pwrite(target_fd, view, offset + len(data) - len(view))
        view = view[written:]
    return len(data)
