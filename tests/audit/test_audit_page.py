"""The audit page: admins only, filters, pages without a count, and the CSV export of exactly the filtered rows."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import httpx
import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from audit.export import COLUMNS
from audit.models import AuditRecord

pytestmark = pytest.mark.django_db(transaction=True)


def _rows(content: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(content.decode())))


@pytest.fixture
def admin_client_(client, admin_user) -> Client:
    client.force_login(admin_user)
    return client


@pytest.fixture
def log(admin_user, member) -> list[AuditRecord]:
    """300 records over 30 days: two users, several actions and targets, one team on some."""
    now = timezone.now()
    rows = []
    for i in range(300):
        user = admin_user if i % 3 == 0 else member
        action = ["pool.start", "pool.stop", "volume.create", "host.edit", "login"][i % 5]
        rows.append(AuditRecord(
            at=now - timedelta(days=29, hours=23) + timedelta(hours=2.4 * i), user=user, username=user.username,
            team="ops, lab" if i % 4 == 0 else "", action=action, target_type="pool", target_id=str(i % 7),
            target=f"pool p{i % 7} on kvm{i % 2}", outcome="ok" if i % 6 else "failed",
            client_ip=f"192.0.2.{i % 250}", detail={"i": i}))
    return AuditRecord.objects.bulk_create(rows)


def test_members_get_403_and_strangers_the_login_page(client, member, log):
    for name in ("audit:list", "audit:export"):
        assert client.get(reverse(name)).status_code == 302  # LoginRequiredMiddleware
    client.force_login(member)
    for name in ("audit:list", "audit:export"):
        assert client.get(reverse(name)).status_code == 403
    assert reverse("audit:list").encode() not in client.get(reverse("jobs:list")).content  # no link either


def test_admins_see_the_newest_first_with_a_link_in_the_nav(admin_client_, log):
    page = admin_client_.get(reverse("audit:list"))
    assert page.status_code == 200
    assert f'href="{reverse("audit:list")}"'.encode() in page.content
    newest = AuditRecord.objects.order_by("-at", "-id").first()
    assert newest.at.strftime("%Y-%m-%d %H:%M:%S") in page.content.decode()
    assert len(page.context["page"].records) == 50
    assert [r.pk for r in page.context["page"].records] == list(
        AuditRecord.objects.order_by("-at", "-id").values_list("pk", flat=True)[:50])


FILTERS = [
    ({"user": "mia"}, lambda qs: qs.filter(username="mia")),
    ({"action": "pool.start"}, lambda qs: qs.filter(action="pool.start")),
    ({"action": "pool."}, lambda qs: qs.filter(action__startswith="pool.")),
    ({"team": "LAB"}, lambda qs: qs.filter(team__icontains="lab")),
    ({"target_type": "pool", "target_id": "3"}, lambda qs: qs.filter(target_type="pool", target_id="3")),
    ({"target": "KVM1"}, lambda qs: qs.filter(target__icontains="kvm1")),
    ({"outcome": "failed", "user": "ada"}, lambda qs: qs.filter(outcome="failed", username="ada")),
]


@pytest.mark.parametrize("params,expected", FILTERS, ids=[str(p) for p, _ in FILTERS])
def test_each_filter_narrows_the_table_and_the_export_alike(admin_client_, log, params, expected):
    wanted = list(expected(AuditRecord.objects.all()).order_by("-at", "-id").values_list("pk", flat=True))
    assert wanted and len(wanted) < len(log)
    page = admin_client_.get(reverse("audit:list"), {**params, "per_page": 200})
    assert [r.pk for r in page.context["page"].records] == wanted[:200]
    export = admin_client_.get(reverse("audit:export"), params)
    assert export.status_code == 200 and export["Content-Type"].startswith("text/csv") and export.streaming
    rows = _rows(b"".join(export.streaming_content))
    assert [int(row["id"]) for row in rows] == wanted  # exactly the filtered rows, newest first
    assert list(rows[0]) == COLUMNS


def test_a_date_range_takes_whole_days_in_the_sites_time_zone(admin_client_, log):
    first = timezone.localdate(log[0].at)
    since, until = first + timedelta(days=3), first + timedelta(days=5)
    export = admin_client_.get(reverse("audit:export"), {"since": since.isoformat(), "until": until.isoformat()})
    rows = _rows(b"".join(export.streaming_content))
    expected = [r for r in log if since <= timezone.localdate(r.at) <= until]
    assert sorted(int(row["id"]) for row in rows) == sorted(r.pk for r in expected) and expected


def test_an_invalid_filter_exports_nothing(admin_client_, log):
    response = admin_client_.get(reverse("audit:export"), {"since": "not a date"})
    assert response.status_code == 400 and b"since" in response.content
    page = admin_client_.get(reverse("audit:list"), {"since": "not a date", "user": "mia"})
    assert page.status_code == 400 and page.context["page"].records == []


def test_the_export_has_every_field_and_defuses_formulas(admin_client_, admin_user):
    from audit.log import record

    made = record("volume.create", user=admin_user, target="=HYPERLINK(\"http://x\")", target_type="volume",
                  target_id="3/a.img", outcome="started", detail={"job": 7})
    rows = _rows(b"".join(admin_client_.get(reverse("audit:export"), {"action": "volume.create"}).streaming_content))
    assert rows == [{
        "id": str(made.pk), "at": made.at.isoformat(), "user": "ada", "team": "", "action": "volume.create",
        "target_type": "volume", "target_id": "3/a.img", "target": "'=HYPERLINK(\"http://x\")",
        "outcome": "started", "client_ip": "", "detail": '{"job": 7}'}]


def _walk(client, direction: str, start: dict) -> list[int]:
    seen, params = [], start
    while True:
        page = client.get(reverse("audit:list"), params).context["page"]
        seen += [r.pk for r in page.records]
        cursor = page.older if direction == "older" else page.newer
        if not cursor:
            return seen
        params = {"user": "mia", "per_page": 50, ("before" if direction == "older" else "after"): cursor}


def test_pages_walk_every_record_once_both_ways_without_a_count(admin_client_, log):
    wanted = list(AuditRecord.objects.filter(username="mia").order_by("-at", "-id").values_list("pk", flat=True))
    # Two records at the very same time: the id breaks the tie, none is skipped or shown twice.
    same = AuditRecord.objects.get(pk=wanted[49])
    twin = AuditRecord.objects.bulk_create([AuditRecord(at=same.at, username="mia", action="login")])[0]
    wanted = list(AuditRecord.objects.filter(username="mia").order_by("-at", "-id").values_list("pk", flat=True))
    assert twin.pk in wanted
    with CaptureQueriesContext(connection) as queries:
        older = _walk(admin_client_, "older", {"user": "mia", "per_page": 50})
    assert older == wanted
    assert not any("COUNT(" in q["sql"].upper() for q in queries.captured_queries if "audit_auditrecord" in q["sql"])
    last = admin_client_.get(reverse("audit:list"), {"user": "mia", "per_page": 50, "before": _cursor_of(wanted[-51])})
    newer = _walk(admin_client_, "newer", {"user": "mia", "per_page": 50, "after": _cursor_of(wanted[-50])})
    assert [r.pk for r in last.context["page"].records] == wanted[-50:]
    # Back at the top the newest page is shown whole (it may repeat a few records of the page before it).
    assert set(newer) == set(wanted[:-50])


def _cursor_of(pk: int) -> str:
    from audit.pages import cursor

    return cursor(AuditRecord.objects.get(pk=pk))


def test_queries_per_page_do_not_grow_with_the_page(admin_client_, log):
    counts = {}
    for size in (50, 200):
        with CaptureQueriesContext(connection) as queries:
            response = admin_client_.get(reverse("audit:list"), {"per_page": size, "action": "pool."})
        assert len(response.context["page"].records) == min(size, 120)
        counts[size] = len(queries)
        assert sum("audit_auditrecord" in q["sql"] for q in queries.captured_queries) == 1  # the page, no count
    assert counts[50] == counts[200], counts


def test_filter_links_in_the_table(admin_client_, log):
    content = admin_client_.get(reverse("audit:list"), {"action": "host.edit"}).content.decode()
    assert re.search(r'href="\?action=host.edit&amp;user=(mia|ada)"', content)
    assert "Export CSV" in content and 'href="/audit/export.csv?action=host.edit"' in content


def test_the_export_streams_through_the_asgi_server(asgi_server, admin_user, member, log):
    """Under ASGI the rows go out chunk by chunk from the request's thread (not read whole first)."""
    django_client = Client()
    django_client.force_login(admin_user)
    cookies = {"sessionid": django_client.cookies["sessionid"].value}
    wanted = list(AuditRecord.objects.filter(username="mia").order_by("-at", "-id").values_list("pk", flat=True))
    with httpx.stream("GET", f"{asgi_server.url}{reverse('audit:export')}", params={"user": "mia"},
                      cookies=cookies, timeout=30) as response:
        assert response.status_code == 200
        assert "content-length" not in response.headers  # streamed, not built and measured
        body = b"".join(response.iter_bytes())
    assert [int(row["id"]) for row in _rows(body)] == wanted
    member_client = Client()
    member_client.force_login(member)
    refused = httpx.get(f"{asgi_server.url}{reverse('audit:export')}", timeout=30,
                        cookies={"sessionid": member_client.cookies["sessionid"].value})
    assert refused.status_code == 403
