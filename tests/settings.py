"""The app's settings for its tests: virtstorage/settings.py with a fast password hasher, nothing else.

pyproject.toml names this module for pytest, and the fixtures' worker and server processes get it too
(tests/conftest.py), so a password set in a test is checked in the server with the same hasher.
"""

from django.conf import global_settings

from virtstorage.settings import *  # noqa: F403

# Production hashes a password with PBKDF2 at 1,000,000 rounds: 0.55 s of CPU here, which each created user
# and each login in a test paid (most of the 1,200 tests make users, many log in). What the tests check of
# logins (pacing, throttling, sessions) does not depend on how long one hash takes; the throttle's pacing
# test sleeps inside its hash.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher", *global_settings.PASSWORD_HASHERS]
