"""{% may "resize" pool as allowed %}: whether the page's user may do the action there (accounts/access.py decides),
so that a page offers only what its reader may do."""

from __future__ import annotations

from django import template

from accounts import access

register = template.Library()


@register.simple_tag(takes_context=True)
def may(context, action: str, pool) -> bool:
    user = context.get("user")
    return user is not None and pool is not None and access.may(user, action, pool)
