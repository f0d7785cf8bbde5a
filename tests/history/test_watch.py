"""Forecasts kept by the periodic task: a pool filling within the horizon notifies the admins once, again only
after it left the horizon; the dashboard warns those who may see the pool."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client

from .conftest import NOW, GiB

pytestmark = pytest.mark.django_db(transaction=True)


def fill(pool, start, hours: int, free_at):
    from history.models import PoolSample

    PoolSample.objects.bulk_create([
        PoolSample(pool=pool, at=start + timedelta(minutes=10 * i), capacity=100 * GiB, allocation=0,
                   available=(a := int(free_at(i / 6))), virtual_total=0, volume_count=0, allocation_max=0,
                   virtual_total_max=0, available_min=a) for i in range(hours * 6)])


def test_notified_once_per_crossing_and_shown_on_the_dashboard(db_pool, settings):
    from django.contrib.auth import get_user_model

    from accounts.roles import ADMIN, grant
    from history.models import PoolForecast, PoolSample
    from history.watch import refresh_forecasts
    from notifications.models import Notification

    settings.FORECAST_HORIZON_DAYS = 14
    db_pool.reserve_bytes = 2 * GiB
    db_pool.save()
    ada = get_user_model().objects.create_user("ada", password="x")
    grant(ada, ADMIN)
    # 7 days losing 1 GiB a day from 22 GiB: 15 GiB free, 13 above the reserve, 13 days left.
    fill(db_pool, NOW - timedelta(days=7), 7 * 24, lambda h: 22 * GiB - GiB * h / 24)
    assert refresh_forecasts(NOW) == 1
    row = PoolForecast.objects.get(pool=db_pool)
    assert row.in_horizon and row.days == 13 and row.bytes_per_day == pytest.approx(-GiB, rel=1e-6)
    note = Notification.objects.get(user=ada)
    assert "p1" in note.text and "13 days" in note.text and note.url == db_pool.get_absolute_url()

    assert refresh_forecasts(NOW + timedelta(minutes=10)) == 0  # still inside: no second notice
    assert Notification.objects.filter(user=ada).count() == 1

    client = Client()
    client.force_login(ada)
    page = client.get("/").content.decode()
    assert 'id="filling-pools"' in page and "full in about 13 days" in page

    # Someone freed space: flat for the last week, out of the horizon, and the flag resets...
    PoolSample.objects.all().delete()
    fill(db_pool, NOW - timedelta(days=7), 7 * 24, lambda h: 40 * GiB)
    assert refresh_forecasts(NOW) == 0
    assert PoolForecast.objects.get(pool=db_pool).in_horizon is False
    assert 'id="filling-pools"' not in client.get("/").content.decode()
    # ...so filling again notifies again.
    PoolSample.objects.all().delete()
    fill(db_pool, NOW - timedelta(days=7), 7 * 24, lambda h: 22 * GiB - GiB * h / 24)
    assert refresh_forecasts(NOW) == 1
    assert Notification.objects.filter(user=ada).count() == 2


def test_the_warning_shows_only_visible_pools(db_pool, settings):
    from django.contrib.auth import get_user_model

    from accounts.models import Team
    from accounts.roles import MEMBER, grant
    from accounts.teams import join
    from history.watch import refresh_forecasts

    fill(db_pool, NOW - timedelta(days=7), 7 * 24, lambda h: 22 * GiB - GiB * h / 24)
    refresh_forecasts(NOW)
    outsider = get_user_model().objects.create_user("olga", password="x")
    grant(outsider, MEMBER)
    join(outsider, Team.objects.create(name="red"), "operator")
    client = Client()
    client.force_login(outsider)
    page = client.get("/").content.decode()
    # The pool by its link, not its two-letter name, which a random CSRF token can hold.
    assert 'id="filling-pools"' not in page and db_pool.get_absolute_url() not in page
