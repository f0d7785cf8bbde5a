"""The one place that decides what a user may see and do with storage.

A user sees a pool when one of their teams may use it (a grant, or a team that may use every pool);
an admin sees everything. What they may do there depends on their best role in those teams:

- member: view, request volumes, upload into a new volume, download, clone within the team's pools;
- operator: also create, resize, wipe, delete and replace by upload directly, and approve the team's
  requests;
- admin (site-wide): everything, including hosts, pools, teams and forcing past a VM that uses a volume.

Querysets of every app filter through ``pool_ids``/``visible``; views ask ``require`` before they act.
Apps above this one are reached by relation names only (``grants`` is pools.PoolGrant's related name on
Team), never imported.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import Q, QuerySet

from .models import Membership
from .roles import is_admin

MEMBER = Membership.Role.MEMBER.value
OPERATOR = Membership.Role.OPERATOR.value
ADMIN = "admin"
_RANK = {None: 0, MEMBER: 1, OPERATOR: 2, ADMIN: 3}

# What each action on a pool's storage needs, at least.
NEEDS: dict[str, str] = {
    "view": MEMBER, "request": MEMBER, "upload": MEMBER, "download": MEMBER, "clone": MEMBER,
    "create": OPERATOR, "resize": OPERATOR, "wipe": OPERATOR, "delete": OPERATOR, "replace": OPERATOR,
    "approve": OPERATOR,
    "force": ADMIN, "manage": ADMIN,
}

User = AbstractBaseUser | AnonymousUser


def pool_ids(user: User) -> QuerySet | None:
    """The ids of the pools the user may see, as a subquery; None when that is every pool."""
    if is_admin(user):
        return None
    if not user.is_authenticated:
        return Membership.objects.none().values("team_id")
    teams = Membership.objects.filter(user=user)
    if teams.filter(team__all_pools=True).exists():
        return None
    return teams.filter(team__grants__isnull=False).values("team__grants__pool_id")


def visible(queryset: QuerySet, user: User, pool_field: str) -> QuerySet:
    """The rows of queryset whose pool (reached by pool_field: "pk" for pools, "pool" for volumes) the user
    may see."""
    ids = pool_ids(user)
    return queryset if ids is None else queryset.filter(**{f"{pool_field}__in": ids})


def role(user: User, pool: Any) -> str | None:
    """The user's best role for the pool: "admin", "operator", "member", or None (not theirs)."""
    if is_admin(user):
        return ADMIN
    if not user.is_authenticated or pool is None:
        return None
    cache = user.__dict__.setdefault("_virtstorage_pool_roles", {})
    if pool.pk not in cache:
        roles = set(Membership.objects.filter(user=user).filter(
            Q(team__all_pools=True) | Q(team__grants__pool_id=pool.pk)).values_list("role", flat=True))
        cache[pool.pk] = OPERATOR if OPERATOR in roles else MEMBER if roles else None
    return cache[pool.pk]


def may(user: User, action: str, pool: Any) -> bool:
    return _RANK[role(user, pool)] >= _RANK[NEEDS[action]]


def require(user: User, action: str, pool: Any) -> None:
    """PermissionDenied, saying which role the action needs, unless the user may."""
    if not may(user, action, pool):
        needed = NEEDS[action]
        raise PermissionDenied(f"To {action} here you need to be {'an' if needed[0] in 'ao' else 'a'} {needed} "
                               f"of a team that may use pool {pool.name}.")


def teams_of(user: User) -> QuerySet:
    return Membership.objects.filter(user=user).select_related("team")


class OwnedQuerySet(models.QuerySet):
    """Records people start (jobs, uploads): an admin sees everyone's; anyone else their own, and only in
    pools they may still use."""

    owner_field = "created_by"
    pool_field = "pool"

    def visible_to(self, user: User) -> OwnedQuerySet:
        if is_admin(user):
            return self
        ids = pool_ids(user)
        mine = self.filter(**{self.owner_field: user})
        if ids is None:
            return mine
        return mine.filter(Q(**{f"{self.pool_field}__isnull": True}) | Q(**{f"{self.pool_field}__in": ids}))
