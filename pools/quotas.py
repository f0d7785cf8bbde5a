"""Teams' pool grants and what counts against their quotas.

``team_usage`` is the one rule of what a team uses in a pool. For now every volume in the pool counts
against each team with a grant there; when volumes have owning teams (provisioning) only this function
changes.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Sum

from accounts.models import Team

from .models import PoolGrant, StoragePool


def team_usage(team: Team, pool: StoragePool) -> tuple[int, int]:
    """(sum of virtual sizes in bytes, number of volumes) that count against the team's quota in the pool."""
    totals = pool.volumes.aggregate(size=Sum("capacity"), count=Count("pk"))  # volumes: a relation, not an import
    return totals["size"] or 0, totals["count"]


@dataclass
class GrantUsage:
    grant: PoolGrant
    used_bytes: int
    used_volumes: int

    @property
    def pool(self) -> StoragePool:
        return self.grant.pool

    @property
    def over(self) -> bool:
        """Past either limit (a grant made smaller than what is already there)."""
        grant = self.grant
        return ((grant.max_virtual_bytes is not None and self.used_bytes > grant.max_virtual_bytes)
                or (grant.max_volumes is not None and self.used_volumes > grant.max_volumes))


def grants_with_usage(team: Team) -> list[GrantUsage]:
    """The team's grants, host and pool name order, each with its usage."""
    grants = team.grants.select_related("pool__host").order_by("pool__host__name", "pool__name")
    return [GrantUsage(grant, *team_usage(team, grant.pool)) for grant in grants]


def grant_pool(team: Team, pool: StoragePool, max_virtual_bytes: int | None,
               max_volumes: int | None) -> tuple[PoolGrant, dict | None]:
    """Let the team use the pool with this quota (None: no limit), or set the quota of its grant there:
    (grant, None) when it is new, else (grant, {field: {"from": old, "to": new}} of what changed)."""
    grant, created = PoolGrant.objects.get_or_create(
        team=team, pool=pool, defaults={"max_virtual_bytes": max_virtual_bytes, "max_volumes": max_volumes})
    if created:
        return grant, None
    changed = {field: {"from": getattr(grant, field), "to": value}
               for field, value in (("max_virtual_bytes", max_virtual_bytes), ("max_volumes", max_volumes))
               if getattr(grant, field) != value}
    for field, change in changed.items():
        setattr(grant, field, change["to"])
    if changed:
        grant.save(update_fields=list(changed))
    return grant, changed


def revoke_pool(team: Team, pool: StoragePool) -> bool:
    """The team may no longer use the pool (unless it may use every pool); False when it had no grant there.
    Nothing in the pool changes."""
    deleted, _ = PoolGrant.objects.filter(team=team, pool=pool).delete()
    return bool(deleted)
