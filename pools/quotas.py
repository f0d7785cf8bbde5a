"""Teams' pool grants and their quotas.

What counts against a quota is volumes/quota.py's rule (a team's volumes plus what is on its way: approved
requests, charged jobs, uploads under way), the one place the volume forms, the request form, the approvals and
the team pages read it from.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import QuerySet

from accounts.models import Team

from .models import PoolGrant, StoragePool


def grants_of(team: Team) -> QuerySet:
    """The team's grants, host and pool name order (the team pages show what counts against each through
    provisioning's quota rule: provisioning_tags.grant_usage)."""
    return team.grants.select_related("pool__host").order_by("pool__host__name", "pool__name")


def grant_pool(team: Team, pool: StoragePool, max_virtual_bytes: int | None,
               max_volumes: int | None) -> tuple[PoolGrant, dict | None]:
    """Let the team use the pool with this quota (None: no limit), or set the quota of its grant there:
    (grant, None) when it is new, else (grant, {field: {"from": old, "to": new}} of what changed)."""
    with transaction.atomic():
        pool.hold()  # PoolRemoved (a 404) if a sync removed it since the form was checked
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
