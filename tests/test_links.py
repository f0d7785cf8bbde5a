"""Every link a page shows leads where its reader may go: the pages a member, an operator and an admin reach from
the dashboard, followed link by link (in-process, tests/crawl.py), answer no link with 403 or a server error, and
no page uses an element id twice."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.crawl import crawl, things_to_see
from tests.provisioning.conftest import build_world

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("who", ["rita", "otto", "ada"])  # a member, an operator, an admin
def test_no_page_links_what_its_reader_may_not_open(synced, who):
    world = build_world(synced)
    things_to_see(world)
    client = Client()
    client.force_login(getattr(world, who))

    def fetch(path: str) -> tuple[int, str, str]:
        response = client.get(path)
        return response.status_code, response.get("Content-Type", ""), response.content.decode()

    pages, bad = crawl(fetch, max_pages=150, variants=4)
    assert pages > 10, pages  # the crawl reached the pools and volumes
    assert bad == [], "\n".join(bad)
