"""Teams from the shell: createteam, addmember, removemember (accounts) and grantpool, revokepool (pools)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from accounts.models import Membership, Team
from accounts.roles import MEMBER, is_member
from pools.models import PoolGrant, StoragePool

pytestmark = pytest.mark.django_db(transaction=True)

GiB = 1024**3


def run(*args: str) -> str:
    from io import StringIO

    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def refused(*args: str) -> str:
    with pytest.raises(CommandError) as caught:
        run(*args)
    return str(caught.value)


@pytest.fixture
def pool(local_host) -> StoragePool:
    """A pool row of the inventory (the commands never ask libvirt)."""
    return StoragePool.objects.create(host=local_host, name="vms")


def test_createteam_creates_then_changes_only_what_is_given() -> None:
    assert "Created team alpha" in run("createteam", "alpha", "--description", "Web", "--auto-approve-max", "20G")
    team = Team.objects.get(name="alpha")
    assert (team.description, team.all_pools, team.auto_approve_max_bytes) == ("Web", False, 20 * GiB)
    assert "Updated team alpha" in run("createteam", "alpha", "--all-pools")
    team.refresh_from_db()
    assert (team.description, team.all_pools, team.auto_approve_max_bytes) == ("Web", True, 20 * GiB)
    run("createteam", "alpha", "--no-all-pools", "--auto-approve-max", "none")
    team.refresh_from_db()
    assert (team.all_pools, team.auto_approve_max_bytes) == (False, None)


def test_createteam_errors() -> None:
    assert "is not a size" in refused("createteam", "beta", "--auto-approve-max", "lots")
    assert "Unknown unit" in refused("createteam", "beta", "--auto-approve-max", "5Q")
    assert not Team.objects.filter(name="beta").exists()
    run("createteam", "beta")
    assert "already a team named Beta" in refused("createteam", "Beta")
    assert "required" in refused("createteam", "  ")


def test_addmember_adds_changes_the_role_and_removemember_removes() -> None:
    team = Team.objects.create(name="alpha")
    user = get_user_model().objects.create_user("nora", password="correct-horse-battery")  # no role yet
    assert "Added nora to team alpha as operator" in run("addmember", "alpha", "nora", "--role", "operator")
    assert Membership.objects.get(team=team, user=user).role == "operator"
    assert is_member(get_user_model().objects.get(pk=user.pk))  # a team is of no use to an account without a role
    assert "operator -> member" in run("addmember", "alpha", "nora", "--role", "member")
    assert Membership.objects.get(team=team, user=user).role == MEMBER
    assert Membership.objects.filter(user=user).count() == 1
    assert "Removed nora from team alpha" in run("removemember", "alpha", "nora")
    assert not Membership.objects.filter(user=user).exists()
    assert get_user_model().objects.filter(username="nora").exists()  # the account stays


def test_member_command_errors() -> None:
    Team.objects.create(name="alpha")
    get_user_model().objects.create_user("nora", password="correct-horse-battery")
    assert "no team 'gamma'" in refused("addmember", "gamma", "nora")
    assert "no account named ghost" in refused("addmember", "alpha", "ghost")
    with pytest.raises(CommandError, match="invalid choice"):
        run("addmember", "alpha", "nora", "--role", "admin")
    assert "nora is not in team alpha" in refused("removemember", "alpha", "nora")
    assert "no account named 'ghost'" in refused("removemember", "alpha", "ghost")
    assert "no team 'gamma'" in refused("removemember", "gamma", "nora")
    assert not Membership.objects.exists()


def test_grantpool_with_a_quota_updates_it_and_revokepool(pool) -> None:
    team = Team.objects.create(name="alpha")
    out = run("grantpool", "alpha", "local", "vms", "--max-size", "100G", "--max-volumes", "5")
    assert "Granted pool vms on local to team alpha: max size 100G, max volumes 5" in out
    grant = PoolGrant.objects.get(team=team, pool=pool)
    assert (grant.max_virtual_bytes, grant.max_volumes) == (100 * GiB, 5)
    assert "Updated the grant" in run("grantpool", "alpha", "local", "vms", "--max-volumes", "7")
    grant.refresh_from_db()
    assert (grant.max_virtual_bytes, grant.max_volumes) == (100 * GiB, 7)  # the size not given stays
    run("grantpool", "alpha", "local", "vms", "--max-size", "none")
    grant.refresh_from_db()
    assert (grant.max_virtual_bytes, grant.max_volumes) == (None, 7)
    assert PoolGrant.objects.count() == 1
    assert "Revoked pool vms on local from team alpha" in run("revokepool", "alpha", "local", "vms")
    assert not PoolGrant.objects.exists()
    assert StoragePool.objects.filter(pk=pool.pk).exists()  # the pool itself is untouched


def test_grant_command_errors(pool) -> None:
    Team.objects.create(name="alpha")
    assert "no team 'gamma'" in refused("grantpool", "gamma", "local", "vms")
    assert "no host 'kvm9'" in refused("grantpool", "alpha", "kvm9", "vms")
    assert "host 'local' has no pool 'data'" in refused("grantpool", "alpha", "local", "data")
    assert "is not a size" in refused("grantpool", "alpha", "local", "vms", "--max-size", "big")
    assert "greater than or equal to 0" in refused("grantpool", "alpha", "local", "vms", "--max-volumes", "-1")
    assert "whole number" in refused("grantpool", "alpha", "local", "vms", "--max-volumes", "many")
    assert not PoolGrant.objects.exists()
    assert "team alpha has no grant in pool vms on local" in refused("revokepool", "alpha", "local", "vms")
    assert "no host 'kvm9'" in refused("revokepool", "alpha", "kvm9", "vms")
