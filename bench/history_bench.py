"""Storage history at scale: 200 pools x 90 days of samples at the 60 s sync interval on SQLite.

Each simulated day inserts every pool's raw samples (bulk SQL, 288,000 rows) and runs the downsampler as of that
day's end, as beat does (rolled up, retention applied); then: the rows kept against the stated bound
(history.downsample.row_bound per pool), the cost of one downsample run and of refreshing the 200 forecasts, and
the pool page with its chart (p50/p95 over 200 requests at 24 h, fewer at 7 d and 90 d). Writes
bench/results/history.json. Not a test. BENCH_HISTORY_POOLS and BENCH_HISTORY_DAYS shrink it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from bench.common import page_timings, setup_django

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
POOLS = int(os.environ.get("BENCH_HISTORY_POOLS", "200"))
DAYS = int(os.environ.get("BENCH_HISTORY_DAYS", "90"))
STEP = timedelta(seconds=60)
GiB = 1024**3
COLUMNS = ("pool_id", "at", "resolution", "capacity", "allocation", "available", "virtual_total", "volume_count",
           "allocation_max", "virtual_total_max", "available_min", "samples")


def make_pools():
    from hosts.models import Host
    from pools.models import StoragePool

    hosts = [Host.objects.create(name=f"kvm{n}", uri=f"qemu+ssh://kvm{n}/system") for n in range(10)]
    return StoragePool.objects.bulk_create([
        StoragePool(host=hosts[n % 10], name=f"pool{n:03d}", state="active", capacity=1024 * GiB,
                    allocation=100 * GiB, available=924 * GiB, max_overcommit=2) for n in range(POOLS)])


def day_rows(pool_ids: list[int], start, minutes_from: int, adapt) -> list[tuple]:
    """A day of raw samples of every pool: allocation grows by the pool's own rate (0 to 9 GiB a day)."""
    rows = []
    for minute in range(minutes_from, minutes_from + 1440):
        at = adapt(start + minute * STEP)
        for pool_id in pool_ids:
            allocation = 100 * GiB + (pool_id % 10) * GiB * minute // 1440 + (minute * 7919 % 13) * 2**20
            virtual = 200 * GiB + (pool_id % 7) * GiB * minute // 1440
            rows.append((pool_id, at, "raw", 1024 * GiB, allocation, 1024 * GiB - allocation, virtual,
                         10 + minute // 1440, allocation, virtual, 1024 * GiB - allocation, 1))
    return rows


def fill(pool_ids: list[int], now) -> float:
    from django.db import connection, transaction

    from history.downsample import downsample

    table = "history_poolsample"
    sql = f"INSERT INTO {table} ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * len(COLUMNS))})"
    start = now - timedelta(days=DAYS)
    began = time.perf_counter()
    for day in range(DAYS):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.executemany(sql, day_rows(pool_ids, start, day * 1440, connection.ops.adapt_datetimefield_value))
        downsample(start + timedelta(days=day + 1))
        if day % 10 == 9:
            print(f"  day {day + 1}: {time.perf_counter() - began:.0f} s", flush=True)
    return time.perf_counter() - began


def main() -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="vs-bench-history-", dir=ROOT / "var"))
    try:
        setup_django(workdir / "bench.sqlite3")
        from django.conf import settings
        from django.contrib.auth import get_user_model
        from django.db import connection
        from django.test import Client
        from django.utils import timezone

        from accounts.roles import ADMIN, grant
        from history.downsample import downsample, row_bound
        from history.models import PoolSample
        from history.recorder import MIN_GAP
        from history.watch import refresh_forecasts

        now = timezone.now()
        pools = make_pools()
        fill_s = fill([p.pk for p in pools], now)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        rows = PoolSample.objects.count()
        per_pool = row_bound(settings.INVENTORY_SYNC_SECONDS, min_gap=MIN_GAP)
        print(f"filled {DAYS} days of {POOLS} pools in {fill_s:.0f} s: {rows:,} rows kept; "
              f"bound {per_pool:,} a pool = {per_pool * POOLS:,}", flush=True)
        began = time.perf_counter()
        downsample(now + timedelta(hours=1))  # a steady-state run: one more hour to roll up
        downsample_s = time.perf_counter() - began
        began = time.perf_counter()
        refresh_forecasts(now)
        forecast_s = time.perf_counter() - began
        print(f"one downsample run {downsample_s * 1000:.0f} ms; 200 forecasts {forecast_s:.2f} s", flush=True)

        admin = get_user_model().objects.create_user("bench-admin", password="bench-password-1")
        grant(admin, ADMIN)
        client = Client(HTTP_HOST="localhost")
        client.force_login(admin)
        pool = pools[POOLS // 2]
        pages = {}
        for span, repeat in (("24h", 200), ("7d", 50), ("90d", 50)):
            pages[span] = found = page_timings(client, pool.get_absolute_url(), {"range": span}, repeat,
                                               row=b"<tr><td>")
            print(f"pool page, {span:>3}: p50 {found['p50_ms']:6.1f} ms  p95 {found['p95_ms']:6.1f} ms  "
                  f"{found['rows']} table rows, {found['queries_50']} queries", flush=True)
        results = {"pools": POOLS, "days": DAYS, "fill_s": round(fill_s), "rows": rows,
                   "bound_per_pool": per_pool, "bound": per_pool * POOLS, "downsample_ms": round(downsample_s * 1000),
                   "forecasts_s": round(forecast_s, 2), "pages": pages}
        connection.close()
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "history.json").write_text(json.dumps(results, indent=2) + "\n")
        return results
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
