"""The bell's unread count for the page header: one COUNT, only when a page shows it, none for anonymous."""

from __future__ import annotations

from django.utils.functional import cached_property

from .models import Notification


class Bell:
    def __init__(self, user) -> None:
        self.user = user

    @cached_property
    def unread(self) -> int:
        return Notification.objects.filter(user=self.user).unread().count()


def bell(request) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"notification_bell": Bell(user)}
