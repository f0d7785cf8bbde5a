"""Who sees and changes which VM: the team that owns it (its operators attach and detach), a team that may use every
pool, admins; and only volumes the user may create in. (Every URL × every kind of user: test_authorization_matrix.)"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from django.urls import reverse

from accounts.models import Membership, Team
from accounts.teams import default_team, join
from hosts.models import Domain
from inventory.sync import sync_host
from jobs.models import Job
from pools.models import PoolGrant, StoragePool
from tests.conftest import _cleanup_pool, make_scratch_pool
from tests.pools.test_team_pages import account
from tests.vms.helpers import run_job, vm_row
from tests.vms.machines import defined_vm
from volumes.models import Volume

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def teams(synced, local_host, tmp_path, tmp_path_factory) -> Iterator[dict]:
    """Team "web" may use pool 1 and owns VM web1; team "db" may use pool 2 and owns VM db1; VM lost1 has no
    team. Accounts: web's member and operator, db's operator, and a member of the default team (every pool)."""
    pool, _ = synced
    other = make_scratch_pool(tmp_path_factory.mktemp("pools"))
    other.create_volume("db.img", "8M")
    sync_host(local_host, pool_names=[other.name])
    pool2 = StoragePool.objects.get(host=local_host, name=other.name)
    web, db = Team.objects.create(name="web"), Team.objects.create(name="db")
    PoolGrant.objects.create(team=web, pool=pool)
    PoolGrant.objects.create(team=db, pool=pool2)
    clients = {"web_member": account("wm", "web"), "web_op": account("wo", "web", Membership.Role.OPERATOR),
               "db_op": account("do", "db", Membership.Role.OPERATOR), "everyone": account("ev")}
    join(clients["everyone"].user, default_team(), Membership.Role.MEMBER)
    try:
        with defined_vm(tmp_path, "web1") as web1, defined_vm(tmp_path, "db1") as db1, \
                defined_vm(tmp_path, "lost1") as lost1:
            rows = {name: vm_row(local_host, vm) for name, vm in (("web1", web1), ("db1", db1), ("lost1", lost1))}
            Domain.objects.filter(pk=rows["web1"].pk).update(team=web)
            Domain.objects.filter(pk=rows["db1"].pk).update(team=db)
            yield {"clients": clients, "vms": rows, "pool": pool, "pool2": pool2, "libvirt": {"web1": web1}}
    finally:
        _cleanup_pool(other.name)
        shutil.rmtree(other.path, ignore_errors=True)


def _listed(client, host) -> set[str]:
    page = client.get(reverse("vms:list", args=[host.pk])).content.decode()
    return {name for name in ("web1", "db1", "lost1") if f"-{name}-" in page}


def test_each_sees_the_vms_of_their_teams(teams, local_host):
    clients, vms = teams["clients"], teams["vms"]
    assert _listed(clients["web_member"], local_host) == {"web1"}
    assert _listed(clients["db_op"], local_host) == {"db1"}
    assert _listed(clients["everyone"], local_host) == {"web1", "db1", "lost1"}  # a team that may use every pool
    assert clients["db_op"].get(vms["web1"].get_absolute_url()).status_code == 404
    assert clients["web_op"].get(vms["lost1"].get_absolute_url()).status_code == 404
    assert clients["web_member"].get(vms["web1"].get_absolute_url()).status_code == 200
    assert clients["everyone"].get(vms["lost1"].get_absolute_url()).status_code == 200


def test_only_the_owning_teams_operators_change_disks(teams, celery_worker, local_host):
    clients, vms, pool, pool2 = teams["clients"], teams["vms"], teams["pool"], teams["pool2"]
    web1 = vms["web1"]
    data = {"pool": pool.pk, "volume": "raw-thin.img", "bus": "virtio"}
    member_page = clients["web_member"].get(web1.get_absolute_url()).content.decode()
    assert "Attach a volume" not in member_page and "Detach…" not in member_page
    assert clients["web_member"].post(reverse("vms:attach", args=[web1.pk]), data).status_code == 403
    assert clients["everyone"].post(reverse("vms:attach", args=[web1.pk]), data).status_code == 403  # a member only
    assert clients["db_op"].post(reverse("vms:attach", args=[web1.pk]), data).status_code == 404
    # web's operator: pool 2 is not theirs (not even offered), pool 1 is
    refused = clients["web_op"].post(reverse("vms:attach", args=[web1.pk]), {**data, "pool": pool2.pk,
                                                                             "volume": "db.img"})
    assert refused.status_code == 400 and "Select a valid choice" in refused.content.decode()
    assert clients["web_op"].get(reverse("vms:attach_volume", args=[Volume.objects.get(pool=pool2).pk])
                                 ).status_code == 404
    assert not Job.objects.exists()
    job = run_job(clients["web_op"], reverse("vms:attach", args=[web1.pk]), data)
    assert job.state == Job.State.SUCCEEDED, job.error
    assert teams["libvirt"]["web1"].blklist(inactive=True) == {"vda": "raw-thin.img"}


def test_the_volume_page_offers_the_vms_the_user_may_change(teams):
    clients, vms, pool = teams["clients"], teams["vms"], teams["pool"]
    volume = Volume.objects.get(pool=pool, name="base.qcow2")
    page = clients["web_op"].get(volume.get_absolute_url()).content.decode()
    assert 'id="volume-attach"' in page
    assert vms["web1"].name in page and vms["db1"].name not in page and vms["lost1"].name not in page
    assert 'id="volume-attach"' not in clients["web_member"].get(volume.get_absolute_url()).content.decode()
    response = clients["web_op"].post(reverse("vms:attach_volume", args=[volume.pk]),
                                      {"vm": vms["lost1"].pk, "bus": "virtio"})
    assert response.status_code == 400 and "Select a valid choice" in response.content.decode()
    assert not Job.objects.exists()
