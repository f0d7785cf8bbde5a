"""Rolling raw samples into hourly rows and hourly into daily rows, and expiring each resolution.

Every complete UTC hour (day) gets its hourly (daily) row as soon as it is complete; the finer rows stay until
their own retention (HISTORY_RAW_DAYS, HISTORY_HOURLY_DAYS; daily rows HISTORY_DAILY_DAYS), so a chart of a week
reads hourly rows, one of 90 days daily rows. A roll-up is one INSERT ... SELECT over the buckets between its
mark (RollupMark: how far the last run got) and the last complete bucket, and moves the mark, in one
transaction: running again does nothing new (idempotent), and never reads rows already rolled. What a rolled-up
row keeps, and why it stays exact, is in history/models.py: the bucket's last sample (and its time), the peaks,
and the count of raw samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max, Min, Model, Sum
from django.db.models.functions import Trunc

from .models import PoolSample, Resolution, RollupMark, TeamSample

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Spec:
    """How one sample model rolls up: the series key, the columns taken from the last row, the peaks."""

    name: str
    model: type[Model]
    keys: tuple[str, ...]
    last: tuple[str, ...]
    maxima: tuple[str, ...]
    minima: tuple[str, ...] = ()


POOL = Spec("pool", PoolSample, ("pool_id",), ("capacity", "allocation", "available", "virtual_total", "volume_count"),
            ("allocation_max", "virtual_total_max"), ("available_min",))
TEAM = Spec("team", TeamSample, ("team_id", "pool_id"), ("virtual_bytes", "volume_count"), ("virtual_bytes_max",))
SPECS = (POOL, TEAM)


def _floor(moment: datetime, kind: str) -> datetime:
    moment = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0) if kind == "day" else moment


def roll_up(spec: Spec, fine: str, coarse: str, cutoff: datetime) -> int:
    """One `coarse` row per series and bucket for the `fine` rows from the mark to cutoff (a bucket boundary);
    returns the rows made."""
    with transaction.atomic():
        mark, _ = RollupMark.objects.select_for_update().get_or_create(
            series=spec.name, resolution=coarse, defaults={"done_until": EPOCH})
        if mark.done_until >= cutoff:
            return 0
        rows = spec.model.objects.filter(resolution=fine, at__gte=mark.done_until, at__lt=cutoff)
        grouped = rows.annotate(bucket=Trunc("at", coarse, tzinfo=UTC)).values(*spec.keys, "bucket").annotate(
            g_last_at=Max("at"), g_samples=Sum("samples"),
            **{f"g_{name}": Max(name) for name in spec.maxima}, **{f"g_{name}": Min(name) for name in spec.minima})
        select_sql, params = grouped.query.sql_with_params()
        q = connection.ops.quote_name
        table = q(spec.model._meta.db_table)
        peaks = spec.maxima + spec.minima
        columns = [*spec.keys, "resolution", "at", *spec.last, *peaks, "samples"]
        join = " AND ".join(f"s.{q(key)} = g.{q(key)}" for key in spec.keys)
        sql = (f"INSERT INTO {table} ({', '.join(q(c) for c in columns)}) "
               f"SELECT {', '.join('g.' + q(k) for k in spec.keys)}, %s, g.{q('g_last_at')}, "
               f"{', '.join('s.' + q(c) for c in spec.last)}, {', '.join('g.' + q('g_' + c) for c in peaks)}, "
               f"g.{q('g_samples')} FROM ({select_sql}) g JOIN {table} s ON {join} "
               f"AND s.{q('resolution')} = %s AND s.{q('at')} = g.{q('g_last_at')}")
        with connection.cursor() as cursor:
            cursor.execute(sql, [coarse, *params, fine])
            made = cursor.rowcount
        mark.done_until = cutoff
        mark.save(update_fields=["done_until"])
    return made


@dataclass
class Report:
    hours_made: int = 0
    days_made: int = 0
    expired: int = 0


def downsample(now: datetime) -> Report:
    """Every roll-up and expiry for every sample model, as of now."""
    report = Report()
    keep = {Resolution.RAW: settings.HISTORY_RAW_DAYS, Resolution.HOUR: settings.HISTORY_HOURLY_DAYS,
            Resolution.DAY: settings.HISTORY_DAILY_DAYS}
    for spec in SPECS:
        report.hours_made += roll_up(spec, Resolution.RAW, Resolution.HOUR, _floor(now, "hour"))
        report.days_made += roll_up(spec, Resolution.HOUR, Resolution.DAY, _floor(now, "day"))
        for resolution, days in keep.items():
            removed, _ = spec.model.objects.filter(resolution=resolution, at__lt=now - timedelta(days=days)).delete()
            report.expired += removed
    return report


def row_bound(sync_seconds: float, *, min_gap: float = 0.8) -> int:
    """The most rows one series (a pool, or a team's grant) can hold with the retention settings.

    Raw: HISTORY_RAW_DAYS at one sample per min_gap x the sync interval at most (the recorder's gap). Hourly: one
    a hour for HISTORY_HOURLY_DAYS, daily one a day for HISTORY_DAILY_DAYS; each plus one for the bucket at the
    edge. The task's interval does not add: expiry runs with every roll-up.
    """
    raw = math.ceil(settings.HISTORY_RAW_DAYS * 86400 / (min_gap * sync_seconds)) + 1
    hourly = math.ceil(settings.HISTORY_HOURLY_DAYS * 24) + 1
    daily = math.ceil(settings.HISTORY_DAILY_DAYS) + 1
    return raw + hourly + daily
