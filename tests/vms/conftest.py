"""Fixtures of the VM tests: VMs on the real libvirtd (stopped or running) and a pool their qemu can open."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import ScratchPool
from tests.vms.machines import TestVM, defined_vm, qemu_pool


@pytest.fixture
def stopped_vm(tmp_path, local_host) -> Iterator[TestVM]:
    with defined_vm(tmp_path) as vm:
        yield vm


@pytest.fixture
def running_vm(tmp_path, local_host) -> Iterator[TestVM]:
    with defined_vm(tmp_path) as vm:
        yield vm.start()


@pytest.fixture
def live_pool(local_host) -> Iterator[tuple[object, ScratchPool]]:
    """A pool with two volumes that a running VM's qemu may open, in the inventory: (row, scratch pool)."""
    from inventory.sync import sync_host
    from pools.models import StoragePool

    with qemu_pool() as scratch:
        scratch.create_volume("live-a.img", "8M")
        scratch.create_volume("live-b.qcow2", "16M", "qcow2")
        assert sync_host(local_host, pool_names=[scratch.name]) is not None
        yield StoragePool.objects.get(host=local_host, name=scratch.name), scratch
