"""Production's password hasher (virtstorage/settings.py): Argon2 for new passwords, and an account hashed with
PBKDF2 by an older install is rehashed at its next login. The tests' own settings hash with MD5 for speed."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import identify_hasher, make_password
from django.test import override_settings
from django.urls import reverse

from virtstorage import settings as app_settings

pytestmark = pytest.mark.django_db

PASSWORD = "a long enough test password 1"


@override_settings(PASSWORD_HASHERS=app_settings.PASSWORD_HASHERS)
def test_a_new_password_is_hashed_with_argon2():
    user = get_user_model().objects.create_user("new-account", password=PASSWORD)
    assert identify_hasher(user.password).algorithm == "argon2"
    assert user.check_password(PASSWORD) and not user.check_password(PASSWORD + "x")


@override_settings(PASSWORD_HASHERS=app_settings.PASSWORD_HASHERS)
def test_a_pbkdf2_hash_is_rehashed_with_argon2_at_login(client):
    user = get_user_model().objects.create(username="older-account",
                                           password=make_password(PASSWORD, hasher="pbkdf2_sha256"))
    response = client.post(reverse("login"), {"username": "older-account", "password": PASSWORD})
    assert response.status_code == 302, response.content[-500:]
    user.refresh_from_db()
    assert identify_hasher(user.password).algorithm == "argon2"
    client.logout()
    assert client.post(reverse("login"), {"username": "older-account", "password": PASSWORD}).status_code == 302
