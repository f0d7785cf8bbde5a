"""The pool's history chart in Debian's chromium: the SVG is drawn with one point per display step, a screenshot
of it is not blank, and the range switch swaps the chart in place (htmx) with the week's points."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from tests.browser.browser import browser_page

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]
GiB = 1024**3


def test_pool_chart_renders_and_switches_range(asgi_server, admin_user, synced, monkeypatch, tmp_path):
    from history.charts import step_index
    from history.models import PoolSample

    pool, _scratch = synced
    now = timezone.now()
    times = [now - timedelta(minutes=m) for m in range(2, 12 * 60, 5)]  # 12 hours, every 5 minutes
    PoolSample.objects.bulk_create([
        PoolSample(pool=pool, at=at, capacity=pool.capacity, allocation=(a := GiB + i * 2**20), available=GiB,
                   virtual_total=2 * GiB, volume_count=5, allocation_max=a, virtual_total_max=2 * GiB,
                   available_min=GiB) for i, at in enumerate(times)])
    quarter_hours = len({step_index(at, timedelta(minutes=15)) for at in times + [pool.synced_at]})
    hours = len({step_index(at, timedelta(hours=1)) for at in times + [pool.synced_at]})

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # playwright's loop lives in this thread
    django_client = Client()
    django_client.force_login(admin_user)
    chart = f"#history-pool-{pool.pk}"
    with browser_page(asgi_server.url) as page:
        page.context.add_cookies([{"name": "sessionid", "value": django_client.cookies["sessionid"].value,
                                   "url": asgi_server.url}])
        page.goto(pool.get_absolute_url())
        svg = page.locator(f"{chart} svg.history-chart")
        svg.wait_for()
        drawn = f"{chart} polyline[data-series='allocation']"
        assert page.eval_on_selector(drawn, "el => el.points.numberOfItems") == quarter_hours
        assert page.eval_on_selector(f"{chart} svg", "el => el.getBBox().width") > 300
        shot = tmp_path / "pool-chart.png"
        svg.screenshot(path=str(shot))
        assert shot.stat().st_size > 2000  # lines and labels, not an empty box
        assert page.locator(f"{chart} details table tbody tr").count() == quarter_hours
        # The week: htmx swaps the chart alone and puts the range in the address bar.
        page.click(f"{chart} .history-ranges a:has-text('7 d')")
        page.wait_for_selector(f"{chart} a[aria-current='true']:has-text('7 d')")
        assert "range=7d" in page.url
        assert page.eval_on_selector(drawn, "el => el.points.numberOfItems") == hours
        assert page.locator("#pool-compare").count() == 1  # the rest of the page is still there
