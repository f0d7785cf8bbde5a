"""A team's quota holds for every way a volume is made or grown, not for requests alone (volumes/quota.py): a
create, clone, convert, upload or resize for a team counts against its grant, is refused past it with the
numbers, and what is on its way (a running job, an upload under way, an approved request) counts too. Real
libvirtd, real Celery worker."""

from __future__ import annotations

from html import unescape

import pytest
from django.urls import reverse

from tests.conftest import running_job, virsh
from tests.provisioning.conftest import GiB, MiB, build_world, client_for, make_user
from virtstorage.virt.units import binary_size

from .test_volume_ops import run_op, vol_names

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def world(synced):
    """Team blue may use the scratch pool with a quota of 100 MiB: rita (member) and otto (operator) are in it."""
    world = build_world(synced)
    world.grant.max_virtual_bytes = 100 * MiB
    world.grant.save()
    return world


def create_data(name: str, capacity: str = "64M", **extra) -> dict:
    return {"name": name, "capacity": capacity, "format": "qcow2", "provisioning": "off", "backing": "", **extra}


def refusal(response) -> str:
    assert response.status_code == 400, response.status_code
    return " ".join(unescape(response.content.decode()).split())


def usage(world) -> tuple[int, int]:
    from provisioning.quota import Ledger

    found = Ledger.read({(world.team.pk, world.pool.pk)}).usage(world.team.pk, world.pool.pk)
    return found.total_count, found.total_capacity


def test_a_create_counts_against_the_team_and_the_next_is_refused_with_the_numbers(world, celery_worker):
    from volumes.models import Volume

    otto = client_for(world.otto)
    create = reverse("volumes:create", args=[world.pool.pk])
    job = run_op(otto, create, create_data("mine.qcow2"))
    assert job.state == "succeeded", job.error
    made = Volume.objects.get(pool=world.pool, name="mine.qcow2")
    assert made.team_id == world.team.pk and job.params["team"] == world.team.pk
    assert usage(world) == (1, 64 * MiB)  # the volume itself now; its job's reservation ended with the job

    page = refusal(otto.post(create, create_data("second.qcow2")))
    assert (f"Team blue may use {binary_size(100 * MiB)} in pool {world.pool.name}; it uses "
            f"{binary_size(64 * MiB)} and has {binary_size(0)} on the way (approved requests, jobs and uploads under "
            f"way); this needs {binary_size(64 * MiB)} more.") in page, page[-2000:]
    assert "second.qcow2" not in vol_names(world.scratch.name)
    # A request sees the volume made outside any request the same way
    from tests.provisioning.conftest import request_data

    rita = client_for(world.rita)
    page = refusal(rita.post(reverse("requests:new", args=[world.pool.pk]),
                             request_data("asked.qcow2", "64M", team=world.team)))
    assert "this request needs" in page and f"it uses {binary_size(64 * MiB)}" in page

    # the team page's quota shows it
    text = unescape(client_for(world.ada).get(reverse("teams:detail", args=[world.team.pk])).content.decode())
    assert 'aria-label="64% of the quota used"' in text, text[-3000:]


def test_a_members_clone_and_convert_count_and_are_refused_past_the_count(world, celery_worker):
    from volumes.models import Volume

    world.grant.max_virtual_bytes, world.grant.max_volumes = None, 1
    world.grant.save()
    rita = client_for(world.rita)
    source = Volume.objects.get(pool=world.pool, name="raw-thin.img")  # a volume of no team: counts for none
    job = run_op(rita, reverse("volumes:clone", args=[source.pk]),
                 {"name": "copy.img", "target_pool": world.pool.pk, "format": ""})
    assert job.state == "succeeded", job.error
    assert Volume.objects.get(pool=world.pool, name="copy.img").team_id == world.team.pk
    assert usage(world) == (1, source.capacity)

    page = refusal(rita.post(reverse("volumes:clone", args=[source.pk]),
                             {"name": "copy2.img", "target_pool": world.pool.pk, "format": ""}))
    assert (f"Team blue may have 1 volume in pool {world.pool.name}; it has 1 and 0 on the way (approved requests, "
            "jobs and uploads under way); a new volume would be one more.") in page, page[-2000:]
    page = refusal(rita.post(reverse("volumes:image_convert", args=[source.pk]),
                             {"name": "conv.qcow2", "target_pool": world.pool.pk, "format": "qcow2",
                              "provisioning": "off"}))
    assert "a new volume would be one more" in page
    assert {"copy2.img", "conv.qcow2"}.isdisjoint(vol_names(world.scratch.name))

    # the volume's page says whose it is, and so does the pool's table
    copy = Volume.objects.get(pool=world.pool, name="copy.img")
    assert "Team</dt><dd>blue" in rita.get(copy.get_absolute_url()).content.decode()
    table = unescape(rita.get(world.pool.get_absolute_url()).content.decode())
    assert ('title="Team blue\'s: it counts against that team\'s quota here">blue</span>' in table
            and table.count("counts against that team's quota here") == 1), table[-3000:]


def test_a_resize_counts_its_growth_against_the_volumes_team(world, celery_worker):
    from volumes.models import Volume

    otto = client_for(world.otto)
    volume = Volume.objects.get(pool=world.pool, name="raw-thin.img")  # 64 MiB
    volume.team = world.team
    volume.save(update_fields=["team"])
    page = refusal(otto.post(reverse("volumes:resize", args=[volume.pk]), {"capacity": "128M"}))
    assert f"this needs {binary_size(64 * MiB)} more" in page, page[-2000:]
    job = run_op(otto, reverse("volumes:resize", args=[volume.pk]), {"capacity": "96M"})
    assert job.state == "succeeded", job.error
    assert job.params["charge"] == {"pool": world.pool.pk, "count": 0, "capacity": 32 * MiB, "allocation": 0}
    assert usage(world) == (1, 96 * MiB)

    # a volume no team made counts against no quota: growing it is the pool policy's business alone
    other = Volume.objects.get(pool=world.pool, name="qcow2-thin.qcow2")
    assert other.team_id is None
    assert run_op(otto, reverse("volumes:resize", args=[other.pk]), {"capacity": "2G"}).state == "succeeded"
    assert usage(world) == (1, 96 * MiB)


def test_what_is_on_its_way_counts_a_running_job_an_upload_and_an_approved_request(world):
    from provisioning.models import ProvisioningRequest
    from volumes import operations
    from volumes.models import Upload

    otto = client_for(world.otto)
    create = reverse("volumes:create", args=[world.pool.pk])
    running_job(world.otto, world.pool.host, "clone", pool=world.pool, volume_name="coming.img", params={
        "team": world.team.pk, "charge": {"pool": world.pool.pk, "count": 1, "capacity": 30 * MiB}})
    Upload.objects.create(created_by=world.rita, pool=world.pool, volume_name="up.img", size=MiB,
                          capacity=20 * MiB, team=world.team)
    ProvisioningRequest.objects.create(team=world.team, pool=world.pool, name="asked.img", capacity=40 * MiB,
                                       purpose="t", requested_by=world.rita, state="approved")
    assert usage(world) == (3, 90 * MiB)
    page = refusal(otto.post(create, create_data("more.qcow2", "11M")))
    assert f"has {binary_size(90 * MiB)} on the way" in page, page[-2000:]
    fits = operations.bind("create", create_data("fits.qcow2", "10M"), user=world.otto, pool=world.pool)
    assert fits.is_valid(), fits.errors  # the last 10 MiB
    assert fits.charge.job_params() == {"team": world.team.pk, "charge": {
        "pool": world.pool.pk, "count": 1, "capacity": 10 * MiB, "allocation": 0}}


def test_the_launch_checks_again_under_the_grants_lock(world):
    """A form checked before another launch took the room is refused at its own launch, and starts nothing."""
    from jobs.models import Job
    from volumes import operations
    from volumes.quota import QuotaExceeded

    form = operations.bind("create", create_data("late.qcow2", "60M"), user=world.otto, pool=world.pool)
    assert form.is_valid(), form.errors
    running_job(world.otto, world.pool.host, "create", pool=world.pool, volume_name="first.qcow2", params={
        "team": world.team.pk, "charge": {"pool": world.pool.pk, "count": 1, "capacity": 60 * MiB}})
    before = Job.objects.count()
    with pytest.raises(QuotaExceeded, match="this needs"):
        operations.launch("create", form, user=world.otto, pool=world.pool)
    assert Job.objects.count() == before


def test_an_upload_reserves_while_under_way_and_is_refused_past_the_quota(world, asgi_server):
    from volumes.models import Upload

    from .conftest import Api

    api = Api(asgi_server.url, world.rita)
    refused = api.create(pool=world.pool.pk, volume="big.img", mode="new", size=200 * MiB)
    assert refused.status_code == 400 and "this needs" in str(refused.json()["errors"]), refused.text
    started = api.create(pool=world.pool.pk, volume="up.img", mode="new", size=64 * MiB)
    assert started.status_code == 201, started.text
    assert Upload.objects.get(volume_name="up.img").team_id == world.team.pk
    assert usage(world) == (1, 64 * MiB)
    second = api.create(pool=world.pool.pk, volume="up2.img", mode="new", size=64 * MiB)
    assert second.status_code == 400 and f"has {binary_size(64 * MiB)} on the way" in second.text, second.text


def test_choosing_the_team(world, celery_worker):
    """In two teams that may use the pool, one chooses whose quota; a team that may not use it is refused; an
    admin may choose none, and such a volume counts against no quota."""
    from accounts.models import Team
    from accounts.teams import join
    from pools.models import PoolGrant
    from volumes.models import Volume

    green = Team.objects.create(name="green")
    PoolGrant.objects.create(team=green, pool=world.pool, max_virtual_bytes=GiB)
    join(world.otto, green, "operator")
    otto = client_for(world.otto)
    create = reverse("volumes:create", args=[world.pool.pk])
    page = otto.get(create).content.decode()
    assert 'name="team"' in page and ">blue<" in page and ">green<" in page and ">red<" not in page
    assert "Choose the team whose quota the new volume counts against." in refusal(otto.post(create, create_data("a")))
    red = Team.objects.get(name="red")  # not otto's, and not one that may use the pool: not even offered
    assert "Select a valid choice" in refusal(otto.post(create, create_data("a", team=red.pk)))
    job = run_op(otto, create, create_data("greens.qcow2", "200M", team=green.pk))  # past blue's 100 MiB, not green's
    assert job.state == "succeeded", job.error
    assert Volume.objects.get(pool=world.pool, name="greens.qcow2").team_id == green.pk
    assert usage(world) == (0, 0)

    ada = client_for(world.ada)
    assert "no team: it counts against no quota" in ada.get(create).content.decode()
    job = run_op(ada, create, create_data("admins.qcow2", "500M"))
    assert job.state == "succeeded", job.error
    assert Volume.objects.get(pool=world.pool, name="admins.qcow2").team_id is None and "team" not in job.params
    lone = make_user("lone", world.team, "operator")  # in one team: not asked
    assert 'type="hidden" name="team"' in client_for(lone).get(create).content.decode()
    virsh("vol-list", world.scratch.name)  # the pool is still there for the fixture's cleanup


def test_an_admin_says_whose_a_volume_is_and_it_is_audited(world):
    from audit.models import AuditRecord
    from volumes.models import Volume

    volume = Volume.objects.get(pool=world.pool, name="raw-thin.img")  # made before: no team's
    url = reverse("volumes:team", args=[volume.pk])
    ada = client_for(world.ada)
    page = ada.get(volume.get_absolute_url()).content.decode()
    assert f'action="{url}"' in page and ">blue<" in page and ">red<" not in page  # red may not use the pool
    assert client_for(world.otto).post(url, {"team": world.team.pk}).status_code == 403  # admins only
    assert 'action="' + url not in client_for(world.otto).get(volume.get_absolute_url()).content.decode()

    assert ada.post(url, {"team": world.team.pk}).status_code == 302
    assert Volume.objects.get(pk=volume.pk).team_id == world.team.pk and usage(world) == (1, 64 * MiB)
    entry = AuditRecord.objects.filter(action="volume.team").latest("pk")
    assert entry.detail == {"from": None, "to": "blue"} and entry.username == "ada"
    red = world.rival.memberships.get().team
    assert ada.post(url, {"team": red.pk}).status_code == 302  # refused: a team that may not use the pool
    assert Volume.objects.get(pk=volume.pk).team_id == world.team.pk
    assert ada.post(url, {"team": ""}).status_code == 302
    assert Volume.objects.get(pk=volume.pk).team_id is None and usage(world) == (0, 0)


def test_a_volume_its_jobs_sync_missed_still_gets_its_team(world):
    """The job made the volume but its sync did not record it (libvirt or the database failed it a moment): the
    job syncs it once more, so it counts against the team; a volume still not found is named in the job's log."""
    from jobs.models import Job
    from jobs.runner import JobContext
    from volumes.models import Volume
    from volumes.tasks import lead_to_volume

    world.scratch.create_volume("missed.img", "16M")  # in libvirt, not in the inventory
    assert not Volume.objects.filter(pool=world.pool, name="missed.img").exists()
    job = Job.objects.create(kind="create", host=world.pool.host, pool=world.pool, volume_name="missed.img",
                             created_by=world.otto, params={"team": world.team.pk})
    ctx = JobContext(job)
    lead_to_volume(ctx, world.pool.pk, "missed.img")
    made = Volume.objects.get(pool=world.pool, name="missed.img")
    assert made.team_id == world.team.pk and made.capacity == 16 * MiB
    assert usage(world) == (1, 16 * MiB)

    lead_to_volume(ctx, world.pool.pk, "never-made.img")
    assert "does not list" in ctx.job.log and "never-made.img" in ctx.job.log, ctx.job.log
