"""Every link a page shows leads where its reader may go: the pages a member, an operator and an admin reach from
the dashboard, followed link by link (in-process), answer no link with 403 or a server error."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest
from django.test import Client

from tests.provisioning.conftest import build_world

pytestmark = pytest.mark.django_db(transaction=True)

# Not pages: streams, files, the JSON API and Django's admin (its own links are Django's), and logging out.
NOT_PAGES = re.compile(r"logout|/download|export\.csv|/events/|^/api/|^/static/|^/admin/|/jsi18n/")
MAX_PAGES = 150


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        href = dict(attrs).get("href")
        if tag == "a" and href and not href.startswith(("#", "mailto:", "javascript:")):
            self.hrefs.append(href)


def _crawl(client: Client) -> tuple[int, list[str]]:
    """(pages read, links that answered 403 or 5xx, each with the page that showed it)."""
    seen, queue, bad = set(), [("/", "")], []
    while queue and len(seen) < MAX_PAGES:
        path, shown_on = queue.pop(0)
        if path in seen:
            continue
        seen.add(path)
        response = client.get(path)
        if response.status_code == 403 or response.status_code >= 500:
            bad.append(f"{response.status_code} {path} (linked from {shown_on})")
        if response.status_code != 200 or "text/html" not in response.get("Content-Type", ""):
            continue
        parser = _Links()
        parser.feed(response.content.decode())
        for href in parser.hrefs:
            parts = urlsplit(urljoin(path, href))
            target = parts.path + (f"?{parts.query}" if parts.query else "")
            if not parts.netloc and not NOT_PAGES.search(target) and target not in seen:
                queue.append((target, path))
    return len(seen), bad


@pytest.mark.parametrize("who", ["rita", "otto", "ada"])  # a member, an operator, an admin
def test_no_page_links_what_its_reader_may_not_open(synced, who):
    world = build_world(synced)
    client = Client()
    client.force_login(getattr(world, who))
    pages, bad = _crawl(client)
    assert pages > 10, pages  # the crawl reached the pools and volumes
    assert bad == [], "\n".join(bad)
