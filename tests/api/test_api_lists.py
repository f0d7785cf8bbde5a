"""Lists: pages of a bounded size, filters by host, pool, team, state and name, ordering; bad parameters are
a 400 in the API's error shape, never ignored."""

from __future__ import annotations

import pytest

from accounts.models import Team
from pools.models import PoolGrant

pytestmark = pytest.mark.django_db(transaction=True)


def test_pages_filters_and_ordering(synced, api) -> None:
    pool, _scratch = synced
    url = f"/api/volumes/?pool={pool.pk}"
    first = api.get(url + "&page_size=2&ordering=-capacity").json()
    assert first["count"] == 5 and len(first["results"]) == 2 and first["next"]
    sizes = [v["capacity"] for v in api.get(url + "&ordering=-capacity").json()["results"]]
    assert sizes == sorted(sizes, reverse=True)
    assert [v["name"] for v in api.get(url + "&search=overlay").json()["results"]] == ["overlay.qcow2"]
    assert {v["format"] for v in api.get(url + "&format=qcow2").json()["results"]} == {"qcow2"}
    assert api.get(f"/api/volumes/?host={pool.host_id}").json()["count"] == 5
    assert api.get(f"/api/pools/?host={pool.host_id}&state=active").json()["count"] == 1
    team = Team.objects.create(name="granted")
    assert api.get(f"/api/pools/?team={team.pk}").json()["count"] == 0
    PoolGrant.objects.create(team=team, pool=pool)
    assert api.get(f"/api/pools/?team={team.pk}").json()["count"] == 1
    assert api.get(f"/api/volumes/?team={team.pk}").json()["count"] == 5


@pytest.mark.parametrize("query, field", [
    ("page_size=0", "page_size"), ("page_size=501", "page_size"), ("page_size=x", "page_size"),
    ("ordering=path", "ordering"), ("ordering=", "ordering"), ("pool=", "pool"), ("pool=99999999999999999999", "pool"),
    ("unsafe=maybe", "unsafe"),
])
def test_bad_parameters_are_refused(synced, api, query, field) -> None:
    response = api.get(f"/api/volumes/?{query}")
    assert response.status_code == 400 and response.json()["code"] == "invalid"
    assert field in response.json()["errors"]


def test_an_unknown_api_address_is_a_json_404(api) -> None:
    for url in ["/api/volumes/abc/", "/api/nothing/", "/api/volumes/99999999999999999999/"]:
        response = api.get(url)
        assert response.status_code == 404 and response.json()["code"] == "not_found", url


def test_the_audit_log_pages_by_cursor_for_admins(synced, admin_api, api) -> None:
    from audit.log import record

    for i in range(5):
        record("volume.check", target=f"v{i}")
    page = admin_api.get("/api/audit/?page_size=2&action=volume.check").json()
    assert [r["target"] for r in page["results"]] == ["v4", "v3"] and "cursor=" in page["next"]
    assert "count" not in page  # no COUNT over the log
    assert api.get("/api/audit/").status_code == 403
