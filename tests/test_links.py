"""Every link a page shows leads where its reader may go: the pages a member, an operator and an admin reach from
the dashboard, followed link by link (in-process), answer no link with 403 or a server error."""

from __future__ import annotations

import re
import uuid
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest
from django.test import Client

from hosts.models import Domain, DomainDisk
from jobs.models import Job
from provisioning.models import ProvisioningRequest
from tests.provisioning.conftest import build_world

pytestmark = pytest.mark.django_db(transaction=True)

# Not pages: streams, files, the JSON API and Django's admin (its own links are Django's), and logging out.
NOT_PAGES = re.compile(r"logout|/download|export\.csv|/events/|^/api/|^/static/|^/admin/|/jsi18n/")
MAX_PAGES = 150
VARIANTS = 4  # of one page with other query strings (sorts, ranges, pages): enough to see their links


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.ids: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attrs = dict(attrs)
        href = attrs.get("href")
        if tag == "a" and href and not href.startswith(("#", "mailto:", "javascript:")):
            self.hrefs.append(href)
        if attrs.get("id"):
            self.ids.append(attrs["id"])


def _crawl(client: Client) -> tuple[int, list[str]]:
    """(pages read, problems: links that answered 403 or 5xx, each with the page that showed it, and pages that
    use an element id twice)."""
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
        twice = sorted({i for i in parser.ids if parser.ids.count(i) > 1})
        if twice:  # a label, an hx-target or a test would find the first one only
            bad.append(f"ids used twice on {path}: {', '.join(twice)}")
        for href in parser.hrefs:
            parts = urlsplit(urljoin(path, href))
            target = parts.path + (f"?{parts.query}" if parts.query else "")
            variants = sum(1 for page in seen if page.startswith(f"{parts.path}?"))
            if (not parts.netloc and not NOT_PAGES.search(target) and target not in seen
                    and (not parts.query or variants < VARIANTS)):
                queue.append((target, path))
    return len(seen), bad


def _things_to_see(world) -> None:
    """A VM of the team using a volume and a path outside the pools, a request and finished jobs: their pages and
    the links on them."""
    pool = world.pool
    vm = Domain.objects.create(host=pool.host, name="crawl-vm", uuid=str(uuid.uuid4()), state="shut off",
                               team=world.team)
    DomainDisk.objects.create(host=pool.host, machine=vm, domain=vm.name, target="vda", source_type="volume",
                              pool_name=pool.name, volume_name="raw-thin.img", device="disk", bus="virtio")
    DomainDisk.objects.create(host=pool.host, machine=vm, domain=vm.name, target="vdb", source_type="file",
                              path="/srv/elsewhere.img", device="disk", bus="virtio")
    ProvisioningRequest.objects.create(pool=pool, team=world.team, requested_by=world.rita, name="asked.qcow2",
                                       capacity=2**30, format="qcow2", purpose="crawl")
    for user in (world.rita, world.otto, world.ada):
        Job.objects.create(kind="create", host=pool.host, pool=pool, pool_name=pool.name, created_by=user,
                           volume_name="raw-thin.img", state=Job.State.SUCCEEDED, result="Created raw-thin.img")


@pytest.mark.parametrize("who", ["rita", "otto", "ada"])  # a member, an operator, an admin
def test_no_page_links_what_its_reader_may_not_open(synced, who):
    world = build_world(synced)
    _things_to_see(world)
    client = Client()
    client.force_login(getattr(world, who))
    pages, bad = _crawl(client)
    assert pages > 10, pages  # the crawl reached the pools and volumes
    assert bad == [], "\n".join(bad)
