"""A host, pool or volume removed while rows are written under it, each side in a thread with its own database
connection: whichever comes second waits for the first, then sees what it did. The writer pauses inside its
transaction so that, without the locks, the remover's cascade would miss its uncommitted rows (on PostgreSQL
the foreign key is checked at commit: the removal, or the writer, then failed with an IntegrityError naming
no cause)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from django.db import connection, transaction
from django.http import HttpResponse
from django.urls import reverse

from hosts import operations
from hosts.models import Host, HostRemoved
from hosts.signals import pools_synced
from hosts.status import store_domains
from inventory.sync import sync_host, sync_volumes
from inventory.tasks import sync_job
from jobs.models import Job
from jobs.runner import JobConflict, launch
from pools.models import StoragePool
from provisioning.models import ProvisioningRequest
from tests.conftest import virsh
from tests.provisioning.conftest import World, build_world
from volumes.models import Upload, Volume

pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 30  # seconds a paused side waits for the test at most


class Side(threading.Thread):
    """work() in a thread with its own connection; what it returned or raised is kept for the test."""

    def __init__(self, work: Callable[[], object]) -> None:
        super().__init__(daemon=True)
        self.work, self.result, self.error = work, None, None

    def run(self) -> None:
        try:
            self.result = self.work()
        except BaseException as exc:  # the test reads it
            self.error = exc
        finally:
            connection.close()

    def finished(self) -> object:
        self.join(WAIT)
        assert not self.is_alive(), "a side never finished: a lock is held for good"
        return self.result


@contextmanager
def paused_in_sync_store() -> Iterator[tuple[threading.Event, threading.Event]]:
    """(stored, go): a sync's write transaction sets stored once its rows are written, then waits for go before
    it commits (pools_synced is sent inside that transaction)."""
    stored, go = threading.Event(), threading.Event()

    def pause(**_) -> None:
        stored.set()
        go.wait(WAIT)

    pools_synced.connect(pause, weak=False)
    try:
        yield stored, go
    finally:
        go.set()
        pools_synced.disconnect(pause)


def paused_removal(host: Host, removed: threading.Event, go: threading.Event) -> None:
    with transaction.atomic():
        operations.forget(host)
        removed.set()
        go.wait(WAIT)


def assert_waits(side: Side) -> None:
    side.join(1.0)
    assert side.is_alive(), f"went on while the other side's transaction was open: {side.error!r}"


def test_a_host_removed_while_its_first_sync_writes_takes_the_new_pools_with_it(local_host, scratch_pool):
    assert not StoragePool.objects.filter(host=local_host).exists()  # the sync inserts the host's first pools
    with paused_in_sync_store() as (stored, go):
        sync = Side(lambda: sync_host(local_host, pool_names=[scratch_pool.name]))
        sync.start()
        assert stored.wait(WAIT), sync.error
        removal = Side(lambda: operations.forget(Host.objects.get(pk=local_host.pk)))
        removal.start()
        assert_waits(removal)
        go.set()
        sync.finished()
        removal.finished()
    # The pools were stored and committed, then went with the host; the sync's next step, its VMs, found the
    # host gone (were it quicker than the removal, it would have stored them, and they went too).
    assert sync.error is None or isinstance(sync.error, HostRemoved), repr(sync.error)
    assert removal.error is None, removal.error
    assert not Host.objects.filter(pk=local_host.pk).exists()
    assert not StoragePool.objects.filter(host_id=local_host.pk).exists()


@pytest.mark.parametrize("what", ["pools", "volumes", "vms"])
def test_a_sync_after_its_host_was_removed_stores_nothing_and_says_why(local_host, scratch_pool, what):
    scratch_pool.create_volume("late.img", "1M", "raw")
    write = {"pools": lambda: sync_host(local_host, pool_names=[scratch_pool.name]),
             "volumes": lambda: sync_volumes(local_host, [(scratch_pool.name, "late.img")]),
             "vms": lambda: store_domains(local_host, [])}[what]
    removed, go = threading.Event(), threading.Event()
    removal = Side(lambda: paused_removal(Host.objects.get(pk=local_host.pk), removed, go))
    removal.start()
    try:
        assert removed.wait(WAIT), removal.error
        sync = Side(write)
        sync.start()
        assert_waits(sync)
    finally:
        go.set()
    removal.finished()
    sync.finished()
    assert removal.error is None, removal.error
    assert isinstance(sync.error, HostRemoved), repr(sync.error)
    assert str(sync.error) == "local was removed from the app meanwhile; nothing of it was stored."
    assert not StoragePool.objects.filter(host_id=local_host.pk).exists()


def test_a_launch_after_its_host_was_removed_is_refused_with_the_reason(local_host, admin_user):
    removed, go = threading.Event(), threading.Event()
    removal = Side(lambda: paused_removal(Host.objects.get(pk=local_host.pk), removed, go))
    removal.start()
    try:
        assert removed.wait(WAIT), removal.error
        launching = Side(lambda: launch(sync_job, kind="sync", user=admin_user, host=local_host))
        launching.start()
        assert_waits(launching)
    finally:
        go.set()
    removal.finished()
    launching.finished()
    assert isinstance(launching.error, JobConflict), repr(launching.error)
    assert str(launching.error) == "local was removed from the app meanwhile."
    assert not Job.objects.filter(kind="sync", state__in=["queued", "running"]).exists()


def test_a_launch_on_a_pool_a_sync_is_removing_is_refused_with_the_reason(local_host, scratch_pool, admin_user):
    sync_host(local_host, pool_names=[scratch_pool.name])
    pool = StoragePool.objects.get(host=local_host, name=scratch_pool.name)
    virsh("pool-destroy", scratch_pool.name)
    virsh("pool-undefine", scratch_pool.name)
    with paused_in_sync_store() as (stored, go):
        sync = Side(lambda: sync_host(local_host))  # the whole host: the pool libvirt no longer has goes
        sync.start()
        assert stored.wait(WAIT), sync.error
        launching = Side(lambda: launch(sync_job, kind="sync", user=admin_user, host=local_host, pool=pool))
        launching.start()
        assert_waits(launching)
        go.set()
        assert sync.finished().removed_pools == 1 and sync.error is None
        launching.finished()
    assert isinstance(launching.error, JobConflict), repr(launching.error)
    assert str(launching.error) == (f"Pool {scratch_pool.name} was removed from the inventory meanwhile: libvirt no "
                                    "longer has it, or its host was removed.")
    assert not StoragePool.objects.filter(pk=pool.pk).exists()


@pytest.fixture
def world(synced) -> World:
    """A synced pool, a team granted it, a member of the team (rita) and an admin (ada)."""
    return build_world(synced)


# Each returns the POST to make, its client logged in now: on SQLite the login's write would otherwise wait for
# the sync, and the page would then find the pool gone before it wrote anything.
def _file_request(world) -> Callable[[], HttpResponse]:
    data = {"team": world.team.pk, "name": "late.qcow2", "capacity": "64M", "format": "qcow2",
            "provisioning": "off", "backing": "", "purpose": "a disk filed as its pool goes"}
    rita = world.client(world.rita)
    return lambda: rita.post(reverse("requests:new", args=[world.pool.pk]), data)


def _grant(world) -> Callable[[], HttpResponse]:
    ada = world.client(world.ada)
    return lambda: ada.post(reverse("teams:grant_set", args=[world.team.pk]),
                                        {"pool": world.pool.pk, "max_size": "10G", "max_volumes": ""})


def _open_upload(world) -> Callable[[], HttpResponse]:
    rita = world.client(world.rita)
    return lambda: rita.post(reverse("volumes:upload_create"), content_type="application/json",
                                         data={"pool": world.pool.pk, "volume": "late.img", "mode": "new",
                                               "size": 1024**2})


@pytest.mark.parametrize(("write", "status"), [(_file_request, 404), (_grant, 404), (_open_upload, 409)])
def test_a_row_written_under_a_pool_a_sync_is_removing_is_refused_with_the_reason(world, write, status):
    post = write(world)
    virsh("pool-destroy", world.scratch.name)
    virsh("pool-undefine", world.scratch.name)
    with paused_in_sync_store() as (stored, go):
        sync = Side(lambda: sync_host(world.pool.host))
        sync.start()
        assert stored.wait(WAIT), sync.error
        writing = Side(post)
        writing.start()
        assert_waits(writing)
        go.set()
        assert sync.finished().removed_pools == 1 and sync.error is None
        response = writing.finished()
    assert writing.error is None, repr(writing.error)
    assert response.status_code == status
    said = f"Pool {world.scratch.name} was removed from the inventory meanwhile"
    assert said in response.content.decode(), response.content.decode()[-2000:]
    assert not StoragePool.objects.filter(pk=world.pool.pk).exists()
    assert not ProvisioningRequest.objects.exists() and not Upload.objects.exists()


def test_a_request_on_a_backing_volume_a_sync_is_removing_is_refused_with_the_reason(world):
    base = Volume.objects.get(pool=world.pool, name="base.qcow2")
    virsh("vol-delete", "--pool", world.scratch.name, "base.qcow2")
    data = {"team": world.team.pk, "name": "late-overlay.qcow2", "capacity": "128M", "format": "qcow2",
            "provisioning": "off", "backing": str(base.pk), "purpose": "an overlay filed as its base goes"}
    rita = world.client(world.rita)
    with paused_in_sync_store() as (stored, go):
        sync = Side(lambda: sync_volumes(world.pool.host, [(world.scratch.name, "base.qcow2")]))
        sync.start()
        assert stored.wait(WAIT), sync.error
        filing = Side(lambda: rita.post(reverse("requests:new", args=[world.pool.pk]), data))
        filing.start()
        assert_waits(filing)
        go.set()
        assert sync.finished().removed == [f"{world.scratch.name}/base.qcow2"] and sync.error is None
        response = filing.finished()
    assert filing.error is None, repr(filing.error)
    assert response.status_code == 404
    assert "Volume base.qcow2 was removed from the inventory meanwhile" in response.content.decode()
    assert not Volume.objects.filter(pk=base.pk).exists() and not ProvisioningRequest.objects.exists()
