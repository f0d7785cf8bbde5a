"""Recording a sample of each pool the sync stored (hosts.signals.pools_synced, sent by inventory/sync.py).

Samples come at the sync interval: beat syncs every host every INVENTORY_SYNC_SECONDS, and a job's own sync of
a pool in between is skipped when the pool's last sample is younger than MIN_GAP of that interval. That keeps
the raw rows of a pool under RAW_DAYS / (MIN_GAP x interval) however many jobs run (history/retention.py).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import OuterRef, Subquery

from pools.models import StoragePool

from . import teams
from .models import PoolSample, Resolution, TeamSample

log = logging.getLogger(__name__)

MIN_GAP = 0.8  # of the sync interval


def min_gap() -> timedelta:
    return timedelta(seconds=settings.INVENTORY_SYNC_SECONDS * MIN_GAP)


def record_synced_pools(sender, *, host, at: datetime, **_) -> None:
    """The receiver: history never fails a sync, so an error here is logged and rolled back on its own."""
    try:
        with transaction.atomic():
            record(StoragePool.objects.filter(host=host, synced_at=at), at)
    except DatabaseError:
        log.exception("history: could not record the pools of host %s", host)


def record(pools, at: datetime) -> int:
    """A raw sample of each pool (a queryset of StoragePool) not sampled within min_gap(); returns how many."""
    last_raw = PoolSample.objects.filter(pool=OuterRef("pk"), resolution=Resolution.RAW).order_by("-at")
    rows = pools.annotate(last_sampled=Subquery(last_raw.values("at")[:1])).values(
        "pk", "capacity", "allocation", "available", "volume_capacity_total", "volume_count", "last_sampled")
    due = [row for row in rows if row["last_sampled"] is None or at - row["last_sampled"] >= min_gap()]
    PoolSample.objects.bulk_create([
        PoolSample(pool_id=row["pk"], at=at, capacity=row["capacity"], allocation=row["allocation"],
                   available=row["available"], virtual_total=row["volume_capacity_total"],
                   volume_count=row["volume_count"], allocation_max=row["allocation"],
                   virtual_total_max=row["volume_capacity_total"], available_min=row["available"])
        for row in due])
    usage = teams.usage_in(row["pk"] for row in due) if due else {}
    TeamSample.objects.bulk_create([
        TeamSample(team_id=team_id, pool_id=pool_id, at=at, volume_count=count, virtual_bytes=virtual,
                   virtual_bytes_max=virtual)
        for (team_id, pool_id), (count, virtual) in usage.items()])
    return len(due)
