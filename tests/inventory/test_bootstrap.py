"""`manage.py bootstrap`'s demo pool, on the real libvirtd: where `make run` puts it and that running it again
reuses it."""

from __future__ import annotations

import os
import secrets
import stat
import subprocess
from pathlib import Path
from xml.etree import ElementTree

from tests.conftest import TEST_POOL_PREFIX, run_manage, virsh

IMAGES = "/var/lib/libvirt/images"


def bootstrap(var: Path, pool_name: str) -> subprocess.CompletedProcess:
    """bootstrap as `make run` runs it, on a database and var/ of its own, the demo pool named pool_name."""
    result = run_manage("bootstrap", var=var, DEMO_POOL_NAME=pool_name)
    assert "warning" not in result.stderr, result.stdout + result.stderr
    return result


def test_the_demo_pool_is_in_libvirts_images_directory_where_a_vm_can_reach_it(tmp_path):
    """Not in var/: that is private to the app's account (QEMU runs as another user), and a checkout in /root
    (root's home, a system tree) had no demo pool at all. An older version's demo pool, in the var/pools of a
    checkout since removed, is forgotten and defined again here."""
    name = f"{TEST_POOL_PREFIX}{os.getpid()}-demo-{secrets.token_hex(3)}"
    directory = Path(IMAGES, name)
    gone = tmp_path / "old-checkout" / "var" / "pools" / name
    virsh("pool-define-as", name, "dir", "--target", str(gone))
    try:
        first = bootstrap(tmp_path / "var", name)
        assert f"Forgot demo pool {name}: its directory {gone} is gone" in first.stdout, first.stdout
        assert f"Defined and started demo pool {name} at {directory}" in first.stdout, first.stdout
        target = ElementTree.fromstring(virsh("pool-dumpxml", name)).findtext("target/path")
        assert target == str(directory)
        info = dict(line.split(":", 1) for line in virsh("pool-info", name).splitlines() if ":" in line)
        assert info["State"].strip() == "running" and info["Autostart"].strip() == "yes", info
        mode = stat.S_IMODE(directory.stat().st_mode)
        assert mode & stat.S_IXOTH, f"{directory} is {mode:o}: QEMU's user could not reach a volume in it"
        assert not (tmp_path / "var" / "pools" / name).exists()

        virsh("pool-destroy", name)  # stopped (its data kept): the next run starts it again, defining nothing
        again = bootstrap(tmp_path / "var", name)
        assert "Defined" not in again.stdout, again.stdout
        assert "running" in virsh("pool-info", name)
        assert virsh("pool-list", "--all", "--name").split().count(name) == 1
    finally:
        virsh("pool-destroy", name, check=False)
        virsh("pool-delete", name, check=False)
        virsh("pool-undefine", name, check=False)
    assert not directory.exists()

