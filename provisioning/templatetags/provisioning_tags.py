"""Request links and numbers for other apps' templates: the nav's "Approvals (N)", the pool page's "Request a
volume…" and the team pages' quota usage."""

from __future__ import annotations

from django import template

from accounts import access
from pools.models import PoolGrant

from .. import rules
from ..models import ProvisioningRequest
from ..quota import Ledger, Usage

register = template.Library()


@register.simple_tag(takes_context=True)
def approvals_waiting(context) -> int | None:
    """How many pending requests the user may decide (not their own); None for someone who approves nothing."""
    user = context.get("user")
    if user is None or not rules.is_approver(user):
        return None
    return (rules.approvable(user).filter(state=ProvisioningRequest.State.PENDING)
            .exclude(requested_by=user).count())


@register.simple_tag(takes_context=True)
def requests_instead(context, pool) -> bool:
    """Whether the user may ask for a volume in the pool but not create one themselves."""
    user = context.get("user")
    return (user is not None and access.may(user, "request", pool) and not access.may(user, "create", pool)
            and rules.requesting_teams(user, pool).exists())


@register.simple_tag(takes_context=True)
def grant_usage(context, grant: PoolGrant) -> Usage:
    """What counts against the grant's quota (provisioning/quota.py's rule); one ledger per team and page."""
    ledgers = context.render_context.setdefault("grant_usage_ledgers", {})
    if grant.team_id not in ledgers:
        ledgers[grant.team_id] = Ledger.read(PoolGrant.objects.filter(team_id=grant.team_id)
                                             .values_list("team_id", "pool_id"))
    return ledgers[grant.team_id].usage(grant.team_id, grant.pool_id)
