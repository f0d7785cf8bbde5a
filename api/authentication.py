"""DRF authentication by personal API token: ``Authorization: Bearer <token>``, checked by accounts.tokens (the
one check, which the upload, download and job endpoints outside the API use too)."""

from __future__ import annotations

from rest_framework import authentication, exceptions

from accounts import tokens


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """A token request needs no CSRF token (DRF checks CSRF only for session authentication)."""

    keyword = "Bearer"

    def authenticate(self, request):
        raw = tokens.presented(request._request)  # noqa: SLF001 - the Django request's headers
        if raw is None:
            return None
        try:
            return tokens.authenticate(raw)
        except tokens.TokenRefused as exc:
            raise exceptions.AuthenticationFailed(str(exc)) from None

    def authenticate_header(self, request) -> str:
        return f'{self.keyword} realm="api"'
