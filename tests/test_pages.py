"""Every page, for every role: login required, admin-only actions refused to members, CSRF on POSTs."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from hosts.models import Host
from pools.models import StoragePool
from volumes.models import Volume

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def inventory(synced):
    pool, scratch = synced
    volume = pool.volumes.get(name="overlay.qcow2")
    return pool, volume


def read_pages(pool: StoragePool, volume: Volume) -> list[str]:
    return [
        reverse("dashboard"),
        reverse("hosts:detail", args=[pool.host_id]),
        reverse("hosts:status", args=[pool.host_id]),
        reverse("pools:detail", args=[pool.pk]),
        reverse("pools:volumes", args=[pool.pk]),
        reverse("volumes:detail", args=[volume.pk]),
        reverse("jobs:list"),
    ]


def test_anonymous_is_sent_to_login_everywhere(client, inventory):
    pool, volume = inventory
    for url in [*read_pages(pool, volume), reverse("hosts:add"), reverse("hosts:edit", args=[pool.host_id])]:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login")), url


def test_member_reads_every_page(member_client, inventory):
    pool, volume = inventory
    for url in read_pages(pool, volume):
        assert member_client.get(url).status_code == 200, url


def test_account_without_role_is_refused(client, inventory, django_user_model):
    pool, volume = inventory
    client.force_login(django_user_model.objects.create_user("nobody", password="x-y-z-123456"))
    assert client.get(reverse("dashboard")).status_code == 403
    assert client.get(reverse("pools:detail", args=[pool.pk])).status_code == 403


def test_refused_and_missing_pages_say_why(client, member_client, admin_client, inventory, django_user_model):
    pool, _ = inventory
    refused = member_client.get(reverse("hosts:add"))
    assert refused.status_code == 403 and "Only admins can do this." in refused.content.decode()
    client.force_login(django_user_model.objects.create_user("nobody", password="x-y-z-123456"))
    refused = client.get(reverse("pools:detail", args=[pool.pk]))
    assert refused.status_code == 403 and "Your account has no role yet" in refused.content.decode()
    for who, url in ((member_client, "/no-such-page/"), (admin_client, reverse("pools:detail", args=[pool.pk + 9999]))):
        missing = who.get(url)
        page = missing.content.decode()
        assert missing.status_code == 404 and "There is nothing here, or nothing you may see." in page, url
        assert "matches the given query" not in page and "Resolver404" not in page, url


def test_a_bad_request_a_stale_token_and_a_server_error_say_what_happened(member, member_client, rf, settings):
    from django.views.defaults import server_error

    bad = member_client.get("/volumes/uploads/new/", {"pool": "x"})  # the upload page's query refused (BadRequest)
    page = bad.content.decode()
    assert bad.status_code == 400 and "<h1>Bad request</h1>" in page and "pool: Enter a whole number." in page
    assert 'id="request-problem"' in page  # the site's own page, not Django's bare one
    forged = member_client.get("/", HTTP_HOST="evil.example")  # a SuspiciousOperation: Django's page, no echo
    assert forged.status_code == 400 and "evil.example" not in forged.content.decode()

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(member)
    for headers, words in (({}, "security token is out of date"),
                           ({"HTTP_ORIGIN": "https://elsewhere.example"}, "CSRF_TRUSTED_ORIGINS")):
        stale = strict.post(reverse("jobs:cancel", args=[1]), {"csrfmiddlewaretoken": "x" * 64}, **headers)
        page = stale.content.decode()
        assert stale.status_code == 403 and "<h1>Not allowed</h1>" in page and words in page, headers
        assert "CSRF verification failed" not in page

    settings.DEBUG = False
    crashed = server_error(rf.get("/"))
    page = crashed.content.decode()
    assert crashed.status_code == 500 and "<h1>Server error</h1>" in page and "app.css" in page


def test_member_cannot_manage_hosts(member_client, inventory):
    pool, _ = inventory
    host_id = pool.host_id
    assert member_client.get(reverse("hosts:add")).status_code == 403
    assert member_client.post(reverse("hosts:add"), {"name": "x", "uri": "test:///default"}).status_code == 403
    assert member_client.get(reverse("hosts:edit", args=[host_id])).status_code == 403
    assert member_client.post(reverse("hosts:delete", args=[host_id]), {"confirm_name": "local"}).status_code == 403
    assert member_client.post(reverse("hosts:test", args=[host_id])).status_code == 403
    assert Host.objects.filter(pk=host_id).exists()


def test_admin_sees_admin_actions(admin_client, inventory):
    pool, volume = inventory
    for url in read_pages(pool, volume):
        assert admin_client.get(url).status_code == 200, url
    page = admin_client.get(reverse("hosts:detail", args=[pool.host_id])).content.decode()
    assert "Test connection" in page and "Remove…" in page


def test_pool_page_shows_sizes_overcommit_and_state(member_client, inventory):
    pool, _ = inventory
    html = member_client.get(reverse("pools:detail", args=[pool.pk])).content.decode()
    assert pool.target_path in html
    assert f'title="{pool.capacity:,} bytes"' in html  # exact bytes on hover
    assert f"{pool.overcommit:.2f}×" in html
    assert "running" in html
    for name in ("raw-thin.img", "raw-prealloc.img", "overlay.qcow2"):
        assert name in html


def test_volume_page_compares_virtual_and_disk_size(member_client, inventory):
    pool, _ = inventory
    thin = pool.volumes.get(name="raw-thin.img")
    html = member_client.get(reverse("volumes:detail", args=[thin.pk])).content.decode()
    assert "Virtual size" in html and "Disk size" in html
    assert f'title="{thin.capacity:,} bytes"' in html and f'title="{thin.allocation:,} bytes"' in html
    assert "thin-provisioned" in html
    prealloc = pool.volumes.get(name="raw-prealloc.img")
    html = member_client.get(reverse("volumes:detail", args=[prealloc.pk])).content.decode()
    assert "<strong>preallocated</strong>" in html
    assert "&lt;volume" in html  # the libvirt XML


def test_volume_page_shows_backing_chain(member_client, inventory):
    pool, overlay = inventory
    base = pool.volumes.get(name="base.qcow2")
    html = member_client.get(reverse("volumes:detail", args=[overlay.pk])).content.decode()
    assert base.get_absolute_url() in html
    assert "Backing chain" in html


def test_volume_table_searches_sorts_and_paginates(member_client, local_host):
    pool = StoragePool.objects.create(host=local_host, name="big", state="active", capacity=10**12)
    Volume.objects.bulk_create(
        Volume(pool=pool, name=f"vol-{i:05d}", capacity=(i + 1) * 1024**2, allocation=i * 1024, format="qcow2")
        for i in range(120)
    )
    url = reverse("pools:volumes", args=[pool.pk])
    first = member_client.get(url).content.decode()
    assert "vol-00000" in first and "vol-00049" in first and "vol-00050" not in first
    assert "Page 1 of 3" in first
    second = member_client.get(url, {"page": 2}).content.decode()
    assert "vol-00050" in second and "vol-00049" not in second
    found = member_client.get(url, {"q": "vol-0011"}).content.decode()
    assert found.count('href="/volumes/') == 10
    typed = member_client.get(url, {"q": "vol-0011", "sort": "-capacity"}, HTTP_HX_REQUEST="true",
                              HTTP_HX_TRIGGER="volume-search")  # the search box: into the address bar
    assert typed["HX-Push-Url"] == f"{pool.get_absolute_url()}?q=vol-0011&sort=-capacity"
    assert "HX-Push-Url" not in member_client.get(url, {"page": 2}, HTTP_HX_REQUEST="true")  # a link pushes its own
    biggest = member_client.get(url, {"sort": "-capacity"}).content.decode()
    assert biggest.index("vol-00119") < biggest.index("vol-00118")
    bogus = member_client.get(url, {"sort": "password"})
    assert bogus.status_code == 200  # unknown sort falls back to name


def test_every_volume_table_sort_is_read_in_index_order():
    """Each sort of the volume table, its tie-break included, is an index of the pool's volumes read forwards or
    backwards: a page of a 10,000-volume pool sorted by disk size is then 50 rows read in order, not the whole
    pool sorted in a temporary tree (25-30 ms on SQLite). The index holds the row's key (include), so PostgreSQL
    finds a page's keys in the index alone (an index-only scan) and reads 50 rows, not every row above them."""
    from pools.views import VOLUME_SORTS

    indexes = [tuple(index.fields) for index in Volume._meta.indexes if "id" in index.include]
    for sort, order in VOLUME_SORTS.items():
        directions = {field.startswith("-") for field in order}
        assert len(directions) == 1, f"{sort}: {order} mixes directions, which no index read serves"
        columns = ("pool", *(field.lstrip("-") for field in order))
        assert any(index[:len(columns)] == columns for index in indexes), f"{sort}: no index on {columns}"


def test_a_descending_sort_breaks_ties_by_name_descending(member_client, local_host):
    pool = StoragePool.objects.create(host=local_host, name="ties", state="active", capacity=10**12)
    Volume.objects.bulk_create(Volume(pool=pool, name=f"v{i}", capacity=1024**3, allocation=0, format="raw")
                               for i in range(3))
    url = reverse("pools:volumes", args=[pool.pk])
    for sort in ("-capacity", "-allocation", "-format"):
        html = member_client.get(url, {"sort": sort}).content.decode()
        assert html.index(">v2<") < html.index(">v1<") < html.index(">v0<"), sort
    html = member_client.get(url, {"sort": "capacity"}).content.decode()
    assert html.index(">v0<") < html.index(">v1<") < html.index(">v2<")


def test_volume_table_costs_the_same_queries_for_any_page_size(member_client, local_host,
                                                               django_assert_max_num_queries):
    """A pool of 500 volumes costs the queries one of 5 does (a fixed few besides the table: the page's
    header — the bell, the approvals waiting, the team check —, the VMs using the page's volumes, the
    history chart and the forecast)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    counts = []
    for size in (5, 500):
        pool = StoragePool.objects.create(host=local_host, name=f"big-{size}", state="active", capacity=10**12)
        Volume.objects.bulk_create(Volume(pool=pool, name=f"v{i}", capacity=1) for i in range(size))
        with CaptureQueriesContext(connection) as queries, django_assert_max_num_queries(18):
            assert member_client.get(reverse("pools:detail", args=[pool.pk])).status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1], counts


def test_posts_need_csrf(member, inventory):
    pool, _ = inventory
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(member)
    assert strict.post(reverse("hosts:sync", args=[pool.host_id])).status_code == 403


def test_sync_never_redirects_off_site(member_client, settings):
    host = Host.objects.create(name="dead", uri="qemu+tcp://127.0.0.1:1/system")
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # the queue is down: the view redirects back to `next`
    response = member_client.post(reverse("hosts:sync", args=[host.pk]), {"next": "https://evil.example/"})
    assert response["Location"] == host.get_absolute_url()
    response = member_client.post(reverse("hosts:sync", args=[host.pk]), {"next": "/jobs/"})
    assert response["Location"] == "/jobs/"


def test_parts_of_a_pool_page_asked_for_after_the_pool_left_answer_nothing_to_change(member_client, local_host):
    """After a delete or undefine ends, the open page's table and libvirt view reload once more (the card sends the
    page to the host): 204 for htmx, as for a pool the user may not see, so the page shows no error; a plain
    request still gets its 404."""
    pool = StoragePool.objects.create(host=local_host, name="leaving", state="active", capacity=10**9)
    urls = [reverse("pools:volumes", args=[pool.pk]), reverse("pools:live", args=[pool.pk])]
    assert [member_client.get(url, HTTP_HX_REQUEST="true").status_code for url in urls] == [200, 200]
    pool.delete()
    assert [member_client.get(url, HTTP_HX_REQUEST="true").status_code for url in urls] == [204, 204]
    assert [member_client.get(url).status_code for url in urls] == [404, 404]
