"""Which disks of a VM the app manages: a disk that is a volume of a pool in the inventory is managed (and
links to the volume), any other path or device is unmanaged.

- a `volume` disk (<source pool=… volume=…>) is the volume of that name in that pool;
- a file or block device inside the target directory of a started pool is the volume with that path;
- anything else (a path outside the pools, a network disk, an empty CD-ROM drive) is unmanaged.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q
from django.utils.translation import gettext as _

from hosts.models import DomainDisk
from pools.models import StoragePool
from volumes.models import Volume


@dataclass(frozen=True)
class DiskView:
    """A disk with the volume it is (None: unmanaged) and, when unmanaged, why."""

    disk: DomainDisk
    volume: Volume | None
    reason: str = ""

    @property
    def managed(self) -> bool:
        return self.volume is not None


def _inside(path: str, directory: str) -> bool:
    return bool(directory) and path.startswith(directory.rstrip("/") + "/")


def classify(disks: list[DomainDisk]) -> list[DiskView]:
    """Every disk (of one host) with its volume, in three queries whatever the number of disks."""
    if not disks:
        return []
    host_id = disks[0].host_id
    by_name = {(d.pool_name, d.volume_name) for d in disks if d.pool_name}
    names = Q(pk__in=[])
    for pool_name, volume_name in by_name:
        names |= Q(pool__name=pool_name, name=volume_name)
    volumes = Volume.objects.filter(pool__host_id=host_id).select_related("pool")
    named = {(v.pool.name, v.name): v for v in volumes.filter(names)} if by_name else {}
    paths = [d.path for d in disks if d.path and d.source_type in ("file", "block")]
    pathed = {v.path: v for v in volumes.filter(path__in=paths)} if paths else {}
    started = list(StoragePool.objects.filter(host_id=host_id, state=StoragePool.State.ACTIVE)
                   .exclude(target_path="").only("pk", "name", "target_path"))
    return [_one(disk, named, pathed, started) for disk in disks]


def _one(disk: DomainDisk, named: dict, pathed: dict, started: list[StoragePool]) -> DiskView:
    if disk.source_type == "volume" or disk.pool_name:
        volume = named.get((disk.pool_name, disk.volume_name))
        if volume is None:
            return DiskView(disk, None, _("pool %(pool)s has no volume %(volume)s in the inventory")
                            % {"pool": disk.pool_name, "volume": disk.volume_name})
        return DiskView(disk, volume)
    if not disk.path:
        return DiskView(disk, None, _("no medium") if disk.device == "cdrom" else _("no source"))
    if disk.source_type not in ("file", "block"):
        return DiskView(disk, None, _("a %(type)s disk") % {"type": disk.source_type})
    pool = next((p for p in started if _inside(disk.path, p.target_path)), None)
    if pool is None:
        return DiskView(disk, None, _("not in a started pool"))
    volume = pathed.get(disk.path)
    if volume is None or volume.pool_id != pool.pk:
        return DiskView(disk, None, _("in pool %(pool)s's directory, but not one of its volumes in the inventory (a "
                                      "sync with a rescan finds files put there behind libvirt's back)")
                        % {"pool": pool.name})
    return DiskView(disk, volume)
