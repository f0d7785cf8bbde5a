"""Bad input to volume operations: a clear form error, nothing lost, no job, libvirt untouched."""

from __future__ import annotations

import re
from html import unescape

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from jobs.models import Job
from tests.volumes.test_volume_ops import vol_names, volume_row

pytestmark = pytest.mark.django_db(transaction=True)

GOOD_CREATE = {"name": "ok.img", "capacity": "8M", "format": "raw", "provisioning": "off"}


def _refused(client, url: str, data: dict, message: str) -> str:
    response = client.post(url, data)
    html = response.content.decode()
    assert response.status_code == 400, html[:2000]
    assert message in unescape(html), html[:4000]  # escaped either way: &#x27; (Django) or &#39; (Jinja2 forms)
    assert not Job.objects.exists()  # no job: libvirt was never asked
    return html


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("a/b.img", "cannot contain '/'"),
        ("..", "must start with a letter or digit"),
        (".", "must start with a letter or digit"),
        ("-rf.img", "must start with a letter or digit"),
        ("bad\x00name", "NUL"),
        ("<disk>&\"'", "may only use"),
        ("$(id)", "may only use"),
        ("a b", "may only use"),
        ("a\nb", "may only use"),
        ("x" * 256, "at most 255"),
        ("", "This field is required"),
        ("raw-thin.img", "already has a volume named raw-thin.img"),
    ],
)
def test_create_refuses_bad_names(member_client, synced, name, message):
    pool, scratch = synced
    before = vol_names(scratch.name)
    html = _refused(member_client, reverse("volumes:create", args=[pool.pk]), {**GOOD_CREATE, "name": name}, message)
    assert 'value="8M"' in html  # the rest of the form is kept
    assert vol_names(scratch.name) == before


@pytest.mark.parametrize(
    ("capacity", "message"),
    [
        ("-1G", "cannot be negative"),
        ("0", "larger than zero"),
        ("0 MiB", "larger than zero"),
        ("lots", "is not a size"),
        ("10 parsecs", "Unknown unit"),
        ("", "This field is required"),
        ("99999999999999999999999999999999999", "too large"),
        ("1.5", "A number of bytes is whole"),
        ("1000K", "at least 1 MiB"),
    ],
)
def test_create_refuses_bad_sizes(member_client, synced, capacity, message):
    pool, scratch = synced
    before = vol_names(scratch.name)
    html = _refused(member_client, reverse("volumes:create", args=[pool.pk]),
                    {**GOOD_CREATE, "capacity": capacity}, message)
    assert 'value="ok.img"' in html
    assert vol_names(scratch.name) == before


def test_preallocated_volume_larger_than_the_free_space_is_refused(member_client, synced):
    pool, scratch = synced
    too_big = pool.available + 1024**3
    _refused(member_client, reverse("volumes:create", args=[pool.pk]),
             {**GOOD_CREATE, "capacity": str(too_big), "provisioning": "full"}, "available")
    assert "ok.img" not in vol_names(scratch.name)


@pytest.mark.parametrize(
    ("changes", "field_message"),
    [
        ({"format": "vmdk"}, "Select a valid choice"),
        ({"format": "qcow2;rm"}, "Select a valid choice"),
        ({"provisioning": "falloc"}, "Select a valid choice"),
        ({"format": "raw", "provisioning": "metadata"}, "only for qcow2"),
        ({"backing": "999999"}, "Select a valid choice"),
    ],
)
def test_create_refuses_bad_formats_and_provisioning(member_client, synced, changes, field_message):
    pool, _ = synced
    _refused(member_client, reverse("volumes:create", args=[pool.pk]), {**GOOD_CREATE, **changes}, field_message)


def test_overlay_rules(member_client, synced):
    pool, _ = synced
    base = volume_row(pool, "base.qcow2")  # 128 MiB
    url = reverse("volumes:create", args=[pool.pk])
    _refused(member_client, url, {**GOOD_CREATE, "capacity": "128M", "backing": base.pk}, "Only a qcow2 volume")
    _refused(member_client, url, {**GOOD_CREATE, "format": "qcow2", "capacity": "8M", "backing": base.pk},
             "cannot be smaller than its backing volume")
    _refused(member_client, url, {**GOOD_CREATE, "format": "qcow2", "capacity": "128M", "backing": base.pk,
                                  "provisioning": "full"}, "always thin")


def test_clone_refuses_bad_names_and_taken_names(member_client, synced):
    pool, scratch = synced
    url = reverse("volumes:clone", args=[volume_row(pool, "raw-thin.img").pk])
    _refused(member_client, url, {"name": "../escape", "target_pool": pool.pk}, "cannot contain")
    _refused(member_client, url, {"name": "base.qcow2", "target_pool": pool.pk}, "already has a volume named")
    _refused(member_client, url, {"name": "fine.img", "target_pool": 999999}, "Select a valid choice")
    _refused(member_client, url, {"name": "fine.img", "target_pool": pool.pk, "format": "vdi"},
             "Select a valid choice")
    assert "fine.img" not in vol_names(scratch.name)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"capacity": "64M"}, "already 64.0 MiB"),
        ({"capacity": "-64M"}, "cannot be negative"),
        ({"capacity": "0"}, "larger than zero"),
        ({"capacity": "big"}, "is not a size"),
        ({"capacity": "32M"}, "is lost"),
        ({"capacity": "32M", "confirm_shrink": "wrong"}, "is lost"),
    ],
)
def test_resize_refuses_bad_sizes_and_unconfirmed_shrink(member_client, synced, data, message):
    pool, scratch = synced
    _refused(member_client, reverse("volumes:resize", args=[volume_row(pool, "raw-thin.img").pk]), data, message)
    assert scratch.vol_info("raw-thin.img")["Capacity"] == f"{64 * 1024**2} bytes"


def test_resize_refuses_allocating_qcow2(member_client, synced):
    """The page offers the option off for a qcow2 volume, and says why; a request that asks anyway is refused."""
    pool, _ = synced
    url = reverse("volumes:resize", args=[volume_row(pool, "qcow2-thin.qcow2").pk])
    page = member_client.get(url).content.decode()
    assert re.search(r'<input[^>]*name="allocate"[^>]*disabled', page)
    assert "This volume is qcow2: its new space is allocated as the guest writes." in page
    raw_page = member_client.get(reverse("volumes:resize", args=[volume_row(pool, "raw-thin.img").pk]))
    assert re.search(r'<input[^>]*name="allocate"', raw_page.content.decode())
    assert not re.search(r'<input[^>]*name="allocate"[^>]*disabled', raw_page.content.decode())
    _refused(member_client, url, {"capacity": "2G", "allocate": "on"}, "only for raw volumes")


def test_wipe_refuses_unknown_or_unavailable_algorithms(member_client, synced):
    pool, _ = synced
    url = reverse("volumes:wipe", args=[volume_row(pool, "raw-thin.img").pk])
    _refused(member_client, url, {"algorithm": "trim", "confirm": "raw-thin.img"}, "Select a valid choice")
    _refused(member_client, url, {"algorithm": "shred", "confirm": "raw-thin.img"}, "Select a valid choice")
    _refused(member_client, url, {"algorithm": "zero", "confirm": "raw-thin"}, "not the volume")


def test_operations_need_a_login_and_a_role(client, synced, django_user_model):
    pool, _ = synced
    url = reverse("volumes:create", args=[pool.pk])
    assert client.post(url, GOOD_CREATE).status_code == 302  # to the login page
    client.force_login(django_user_model.objects.create_user("norole", password="x-very-long-pass"))
    assert client.post(url, GOOD_CREATE).status_code == 403
    assert not Job.objects.exists()


def test_posts_need_the_csrf_token(synced, member):
    from django.test import Client

    pool, _ = synced
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(member)
    assert strict.post(reverse("volumes:create", args=[pool.pk]), GOOD_CREATE).status_code == 403
    assert not Job.objects.exists()


def test_the_backing_volume_picker_lists_a_few_and_finds_the_rest(member_client, member, synced):
    """A host with many volumes: the create page lists 50 backing candidates, the search box finds any
    of them, and one found by search is accepted (validation knows every volume of the host)."""
    from volumes.forms import BACKING_OPTIONS
    from volumes.models import Volume

    pool, _ = synced
    Volume.objects.bulk_create(Volume(pool=pool, name=f"bulk-{i:04}.qcow2", format="qcow2", capacity=2**20)
                               for i in range(300))
    url = reverse("volumes:create", args=[pool.pk])
    with CaptureQueriesContext(connection) as queries:
        page = member_client.get(url).content.decode()
    sorted_volumes = [q["sql"] for q in queries.captured_queries if 'FROM "volumes_volume"' in q["sql"]
                      and "ORDER BY" in q["sql"] and "LIMIT" in q["sql"]]
    assert sorted_volumes and not any('"volumes_volume"."xml"' in sql for sql in sorted_volumes), sorted_volumes
    picker = page[page.index('<select name="backing"'):]
    listed = picker[:picker.index("</select>")].count('<option value="') - 1  # less the "none" choice
    assert listed == BACKING_OPTIONS, listed
    assert "bulk-0299.qcow2" not in page and 'name="backing_search"' in page

    options_url = reverse("volumes:backing_options", args=[pool.pk])
    found = member_client.get(options_url, {"backing_search": "0299"}).content.decode()
    assert "bulk-0299.qcow2" in found and found.count("<option") == 2
    many = member_client.get(options_url, {"backing_search": "bulk"}).content.decode()
    assert "more match" in many
    none = member_client.get(options_url, {"backing_search": "<nope>"}).content.decode()
    assert "matches “&lt;nope&gt;”" in none

    far = Volume.objects.get(pool=pool, name="bulk-0299.qcow2")
    data = {"name": "picked.qcow2", "capacity": "8M", "format": "qcow2", "provisioning": "off", "backing": far.pk}
    from volumes.forms import VolumeCreateForm
    form = VolumeCreateForm(data, pool=pool, user=member)
    assert form.is_valid(), form.errors
    assert form.cleaned_data["backing"] == far
    assert f'<option value="{far.pk}" selected>' in str(form["backing"])  # the choice shows when the page returns


def test_backing_choices_go_pool_by_pool_in_name_order_and_only_through_visible_pools(synced):
    """The picker's first options: pools in name order, each pool's volumes in name order, read until the count
    is reached; never a volume of a pool the user's teams may not use, an unsafe one or one of another format."""
    from django.contrib.auth import get_user_model

    from accounts.models import Team
    from accounts.roles import MEMBER, grant
    from accounts.teams import join
    from pools.models import PoolGrant, StoragePool
    from volumes.forms import backing_choices
    from volumes.models import Volume

    pool, _ = synced
    host = pool.host
    first, hidden, last = (StoragePool.objects.create(host=host, name=name, state="active")
                           for name in ("aa-first", "mm-hidden", "zz-last"))
    for where, names in ((first, ["b.qcow2", "a.raw", "c.iso"]), (hidden, ["h.qcow2"]), (last, ["x.qcow2", "y.raw"])):
        Volume.objects.bulk_create(Volume(pool=where, name=name, format=name.rsplit(".", 1)[1], capacity=2**20)
                                   for name in names)
    Volume.objects.filter(pool=last, name="y.raw").update(unsafe_reason="names a file outside the pools")
    user = get_user_model().objects.create_user("picker")
    grant(user, MEMBER)
    team = Team.objects.create(name="pickers")
    join(user, team)
    for granted in (first, last, pool):
        PoolGrant.objects.create(team=team, pool=granted)

    def names(**kwargs) -> list[str]:
        return [label.split(" (")[0] for _pk, label in backing_choices(first, user, **kwargs)]

    mine = [f"{pool.name} / {v}" for v in Volume.objects.filter(pool=pool, format__in=["raw", "qcow2"],
                                                                 unsafe_reason="").order_by("name")
            .values_list("name", flat=True)]
    everything = ["aa-first / a.raw", "aa-first / b.qcow2", *mine, "zz-last / x.qcow2"]
    assert pool.name > "aa-first" and pool.name < "zz-last"  # vstest-…: between the two
    assert names() == everything
    assert names(count=3) == everything[:3]  # stops inside the second pool
    assert names(search="qcow2") == [n for n in everything if "qcow2" in n]
