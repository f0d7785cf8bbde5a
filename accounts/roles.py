"""The two roles: members use storage and file requests, admins manage and approve.

Roles are Django groups so they show in Django's admin and can carry permissions.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, Group
from django.core.exceptions import PermissionDenied
from django.utils.translation import gettext as _

MEMBER = "member"
ADMIN = "admin"
ROLES = (MEMBER, ADMIN)


def ensure_role_groups() -> None:
    for name in ROLES:
        Group.objects.get_or_create(name=name)


def is_admin(user: AbstractBaseUser | AnonymousUser) -> bool:
    if not user.is_authenticated or not user.is_active:
        return False
    return user.is_superuser or ADMIN in _roles_of(user)


def is_member(user: AbstractBaseUser | AnonymousUser) -> bool:
    """Any active account with a role (admins are members too)."""
    if not user.is_authenticated or not user.is_active:
        return False
    return is_admin(user) or MEMBER in _roles_of(user)


_ROLES_ANSWER = "_virtstorage_roles"  # kept on the user object: every page asks both, one query answers both


def _roles_of(user: AbstractBaseUser) -> frozenset[str]:
    if _ROLES_ANSWER not in user.__dict__:
        prefetched = getattr(user, "_prefetched_objects_cache", {}).get("groups")  # a list of accounts prefetches
        names = ([group.name for group in prefetched] if prefetched is not None
                 else user.groups.filter(name__in=ROLES).values_list("name", flat=True))
        user.__dict__[_ROLES_ANSWER] = frozenset(names) & frozenset(ROLES)
    return user.__dict__[_ROLES_ANSWER]


def site_role(user: AbstractBaseUser) -> str | None:
    """The account's site-wide role, active or not: ADMIN (a superuser is one), MEMBER, or None."""
    roles = _roles_of(user)
    return ADMIN if user.is_superuser or ADMIN in roles else MEMBER if MEMBER in roles else None


def grant(user: AbstractBaseUser, role: str) -> None:
    ensure_role_groups()
    user.groups.add(Group.objects.get(name=role))
    user.__dict__.pop(_ROLES_ANSWER, None)  # asked of this object before the grant


def member_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Logged in (LoginRequiredMiddleware does that) and holding a role."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not is_member(request.user):
            raise PermissionDenied(_("Your account has no role yet: ask an admin to make you a member."))
        return view(request, *args, **kwargs)

    return wrapper


def admin_required(view: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not is_admin(request.user):
            raise PermissionDenied(_("Only admins can do this."))
        return view(request, *args, **kwargs)

    return wrapper
