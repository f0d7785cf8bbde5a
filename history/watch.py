"""Keeping each pool's forecast (history/forecast.py) current, and telling admins once when a pool will fill.

The periodic task calls refresh_forecasts: per pool, the raw samples of the last FORECAST_BASIS, free space
less the pool's reserve (today's reserve for every sample: it shifts the line, never its slope), summed by the
database for all pools at once. A pool entering
the horizon (FORECAST_HORIZON_DAYS) notifies the admins and sets PoolForecast.in_horizon; leaving it clears the
flag, so the next crossing notifies again.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Count, FloatField, Max, Min, Q, Sum
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast
from django.utils.translation import gettext as _

from accounts.roles import ADMIN
from notifications.send import notify
from pools.models import StoragePool

from .forecast import FORECAST_BASIS, Forecast, Sums, forecast_from, within
from .models import PoolForecast, PoolSample, Resolution


def _seconds_since(reference: datetime) -> RawSQL:
    """Seconds from reference to the row's time, in the database (SQLite and PostgreSQL, the two supported)."""
    if connection.vendor == "sqlite":
        return RawSQL("(julianday(at) - julianday(%s)) * 86400.0", [reference.astimezone(UTC).replace(tzinfo=None)
                                                                     .isoformat(" ")], output_field=FloatField())
    return RawSQL("EXTRACT(EPOCH FROM (at - %s))", [reference], output_field=FloatField())


def basis_sums(now: datetime) -> dict[int, Sums]:
    """Each pool's least-squares sums over its raw samples of the last FORECAST_BASIS, added up by the database
    in one query (200 pools x 10,080 samples stay there), with each pool's latest free space."""
    x, y = _seconds_since(now), Cast("available", FloatField())
    rows = (PoolSample.objects.filter(resolution=Resolution.RAW, at__gte=now - FORECAST_BASIS, at__lte=now)
            .values("pool_id").annotate(n=Count("pk"), sx=Sum(x), sy=Sum(y), sxy=Sum(x * y), sxx=Sum(x * x),
                                        first=Min("at"), last=Max("at")))
    latest = dict(PoolSample.objects.filter(resolution=Resolution.RAW, at__lte=now).values("pool_id")
                  .annotate(last=Max("at")).values_list("pool_id", "last"))
    free = {pool_id: available for pool_id, at, available in PoolSample.objects.filter(
        resolution=Resolution.RAW, at__in=set(latest.values())).values_list("pool_id", "at", "available")
        if latest.get(pool_id) == at}
    return {row["pool_id"]: Sums(row["n"], row["sx"], row["sy"], row["sxy"], row["sxx"], row["first"], row["last"],
                                 free.get(row["pool_id"], 0)) for row in rows}


def pool_forecast(pool: StoragePool, sums: Sums | None) -> Forecast:
    return forecast_from(sums.less(pool.reserve_bytes)) if sums is not None else forecast_from(Sums.of([]))


def admins():
    return get_user_model().objects.filter(Q(is_superuser=True) | Q(groups__name=ADMIN), is_active=True).distinct()


def refresh_forecasts(now: datetime) -> int:
    """Recompute every pool's forecast; returns how many pools were newly found to fill within the horizon."""
    horizon = settings.FORECAST_HORIZON_DAYS
    known = {row.pool_id: row for row in PoolForecast.objects.all()}
    sums = basis_sums(now)
    entered = []
    for pool in StoragePool.objects.select_related("host").only("pk", "name", "reserve_bytes", "host__name"):
        result = pool_forecast(pool, sums.get(pool.pk))
        row = known.get(pool.pk) or PoolForecast(pool=pool)
        row.computed_at, row.days_left, row.bytes_per_day = now, result.days_left, result.bytes_per_day
        row.basis_from, row.basis_to, row.basis_samples = result.basis_from, result.basis_to, result.samples
        inside = within(result.days_left, horizon)
        if inside and not row.in_horizon:
            entered.append((pool, result))
        row.in_horizon = inside
        row.save()
    recipients = list(admins()) if entered else []
    for pool, result in entered:
        words = {"pool": pool.name, "host": pool.host.name, "days": round(result.days_left)}
        notify(recipients, lambda words=words: _("Pool %(pool)s on %(host)s will be full in about %(days)s days at "
                                                 "the last 7 days' trend.") % words,
               url=pool.get_absolute_url())
    return len(entered)
