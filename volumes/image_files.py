"""The files the image tools let qemu-img open, and only those (virt/qemuimg.py runs it).

qemu-img runs on the app's machine, so the tools serve hosts whose libvirt is this machine, and volumes
that are plain files libvirt vouches for (virt/localfile.py: after the open, libvirt's ctime and size of the
file must be the opened file's). Every file of a volume's backing chain is checked by volumes/safety.py
(the image check against the format the app recorded; backing files only inside the pools) and then opened
here; qemu-img is given the open descriptors with each format stated, so it opens nothing an image names.

An import reads a file of this machine from the import roots only (IMPORT_ROOTS, by default POOL_ROOTS):
its path is resolved with every symlink followed before the check, its directory must pass the pool roots'
rule (no system or hidden directory), and the file is opened without following a link and must still be
the file checked. Its content, never its name, says its format (virt/imagecheck.py).
"""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
from django.utils.translation import gettext as _

from hosts import status
from hosts.models import Host
from virtstorage.virt import LibvirtHost, imagecheck, localfile
from virtstorage.virt import pools as vpools
from virtstorage.virt import volumes as vvolumes
from virtstorage.virt.imagecheck import ImageFacts, UnsafeImage
from virtstorage.virt.qemuimg import ImageFile
from virtstorage.virt.types import VolumeInfo

from . import safety
from .models import Volume


class ToolsUnavailable(Exception):
    """qemu-img cannot be run on this volume or host from here; str() says why."""


def unavailable_reason(host: Host) -> str:
    """Why the image tools cannot serve this host now ("" when they can), from what the app knows: no
    connection is opened."""
    if not localfile.is_local_uri(host.uri):
        return (_("The image tools run qemu-img on the app's own machine, and host %(host)s is another machine "
                  "(%(uri)s): its images can only be read there. Clone a volume to change its format.")
                % {"host": host.name, "uri": host.uri})
    return status.unavailable_reason(host)


def require_tools(host: Host) -> None:
    if reason := unavailable_reason(host):
        raise ToolsUnavailable(reason)


# -- a volume and its backing chain ---------------------------------------------------------------------

@dataclass(frozen=True)
class ChainLink:
    """One verified file of a volume's chain: the volume itself first, then its backing volumes."""

    pool_name: str
    name: str
    format: str  # the format the app states for it
    info: VolumeInfo  # libvirt's view, right after the check


def verified_chain(host: Host, lv: LibvirtHost, pool_name: str, name: str) -> list[ChainLink]:
    """The volume and each volume below it, every one checked (safety.verify) right now; UnsafeImage when any
    is refused, or when a backing file is not a volume of the inventory."""
    links: list[ChainLink] = []
    while True:
        info = safety.verify(host, lv, pool_name, name)
        # verify passed, so libvirt reads it as the format the app recorded (or, none recorded, states it now)
        links.append(ChainLink(pool_name, name, vvolumes.format_family(info.format), info))
        if not info.backing_path:
            return links
        if len(links) >= safety.MAX_CHAIN or any(link.info.path == info.backing_path for link in links):
            raise UnsafeImage(_("The backing chain of %(name)s is longer than %(max)s or loops.")
                              % {"name": links[0].name, "max": safety.MAX_CHAIN})
        below = Volume.objects.filter(pool__host=host, path=info.backing_path).select_related("pool").first()
        if below is None:
            raise UnsafeImage(_("Volume %(name)s names the backing file %(backing)s, which is not a volume of "
                                "%(host)s's pools: it is never opened.")
                              % {"name": name, "backing": info.backing_path, "host": host.name})
        pool_name, name = below.pool.name, below.name


class OpenChain:
    """A verified chain, each file open; ``image()`` is what qemu-img is given."""

    def __init__(self, links: list[ChainLink], files: list[localfile.VolumeFile]) -> None:
        self.links = links
        self.files = files

    def image(self, index: int = 0, *, with_backing: bool = True) -> ImageFile:
        """The link at index (0: the volume itself) with, unless told otherwise, every link below it."""
        below = self.image(index + 1) if with_backing and index + 1 < len(self.links) else None
        return ImageFile(self.files[index].fd, self.links[index].format, below)


@contextmanager
def open_chain(host: Host, lv: LibvirtHost, pool_name: str, name: str) -> Iterator[OpenChain]:
    """The volume's verified chain with every file open for qemu-img; closed afterwards."""
    links = verified_chain(host, lv, pool_name, name)
    files: list[localfile.VolumeFile] = []
    try:
        for link in links:
            opened = localfile.open_volume_file(lv, link.pool_name, link.name)
            if opened is None:
                raise ToolsUnavailable(
                    _("The app cannot open the file of volume %(name)s itself: it is not a plain file, the app may "
                      "not read it, or libvirt's view of it changed meanwhile (in use?). Try again later.")
                    % {"name": link.name})
            files.append(opened)
            if opened.info.path != link.info.path or vvolumes.format_family(opened.info.format) != link.format:
                raise UnsafeImage(_("Volume %(name)s changed while it was being opened; nothing was done.")
                                  % {"name": link.name})
        yield OpenChain(links, files)
    finally:
        for opened in files:
            opened.close()


# -- a host file to import ------------------------------------------------------------------------------

def import_roots() -> list[str]:
    return list(settings.IMPORT_ROOTS) or list(settings.POOL_ROOTS)


def resolve_import_path(text: str) -> str:
    """The file's real path if an admin may import it; ValueError saying why not."""
    roots = import_roots()
    if not isinstance(text, str) or not text or any(ord(ch) < 32 or 127 <= ord(ch) < 160 for ch in text):
        raise ValueError(_("Enter the absolute path of a file, without control characters."))
    if not text.startswith("/") or ".." in text.split("/"):
        raise ValueError(_("Enter an absolute path without '..' components. %(hint)s")
                         % {"hint": vpools.import_roots_hint(roots)})
    try:
        real = os.path.realpath(text, strict=True)
    except OSError as exc:
        unreachable = _("%(path)s cannot be reached: %(error)s.") % {"path": text, "error": exc.strerror or exc}
        raise ValueError(unreachable) from None
    leads = text if real == text else _("%(path)s (which leads to %(real)s)") % {"path": text, "real": real}
    try:  # the directory holding the real file obeys the pool roots' rule, with the import roots
        vpools.check_pool_target(posixpath.dirname(real), roots, importing=True)
    except ValueError as exc:
        raise ValueError(_("%(path)s is not importable: %(reason)s") % {"path": leads, "reason": exc}) from None
    if posixpath.basename(real).startswith("."):
        raise ValueError(_("%(path)s is a hidden file: hidden files are never imported.") % {"path": leads})
    return real


@dataclass
class HostImage:
    """A host file opened for import; close() it."""

    path: str  # the real path that was checked
    fd: int
    size: int

    def close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)

    def inspect(self, backing_allowed: Callable[[str], bool]) -> ImageFacts:
        """What its content is (imagecheck: format from the bytes, no data file, a backing file only if
        backing_allowed(its normalised absolute path)); UnsafeImage otherwise."""
        head = imagecheck.read_head_from_fd(self.fd, self.size)
        directory = posixpath.dirname(self.path)
        return imagecheck.inspect(head, None, backing_allowed=lambda name: backing_allowed(
            posixpath.normpath(posixpath.join(directory, name))))

    def virtual_size(self, facts: ImageFacts) -> int:
        return facts.virtual_size if facts.format == "qcow2" and facts.virtual_size else self.size


def open_import_file(text: str) -> HostImage:
    """The file at text, checked (resolve_import_path) and opened read-only; ValueError saying why not."""
    real = resolve_import_path(text)
    try:
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        unopenable = _("%(path)s cannot be opened: %(error)s.") % {"path": text, "error": exc.strerror or exc}
        raise ValueError(unopenable) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(_("%(path)s is not a regular file.") % {"path": text})
        if os.readlink(f"/proc/self/fd/{fd}") != real:  # a directory on the way was swapped after the check
            raise ValueError(_("%(path)s moved while it was being opened; nothing was done.") % {"path": text})
        if st.st_size == 0:
            raise ValueError(_("%(path)s is empty: there is nothing to import.") % {"path": text})
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return HostImage(real, fd, st.st_size)


def safe_volume_at(host: Host, path: str) -> Volume | None:
    """The inventory's volume of host at path, if the inventory holds it as safe."""
    return Volume.objects.filter(pool__host=host, path=path, unsafe_reason="").select_related("pool").first()
