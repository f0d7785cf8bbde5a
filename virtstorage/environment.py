"""How settings are read from the environment; virtstorage/settings.py says which, and what each one means."""

from __future__ import annotations

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from django.core.management.utils import get_random_secret_key


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def secret_key(var_dir: Path) -> str:
    """SECRET_KEY from the environment, else one generated once and kept in var_dir."""
    if key := os.environ.get("SECRET_KEY"):
        return key
    path = var_dir / "secret_key"
    if not path.exists():
        var_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(get_random_secret_key())
        path.chmod(0o600)
    return path.read_text().strip()


def absolute_paths(name: str, text: str, default: list[str]) -> list[str]:
    """The setting `name`'s absolute paths, separated by os.pathsep (:) or commas, normalized; default when it
    names none. A relative path is refused (ImproperlyConfigured): it would depend on where a process starts."""
    paths = [item.strip() for item in text.replace(",", os.pathsep).split(os.pathsep) if item.strip()]
    if relative := [path for path in paths if not path.startswith("/")]:
        raise ImproperlyConfigured(f"{name} takes absolute paths; not absolute: {', '.join(relative)}")
    return [os.path.normpath(path) for path in paths] or list(default)
