"""check_room (the create job's look at the pool's free space for a preallocated volume) on the real libvirtd: it
refuses a volume larger than the free space or the reserve allows, and still answers while libvirt builds another
volume in the pool (libvirt then refuses to rescan it: "pool has asynchronous jobs running")."""

from __future__ import annotations

import threading

import pytest

from tests.conftest import LIBVIRT_URI, cloning, virsh
from virtstorage.virt import open_host
from virtstorage.virt import volumes as ops


def _free(pool: str) -> int:
    return int(next(line for line in virsh("pool-info", "--bytes", pool).splitlines()
                    if line.startswith("Available:")).split()[1])


def test_it_refuses_a_preallocated_volume_past_the_free_space_or_into_the_reserve(scratch_pool) -> None:
    free = _free(scratch_pool.name)
    with open_host(LIBVIRT_URI) as host:
        with pytest.raises(ops.NotEnoughSpace, match=f"pool {scratch_pool.name} has .* free now"):
            ops.check_room(host, scratch_pool.name, free + 2**30)
        with pytest.raises(ops.NotEnoughSpace, match="keeps .* in reserve"):
            ops.check_room(host, scratch_pool.name, free - 2**20, reserve=2**30)
        ops.check_room(host, scratch_pool.name, free - 2**30, reserve=2**20)  # fits: no error


def test_a_refresh_waits_out_a_volume_libvirt_builds_and_wait_0_says_busy(scratch_pool) -> None:
    """What an upload's end, a convert and an import do (refresh_pool) waits for the clone instead of failing."""
    from virtstorage.virt.errors import PoolBusy

    done = threading.Event()
    thread = cloning(scratch_pool, done)
    busy = []
    with open_host(LIBVIRT_URI, shared=False) as host:
        thread.start()
        while not done.is_set() and not busy:
            try:
                host.refresh_pool(scratch_pool.name, wait=0)
            except PoolBusy as exc:
                busy.append(exc)
        if not done.is_set():
            host.refresh_pool(scratch_pool.name)  # waits until the clone is done, then rescans
            assert done.wait(1)
        thread.join()
    assert busy and "asynchronous jobs running" in str(busy[0])
    assert "copy.img" in virsh("vol-list", scratch_pool.name)


def test_it_answers_while_libvirt_builds_a_volume_in_the_pool(scratch_pool) -> None:
    answers, errors = [], []
    done = threading.Event()
    thread = cloning(scratch_pool, done)
    with open_host(LIBVIRT_URI, shared=False) as host:
        thread.start()
        while not done.is_set():
            try:
                ops.check_room(host, scratch_pool.name, 2**20)
                answers.append(True)
            except Exception as exc:  # noqa: BLE001 - any failure here is the bug
                errors.append(exc)
        thread.join()
    assert not errors, errors[:3]
    assert answers
