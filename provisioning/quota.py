"""What a request would do to its pool and its team's quota, with the numbers.

A team's usage in a pool counts two things against its grant (pools.PoolGrant: max_volumes,
max_virtual_bytes; empty means no limit):

- the volumes its ready requests made there, as the inventory has them now (a volume deleted since no longer
  counts; one grown counts at its new size);
- its reservations: approved requests whose volume is not in the inventory yet (approved, provisioning).
  A reservation ends when the request becomes ready (the volume counts instead) or failed.

The pool's capacity policy (pools.policy) is checked with every team's reservations added to the pool's
numbers, so two approvals cannot both take the last free space before the sync sees either volume.
Callers that decide (approval, retry) hold the pool and grant rows locked while they check.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from django.db.models import Case, Count, IntegerField, Sum, When
from django.db.models.functions import Coalesce

from pools.models import PoolGrant, StoragePool
from pools.policy import PolicyViolation, check_volume_fits
from virtstorage.virt.units import binary_size
from volumes.models import Volume

from .models import ProvisioningRequest

Request = ProvisioningRequest


class QuotaExceeded(Exception):
    """The team's quota in the pool does not leave room; the message gives the numbers."""


@dataclass(frozen=True)
class Reserved:
    count: int = 0
    capacity: int = 0
    allocation: int = 0


@dataclass(frozen=True)
class Usage:
    count: int  # volumes of ready requests in the inventory
    capacity: int  # their virtual sizes
    reserved: Reserved


def _exclude(queryset, exclude: Request | None):
    return queryset.exclude(pk=exclude.pk) if exclude is not None and exclude.pk else queryset


def reserved(requests) -> Reserved:
    totals = requests.reserving().aggregate(
        n=Count("pk"), virtual=Coalesce(Sum("capacity"), 0),
        disk=Coalesce(Sum(Case(When(preallocation="full", then="capacity"), default=0,
                               output_field=IntegerField())), 0))
    return Reserved(count=totals["n"], capacity=totals["virtual"], allocation=totals["disk"])


def pool_reserved(pool: StoragePool, exclude: Request | None = None) -> Reserved:
    return reserved(_exclude(Request.objects.filter(pool=pool), exclude))


def team_usage(team, pool: StoragePool, exclude: Request | None = None) -> Usage:
    mine = _exclude(Request.objects.filter(team=team, pool=pool), exclude)
    made = Volume.objects.filter(pk__in=mine.filter(state=Request.State.READY, volume__isnull=False)
                                 .values("volume_id"))
    totals = made.aggregate(n=Count("pk"), virtual=Coalesce(Sum("capacity"), 0))
    return Usage(count=totals["n"], capacity=totals["virtual"], reserved=reserved(mine))


def grant_of(team, pool: StoragePool, *, lock: bool = False) -> PoolGrant | None:
    """The team's grant in the pool (its quota), None when it uses the pool through "all pools" alone."""
    grants = PoolGrant.objects.filter(team=team, pool=pool)
    return (grants.select_for_update() if lock else grants).first()


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def check_quota(team, pool: StoragePool, grant: PoolGrant | None, capacity: int,
                exclude: Request | None = None) -> Usage:
    """Raise QuotaExceeded unless one more volume of this capacity fits the team's grant in the pool."""
    usage = team_usage(team, pool, exclude)
    if grant is None:
        return usage
    held = usage.reserved
    if grant.max_volumes is not None and usage.count + held.count + 1 > grant.max_volumes:
        raise QuotaExceeded(
            f"Team {team.name} may have {_plural(grant.max_volumes, 'volume')} in pool {pool.name}; it has "
            f"{usage.count} and {held.count} reserved by approved requests; this request needs one more.")
    if grant.max_virtual_bytes is not None and usage.capacity + held.capacity + capacity > grant.max_virtual_bytes:
        raise QuotaExceeded(
            f"Team {team.name} may use {binary_size(grant.max_virtual_bytes)} in pool {pool.name}; it uses "
            f"{binary_size(usage.capacity)} and has {binary_size(held.capacity)} reserved by approved requests; "
            f"this request needs {binary_size(capacity)}.")
    return usage


def with_reservations(pool: StoragePool, held: Reserved) -> StoragePool:
    """A copy of the pool row as it will be once the reserved volumes exist (never saved)."""
    shadow = copy.copy(pool)
    shadow.volume_capacity_total = pool.volume_capacity_total + held.capacity
    shadow.allocation = pool.allocation + held.allocation
    shadow.available = pool.available - held.allocation
    return shadow


def check_policy(pool: StoragePool, *, capacity: int, allocation: int, exclude: Request | None = None,
                 **extra: int) -> list[str]:
    """pools.policy.check_volume_fits on the pool with every approved request not yet in the inventory counted
    in; the PolicyViolation says so. Returns the policy's warnings."""
    held = pool_reserved(pool, exclude)
    try:
        return check_volume_fits(with_reservations(pool, held), capacity=capacity, allocation=allocation,
                                 **extra).warnings
    except PolicyViolation as exc:
        if not held.count:
            raise
        raise PolicyViolation(
            f"{exc} That counts {_plural(held.count, 'approved request')} not in the inventory yet "
            f"({binary_size(held.capacity)} of virtual size, {binary_size(held.allocation)} preallocated).") from exc


def name_clash(pool: StoragePool, name: str, exclude: Request | None = None) -> str:
    """Why the name is not free in the pool (a volume, another open request), or ""."""
    if Volume.objects.filter(pool=pool, name=name).exists():
        return f"Pool {pool.name} already has a volume named {name}."
    other = _exclude(Request.objects.open().filter(pool=pool, name=name), exclude).first()
    if other is not None:
        return f"Request #{other.pk} ({other.get_state_display().lower()}) already asks for {name} in pool {pool.name}."
    return ""


@dataclass(frozen=True)
class Impact:
    """What approving a request would do, for the approval queue."""

    allocation_after: int
    available_after: int
    overcommit_after: float | None
    overcommit_limit: float | None
    quota_bytes_after: int
    quota_bytes_max: int | None
    quota_count_after: int
    quota_count_max: int | None
    refusal: str  # why approving now would be refused, or ""


def refusal(req: Request, grant: PoolGrant | None, *, inventory_name: bool = True) -> str:
    """Why req cannot be approved (or retried) now: pool stopped, backing gone, name taken, policy, quota; or "".

    inventory_name=False (a retry) leaves a volume of that name in the inventory to libvirt: after a failed
    create it may be the very collision that was since removed, and the inventory learns that only later."""
    pool = req.pool
    if grant is None and not req.team.all_pools:
        return f"Team {req.team.name} may no longer use pool {pool.name}."
    if not pool.is_active:
        return f"Pool {pool.name} is stopped; start it first."
    if req.backing_path and (req.backing is None or req.backing.unsafe_reason):
        return f"The backing volume ({req.backing_path}) is gone from the inventory or marked unsafe."
    if inventory_name and Volume.objects.filter(pool=pool, name=req.name).exists():
        return f"Pool {pool.name} already has a volume named {req.name}."
    other = Request.objects.reserving().filter(pool=pool, name=req.name).exclude(pk=req.pk).first()
    if other is not None:
        return f"Request #{other.pk} ({other.get_state_display().lower()}) already makes {req.name} in {pool.name}."
    try:
        check_policy(pool, capacity=req.capacity, allocation=req.allocation, exclude=req)
        check_quota(req.team, pool, grant, req.capacity, exclude=req)
    except (PolicyViolation, QuotaExceeded) as exc:
        return str(exc)
    return ""


def impact(req: Request) -> Impact:
    pool = req.pool
    after = with_reservations(pool, pool_reserved(pool, exclude=req))
    grant = grant_of(req.team, pool)
    usage = team_usage(req.team, pool, exclude=req)
    total = after.volume_capacity_total + req.capacity
    return Impact(
        allocation_after=after.allocation + req.allocation,
        available_after=after.available - req.allocation,
        overcommit_after=total / pool.capacity if pool.capacity else None,
        overcommit_limit=float(pool.max_overcommit) if pool.max_overcommit is not None else None,
        quota_bytes_after=usage.capacity + usage.reserved.capacity + req.capacity,
        quota_bytes_max=grant.max_virtual_bytes if grant else None,
        quota_count_after=usage.count + usage.reserved.count + 1,
        quota_count_max=grant.max_volumes if grant else None,
        refusal=refusal(req, grant),
    )

