"""Image safety on the app's side: which format the app states for a volume, and the check each job
makes right before it lets libvirt (and through it qemu-img) open the volume.

The checks themselves are the libvirt layer's (virt/imagecheck.py reads headers, virt/volumes.py
compares libvirt's view with the recorded format). Here they meet the inventory: the format recorded
for the volume, and the volumes a backing file may name (safe volumes of the same host, checked in
turn, never a file outside the pools).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django import forms
from django.utils.translation import gettext as _

from hosts.models import Host
from virtstorage.virt import HostUnreachable, LibvirtHost, VirtError
from virtstorage.virt import volumes as vvolumes
from virtstorage.virt.imagecheck import UnsafeImage
from virtstorage.virt.types import VolumeInfo

from .models import Volume

MAX_CHAIN = 8  # backing files followed at most; qemu allows deeper chains, people rarely need them
# Up to this many listed names, the sync's image check reads their rows by name. A job's sync of one volume
# of a 10,000-volume pool read all 10,000 rows (45 ms on PostgreSQL per upload in the load test); a full sync
# lists the whole pool, whose rows it then reads without a long IN list.
NAMED_ROWS = 500


def refuse_unsafe(volume: Volume) -> None:
    """A form's check: a volume marked unsafe by the sync takes no operation (an admin may delete it)."""
    if volume.unsafe_reason:
        raise forms.ValidationError(_("Refused: %(reason)s Only an admin can delete this volume.")
                                    % {"reason": volume.unsafe_reason})


def _backing_allowed(host, lv: LibvirtHost, depth: int) -> Callable[[str], bool]:
    def allowed(path: str) -> bool:
        row = (Volume.objects.filter(pool__host=host, path=path, unsafe_reason="").select_related("pool").first()
               if depth < MAX_CHAIN else None)
        if row is None:
            return False
        try:
            vvolumes.verified_volume(lv, row.pool.name, row.name, row.recorded_format, direct=host.direct_io,
                                     backing_allowed=_backing_allowed(host, lv, depth + 1))
        except UnsafeImage:
            return False
        return True

    return allowed


def verify(host, lv: LibvirtHost, pool_name: str, name: str) -> VolumeInfo:
    """libvirt's view of the volume if it is safe to open as the format the app recorded for it; else
    UnsafeImage (the row is marked too, so every page shows why)."""
    row = Volume.objects.filter(pool__host=host, pool__name=pool_name, name=name).first()
    if row is None:
        raise UnsafeImage(_("Volume %(name)s is not in the inventory yet: sync the pool, then try again.")
                          % {"name": name})
    if row.unsafe_reason:
        raise UnsafeImage(row.unsafe_reason)
    try:
        return vvolumes.verified_volume(lv, pool_name, name, row.recorded_format, direct=host.direct_io,
                                        backing_allowed=_backing_allowed(host, lv, 1))
    except UnsafeImage as exc:
        Volume.objects.filter(pk=row.pk).update(unsafe_reason=str(exc), inspected="")
        raise


def record_format(host, pool_name: str, name: str, fmt: str) -> None:
    """The app itself changed the volume's format (a wipe leaves raw, an upload replaced it): the format it
    states from now on. The next sync checks the image again."""
    Volume.objects.filter(pool__host=host, pool__name=pool_name, name=name).update(
        recorded_format=vvolumes.format_family(fmt), inspected="")


# -- The inventory sync's check of every listed volume ---------------------------------------

@dataclass(frozen=True)
class ImageSafety:
    recorded_format: str
    unsafe_reason: str
    inspected: str


def _signature(info: VolumeInfo) -> str:
    return f"{info.format}:{info.ctime_ns}:{info.physical}"


def check_listed_images(host: Host, lv: LibvirtHost,
                        listings: dict[str, list[VolumeInfo]]) -> dict[str, dict[str, ImageSafety]]:
    """Every listed volume's image check (virt.volumes.check_image), by pool and volume name.

    A volume whose format, ctime and size are those of its last check keeps that check's outcome, so
    a sync reads headers only of new and changed files. The format the app states is the one it
    recorded for the volume (or libvirt's, the first time it sees it): a later probe of the bytes
    never changes it, it marks the volume unsafe."""
    rows = Volume.objects.filter(pool__host=host, pool__name__in=list(listings))
    names = {info.name for volumes in listings.values() for info in volumes}
    if len(names) <= NAMED_ROWS:  # a job's sync of the volumes it touched: their rows, not all of their pools'
        rows = rows.filter(name__in=names)
    known = {(row["pool__name"], row["name"]): row for row in rows.values(
        "pool__name", "name", "recorded_format", "unsafe_reason", "inspected")}
    listed = {info.path for volumes in listings.values() for info in volumes}
    safe_paths: set[str] | None = None

    def backing_allowed(path: str) -> bool:
        nonlocal safe_paths
        if safe_paths is None:  # only when an image has a backing file: safe volumes of the other pools
            safe_paths = set(Volume.objects.filter(pool__host=host, unsafe_reason="").exclude(
                path__in=listed).values_list("path", flat=True))
        return path in safe_paths or path in safe_here

    safe_here: set[str] = set()
    outcome: dict[str, dict[str, ImageSafety]] = {pool_name: {} for pool_name in listings}
    # Images without a backing file first: an overlay's base in the same sync is then known to be safe.
    ordered = sorted(((pool_name, info) for pool_name, volumes in listings.items() for info in volumes),
                     key=lambda item: bool(item[1].backing_path))
    for pool_name, info in ordered:
        found = outcome[pool_name][info.name] = _check_image(host, lv, pool_name, info,
                                                             known.get((pool_name, info.name)), backing_allowed)
        if not found.unsafe_reason:
            safe_here.add(info.path)
    return outcome


def _check_image(host: Host, lv: LibvirtHost, pool_name: str, info: VolumeInfo, row: dict | None,
                 backing_allowed) -> ImageSafety:
    signature = _signature(info)
    local_link = info.type == "file" and vvolumes.is_local_uri(host.uri) and vvolumes.symlink_target(info.path)
    if row and row["inspected"] == signature and not local_link:
        return ImageSafety(row["recorded_format"], row["unsafe_reason"], signature)
    recorded = (row and row["recorded_format"]) or vvolumes.format_family(info.format)
    try:
        vvolumes.check_image(lv, info, pool_name, recorded, direct=host.direct_io, backing_allowed=backing_allowed)
    except UnsafeImage as exc:
        return ImageSafety(recorded, str(exc), signature)
    except HostUnreachable:
        raise
    except VirtError as exc:  # gone meanwhile, or busy: checked again at the next sync
        return ImageSafety(recorded, _("Its image could not be checked: %(error)s") % {"error": exc}, "")
    return ImageSafety(recorded, "", signature)
