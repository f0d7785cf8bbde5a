"""Row locks take the rows they are for and no others (jobs/rows.py).

A pool's default ordering joins its host, and a plain FOR UPDATE then locked the host's row too. A sync holds
its host (FOR KEY SHARE) and then locks the pools it writes; a launch locked its pool and then waited for the
host: the load test on PostgreSQL ended three upload jobs with "deadlock detected". Here the sync's side holds
the host and pauses; each locker must go on at once (on SQLite, one writer at a time, it waits its turn), and
the sync's side then locks the pool without a deadlock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from hosts.models import Host
from inventory.tasks import sync_job
from jobs.rows import for_update, hold
from jobs.runner import launch
from pools.models import StoragePool
from provisioning import services
from provisioning.models import ProvisioningRequest
from tests.jobs.test_removal_races import WAIT, Side, assert_waits
from tests.provisioning.conftest import World, build_world

pytestmark = pytest.mark.django_db(transaction=True)


def holding_the_host_then_locking_the_pool(host: Host, pool: StoragePool, held: threading.Event,
                                           go: threading.Event) -> None:
    """What a sync's write transaction does (inventory/sync.py): hold the host, later lock its pools."""
    with transaction.atomic():
        Host.objects.get(pk=host.pk).hold()
        held.set()
        go.wait(WAIT)
        assert for_update(StoragePool.objects.filter(pk=pool.pk)).first() is not None


def _launch(world: World) -> Callable[[], object]:
    return lambda: launch(sync_job, kind="sync", user=world.ada, host=world.pool.host, pool=world.pool)


def _approve(world: World) -> Callable[[], object]:
    req = ProvisioningRequest.objects.create(team=world.team, pool=world.pool, requested_by=world.rita,
                                             name="locked.img", capacity=64 * 1024 * 1024)
    return lambda: services.review(req.pk, world.otto, approve=True, comment="fine")


@pytest.mark.parametrize("locker", [_launch, _approve], ids=["launch", "approval"])
def test_a_lock_on_a_pool_does_not_take_its_host_and_never_deadlocks_with_a_sync(synced, locker):
    world = build_world(synced)
    work = locker(world)
    held, go = threading.Event(), threading.Event()
    sync = Side(lambda: holding_the_host_then_locking_the_pool(world.pool.host, world.pool, held, go))
    sync.start()
    try:
        assert held.wait(WAIT), sync.error
        locking = Side(work)
        locking.start()
        if connection.vendor == "postgresql":
            locking.finished()  # went on while the host was held: it never asked for the host's row
        else:
            assert_waits(locking)  # SQLite: the sync's transaction is the one writer
    finally:
        go.set()
    sync.finished()
    locking.finished()
    assert sync.error is None, repr(sync.error)
    assert locking.error is None, repr(locking.error)
    assert locking.result, locking.result


def test_a_hold_and_a_lock_name_their_own_table_only(synced):
    """The statements themselves, on PostgreSQL: a hold (FOR KEY SHARE) joins nothing, a lock (FOR UPDATE) names
    its table (OF), though the pool's ordering and a select_related join its host."""
    world = build_world(synced)
    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        assert hold(StoragePool.objects.get(pk=world.pool.pk))
        assert for_update(StoragePool.objects.select_related("host").filter(pk=world.pool.pk)).first() is not None
    locks = [q["sql"] for q in queries if " FOR " in q["sql"]]
    if connection.vendor == "postgresql":
        held, locked = locks
        assert held.endswith("FOR KEY SHARE") and "JOIN" not in held, held
        assert "JOIN" in locked and locked.endswith('FOR UPDATE OF "pools_storagepool"'), locked
    else:
        assert locks == []  # SQLite: no row locks; its transactions here take the database's write lock
