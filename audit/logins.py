"""Logins, failed logins and logouts, from Django's auth signals, and what happens to accounts (a password changed,
an account made, given a new password, deactivated), from accounts' own (connected in apps.py).

A failed login keeps the name that was typed (and never the password); one refused by the login
throttle (axes' lockout) says so in its detail.
"""

from __future__ import annotations

from django.http import HttpRequest
from django.urls import reverse

from .log import current_request, record
from .models import AuditRecord


def logged_in(sender, request, user, **kwargs) -> None:
    record("login", request=request, user=user, target=user)


def login_failed(sender, credentials: dict, request=None, **kwargs) -> None:
    typed = str(credentials.get("username") or "")[:150]
    detail = {"locked_out": True} if getattr(request, "axes_locked_out", False) else {}
    record("login.failed", request=request, username=typed, target_type="user", target=f"user {typed}",
           outcome=AuditRecord.Outcome.REFUSED, detail=detail)


def logged_out(sender, request, user, **kwargs) -> None:
    if user is not None:
        record("logout", request=request, user=user, target=user)


def account_event(sender, request, actor, account, action: str, detail: dict, **kwargs) -> None:
    record(action, request=request, user=actor, target=account, detail=detail)  # never a password


# Django's own admin (/admin/, superusers) changes accounts without the app's forms: what it changes of who may do
# what (groups, superuser, staff, active) is recorded here, with the admin who did it (the request at hand).
WATCHED_FLAGS = ("is_superuser", "is_staff", "is_active")


def _in_django_admin() -> HttpRequest | None:
    request = current_request()
    return request if request is not None and request.path.startswith(reverse("admin:index")) else None


def flags_before(sender, instance, update_fields=None, **kwargs) -> None:
    """Keep an account's flags as they were, for flags_changed (only for a save from Django's admin)."""
    if instance.pk and _in_django_admin() is not None:
        instance._audit_flags = sender.objects.filter(pk=instance.pk).values(*WATCHED_FLAGS).first()


def flags_changed(sender, instance, created: bool, **kwargs) -> None:
    request, before = _in_django_admin(), getattr(instance, "_audit_flags", None)
    if request is None:
        return
    changed = {flag: getattr(instance, flag) for flag in WATCHED_FLAGS
               if created or before is None or before[flag] != getattr(instance, flag)}
    if changed:
        record("account.admin_change", request=request, target=instance, detail=changed)


def groups_changed(sender, instance, action: str, pk_set, model, **kwargs) -> None:
    request = _in_django_admin()
    if request is None or action not in ("post_add", "post_remove", "post_clear") or not hasattr(instance, "groups"):
        return
    names = sorted(model.objects.filter(pk__in=pk_set or ()).values_list("name", flat=True))
    key = {"post_add": "groups_added", "post_remove": "groups_removed", "post_clear": "groups_cleared"}[action]
    record("account.admin_change", request=request, target=instance, detail={key: names or True})
