"""Template filter for how long ago something happened: Django's timesince, except that under a minute reads
"under a minute", not "0 minutes" (the inventory syncs every minute, so most pages said "synced 0 minutes ago")."""

from __future__ import annotations

from datetime import datetime, timedelta

from django import template
from django.utils import timezone
from django.utils.timesince import timesince
from django.utils.translation import gettext

register = template.Library()


@register.filter
def since(value: datetime | None) -> str:
    """The time from value to now, as in "{{ since }} ago"; "" for no value."""
    if not value:
        return ""
    if timezone.now() - value < timedelta(minutes=1):  # a moment in the future (clocks apart) too
        return gettext("under a minute")
    return timesince(value)
