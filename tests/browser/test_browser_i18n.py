"""Spanish and English in Debian's chromium: the header's switch changes the page and the choice stays after a
reload and in a new browser; the pool's chart is drawn, with its labels, in both languages."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from tests.browser.browser import browser_page, log_in

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]
GiB = 1024**3


def test_language_switch_changes_the_page_and_stays(asgi_server, django_user_model, monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # playwright's loop lives in this thread
    from accounts.roles import MEMBER, grant

    grant(django_user_model.objects.create_user("marta", password="correct-horse-battery"), MEMBER)
    with browser_page(asgi_server.url, locale="en-US") as page:
        log_in(page, "marta", "correct-horse-battery")
        page.goto("/jobs/")
        assert page.get_attribute("html", "lang") == "en"
        assert page.locator("header nav a", has_text="Jobs").count() == 1
        page.select_option("#language-switch", "es")  # app.js submits the form on change
        page.wait_for_selector("html[lang='es']")
        assert page.url.endswith("/jobs/")
        assert page.locator("header nav a", has_text="Tareas").count() == 1
        page.reload()
        assert page.get_attribute("html", "lang") == "es"
        assert page.locator("header nav a", has_text="Tareas").count() == 1
    with browser_page(asgi_server.url, locale="en-US") as page:  # another browser, an English one
        log_in(page, "marta", "correct-horse-battery")
        page.goto("/jobs/")
        assert page.get_attribute("html", "lang") == "es"


@pytest.mark.parametrize(("locale", "language", "legend"),
                         [("en-US", "en", "Allocation"), ("es-ES", "es", "Asignación")])
def test_pool_chart_in_both_languages(asgi_server, admin_user, synced, monkeypatch, tmp_path, locale, language,
                                      legend):
    from history.charts import step_index
    from history.models import PoolSample

    pool, _scratch = synced
    now = timezone.now()
    times = [now - timedelta(minutes=m) for m in range(2, 6 * 60, 10)]
    PoolSample.objects.bulk_create([
        PoolSample(pool=pool, at=at, capacity=pool.capacity, allocation=(a := GiB + i * 2**20), available=GiB,
                   virtual_total=2 * GiB, volume_count=5, allocation_max=a, virtual_total_max=2 * GiB,
                   available_min=GiB) for i, at in enumerate(times)])
    points = len({step_index(at, timedelta(minutes=15)) for at in times + [pool.synced_at]})
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    django_client = Client()
    django_client.force_login(admin_user)
    chart = f"#history-pool-{pool.pk}"
    with browser_page(asgi_server.url, locale=locale) as page:
        page.context.add_cookies([{"name": "sessionid", "value": django_client.cookies["sessionid"].value,
                                   "url": asgi_server.url}])
        page.goto(pool.get_absolute_url())
        assert page.get_attribute("html", "lang") == language
        svg = page.locator(f"{chart} svg.history-chart")
        svg.wait_for()
        drawn = f"{chart} polyline[data-series='allocation']"
        assert page.eval_on_selector(drawn, "el => el.points.numberOfItems") == points
        assert page.locator(f"{chart} .legend", has_text=legend).count() >= 1
        shot = tmp_path / f"pool-chart-{language}.png"
        svg.screenshot(path=str(shot))
        assert shot.stat().st_size > 2000  # lines and labels, not an empty box
