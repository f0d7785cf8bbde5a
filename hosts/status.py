"""What a host says about itself: whether it answers, its facts, the pool types it supports and the disks
of its VMs. Written by the connection check here and by the inventory sync (inventory/sync.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from django.db import transaction
from django.utils import timezone

from virtstorage.virt import HostUnreachable, InvalidRequest, LibvirtHost, VirtError, open_host, uris
from virtstorage.virt import pools as vpools

from .models import DomainDisk, Host

log = logging.getLogger(__name__)
T = TypeVar("T")


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
            errors: type[VirtError] | tuple[type[VirtError], ...] = HostUnreachable) -> T | None:
    """Connect to the host, record its facts and pool types, and run work(lv) on the same connection.

    Returns work's result, or None when the URI is refused (the host is disabled) or the host did not
    answer (``errors``; recorded as unreachable). The connection check and the inventory sync both go
    through here, so a host's status is written one way."""
    if refuse_uri(host):
        return None
    try:
        with open_host(host.uri) as lv:
            facts = lv.facts()
            pool_types = pool_types_of(lv)
            result = work(lv)
    except errors as exc:
        record_unreachable(host, exc)
        return None
    record_reachable(host, facts, pool_types)
    return result


def check_host(host: Host) -> bool:
    """Test the connection and store the host's facts or the error. Never raises VirtError."""
    return session(host, lambda lv: True, errors=VirtError) is True


def domain_disks(lv: LibvirtHost) -> list[DomainDisk] | None:
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
def store_domain_disks(host: Host, disks: list[DomainDisk]) -> None:
    DomainDisk.objects.filter(host=host).delete()
    for disk in disks:
        disk.host = host
    DomainDisk.objects.bulk_create(disks)
