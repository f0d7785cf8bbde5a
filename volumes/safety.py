"""Image safety on the app's side: which format the app states for a volume, and the check each job
makes right before it lets libvirt (and through it qemu-img) open the volume.

The checks themselves are the libvirt layer's (virt/imagecheck.py reads headers, virt/volumes.py
compares libvirt's view with the recorded format). Here they meet the inventory: the format recorded
for the volume, and the volumes a backing file may name (safe volumes of the same host, checked in
turn, never a file outside the pools).
"""

from __future__ import annotations

from collections.abc import Callable

from django import forms

from virtstorage.virt import LibvirtHost
from virtstorage.virt import volumes as vvolumes
from virtstorage.virt.imagecheck import UnsafeImage
from virtstorage.virt.types import VolumeInfo

from .models import Volume

MAX_CHAIN = 8  # backing files followed at most; qemu allows deeper chains, people rarely need them


def refuse_unsafe(volume: Volume) -> None:
    """A form's check: a volume marked unsafe by the sync takes no operation (an admin may delete it)."""
    if volume.unsafe_reason:
        raise forms.ValidationError(f"Refused: {volume.unsafe_reason} Only an admin can delete this volume.")


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
        raise UnsafeImage(f"Volume {name} is not in the inventory yet: sync the pool, then try again.")
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
