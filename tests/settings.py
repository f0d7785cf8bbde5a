"""The app's settings for its tests: virtstorage/settings.py with a fast password hasher, nothing else.

pyproject.toml names this module for pytest, and the fixtures' worker and server processes get it too
(tests/conftest.py), so a password set in a test is checked in the server with the same hasher.
"""

from virtstorage.settings import *  # noqa: F403
from virtstorage.settings import PASSWORD_HASHERS as APP_PASSWORD_HASHERS

# Production hashes a password with Argon2 (0.25 CPU-seconds and 100 MiB here; PBKDF2 before it, 0.55 s), which
# each created user and each login in a test paid (most of the 1,200 tests make users, many log in). What the
# tests check of logins (pacing, throttling, sessions) does not depend on how long one hash takes; the
# throttle's pacing test sleeps inside its hash, and tests/test_settings.py checks production's hasher.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher", *APP_PASSWORD_HASHERS]

# The block devices and groups that the pool tests' fs, disk, logical and zfs pools name (defined and previewed,
# never built or started): set aside for pools, as an admin would set POOL_DEVICES and POOL_GROUPS.
# tests/pools/test_pool_devices.py checks what the app refuses without them.
POOL_DEVICES = ["/dev/vdb1", "/dev/vdc", "/dev/vdd", "/dev/vde", "/dev/vdf"]
POOL_GROUPS = ["vstestvg", "tank"]
