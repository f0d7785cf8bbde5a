"""The VM page's attach form suggests volume names (volumes:name_options): from the pool chosen, or from the host's
started pools labelled with theirs, holding what was typed, in name order, and only from pools the user may see; left
without a pool, the form finds the one pool that has the name."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from hosts.models import Domain
from pools.models import StoragePool
from tests.provisioning.conftest import build_world
from vms.forms import AttachVolumeForm
from volumes.models import Volume
from volumes.views import NAME_OPTIONS

pytestmark = pytest.mark.django_db(transaction=True)


def _names(user, **query) -> list[str]:
    client = Client()
    client.force_login(user)
    response = client.get(reverse("volumes:name_options"), query)
    assert response.status_code == 200
    page = response.content.decode()
    return [part.split('"', 1)[0] for part in page.split('<option value="')[1:]]


def test_names_of_the_pool_chosen_holding_what_was_typed_in_name_order(synced):
    world = build_world(synced)
    pool = world.pool
    assert _names(world.rita, pool=pool.pk, volume="") == sorted(pool.volumes.values_list("name", flat=True))
    assert _names(world.rita, pool=pool.pk, volume="QCOW2") == ["base.qcow2", "overlay.qcow2", "qcow2-thin.qcow2"]
    assert _names(world.rita, pool=pool.pk, volume="raw-t") == ["raw-thin.img"]
    assert _names(world.rita, pool=pool.pk, volume="<nope>") == []
    Volume.objects.bulk_create([Volume(pool=pool, name=f"bulk-{i:02}.qcow2", path=f"/x/b{i}") for i in range(25)])
    assert _names(world.rita, pool=pool.pk, volume="bulk") == [f"bulk-{i:02}.qcow2" for i in range(NAME_OPTIONS)]


def test_no_names_from_a_pool_the_user_may_not_see_or_without_a_pool(synced):
    world = build_world(synced)
    assert _names(world.rival, pool=world.pool.pk, volume="") == []  # another team's pool
    assert _names(world.rita, volume="base") == [] and _names(world.rita, pool="1 OR 1=1", volume="") == []
    assert _names(world.rita, pool="²", volume="") == []  # a digit to str.isdigit, not a number to int()
    assert len(_names(world.ada, pool=world.pool.pk, volume="")) == world.pool.volumes.count()  # an admin sees all


def _pool_beside(pool, name: str, state: str = "active") -> StoragePool:
    """Another pool of the same host, in the inventory only (the form and the suggestions read no more)."""
    return StoragePool.objects.create(host=pool.host, name=name, state=state, capacity=10**9)


def test_without_a_pool_the_names_of_the_hosts_started_pools_come_labelled_with_their_pool(synced):
    world = build_world(synced)
    pool = world.pool
    other, stopped = _pool_beside(pool, "other"), _pool_beside(pool, "stopped", state="inactive")
    Volume.objects.create(pool=other, name="raw-thin.img", path="/x/o")
    Volume.objects.create(pool=stopped, name="raw-thin-old.img", path="/x/s")
    client = Client()
    client.force_login(world.ada)
    page = client.get(reverse("volumes:name_options"), {"host": pool.host_id, "volume": "raw-t"}).content.decode()
    assert page == (f'<option value="raw-thin.img">{other.name}</option>'
                    f'<option value="raw-thin.img">{pool.name}</option>\n')  # a stopped pool's are not offered
    assert _names(world.rita, host=pool.host_id, volume="raw-t") == ["raw-thin.img"]  # only pools rita may see
    assert _names(world.ada, host="x", volume="raw-t") == []
    assert f">{pool.name}<" not in client.get(reverse("volumes:name_options"),
                                              {"pool": pool.pk, "volume": "raw-t"}).content.decode()


def test_without_a_pool_the_attach_form_takes_the_one_pool_that_has_the_name(synced, local_host):
    world = build_world(synced)
    pool = world.pool
    vm = Domain.objects.create(host=local_host, name="web1", uuid="0e7b0a1e-7f3c-4cf0-9e1f-000000000001")

    def form(**data) -> AttachVolumeForm:
        bound = AttachVolumeForm({"bus": "virtio", **data}, vm=vm, user=world.ada)
        bound.is_valid()
        return bound

    found = form(volume="raw-thin.img")
    assert found.is_valid() and found.cleaned_data["pool"] == pool, found.errors
    assert found.cleaned_data["volume_row"] == Volume.objects.get(pool=pool, name="raw-thin.img")
    assert form(volume="nowhere.img").errors == {
        "volume": ["No pool of this host that you may use has a volume nowhere.img (as of the last sync)."]}
    other = _pool_beside(pool, "a-other")
    Volume.objects.create(pool=other, name="raw-thin.img", path="/x/o")
    assert form(volume="raw-thin.img").errors == {"pool": [f"raw-thin.img is in pools a-other, {pool.name}: "
                                                           "choose one."]}
    chosen = form(volume="raw-thin.img", pool=other.pk)
    assert chosen.is_valid() and chosen.cleaned_data["volume_row"].pool == other
    assert form(volume="raw-thin.img", pool=other.pk + 1000).errors.keys() == {"pool"}  # not a choice
    rita_form = AttachVolumeForm({"bus": "virtio", "volume": "raw-thin.img"}, vm=vm, user=world.rita)
    assert not rita_form.is_valid() and "volume_row" not in rita_form.cleaned_data  # no pool rita may create in
