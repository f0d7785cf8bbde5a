"""What a host says about itself: whether it answers, its facts, the pool types it supports and its VMs
with their disks. Written by the connection check here and by the inventory sync (inventory/sync.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from virtstorage.virt import HostUnreachable, InvalidRequest, LibvirtHost, VirtError, open_host, uris
from virtstorage.virt import pools as vpools
from virtstorage.virt.domains import DomainInfo

from .models import Domain, DomainDisk, Host

log = logging.getLogger(__name__)
T = TypeVar("T")


def unavailable_reason(host: Host) -> str:
    """Why libvirt on host is not worth asking now, from what its last check recorded ("" when nothing): it is
    disabled (by an admin, or by the app for its URI) or was unreachable. No connection is opened."""
    if not host.enabled or host.disabled_reason:
        if host.disabled_reason:
            return _("Host %(host)s is disabled: %(reason)s") % {"host": host.name, "reason": host.disabled_reason}
        return _("Host %(host)s is disabled.") % {"host": host.name}
    if host.status == Host.Status.UNREACHABLE:
        values = {"host": host.name, "error": host.last_error}
        if host.last_checked_at:
            values["checked"] = f"{host.last_checked_at:%Y-%m-%d %H:%M:%S %Z}"
            return _("Host %(host)s was unreachable at its last check (%(checked)s): %(error)s") % values
        return _("Host %(host)s was unreachable at its last check: %(error)s") % values
    return ""


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
        host.libvirt_uuid = facts.host_uuid
        fields.append("libvirt_uuid")
    if pool_types is not None:
        host.pool_types = Host.pool_types_json(pool_types)
        host.pool_types_at = now
        fields += ["pool_types", "pool_types_at"]
    _write(host, fields)


def record_unreachable(host: Host, error: Exception) -> None:
    host.status = Host.Status.UNREACHABLE
    host.last_error = str(error)
    host.last_checked_at = timezone.now()
    _write(host, ["status", "last_error", "last_checked_at"])


def _write(host: Host, fields: list[str]) -> None:
    """Save these fields of the host; nothing when it was removed meanwhile (save() would raise)."""
    Host.objects.filter(pk=host.pk).update(**{name: getattr(host, name) for name in fields})


def refuse_uri(host: Host) -> bool:
    """True, with the host disabled and the reason kept, when its URI is not on the allow-list.

    open_host refuses such a URI anyway; this keeps the refusal on the host's page and out of the
    periodic sync, as the migration that introduced the allow-list does for hosts it found.
    """
    try:
        uris.check_uri(host.uri, key_dir=uris.configured_key_dir())
    except InvalidRequest as exc:
        host.enabled = False
        host.disabled_reason = _("Disabled by virtstorage: its URI is not one the app may open. %(reason)s") % {
            "reason": exc}
        _write(host, ["enabled", "disabled_reason"])
        log.warning("host %s disabled: %s", host.name, exc)
        return True
    return False


def pool_types_of(lv: LibvirtHost) -> dict[str, vpools.PoolTypeSupport] | None:
    """The pool types the host supports, recorded so the define page never asks; None if libvirt cannot say."""
    try:
        return vpools.supported_pool_types(lv)
    except HostUnreachable:
        raise
    except VirtError as exc:  # e.g. a driver without the capabilities call (test:///)
        log.warning("could not learn the pool types of %s: %s", lv.uri, exc)
        return None


def session(host: Host, work: Callable[[LibvirtHost], T], *,
            errors: type[VirtError] | tuple[type[VirtError], ...] = HostUnreachable, facts: bool = True) -> T | None:
    """Connect to the host, record its facts and pool types (unless not facts: a job's sync of the volumes it
    touched leaves them to the periodic sync), and run work(lv) on the same connection.

    Returns work's result, or None when the URI is refused (the host is disabled) or the host did not
    answer (``errors``; recorded as unreachable). The connection check and the inventory sync both go
    through here, so a host's status is written one way."""
    if refuse_uri(host):
        return None
    try:
        with open_host(host.uri) as lv:
            learned = lv.facts() if facts else None
            pool_types = pool_types_of(lv) if facts else None
            result = work(lv)
    except errors as exc:
        record_unreachable(host, exc)
        return None
    record_reachable(host, learned, pool_types)
    return result


def check_host(host: Host) -> bool:
    """Test the connection and store the host's facts or the error. Never raises VirtError."""
    return session(host, lambda lv: True, errors=VirtError) is True


def domains_of(lv: LibvirtHost) -> list[DomainInfo] | None:
    """Every VM of the host with its disks (virt/domains.py); None when libvirt cannot list them."""
    try:
        return lv.domains()
    except HostUnreachable:
        raise
    except VirtError as exc:  # e.g. a storage-only libvirtd without a hypervisor driver
        log.warning("could not list the VMs of %s: %s", lv.uri, exc)
        return None


_DOMAIN_FIELDS = ("name", "state", "vcpus", "memory_kib", "persistent")
_DISK_FIELDS = ("domain", "target", "path", "pool_name", "volume_name", "source_type", "device", "bus", "readonly",
                "shareable", "cache")


def _disk_row(name: str, disk) -> tuple:
    """A disk as the values of _DISK_FIELDS."""
    return (name, disk.target, disk.path, disk.pool, disk.volume, disk.source_type, disk.device, disk.bus,
            disk.readonly, disk.shareable, disk.cache)


@transaction.atomic
def store_domains(host: Host, domains: list[DomainInfo]) -> None:
    """Write the host's VMs: rows updated in place by UUID (so the owning team stays), vanished ones deleted,
    and the disks made what libvirt said. Only what changed is written: a host's sync runs every minute."""
    now = timezone.now()
    host.hold()
    known = {row[0]: row for row in Domain.objects.filter(host=host).values_list("uuid", "pk", *_DOMAIN_FIELDS)}
    changed = [Domain(host=host, uuid=d.uuid, name=d.name, state=d.state, vcpus=d.vcpus, memory_kib=d.memory_kib,
                      persistent=d.persistent, synced_at=now)
               for d in domains if known.get(d.uuid, ())[2:] != (d.name, d.state, d.vcpus, d.memory_kib, d.persistent)]
    Domain.objects.bulk_create(changed, batch_size=500, update_conflicts=True, unique_fields=["host", "uuid"],
                               update_fields=[*_DOMAIN_FIELDS, "synced_at"])
    seen = {d.uuid for d in domains}
    vanished = [row[1] for uuid, row in known.items() if uuid not in seen]
    for start in range(0, len(vanished), 500):  # their disks go with them
        Domain.objects.filter(pk__in=vanished[start:start + 500]).delete()
    Domain.objects.filter(host=host).update(synced_at=now)
    ids = dict(Domain.objects.filter(host=host).values_list("uuid", "pk")) if changed else {
        uuid: row[1] for uuid, row in known.items()}
    wanted = {(ids[d.uuid], *_disk_row(d.name, disk)) for d in domains for disk in d.disks}
    have = {row[1:]: row[0] for row in DomainDisk.objects.filter(host=host).values_list("pk", "machine_id",
                                                                                         *_DISK_FIELDS)}
    stale = [pk for row, pk in have.items() if row not in wanted]
    for start in range(0, len(stale), 500):
        DomainDisk.objects.filter(pk__in=stale[start:start + 500]).delete()
    DomainDisk.objects.bulk_create(
        [DomainDisk(host=host, machine_id=row[0], **dict(zip(_DISK_FIELDS, row[1:], strict=True)))
         for row in wanted if row not in have], batch_size=500)
