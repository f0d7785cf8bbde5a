"""Configuration from the environment: safe defaults, and a clean deployment check for production."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from tests.conftest import ROOT
from virtstorage.environment import absolute_paths


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "HTTPS", "SECRET_KEY", "DATABASE_URL"}}
    full_env.update(env)
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=full_env, capture_output=True,
                          text=True, timeout=120)


def test_check_deploy_is_clean_with_production_settings():
    result = manage("check", "--deploy", "--fail-level", "WARNING", SECRET_KEY=secrets.token_urlsafe(64),
                    DEBUG="0", HTTPS="1", ALLOWED_HOSTS="storage.example.com",
                    DATABASE_URL="postgres://vs:secret@db.example.com:5432/virtstorage")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_flags_an_insecure_setup():
    result = manage("check", "--deploy", "--fail-level", "WARNING", DEBUG="1")
    assert result.returncode != 0
    assert "DEBUG" in result.stdout + result.stderr


def test_database_url_selects_postgresql():
    code = "from django.conf import settings; d = settings.DATABASES['default']; print(d['ENGINE'], d['NAME'])"
    result = manage("shell", "--no-imports", "-c", code, DATABASE_URL="postgres://vs:pw@db:5432/virtstorage")
    assert result.stdout.split()[-2:] == ["django.db.backends.postgresql", "virtstorage"], result.stderr


def test_the_middleware_chain_runs_in_one_thread_under_asgi():
    """Under ASGI, Django runs a middleware that can go either way in the mode of the one below it, starting
    from the innermost as asynchronous; a synchronous-only one innermost keeps the whole chain in one thread
    instead of a thread hop per middleware and per request."""
    from asgiref.sync import SyncToAsync
    from django.conf import settings
    from django.core.handlers.asgi import ASGIHandler
    from django.utils.module_loading import import_string

    classes = [import_string(path) for path in settings.MIDDLEWARE]
    assert all(getattr(cls, "sync_capable", True) for cls in classes)
    assert not getattr(classes[-1], "async_capable", False), f"{settings.MIDDLEWARE[-1]} runs asynchronously"
    handler = ASGIHandler()  # what the web server builds: the whole chain, synchronous, sent to one thread
    assert isinstance(handler._middleware_chain, SyncToAsync)


def test_a_path_list_setting_takes_absolute_paths_and_names_itself_when_refused():
    assert absolute_paths("X", "/srv/a/:/data//b,/mnt/c", ["/d"]) == ["/srv/a", "/data/b", "/mnt/c"]
    assert absolute_paths("X", " , ", ["/d"]) == ["/d"]
    with pytest.raises(ImproperlyConfigured, match="IMPORT_ROOTS takes absolute paths; not absolute: images"):
        absolute_paths("IMPORT_ROOTS", "/srv/a:images", [])
