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
from django.utils.translation import gettext as _
from django.utils.translation import pgettext_lazy

from .models import Membership, Team
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

# The actions in words, for the refusal's sentence ("To resize here you need to be an operator...").
ACTION_WORDS = {
    "view": pgettext_lazy("access action", "view"), "request": pgettext_lazy("access action", "request"),
    "upload": pgettext_lazy("access action", "upload"), "download": pgettext_lazy("access action", "download"),
    "clone": pgettext_lazy("access action", "clone"), "create": pgettext_lazy("access action", "create"),
    "resize": pgettext_lazy("access action", "resize"), "wipe": pgettext_lazy("access action", "wipe"),
    "delete": pgettext_lazy("access action", "delete"), "replace": pgettext_lazy("access action", "replace"),
    "approve": pgettext_lazy("access action", "approve"), "force": pgettext_lazy("access action", "force"),
    "manage": pgettext_lazy("access action", "manage"),
}

User = AbstractBaseUser | AnonymousUser


def pool_ids(user: User) -> QuerySet | None:
    """The ids of the pools the user may see, as a subquery; None when that is every pool."""
    if is_admin(user):
        return None
    if not user.is_authenticated:
        return Membership.objects.none().values("team_id")
    teams = Membership.objects.filter(user=user)
    # Asked once per user object (a request's): a page often filters several querysets (the volume, the pool
    # choices), as role() remembers its answers.
    if "_virtstorage_all_pools" not in user.__dict__:
        user.__dict__["_virtstorage_all_pools"] = teams.filter(team__all_pools=True).exists()
    if user.__dict__["_virtstorage_all_pools"]:
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
        words = {"action": ACTION_WORDS.get(action, action), "pool": pool.name}
        needed = NEEDS[action]
        if needed == ADMIN:
            raise PermissionDenied(_("To %(action)s here you need to be an admin of a team that may use pool "
                                     "%(pool)s.") % words)
        if needed == OPERATOR:
            raise PermissionDenied(_("To %(action)s here you need to be an operator of a team that may use pool "
                                     "%(pool)s.") % words)
        raise PermissionDenied(_("To %(action)s here you need to be a member of a team that may use pool "
                                 "%(pool)s.") % words)


def teams_of(user: User) -> QuerySet:
    return Membership.objects.filter(user=user).select_related("team")


def charge_teams(user: User, pool: Any = None) -> QuerySet:
    """The teams whose quota a volume the user makes in pool may count against: the user's teams that may use
    the pool (an admin: every team that may). pool None: the user's teams (an admin: every team)."""
    teams = Team.objects.all()
    if pool is not None:
        teams = teams.filter(Q(all_pools=True) | Q(grants__pool_id=pool.pk))
    if not is_admin(user):
        teams = teams.filter(memberships__user=user) if user.is_authenticated else teams.none()
    return teams.distinct().order_by("name")


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
