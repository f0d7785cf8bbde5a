"""Who reaches the API at all: an account holding a role, as every page asks (accounts.roles.member_required).
What they see and do there is accounts.access's answer, asked by each view."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from rest_framework import permissions

from accounts.roles import is_admin, is_member


class HasRole(permissions.BasePermission):
    message = _("Your account has no role yet: ask an admin to make you a member.")

    def has_permission(self, request, view) -> bool:
        return is_member(request.user)


class IsAdmin(permissions.BasePermission):
    message = _("Only admins can do this.")

    def has_permission(self, request, view) -> bool:
        return is_admin(request.user)
