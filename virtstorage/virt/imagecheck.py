"""Image safety: what the first bytes of an image say, checked before libvirt or qemu-img open it (no Django imports).

Why: members upload images and may drop files into pool directories, and libvirtd and qemu-img run as root.
An image can name other files on the host, which they then open in its place:
- a qcow2 may name a backing file (read when the image is read: another guest's disk, /etc/shadow...), or an
  external data file (incompatible feature bit 2 and header extension 0x44415441; ``qemu-img create -o
  data_file=PATH``) which holds all its data: a clone (qemu-img convert) reads that file, a resize or a write
  writes into it;
- a volume meant to be raw whose bytes look like qcow2, vmdk (a text descriptor names its extent files), qed...
  is taken for that format wherever the format is probed, and then follows those names.

What ``inspect`` checks (the OpenStack image format inspector works the same way; nothing here runs qemu):
- the content's format, found from signatures as qemu and libvirt probe them (``detect_format``), must be the
  stated one, and one of SUPPORTED_FORMATS. ISO 9660 content counts as raw (it names no other file); bytes that
  carry the signatures of two formats (vdi's at 0x40 in a qcow2 header, say) are refused;
- a qcow2 must be version 2 or 3, not encrypted, without an external data file (the feature bit, the
  data-file-raw bit, or the header extension, looked for both as qemu walks the extensions and as libvirt does,
  without qemu's padding) and without incompatible feature bits qemu 7.2 does not know; its header, header
  extensions and backing file name must lie inside the first cluster and inside the bytes read;
- a backing file name is refused unless the caller's ``backing_allowed`` accepts it, and always when it is
  a protocol (``json:``, ``nbd:``, ``file:``..., anything with ':' before the first '/'), holds a NUL or
  control character, or is not UTF-8.
Header extensions of unknown types are allowed: qcow2 says they may be ignored (a feature that must be understood
comes with an incompatible feature bit, and unknown ones are refused).

Not seen from the first bytes: a dmg is recognised by qemu from its ".dmg" file name only (libvirt has no
signature for it); callers state the format, so such a file is opened as raw.

``read_head_from_fd`` and ``read_volume_head`` read what ``inspect`` needs: HEAD_BYTES, then up to
``needed_bytes`` (a qcow2's whole first cluster). The latter goes through libvirt, so it works for remote hosts.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .text import _

if TYPE_CHECKING:
    import libvirt

    from .connection import LibvirtHost

HEAD_BYTES = 64 * 1024  # every signature and any qcow2 header of clusters up to 64 KiB (qemu's default) lie within
MAX_CLUSTER_BYTES = 2 * 1024 * 1024  # qemu's largest qcow2 cluster (cluster_bits 21)
SUPPORTED_FORMATS = ("raw", "qcow2")

# -- signatures (qemu's bdrv_probe functions and libvirt's storage_file_probe.c) --------------------------------
# At offset 0. libvirt takes "QFI" and "QED" alone as qcow/qcow2 and qed, so they are matched on 3 bytes here too;
# versions are not required: a file with a magic but an odd version is refused, not taken as raw.
_MAGICS: tuple[tuple[bytes, str], ...] = (
    (b"QFI", "qcow2"),  # "QFI\xfb"; version 1 is "qcow" (see _qcow_family)
    (b"QED", "qed"),
    (b"KDMV", "vmdk"),  # VMDK4 sparse extent
    (b"COWD", "vmdk"),  # VMDK3
    (b"conectix", "vpc"),
    (b"vhdxfile", "vhdx"),
    (b"LUKS\xba\xbe", "luks"),
    (b"WithoutFreeSpace", "parallels"),
    (b"WithouFreSpacExt", "parallels"),  # libvirt: ploop
    (b"Bochs Virtual HD Image", "bochs"),
    (b"#!/bin/sh\n#V2.0 Format\nmodprobe cloop", "cloop"),
    (b"OOOM", "cow"),  # user-mode Linux COW: libvirt reads a backing file name from it
)
_VDI_OFFSET, _VDI_MAGIC = 0x40, b"\x7f\x10\xda\xbe"  # 0xbeda107f little-endian
_ISO_OFFSET, _ISO_MAGIC = 0x8001, b"CD001"  # libvirt probes "iso"; qemu opens it as raw
# qemu's vmdk_probe takes a text descriptor: '#' comment lines and lines of spaces, then "version=N". Matching
# "version=" alone (and over more than qemu's 2 KiB) finds everything qemu finds, and a little more.
_VMDK_DESCRIPTOR = re.compile(rb"(?:#[^\n]*\n| +\r?\n)*version=")
_RAW_LIKE = "iso"  # a signature that still counts as raw content

# -- qcow2 (docs/interop/qcow2.txt, block/qcow2.c of qemu 7.2) ---------------------------------------------------
_QCOW2_MAGIC = b"QFI\xfb"
_QCOW2_V2 = struct.Struct(">4sIQIIQI")  # magic, version, backing offset, backing size, cluster_bits, size, crypt
_QCOW2_V2_LENGTH = 72
_QCOW2_V3 = struct.Struct(">QQQII")  # at 72: incompatible, compatible, autoclear features, refcount_order, length
_QCOW2_V3_LENGTH = 104
_QCOW2_EXTENSION = struct.Struct(">II")  # type, length (then the data, padded to 8 bytes)
_MIN_CLUSTER_BITS, _MAX_CLUSTER_BITS = 9, 21
_MAX_BACKING_NAME = 1023  # qemu and libvirt refuse longer names
_MAX_REFCOUNT_ORDER = 6
_LIBVIRT_HEADER_BYTES = 0x8010  # VIR_STORAGE_MAX_HEADER: what libvirt reads to probe a file

_INCOMPAT_DIRTY, _INCOMPAT_CORRUPT, _INCOMPAT_DATA_FILE = 1 << 0, 1 << 1, 1 << 2
_INCOMPAT_COMPRESSION, _INCOMPAT_EXTL2 = 1 << 3, 1 << 4
_INCOMPAT_ALLOWED = _INCOMPAT_DIRTY | _INCOMPAT_CORRUPT | _INCOMPAT_COMPRESSION | _INCOMPAT_EXTL2
_AUTOCLEAR_DATA_FILE_RAW = 1 << 1

EXT_END = 0x00000000
EXT_BACKING_FORMAT = 0xE2792ACA
EXT_FEATURE_TABLE = 0x6803F857
EXT_CRYPTO_HEADER = 0x0537BE77
EXT_BITMAPS = 0x23852875
EXT_DATA_FILE = 0x44415441  # "DATA"


class UnsafeImage(Exception):
    """The image is refused. str() is a sentence for the user (what was found; nothing was done);
    ``reason`` a short code for programs and tests ("data-file", "backing-file", "format-mismatch"...)."""

    def __init__(self, message: str, reason: str = "unsafe") -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class ImageFacts:
    """What an image that passed ``inspect`` is."""

    format: str  # "raw" or "qcow2": what the content is
    virtual_size: int | None  # the qcow2 header's size; None for raw
    backing_file: str = ""  # a qcow2's backing file name as written in its header (one backing_allowed accepted)


def _refuse(reason: str, what: str) -> UnsafeImage:
    # Translators: %(what)s is one of the sentences below, saying what was found.
    return UnsafeImage(_("%(what)s Nothing was done with it.") % {"what": what}, reason)


def _shown(name: bytes | str, limit: int = 100) -> str:
    """A name from an image, quoted for a message: undecodable bytes and control characters escaped, cut at limit."""
    text = name.decode("utf-8", "backslashreplace") if isinstance(name, bytes) else name
    text = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)
    return f'"{text[:limit]}…"' if len(text) > limit else f'"{text}"'


# -- formats ------------------------------------------------------------------------------------------------------

def _qcow_family(head: bytes) -> str:
    version = struct.unpack_from(">I", head, 4)[0] if len(head) >= 8 else None
    return "qcow" if version == 1 else "qcow2"


def _signatures(head: bytes) -> list[str]:
    """Every format whose signature the head carries: one at offset 0 at most, then vdi, then iso."""
    found = []
    for magic, name in _MAGICS:
        if head.startswith(magic):
            found.append(_qcow_family(head) if name == "qcow2" else name)
            break
    else:
        if _VMDK_DESCRIPTOR.match(head, 0, HEAD_BYTES):
            found.append("vmdk")
    if head[_VDI_OFFSET:_VDI_OFFSET + len(_VDI_MAGIC)] == _VDI_MAGIC:
        found.append("vdi")
    if head[_ISO_OFFSET:_ISO_OFFSET + len(_ISO_MAGIC)] == _ISO_MAGIC:
        found.append("iso")
    return found


def detect_format(head: bytes) -> str:
    """The format the content looks like: 'raw' when no known signature; else 'qcow2', 'qcow' (v1), 'qed', 'vmdk'
    (binary or text descriptor), 'vdi', 'vpc', 'vhdx', 'luks', 'parallels', 'cloop', 'bochs', 'cow' or 'iso':
    what qemu or libvirt would probe (with versions loosened). 'dmg' is never returned: qemu knows it by its
    file name only."""
    found = _signatures(bytes(head))
    return found[0] if found else "raw"


def needed_bytes(head: bytes) -> int:
    """How many bytes from the start inspect() needs to see, given the first HEAD_BYTES: for a qcow2 its whole
    first cluster (at most MAX_CLUSTER_BYTES), otherwise len(head). Never less than len(head)."""
    if len(head) >= 24 and bytes(head[:4]) == _QCOW2_MAGIC:
        cluster_bits = struct.unpack_from(">I", head, 20)[0]
        if _MIN_CLUSTER_BITS <= cluster_bits <= _MAX_CLUSTER_BITS:
            return max(len(head), 1 << cluster_bits)
    return len(head)


# -- the check ------------------------------------------------------------------------------------------------------

def inspect(head: bytes, stated_format: str | None = None, *,
            backing_allowed: Callable[[str], bool] | None = None) -> ImageFacts:
    """Check the start of an image: raise UnsafeImage unless libvirt and qemu may open it as stated_format (or,
    when None, as the format it is, which must be supported) without it leading them to any other file.

    head: the first needed_bytes(head) bytes of the image (or the whole file when it is shorter). Refused when:
    stated_format is not supported; the content's format (detect_format; ISO 9660 counts as raw) is another one
    or, with no stated format, an unsupported one, or the head carries the signatures of two formats; a qcow2
    is not version 2 or 3, is encrypted, has an external data file (feature bit, header extension or the
    data-file-raw bit), unknown incompatible features, or a header (extensions, backing file name) that is
    malformed or runs past the first cluster or the bytes read; a qcow2 names a backing file that
    backing_allowed (called with the name as written; relative names are relative to the image's directory)
    does not return True for, or a backing file name that is a protocol (':' before any '/', json:...),
    holds NUL or control characters or is not UTF-8.

    Whatever the bytes, raises nothing but UnsafeImage (exceptions of backing_allowed itself pass through).
    """
    if stated_format is not None and stated_format not in SUPPORTED_FORMATS:
        raise _refuse("unsupported-format", _("The format %(format)s is not supported: only %(formats)s images are.")
                      % {"format": _shown(str(stated_format)), "formats": " and ".join(SUPPORTED_FORMATS)})
    try:
        head = bytes(head)
        content = _content_format(head, stated_format)
        if content == "raw":
            return ImageFacts("raw", None)
        virtual_size, backing = _inspect_qcow2(head)
        name = _backing_name(backing)
    except UnsafeImage:
        raise
    except Exception as exc:  # noqa: BLE001 - a bug here must refuse the image, never let it pass
        raise _refuse("internal", _("The image header could not be checked (%(error)s).")
                      % {"error": type(exc).__name__}) from exc
    if name and (backing_allowed is None or backing_allowed(name) is not True):
        raise _refuse("backing-file", _("The qcow2 image names a backing file, %(name)s, that the app does not "
                                        "allow: qemu would read that file on the host.") % {"name": _shown(name)})
    return ImageFacts("qcow2", virtual_size, name)


def _content_format(head: bytes, stated_format: str | None) -> str:
    """The content's format ("raw" or "qcow2") if it is the stated one (or, with none stated, a supported one)."""
    found = [name for name in _signatures(head) if name != _RAW_LIKE]
    if len(found) > 1:
        raise _refuse("ambiguous-format", _("The image carries the signatures of several formats (%(formats)s): it "
                                            "could be opened as any of them.") % {"formats": ", ".join(found)})
    content = found[0] if found else "raw"
    if stated_format is None:
        if content not in SUPPORTED_FORMATS:
            raise _refuse("unsupported-format", _("The image is in %(format)s format, which is not supported: only "
                                                  "%(formats)s images are.")
                          % {"format": _format_name(content), "formats": " and ".join(SUPPORTED_FORMATS)})
    elif content != stated_format:
        mismatch = (_("The image is stated to be %(stated)s, but its content has no image format signature (raw): "
                      "libvirt and qemu would take it for what its content says.") if content == "raw" else
                    _("The image is stated to be %(stated)s, but its content is a %(format)s image: libvirt and qemu "
                      "would take it for what its content says."))
        raise _refuse("format-mismatch", mismatch % {"stated": stated_format, "format": _format_name(content)})
    return content


def _format_name(name: str) -> str:
    return _("qcow (version 1)") if name == "qcow" else name


def _inspect_qcow2(head: bytes) -> tuple[int, bytes]:
    """The virtual size and the backing file name (b"" for none) of a safe qcow2 header; else UnsafeImage."""
    if len(head) < _QCOW2_V2_LENGTH:
        raise _truncated(_("its header needs %(needed)s bytes, the image holds %(held)s")
                         % {"needed": _QCOW2_V2_LENGTH, "held": len(head)})
    magic, version, backing_offset, backing_size, cluster_bits, size, crypt_method = _QCOW2_V2.unpack_from(head)
    if magic != _QCOW2_MAGIC:
        raise _malformed(_("it starts with %(magic)s, not qcow2's magic") % {"magic": _shown(magic)})
    if version not in (2, 3):
        raise _refuse("qcow2-version", _("The image is a qcow2 of version %(version)s: only versions 2 and 3 are "
                                         "accepted.") % {"version": version})
    if not _MIN_CLUSTER_BITS <= cluster_bits <= _MAX_CLUSTER_BITS:
        raise _malformed(_("its cluster_bits is %(bits)s, outside qemu's %(min)s to %(max)s")
                         % {"bits": cluster_bits, "min": _MIN_CLUSTER_BITS, "max": _MAX_CLUSTER_BITS})
    cluster = 1 << cluster_bits
    header_length = _QCOW2_V2_LENGTH
    if version == 3:
        if len(head) < _QCOW2_V3_LENGTH:
            raise _truncated(_("a version 3 header needs %(needed)s bytes, the image holds %(held)s")
                             % {"needed": _QCOW2_V3_LENGTH, "held": len(head)})
        incompatible, _compatible, autoclear, refcount_order, header_length = _QCOW2_V3.unpack_from(
            head, _QCOW2_V2_LENGTH)
        if incompatible & _INCOMPAT_DATA_FILE:
            raise _data_file(_("its header sets the external data file feature"))
        if autoclear & _AUTOCLEAR_DATA_FILE_RAW:
            raise _data_file(_("its header sets the data-file-raw feature"))
        unknown = incompatible & ~_INCOMPAT_ALLOWED
        if unknown:
            bits = ", ".join(str(bit) for bit in range(64) if unknown >> bit & 1)
            raise _refuse("unknown-features", _("The qcow2 image needs incompatible features this app does not "
                                                "know (bits %(bits)s): what qemu would do with them is unknown.")
                          % {"bits": bits})
        if not _QCOW2_V3_LENGTH <= header_length <= cluster:
            raise _malformed(_("its header_length is %(length)s, not between %(min)s and the cluster size %(cluster)s")
                             % {"length": header_length, "min": _QCOW2_V3_LENGTH, "cluster": cluster})
        if header_length > len(head):
            raise _truncated(_("its header claims %(length)s bytes, the image holds %(held)s")
                             % {"length": header_length, "held": len(head)})
        if refcount_order > _MAX_REFCOUNT_ORDER:
            raise _malformed(_("its refcount_order is %(order)s") % {"order": refcount_order})
    if crypt_method != 0:
        kind = {1: "AES", 2: "LUKS"}.get(crypt_method)
        raise _encrypted(_("%(kind)s encryption") % {"kind": kind} if kind
                         else _("method %(method)s encryption") % {"method": crypt_method})
    if backing_offset > cluster:
        raise _malformed(_("its backing file name lies at byte %(offset)s, past the first cluster (%(cluster)s bytes)")
                         % {"offset": backing_offset, "cluster": cluster})
    if backing_offset and backing_offset < header_length:
        raise _malformed(_("its backing file name at byte %(offset)s overlaps the %(length)s-byte header")
                         % {"offset": backing_offset, "length": header_length})
    _check_extensions(head, header_length, backing_offset or cluster)
    _check_libvirt_extension_walk(head, header_length, backing_offset)
    if not backing_offset or not backing_size:  # qemu and libvirt: no backing file
        return size, b""
    if backing_size > _MAX_BACKING_NAME:
        raise _malformed(_("its backing file name is %(size)s bytes long (at most %(max)s)")
                         % {"size": backing_size, "max": _MAX_BACKING_NAME})
    end = backing_offset + backing_size
    if end > cluster:
        raise _malformed(_("its backing file name runs to byte %(end)s, past the first cluster (%(cluster)s bytes)")
                         % {"end": end, "cluster": cluster})
    if end > len(head):
        raise _truncated(_("its backing file name runs to byte %(end)s, the image holds %(held)s")
                         % {"end": end, "held": len(head)})
    return size, head[backing_offset:end]


def _check_extensions(head: bytes, start: int, end: int) -> None:
    """Walk the header extensions from start to end (the backing file name, or the first cluster) as qemu does."""
    offset = start
    while offset < end:
        if offset + _QCOW2_EXTENSION.size > len(head):
            raise _truncated(_("its header extensions run past byte %(end)s, the end of the image")
                             % {"end": len(head)})
        kind, length = _QCOW2_EXTENSION.unpack_from(head, offset)
        offset += _QCOW2_EXTENSION.size
        if offset > end or length > end - offset:
            raise _malformed(_("a header extension (type %(type)s, %(length)s bytes) runs past byte %(end)s, the end "
                               "of the header area") % {"type": f"{kind:#010x}", "length": length, "end": end})
        if kind == EXT_END:
            return
        if offset + length > len(head):
            raise _truncated(_("a header extension runs to byte %(end)s, the image holds %(held)s")
                             % {"end": offset + length, "held": len(head)})
        if kind == EXT_DATA_FILE:
            raise _data_file(_("its header names the external data file %(name)s")
                             % {"name": _shown(head[offset:offset + length])})
        if kind == EXT_CRYPTO_HEADER:
            raise _encrypted(_("its header holds an encryption header extension"))
        offset += (length + 7) & ~7


def _check_libvirt_extension_walk(head: bytes, start: int, backing_offset: int) -> None:
    """libvirt reads the extensions too (storage_file_probe.c), but without qemu's 8-byte padding, within its
    0x8010-byte probe buffer and up to the backing file name (or, when there is none, the buffer's end). Where
    the two walks part, a data file extension could be seen by libvirt alone: refuse it there too."""
    buffer_end = min(len(head), _LIBVIRT_HEADER_BYTES)
    end = backing_offset - 8 if backing_offset >= 8 else buffer_end  # libvirt's size_t arithmetic wraps below 8
    offset = start
    while offset < buffer_end - 8 and offset < end:
        kind, length = _QCOW2_EXTENSION.unpack_from(head, offset)
        offset += _QCOW2_EXTENSION.size
        if kind == EXT_END or offset + length > buffer_end:
            return
        if kind == EXT_DATA_FILE:
            raise _data_file(_("its header names the external data file %(name)s, where libvirt reads it")
                             % {"name": _shown(head[offset:offset + length])})
        offset += length


def _backing_name(raw: bytes) -> str:
    """The backing file name as text, if it may be a file name at all (no protocol); "" for none."""
    if not raw:
        return ""
    if b"\0" in raw:
        raise _bad_backing_name(_("The qcow2 image names a backing file %(name)s that holds a NUL byte: qemu would "
                                  "open it on the host."), raw)
    try:
        name = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _bad_backing_name(_("The qcow2 image names a backing file %(name)s that is not valid UTF-8: qemu would "
                                  "open it on the host."), raw) from None
    if any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for ch in name):
        raise _bad_backing_name(_("The qcow2 image names a backing file %(name)s that holds control characters: qemu "
                                  "would open it on the host."), raw)
    if name.startswith("json:"):
        raise _bad_backing_name(_("The qcow2 image names a backing file %(name)s that is a json: pseudo-protocol "
                                  "description: qemu would open it on the host."), raw)
    colon, slash = name.find(":"), name.find("/")
    if colon >= 0 and (slash < 0 or colon < slash):
        raise _bad_backing_name(_("The qcow2 image names a backing file %(name)s that is a %(protocol)s protocol "
                                  "address, not a file: qemu would open it on the host."), raw,
                                protocol=_shown(name[:colon + 1], 20))
    return name


# Translators (the four below): %(what)s is one of the clauses above, saying what was found.
def _truncated(what: str) -> UnsafeImage:
    return _refuse("truncated", _("The qcow2 image is cut short: %(what)s.") % {"what": what})


def _malformed(what: str) -> UnsafeImage:
    return _refuse("malformed", _("The qcow2 image header is malformed: %(what)s.") % {"what": what})


def _data_file(what: str) -> UnsafeImage:
    return _refuse("data-file", _("The qcow2 image keeps its data in an external file (%(what)s): qemu would read "
                                  "and write that file on the host.") % {"what": what})


def _encrypted(what: str) -> UnsafeImage:
    return _refuse("encrypted", _("The qcow2 image is encrypted (%(what)s): the app handles no encrypted images.")
                   % {"what": what})


def _bad_backing_name(message: str, raw: bytes, **values: str) -> UnsafeImage:
    """message: a translated sentence with %(name)s, the backing file name as written."""
    return _refuse("backing-name", message % {"name": _shown(raw), **values})


# -- readers ----------------------------------------------------------------------------------------------------------

def read_head_from_fd(fd: int, size: int) -> bytes:
    """The start of the open file fd (size bytes long) that inspect() needs: HEAD_BYTES, then up to
    needed_bytes() of them; never past size, and less when the file ends earlier."""
    first = max(0, min(HEAD_BYTES, size))
    head = _pread_fully(fd, first, 0)
    want = min(needed_bytes(head), size)
    if len(head) == first and want > len(head):
        head += _pread_fully(fd, want - len(head), len(head))
    return head


def _pread_fully(fd: int, length: int, offset: int) -> bytes:
    parts: list[bytes] = []
    done = 0
    while done < length:
        data = os.pread(fd, length - done, offset + done)
        if not data:
            break
        parts.append(data)
        done += len(data)
    return b"".join(parts)


def read_volume_head(lv: LibvirtHost, pool_name: str, name: str) -> bytes:
    """The start of a volume that inspect() needs, read through libvirt download streams (any host): HEAD_BYTES,
    then up to needed_bytes(). Less when the volume's file is shorter. libvirt errors come as VirtError."""
    from .errors import translated  # libvirt is imported here only: the checks above stay pure

    with translated():
        volume = lv.raw_volume(pool_name, name)
        head = _download(lv, volume, 0, HEAD_BYTES)
        want = needed_bytes(head)
        if len(head) == HEAD_BYTES and want > len(head):
            head += _download(lv, volume, len(head), want - len(head))
    return head


def _download(lv: LibvirtHost, volume: libvirt.virStorageVol, offset: int, length: int) -> bytes:
    """Up to length bytes of the volume at offset through one download stream, finished or aborted on every path."""
    from .errors import OperationFailed
    from .streams import abort_stream

    stream = lv.raw.newStream(0)
    try:
        volume.download(stream, offset, length, 0)
        parts: list[bytes] = []
        done = 0
        while True:
            data = stream.recv(min(256 * 1024, length - done + 1))
            if isinstance(data, int):
                raise OperationFailed(_("libvirt stream returned %(code)s") % {"code": data})
            if not data:
                break
            done += len(data)
            if done > length:
                raise OperationFailed(_("libvirt sent more than the %(length)s bytes asked for") % {"length": length})
            parts.append(data)
        stream.finish()
    except BaseException:
        abort_stream(stream)
        raise
    return b"".join(parts)
