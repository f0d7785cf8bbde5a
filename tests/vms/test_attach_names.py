"""The VM page's attach form suggests volume names (volumes:name_options): from the pool chosen, holding what was
typed, in name order, and only from pools the user may see."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from tests.provisioning.conftest import build_world
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
