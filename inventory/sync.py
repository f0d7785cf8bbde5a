"""Mirror a host's pools, volumes and VMs into the database. libvirt is the source of truth.

The one module that writes hosts, pools and volumes together, so it stands above them all. Apps below
ask for a sync through hosts.signals.resync (a job that changed a pool, or only some volumes of it:
sync_volumes); beat and "Sync now" run the tasks in inventory/tasks.py.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from django.db import connection, transaction
from django.db.models import Count, QuerySet, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from hosts.models import Host
from hosts.signals import pools_synced
from hosts.status import domains_of, session, store_domains
from jobs.rows import for_update
from pools.models import StoragePool
from virtstorage.virt import HostUnreachable, LibvirtHost, ObjectNotFound, VirtError
from virtstorage.virt.connection import REFRESH_WAIT_SECONDS
from virtstorage.virt.types import PoolInfo, VolumeInfo
from volumes.models import Volume
from volumes.safety import ImageSafety, check_listed_images

log = logging.getLogger(__name__)
T = TypeVar("T")

_POOL_FIELDS = ["uuid", "type", "state", "autostart", "persistent", "capacity", "allocation",
                "available", "target_path", "xml", "synced_at"]
# What libvirt and the image check say of a volume (_compared gives them): a row is rewritten when one differs.
_COMPARED = ("key", "path", "type", "format", "capacity", "allocation", "physical", "backing_path", "backing_format",
             "xml", "recorded_format", "unsafe_reason", "inspected")
_VOLUME_FIELDS = [*_COMPARED, "synced_at"]


@dataclass
class SyncResult:
    pools: int = 0
    volumes: int = 0
    removed_pools: int = 0
    removed_volumes: int = 0
    written_volumes: int = 0  # rows inserted or changed
    domains: int | None = None  # VMs seen; None when libvirt could not list them

    def __str__(self) -> str:
        counts = {"pools": self.pools, "volumes": self.volumes, "vms": self.domains,
                  "removed_pools": self.removed_pools, "removed_volumes": self.removed_volumes}
        if self.domains is None:
            return _("%(pools)s pools, %(volumes)s volumes (%(removed_pools)s pools and %(removed_volumes)s volumes "
                     "gone)") % counts
        return _("%(pools)s pools, %(volumes)s volumes, %(vms)s VMs (%(removed_pools)s pools and %(removed_volumes)s "
                 "volumes gone)") % counts


@dataclass
class VolumeSyncResult:
    """What a sync of named volumes did: "pool/volume" names, never a claim about the rest of the pool."""

    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    domains: int | None = None  # VMs seen, when they were synced too

    def __str__(self) -> str:
        parts = [_("updated %(volumes)s") % {"volumes": ", ".join(self.updated)} if self.updated else "",
                 _("removed %(volumes)s") % {"volumes": ", ".join(self.removed)} if self.removed else "",
                 "" if self.domains is None else _("%(vms)s VMs") % {"vms": self.domains}]
        return "; ".join(part for part in parts if part) or _("nothing to update")


def sync_host(host: Host, *, refresh: bool = False, pool_names: list[str] | None = None) -> SyncResult | None:
    """Sync one host, or only the named pools. Returns None when the host is unreachable.

    One round trip per pool and per volume (its XML holds every field we keep):
    listing 10,000 volumes is cheap, asking each for info() and XML is not.
    A host whose URI is refused is disabled instead (see refuse_uri), also returning None.
    With refresh, libvirt rescans every pool synced first; without, only those a job wrote behind its back
    (StoragePool.rescan_wanted_at), and only if it can at once: a busy one keeps its mark for the next sync.
    """
    marked = dict(StoragePool.objects.filter(host=host, rescan_wanted_at__isnull=False)
                  .values_list("name", "rescan_wanted_at"))
    rescanned: list[str] = []

    def fetch(lv: LibvirtHost):
        pools = _fetch_pools(lv, pool_names)
        wait = REFRESH_WAIT_SECONDS if refresh else 0
        for info in pools:
            if info.active and (refresh or info.name in marked):
                if _asked(functools.partial(lv.refresh_pool, info.name, wait=wait),
                          f"rescan of pool {info.name} (its volumes are synced without it)") is True:
                    rescanned.append(info.name)
        if rescanned:
            pools = _fetch_pools(lv, [p.name for p in pools])
        listings: dict[str, list[VolumeInfo]] = {}
        for info in pools:
            if info.active:
                volumes = _asked(functools.partial(lv.volumes, info.name), f"sync of pool {info.name}")
                if isinstance(volumes, list):  # not GONE, not None
                    listings[info.name] = volumes
        return pools, listings, check_listed_images(host, lv, listings), domains_of(lv)

    fetched = session(host, fetch)
    if fetched is None:
        return None
    pools, listings, safety, domains = fetched
    result = SyncResult()
    _store(host, pools, listings, safety, result, scope=pool_names)
    for name in set(rescanned) & set(marked):  # unless a write since the mark was read set it anew
        StoragePool.objects.filter(host=host, name=name, rescan_wanted_at__lte=marked[name]).update(
            rescan_wanted_at=None)
    if result.written_volumes + result.removed_volumes >= ANALYZE_AFTER_ROWS:
        _analyze_volumes()
    if domains is not None:
        store_domains(host, domains)
        result.domains = len(domains)
    return result


# A sync that wrote this many volume rows (a first sync of a large pool, say) has the database re-read the
# volume table's statistics at once. Until PostgreSQL's autovacuum got to it, up to a minute later, a pool's first
# 10,000 rows had none, and the planner chose by guesses: the backing picker's query took 78 ms instead of 0.3.
ANALYZE_AFTER_ROWS = 1000


def _analyze_volumes() -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {connection.ops.quote_name(Volume._meta.db_table)}")


GONE = object()  # what _asked returns for an object libvirt no longer has


def _asked(call: Callable[[], T], what: str) -> T | object | None:
    """call() for one pool or volume (what names the call in the log: "sync of pool p"): GONE when libvirt no
    longer has it, None when it cannot answer now.

    One that vanished meanwhile goes from the inventory; one that is busy (libvirt refuses to refresh a pool
    while an upload runs into it) keeps its rows as they were. Either way the others are still synced; only
    an unreachable host stops the sync.
    """
    try:
        return call()
    except ObjectNotFound:
        return GONE
    except HostUnreachable:
        raise
    except VirtError as exc:
        log.warning("%s skipped this time: %s", what, exc)
        return None


def _fetch_pools(lv: LibvirtHost, names: list[str] | None) -> list[PoolInfo]:
    if names is None:
        return lv.pools()
    found = (_asked(functools.partial(lv.pool, name), f"sync of pool {name}") for name in names)
    return [info for info in found if info is not None and info is not GONE]


@transaction.atomic
def _store(host: Host, pools: list[PoolInfo], listings: dict[str, list[VolumeInfo]],
           safety: dict[str, dict[str, ImageSafety]], result: SyncResult, *, scope: list[str] | None) -> None:
    """Write what libvirt said; rows in scope (None: the whole host) it no longer has go."""
    now = timezone.now()
    host.hold()  # HostRemoved if the host went while libvirt was asked; else it stays until this commits
    rows = StoragePool.objects.filter(host=host)
    if scope is not None:
        rows = rows.filter(name__in=scope)
    # Locked in key order, as _store_changed_volumes and launches do, so that a pool removed below takes with it
    # every row written under it until now, and no writer waits on another in a cycle.
    existing = {p.name: p for p in for_update(rows).order_by("pk")}
    for info in pools:
        pool = _save_pool(host, existing.pop(info.name, None), info, now)
        result.pools += 1
        if info.name in listings:
            # A stopped pool keeps its rows: its data is intact, libvirt just cannot list it.
            _store_volumes(pool, listings[info.name], safety.get(info.name, {}), now, result)
    if existing:
        result.removed_pools = len(existing)
        StoragePool.objects.filter(pk__in=[p.pk for p in existing.values()]).delete()
    host.last_synced_at = now
    host.save(update_fields=["last_synced_at"])
    pools_synced.send_robust(sender=Host, host=host, at=now)  # history records the pools (history/recorder.py)


def _save_pool(host: Host, pool: StoragePool | None, info: PoolInfo, now, *, save: bool = True) -> StoragePool:
    """The pool's row (pool, or a new one) with what libvirt said of the pool itself; saved unless not save."""
    pool = pool or StoragePool(host=host, name=info.name)
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
    if save:
        pool.save()
    return pool


def _volume_rows(pool: StoragePool, volumes: list[VolumeInfo], safety: dict[str, ImageSafety], now,
                 known: dict[str, tuple] | None = None) -> list[Volume]:
    """These volumes of the pool as rows (_VOLUME_FIELDS), with their image checks; with known (name: the row's
    _COMPARED values), only those whose values differ."""
    unchecked = ImageSafety("", "", "")
    rows = []
    for v in volumes:
        values = _compared(v, safety.get(v.name, unchecked))
        if known is None or known.get(v.name) != values:
            rows.append(Volume(pool=pool, name=v.name, synced_at=now, **dict(zip(_COMPARED, values, strict=True))))
    return rows


def _compared(v: VolumeInfo, s: ImageSafety) -> tuple:
    """The _COMPARED values of a listed volume, in that order."""
    return (v.key, v.path, v.type, v.format, v.capacity, v.allocation, v.physical, v.backing_path, v.backing_format,
            v.xml, s.recorded_format, s.unsafe_reason, s.inspected)


def _upsert_volumes(rows: list[Volume]) -> None:
    """Insert these rows, or update the pool's rows of the same names."""
    Volume.objects.bulk_create(rows, batch_size=500, update_conflicts=True,
                               unique_fields=["pool", "name"], update_fields=_VOLUME_FIELDS)


def _store_volumes(pool: StoragePool, volumes: list[VolumeInfo], safety: dict[str, ImageSafety], now,
                   result: SyncResult) -> None:
    """Make the pool's rows what libvirt listed, writing only what differs: a pool of 10,000 volumes is synced
    every minute and few of them change between two syncs."""
    ids, known = {}, {}
    for pk, name, *values in Volume.objects.filter(pool=pool).values_list("pk", "name", *_COMPARED):
        ids[name], known[name] = pk, tuple(values)
    written = _volume_rows(pool, volumes, safety, now, known)
    _upsert_volumes(written)
    result.written_volumes += len(written)
    listed = {v.name for v in volumes}
    vanished = [pk for name, pk in ids.items() if name not in listed]
    for start in range(0, len(vanished), 500):  # a pool emptied behind the app's back: bounded statements
        result.removed_volumes += _remove_volumes(Volume.objects.filter(pk__in=vanished[start:start + 500]))
    # The unchanged rows are not touched: that every listed volume was seen now is the pool's one field (an
    # UPDATE of synced_at on 10,000 rows took 0.55-0.7 s on PostgreSQL, a fifth of the sync).
    result.volumes += len(volumes)
    pool.volume_count = len(volumes)
    pool.volume_capacity_total = sum(v.capacity for v in volumes)
    pool.volumes_listed_at = now
    pool.save(update_fields=["volume_count", "volume_capacity_total", "volumes_listed_at"])


def _remove_volumes(rows: QuerySet[Volume]) -> int:
    """Delete these rows, locked first (in key order), so that a request naming one of them as it goes (which
    holds it: jobs/rows.py) is seen by the cascade, or sees it gone. How many went."""
    ids = list(for_update(rows).order_by("pk").values_list("pk", flat=True))
    _, deleted = Volume.objects.filter(pk__in=ids).delete()
    return deleted.get(Volume._meta.label, 0)


# -- Only some volumes changed (a job's create, write, resize or delete) -----------------------

def sync_volumes(host: Host, volumes: Iterable[tuple[str, str]], *, vms: bool = False) -> VolumeSyncResult | None:
    """Sync these (pool, volume) pairs alone, their pools' own facts and totals, and the VMs if vms.

    Per volume one lookup and its XML (libvirt re-stats the file for it, so sizes written behind
    libvirt's API, by a direct upload or qemu-img, are current without a pool refresh); the image
    check of the full sync for these volumes only; the pool's count and total from the rows.
    Returns None when the host is unreachable (see sync_host).
    """
    wanted: dict[str, list[str]] = {}
    for pool_name, name in volumes:
        if name not in wanted.setdefault(pool_name, []):
            wanted[pool_name].append(name)

    def fetch(lv: LibvirtHost):
        pools = _fetch_pools(lv, list(wanted))
        listings: dict[str, list[VolumeInfo]] = {}
        gone: dict[str, list[str]] = {}
        for info in pools:
            if info.active:  # a stopped pool keeps its rows, as in the full sync
                listings[info.name], gone[info.name] = _fetch_volumes(lv, info.name, wanted[info.name])
        return pools, listings, gone, check_listed_images(host, lv, listings), domains_of(lv) if vms else None

    fetched = session(host, fetch, facts=False)  # the host's facts and pool types are the periodic sync's
    if fetched is None:
        return None
    pools, listings, gone, safety, domains = fetched
    result = VolumeSyncResult()
    _store_changed_volumes(host, pools, listings, gone, safety, result)
    if domains is not None:
        store_domains(host, domains)
        result.domains = len(domains)
    return result


def _fetch_volumes(lv: LibvirtHost, pool_name: str, names: list[str]) -> tuple[list[VolumeInfo], list[str]]:
    """libvirt's view of the named volumes of an active pool, and the names it no longer has.

    A volume libvirt cannot describe now (busy) is in neither list: its row stays as it was."""
    found, gone = [], []
    for name in names:
        info = _asked(functools.partial(lv.volume, pool_name, name), f"sync of volume {pool_name}/{name}")
        if info is GONE:
            gone.append(name)
        elif info is not None:
            found.append(info)
    return found, gone


@transaction.atomic
def _store_changed_volumes(host: Host, pools: list[PoolInfo], listings: dict[str, list[VolumeInfo]],
                           gone: dict[str, list[str]], safety: dict[str, dict[str, ImageSafety]],
                           result: VolumeSyncResult) -> None:
    now = timezone.now()
    host.hold()
    # Locked, so that two jobs' syncs of one pool count each other's rows (READ COMMITTED on PostgreSQL);
    # in key order (as launches lock them), so that two of them never wait on each other.
    existing = {p.name: p for p in for_update(StoragePool.objects).filter(
        host=host, name__in=[info.name for info in pools]).order_by("pk")}
    for info in pools:
        pool = _save_pool(host, existing.get(info.name), info, now, save=False)
        if info.name not in listings or pool.pk is None:  # a stopped pool's facts; a new pool's key for its volumes
            pool.save()
        if info.name not in listings:
            continue
        _upsert_volumes(_volume_rows(pool, listings[info.name], safety.get(info.name, {}), now))
        _remove_volumes(Volume.objects.filter(pool=pool, name__in=gone[info.name]))
        result.updated += [f"{info.name}/{v.name}" for v in listings[info.name]]
        result.removed += [f"{info.name}/{name}" for name in gone[info.name]]
        totals = Volume.objects.filter(pool=pool).aggregate(count=Count("pk"), capacity=Sum("capacity"))
        pool.volume_count = totals["count"]
        pool.volume_capacity_total = totals["capacity"] or 0
        pool.save()  # its facts and totals in one write
    if pools:
        pools_synced.send_robust(sender=Host, host=host, at=now)  # history samples these pools (synced_at == now)


def sync_after_change(sender, *, host: Host, pool_names: list[str] | None,
                      volumes: list[tuple[str, str]] | None = None, vms: bool = False, **_) -> None:
    """hosts.signals.pools_changed: a job changed these pools, or only these volumes; mirror them before it
    ends."""
    if volumes is None:
        sync_host(host, pool_names=pool_names)
    else:
        sync_volumes(host, volumes, vms=vms)
