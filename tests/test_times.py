"""How long ago, as the pages write it (virtstorage/templatetags/times.py, a builtin of the templates)."""

from __future__ import annotations

from datetime import timedelta

from django.template import Context, Template
from django.utils import timezone, translation

from virtstorage.templatetags.times import since

AGO = Template("{% load i18n %}{% blocktranslate with since=at|since %}synced {{ since }} ago{% endblocktranslate %}")


def ago(at, language: str = "en") -> str:
    with translation.override(language):
        return AGO.render(Context({"at": at}))


def test_under_a_minute_is_said_so_not_zero_minutes():
    now = timezone.now()
    assert ago(now) == "synced under a minute ago"
    assert ago(now - timedelta(seconds=59)) == "synced under a minute ago"
    assert ago(now + timedelta(seconds=5)) == "synced under a minute ago"  # clocks apart: not "0 minutes"
    assert ago(now - timedelta(seconds=61)) == "synced 1\xa0minute ago"
    assert ago(now - timedelta(hours=2, minutes=5)) == "synced 2\xa0hours, 5\xa0minutes ago"
    assert since(None) == ""  # the templates test for a value first and say "never"


def test_under_a_minute_in_spanish():
    now = timezone.now()
    assert ago(now, "es") == "sincronizado hace menos de un minuto"
    assert ago(now - timedelta(minutes=3), "es") == "sincronizado hace 3\xa0minutos"


def test_a_jobs_times_are_the_readers_short_date_and_time_with_the_exact_moment_on_hover():
    """One way to write a moment on the pages (the audit log, a log, keeps its sortable seconds): the locale's
    short date and time, the exact moment (ISO 8601) on hover."""
    from datetime import datetime
    from types import SimpleNamespace

    from django.template.loader import render_to_string

    at = timezone.make_aware(datetime(2026, 3, 4, 17, 5, 9))
    job = SimpleNamespace(created_at=at, started_at=at, finished_at=None, host=None, pool=None, pool_name="",
                          volume_name="", created_by=None, worker="", log="")
    with translation.override("es"):
        html = render_to_string("jobs/_job_facts.html", {"job": job})
    assert f'title="{at.isoformat()}">04/03/2026 17:05</dd>' in html, html
    assert "<dd>—</dd>" in html  # not finished
    with translation.override("en"):
        assert "03/04/2026 5:05 p.m." in render_to_string("jobs/_job_facts.html", {"job": job})
