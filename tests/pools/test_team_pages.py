"""Teams end to end: a team's people see and use only its pools (the confinement), and the admins' team pages
(members, grants, quota usage) with their audit records."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from accounts.models import Membership, Team
from accounts.roles import MEMBER, grant
from accounts.teams import default_team, join
from audit.models import AuditRecord
from inventory.sync import sync_host
from jobs.models import Job
from pools.models import PoolGrant, StoragePool
from provisioning.models import ProvisioningRequest
from provisioning.quota import Ledger
from tests.conftest import _cleanup_pool, make_scratch_pool, virsh, wait_for_job
from tests.volumes.conftest import Api
from tests.volumes.test_volume_ops import job_from, run_op, vol_names
from volumes.models import Volume

pytestmark = pytest.mark.django_db(transaction=True)

MiB = 1024**2


@pytest.fixture
def second_pool(local_host, tmp_path_factory) -> Iterator[tuple[StoragePool, object]]:
    """Pool 2, another team's, with a volume of its own."""
    scratch = make_scratch_pool(tmp_path_factory.mktemp("pools"))
    scratch.create_volume("theirs.img", "8M")
    try:
        sync_host(local_host, pool_names=[scratch.name])
        yield StoragePool.objects.get(host=local_host, name=scratch.name), scratch
    finally:
        _cleanup_pool(scratch.name)
        shutil.rmtree(scratch.path, ignore_errors=True)


def account(username: str, team: str | None = None, role: str = MEMBER) -> Client:
    """A logged-in client of a new account with the member role, in `team` (not the default team) or in none."""
    user = get_user_model().objects.create_user(username=username, password="correct-horse-battery")
    grant(user, MEMBER)
    if team is not None:
        join(user, Team.objects.get(name=team), role)
    client = Client()
    client.force_login(user)
    client.user = user
    return client


@pytest.fixture
def world(synced, second_pool) -> SimpleNamespace:
    """Team A may use pool 1 (with a quota), team B pool 2; made with the management commands."""
    pool1, scratch1 = synced
    pool2, scratch2 = second_pool
    for name in ("team-a", "team-b"):
        call_command("createteam", name)
    call_command("grantpool", "team-a", "local", pool1.name, "--max-size", "4G", "--max-volumes", "20")
    call_command("grantpool", "team-b", "local", pool2.name)
    return SimpleNamespace(pool1=pool1, scratch1=scratch1, pool2=pool2, scratch2=scratch2,
                           theirs=Volume.objects.get(pool=pool2, name="theirs.img"),
                           ours=Volume.objects.get(pool=pool1, name="raw-thin.img"))


def shows(client: Client, url: str, *names: str) -> list[bool]:
    html = client.get(url).content.decode()
    return [name in html for name in names]


# -- confinement ------------------------------------------------------------------------------

def test_a_team_member_sees_only_the_teams_pool(world) -> None:
    mia = account("mia", "team-a")
    names = (world.pool1.name, world.pool2.name)
    assert shows(mia, reverse("dashboard"), *names) == [True, False]
    assert shows(mia, reverse("hosts:detail", args=[world.pool1.host_id]), *names) == [True, False]
    assert mia.get(reverse("pools:detail", args=[world.pool1.pk])).status_code == 200
    other_pools = [reverse(f"pools:{view}", args=[world.pool2.pk]) for view in ("detail", "volumes", "card", "live")]
    theirs = world.theirs.pk
    for url in [*other_pools, reverse("volumes:detail", args=[theirs]), reverse("volumes:download", args=[theirs]),
                reverse("volumes:upload_new") + f"?pool={world.pool2.pk}",
                reverse("volumes:upload_new") + f"?volume={theirs}", reverse("volumes:clone", args=[theirs]),
                reverse("volumes:backing_options", args=[world.pool2.pk])]:
        assert mia.get(url).status_code == 404, url
    mine = mia.get(reverse("teams:mine")).content.decode()
    assert "team-a" in mine and world.pool1.name in mine and world.pool2.name not in mine and "team-b" not in mine


def test_a_member_may_not_change_volumes_but_clones_and_uploads_in_the_teams_pool(world, celery_worker, asgi_server,
                                                                                  tmp_path) -> None:
    mia = account("mia", "team-a")
    pool1, ours = world.pool1, world.ours
    before = virsh("vol-list", pool1.name), virsh("vol-list", world.pool2.name)
    assert mia.get(reverse("volumes:create", args=[pool1.pk])).status_code == 403
    refused = {
        reverse("volumes:create", args=[pool1.pk]): {"name": "m.img", "capacity": "8M", "format": "raw",
                                                     "provisioning": "off"},
        reverse("volumes:resize", args=[ours.pk]): {"capacity": "96M"},
        reverse("volumes:wipe", args=[ours.pk]): {"algorithm": "zero", "confirm": ours.name},
        reverse("volumes:delete", args=[ours.pk]): {"confirm": ours.name},
    }
    for url, data in refused.items():
        assert mia.post(url, data).status_code == 403, url
    assert mia.get(reverse("volumes:upload_new") + f"?volume={ours.pk}").status_code == 403  # replacing: operators
    # A clone goes only into the team's pool: the form lists pool 1 alone and refuses pool 2.
    clone = reverse("volumes:clone", args=[ours.pk])
    assert list(mia.get(clone).context["form"].fields["target_pool"].queryset) == [pool1]
    wrong = mia.post(clone, {"name": "copy.img", "target_pool": world.pool2.pk, "format": ""})
    assert wrong.status_code == 400 and "Select a valid choice" in wrong.content.decode()
    assert (virsh("vol-list", pool1.name), virsh("vol-list", world.pool2.name)) == before
    assert not Job.objects.exists()
    job = run_op(mia, clone, {"name": "copy.img", "target_pool": pool1.pk, "format": ""})
    assert job.state == Job.State.SUCCEEDED, job.error
    assert "copy.img" in vol_names(pool1.name)
    # An upload into a new volume of the team's pool.
    assert mia.get(reverse("volumes:upload_new") + f"?pool={pool1.pk}").status_code == 200
    source = tmp_path / "up.img"
    source.write_bytes(os.urandom(2 * MiB))
    api = Api(asgi_server.url, mia.user)
    upload = api.create(pool=pool1.pk, volume="up.img", mode="new", size=2 * MiB)
    assert upload.status_code == 201, upload.text
    api.send_file(upload.json(), source)
    job = wait_for_job(api.complete(upload.json()).json()["job"])
    assert job.state == Job.State.SUCCEEDED, job.error
    assert "up.img" in vol_names(pool1.name)
    assert api.create(pool=world.pool2.pk, volume="x.img", mode="new", size=MiB).status_code == 400


def test_an_operator_of_the_team_creates_in_its_pool_only(world, celery_worker) -> None:
    otto = account("otto", "team-a", Membership.Role.OPERATOR)
    url = reverse("volumes:create", args=[world.pool1.pk])
    assert otto.get(url).status_code == 200
    job = wait_for_job(job_from(otto.post(url, {"name": "op.img", "capacity": "8M", "format": "raw",
                                                "provisioning": "off"})).pk)
    assert job.state == Job.State.SUCCEEDED, job.error
    assert "op.img" in vol_names(world.pool1.name)
    assert otto.get(reverse("volumes:create", args=[world.pool2.pk])).status_code == 404


def test_no_team_sees_no_pool_and_an_admin_sees_both(world, admin_user) -> None:
    nobody = account("nemo")
    names = (world.pool1.name, world.pool2.name)
    assert shows(nobody, reverse("dashboard"), *names) == [False, False]
    assert nobody.get(reverse("pools:detail", args=[world.pool1.pk])).status_code == 404
    assert nobody.get(reverse("volumes:detail", args=[world.ours.pk])).status_code == 404
    assert "in no team yet" in nobody.get(reverse("teams:mine")).content.decode()
    admin = Client()
    admin.force_login(admin_user)
    assert shows(admin, reverse("dashboard"), *names) == [True, True]
    assert admin.get(reverse("pools:detail", args=[world.pool2.pk])).status_code == 200


def test_the_team_pages_are_for_admins_only(world) -> None:
    mia = account("mia", "team-a", Membership.Role.OPERATOR)
    team = Team.objects.get(name="team-a")
    state = lambda: [list(m.objects.values_list()) for m in (Team, Membership, PoolGrant)]  # noqa: E731
    before = state()
    for name in ("list", "create"):
        assert mia.get(reverse(f"teams:{name}")).status_code == 403
    for name in ("detail", "edit"):
        assert mia.get(reverse(f"teams:{name}", args=[team.pk])).status_code == 403
    posts = {
        reverse("teams:create"): {"name": "mine"},
        reverse("teams:edit", args=[team.pk]): {"name": "team-a", "all_pools": "on"},
        reverse("teams:member_set", args=[team.pk]): {"username": "mia", "role": "operator"},
        reverse("teams:member_remove", args=[team.pk, mia.user.pk]): {},
        reverse("teams:grant_set", args=[team.pk]): {"pool": world.pool2.pk},
        reverse("teams:grant_revoke", args=[team.pk, world.pool1.pk]): {},
    }
    for url, data in posts.items():
        assert mia.post(url, data).status_code == 403, url
    assert state() == before
    assert not AuditRecord.objects.filter(action__startswith="team.").exists()


# -- the admins' pages ------------------------------------------------------------------------

def _last(action: str) -> AuditRecord:
    return AuditRecord.objects.filter(action=action).latest("pk")


def test_an_admin_creates_and_edits_a_team(client, admin_user) -> None:
    client.force_login(admin_user)
    bad = client.post(reverse("teams:create"), {"name": "web", "auto_approve_max": "lots"})
    assert bad.status_code == 400 and "is not a size" in bad.content.decode()
    assert client.post(reverse("teams:create"), {"name": ""}).status_code == 400
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(admin_user)
    assert strict.post(reverse("teams:create"), {"name": "web"}).status_code == 403
    response = client.post(reverse("teams:create"), {"name": "web", "description": "Web farm",
                                                     "auto_approve_max": "10G"})
    team = Team.objects.get(name="web")
    assert response.status_code == 302 and response.url == reverse("teams:detail", args=[team.pk])
    assert (team.auto_approve_max_bytes, team.all_pools) == (10 * 1024**3, False)
    assert _last("team.create").target_id == str(team.pk) and _last("team.create").user == admin_user
    assert client.post(reverse("teams:create"), {"name": "WEB"}).status_code == 400  # names ignore case
    form = client.get(reverse("teams:edit", args=[team.pk])).content.decode()
    assert 'value="10G"' in form
    client.post(reverse("teams:edit", args=[team.pk]), {"name": "web", "description": "Web farm", "all_pools": "on",
                                                        "auto_approve_max": ""})
    team.refresh_from_db()
    assert (team.all_pools, team.auto_approve_max_bytes) == (True, None)
    assert set(_last("team.edit").detail) == {"all_pools", "auto_approve_max"}
    default = default_team()
    renamed = client.post(reverse("teams:edit", args=[default.pk]), {"name": "everyone", "all_pools": "on"})
    assert renamed.status_code == 400 and "keeps its name" in renamed.content.decode()
    listing = client.get(reverse("teams:list")).content.decode()
    assert reverse("teams:detail", args=[team.pk]) in listing and "every pool" in listing


def test_an_admin_manages_members(client, admin_user) -> None:
    client.force_login(admin_user)
    team = Team.objects.create(name="web")
    nora = get_user_model().objects.create_user("nora", password="correct-horse-battery")
    url = reverse("teams:member_set", args=[team.pk])
    unknown = client.post(url, {"username": "ghost", "role": "member"})
    assert unknown.status_code == 400 and "There is no account named ghost" in unknown.content.decode()
    assert client.post(url, {"username": "nora", "role": "boss"}).status_code == 400
    assert client.post(url, {"username": "nora", "role": "member"}).status_code == 302
    assert Membership.objects.get(team=team, user=nora).role == "member"
    assert _last("team.member.add").detail["user"] == "nora"
    client.post(url, {"username": "nora", "role": "operator"})
    assert Membership.objects.get(team=team, user=nora).role == "operator"
    assert _last("team.member.role").detail == {"user": "nora", "role": "operator", "before": "member"}
    page = client.get(reverse("teams:detail", args=[team.pk])).content.decode()
    assert "nora" in page and '<option value="operator" selected>' in page
    client.post(reverse("teams:member_remove", args=[team.pk, nora.pk]))
    assert not Membership.objects.filter(team=team).exists()
    assert _last("team.member.remove").target == "team web"
    assert client.post(reverse("teams:member_remove", args=[team.pk, nora.pk])).status_code == 404


def test_an_admin_grants_a_pool_with_a_quota_and_sees_the_usage(client, admin_user, synced) -> None:
    pool, _ = synced
    client.force_login(admin_user)
    team = Team.objects.create(name="web")
    detail = reverse("teams:detail", args=[team.pk])
    assert f">local / {pool.name}<" in client.get(detail).content.decode()  # offered in the grant form
    url = reverse("teams:grant_set", args=[team.pk])
    bad = client.post(url, {"pool": pool.pk, "max_size": "2X"})
    assert bad.status_code == 400 and "Unknown unit" in bad.content.decode()
    assert client.post(url, {"pool": 999999}).status_code == 400
    assert not PoolGrant.objects.exists()
    assert client.post(url, {"pool": pool.pk, "max_size": "2G", "max_volumes": "3"}).status_code == 302
    grant = PoolGrant.objects.get(team=team, pool=pool)
    assert (grant.max_virtual_bytes, grant.max_volumes) == (2 * 1024**3, 3)
    assert _last("team.grant").detail["pool_id"] == pool.pk
    # Usage by the quota rule: the team's volumes (not every volume of the pool) plus the approved requests not
    # made yet; against 2 GiB and 3 volumes.
    assert 'aria-label="0% of the quota used"' in client.get(detail).content.decode()
    volumes = list(Volume.objects.filter(pool=pool).order_by("name"))
    made, other = volumes[:3], volumes[3]
    for volume in made:  # their create jobs recorded them as the team's
        ProvisioningRequest.objects.create(team=team, pool=pool, name=volume.name, capacity=1, volume=volume,
                                           state="ready")
    Volume.objects.filter(pk__in=[v.pk for v in made]).update(team=team)
    other.team = Team.objects.create(name="else")
    other.save(update_fields=["team"])
    ProvisioningRequest.objects.create(team=other.team, pool=pool, name=other.name,
                                       capacity=1, volume=other, state="ready")  # another team's: not ours
    ProvisioningRequest.objects.create(team=team, pool=pool, name="coming.img", capacity=300 * MiB,
                                       state="approved")
    made_bytes = sum(v.capacity for v in made)  # at the volumes' size now, not the size asked for
    usage = Ledger.read({(team.pk, pool.pk)}).usage(team.pk, pool.pk)
    assert (usage.count, usage.capacity, usage.reserved.count, usage.reserved.capacity) == (3, made_bytes, 1, 300 * MiB)
    page = client.get(detail).content.decode()
    share = int((made_bytes + 300 * MiB) * 100 / (2 * 1024**3))
    assert f'aria-label="{share}% of the quota used"' in page and "4 of 3" in page, page
    assert "300 MiB</span> of it on the way (approved requests, jobs and uploads under way)" in page, page
    assert f">local / {pool.name}<" not in page  # granted: no longer offered as a new grant
    client.post(url, {"pool": pool.pk, "max_size": "1G", "max_volumes": ""})
    grant.refresh_from_db()
    assert (grant.max_virtual_bytes, grant.max_volumes) == (1024**3, None)
    assert _last("team.quota").detail["max_volumes"] == {"from": 3, "to": None}
    assert "over the quota" in client.get(detail).content.decode()
    client.post(reverse("teams:grant_revoke", args=[team.pk, pool.pk]))
    assert not PoolGrant.objects.exists() and StoragePool.objects.filter(pk=pool.pk).exists()
    assert _last("team.revoke").detail["pool_id"] == pool.pk
    assert client.post(reverse("teams:grant_revoke", args=[team.pk, pool.pk])).status_code == 404
