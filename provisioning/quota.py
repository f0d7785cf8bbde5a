"""What a request would do to its pool and its team's quota, with the numbers.

What counts against a team's grant is volumes/quota.py's rule: the team's volumes in the pool, and what is on
its way there. This app adds its own reservations to that rule (``reserved_by_requests``, connected to
volumes.quota.reserving in apps.py): approved requests whose volume is not in the inventory yet (approved,
provisioning). A reservation ends when the request becomes ready (its create job records the volume as the
team's) or failed.

The request form, the approval (under its locks), the approval queue and the team pages (through
provisioning_tags) all read it from a ``Ledger``. The pool's capacity policy (pools.policy) is checked with every
team's reservations added to the pool's numbers, so two approvals cannot both take the last free space before
the sync sees either volume. Callers that decide (approval, retry) hold the pool and grant rows locked while they
read the ledger.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import Case, Count, IntegerField, Sum, When
from django.db.models.functions import Coalesce
from django.utils.translation import gettext as _

from jobs.rows import for_update
from pools.models import PoolGrant, StoragePool
from pools.policy import PolicyViolation, check_volume_fits
from virtstorage.virt.units import binary_size
from volumes import quota as volume_quota
from volumes.models import Volume
from volumes.quota import QuotaExceeded, Reserved, Usage

from .models import ProvisioningRequest

Request = ProvisioningRequest
Pair = tuple[int, int]  # (team id, pool id)

def reserved_by_requests(sender, *, pools: set[int], exclude: set[int], **kwargs) -> dict[Pair, Reserved]:
    """volumes.quota.reserving's receiver: every team's approved requests not made yet in these pools."""
    rows = (Request.objects.filter(pool_id__in=pools).exclude(pk__in=exclude).reserving()
            .values("team_id", "pool_id").annotate(
                n=Count("pk"), virtual=Coalesce(Sum("capacity"), 0),
                disk=Coalesce(Sum(Case(When(preallocation="full", then="capacity"), default=0,
                                       output_field=IntegerField())), 0)))
    return {(row["team_id"], row["pool_id"]): Reserved(row["n"], row["virtual"], row["disk"]) for row in rows}


@dataclass
class Ledger:
    """Reservations, usage, grants and taken names for a set of (team, pool) pairs, read in a fixed number of
    queries whatever their number: the approval queue reads one for its whole page."""

    held: dict[Pair, Reserved]  # every team's reservations in the pools of the pairs
    made: dict[Pair, tuple[int, int]]  # (volumes, virtual bytes) of the teams' volumes
    grants: dict[Pair, PoolGrant]
    volume_names: set[tuple[int, str]]  # (pool id, name) of volumes in the inventory
    reserving_names: dict[tuple[int, str], Request]  # (pool id, name) of approved requests not made yet

    @classmethod
    def read(cls, pairs: Iterable[Pair], names: Iterable[tuple[int, str]] = (), *,
             exclude: Iterable[int] = (), lock_grants: bool = False) -> Ledger:
        """exclude: pks of requests not to count (the one being decided, edited or retried)."""
        pairs, names, exclude = set(pairs), set(names), set(exclude)
        teams, pools = {t for t, _ in pairs}, {p for _, p in pairs} | {p for p, _ in names}
        requests = Request.objects.filter(pool_id__in=pools).exclude(pk__in=exclude)
        held = volume_quota.reservations(pools, exclude_requests=exclude)
        made = volume_quota.volumes_of(teams, pools)
        grant_rows = PoolGrant.objects.filter(team_id__in=teams, pool_id__in=pools)
        grants = {(g.team_id, g.pool_id): g for g in (for_update(grant_rows) if lock_grants else grant_rows)
                  if (g.team_id, g.pool_id) in pairs}
        volume_names, reserving_names = set(), {}
        if names:
            wanted = {n for _, n in names}
            volume_names = {key for key in Volume.objects.filter(pool_id__in=pools, name__in=wanted)
                            .values_list("pool_id", "name") if key in names}
            reserving_names = {(r.pool_id, r.name): r for r in requests.reserving().filter(name__in=wanted)
                               .only("pk", "pool_id", "name", "state")}
        return cls(held, made, grants, volume_names, reserving_names)

    def pool_reserved(self, pool_id: int) -> Reserved:
        return sum((r for (_, p), r in self.held.items() if p == pool_id), Reserved())

    def usage(self, team_id: int, pool_id: int) -> Usage:
        count, capacity = self.made.get((team_id, pool_id), (0, 0))
        return Usage(count, capacity, self.held.get((team_id, pool_id), Reserved()))

    def grant(self, team_id: int, pool_id: int) -> PoolGrant | None:
        """The team's grant in the pool (its quota), None when it uses the pool through "all pools" alone."""
        return self.grants.get((team_id, pool_id))


def ledger_for(req: Request, *, lock_grants: bool = False) -> Ledger:
    """The ledger that decides one request (everything but the request itself)."""
    return Ledger.read({(req.team_id, req.pool_id)}, {(req.pool_id, req.name)}, exclude=[req.pk] if req.pk else [],
                       lock_grants=lock_grants)


def check_quota(team, pool: StoragePool, capacity: int, ledger: Ledger) -> Usage:
    """Raise QuotaExceeded unless one more volume of this capacity fits the team's grant in the pool."""
    usage = ledger.usage(team.pk, pool.pk)
    volume_quota.check(team, pool, ledger.grant(team.pk, pool.pk), usage, count=1, capacity=capacity, request=True)
    return usage


def with_reservations(pool: StoragePool, held: Reserved) -> StoragePool:
    """A copy of the pool row as it will be once the reserved volumes exist (never saved)."""
    shadow = copy.copy(pool)
    shadow.volume_capacity_total = pool.volume_capacity_total + held.capacity
    shadow.allocation = pool.allocation + held.allocation
    shadow.available = pool.available - held.allocation
    return shadow


def check_policy(pool: StoragePool, ledger: Ledger, *, capacity: int, allocation: int, **extra: int) -> list[str]:
    """pools.policy.check_volume_fits on the pool with every approved request not yet in the inventory counted
    in; the PolicyViolation says so. Returns the policy's warnings."""
    held = ledger.pool_reserved(pool.pk)
    try:
        return check_volume_fits(with_reservations(pool, held), capacity=capacity, allocation=allocation,
                                 **extra).warnings
    except PolicyViolation as exc:
        if not (held.count or held.capacity):
            raise
        raise PolicyViolation(
            _("%(reason)s That counts what is on its way and not in the inventory yet (approved requests, jobs and "
              "uploads under way): %(virtual)s of virtual size, %(preallocated)s preallocated.")
            % {"reason": exc, "virtual": binary_size(held.capacity),
               "preallocated": binary_size(held.allocation)}) from exc


def name_clash(pool: StoragePool, name: str, exclude: Request | None = None) -> str:
    """Why the name is not free in the pool (a volume, another open request), or ""."""
    if Volume.objects.filter(pool=pool, name=name).exists():
        return _("Pool %(pool)s already has a volume named %(name)s.") % {"pool": pool.name, "name": name}
    others = Request.objects.open().filter(pool=pool, name=name)
    other = (others.exclude(pk=exclude.pk) if exclude is not None and exclude.pk else others).first()
    if other is not None:
        return (_("Request #%(pk)s (%(state)s) already asks for %(name)s in pool %(pool)s.")
                % {"pk": other.pk, "state": other.get_state_display().lower(), "name": name, "pool": pool.name})
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


def refusal(req: Request, ledger: Ledger, *, inventory_name: bool = True) -> str:
    """Why req cannot be approved (or retried) now: pool stopped, backing gone, name taken, policy, quota; or "".

    inventory_name=False (a retry) leaves a volume of that name in the inventory to libvirt: after a failed
    create it may be the very collision that was since removed, and the inventory learns that only later."""
    pool = req.pool
    if ledger.grant(req.team_id, pool.pk) is None and not req.team.all_pools:
        return _("Team %(team)s may no longer use pool %(pool)s.") % {"team": req.team.name, "pool": pool.name}
    if not pool.is_active:
        return _("Pool %(pool)s is stopped; start it first.") % {"pool": pool.name}
    if req.backing_path and (req.backing is None or req.backing.unsafe_reason):
        return (_("The backing volume (%(path)s) is gone from the inventory or marked unsafe.")
                % {"path": req.backing_path})
    if inventory_name and (pool.pk, req.name) in ledger.volume_names:
        return _("Pool %(pool)s already has a volume named %(name)s.") % {"pool": pool.name, "name": req.name}
    other = ledger.reserving_names.get((pool.pk, req.name))
    if other is not None and other.pk != req.pk:
        return (_("Request #%(pk)s (%(state)s) already makes %(name)s in %(pool)s.")
                % {"pk": other.pk, "state": other.get_state_display().lower(), "name": req.name, "pool": pool.name})
    try:
        check_policy(pool, ledger, capacity=req.capacity, allocation=req.allocation)
        check_quota(req.team, pool, req.capacity, ledger)
    except (PolicyViolation, QuotaExceeded) as exc:
        return str(exc)
    return ""


def impact(req: Request, ledger: Ledger) -> Impact:
    """From the ledger alone (no query): the queue computes a page of these from one ledger."""
    pool = req.pool
    after = with_reservations(pool, ledger.pool_reserved(pool.pk))
    grant = ledger.grant(req.team_id, pool.pk)
    usage = ledger.usage(req.team_id, pool.pk)
    total = after.volume_capacity_total + req.capacity
    return Impact(
        allocation_after=after.allocation + req.allocation,
        available_after=after.available - req.allocation,
        overcommit_after=total / pool.capacity if pool.capacity else None,
        overcommit_limit=float(pool.max_overcommit) if pool.max_overcommit is not None else None,
        quota_bytes_after=usage.total_capacity + req.capacity,
        quota_bytes_max=grant.max_virtual_bytes if grant else None,
        quota_count_after=usage.total_count + 1,
        quota_count_max=grant.max_volumes if grant else None,
        refusal=refusal(req, ledger),
    )


def impacts(requests: list[Request]) -> list[Impact]:
    """impact() of each request, from one ledger for all of them (the requests are pending: none reserves)."""
    ledger = Ledger.read({(r.team_id, r.pool_id) for r in requests}, {(r.pool_id, r.name) for r in requests},
                         exclude=[r.pk for r in requests])
    return [impact(req, ledger) for req in requests]

