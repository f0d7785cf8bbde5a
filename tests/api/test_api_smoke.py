"""A first look: lists answer, in pages, by token; a guessed id of another team's volume is a 404."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db(transaction=True)


def test_lists_answer_by_token(synced, api) -> None:
    pool, _scratch = synced
    for url in ["/api/hosts/", "/api/pools/", "/api/volumes/", "/api/jobs/", "/api/uploads/", "/api/requests/",
                "/api/teams/", "/api/vms/"]:
        response = api.get(url)
        assert response.status_code == 200, (url, response.content)
        assert set(response.json()) == {"count", "next", "previous", "results"}, url
    names = [v["name"] for v in api.get(f"/api/volumes/?pool={pool.pk}").json()["results"]]
    assert names == sorted(names) and "raw-thin.img" in names
