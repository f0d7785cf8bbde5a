"""qemu-img on this machine: info, check and convert of images the caller has verified (no Django imports).

qemu-img follows whatever an image names: a backing file, an external data file, a protocol such as nbd: or
http:. So nothing here hands qemu-img a name. The caller verifies each file of an image's chain (the image
check, virt/imagecheck.py, through virt/volumes.py) and opens it; qemu-img gets the open descriptors as
/dev/fd/N inside a ``json:`` description that states the format of every file and every backing file
explicitly, and ``"backing": null`` where the chain ends. qemu-img then opens exactly those files, probes no
format and reads no name written in an image. (A relative backing name would otherwise resolve against
/dev/fd/ itself.)

qemu-img's exit codes: 0 success; for ``check`` 1 = the check could not complete, 2 = corruptions found,
3 = only leaked clusters found, 63 = the format has no checks (raw). Failures come as QemuImgFailed with
qemu-img's own message, the json: descriptions in it replaced by words.
"""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import InvalidRequest, OperationFailed
from .text import _, gettext_noop

QEMU_IMG = "qemu-img"
FORMATS = ("raw", "qcow2")
INFO_TIMEOUT_SECONDS = 20.0  # info reads headers only: this bounds a page's wait on a file system that hangs
POLL_SECONDS = 0.25  # how often a running qemu-img's caller hears from it (progress, a chance to cancel)
MAX_MESSAGES = 20  # lines of qemu-img's findings kept in a check report
_PROGRESS = re.compile(rb"\((\d+(?:\.\d+)?)/100%\)")
_REFCOUNT_ERROR = re.compile(r"^ERROR cluster \d+ refcount=\d+ reference=\d+$")


class QemuImgFailed(OperationFailed):
    """qemu-img failed, or is missing; the message is qemu-img's own (or says what is missing)."""


@dataclass(frozen=True)
class ImageFile:
    """A file qemu-img may open, already open here (``fd``), in a format the caller states.

    backing: the verified file below it (a qcow2 overlay's base); None ends the chain: qemu-img opens no
    backing file at all, whatever the header names."""

    fd: int
    format: str
    backing: ImageFile | None = None

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise InvalidRequest(_("qemu-img is only given %(formats)s images, not %(format)s")
                                 % {"formats": " and ".join(FORMATS), "format": repr(self.format)})
        if self.backing is not None and self.format != "qcow2":
            raise InvalidRequest(_("only a qcow2 image has a backing file"))

    def description(self, *, with_backing: bool = True) -> dict:
        """qemu's block options for this file (and, with_backing, its chain): every driver stated."""
        spec: dict = {"driver": self.format, "file": {"driver": "file", "filename": f"/dev/fd/{self.fd}"}}
        if self.format == "qcow2":
            spec["backing"] = self.backing.description() if with_backing and self.backing else None
        return spec

    def argument(self, *, with_backing: bool = True) -> str:
        return "json:" + json.dumps(self.description(with_backing=with_backing), separators=(",", ":"))

    def descriptors(self) -> tuple[int, ...]:
        return (self.fd, *(self.backing.descriptors() if self.backing else ()))


# -- info ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ImageInfo:
    """What ``qemu-img info`` says of one file (its backing file not opened)."""

    format: str
    virtual_size: int  # what the guest sees
    disk_size: int  # what the host holds (qemu-img's "disk size", the file's allocated blocks)
    cluster_size: int | None = None
    backing_name: str = ""  # as written in the header (qemu-img was not allowed to open it)
    backing_format: str = ""
    dirty: bool = False  # qcow2 dirty bit: refcounts not written back (lazy refcounts); a check repairs it
    corrupt: bool = False  # qcow2 corrupt bit: qemu found an inconsistency and stopped writing to it
    compat: str = ""  # qcow2 version: "0.10" (v2) or "1.1" (v3)
    compression_type: str = ""
    lazy_refcounts: bool | None = None
    encrypted: bool = False

    @property
    def provisioning(self) -> str:
        """"preallocated" when the host holds at least the virtual size, "thin" when less."""
        return "preallocated" if self.virtual_size and self.disk_size >= self.virtual_size else "thin"


def parse_info(text: str | bytes) -> ImageInfo:
    """ImageInfo from ``qemu-img info --output=json``; QemuImgFailed when the output is not that."""
    try:
        data = json.loads(text)
        specific = (data.get("format-specific") or {}).get("data") or {}
        return ImageInfo(
            format=str(data["format"]), virtual_size=int(data["virtual-size"]),
            disk_size=int(data.get("actual-size", 0)), cluster_size=data.get("cluster-size"),
            backing_name=str(data.get("backing-filename", "")), backing_format=str(data.get("backing-filename-format",
                                                                                             "")),
            dirty=bool(data.get("dirty-flag", False)), corrupt=bool(specific.get("corrupt", False)),
            compat=str(specific.get("compat", "")), compression_type=str(specific.get("compression-type", "")),
            lazy_refcounts=specific.get("lazy-refcounts"), encrypted=bool(data.get("encrypted", False)))
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise QemuImgFailed(_("qemu-img info gave output this app cannot read (%(error)s).")
                            % {"error": type(exc).__name__}) from exc


def info(image: ImageFile, *, timeout: float = INFO_TIMEOUT_SECONDS) -> ImageInfo:
    """``qemu-img info`` of the one file (never its backing file). -U: a running VM's disk can be looked at
    too (its metadata may then be a moment old)."""
    argument = image.argument(with_backing=False)
    code, out, err = _run([QEMU_IMG, "info", "--output=json", "-U", argument], image.descriptors()[:1],
                          timeout=timeout)
    if code != 0:
        raise QemuImgFailed(_message(err, {argument: "the image"}, "qemu-img info"))
    return parse_info(out)


# -- check --------------------------------------------------------------------------------------------------

CHECK_OUTCOMES = {  # English; CheckReport.outcome translates
    0: gettext_noop("no errors were found"),
    1: gettext_noop("the check could not be completed (qemu-img met an internal error)"),
    2: gettext_noop("the image is corrupted"),
    3: gettext_noop("there are leaked clusters, but no corruption"),
    63: gettext_noop("this image format has no consistency checks"),
}


@dataclass(frozen=True)
class CheckReport:
    """What ``qemu-img check`` found, from its JSON and its exit code."""

    exit_code: int
    leaks: int = 0  # clusters allocated that nothing uses: wasted space, no harm to data
    corruptions: int = 0  # references that disagree with the refcounts: data may be damaged
    check_errors: int = 0  # errors that kept the check from looking everywhere
    total_clusters: int | None = None
    allocated_clusters: int | None = None
    fragmented_clusters: int | None = None
    compressed_clusters: int | None = None
    image_end_offset: int | None = None
    messages: tuple[str, ...] = field(default=())

    @property
    def outcome(self) -> str:
        if self.exit_code in CHECK_OUTCOMES:
            return _(CHECK_OUTCOMES[self.exit_code])
        return _("qemu-img check ended with code %(code)s") % {"code": self.exit_code}

    @property
    def fixable(self) -> str:
        """Whether qemu-img can repair what was found, in words."""
        if self.check_errors or self.exit_code == 1:
            return _("The check itself failed on part of the image: no repair is known to be safe.")
        if self.corruptions:
            refcount_only = all(_REFCOUNT_ERROR.match(line) for line in self.messages if line.startswith("ERROR"))
            if refcount_only:
                return _("The corruptions are reference counts only: `qemu-img check -r all` can repair them; "
                         "copy the image first, as data already lost stays lost.")
            return _("Some corruptions are in the image's tables, not only its reference counts: `qemu-img check "
                     "-r all` may not repair them. Copy what can still be read.")
        if self.leaks:
            return _("Leaked clusters are harmless and fixable: `qemu-img check -r leaks` frees them.")
        return _("Nothing to repair.")

    def summary(self) -> str:
        values = {"leaks": self.leaks, "corruptions": self.corruptions, "errors": self.check_errors,
                  "outcome": self.outcome, "fixable": self.fixable}
        if self.check_errors:
            return _("qemu-img check: %(outcome)s (leaked clusters: %(leaks)s, corruptions: %(corruptions)s, "
                     "check errors: %(errors)s). %(fixable)s") % values
        return _("qemu-img check: %(outcome)s (leaked clusters: %(leaks)s, corruptions: %(corruptions)s). "
                 "%(fixable)s") % values


def parse_check(exit_code: int, out: str | bytes, err: str) -> CheckReport:
    """CheckReport from ``qemu-img check --output=json``: its JSON (absent when it could not start) and its
    stderr, where it lists each finding."""
    messages = tuple(line.strip() for line in err.splitlines()
                     if line.strip() and not line.startswith("qemu-img:"))[:MAX_MESSAGES]
    try:
        data = json.loads(out) if (out or "").strip() else None
    except ValueError:
        data = None
    if not isinstance(data, dict):
        if exit_code in (0, 2, 3):
            raise QemuImgFailed(_("qemu-img check gave output this app cannot read (exit code %(code)s).")
                                % {"code": exit_code})
        return CheckReport(exit_code, messages=messages)

    def number(key: str) -> int | None:
        value = data.get(key)
        return int(value) if isinstance(value, int) else None

    return CheckReport(exit_code, leaks=number("leaks") or 0, corruptions=number("corruptions") or 0,
                       check_errors=number("check-errors") or 0, total_clusters=number("total-clusters"),
                       allocated_clusters=number("allocated-clusters"),
                       fragmented_clusters=number("fragmented-clusters"),
                       compressed_clusters=number("compressed-clusters"),
                       image_end_offset=number("image-end-offset"), messages=messages)


def check(image: ImageFile, *, tick: Callable[[], None] | None = None) -> CheckReport:
    """``qemu-img check`` (read only: nothing is repaired) of the one file. tick() is called every POLL_SECONDS
    while it runs; an exception from it stops qemu-img and passes through."""
    argument = image.argument(with_backing=False)
    code, out, err = _run([QEMU_IMG, "check", "--output=json", argument], image.descriptors()[:1], tick=tick)
    if code == 63:
        raise QemuImgFailed(_("%(format)s images have no metadata that qemu-img could check.")
                            % {"format": image.format})
    if code not in (0, 2, 3) and not out.strip():  # it never got to checking (the image could not be opened)
        raise QemuImgFailed(_message(err, {argument: "the image"}, "qemu-img check"))
    return parse_check(code, out, err)


# -- convert ------------------------------------------------------------------------------------------------

PREALLOCATION = {"off": None, "metadata": "metadata", "full": "falloc"}  # the app's words -> qemu-img's option


def convert(source: ImageFile, target_fd: int, target_format: str, *, compress: bool = False,
            preallocation: str = "off", progress: Callable[[float], None] | None = None) -> None:
    """Write what the guest sees of source (through its whole stated chain) as a new, self-contained
    target_format image into the open, empty file target_fd: qemu-img creates the image in it (as /dev/fd/N,
    the format stated with -O), so a fresh image's zeros are skipped, holes stay holes.

    preallocation: "off" (thin), "metadata" (qcow2 tables only) or "full" (every byte reserved, fallocate).
    progress(percent) is called with qemu-img's own progress (-p) every POLL_SECONDS; an exception from it
    (a cancel) stops qemu-img and passes through, leaving the target half written."""
    if target_format not in FORMATS:
        raise InvalidRequest(_("qemu-img writes only %(formats)s images here, not %(format)s")
                             % {"formats": " and ".join(FORMATS), "format": repr(target_format)})
    if preallocation not in PREALLOCATION or (preallocation == "metadata" and target_format != "qcow2"):
        raise InvalidRequest(_("no preallocation %(preallocation)s for %(format)s images")
                             % {"preallocation": repr(preallocation), "format": target_format})
    if compress and (target_format != "qcow2" or preallocation != "off"):
        raise InvalidRequest(_("only a thin qcow2 image can be compressed"))
    source_arg, target_arg = source.argument(), f"/dev/fd/{target_fd}"
    option = PREALLOCATION[preallocation]
    args = [QEMU_IMG, "convert", "-p", "-O", target_format, *(["-c"] if compress else []),
            *(["-o", f"preallocation={option}"] if option else []), source_arg, target_arg]
    code, _out, err = _run(args, (*source.descriptors(), target_fd), progress=progress)
    if code != 0:
        raise QemuImgFailed(_message(err, {source_arg: "the source image", target_arg: "the new volume"},
                                     "qemu-img convert"))


def parse_progress(buffer: bytes) -> tuple[float | None, bytes]:
    """The last percentage in qemu-img's -p output ("    (12.34/100%)\\r"), and the unfinished rest."""
    *complete, rest = re.split(rb"[\r\n]", buffer)
    percent = None
    for line in complete:
        match = _PROGRESS.search(line)
        if match:
            percent = min(100.0, float(match[1]))
    return percent, rest


# -- running it ---------------------------------------------------------------------------------------------

def _run(args: list[str], fds: tuple[int, ...], *, timeout: float | None = None,
         tick: Callable[[], None] | None = None,
         progress: Callable[[float], None] | None = None) -> tuple[int, bytes, str]:
    """Run qemu-img with fds inherited (and nothing else: no shell, no stdin); (exit code, stdout, stderr).

    With progress, stdout is -p output: parsed, and progress(percent) called every POLL_SECONDS. tick() is
    called as often. Either raising stops qemu-img (killed, waited for) and the exception passes through."""
    deadline = None if timeout is None else time.monotonic() + timeout
    with tempfile.TemporaryFile() as errors:
        try:
            proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors,
                                    pass_fds=fds, close_fds=True)
        except FileNotFoundError as exc:
            raise QemuImgFailed(_("%(program)s is not installed on the app's machine (Debian: qemu-utils).")
                                % {"program": QEMU_IMG}) from exc
        out, pending, percent = bytearray(), b"", 0.0
        try:
            stdout = proc.stdout.fileno()
            while True:
                if deadline is not None and time.monotonic() > deadline:
                    raise QemuImgFailed(_("%(command)s took longer than %(seconds)s s; it was stopped.")
                                        % {"command": f"{QEMU_IMG} {args[1]}", "seconds": f"{timeout:.0f}"})
                ready, _writable, _failed = select.select([stdout], [], [], POLL_SECONDS)
                chunk = os.read(stdout, 65536) if ready else None
                if chunk == b"":
                    break
                if chunk and progress is not None:
                    found, pending = parse_progress(pending + chunk)
                    percent = percent if found is None else found
                elif chunk:
                    out += chunk
                if progress is not None:
                    progress(percent)
                if tick is not None:
                    tick()
            proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            proc.stdout.close()
        errors.seek(0)
        return proc.returncode, bytes(out), errors.read().decode("utf-8", "replace")


def _message(err: str, names: dict[str, str], what: str) -> str:
    """qemu-img's stderr as a message: its prefix dropped, our json: descriptions named in words."""
    text = err.strip()
    for argument, words in names.items():
        text = text.replace(f"'{argument}'", words).replace(argument, words)
    text = "\n".join(line.removeprefix("qemu-img: ") for line in text.splitlines())
    return text or _("%(command)s failed without saying why.") % {"command": what}
