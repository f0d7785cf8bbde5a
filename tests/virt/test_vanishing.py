"""A host's listings on the real libvirtd survive an object that goes between the listing and its description:
another client (another worker, virsh, a second app) may undefine a pool, delete a volume or undefine a VM at any
moment, and one of them going must not fail the listing of all the others. Each test takes the listing first,
removes one object for real, then lets the app describe the stale listing."""

from __future__ import annotations

from collections.abc import Iterator

import libvirt
import pytest

from tests.conftest import LIBVIRT_URI, ScratchPool, make_scratch_pool, virsh
from tests.vms.machines import defined_vm
from virtstorage.virt import LibvirtHost, open_host
from virtstorage.virt import domains as vd


@pytest.fixture
def lv() -> Iterator[LibvirtHost]:
    with open_host(LIBVIRT_URI, shared=False) as host:
        yield host


@pytest.fixture
def doomed_pool(tmp_path) -> Iterator[ScratchPool]:
    """A second scratch pool, the one that goes (the scratch_pool fixture's cleanup does not know it)."""
    pool = make_scratch_pool(tmp_path)
    yield pool
    virsh("pool-destroy", pool.name, check=False)
    virsh("pool-undefine", pool.name, check=False)


def test_a_pool_undefined_after_the_listing_is_left_out(lv, scratch_pool, doomed_pool, monkeypatch):
    listed = lv.raw.listAllStoragePools()
    virsh("pool-destroy", doomed_pool.name)
    virsh("pool-undefine", doomed_pool.name)
    monkeypatch.setattr(lv.raw, "listAllStoragePools", lambda *flags: listed)
    names = {pool.name for pool in lv.pools()}
    assert scratch_pool.name in names and doomed_pool.name not in names


def test_a_volume_deleted_after_the_listing_is_left_out(lv, scratch_pool, monkeypatch):
    for name in ("stays.img", "goes.img"):
        scratch_pool.create_volume(name, "8M")
    listed = lv.raw_pool(scratch_pool.name).listAllVolumes(0)
    virsh("vol-delete", "--pool", scratch_pool.name, "goes.img")
    monkeypatch.setattr(libvirt.virStoragePool, "listAllVolumes", lambda self, flags=0: listed)
    assert [vol.name for vol in lv.volumes(scratch_pool.name)] == ["stays.img"]


def test_a_vm_undefined_after_the_listing_is_left_out(lv, tmp_path, monkeypatch):
    with defined_vm(tmp_path, "stays") as stays, defined_vm(tmp_path, "goes") as goes:
        real = lv.raw.listAllDomains
        listed = real(0)
        goes.remove()
        monkeypatch.setattr(lv.raw, "listAllDomains", lambda flags=0: listed if flags == 0 else real(flags))
        names = {vm.name for vm in vd.list_domains(lv)}
        assert stays.name in names and goes.name not in names
