"""The sync records a sample of each pool it stores (through hosts.signals.pools_synced), at most one per sync
interval, with what counts against each granted team's quota beside it."""

from __future__ import annotations

from datetime import timedelta

import pytest

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_real_sync_records_the_pool_and_its_teams(synced, settings):
    from accounts.models import Team
    from history.models import PoolSample, TeamSample
    from inventory.sync import sync_host
    from pools.models import PoolGrant
    from provisioning.models import ProvisioningRequest
    from volumes.models import Volume

    pool, scratch = synced
    sample = PoolSample.objects.get(pool=pool)
    assert sample.resolution == "raw" and sample.at == pool.synced_at and sample.samples == 1
    assert (sample.capacity, sample.allocation, sample.available) == (pool.capacity, pool.allocation, pool.available)
    assert sample.virtual_total == pool.volume_capacity_total > 0 and sample.volume_count == pool.volume_count == 5
    assert sample.allocation_max == sample.allocation and sample.available_min == sample.available

    # A sync right after (a job's own) is within the interval: no second sample.
    assert sync_host(pool.host, pool_names=[scratch.name]) is not None
    assert PoolSample.objects.filter(pool=pool).count() == 1

    # A granted team: its ready request's volume and an approved request's reservation count, as for its quota.
    team = Team.objects.create(name="blue")
    PoolGrant.objects.create(team=team, pool=pool, max_virtual_bytes=10 * 1024**3)
    made = Volume.objects.get(pool=pool, name="raw-thin.img")
    Volume.objects.filter(pk=made.pk).update(team=team)  # as its request's create job records it
    for name, state, volume, capacity in (("raw-thin.img", "ready", made, made.capacity),
                                          ("coming.img", "approved", None, 5 * 1024**2)):
        ProvisioningRequest.objects.create(team=team, pool=pool, name=name, capacity=capacity, format="raw",
                                           preallocation="off", purpose="t", state=state, volume=volume,
                                           requested_by=_user())
    scratch.create_volume("new.img", "8M")
    settings.INVENTORY_SYNC_SECONDS = 0  # every sync is due now
    assert sync_host(pool.host, pool_names=[scratch.name]) is not None
    pool.refresh_from_db()
    latest = PoolSample.objects.filter(pool=pool).latest("at")
    assert latest.at == pool.synced_at and latest.volume_count == 6
    team_sample = TeamSample.objects.get(team=team, pool=pool)
    assert team_sample.at == latest.at
    assert (team_sample.volume_count, team_sample.virtual_bytes) == (2, made.capacity + 5 * 1024**2)


def test_recording_never_fails_the_sync(synced, settings, monkeypatch):
    """A broken history (here: its table gone from under it) is logged; the sync still stores the pools."""
    from django.db import connection

    from history.models import PoolSample
    from inventory.sync import sync_host

    pool, scratch = synced
    settings.INVENTORY_SYNC_SECONDS = 0
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {PoolSample._meta.db_table} RENAME TO history_gone")
    try:
        before = pool.synced_at
        assert sync_host(pool.host, pool_names=[scratch.name]) is not None
        pool.refresh_from_db()
        assert pool.synced_at > before
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE history_gone RENAME TO {PoolSample._meta.db_table}")
    assert PoolSample.objects.filter(pool=pool, at__gt=before - timedelta(seconds=1)).count() == 1


def _user():
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get_or_create(username="rita")[0]
