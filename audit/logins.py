"""Logins, failed logins and logouts, from Django's auth signals, and what happens to accounts (a password changed,
an account made, given a new password, deactivated), from accounts' own (connected in apps.py).

A failed login keeps the name that was typed (and never the password); one refused by the login
throttle (axes' lockout) says so in its detail.
"""

from __future__ import annotations

from .log import record
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
