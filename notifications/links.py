"""A notification's link is a path in this site: never another host (no open redirect from a stored url)."""

from __future__ import annotations

from django.utils.http import url_has_allowed_host_and_scheme


def is_local(url: str) -> bool:
    """'/pools/3/' yes; '//evil.example/', '/\\evil.example', 'https://…', 'javascript:…' no."""
    return (url.startswith("/") and not url.startswith(("//", "/\\"))
            and url_has_allowed_host_and_scheme(url, allowed_hosts=set()))
