"""The approval queue in pages: one ledger per page, so a page costs the same queries at 50 rows as at 200, and
what each row says it would do is what approving that request alone would check (provisioning/quota.py)."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from bench.approvals_bench import fill_queue

pytestmark = pytest.mark.django_db


@pytest.fixture
def queue():
    return fill_queue(260)


def _shown(page: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'<tr id="queue-(\d+)"', page)]


def test_a_page_costs_the_same_queries_at_any_size_and_pages_go_oldest_first(client, queue) -> None:
    from provisioning.models import ProvisioningRequest

    client.force_login(queue.admin)
    url = reverse("requests:queue")
    counts, pages = {}, {}
    for size in (50, 200):
        with CaptureQueriesContext(connection) as captured:
            response = client.get(url, {"per_page": size})
        counts[size], pages[size] = len(captured), response.content.decode()
    assert counts[50] == counts[200], counts
    oldest = list(ProvisioningRequest.objects.filter(state="pending").order_by("created_at", "pk")
                  .values_list("pk", flat=True))
    assert _shown(pages[50]) == oldest[:50] and _shown(pages[200]) == oldest[:200]
    assert "1–50 of 260" in pages[50]
    second = client.get(url, {"per_page": 200, "page": 2}).content.decode()
    assert _shown(second) == oldest[200:] and "201–260 of 260" in second


def test_filtered_pages_show_only_that_team_and_pool(client, queue) -> None:
    from provisioning.models import ProvisioningRequest

    client.force_login(queue.admin)
    team = queue.teams[3]
    page = client.get(reverse("requests:queue"), {"team": team.pk, "per_page": 200}).content.decode()
    theirs = list(ProvisioningRequest.objects.filter(state="pending", team=team).order_by("created_at", "pk")
                  .values_list("pk", flat=True))
    assert theirs and _shown(page) == theirs[:200]


def test_each_rows_impact_is_what_deciding_that_request_alone_would_check(queue) -> None:
    from provisioning import quota
    from provisioning.models import ProvisioningRequest

    page = list(ProvisioningRequest.objects.filter(state="pending").select_related("team", "pool", "backing")
                .order_by("created_at", "pk")[:120])
    batched = quota.impacts(page)
    alone = [quota.impact(req, quota.ledger_for(req)) for req in page]
    assert batched == alone
    # the fill has reservations, quotas and policies that bite: the page shows refusals and fits alike
    assert any(i.refusal for i in batched) and any(not i.refusal for i in batched)
    assert any("on the way (approved requests" in i.refusal for i in batched), {i.refusal for i in batched}


def test_a_rows_sentences_in_english_and_spanish_with_names_escaped(client, queue) -> None:
    """What a row says, written in Python (provisioning/queue_rows.py) with the template's msgids: sizes with their
    exact bytes on hover, the plural of the quota's count, the refusal; a name that looks like HTML stays text."""
    from django.utils import translation

    from provisioning import quota
    from provisioning.models import ProvisioningRequest
    from provisioning.queue_rows import QueueRow

    req = (ProvisioningRequest.objects.filter(state="pending").select_related("team", "pool__host", "requested_by")
           .order_by("created_at", "pk").first())
    impact = quota.impacts([req])[0]
    row = QueueRow(req, impact, own=False)
    assert str(row.pool_after).startswith("allocation <span class=\"size\" title=\"")
    assert f"{impact.quota_count_after} volume" in row.quota_count and row.filed.endswith(" ago")
    with translation.override("es"):
        assert str(row.pool_after).startswith("asignación <span class=\"size\"")
        assert row.filed.startswith("hace ") and ("volúmenes" in row.quota_count or "volumen " in row.quota_count)
    refused = next(r for r, i in zip(*_pending_with_impacts(), strict=True) if i.refusal)
    assert QueueRow(refused, quota.impacts([refused])[0], own=False).refusal.startswith("Would be refused now: ")

    req.requested_by.username = "<b>eve</b>"
    req.requested_by.save()
    client.force_login(queue.admin)
    page = client.get(reverse("requests:queue"), {"per_page": 200}).content.decode()
    assert "by &lt;b&gt;eve&lt;/b&gt;" in page and "<b>eve</b>" not in page
    assert 'allocation <span class="size" title="' in page


def _pending_with_impacts():
    from provisioning import quota
    from provisioning.models import ProvisioningRequest

    page = list(ProvisioningRequest.objects.filter(state="pending").select_related("team", "pool__host", "backing")
                .order_by("created_at", "pk")[:120])
    return page, quota.impacts(page)
