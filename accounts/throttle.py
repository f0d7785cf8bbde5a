"""Login throttling with django-axes: who the client is, what a locked-out user sees, what a success resets.

settings.py (the "Login throttling" block) points axes at the three hooks here:

- ``client_ip``: the address failures are counted against. X-Forwarded-For is read only with
  BEHIND_PROXY=1, and then its right-most entry (the one the proxy in front appended, which a client
  cannot choose); otherwise REMOTE_ADDR, whatever headers the client sends.
- ``lockout_response``: the login page again, with "Too many failed logins ...; try again in N minutes"
  (HTTP 429), instead of the bare text axes answers with.
- ``ThrottleBackend`` and ``ThrottleHandler``: axes' own, with two changes said on each.
- ``PacedModelBackend``: Django's ModelBackend, checking at most PASSWORD_CHECKS_AT_ONCE passwords at once.
"""

from __future__ import annotations

import ipaddress
import math
import threading

from axes.backends import AxesStandaloneBackend
from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username, get_cool_off
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext


def client_ip(request: HttpRequest) -> str | None:
    """The client's address: X-Forwarded-For's last hop behind a proxy (BEHIND_PROXY=1), else REMOTE_ADDR."""
    remote = request.META.get("REMOTE_ADDR") or None
    if getattr(settings, "BEHIND_PROXY", False):
        hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
        if hops:
            try:
                return str(ipaddress.ip_address(hops[-1]))
            except ValueError:
                pass  # not an address (a proxy that adds ports or names): count it against the proxy's
    return remote


def cool_off_minutes(request: HttpRequest | None = None) -> int:
    cool_off = get_cool_off(request)
    return max(1, math.ceil(cool_off.total_seconds() / 60)) if cool_off else 0


def lockout_message(request: HttpRequest | None = None) -> str:
    minutes = cool_off_minutes(request)
    if not minutes:
        return _("Too many failed logins for this account or address; ask an administrator to unlock it.")
    return ngettext("Too many failed logins for this account or address; try again in %(minutes)s minute.",
                    "Too many failed logins for this account or address; try again in %(minutes)s minutes.",
                    minutes) % {"minutes": minutes}


def lockout_response(request: HttpRequest, original_response=None, credentials=None) -> HttpResponse:
    """The login page with the lockout message (and the user name typed), as HTTP 429.

    Every failed attempt during a lockout starts the cool-off again (axes'
    AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT), so "in N minutes" counts from this attempt.
    """
    username = get_client_username(request, credentials) or ""
    form = AuthenticationForm(request, initial={"username": username})
    response = TemplateResponse(request, "registration/login.html", {
        "form": form,
        "lockout_message": lockout_message(request),
        "next": request.POST.get("next") or request.GET.get("next", ""),
    }, status=settings.AXES_HTTP_RESPONSE_CODE)
    return response.render()


class ThrottleBackend(AxesStandaloneBackend):
    """axes' backend (it refuses a locked-out client before any password is checked), first in
    AUTHENTICATION_BACKENDS; Django's ModelBackend after it checks passwords.

    Unlike axes' own it lets ``authenticate()`` without a request through (to ModelBackend):
    that call comes from code on this machine (the shell, a management command, the test
    client's ``login()``), not from a client that could guess passwords, and there is no
    address to count it against. Every login over HTTP passes its request and is throttled.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


class ThrottleHandler(AxesDatabaseHandler):
    """axes' database handler, whose reset on a successful login is narrowed to this account
    from this address.

    axes' own deletes every failure of the account *and every failure of the address*: one
    who has an account would then log in after each few guesses to wipe the counts of the
    address and of the accounts guessed at from it. Here a success forgets only its own
    account's failures from its own address; failures from elsewhere keep counting.
    """

    def reset_user_attempts(self, request: HttpRequest, credentials: dict | None = None) -> int:
        username = get_client_username(request, credentials)
        count, _ = AccessAttempt.objects.filter(username=username, ip_address=request.axes_ip_address).delete()
        return count


class PacedModelBackend(ModelBackend):
    """Django's ModelBackend, checking at most settings.PASSWORD_CHECKS_AT_ONCE passwords at a time in this process.

    A check hashes the password (Argon2, settings.PASSWORD_HASHERS: ~0.25 CPU-seconds on two threads here, the
    GIL released meanwhile), and ModelBackend hashes as long for an unknown name, so that it does not answer
    faster. When 50 people logged in within 5 s, 50 hashes ran side by side and every page waited behind them
    (the load test's audit page: p95 944 ms during that burst, ≤ 224 ms after it). Paced, the logins wait for
    each other and the pages keep their share of the CPU; a login's answer is as right as before, only later.
    """

    _checks: threading.BoundedSemaphore | None = None
    _checks_lock = threading.Lock()

    @classmethod
    def _slots(cls) -> threading.BoundedSemaphore:
        with cls._checks_lock:  # one semaphore per process, sized when first needed (settings may be overridden)
            if cls._checks is None:
                cls._checks = threading.BoundedSemaphore(max(1, settings.PASSWORD_CHECKS_AT_ONCE))
            return cls._checks

    def authenticate(self, request, username=None, password=None, **kwargs):
        with self._slots():
            return super().authenticate(request, username=username, password=password, **kwargs)
