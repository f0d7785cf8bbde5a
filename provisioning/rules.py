"""Who sees, files and reviews which requests, on top of accounts.access.

- A request belongs to a team; its requester files it for one of their teams that may use the pool.
- The requester sees their own requests; an operator sees (and reviews) the requests of the teams they
  operate, in pools they may still use; an admin sees and reviews all. Anyone else gets a 404.
- Nobody reviews their own request (services refuse it; the queue shows it without a checkbox).
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet

from accounts import access
from accounts.models import Membership, Team
from accounts.roles import ADMIN, is_admin

from .models import ProvisioningRequest


def operated_teams(user) -> QuerySet:
    """Ids of the teams the user is an operator of."""
    return Membership.objects.filter(user=user, role=Membership.Role.OPERATOR).values("team_id")


def is_approver(user) -> bool:
    """An admin, or an operator of some team: someone with an approval queue."""
    if not user.is_authenticated:
        return False
    return is_admin(user) or Membership.objects.filter(user=user, role=Membership.Role.OPERATOR).exists()


def approvable(user) -> QuerySet:
    """Requests the user may review: every one for an admin, else those of the teams they operate, in pools
    they may use."""
    requests = ProvisioningRequest.objects.all()
    if is_admin(user):
        return requests
    if not user.is_authenticated:
        return requests.none()
    return access.visible(requests.filter(team__in=operated_teams(user)), user, "pool")


def visible(user) -> QuerySet:
    """Requests the user may look at: their own and the ones they may review."""
    if is_admin(user):
        return ProvisioningRequest.objects.all()
    return ProvisioningRequest.objects.filter(Q(requested_by=user) | Q(pk__in=approvable(user).values("pk")))


def may_review(user, req: ProvisioningRequest) -> bool:
    """An approver of the request's team in its pool (mind: not their own request, see own_request)."""
    if is_admin(user):
        return True
    return access.may(user, "approve", req.pool) and Membership.objects.filter(
        user=user, team_id=req.team_id, role=Membership.Role.OPERATOR).exists()


def own_request(user, req: ProvisioningRequest) -> bool:
    return user.is_authenticated and req.requested_by_id == user.pk


def requesting_teams(user, pool) -> QuerySet:
    """The teams the user may file a request for in the pool: their teams that may use it (an admin: any
    team that may use it)."""
    teams = Team.objects.filter(Q(all_pools=True) | Q(grants__pool=pool)).distinct()
    if is_admin(user):
        return teams
    return teams.filter(memberships__user=user)


def approvers(req: ProvisioningRequest) -> list:
    """Who is told of a new request: the team's operators and the admins (not the requester)."""
    users = get_user_model().objects.filter(is_active=True).filter(
        Q(is_superuser=True) | Q(groups__name=ADMIN)
        | Q(memberships__team_id=req.team_id, memberships__role=Membership.Role.OPERATOR))
    return list(users.exclude(pk=req.requested_by_id).distinct().order_by("username"))
