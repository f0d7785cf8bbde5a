"""check_room (the create job's look at the pool's free space) on the real libvirtd: it refuses a preallocated
volume larger than the free space, passes a thin one, and still answers while libvirt builds another volume in
the pool (libvirt then refuses to rescan it: "pool has asynchronous jobs running")."""

from __future__ import annotations

import threading

import pytest

from tests.conftest import LIBVIRT_URI, virsh
from virtstorage.virt import open_host
from virtstorage.virt import volumes as ops


def _free(pool: str) -> int:
    return int(next(line for line in virsh("pool-info", "--bytes", pool).splitlines()
                    if line.startswith("Available:")).split()[1])


def test_it_refuses_a_preallocated_volume_past_the_free_space_and_passes_a_thin_one(scratch_pool) -> None:
    free = _free(scratch_pool.name)
    with open_host(LIBVIRT_URI) as host:
        with pytest.raises(ops.NotEnoughSpace, match=f"pool {scratch_pool.name} has .* free now"):
            ops.check_room(host, scratch_pool.name, free + 2**30, preallocation="full")
        with pytest.raises(ops.NotEnoughSpace, match="keeps .* in reserve"):
            ops.check_room(host, scratch_pool.name, free - 2**20, preallocation="full", reserve=2**30)
        assert ops.check_room(host, scratch_pool.name, free * 10, preallocation="off") > 0


def _cloning(scratch_pool, done: threading.Event) -> threading.Thread:
    """A thread that clones a 768 MiB volume of data in the pool (libvirt builds the copy for a while)."""
    scratch_pool.create_volume("source.img", "768M", "raw", prealloc=True)
    with open(scratch_pool.path / "source.img", "r+b") as f:
        for _ in range(96):
            f.write(b"\x5a" * 8 * 2**20)

    def clone() -> None:
        try:
            virsh("vol-clone", "--pool", scratch_pool.name, "source.img", "copy.img")
        finally:
            done.set()

    return threading.Thread(target=clone)


def test_a_refresh_waits_out_a_volume_libvirt_builds_and_wait_0_says_busy(scratch_pool) -> None:
    """What an upload's end, a convert and an import do (refresh_pool) waits for the clone instead of failing."""
    from virtstorage.virt.errors import PoolBusy

    done = threading.Event()
    thread = _cloning(scratch_pool, done)
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
    thread = _cloning(scratch_pool, done)
    with open_host(LIBVIRT_URI, shared=False) as host:
        thread.start()
        while not done.is_set():
            try:
                answers.append(ops.check_room(host, scratch_pool.name, 2**20, preallocation="full"))
            except Exception as exc:  # noqa: BLE001 - any failure here is the bug
                errors.append(exc)
        thread.join()
    assert not errors, errors[:3]
    assert answers and all(a > 0 for a in answers)
