"""Following a site's links from the dashboard, page by page: tests/test_links.py (in-process, as each kind of user)
and tests/browser/test_browser_pages.py (in chromium) share it."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

from hosts.models import Domain, DomainDisk
from jobs.models import Job
from provisioning.models import ProvisioningRequest

# Not pages: streams, files, the JSON API and Django's admin (its own links are Django's), and logging out.
NOT_PAGES = re.compile(r"logout|/download|export\.csv|/events/|^/api/|^/static/|^/admin/|/jsi18n/")


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.ids: list[str] = []
        self.referred: set[str] = set()  # ids that an attribute names: a label's for, an input's list, an hx-target

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attrs = dict(attrs)
        href = attrs.get("href")
        if tag == "a" and href and not href.startswith(("#", "mailto:", "javascript:")):
            self.hrefs.append(href)
        if attrs.get("id"):
            self.ids.append(attrs["id"])
        for name in ("for", "list", "form", "aria-describedby", "aria-labelledby", "aria-controls"):
            self.referred.update((attrs.get(name) or "").split())
        for name in ("hx-target", "hx-include", "hx-indicator"):
            if (attrs.get(name) or "").startswith("#"):
                self.referred.add(attrs[name][1:])


# A page as a crawl reads it: (status, content type, HTML).
Fetch = Callable[[str], tuple[int, str, str]]


def crawl(fetch: Fetch, *, max_pages: int, variants: int) -> tuple[int, list[str]]:
    """(pages read, problems: links that answered 403 or 5xx, each with the page that showed it, pages that use an
    element id twice and pages whose attributes name an id that is not on the page). variants: how many of one
    page with other query strings (sorts, ranges, pages) to read, enough to see their links."""
    seen, queue, bad = set(), [("/", "")], []
    while queue and len(seen) < max_pages:
        path, shown_on = queue.pop(0)
        if path in seen:
            continue
        seen.add(path)
        status, content_type, html = fetch(path)
        if status == 403 or status >= 500:
            bad.append(f"{status} {path} (linked from {shown_on})")
        if status != 200 or "text/html" not in content_type:
            continue
        parser = _Links()
        parser.feed(html)
        twice = sorted({i for i in parser.ids if parser.ids.count(i) > 1})
        if twice:  # a label, an hx-target or a test would find the first one only
            bad.append(f"ids used twice on {path}: {', '.join(twice)}")
        missing = sorted(parser.referred - set(parser.ids))
        if missing:  # a label for nothing, a <datalist> or an htmx target that is not there
            bad.append(f"ids named but not there on {path}: {', '.join(missing)}")
        for href in parser.hrefs:
            parts = urlsplit(urljoin(path, href))
            target = parts.path + (f"?{parts.query}" if parts.query else "")
            read = sum(1 for page in seen if page.startswith(f"{parts.path}?"))
            if (not parts.netloc and not NOT_PAGES.search(target) and target not in seen
                    and (not parts.query or read < variants)):
                queue.append((target, path))
    return len(seen), bad


def things_to_see(world) -> None:
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
