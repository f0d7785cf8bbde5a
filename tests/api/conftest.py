"""Fixtures of the REST API tests: tokens, and clients that present them (nothing else: no session)."""

from __future__ import annotations

import pytest
from django.test import Client


def token_for(user, name: str = "tests") -> str:
    from accounts import tokens

    return tokens.issue(user, name)[1]


def token_client(user_or_raw, *, csrf_checks: bool = True) -> Client:
    """A Django test client that authenticates with a bearer token only (CSRF checks on, as a browser's)."""
    raw = user_or_raw if isinstance(user_or_raw, str) else token_for(user_or_raw)
    return Client(enforce_csrf_checks=csrf_checks, HTTP_AUTHORIZATION=f"Bearer {raw}")


@pytest.fixture
def api(member) -> Client:
    """The member (an operator of the team that may use every pool) through the API, by token."""
    return token_client(member)


@pytest.fixture
def admin_api(admin_user) -> Client:
    return token_client(admin_user)


def post(client: Client, url: str, data: dict | None = None):
    return client.post(url, data or {}, content_type="application/json")
