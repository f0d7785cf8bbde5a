"""Downsampling on synthetic series: hourly and daily rows hold exactly the last sample, the peaks and the count
of the raw samples of their hour or day; running again changes nothing; each resolution expires on its own."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, timedelta

import pytest

from history.downsample import downsample, row_bound

from .conftest import NOW, raw_series

pytestmark = pytest.mark.django_db(transaction=True)
FIELDS = ["at", "capacity", "allocation", "available", "virtual_total", "volume_count", "samples",
          "allocation_max", "virtual_total_max", "available_min"]


def expected(rows, bucket) -> dict:
    """Per bucket, computed from the raw rows in Python and keyed by the last sample's time (the row's `at`)."""
    groups = defaultdict(list)
    for row in rows:
        groups[bucket(row.at)].append(row)
    out = {}
    for members in groups.values():
        last = max(members, key=lambda r: r.at)
        out[last.at] = {"at": last.at, "capacity": last.capacity, "allocation": last.allocation,
                        "available": last.available, "virtual_total": last.virtual_total,
                        "volume_count": last.volume_count, "samples": len(members),
                        "allocation_max": max(r.allocation for r in members),
                        "virtual_total_max": max(r.virtual_total for r in members),
                        "available_min": min(r.available for r in members)}
    return out


def stored(pool, resolution: str) -> dict:
    from history.models import PoolSample

    return {row["at"]: row for row in PoolSample.objects.filter(pool=pool, resolution=resolution).values(*FIELDS)}


def hour_of(at):
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def day_of(at):
    return hour_of(at).replace(hour=0)


def test_complete_hours_and_days_roll_up_exactly_and_raw_expires(db_pool):
    from history.models import PoolSample

    rows = raw_series(db_pool, NOW - timedelta(days=9), 9 * 1440)  # 12:30 nine days ago to 12:29 today
    report = downsample(NOW)
    hours = expected([r for r in rows if r.at < hour_of(NOW)], hour_of)
    days = expected([r for r in rows if r.at < day_of(NOW)], day_of)
    assert report.hours_made == len(hours) == 9 * 24 and report.days_made == len(days) == 9
    assert stored(db_pool, "hour") == hours  # every complete hour, its last sample, peaks and count
    assert stored(db_pool, "day") == days  # days made from the hours equal days made from the raw samples
    raw_left = PoolSample.objects.filter(pool=db_pool, resolution="raw")
    assert report.expired == len([r for r in rows if r.at < NOW - timedelta(days=7)]) > 0
    assert raw_left.count() == len(rows) - report.expired
    # Idempotent: a second run as of the same moment makes and removes nothing.
    again = downsample(NOW)
    assert (again.hours_made, again.days_made, again.expired) == (0, 0, 0)
    assert stored(db_pool, "hour") == hours and stored(db_pool, "day") == days
    # Ten minutes later the hour of 12:00 is still incomplete: nothing new either.
    assert downsample(NOW + timedelta(minutes=10)).hours_made == 0


def test_each_resolution_expires_on_its_own(db_pool, settings):
    settings.HISTORY_RAW_DAYS = 1
    settings.HISTORY_HOURLY_DAYS = 3
    settings.HISTORY_DAILY_DAYS = 5
    rows = raw_series(db_pool, NOW - timedelta(days=6), 6 * 1440)
    downsample(NOW)
    assert min(stored(db_pool, "raw")) >= NOW - timedelta(days=1)
    assert min(stored(db_pool, "hour")) >= NOW - timedelta(days=3)
    days = stored(db_pool, "day")
    assert sorted(day_of(at).day for at in days) == [5, 6, 7, 8, 9]  # the 4th's last sample is 5.5 days old
    # A day later: the 10th is complete (its hours of the first run and the one since), the 5th expires.
    later = downsample(NOW + timedelta(days=1))
    assert later.days_made == 1
    days = stored(db_pool, "day")
    assert sorted(day_of(at).day for at in days) == [6, 7, 8, 9, 10]
    tenth = expected([r for r in rows if day_of(r.at).day == 10], day_of)
    assert {at: row for at, row in days.items() if day_of(at).day == 10} == tenth
    assert next(iter(tenth.values()))["samples"] == 12 * 60 + 30


def test_team_samples_roll_up_too(db_pool):
    from accounts.models import Team
    from history.models import TeamSample

    team = Team.objects.create(name="blue")
    start = hour_of(NOW - timedelta(days=8))
    TeamSample.objects.bulk_create([
        TeamSample(team=team, pool=db_pool, at=start + timedelta(minutes=i), virtual_bytes=(i % 50) * 10**6,
                   virtual_bytes_max=(i % 50) * 10**6, volume_count=i % 4) for i in range(3 * 60)])
    downsample(NOW)
    hours = list(TeamSample.objects.filter(team=team, resolution="hour").order_by("at"))
    assert [h.samples for h in hours] == [60, 60, 60]
    assert [h.virtual_bytes_max for h in hours] == [49 * 10**6] * 3
    assert [(h.virtual_bytes, h.volume_count) for h in hours] == [(9 * 10**6, 3), (19 * 10**6, 3), (29 * 10**6, 3)]
    assert TeamSample.objects.get(team=team, resolution="day").samples == 180
    assert not TeamSample.objects.filter(resolution="raw").exists()  # older than 7 days


def test_the_row_bound_per_pool(settings):
    # Raw: 7 days at one sample per 48 s at most (the recorder's gap at a 60 s interval); 90 days of hours;
    # 730 days; each plus the bucket at the edge.
    assert row_bound(60) == (12600 + 1) + (2160 + 1) + (730 + 1) == 15493
    settings.HISTORY_DAILY_DAYS = 90
    assert row_bound(60) == 12601 + 2161 + 91
