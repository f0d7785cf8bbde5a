"""Files of this machine that no pool lists: what is in a pool's directory, and what a VM's disk file is.
No Django imports.

Nothing here lets libvirt or qemu-img open a file, and nothing follows a symbolic link: a directory is read
with os.scandir and each entry with lstat, so a link is reported as a link (with the name it holds) and never
entered. Sockets, FIFOs and character devices are skipped (counted): they are no images and opening one can
block. A file system that may hang the caller (NFS, CIFS, Ceph…) is never touched: network_fs() says which,
from /proc/self/mountinfo, before the first stat. A scan stops after a bounded number of entries.
"""

from __future__ import annotations

import os
import posixpath
import stat
from dataclasses import dataclass, field

from . import imagecheck
from .text import _

SCAN_LIMIT = 20_000  # entries read per directory; 10,000 entries take ~30 ms here (lstat each)
NETWORK_FS_TYPES = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "ceph", "glusterfs", "fuse.glusterfs", "fuse.sshfs", "fuse.cephfs",
    "fuse.s3fs", "9p", "afs", "lustre", "gpfs", "beegfs", "ncpfs", "coda", "davfs", "fuse.rclone"})
MOUNTINFO = "/proc/self/mountinfo"


@dataclass(frozen=True)
class FileFacts:
    """One entry as lstat saw it. kind: file, dir, symlink or block."""

    name: str
    path: str
    kind: str
    size: int = 0  # bytes (a link: the length of the name it holds)
    allocated: int = 0  # bytes the host holds for it (st_blocks)
    link_target: str = ""  # a link's text, never followed
    mtime_ns: int = 0


@dataclass
class DirScan:
    """A directory's entries that are not in `known`, in name order."""

    path: str
    unlisted: list[FileFacts] = field(default_factory=list)
    entries: int = 0  # entries read
    skipped: int = 0  # sockets, FIFOs, character devices
    truncated: bool = False  # stopped at SCAN_LIMIT entries
    error: str = ""  # why the directory could not be read ("" when it was)


def _unescape(field_text: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field_text = field_text.replace(code, char)
    return field_text


def mount_of(path: str, mountinfo: str) -> tuple[str, str]:
    """(mount point, file system type) of the longest mount point holding path, by its text (no stat):
    the later line wins for one mount point (a mount over a mount)."""
    best, fstype = "", ""
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        parts, tail = left.split(), right.split()
        if not sep or len(parts) < 5 or not tail:
            continue
        point = _unescape(parts[4])
        inside = path == point or point == "/" or path.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, fstype = point, tail[0]
    return best, fstype


def network_fs(path: str, mountinfo: str | None = None) -> str:
    """The type of the network file system path is on ("nfs4"…), "" when it is a local one."""
    if mountinfo is None:
        try:
            with open(MOUNTINFO, encoding="utf-8", errors="replace") as f:
                mountinfo = f.read()
        except OSError:
            return ""
    fstype = mount_of(posixpath.normpath(path), mountinfo)[1]
    network = fstype in NETWORK_FS_TYPES or (fstype.startswith("fuse.") and fstype != "fuse.lxcfs")  # fuse may hang
    return fstype if network else ""


def _facts(name: str, path: str, st: os.stat_result) -> FileFacts | None:
    mode = st.st_mode
    if stat.S_ISLNK(mode):
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        return FileFacts(name, path, "symlink", st.st_size, 0, target, st.st_mtime_ns)
    kind = "file" if stat.S_ISREG(mode) else "dir" if stat.S_ISDIR(mode) else "block" if stat.S_ISBLK(mode) else ""
    if not kind:
        return None
    return FileFacts(name, path, kind, st.st_size, st.st_blocks * 512, "", st.st_mtime_ns)


def scan_directory(path: str, known: set[str], *, limit: int = SCAN_LIMIT) -> DirScan:
    """The entries of directory path (not recursive) whose full path is not in known."""
    scan = DirScan(path)
    try:
        with os.scandir(path) as entries:
            for entry in entries:
                if scan.entries >= limit:
                    scan.truncated = True
                    break
                scan.entries += 1
                if entry.path in known:
                    continue
                try:
                    facts = _facts(entry.name, entry.path, entry.stat(follow_symlinks=False))
                except OSError:  # gone since the listing
                    continue
                if facts is None:
                    scan.skipped += 1
                else:
                    scan.unlisted.append(facts)
    except OSError as exc:
        scan.error = _("%(path)s cannot be read from here: %(error)s.") % {"path": path, "error": exc.strerror or exc}
    scan.unlisted.sort(key=lambda facts: facts.name)
    return scan


def file_facts(path: str) -> FileFacts | None:
    """lstat of one path; None when it is not there (or not readable)."""
    try:
        return _facts(posixpath.basename(path), path, os.lstat(path))
    except OSError:
        return None


def content_format(path: str) -> str:
    """The format a regular file's first bytes look like (imagecheck.detect_format), opened without following
    a link and without blocking; "" when it cannot be read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return ""
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return ""
        return imagecheck.detect_format(imagecheck.read_head_from_fd(fd, st.st_size))
    except OSError:
        return ""
    finally:
        os.close(fd)


def identity(st: os.stat_result) -> dict:
    """What tells that a file is the same and unwritten since: device, inode, size, mtime."""
    return {"dev": st.st_dev, "ino": st.st_ino, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def file_identity(path: str) -> dict:
    """identity() of path by lstat; {} when it is gone."""
    try:
        return identity(os.lstat(path))
    except OSError:
        return {}


__all__ = ["DirScan", "FileFacts", "content_format", "file_facts", "file_identity", "mount_of", "network_fs",
           "identity", "scan_directory"]
