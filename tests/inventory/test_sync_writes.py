"""What a full sync writes: the rows of the volumes that changed, came or went, and nothing for the others
(their pool records the listing); on a real libvirtd."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils.dateparse import parse_datetime

from inventory import sync as inventory_sync
from inventory.sync import sync_host, sync_volumes
from pools.models import StoragePool
from tests.api.conftest import token_client
from tests.conftest import virsh
from volumes.models import Volume

pytestmark = pytest.mark.django_db(transaction=True)

MiB = 1024**2
TABLE = '"volumes_volume"'


def rows(pool: StoragePool) -> dict[str, Volume]:
    return {v.name: v for v in Volume.objects.filter(pool=pool)}


def synced_writes(host, pool_name: str, **kwargs) -> tuple[object, list[str]]:
    """sync_host's result and the statements it ran that write the volumes table."""
    with CaptureQueriesContext(connection) as queries:
        result = sync_host(host, pool_names=[pool_name], **kwargs)
    verbs = ("INSERT INTO " + TABLE, "UPDATE " + TABLE, "DELETE FROM " + TABLE)
    return result, [q["sql"] for q in queries.captured_queries if q["sql"].startswith(verbs)]


def test_a_sync_with_nothing_changed_writes_no_volume_row(local_host, synced):
    pool, scratch = synced
    before = rows(pool)
    result, writes = synced_writes(local_host, scratch.name)
    assert result.volumes == 5 and result.removed_volumes == 0
    assert writes == []  # not even synced_at: that libvirt listed them all now is the pool's one field
    after = {v.name: v for v in Volume.objects.filter(pool=pool).select_related("pool")}
    local_host.refresh_from_db()
    assert after["base.qcow2"].pool.volumes_listed_at == local_host.last_synced_at
    for name, row in after.items():
        # "Synced" on a volume's page and in the API: the last time libvirt listed it
        assert row.synced_at == before[name].synced_at < row.listed_at == local_host.last_synced_at, name
        assert [getattr(row, f) for f in ("capacity", "allocation", "xml", "recorded_format", "inspected")] == [
            getattr(before[name], f) for f in ("capacity", "allocation", "xml", "recorded_format", "inspected")]


def test_a_volume_synced_alone_after_its_pool_shows_its_own_time(local_host, synced, member):
    """listed_at is the later of the row's write and the pool's last listing; the API's synced_at is it."""
    api = token_client(member)
    pool, scratch = synced
    sync_host(local_host, pool_names=[scratch.name])
    sync_volumes(local_host, [(scratch.name, "raw-thin.img")])
    pool.refresh_from_db()
    alone, other = (Volume.objects.select_related("pool").get(pool=pool, name=name)
                    for name in ("raw-thin.img", "base.qcow2"))
    assert alone.listed_at == alone.synced_at > pool.volumes_listed_at == other.listed_at > other.synced_at
    for volume in (alone, other):
        listed = api.get(f"/api/volumes/{volume.pk}/").json()["synced_at"]
        assert parse_datetime(listed) == volume.listed_at, volume.name
        listed = next(v["synced_at"] for v in api.get(f"/api/volumes/?pool={pool.pk}").json()["results"]
                      if v["id"] == volume.pk)
        assert parse_datetime(listed) == volume.listed_at, volume.name


def test_only_the_changed_new_and_deleted_volumes_are_written(local_host, synced, monkeypatch):
    pool, scratch = synced
    before = rows(pool)
    virsh("vol-resize", "--pool", scratch.name, "raw-thin.img", "128M")
    virsh("vol-delete", "--pool", scratch.name, "qcow2-thin.qcow2")
    scratch.create_volume("new.img", "8M")
    upserted: list[str] = []  # the rows handed to the upsert (PostgreSQL's SQL carries them as arrays)
    real_upsert = inventory_sync._upsert_volumes
    monkeypatch.setattr(inventory_sync, "_upsert_volumes",
                        lambda volume_rows: upserted.extend(r.name for r in volume_rows) or real_upsert(volume_rows))

    result, writes = synced_writes(local_host, scratch.name)

    assert (result.volumes, result.removed_volumes) == (5, 1)
    assert sum(sql.startswith("INSERT") for sql in writes) == 1
    assert sorted(upserted) == ["new.img", "raw-thin.img"]
    after = rows(pool)
    assert set(after) == set(before) - {"qcow2-thin.qcow2"} | {"new.img"}
    assert after["raw-thin.img"].capacity == 128 * MiB and "134217728" in after["raw-thin.img"].xml
    assert after["new.img"].capacity == 8 * MiB and after["new.img"].recorded_format == "raw"
    assert after["new.img"].inspected  # its image was checked
    for name in ("raw-prealloc.img", "base.qcow2", "overlay.qcow2"):
        assert after[name].pk == before[name].pk and after[name].xml == before[name].xml, name
    pool.refresh_from_db()
    assert pool.volume_count == 5 and pool.volume_capacity_total == sum(v.capacity for v in after.values())


def test_a_row_that_differs_from_libvirt_or_its_image_check_is_rewritten(local_host, synced):
    """The rows are compared with what libvirt and the image check say now, not with what the last sync said:
    a row changed by anyone else (a job's record_format, an edit) is made right again."""
    pool, scratch = synced
    right = rows(pool)["base.qcow2"]
    Volume.objects.filter(pk=right.pk).update(capacity=1, unsafe_reason="stale", inspected="")
    _, writes = synced_writes(local_host, scratch.name)
    assert sum(sql.startswith("INSERT") for sql in writes) == 1
    row = Volume.objects.get(pk=right.pk)
    assert (row.capacity, row.unsafe_reason, row.inspected) == (right.capacity, "", right.inspected)


def test_many_vanished_volumes_go_in_batches(local_host, scratch_pool):
    for i in range(1200):
        (scratch_pool.path / f"file-{i:04d}.img").write_bytes(b"")
    sync_host(local_host, refresh=True, pool_names=[scratch_pool.name])
    pool = StoragePool.objects.get(host=local_host, name=scratch_pool.name)
    assert pool.volume_count == 1200
    for i in range(1, 1200):  # all but the first
        (scratch_pool.path / f"file-{i:04d}.img").unlink()
    result, writes = synced_writes(local_host, scratch_pool.name, refresh=True)
    assert result.removed_volumes == 1199
    assert 0 < sum(sql.startswith("DELETE") for sql in writes) < 50  # in batches, never one per volume
    assert list(Volume.objects.filter(pool=pool).values_list("name", flat=True)) == ["file-0000.img"]
    pool.refresh_from_db()
    assert (pool.volume_count, pool.volume_capacity_total) == (1, 0)


def test_an_empty_pool_and_one_emptied(local_host, scratch_pool):
    result = sync_host(local_host, pool_names=[scratch_pool.name])
    assert (result.pools, result.volumes) == (1, 0)
    scratch_pool.create_volume("only.img", "4M")
    assert sync_host(local_host, pool_names=[scratch_pool.name]).volumes == 1
    virsh("vol-delete", "--pool", scratch_pool.name, "only.img")
    result = sync_host(local_host, pool_names=[scratch_pool.name])
    assert (result.volumes, result.removed_volumes) == (0, 1)
    pool = StoragePool.objects.get(host=local_host, name=scratch_pool.name)
    assert (pool.volume_count, pool.volume_capacity_total, pool.volumes.count()) == (0, 0, 0)


def planner_rows() -> int:
    """How many rows the database's query planner believes the volume table holds (its last ANALYZE); -1: none."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE relname = 'volumes_volume'")
        else:
            cursor.execute("SELECT stat FROM sqlite_stat1 WHERE tbl = 'volumes_volume' AND idx IS NOT NULL LIMIT 1")
        found = cursor.fetchone()
    return int(str(found[0]).split()[0]) if found and found[0] is not None else -1


def test_a_sync_that_writes_many_rows_has_the_planner_count_them(local_host, filled_pool, monkeypatch):
    """A first sync of a large pool writes its rows all at once; the database's statistics are refreshed right
    after (ANALYZE), not when autovacuum gets to them: without them PostgreSQL planned the backing picker's
    query by guesses (78 ms instead of 0.3 at 10,000 volumes)."""
    inventory_sync._analyze_volumes()  # the planner's view of the table now: empty
    assert Volume.objects.count() == 0 and planner_rows() in (0, -1)
    monkeypatch.setattr(inventory_sync, "ANALYZE_AFTER_ROWS", 6)
    sync_host(local_host, pool_names=[filled_pool.name])  # 5 rows: fewer than that
    assert Volume.objects.count() == 5 and planner_rows() in (0, -1)
    for i in range(3):
        filled_pool.create_volume(f"more-{i}.img", "1M", "raw")
    result = sync_host(local_host, pool_names=[filled_pool.name])
    assert result.written_volumes == 3 and planner_rows() in (0, -1)  # 3 new rows: still fewer than 6
    for i in range(3, 9):
        filled_pool.create_volume(f"more-{i}.img", "1M", "raw")
    result = sync_host(local_host, pool_names=[filled_pool.name])
    assert result.written_volumes == 6 and planner_rows() == Volume.objects.count() == 14
