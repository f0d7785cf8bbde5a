"""Request links for other apps' templates: the nav's "Approvals (N)" and the pool page's "Request a volume…"."""

from __future__ import annotations

from django import template

from accounts import access

from .. import rules
from ..models import ProvisioningRequest

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
