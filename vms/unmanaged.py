"""The unmanaged storage report of a host: disks of its VMs that are no volume of a pool in the inventory
(vms/classify.py decides), and files in the directories of its started dir, fs and netfs pools that libvirt
does not list (as of the last sync).

The disks come from the inventory. The files are found here, in the request, by virt/hostfiles.py: scandir
and lstat only (libvirt and qemu-img open nothing; links are never followed), at most SCAN_LIMIT entries a
directory, and never on a network file system (a dead NFS server would hang the page). That costs ~30 ms
for a pool of 10,000 files, the inventory's paths included, so no job is needed. Only for a host that is
this machine: a remote host's files are not reachable from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.utils.translation import gettext as _

from hosts.models import Domain, DomainDisk, Host
from pools.models import StoragePool
from virtstorage.virt import hostfiles, localfile
from volumes.models import Volume

from .classify import classify

SHOWN_PER_POOL = 500  # unlisted files listed per pool; the rest are counted
FILE_POOL_TYPES = ("dir", "fs", "netfs")


@dataclass
class DiskRow:
    """An unmanaged disk of a VM; facts and format when its file was read here."""

    vm: Domain
    disk: DomainDisk
    reason: str
    facts: hostfiles.FileFacts | None = None
    format: str = ""
    note: str = ""  # why there is no size, or what the file is
    in_pool: StoragePool | None = None  # the started pool whose directory holds it

    @property
    def adoptable(self) -> bool:
        return self.facts is not None and self.facts.kind == "file"


@dataclass
class PoolFiles:
    pool: StoragePool
    scan: hostfiles.DirScan | None = None
    note: str = ""  # why it was not scanned
    shown: list[tuple[hostfiles.FileFacts, list[str]]] = field(default_factory=list)  # (file, VMs using it)

    @property
    def more(self) -> int:
        return len(self.scan.unlisted) - len(self.shown) if self.scan else 0


@dataclass
class Report:
    host: Host
    local: bool
    disks: list[DiskRow]
    pools: list[PoolFiles]

    @property
    def unlisted_count(self) -> int:
        return sum(len(p.scan.unlisted) for p in self.pools if p.scan)


def _inside(path: str, directory: str) -> bool:
    return bool(directory) and path.startswith(directory.rstrip("/") + "/")


def _started_file_pools(host: Host) -> list[StoragePool]:
    return list(StoragePool.objects.filter(host=host, state=StoragePool.State.ACTIVE, type__in=FILE_POOL_TYPES)
                .exclude(target_path="").order_by("name"))


def _read_disk(row: DiskRow) -> None:
    """Size and content format of the disk's file, when it is local and safe to stat."""
    path = row.disk.path
    if fstype := hostfiles.network_fs(path):
        row.note = _("on a network file system (%(type)s): not read from the page") % {"type": fstype}
        return
    row.facts = hostfiles.file_facts(path)
    if row.facts is None:
        row.note = _("not found, or not readable by the app")
    elif row.facts.kind == "symlink":
        row.note = _("a symbolic link to %(target)s (never followed here)") % {"target": row.facts.link_target}
    elif row.facts.kind == "file":
        row.format = hostfiles.content_format(path)
    elif row.facts.kind == "block":
        row.note = _("a block device")
    else:
        row.note = _("a dir") if row.facts.kind == "dir" else _("a %(kind)s") % {"kind": row.facts.kind}


def unmanaged_disks(host: Host, pools: list[StoragePool], local: bool) -> list[DiskRow]:
    disks = list(DomainDisk.objects.filter(host=host).select_related("machine").order_by("domain", "target"))
    rows = []
    for view in classify(disks):
        disk = view.disk
        if view.managed or (not disk.path and not disk.pool_name):  # an empty CD-ROM drive is no storage
            continue
        row = DiskRow(disk.machine, disk, view.reason)
        if disk.path and disk.source_type in ("file", "block"):
            row.in_pool = next((p for p in pools if _inside(disk.path, p.target_path)), None)
            if local:
                _read_disk(row)
        rows.append(row)
    return rows


def pool_files(host: Host, pool: StoragePool) -> PoolFiles:
    """The pool directory's entries that the inventory does not hold as volumes of the pool."""
    found = PoolFiles(pool)
    if fstype := hostfiles.network_fs(pool.target_path):
        found.note = (_("Not scanned: %(path)s is on a network file system (%(type)s), which could hang the page. "
                        "Refresh the pool to have libvirt rescan it.") % {"path": pool.target_path, "type": fstype})
        return found
    known = set(Volume.objects.filter(pool=pool).values_list("path", flat=True))
    found.scan = hostfiles.scan_directory(pool.target_path, known)
    shown = found.scan.unlisted[:SHOWN_PER_POOL]
    users: dict[str, set[str]] = {}
    for domain, path in DomainDisk.objects.filter(host=host, path__in=[f.path for f in shown]).values_list(
            "domain", "path"):
        users.setdefault(path, set()).add(domain)
    found.shown = [(facts, sorted(users.get(facts.path, ()))) for facts in shown]
    return found


def build_report(host: Host) -> Report:
    """The report as of now (files) and as of the last sync (disks, volumes)."""
    local = localfile.is_local_uri(host.uri)
    pools = _started_file_pools(host)
    disks = unmanaged_disks(host, pools, local)
    files = [pool_files(host, pool) for pool in pools] if local else []
    return Report(host, local, disks, files)
