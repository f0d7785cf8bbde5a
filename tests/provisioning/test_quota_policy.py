"""Quota and capacity policy, checked before submission and again at approval, with the numbers: a team's usage is
its ready requests' volumes as the inventory has them plus its approved requests not in the inventory yet."""

from __future__ import annotations

import re
from decimal import Decimal
from html import unescape

import pytest
from django.urls import reverse

from virtstorage.virt.units import binary_size

from .conftest import MiB, decide, file_request, messages_of, request_data

pytestmark = pytest.mark.django_db(transaction=True)


def row(world, name: str, capacity: int, state: str, *, volume=None, preallocation: str = "off", team=None):
    """A request as it stands after its steps (no job): reservations and usage without running anything."""
    from provisioning.models import ProvisioningRequest
    from volumes.models import Volume

    if volume is not None:  # its create job would have recorded the volume as the team's
        Volume.objects.filter(pk=volume.pk).update(team=team or world.team)
    return ProvisioningRequest.objects.create(team=team or world.team, pool=world.pool, name=name, capacity=capacity,
                                              format="raw", preallocation=preallocation, purpose="test",
                                              requested_by=world.rita, state=state, volume=volume)


def refused(client, pool, data) -> str:
    response = client.post(reverse("requests:new", args=[pool.pk]), data)
    assert response.status_code == 400, response.status_code
    return response.content.decode()


def _text(response) -> str:
    """A page's words, tags gone and spaces folded."""
    return " ".join(re.sub(r"<[^>]+>", "", unescape(response.content.decode())).split())


def test_quota_in_bytes_counts_ready_volumes_and_reservations(world):
    from volumes.models import Volume

    world.grant.max_virtual_bytes = 100 * MiB
    world.grant.save()
    made = Volume.objects.get(pool=world.pool, name="raw-thin.img")  # 64 MiB, made by an earlier request
    row(world, "raw-thin.img", made.capacity, "ready", volume=made)
    row(world, "on-its-way.img", 16 * MiB, "provisioning")  # approved, not in the inventory yet
    row(world, "waiting.img", 50 * MiB, "pending")  # pending requests reserve nothing
    row(world, "broken.img", 50 * MiB, "failed")  # nor do failed ones
    rita = world.client(world.rita)
    page = refused(rita, world.pool, request_data("big.img", "32M", team=world.team))
    expected = (f"Team blue may use {binary_size(100 * MiB)} in pool {world.pool.name}; it uses "
                f"{binary_size(64 * MiB)} and has {binary_size(16 * MiB)} on the way (approved requests, jobs and "
                f"uploads under way); this request needs {binary_size(32 * MiB)}.")
    assert expected in unescape(page), page[-3000:]
    form = _text(rita.get(reverse("requests:new", args=[world.pool.pk])))
    assert (f"Team blue's quota here: {binary_size(80 * MiB)} of {binary_size(100 * MiB)} of virtual size, 2 volumes "
            "(no limit)") in form  # shown before one asks: the volume made and the one reserved
    assert file_request(rita, world.pool, **request_data("fits.img", "20M", team=world.team)).state == "pending"

    made.delete()  # the volume is gone from the inventory: it no longer counts
    assert file_request(rita, world.pool, **request_data("now-fits.img", "32M", team=world.team)).state == "pending"


def test_quota_in_volumes(world):
    from volumes.models import Volume

    world.grant.max_volumes = 2
    world.grant.save()
    row(world, "raw-thin.img", 1, "ready", volume=Volume.objects.get(pool=world.pool, name="raw-thin.img"))
    row(world, "coming.img", MiB, "approved")
    page = refused(world.client(world.rita), world.pool, request_data("third.img", team=world.team))
    assert (f"Team blue may have 2 volumes in pool {world.pool.name}; it has 1 and 1 on the way (approved "
            "requests, jobs and uploads under way); this request needs one more.") in page
    assert "2 of 2 volumes" in _text(world.client(world.rita).get(reverse("requests:new", args=[world.pool.pk])))


def test_policy_overcommit_counts_approved_requests(world):
    pool = world.pool
    pool.max_overcommit = Decimal("1.00")
    pool.save()
    room = pool.capacity - pool.volume_capacity_total
    rita = world.client(world.rita)
    page = refused(rita, pool, request_data("huge.img", str(room + 64 * MiB), "raw", team=world.team))
    assert f"Pool {pool.name} would be overcommitted" in page and "its limit is 1.00×" in page

    row(world, "reserved.img", room - 32 * MiB, "provisioning")  # approved, takes all but 32 MiB of the room
    page = refused(rita, pool, request_data("small.img", "64M", "raw", team=world.team))
    total = pool.volume_capacity_total + room - 32 * MiB + 64 * MiB
    assert (f"(volumes' virtual sizes {binary_size(total)} over capacity {binary_size(pool.capacity)}); "
            "its limit is 1.00×.") in unescape(page)
    assert ("That counts what is on its way and not in the inventory yet (approved requests, jobs and uploads under "
            f"way): {binary_size(room - 32 * MiB)} of virtual size, {binary_size(0)} preallocated.") in page
    assert file_request(rita, pool, **request_data("tiny.img", "16M", "raw", team=world.team)).state == "pending"


def test_policy_reserve_counts_preallocated_requests(world):
    pool = world.pool
    pool.reserve_bytes = pool.available - 50 * MiB  # 50 MiB usable
    pool.save()
    rita = world.client(world.rita)
    page = refused(rita, pool, request_data("fat.img", "64M", "raw", "full", team=world.team))
    assert f"Needs {binary_size(64 * MiB)} of disk, but pool {pool.name} has {binary_size(50 * MiB)} available" in page
    row(world, "prealloc.img", 40 * MiB, "approved", preallocation="full")
    page = refused(rita, pool, request_data("medium.img", "20M", "raw", "full", team=world.team))
    assert f"has {binary_size(10 * MiB)} available" in page and "on its way and not in the inventory yet" in page
    assert file_request(rita, pool, **request_data("thin.img", "20M", "raw", "off", team=world.team)).state == "pending"


def test_approval_checks_again_and_says_why(world):
    """Filed when it fit; an approval elsewhere took the room since: approving it is refused, it stays pending."""
    world.grant.max_virtual_bytes = 100 * MiB
    world.grant.save()
    rita, otto = world.client(world.rita), world.client(world.otto)
    req = file_request(rita, world.pool, **request_data("late.img", "60M", team=world.team))
    row(world, "early.img", 60 * MiB, "provisioning")
    queue = otto.get(reverse("requests:queue")).content.decode()
    assert "Would be refused now:" in queue and f"{binary_size(100 * MiB)}</span>" in queue
    response = decide(otto, req)
    said = " ".join(messages_of(response))
    assert f"Request #{req.pk} stays pending: Team blue may use {binary_size(100 * MiB)}" in said
    assert f"has {binary_size(60 * MiB)} on the way (approved requests" in said
    req.refresh_from_db()
    assert req.state == "pending" and req.job is None


def test_a_team_that_lost_the_pool_is_not_approved(world):
    req = file_request(world.client(world.rita), world.pool, **request_data("orphan.img", team=world.team))
    world.grant.delete()
    response = decide(world.client(world.ada), req)
    assert any(f"Team blue may no longer use pool {world.pool.name}." in m for m in messages_of(response))
    req.refresh_from_db()
    assert req.state == "pending"
