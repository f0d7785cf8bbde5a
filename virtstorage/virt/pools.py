"""Storage pool lifecycle on a LibvirtHost: define, build, start, stop, delete, undefine.

Pure parts (validators, XML builders, capability parsing) take and return plain
values and are unit tested without libvirt; operations take a ``LibvirtHost``
and wrap every libvirt call in ``translated()``.

libvirt words vs ours: "destroy" stops a pool (data intact, start undoes it);
"delete" destroys the pool's underlying storage (a dir pool's directory);
"undefine" forgets the pool's configuration and keeps its storage.
"""

from __future__ import annotations

import errno
import fnmatch
import ipaddress
import os
import posixpath
import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass

import libvirt

from . import xmlio
from .connection import LibvirtHost
from .errors import InvalidRequest, translated
from .text import _, gettext_noop, ngettext
from .types import PoolInfo

# The types the app offers a form for, in the order the form lists them.
POOL_TYPES = ("dir", "fs", "netfs", "logical", "disk", "iscsi", "iscsi-direct", "rbd", "zfs")

MAX_POOL_NAME = 100
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
_SAFE_PATH_CHAR = re.compile(r"[A-Za-z0-9._+\-/@:]")
_DNS_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")
_IQN = re.compile(r"iqn\.[0-9]{4}-(0[1-9]|1[0-2])\.[A-Za-z0-9.-]+(:[A-Za-z0-9.:_-]+)?")
_USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]*")

# A pool may never be (or live inside) these, whatever POOL_ROOTS says: a member could then write files
# (volumes) among system files, e.g. a volume named `root` in a crontab directory.
SYSTEM_TREES = ("/etc", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/boot", "/dev",
                "/proc", "/sys", "/run", "/root", "/snap", "/var/spool", "/var/log", "/var/mail",
                "/var/cache", "/var/backups", "/var/run", "/var/lock", "/var/lib/dpkg", "/var/lib/apt",
                "/var/lib/rpm", "/var/lib/dnf", "/var/lib/yum", "/var/lib/systemd", "/var/lib/sudo",
                "/var/lib/polkit-1", "/var/lib/libvirt/qemu", "/var/lib/libvirt/dnsmasq",
                "/var/lib/libvirt/network", "/var/lib/libvirt/swtpm")
# These may hold a pool in a subdirectory, but are never a pool themselves (nor is any parent of a system
# tree, such as /var/lib). /home is here and not above because a checkout in a home directory keeps its
# var/pools root there; hidden directories (~/.ssh, ~/.config) are refused below any root instead.
# /tmp and /var/tmp are here and not above: tests and development set-ups put pools under the temp dir
# when they list it in POOL_ROOTS; a production root there is a bad idea (any local user can plant
# symlinks in it), which is why it is not a default root.
SYSTEM_DIRS = frozenset({"/", "/var", "/var/lib", "/var/lib/libvirt", "/home", "/tmp", "/opt", "/srv",
                         "/mnt", "/media", "/var/tmp"})
# Pool types whose <target><path> is a directory on the host the pool writes into (or mounts over).
DIRECTORY_TARGET_TYPES = frozenset({"dir", "fs", "netfs"})

# Fixed target paths libvirt expects for device-backed pools.
DISK_TARGET = "/dev"
ISCSI_TARGET = "/dev/disk/by-path"

_STATES = {  # English, compared; a page shows _(state)
    libvirt.VIR_STORAGE_POOL_INACTIVE: gettext_noop("inactive"),
    libvirt.VIR_STORAGE_POOL_BUILDING: gettext_noop("building"),
    libvirt.VIR_STORAGE_POOL_RUNNING: gettext_noop("running"),
    libvirt.VIR_STORAGE_POOL_DEGRADED: gettext_noop("degraded"),
    libvirt.VIR_STORAGE_POOL_INACCESSIBLE: gettext_noop("inaccessible"),
}


class PoolNotEmpty(InvalidRequest):
    """Deleting the pool would delete volumes nobody confirmed."""


# -- validators: ValueError with a message a person can act on ----------------

def _bad_chars(text: str, allowed: re.Pattern[str]) -> str:
    bad = sorted({ch for ch in text if not allowed.fullmatch(ch)})
    return " ".join(repr(ch) for ch in bad[:8])


def validate_pool_name(text: str) -> str:
    """The name if it is a safe pool name: letters, digits and . _ + -, starting with a letter or digit."""
    if not text:
        raise ValueError(_("Enter a pool name."))
    if text != text.strip():
        # Refused, not stripped: libvirt would keep the spaces, and " vms" would look like "vms".
        raise ValueError(_("A pool name may not start or end with a space; remove it."))
    if len(text) > MAX_POOL_NAME:
        raise ValueError(_("A pool name can have at most %(max)s characters.") % {"max": MAX_POOL_NAME})
    if not _SAFE_NAME.fullmatch(text):
        bad = _bad_chars(text, re.compile(r"[A-Za-z0-9._+-]"))
        if bad:
            raise ValueError(_("A pool name may only use letters, digits and . _ + -; not allowed: %(chars)s.")
                             % {"chars": bad})
        raise ValueError(_("A pool name must start with a letter or digit."))
    return text


# Translators: in the messages of these validators %(what)s is the field's name ("target path", "device path"...).
def _validate_absolute(text: str, what: str) -> str:
    if not text:
        raise ValueError(_("Enter the %(what)s.") % {"what": what})
    bad = _bad_chars(text, _SAFE_PATH_CHAR)
    if bad:
        raise ValueError(_("The %(what)s may only use letters, digits and . _ + - / @ :; not allowed: %(chars)s.")
                         % {"what": what, "chars": bad})
    if not text.startswith("/"):
        raise ValueError(_("The %(what)s must be absolute (start with /), not relative to some unknown directory.")
                         % {"what": what})
    parts = text.split("/")
    if ".." in parts or "." in parts:
        raise ValueError(_("The %(what)s may not contain '.' or '..' components; write the real path.")
                         % {"what": what})
    normal = posixpath.normpath(text)
    if normal != text:
        raise ValueError(_("Write the %(what)s in its plain form: %(path)s") % {"what": what, "path": normal})
    return text


def is_inside(path: str, tree: str) -> bool:
    """Whether path is tree or lies below it, by their text (both written plainly)."""
    return path == tree or path.startswith(tree.rstrip("/") + "/")


def validate_directory_path(text: str, what: str = "") -> str:
    """An absolute, plain directory path outside the system's own directories. what: the field's name in
    messages ("target path" when empty)."""
    what = what or _("target path")
    path = _validate_absolute(text, what)
    if path in SYSTEM_DIRS:
        raise ValueError(_("%(path)s is a system directory; use a directory of its own, such as "
                           "/var/lib/libvirt/images/<pool>.") % {"path": path})
    for tree in SYSTEM_TREES:
        if is_inside(path, tree):
            raise ValueError(_("The %(what)s %(path)s is inside the system directory %(tree)s; pick another place.")
                             % {"what": what, "path": path, "tree": tree})
    return path


def roots_text(roots: list[str] | tuple[str, ...]) -> str:
    """The configured roots for a message: "/a", "/a or /b", "/a, /b or /c"."""
    roots = [r for r in roots if r]
    if len(roots) <= 1:
        return roots[0] if roots else _("(none configured)")
    # Translators: the end of a list of directories: "/a, /b or /c".
    return _("%(first)s or %(last)s") % {"first": ", ".join(roots[:-1]), "last": roots[-1]}


def roots_hint(roots: list[str] | tuple[str, ...]) -> str:
    return _("Pool directories must be under %(roots)s (POOL_ROOTS).") % {"roots": roots_text(roots)}


def import_roots_hint(roots: list[str] | tuple[str, ...]) -> str:
    return _("Files are imported only from %(roots)s (IMPORT_ROOTS).") % {"roots": roots_text(roots)}


def _has_control_chars(text: str) -> bool:
    return any(ord(ch) < 32 or 127 <= ord(ch) < 160 for ch in text)


def _unresolvable(path: str, exc: OSError) -> ValueError:
    if exc.errno == errno.ELOOP:
        return ValueError(_("%(path)s runs through a loop of symbolic links (or too many of them).") % {"path": path})
    if exc.errno == errno.ENOENT:
        return ValueError(_("%(path)s runs through a symbolic link to a place that does not exist.") % {"path": path})
    if exc.errno == errno.ENOTDIR:
        return ValueError(_("%(path)s runs through a file, not a directory.") % {"path": path})
    return ValueError(_("Cannot check %(path)s: %(error)s.") % {"path": path, "error": exc.strerror or exc})


def _resolve(path: str) -> str:
    """The path with every symlink followed; the part that does not exist yet is appended as written.

    The deepest existing ancestor (a dangling symlink counts: it exists) is resolved strictly, so a
    symlink anywhere in it, a chain, a loop or a dangling link is either followed to its end or refused.
    """
    existing, missing = path, []
    while True:
        try:
            os.lstat(existing)
            break
        except FileNotFoundError:
            existing, name = posixpath.split(existing)
            missing.insert(0, name)
        except OSError as exc:  # a loop, a file on the way, no permission to look
            raise _unresolvable(path, exc) from None
    try:
        real = os.path.realpath(existing, strict=True)
    except OSError as exc:
        raise _unresolvable(path, exc) from None
    if not os.path.isdir(real):
        raise ValueError(_("%(path)s is a file, not a directory.") % {"path": path} if not missing
                         else _("%(path)s runs through %(real)s, which is a file, not a directory.")
                         % {"path": path, "real": real})
    return posixpath.join(real, *missing)


def _ancestors(path: str) -> list[str]:
    found = []
    while path != "/":
        path = posixpath.dirname(path)
        found.append(path)
    return found


def _system_tree_of(path: str) -> str | None:
    """The system tree path is in, or the system directory it is (a parent of a system tree is one too)."""
    trees = set(SYSTEM_TREES) | {os.path.realpath(tree) for tree in SYSTEM_TREES}
    for tree in sorted(trees):
        if is_inside(path, tree):
            return tree
    dirs = set(SYSTEM_DIRS) | {os.path.realpath(d) for d in SYSTEM_DIRS}
    dirs.update(parent for tree in trees for parent in _ancestors(tree))
    return path if path in dirs else None


def check_pool_target(path: str, roots: list[str] | tuple[str, ...], *, importing: bool = False) -> str:
    """The resolved path if a pool may use path as its directory; ValueError (saying why) otherwise.
    importing: path is the directory of a file to import and roots are the import roots (IMPORT_ROOTS): the same
    rule, its refusals worded for that.

    The rule: path is absolute, has no '..' and no control characters; with every symlink followed
    (for the part that does not exist yet: its deepest existing ancestor) it is one of the roots or
    inside one, the roots resolved too; nothing below the root is hidden (.ssh, .config); and
    neither path nor where it leads is a system directory or inside a system tree, whatever the
    roots say (a root of / still refuses /etc). Loops, dangling links and files on the way are refused.
    """
    if not isinstance(path, str) or not path:
        raise ValueError(_("Enter the pool directory."))
    if _has_control_chars(path):
        raise ValueError(_("The pool directory may not contain control characters (NUL, newline, tab...)."))
    if not path.startswith("/"):
        raise ValueError(_("The pool directory must be absolute (start with /), not %(path)s. %(hint)s")
                         % {"path": path, "hint": roots_hint(roots)})
    if ".." in path.split("/"):
        raise ValueError(_("The pool directory may not contain '..' components; write the real path. %(hint)s")
                         % {"hint": roots_hint(roots)})
    written = posixpath.normpath(path)
    if written.startswith("//"):
        written = "/" + written.lstrip("/")
    resolved = _resolve(written)
    values = {"path": written, "real": resolved, "hint": (import_roots_hint if importing else roots_hint)(roots),
              "why": (_("nothing is imported from there.") if importing else
                      _("a pool there would put volumes among system files."))}
    linked = resolved != written  # messages then say where the link leads
    for candidate in (written, resolved):
        tree = _system_tree_of(candidate)
        if tree is not None:
            values["tree"] = tree
            if candidate == written or not linked:
                message = (_("%(path)s is the system directory %(tree)s: %(why)s %(hint)s") if candidate == tree
                           else _("%(path)s is inside the system directory %(tree)s: %(why)s %(hint)s"))
            else:
                message = (_("%(path)s leads to %(real)s (through a symbolic link), which is the system directory "
                             "%(tree)s: %(why)s %(hint)s") if candidate == tree else
                           _("%(path)s leads to %(real)s (through a symbolic link), which is inside the system "
                             "directory %(tree)s: %(why)s %(hint)s"))
            raise ValueError(message % values)
    usable = [r for r in roots if r and r.startswith("/") and not _has_control_chars(r)]
    if not usable:
        raise ValueError(_("No import roots are configured: set IMPORT_ROOTS to the directories files may be "
                           "imported from.") if importing else
                         _("No pool roots are configured: set POOL_ROOTS to the directories pools may use."))
    for root in usable:
        real_root = os.path.realpath(root)
        if is_inside(resolved, real_root):
            hidden = [part for part in resolved[len(real_root):].split("/") if part.startswith(".")]
            if hidden:
                values["hidden"] = hidden[0]
                values["why"] = (_("nothing is imported from hidden directories such as .ssh or .config.")
                                 if importing else
                                 _("pool directories may not be hidden ones such as .ssh or .config."))
                raise ValueError((_("%(path)s leads to %(real)s (through a symbolic link), which goes into the hidden "
                                    "directory %(hidden)s: %(why)s %(hint)s") if linked else
                                  _("%(path)s goes into the hidden directory %(hidden)s: %(why)s %(hint)s")) % values)
            return resolved
    if importing:
        raise ValueError((_("%(path)s leads to %(real)s (through a symbolic link), which is outside the import roots. "
                            "%(hint)s") if linked else _("%(path)s is outside the import roots. %(hint)s")) % values)
    raise ValueError((_("%(path)s leads to %(real)s (through a symbolic link), which is outside the pool roots. "
                        "%(hint)s")
                      if linked else _("%(path)s is outside the pool roots. %(hint)s")) % values)


def validate_device_dir(text: str) -> str:
    """A pool's device directory (logical, disk, iscsi targets): /dev or under it, also after symlinks."""
    path = _validate_absolute(text, _("device directory"))
    if not is_inside(path, "/dev") or not is_inside(os.path.realpath(path), "/dev"):
        raise ValueError(_("%(path)s is not a device directory: this pool type's target is /dev or a directory "
                           "under /dev.") % {"path": path})
    return path


def validate_device_path(text: str) -> str:
    """A block device path, e.g. /dev/sdb or /dev/disk/by-id/…"""
    path = _validate_absolute(text, _("device path"))
    if not path.startswith("/dev/") or path == "/dev/":
        raise ValueError(_("%(path)s is not a device: device paths start with /dev/.") % {"path": path})
    return path


# Pools whose storage is the host's own block devices: the app formats (build), mounts (fs start) and splits them
# (volumes are partitions or logical volumes, which wipe overwrites). The host's system disk, its root volume group
# or zpool must never be one: only devices and groups set aside for storage (settings.POOL_DEVICES, POOL_GROUPS).
LOCAL_DEVICE_TYPES = frozenset({"fs", "disk", "logical", "zfs"})
GROUP_TYPES = frozenset({"logical", "zfs"})  # source_name: an LVM volume group, a zpool


def check_pool_device(path: str, allowed: list[str] | tuple[str, ...]) -> str:
    """A block device an fs, disk, logical or zfs pool may use: plainly written and matching one of the allowed
    patterns (shell-style, such as /dev/sdb or /dev/disk/by-id/wwn-*); ValueError saying which setting decides."""
    return _set_aside(validate_device_path(path), allowed, none=_(
        "No block device is set aside for pools on this server: POOL_DEVICES lists those an fs, disk, logical or zfs "
        "pool may use (the host's own disks are not the app's to format)."), other=_(
        "%(value)s is not a block device set aside for pools (POOL_DEVICES: %(allowed)s)."))


def check_pool_group(name: str, allowed: list[str] | tuple[str, ...]) -> str:
    """An LVM volume group or zpool a logical or zfs pool may use (settings.POOL_GROUPS, shell-style patterns)."""
    return _set_aside(name, allowed, none=_(
        "No volume group or zpool is set aside for pools on this server: POOL_GROUPS lists those a logical or zfs "
        "pool may use (the host's own are not the app's to split)."), other=_(
        "%(value)s is not a volume group or zpool set aside for pools (POOL_GROUPS: %(allowed)s)."))


def _set_aside(value: str, allowed: list[str] | tuple[str, ...], *, none: str, other: str) -> str:
    """value, when one of the allowed patterns matches it; ValueError with `none` when nothing is allowed, with
    `other` (%(value)s, %(allowed)s) when no pattern matches."""
    if not allowed:
        raise ValueError(none)
    if not any(fnmatch.fnmatchcase(value, pattern) for pattern in allowed):
        raise ValueError(other % {"value": value, "allowed": ", ".join(allowed)})
    return value


def source_refusals(summary: PoolXmlSummary, devices: list[str] | tuple[str, ...],
                    groups: list[str] | tuple[str, ...]) -> list[str]:
    """Why a pool of this XML may not use its source (empty: it may): each device and group checked."""
    if summary.type not in LOCAL_DEVICE_TYPES:
        return []
    checks = [(check_pool_device, path, devices) for path in summary.device_paths]
    if summary.type in GROUP_TYPES and summary.source_name:
        checks.append((check_pool_group, summary.source_name, groups))
    refusals = []
    for check, value, allowed in checks:
        try:
            check(value, allowed)
        except ValueError as exc:
            refusals.append(str(exc))
    return refusals


def check_defined_sources(host: LibvirtHost, name: str, devices: list[str] | tuple[str, ...],
                          groups: list[str] | tuple[str, ...]) -> None:
    """Before a build or start: the pool as libvirt defines it now (defined here or by anyone) uses only devices
    and groups set aside for pools; InvalidRequest otherwise."""
    with translated():
        xml = host.raw_pool(name).XMLDesc(0)
    if refusals := source_refusals(summarize_pool_xml(xml), devices, groups):
        raise InvalidRequest(" ".join(refusals))


def validate_source_name(text: str, what: str) -> str:
    """A volume group, zpool or Ceph pool name."""
    if not text:
        raise ValueError(_("Enter the %(what)s.") % {"what": what})
    if len(text) > 127 or not _SAFE_NAME.fullmatch(text):
        raise ValueError(_("The %(what)s may only use letters, digits and . _ + -, starting with a letter or digit.")
                         % {"what": what})
    return text


def validate_host_address(text: str) -> tuple[str, int | None]:
    """A host name or IP address with an optional :port, as (host, port)."""
    text = text.strip()
    if not text:
        raise ValueError(_("Enter a host name or IP address."))
    host, port_text = text, ""
    if text.startswith("["):  # [IPv6]:port
        host, _bracket, rest = text[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise ValueError(_("'%(text)s' is not host[:port].") % {"text": text})
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    port = None
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(_("'%(port)s' is not a port number (1-65535).") % {"port": port_text})
        port = int(port_text)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if len(host) > 253 or not _DNS_NAME.fullmatch(host):
            raise ValueError(_("'%(host)s' is not a host name or IP address.") % {"host": host}) from None
    return host, port


def validate_iqn(text: str, what: str = "IQN") -> str:
    if not _IQN.fullmatch(text or ""):
        raise ValueError(_("The %(what)s must look like iqn.2024-01.com.example:storage.target1.") % {"what": what})
    return text


def validate_uuid(text: str) -> str:
    try:
        return str(uuid.UUID(text))
    except (ValueError, AttributeError, TypeError):
        raise ValueError(_("Enter a libvirt secret UUID such as 0a81f5b2-8403-7b23-c8d6-21ccc2f80d6f.")) from None


def validate_username(text: str) -> str:
    if not _USERNAME.fullmatch(text or "") or len(text) > 64:
        raise ValueError(_("A user name may only use letters, digits and . _ @ -."))
    return text


def validate_export_path(text: str, fmt: str) -> str:
    """The exported directory of a netfs pool: absolute for NFS, a share name for CIFS/gluster."""
    if fmt in ("cifs", "glusterfs") and not text.startswith("/"):
        if not text or _bad_chars(text, re.compile(r"[A-Za-z0-9._+\-/$]")) or ".." in text.split("/"):
            raise ValueError(_("Enter the share name (letters, digits and . _ + - $)."))
        return text
    return _validate_absolute(text, _("export path"))


# -- what the host supports ----------------------------------------------------

@dataclass(frozen=True)
class PoolTypeSupport:
    type: str
    supported: bool
    source_formats: tuple[str, ...] = ()
    default_format: str = ""


def parse_pool_capabilities(xml: str) -> dict[str, PoolTypeSupport]:
    """libvirt's storage pool capabilities, by pool type."""
    result = {}
    for pool in ET.fromstring(xml).findall("pool"):
        options = pool.find("poolOptions")
        formats: tuple[str, ...] = ()
        default = ""
        if options is not None:
            formats = tuple(v.text or "" for v in options.findall("enum[@name='sourceFormatType']/value"))
            found = options.find("defaultFormat")
            default = found.get("type", "") if found is not None else ""
        kind = pool.get("type", "")
        result[kind] = PoolTypeSupport(kind, pool.get("supported") == "yes", formats, default)
    return result


def supported_pool_types(host: LibvirtHost) -> dict[str, PoolTypeSupport]:
    """Ask the host's libvirt which pool types it can handle (never guess from the version)."""
    with translated():
        return parse_pool_capabilities(host.raw.getStoragePoolCapabilities(0))


# -- building XML ----------------------------------------------------------------

@dataclass(frozen=True)
class PoolSpec:
    """What the define form collects; which fields matter depends on ``type``."""

    name: str
    type: str
    target_path: str = ""
    source_devices: tuple[str, ...] = ()
    source_format: str = ""
    source_hosts: tuple[str, ...] = ()  # "host" or "host:port"; several only for rbd monitors
    source_dir: str = ""
    source_name: str = ""  # volume group, zpool, Ceph pool
    target_iqn: str = ""
    initiator_iqn: str = ""
    auth_username: str = ""
    auth_secret_uuid: str = ""


def _root(spec: PoolSpec) -> ET.Element:
    root = ET.Element("pool", type=spec.type)
    ET.SubElement(root, "name").text = spec.name
    return root


def _target(root: ET.Element, path: str) -> None:
    target = ET.SubElement(root, "target")
    ET.SubElement(target, "path").text = path


def _hosts(source: ET.Element, hosts: tuple[str, ...]) -> None:
    for text in hosts:
        name, port = validate_host_address(text)
        element = ET.SubElement(source, "host", name=name)
        if port is not None:
            element.set("port", str(port))


def _one(values: tuple[str, ...], what: str) -> tuple[str, ...]:
    """The schema allows a single element here: refuse more instead of dropping some."""
    if len(values) > 1:
        raise ValueError(_("This pool type takes one %(what)s, not %(count)s.") % {"what": what, "count": len(values)})
    return values


def _devices(source: ET.Element, devices: tuple[str, ...]) -> None:
    for path in devices:
        ET.SubElement(source, "device", path=path)


def _format(source: ET.Element, fmt: str) -> None:
    if fmt:
        ET.SubElement(source, "format", type=fmt)


def _auth(source: ET.Element, spec: PoolSpec, kind: str) -> None:
    if spec.auth_username:
        auth = ET.SubElement(source, "auth", type=kind, username=spec.auth_username)
        ET.SubElement(auth, "secret", uuid=spec.auth_secret_uuid)


def pool_xml(spec: PoolSpec) -> str:
    """The libvirt XML of a pool described by spec, built with ElementTree."""
    if spec.type == "dir":
        return xmlio.dir_pool_xml(spec.name, spec.target_path)
    root = _root(spec)
    source = ET.SubElement(root, "source")
    if spec.type == "fs":
        _devices(source, _one(spec.source_devices, _("device")))
        _format(source, spec.source_format)
        _target(root, spec.target_path)
    elif spec.type == "netfs":
        _hosts(source, _one(spec.source_hosts, _("host")))
        ET.SubElement(source, "dir", path=spec.source_dir)
        _format(source, spec.source_format)
        _target(root, spec.target_path)
    elif spec.type == "logical":
        ET.SubElement(source, "name").text = spec.source_name
        _devices(source, spec.source_devices)
        _format(source, "lvm2")
        _target(root, spec.target_path or f"/dev/{spec.source_name}")
    elif spec.type == "disk":
        _devices(source, _one(spec.source_devices, _("device")))
        _format(source, spec.source_format)
        _target(root, DISK_TARGET)
    elif spec.type in ("iscsi", "iscsi-direct"):
        _hosts(source, _one(spec.source_hosts, _("host")))
        ET.SubElement(source, "device", path=spec.target_iqn)
        if spec.initiator_iqn:
            initiator = ET.SubElement(source, "initiator")
            ET.SubElement(initiator, "iqn", name=spec.initiator_iqn)
        _auth(source, spec, "chap")
        if spec.type == "iscsi":
            _target(root, ISCSI_TARGET)
    elif spec.type == "rbd":
        ET.SubElement(source, "name").text = spec.source_name
        _hosts(source, spec.source_hosts)
        _auth(source, spec, "ceph")
    elif spec.type == "zfs":
        ET.SubElement(source, "name").text = spec.source_name
        _devices(source, _one(spec.source_devices, _("device")))
    else:
        raise ValueError(_("Pool type %(type)s has no form; paste its XML instead.") % {"type": repr(spec.type)})
    return xmlio.to_string(root)


@dataclass(frozen=True)
class PoolXmlSummary:
    """The parts of pasted pool XML the app checks before libvirt sees it."""

    name: str
    type: str
    target_path: str
    device_paths: tuple[str, ...]
    source_name: str = ""


def summarize_pool_xml(xml: str) -> PoolXmlSummary:
    """Name, type, target and devices of pasted XML; ValueError if it is not pool XML at all."""
    if "<!DOCTYPE" in xml or "<!ENTITY" in xml:
        raise ValueError(_("Pool XML may not contain a DOCTYPE or entities."))
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise ValueError(_("This is not well-formed XML: %(error)s.") % {"error": exc}) from None
    if root.tag != "pool":
        raise ValueError(_("The root element must be <pool>, not <%(tag)s>.") % {"tag": root.tag})
    if len(root.findall("target")) > 1 or len(root.findall("target/path")) > 1:
        raise ValueError(_("A pool has one <target> with one <path>."))
    # Name and path as libvirt will read them: not stripped, so " vms" or " /etc" is checked as it is.
    return PoolXmlSummary(
        name=root.findtext("name") or "",
        type=root.get("type", ""),
        target_path=root.findtext("target/path") or "",
        device_paths=tuple(d.get("path", "") for d in root.findall("source/device")),
        source_name=root.findtext("source/name") or "",
    )


# -- operations -------------------------------------------------------------------

def define_pool(host: LibvirtHost, xml: str) -> PoolInfo:
    """Define a persistent pool; libvirt validates the XML against its schema first."""
    with translated():
        pool = host.raw.storagePoolDefineXML(xml, libvirt.VIR_STORAGE_POOL_DEFINE_VALIDATE)
        return host.pool(pool.name())


# Pool types whose build formats something, and so takes libvirt's overwrite flags (others refuse them).
FORMATTING_TYPES = frozenset({"fs", "disk", "logical"})


def build_pool(host: LibvirtHost, name: str, *, overwrite: bool) -> None:
    """Create the pool's storage (mkdir, mkfs, vgcreate, label a disk...).

    Without overwrite libvirt refuses to format a device that already holds a file
    system, label or volume group; with it, whatever was there is gone.
    """
    with translated():
        pool = host.raw_pool(name)
        if ET.fromstring(pool.XMLDesc(0)).get("type") in FORMATTING_TYPES:
            flags = (libvirt.VIR_STORAGE_POOL_BUILD_OVERWRITE if overwrite
                     else libvirt.VIR_STORAGE_POOL_BUILD_NO_OVERWRITE)
        else:
            flags = 0  # a directory or mount point: nothing to format, nothing to overwrite
        pool.build(flags)


def stop_pool(host: LibvirtHost, name: str) -> None:
    """Stop (libvirt: destroy) a pool. Its data stays; a transient pool is forgotten."""
    with translated():
        host.raw_pool(name).destroy()


def set_autostart(host: LibvirtHost, name: str, enabled: bool) -> None:
    with translated():
        host.raw_pool(name).setAutostart(1 if enabled else 0)


def volume_names(host: LibvirtHost, name: str) -> list[str]:
    """Names of the volumes of an active pool."""
    with translated():
        return sorted(host.raw_pool(name).listVolumes())


def delete_pool(host: LibvirtHost, name: str, *, delete_volumes: bool,
                say: Callable[[str], None] = lambda _msg: None) -> int:
    """Destroy the pool's storage and forget it; returns how many volumes were deleted.

    A pool with volumes is refused unless delete_volumes: libvirt would otherwise
    either fail half-way (a dir pool's rmdir) or wipe them (a logical pool's vgremove).
    """
    with translated():
        pool = host.raw_pool(name)
        if not pool.isPersistent():
            raise InvalidRequest(_("Pool %(pool)s is transient: stopping it is how it goes away; libvirt cannot "
                                   "delete the storage of a transient pool.") % {"pool": name})
        if not pool.isActive():
            say(_("Starting the pool to see which volumes it holds"))
            pool.create(0)
        pool.refresh(0)
        names = sorted(pool.listVolumes())
        if names and not delete_volumes:
            shown = ", ".join(names[:5]) + (" …" if len(names) > 5 else "")
            raise PoolNotEmpty(ngettext("Pool %(pool)s still holds %(count)s volume (%(names)s); confirm deleting it "
                                        "too, or delete it first.",
                                        "Pool %(pool)s still holds %(count)s volumes (%(names)s); confirm deleting "
                                        "them too, or delete them first.", len(names))
                               % {"pool": name, "count": len(names), "names": shown})
        for index, vol_name in enumerate(names, 1):
            say(_("Deleting volume %(name)s (%(index)s of %(count)s)")
                % {"name": vol_name, "index": index, "count": len(names)})
            pool.storageVolLookupByName(vol_name).delete(0)
        say(_("Stopping the pool"))
        pool.destroy()
        say(_("Deleting the pool's storage"))
        pool.delete(0)
        say(_("Forgetting the pool's definition"))
        pool.undefine()
        return len(names)


def undefine_pool(host: LibvirtHost, name: str, say: Callable[[str], None] = lambda _msg: None) -> None:
    """Forget the pool's definition; its storage and volumes stay where they are.

    A running pool is stopped first: undefining it while it runs would leave it
    transient, and it would vanish at the next stop anyway.
    """
    with translated():
        pool = host.raw_pool(name)
        if not pool.isPersistent():
            raise InvalidRequest(_("Pool %(pool)s is transient: it has no definition to forget; stop it instead.")
                                 % {"pool": name})
        if pool.isActive():
            say(_("Stopping the pool (its data stays)"))
            pool.destroy()
        say(_("Forgetting the pool's definition"))
        pool.undefine()


@dataclass(frozen=True)
class PoolLiveView:
    """The pool as libvirt reports it right now (not the inventory)."""

    state: str
    capacity: int
    allocation: int
    available: int
    autostart: bool
    persistent: bool
    volume_count: int | None
    inactive_xml: str


def live_view(host: LibvirtHost, name: str) -> PoolLiveView:
    with translated():
        pool = host.raw_pool(name)
        state, capacity, allocation, available = pool.info()
        active = bool(pool.isActive())
        persistent = bool(pool.isPersistent())
        flags = libvirt.VIR_STORAGE_XML_INACTIVE if persistent else 0
        return PoolLiveView(
            state=_STATES.get(state, str(state)),
            capacity=capacity,
            allocation=allocation,
            available=available,
            autostart=bool(pool.autostart()),
            persistent=persistent,
            volume_count=pool.numOfVolumes() if active else None,
            inactive_xml=pool.XMLDesc(flags),
        )
