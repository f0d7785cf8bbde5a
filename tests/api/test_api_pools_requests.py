"""Pool lifecycle, provisioning requests and approvals, and VM disks through the API, end to end on the real
libvirtd with the job followed to its end; virsh is the witness."""

from __future__ import annotations

import pytest

from accounts.models import Team
from accounts.roles import MEMBER
from accounts.teams import join
from pools.models import PoolGrant, StoragePool
from provisioning.models import ProvisioningRequest
from tests.api.conftest import post, token_client
from tests.api.helpers import succeeded
from tests.conftest import _user, make_scratch_pool, virsh, wait_for_job

pytestmark = pytest.mark.django_db(transaction=True)


def _pool_state(name: str) -> dict[str, str]:
    out = virsh("pool-info", name)
    return {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in out.splitlines() if ":" in line)}


def test_pool_lifecycle(synced, celery_worker, admin_api, api) -> None:
    pool, scratch = synced
    assert post(api, f"/api/pools/{pool.pk}/stop/").status_code == 403  # an operator: not a pool's admin
    succeeded(admin_api, post(admin_api, f"/api/pools/{pool.pk}/stop/"))
    assert _pool_state(scratch.name)["State"] == "inactive"
    assert admin_api.get(f"/api/pools/{pool.pk}/").json()["state"] == "inactive"
    running = post(admin_api, f"/api/pools/{pool.pk}/build/", {})
    succeeded(admin_api, running)  # a stopped dir pool builds (its directory exists: nothing to do)
    succeeded(admin_api, post(admin_api, f"/api/pools/{pool.pk}/start/"))
    assert _pool_state(scratch.name)["State"] == "running"
    refused = post(admin_api, f"/api/pools/{pool.pk}/build/", {})
    assert refused.status_code == 400 and "running" in refused.json()["errors"]["non_field_errors"][0]["message"]
    succeeded(admin_api, post(admin_api, f"/api/pools/{pool.pk}/refresh/"))
    succeeded(admin_api, post(admin_api, f"/api/pools/{pool.pk}/autostart-on/"))
    assert _pool_state(scratch.name)["Autostart"] == "yes"
    succeeded(admin_api, post(admin_api, f"/api/pools/{pool.pk}/autostart-off/"))
    assert _pool_state(scratch.name)["Autostart"] == "no"


def test_pool_delete_and_undefine(local_host, celery_worker, admin_api, tmp_path_factory) -> None:
    from inventory.sync import sync_host

    doomed, forgotten = (make_scratch_pool(tmp_path_factory.mktemp("pools")) for _ in range(2))
    sync_host(local_host, pool_names=[doomed.name, forgotten.name])
    rows = {p.name: p.pk for p in StoragePool.objects.filter(name__in=[doomed.name, forgotten.name])}
    unconfirmed = post(admin_api, f"/api/pools/{rows[doomed.name]}/delete/", {"confirm_name": "nope"})
    assert unconfirmed.status_code == 400 and "confirm_name" in unconfirmed.json()["errors"]
    succeeded(admin_api, post(admin_api, f"/api/pools/{rows[doomed.name]}/delete/", {"confirm_name": doomed.name}))
    succeeded(admin_api, post(admin_api, f"/api/pools/{rows[forgotten.name]}/undefine/"))
    names = virsh("pool-list", "--all", "--name")
    assert doomed.name not in names and not doomed.path.exists()
    assert forgotten.name not in names and forgotten.path.exists()  # undefine keeps the storage
    virsh("pool-destroy", forgotten.name, check=False)  # (a running pool undefined stays until stopped)


def test_a_request_is_filed_approved_and_made(synced, celery_worker, api) -> None:
    pool, scratch = synced
    team = Team.objects.create(name="builders")
    PoolGrant.objects.create(team=team, pool=pool)
    asker = _user("ria", MEMBER, team_role="member")
    asker.memberships.all().delete()
    join(asker, team, "member")
    approver = _user("opa", MEMBER)
    approver.memberships.all().delete()
    join(approver, team, "operator")
    asker_api, approver_api = token_client(asker), token_client(approver)
    assert post(asker_api, f"/api/pools/{pool.pk}/volumes/", {"name": "x.img"}).status_code == 403
    filed = post(asker_api, "/api/requests/", {"pool": pool.pk, "team": team.pk, "name": "asked.img",
                                               "capacity": "8M", "format": "raw", "provisioning": "off",
                                               "purpose": "CI scratch"})
    assert filed.status_code == 201, filed.content
    req = filed.json()["request"]
    assert req["state"] == "pending" and req["requested_by"] == "ria"
    own = post(asker_api, "/api/approvals/review/", {"requests": [req["id"]], "decision": "approve"})
    assert own.status_code == 403  # a plain member has no queue
    queue = approver_api.get("/api/approvals/").json()
    assert [r["id"] for r in queue["results"]] == [req["id"]]
    reject_without_why = post(approver_api, "/api/approvals/review/", {"requests": [req["id"]],
                                                                        "decision": "reject"})
    assert reject_without_why.status_code == 400 and "comment" in reject_without_why.json()["errors"]
    outcomes = post(approver_api, "/api/approvals/review/", {"requests": [req["id"]], "decision": "approve",
                                                              "comment": "ok"}).json()
    assert outcomes[0]["ok"] and outcomes[0]["job"]
    job = wait_for_job(outcomes[0]["job"])
    assert job.state == "succeeded", job.error
    assert "asked.img" in virsh("vol-list", scratch.name)
    detail = asker_api.get(f"/api/requests/{req['id']}/").json()  # the job is over: ready, settled or not yet
    assert detail["state"] == "ready" and detail["volume"]
    assert ProvisioningRequest.objects.get(pk=req["id"]).reviewer == approver
    withdrawn = post(asker_api, f"/api/requests/{req['id']}/withdraw/")
    assert withdrawn.status_code == 409 and withdrawn.json()["code"] == "refused"


def test_a_request_whose_job_ended_shows_settled_even_before_the_worker_settles_it(synced) -> None:
    """The worker settles a request when its job ends (jobs.signals.job_finished); until then, or when that
    never came (a worker killed between the two), the API shows what the request page shows: the job's end."""
    from jobs.models import Job

    pool, _ = synced
    team = Team.objects.create(name="settlers")
    asker = _user("sam", MEMBER, team_role="member")
    asker.memberships.all().delete()
    join(asker, team, "member")
    outcomes = {"made.img": Job.State.SUCCEEDED, "broken.img": Job.State.FAILED}
    for name, state in outcomes.items():
        job = Job.objects.create(kind="create", host=pool.host, pool=pool, pool_name=pool.name, volume_name=name,
                                 created_by=asker, state=state, error="the disk is full" if state == "failed" else "")
        req = ProvisioningRequest.objects.create(team=team, pool=pool, requested_by=asker, name=name,
                                                 capacity=8 * 1024 * 1024, job=job,
                                                 state=ProvisioningRequest.State.PROVISIONING)
        detail = token_client(asker).get(f"/api/requests/{req.pk}/").json()
        assert detail["state"] == ("ready" if state == Job.State.SUCCEEDED else "failed"), detail
        assert ProvisioningRequest.objects.get(pk=req.pk).state == detail["state"]
    assert detail["error"] == "the disk is full"
