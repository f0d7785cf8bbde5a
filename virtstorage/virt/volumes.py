"""Volume operations on libvirt: create, clone, resize, wipe, and who uses a volume.

Facts these functions design around (measured on libvirt 9.0):
- a clone's target is visible to lookups while it is being built; with
  ``<allocation>0`` in the clone XML its allocation grows as data is copied,
  which is the only progress signal libvirt gives;
- wipe gives no progress; only ``zero`` is built in, the other patterns run the
  ``scrub`` binary on the host; ``trim`` is unsupported on dir pools; wiping a
  qcow2 volume leaves a raw file of the old file size;
- resizing a raw volume with SHRINK silently drops the data past the new end;
  ALLOCATE is refused on qcow2;
- neither clone nor wipe can be interrupted: libvirtd finishes them even if the
  client goes away.
Deleting a volume is ``LibvirtHost.delete_volume``.
"""

from __future__ import annotations

import os
import shutil
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass

import libvirt

from . import imagecheck, localfile, xmlio
from .connection import LibvirtHost
from .errors import InvalidRequest, PoolBusy, VirtError, translated
from .localfile import is_local_uri
from .text import _, gettext_lazy
from .types import VolumeInfo
from .units import binary_size

FORMATS = ("raw", "qcow2")
CLONE_POLL_SECONDS = 0.25


@dataclass(frozen=True)
class WipeAlgorithm:
    name: str
    label: str
    description: str
    flag: int
    needs_scrub: bool


WIPE_ALGORITHMS: tuple[WipeAlgorithm, ...] = (  # label and description: English strings, shown translated
    WipeAlgorithm("zero", gettext_lazy("Zeros (1 pass)"), gettext_lazy("Overwrites every byte with zeros."),
                  libvirt.VIR_STORAGE_VOL_WIPE_ALG_ZERO, False),
    WipeAlgorithm("nnsa", gettext_lazy("NNSA (4 passes)"),
                  gettext_lazy("NNSA NAP-14.1-C: random, random, zeros, verify."),
                  libvirt.VIR_STORAGE_VOL_WIPE_ALG_NNSA, True),
    WipeAlgorithm("dod", gettext_lazy("DoD (4 passes)"), gettext_lazy("US DoD 5220.22-M: random, zeros, ones, verify."),
                  libvirt.VIR_STORAGE_VOL_WIPE_ALG_DOD, True),
    WipeAlgorithm("bsi", gettext_lazy("BSI (9 passes)"),
                  gettext_lazy("German BSI: alternating 0xff/0xfe ... patterns."),
                  libvirt.VIR_STORAGE_VOL_WIPE_ALG_BSI, True),
    WipeAlgorithm("gutmann", gettext_lazy("Gutmann (35 passes)"),
                  gettext_lazy("Peter Gutmann's 35 patterns: very slow."),
                  libvirt.VIR_STORAGE_VOL_WIPE_ALG_GUTMANN, True),
    WipeAlgorithm("schneier", gettext_lazy("Schneier (7 passes)"),
                  gettext_lazy("Bruce Schneier's 7 passes: ones, zeros, 5 random."),
                  libvirt.VIR_STORAGE_VOL_WIPE_ALG_SCHNEIER, True),
    WipeAlgorithm("pfitzner7", gettext_lazy("Pfitzner 7 (7 random passes)"),
                  gettext_lazy("Roy Pfitzner's 7 random passes."),
                  libvirt.VIR_STORAGE_VOL_WIPE_ALG_PFITZNER7, True),
    WipeAlgorithm("pfitzner33", gettext_lazy("Pfitzner 33 (33 random passes)"),
                  gettext_lazy("Roy Pfitzner's 33 random passes: slow."),
                  libvirt.VIR_STORAGE_VOL_WIPE_ALG_PFITZNER33, True),
    WipeAlgorithm("random", gettext_lazy("Random (1 pass)"), gettext_lazy("One pass of random data."),
                  libvirt.VIR_STORAGE_VOL_WIPE_ALG_RANDOM, True),
    WipeAlgorithm("trim", gettext_lazy("Trim (discard)"),
                  gettext_lazy("Discards the blocks (TRIM); only on devices that support it, "
                               "never on directory pools."),
                  libvirt.VIR_STORAGE_VOL_WIPE_ALG_TRIM, False),
)
WIPE_BY_NAME = {alg.name: alg for alg in WIPE_ALGORITHMS}


@dataclass(frozen=True)
class WipeChoice:
    """An algorithm and whether this host can run it: True, False, or None for "cannot tell"."""

    algorithm: WipeAlgorithm
    available: bool | None
    reason: str = ""


def wipe_algorithms(uri: str, pool_type: str = "dir") -> list[WipeChoice]:
    """What wiping can do on this host and pool type.

    scrub-based patterns need the ``scrub`` binary on the host: checked for a local
    host, unknown for a remote one (we only offer zeros there).
    """
    local = is_local_uri(uri)
    has_scrub = shutil.which("scrub") is not None if local else None
    choices = []
    for alg in WIPE_ALGORITHMS:
        if alg.name == "trim":
            if pool_type in ("dir", "fs", "netfs"):
                choices.append(WipeChoice(alg, False, _("not supported on file-based pools")))
            else:
                choices.append(WipeChoice(alg, None, _("only if the device supports discard")))
        elif not alg.needs_scrub:
            choices.append(WipeChoice(alg, True))
        elif has_scrub is None:
            choices.append(WipeChoice(alg, None, _("needs the scrub program on the host; cannot check a remote host")))
        elif has_scrub:
            choices.append(WipeChoice(alg, True))
        else:
            choices.append(WipeChoice(alg, False, _("the scrub program is not installed on the host")))
    return choices


class NotEnoughSpace(VirtError):
    """The pool has less free space now than the volume takes at once."""


def check_room(host: LibvirtHost, pool_name: str, capacity: int, *, reserve: int = 0) -> None:
    """Refuse (NotEnoughSpace) a fully preallocated volume larger than the pool's free space now, less the
    reserve the pool keeps: the pool is rescanned first, so space taken since the last sync (by anyone)
    counts. Only for a preallocated volume: a thin one takes (almost) nothing at once, the pool's overcommit
    policy guards it, and a rescan reads every file of the pool (0.2 CPU-seconds of libvirtd in a pool of
    10,000 volumes)."""
    try:
        host.refresh_pool(pool_name, wait=0)
    except PoolBusy:
        # libvirt builds a volume in the pool (a clone, another create) and will not rescan it: its own
        # figure already counts what it builds, and is the best there is without waiting for it.
        pass
    available = host.pool(pool_name).available
    if capacity > available - reserve:
        values = {"pool": pool_name, "free": binary_size(available), "reserve": binary_size(reserve),
                  "size": binary_size(capacity)}
        raise NotEnoughSpace((_("pool %(pool)s has %(free)s free now, of which it keeps %(reserve)s in reserve; a "
                                "preallocated volume of %(size)s takes its whole size at once") if reserve else
                              _("pool %(pool)s has %(free)s free now; a preallocated volume of %(size)s takes its "
                                "whole size at once")) % values)


def create_volume(host: LibvirtHost, pool_name: str, name: str, capacity: int, *, fmt: str = "raw",
                  preallocation: str = "off", backing_path: str = "", backing_format: str = "") -> VolumeInfo:
    """Create a volume. preallocation: "off" (thin), "metadata" (qcow2 only) or "full"."""
    if fmt not in FORMATS:
        raise InvalidRequest(_("unsupported format %(format)s") % {"format": repr(fmt)})
    if preallocation not in ("off", "metadata", "full"):
        raise InvalidRequest(_("unknown preallocation %(preallocation)s") % {"preallocation": repr(preallocation)})
    if preallocation == "metadata" and fmt != "qcow2":
        raise InvalidRequest(_("metadata preallocation exists only for qcow2"))
    flags = 0
    allocation = capacity if preallocation == "full" else 0
    if fmt == "qcow2" and preallocation != "off":
        # libvirt asks qemu-img for preallocation=metadata, or =falloc when allocation equals capacity
        flags |= libvirt.VIR_STORAGE_VOL_CREATE_PREALLOC_METADATA
    xml = xmlio.volume_xml(name, capacity, fmt=fmt, allocation=allocation,
                           backing_path=backing_path or None, backing_format=backing_format or None)
    return host.create_volume_xml(pool_name, xml, flags)


def _clone_xml(source: VolumeInfo, new_name: str, fmt: str) -> str:
    """Target of a clone: allocation 0 makes libvirt copy sparsely, so the growth shows progress."""
    return xmlio.volume_xml(new_name, source.capacity, fmt=fmt, allocation=0)


def clone_volume(host: LibvirtHost, pool_name: str, source_name: str, target_pool: str, new_name: str, *,
                 fmt: str = "", watcher: LibvirtHost | None = None,
                 on_progress: Callable[[int, int], None] | None = None) -> VolumeInfo:
    """Clone a volume into target_pool (same host), optionally converting its format.

    The copy runs on ``host`` (give it a dedicated connection: the call blocks it until
    the copy ends); ``watcher``, another connection, polls the target's allocation and
    calls ``on_progress(done, total)`` four times a second.
    """
    if fmt and fmt not in FORMATS:
        raise InvalidRequest(_("unsupported format %(format)s") % {"format": repr(fmt)})
    source_vol = host.raw_volume(pool_name, source_name)
    with translated():
        source = xmlio.parse_volume(source_vol.XMLDesc(0))
    target_format = fmt or source.format or "raw"
    xml = _clone_xml(source, new_name, target_format)
    target = host.raw_pool(target_pool)
    total = max(source.allocation, 1)
    outcome: dict[str, object] = {}

    def copy() -> None:
        try:
            outcome["volume"] = target.createXMLFrom(xml, source_vol, 0)
        except libvirt.libvirtError as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=copy, name=f"clone {source_name} -> {new_name}", daemon=True)
    worker.start()
    watching = watcher is not None and on_progress is not None
    while worker.is_alive():
        worker.join(CLONE_POLL_SECONDS)
        if watching and worker.is_alive():
            try:
                with translated():
                    allocation = watcher.raw_volume(target_pool, new_name).info()[2]
                on_progress(min(allocation, total), total)
            except VirtError:
                pass  # not created yet, or the watcher lost its connection: the copy decides the outcome
    if "error" in outcome:
        with translated():
            raise outcome["error"]  # type: ignore[misc]
    with translated():
        return xmlio.parse_volume(outcome["volume"].XMLDesc(0))  # type: ignore[union-attr]


def resize_volume(host: LibvirtHost, pool_name: str, name: str, capacity: int, *, allocate: bool = False,
                  shrink: bool = False) -> VolumeInfo:
    """Set a volume's capacity. Shrinking needs shrink=True and loses the data past the new end."""
    vol = host.raw_volume(pool_name, name)
    with translated():
        current = xmlio.parse_volume(vol.XMLDesc(0))
    if capacity < current.capacity and not shrink:
        raise InvalidRequest(_("the new size is smaller than the volume; shrinking must be confirmed"))
    if allocate and current.format == "qcow2":
        raise InvalidRequest(_("libvirt cannot allocate the new space of a qcow2 volume; only raw volumes"))
    flags = 0
    if allocate:
        flags |= libvirt.VIR_STORAGE_VOL_RESIZE_ALLOCATE
    if capacity < current.capacity:
        flags |= libvirt.VIR_STORAGE_VOL_RESIZE_SHRINK
    with translated():
        vol.resize(capacity, flags)
        return xmlio.parse_volume(vol.XMLDesc(0))


def wipe_volume(host: LibvirtHost, pool_name: str, name: str, algorithm: str = "zero") -> VolumeInfo:
    """Overwrite a volume's data with a pattern; blocks until libvirt is done."""
    alg = WIPE_BY_NAME.get(algorithm)
    if alg is None:
        raise InvalidRequest(_("unknown wipe algorithm %(algorithm)s") % {"algorithm": repr(algorithm)})
    vol = host.raw_volume(pool_name, name)
    with translated():
        vol.wipePattern(alg.flag, 0)
        return xmlio.parse_volume(vol.XMLDesc(0))


def volume_users(host: LibvirtHost, pool_name: str, volume: VolumeInfo) -> list[str]:
    """Names of defined domains with a disk on this volume: by path, or by pool and volume name."""
    users = []
    for domain, disk in host.domain_disks():
        by_path = volume.path and volume.path in (disk.get("file"), disk.get("dev"))
        by_name = disk.get("pool") == pool_name and disk.get("volume") == volume.name
        if (by_path or by_name) and domain not in users:
            users.append(domain)
    return users


# -- Image safety: what an operation may open ------------------------------------------------

RAW_FAMILY = ("raw", "iso", "")  # formats libvirt reports for content with no image header of its own


def format_family(reported: str) -> str:
    """The format the app states for what libvirt reports: an ISO 9660 file is raw data to qemu."""
    return "raw" if reported in RAW_FAMILY else reported


def symlink_target(path: str) -> str:
    """Where a volume's path leads when it is a symbolic link on this machine, else "".

    libvirt follows symlinks in dir pools: a link planted in a pool directory would let an operation
    read or write the file it names. Only meaningful for a host that is this machine."""
    try:
        return os.readlink(path) if stat.S_ISLNK(os.lstat(path).st_mode) else ""
    except OSError:
        return ""


def read_head(lv: LibvirtHost, pool_name: str, name: str, *, direct: bool) -> bytes:
    """The start of a volume, as much as the image check needs: from its file when the host is this
    machine and libvirt vouches for the file, else through a libvirt stream (any host)."""
    opened = localfile.open_volume_file(lv, pool_name, name) if direct else None
    if opened is None:
        return imagecheck.read_volume_head(lv, pool_name, name)
    try:
        return imagecheck.read_head_from_fd(opened.fd, opened.size)
    finally:
        opened.close()


def check_image(lv: LibvirtHost, info: VolumeInfo, pool_name: str, stated_format: str, *, direct: bool,
                backing_allowed: Callable[[str], bool] | None = None) -> None:
    """Raise UnsafeImage unless the volume may be opened as stated_format: libvirt reads it as that
    format, and a qcow2 names no data file and no backing file but one backing_allowed accepts."""
    seen = format_family(info.format)
    if stated_format and seen != stated_format:
        raise imagecheck.UnsafeImage(
            _("Volume %(name)s is recorded as %(stated)s, but libvirt now reads its content as %(format)s: it is "
              "never opened as %(format)s.") % {"name": info.name, "stated": stated_format, "format": info.format})
    if seen not in imagecheck.SUPPORTED_FORMATS:
        raise imagecheck.UnsafeImage(_("Volume %(name)s is a %(format)s image: the app supports only %(formats)s.")
                                     % {"name": info.name, "format": info.format,
                                        "formats": " and ".join(imagecheck.SUPPORTED_FORMATS)})
    if info.type == "file" and is_local_uri(lv.uri) and (link := symlink_target(info.path)):
        raise imagecheck.UnsafeImage(_("Volume %(name)s is a symbolic link to %(link)s: the app never opens a file "
                                       "outside the pool through it.") % {"name": info.name, "link": link})
    if seen == "qcow2":
        head = read_head(lv, pool_name, info.name, direct=direct)
        image_dir = os.path.dirname(info.path)
        imagecheck.inspect(head, "qcow2", backing_allowed=backing_allowed and (
            lambda name: backing_allowed(os.path.normpath(os.path.join(image_dir, name)))))


def verified_volume(lv: LibvirtHost, pool_name: str, name: str, stated_format: str, *, direct: bool,
                    backing_allowed: Callable[[str], bool] | None = None) -> VolumeInfo:
    """libvirt's view of the volume now, after check_image: jobs call it right before they operate."""
    info = lv.volume(pool_name, name)
    check_image(lv, info, pool_name, stated_format, direct=direct, backing_allowed=backing_allowed)
    return info
