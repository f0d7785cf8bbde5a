"""The charts on the pool, host and team pages: SVG with a title and a description, one point per display step
(the last sample in it), the same numbers in a table, and the range switch as a plain link (?range=)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from .conftest import GiB

pytestmark = pytest.mark.django_db(transaction=True)


def samples(pool, minutes: int, every: int = 1, allocation=lambda i: 10 * GiB + i * 1024**2):
    """Raw samples of the pool every `every` minutes over the last `minutes`, newest a minute ago; returns
    their times."""
    from history.models import PoolSample

    now = timezone.now()
    rows = []
    for i in range(0, minutes, every):
        a = allocation(i)
        rows.append(PoolSample(pool=pool, at=now - timedelta(minutes=minutes - i), capacity=100 * GiB, allocation=a,
                               available=100 * GiB - a, virtual_total=30 * GiB, volume_count=4, allocation_max=a,
                               virtual_total_max=30 * GiB, available_min=100 * GiB - a))
    PoolSample.objects.bulk_create(rows)
    return [row.at for row in rows]


def steps(times, minutes: int) -> int:
    """How many display steps (UTC-aligned) the times touch: the points a chart draws."""
    from history.charts import step_index

    return len({step_index(at, timedelta(minutes=minutes)) for at in times})


def points(html: str, series: str) -> int:
    match = re.search(rf'<(?:polyline|polygon)[^>]*points="([^"]*)" data-series="{series}" data-count="(\d+)"', html)
    assert match, f"no {series} series"
    assert len(match.group(1).split()) in (int(match.group(2)), 2 * int(match.group(2)))
    return int(match.group(2))


def admin_client():
    from django.contrib.auth import get_user_model

    from accounts.roles import ADMIN, grant

    user = get_user_model().objects.create_user("ada", password="x")
    grant(user, ADMIN)
    client = Client()
    client.force_login(user)
    return client


def test_pool_chart_over_each_range(db_pool):
    from decimal import Decimal

    db_pool.max_overcommit = Decimal("1.50")
    db_pool.save()
    times = samples(db_pool, 6 * 60)  # six hours, one a minute: 24 or 25 quarter hours
    client = admin_client()
    html = client.get(db_pool.get_absolute_url()).content.decode()
    section = html[html.index(f'id="history-pool-{db_pool.pk}"'):]
    assert "<title" in section and "<desc" in section and 'role="img"' in section
    shown = steps(times, 15)
    assert points(section, "allocation") == points(section, "virtual") == points(section, "capacity") == shown
    assert 'data-series="rule"' in section and "150 GiB" in section  # the policy limit
    assert section.count("<tr><td>") == steps(times, 15)  # the table of the same points
    assert 'href="?range=7d#history-pool-' in section and 'hx-select="#history-pool-' in section
    week = client.get(db_pool.get_absolute_url(), {"range": "7d"}).content.decode()
    assert points(week, "allocation") == steps(times, 60) in (6, 7)
    assert 'aria-current="true">7 d<' in week
    assert "Not enough" in html or "No forecast yet" in html


def test_host_chart_stacks_the_pools_the_user_may_see(db_pool):
    from pools.models import StoragePool

    other = StoragePool.objects.create(host=db_pool.host, name="p2", state="active", capacity=GiB)
    times = samples(db_pool, 60, every=15)
    samples(other, 60, every=15, allocation=lambda i: GiB // 2)
    html = admin_client().get(db_pool.host.get_absolute_url()).content.decode()
    section = html[html.index(f'id="history-host-{db_pool.host.pk}"'):]
    assert points(section, f"pool-{db_pool.pk}") == points(section, f"pool-{other.pk}") == steps(times, 15)
    assert "<polygon" in section and ">p1</th>" in section and ">p2</th>" in section


def test_team_chart_shows_usage_against_the_quota(db_pool):
    from accounts.models import Team
    from history.models import TeamSample
    from pools.models import PoolGrant

    team = Team.objects.create(name="blue")
    PoolGrant.objects.create(team=team, pool=db_pool, max_virtual_bytes=8 * GiB)
    now = timezone.now()
    rows = TeamSample.objects.bulk_create([
        TeamSample(team=team, pool=db_pool, at=now - timedelta(minutes=15 * i + 1), virtual_bytes=GiB * i,
                   virtual_bytes_max=GiB * i, volume_count=i) for i in range(8)])
    html = admin_client().get(f"/teams/{team.pk}/").content.decode()
    section = html[html.index(f'id="history-team-{team.pk}"'):]
    assert points(section, f"team-pool-{db_pool.pk}") == steps([r.at for r in rows], 15) in (8, 9)
    assert "Quota: <span" in section and "8.0 GiB" in section


def coordinates(html: str, series: str) -> list[tuple[float, float]]:
    match = re.search(rf'<(?:polyline|polygon)[^>]*points="([^"]*)" data-series="{series}"', html)
    assert match, f"no {series} series"
    return [(float(x), float(y)) for x, y in (point.split(",") for point in match.group(1).split())]


def test_a_single_sample_is_drawn_as_a_short_mark_not_as_nothing(db_pool):
    """A pool's first minutes have one sample: a polyline of one point, which SVG does not draw."""
    from history.svg import SINGLE_MARK
    from pools.models import StoragePool

    other = StoragePool.objects.create(host=db_pool.host, name="p2", state="active", capacity=GiB)
    samples(db_pool, 1)
    samples(other, 1, allocation=lambda i: GiB // 2)
    client = admin_client()
    html = client.get(db_pool.get_absolute_url()).content.decode()
    for series in ("allocation", "virtual", "capacity"):
        (x1, y1), (x2, y2) = coordinates(html, series)
        assert y1 == y2 and x2 - x1 == SINGLE_MARK, series
    host = client.get(db_pool.host.get_absolute_url()).content.decode()
    band = coordinates(host, f"pool-{other.pk}")  # a stacked band: its top forward, the band below's back
    assert len(band) == 4 and band[1][0] - band[0][0] == SINGLE_MARK and band[0][1] < band[3][1]


def test_the_y_axis_writes_sizes_with_the_readers_decimal_separator(db_pool):
    from django.utils import translation

    samples(db_pool, 60)  # the pool's 100 GiB: the axis' top 108 GiB, its ticks 27 GiB apart
    client = admin_client()
    with translation.override("es"):
        html = client.get(db_pool.get_absolute_url(), headers={"Accept-Language": "es"}).content.decode()
    ticks = re.findall(r'dominant-baseline="middle">([^<]*)</text>', html)
    assert ticks == ["0 bytes", "27,0 GiB", "54,0 GiB", "81,0 GiB", "108 GiB"], ticks
