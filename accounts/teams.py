"""Changing teams and memberships: one place for the management commands, the admin pages and tests."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser

from .models import Membership, Team
from .roles import MEMBER, grant, is_member

DEFAULT_TEAM = "default"


def default_team() -> Team:
    """The team every member joins unless told otherwise; it may use every pool (as before teams came),
    until an admin turns that off and grants pools one by one."""
    team, _ = Team.objects.get_or_create(
        name=DEFAULT_TEAM, defaults={"all_pools": True, "description": "Sees every pool, present and future."})
    return team


def join(user: AbstractBaseUser, team: Team | None = None, role: str = Membership.Role.MEMBER) -> Membership:
    """Put the user in the team (the default team if none) with this role; a second call changes the role."""
    membership, _ = Membership.objects.update_or_create(team=team or default_team(), user=user,
                                                        defaults={"role": role})
    return membership


def add_member(team: Team, user: AbstractBaseUser, role: str) -> tuple[Membership, str | None]:
    """Put the user in the team with this role, or change their role there: (membership, the role they had
    before or None). An account with no site-wide role gets the member role: without one it could not use
    the team's pools."""
    if role not in Membership.Role.values:
        raise ValueError(f"{role!r} is not a team role: use {' or '.join(Membership.Role.values)}.")
    if not is_member(user):
        grant(user, MEMBER)
    before = Membership.objects.filter(team=team, user=user).values_list("role", flat=True).first()
    return join(user, team, role), before


def remove_member(team: Team, user: AbstractBaseUser) -> bool:
    """Take the user out of the team; False when they were not in it. Their account and role stay."""
    deleted, _ = Membership.objects.filter(team=team, user=user).delete()
    return bool(deleted)
