"""Mirror a host's pools and volumes into the database. libvirt is the source of truth."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from pools.models import StoragePool
from virtstorage.virt import HostUnreachable, InvalidRequest, LibvirtHost, ObjectNotFound, VirtError, open_host, uris
from virtstorage.virt import pools as vpools
from virtstorage.virt import volumes as vvolumes
from virtstorage.virt.imagecheck import UnsafeImage
from virtstorage.virt.types import PoolInfo, VolumeInfo
from volumes.models import Volume

from .models import DomainDisk, Host

log = logging.getLogger(__name__)

_POOL_FIELDS = ["uuid", "type", "state", "autostart", "persistent", "capacity", "allocation",
                "available", "target_path", "xml", "synced_at"]
_VOLUME_FIELDS = ["key", "path", "type", "format", "capacity", "allocation", "physical",
                  "backing_path", "backing_format", "xml", "synced_at", "recorded_format", "unsafe_reason",
                  "inspected"]


@dataclass
class SyncResult:
    pools: int = 0
    volumes: int = 0
    removed_pools: int = 0
    removed_volumes: int = 0

    def __str__(self) -> str:
        return (f"{self.pools} pools, {self.volumes} volumes "
                f"({self.removed_pools} pools and {self.removed_volumes} volumes gone)")


def record_reachable(host: Host, facts=None, pool_types: dict[str, vpools.PoolTypeSupport] | None = None) -> None:
    now = timezone.now()
    host.status = Host.Status.ONLINE
    host.last_error = ""
    host.last_checked_at = now
    host.last_seen_at = now
    fields = ["status", "last_error", "last_checked_at", "last_seen_at"]
    if facts is not None:
        for name in ("hostname", "libvirt_version", "hypervisor", "hypervisor_version", "cpu_model",
                     "cpus", "memory_bytes"):
            setattr(host, name, getattr(facts, name))
            fields.append(name)
    if pool_types is not None:
        host.pool_types = Host.pool_types_json(pool_types)
        host.pool_types_at = now
        fields += ["pool_types", "pool_types_at"]
    host.save(update_fields=fields)


def record_unreachable(host: Host, error: Exception) -> None:
    host.status = Host.Status.UNREACHABLE
    host.last_error = str(error)
    host.last_checked_at = timezone.now()
    host.save(update_fields=["status", "last_error", "last_checked_at"])


def refuse_uri(host: Host) -> bool:
    """True, with the host disabled and the reason kept, when its URI is not on the allow-list.

    open_host refuses such a URI anyway; this keeps the refusal on the host's page and out of the
    periodic sync, as the migration that introduced the allow-list does for hosts it found.
    """
    try:
        uris.check_uri(host.uri, key_dir=uris.configured_key_dir())
    except InvalidRequest as exc:
        host.enabled = False
        host.disabled_reason = f"Disabled by virtstorage: its URI is not one the app may open. {exc}"
        host.save(update_fields=["enabled", "disabled_reason"])
        log.warning("host %s disabled: %s", host.name, exc)
        return True
    return False


def _pool_types(lv: LibvirtHost) -> dict[str, vpools.PoolTypeSupport] | None:
    """The pool types the host supports, recorded so the define page never asks; None if libvirt cannot say."""
    try:
        return vpools.supported_pool_types(lv)
    except HostUnreachable:
        raise
    except VirtError as exc:  # e.g. a driver without the capabilities call (test:///)
        log.warning("could not learn the pool types of %s: %s", lv.uri, exc)
        return None


def check_host(host: Host) -> bool:
    """Test the connection and store the host's facts or the error. Never raises VirtError."""
    if refuse_uri(host):
        return False
    try:
        with open_host(host.uri) as lv:
            facts = lv.facts()
            pool_types = _pool_types(lv)
    except VirtError as exc:
        record_unreachable(host, exc)
        return False
    record_reachable(host, facts, pool_types)
    return True


def sync_host(host: Host, *, refresh: bool = False, pool_names: list[str] | None = None) -> SyncResult | None:
    """Sync one host, or only the named pools. Returns None when the host is unreachable.

    One round trip per pool and per volume (its XML holds every field we keep):
    listing 10,000 volumes is cheap, asking each for info() and XML is not.
    A host whose URI is refused is disabled instead (see refuse_uri), also returning None.
    """
    if refuse_uri(host):
        return None
    try:
        with open_host(host.uri) as lv:
            facts = lv.facts()
            pool_types = _pool_types(lv)
            pools = _fetch_pools(lv, pool_names)
            if refresh:
                for info in pools:
                    if info.active:
                        _per_pool(lv.refresh_pool, info.name)
                pools = _fetch_pools(lv, [p.name for p in pools])
            listings: dict[str, list[VolumeInfo]] = {}
            for info in pools:
                if info.active:
                    volumes = _per_pool(lv.volumes, info.name)
                    if volumes is not None:
                        listings[info.name] = volumes
            safety = _check_images(host, lv, listings)
            disks = _domain_disks(lv)
    except HostUnreachable as exc:
        record_unreachable(host, exc)
        return None
    record_reachable(host, facts, pool_types)
    result = SyncResult()
    _store(host, pools, listings, safety, result, scope=pool_names)
    if disks is not None:
        _store_domain_disks(host, disks)
    return result


def _domain_disks(lv: LibvirtHost) -> list[DomainDisk] | None:
    """Every disk of every defined VM (one round trip per VM); None when libvirt cannot list them."""
    try:
        found = lv.domain_disks()
    except HostUnreachable:
        raise
    except VirtError as exc:  # e.g. a storage-only libvirtd without a hypervisor driver
        log.warning("could not list the VMs of %s: %s", lv.uri, exc)
        return None
    return [
        DomainDisk(domain=domain, target=disk.get("target", ""), path=disk.get("file") or disk.get("dev") or "",
                   pool_name=disk.get("pool", ""), volume_name=disk.get("volume", ""))
        for domain, disk in found
    ]


@transaction.atomic
def _store_domain_disks(host: Host, disks: list[DomainDisk]) -> None:
    DomainDisk.objects.filter(host=host).delete()
    for disk in disks:
        disk.host = host
    DomainDisk.objects.bulk_create(disks)


def _per_pool(call, name: str):
    """call(name) for one pool, or None when that pool cannot answer now.

    A pool that vanished meanwhile goes at the next sync; one that is busy (libvirt refuses to
    refresh a pool while an upload runs into it) keeps its rows as they were. Either way the
    other pools are still synced; only an unreachable host stops the sync.
    """
    try:
        return call(name)
    except ObjectNotFound:
        return None
    except HostUnreachable:
        raise
    except VirtError as exc:
        log.warning("sync of pool %s skipped this time: %s", name, exc)
        return None


def _fetch_pools(lv: LibvirtHost, names: list[str] | None) -> list[PoolInfo]:
    if names is None:
        return lv.pools()
    found = (_per_pool(lv.pool, name) for name in names)
    return [info for info in found if info is not None]


@dataclass(frozen=True)
class ImageSafety:
    recorded_format: str
    unsafe_reason: str
    inspected: str


def _signature(info: VolumeInfo) -> str:
    return f"{info.format}:{info.ctime_ns}:{info.physical}"


def _check_images(host: Host, lv: LibvirtHost, listings: dict[str, list[VolumeInfo]]
                  ) -> dict[str, dict[str, ImageSafety]]:
    """Every listed volume's image check (virt.volumes.check_image), by pool and volume name.

    A volume whose format, ctime and size are those of its last check keeps that check's outcome, so
    a sync reads headers only of new and changed files. The format the app states is the one it
    recorded for the volume (or libvirt's, the first time it sees it): a later probe of the bytes
    never changes it, it marks the volume unsafe."""
    known = {(row["pool__name"], row["name"]): row for row in Volume.objects.filter(
        pool__host=host, pool__name__in=list(listings)).values(
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
        return ImageSafety(recorded, f"Its image could not be checked: {exc}", "")
    return ImageSafety(recorded, "", signature)


@transaction.atomic
def _store(host: Host, pools: list[PoolInfo], listings: dict[str, list[VolumeInfo]],
           safety: dict[str, dict[str, ImageSafety]], result: SyncResult, *, scope: list[str] | None) -> None:
    """Write what libvirt said; rows in scope (None: the whole host) it no longer has go."""
    now = timezone.now()
    rows = StoragePool.objects.filter(host=host)
    if scope is not None:
        rows = rows.filter(name__in=scope)
    existing = {p.name: p for p in rows}
    for info in pools:
        pool = existing.pop(info.name, None) or StoragePool(host=host, name=info.name)
        pool.uuid = info.uuid
        pool.type = info.type
        pool.state = StoragePool.State.ACTIVE if info.active else StoragePool.State.INACTIVE
        pool.autostart = info.autostart
        pool.persistent = info.persistent
        pool.capacity = info.capacity
        pool.allocation = info.allocation
        pool.available = info.available
        pool.target_path = info.target_path
        pool.xml = info.xml
        pool.synced_at = now
        pool.save()
        result.pools += 1
        if info.name in listings:
            # A stopped pool keeps its rows: its data is intact, libvirt just cannot list it.
            _store_volumes(pool, listings[info.name], safety.get(info.name, {}), now, result)
    if existing:
        result.removed_pools = len(existing)
        StoragePool.objects.filter(pk__in=[p.pk for p in existing.values()]).delete()
    host.last_synced_at = now
    host.save(update_fields=["last_synced_at"])


def _store_volumes(pool: StoragePool, volumes: list[VolumeInfo], safety: dict[str, ImageSafety], now,
                   result: SyncResult) -> None:
    unchecked = ImageSafety("", "", "")
    rows = [
        Volume(pool=pool, name=v.name, key=v.key, path=v.path, type=v.type, format=v.format,
               capacity=v.capacity, allocation=v.allocation, physical=v.physical,
               backing_path=v.backing_path, backing_format=v.backing_format, xml=v.xml, synced_at=now,
               recorded_format=(s := safety.get(v.name, unchecked)).recorded_format,
               unsafe_reason=s.unsafe_reason, inspected=s.inspected)
        for v in volumes
    ]
    Volume.objects.bulk_create(rows, batch_size=500, update_conflicts=True,
                               unique_fields=["pool", "name"], update_fields=_VOLUME_FIELDS)
    removed, _ = Volume.objects.filter(pool=pool).exclude(synced_at=now).delete()
    result.volumes += len(rows)
    result.removed_volumes += removed
    pool.volume_count = len(rows)
    pool.volume_capacity_total = sum(v.capacity for v in volumes)
    pool.save(update_fields=["volume_count", "volume_capacity_total"])
