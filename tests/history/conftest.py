"""Pools in the database only (no libvirt) and synthetic sample series for the history tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

GiB = 1024**3
NOW = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)


@pytest.fixture
def db_pool(transactional_db):
    from hosts.models import Host
    from pools.models import StoragePool

    host = Host.objects.create(name="h1", uri="test:///default")
    return StoragePool.objects.create(host=host, name="p1", state="active", capacity=100 * GiB,
                                      allocation=10 * GiB, available=90 * GiB)


def value_at(i: int) -> dict:
    """A deterministic, wiggly series: sample i's numbers (not monotonic, so last, max and min all differ)."""
    wiggle = (i * 7919) % 13
    return {"capacity": 100 * GiB + (i // 500) * GiB, "allocation": 10 * GiB + i * 1000 + wiggle * 10**6,
            "available": 90 * GiB - i * 1000 - wiggle * 10**6, "virtual_total": 20 * GiB + (i % 97) * 10**6,
            "volume_count": 3 + i % 5}


def raw_series(pool, start: datetime, count: int, step: timedelta = timedelta(minutes=1)) -> list:
    """count raw samples of pool every step from start, inserted in one bulk statement; returns the rows."""
    from history.models import PoolSample

    rows = []
    for i in range(count):
        v = value_at(i)
        rows.append(PoolSample(pool=pool, at=start + i * step, allocation_max=v["allocation"],
                               virtual_total_max=v["virtual_total"], available_min=v["available"], **v))
    PoolSample.objects.bulk_create(rows, batch_size=2000)
    return rows
