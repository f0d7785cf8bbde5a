"""Personal API tokens: made, presented and refused here, in one place.

A token is ``vst_<prefix>_<secret>``. The prefix (public, unique) finds the row; the SHA-256 of the whole
token must match what the row keeps (the token itself is never stored, so a copy of the database lets
nobody in). ``authenticate`` is the one check of a presented token: the REST API's authentication class
(api/authentication.py) and ``TokenMiddleware`` (for the upload, download and job endpoints outside the API)
both call it. A revoked or expired token, or one of an inactive account, is refused: 401, nothing changes.

Token requests skip Django's CSRF check: a browser sends an ``Authorization`` header cross-site only where
CORS allows it, and this app allows none; session requests keep the check.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.utils.deprecation import MiddlewareMixin
from django.utils.translation import gettext as _

from .models import ApiToken

TOKEN_PREFIX = "vst_"
LAST_USED_EVERY = timedelta(minutes=1)  # last_used_at is written at most this often per token
TOKEN_VIEW_ATTRIBUTE = "accepts_api_token"


class TokenRefused(Exception):
    """The presented token does not authenticate; the message says why (for the 401's body)."""


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def issue(user, name: str, expires_at: datetime | None = None) -> tuple[ApiToken, str]:
    """A new token for the user: the row, and the token's text (shown once, then only its prefix)."""
    prefix = secrets.token_hex(6)
    raw = f"{TOKEN_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    token = ApiToken.objects.create(user=user, name=name, prefix=prefix, secret_sha256=_digest(raw),
                                    expires_at=expires_at)
    return token, raw


def revoke(token: ApiToken) -> bool:
    """Revoke the token now; False when it was revoked already."""
    now = timezone.now()
    if ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=now):
        token.revoked_at = now
        return True
    return False


def authenticate(raw: str) -> tuple[Any, ApiToken]:
    """(user, token) for a presented token, or TokenRefused. Notes the use (at most once a minute)."""
    parts = raw.split("_") if raw.startswith(TOKEN_PREFIX) else []
    if len(parts) < 3:
        raise TokenRefused(_("This is not a virtstorage API token (they start with vst_)."))
    token = ApiToken.objects.select_related("user").filter(prefix=parts[1]).first()
    if token is None or not hmac.compare_digest(token.secret_sha256, _digest(raw)):
        raise TokenRefused(_("Unknown API token."))
    now = timezone.now()
    if token.revoked_at is not None:
        raise TokenRefused(_("API token %(name)s was revoked.") % {"name": token.name})
    if token.expires_at is not None and token.expires_at <= now:
        raise TokenRefused(_("API token %(name)s expired at %(when)s.")
                           % {"name": token.name, "when": f"{token.expires_at:%Y-%m-%d %H:%M %Z}"})
    if not token.user.is_active:
        raise TokenRefused(_("The account of this API token is disabled."))
    if token.last_used_at is None or token.last_used_at < now - LAST_USED_EVERY:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token.user, token


def presented(request: HttpRequest) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else None."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip()


def refusal_response(message: str) -> JsonResponse:
    """The 401 of a refused token, in the REST API's error shape."""
    return JsonResponse({"code": "authentication_failed", "message": message, "errors": {}}, status=401,
                        headers={"WWW-Authenticate": 'Bearer realm="api"'})


def accepts_token(view: Callable) -> Callable:
    """Mark a view outside the REST API (uploads, downloads, jobs) as taking a bearer token too."""
    setattr(view, TOKEN_VIEW_ATTRIBUTE, True)
    return view


class TokenMiddleware(MiddlewareMixin):
    """For views marked with ``accepts_token``: a bearer token authenticates the request (no session, no CSRF
    token needed); a refused one is a 401 before the view runs. Other views ignore the header.

    It acts in process_view, after every middleware's request phase and before the CSRF and login checks
    (it stands before CsrfViewMiddleware in MIDDLEWARE)."""

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs):
        raw = presented(request)
        if raw is None or not getattr(view_func, TOKEN_VIEW_ATTRIBUTE, False):
            return None
        try:
            user, _token = authenticate(raw)
        except TokenRefused as exc:
            return refusal_response(str(exc))

        async def auser():
            return user

        request.user, request.auser = user, auser
        request._dont_enforce_csrf_checks = True  # noqa: SLF001 - Django's own switch for this
        request.api_token = _token
        return None
