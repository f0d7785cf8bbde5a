"""Volume operations end to end through the API: the pages' forms check them, the job runs in a real worker on
the real libvirtd, the client follows it at its API url; virsh is the witness. Errors come in one shape."""

from __future__ import annotations

import httpx
import pytest

from jobs.models import Job
from tests.api.conftest import post, token_client, token_for
from tests.api.helpers import succeeded
from tests.conftest import _user, virsh
from volumes.models import Volume

pytestmark = pytest.mark.django_db(transaction=True)
MiB = 1024 * 1024


def _volume_id(api, pool, name: str) -> int:
    found = api.get(f"/api/volumes/?pool={pool.pk}&search={name}").json()["results"]
    return next(v["id"] for v in found if v["name"] == name)


def test_create_clone_resize_wipe_delete(synced, celery_worker, api) -> None:
    pool, scratch = synced
    job = succeeded(api, post(api, f"/api/pools/{pool.pk}/volumes/", {
        "name": "api.qcow2", "capacity": "32M", "format": "qcow2", "provisioning": "off"}))
    assert (job["kind"], job["volume_name"], job["error"]) == ("create", "api.qcow2", "")
    assert int(scratch.vol_info("api.qcow2")["Capacity"].split()[0]) == 32 * MiB
    volume = _volume_id(api, pool, "api.qcow2")
    detail = api.get(f"/api/volumes/{volume}/").json()
    assert (detail["format"], detail["capacity"], detail["in_use"], detail["vms"]) == ("qcow2", 32 * MiB, False, [])

    succeeded(api, post(api, f"/api/volumes/{volume}/clone/", {"name": "api-copy.qcow2", "target_pool": pool.pk}))
    assert "api-copy.qcow2" in virsh("vol-list", scratch.name)

    succeeded(api, post(api, f"/api/volumes/{volume}/resize/", {"capacity": "48M"}))
    assert int(scratch.vol_info("api.qcow2")["Capacity"].split()[0]) == 48 * MiB

    raw = _volume_id(api, pool, "raw-thin.img")
    succeeded(api, post(api, f"/api/volumes/{raw}/wipe/", {"algorithm": "zero", "confirm": "raw-thin.img"}))

    copy = _volume_id(api, pool, "api-copy.qcow2")
    job = succeeded(api, post(api, f"/api/volumes/{copy}/delete/", {"confirm": "api-copy.qcow2"}))
    assert "api-copy.qcow2" not in virsh("vol-list", scratch.name)
    assert api.get(f"/api/volumes/{copy}/").status_code == 404  # the job's sync removed the row
    assert Job.objects.get(pk=job["id"]).created_by.username == "mia"


def test_errors_are_json_field_by_field_with_stable_codes(synced, celery_worker, api) -> None:
    pool, scratch = synced
    bad = post(api, f"/api/pools/{pool.pk}/volumes/", {"name": "-rf", "capacity": "lots", "format": "vmdk"})
    assert bad.status_code == 400
    body = bad.json()
    assert body["code"] == "invalid" and set(body["errors"]) >= {"name", "capacity", "format"}
    assert all({"message", "code"} == set(item) for items in body["errors"].values() for item in items)
    assert body["errors"]["format"][0]["code"] == "invalid_choice"

    taken = post(api, f"/api/pools/{pool.pk}/volumes/", {"name": "raw-thin.img", "capacity": "1M", "format": "raw",
                                                         "provisioning": "off"})
    assert taken.status_code == 400 and "already has a volume" in taken.json()["errors"]["name"][0]["message"]

    volume = _volume_id(api, pool, "raw-thin.img")
    unconfirmed = post(api, f"/api/volumes/{volume}/delete/", {"confirm": "wrong"})
    assert unconfirmed.status_code == 400 and "confirm" in unconfirmed.json()["errors"]

    not_json = api.post(f"/api/volumes/{volume}/resize/", "[1, 2]", content_type="application/json")
    assert not_json.status_code == 400 and not_json.json()["code"] == "parse_error"

    assert api.get("/api/volumes/999999/").json() == {"code": "not_found", "message": "No Volume matches the "
                                                      "given query.", "errors": {}}
    assert not Job.objects.exists() and "raw-thin.img" in virsh("vol-list", scratch.name)


def test_a_busy_volume_is_409_and_the_queue_down_503(synced, celery_worker, api, settings) -> None:
    pool, _scratch = synced
    volume = Volume.objects.get(pool=pool, name="raw-thin.img")
    Job.objects.create(kind="wipe", host=pool.host, pool=pool, volume_name=volume.name, state=Job.State.RUNNING)
    busy = post(api, f"/api/volumes/{volume.pk}/delete/", {"confirm": volume.name})
    assert busy.status_code == 409 and busy.json()["code"] == "job_conflict"
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    down = post(api, f"/api/volumes/{volume.pk}/clone/", {"name": "c.img", "target_pool": pool.pk})
    assert down.status_code == 503 and down.json()["code"] == "queue_unavailable"
    assert Job.objects.count() == 1


def test_roles_and_teams_are_the_pages_rules(synced, celery_worker) -> None:
    """A plain member may clone but not delete; another team's user does not see the volume at all."""
    from accounts.models import Team
    from accounts.roles import MEMBER, grant
    from accounts.teams import join
    from pools.models import PoolGrant

    pool, scratch = synced
    team = Team.objects.create(name="storage")
    PoolGrant.objects.create(team=team, pool=pool)
    plain = _user("mo", MEMBER, team_role="member")
    plain.memberships.all().delete()
    join(plain, team, "member")
    stranger = _user("sam", MEMBER, team_role="member")
    stranger.memberships.all().delete()
    grant(stranger, MEMBER)
    volume = Volume.objects.get(pool=pool, name="raw-thin.img")
    member_api, stranger_api = token_client(plain), token_client(stranger)
    refused = post(member_api, f"/api/volumes/{volume.pk}/delete/", {"confirm": volume.name})
    assert refused.status_code == 403 and refused.json()["code"] == "permission_denied"
    assert "operator" in refused.json()["message"]
    assert post(stranger_api, f"/api/volumes/{volume.pk}/delete/", {"confirm": volume.name}).status_code == 404
    assert stranger_api.get(f"/api/volumes/{volume.pk}/").status_code == 404
    assert stranger_api.get("/api/volumes/").json()["count"] == 0
    succeeded(member_api, post(member_api, f"/api/volumes/{volume.pk}/clone/", {"name": "mine.img",
                                                                              "target_pool": pool.pk}))
    assert "mine.img" in virsh("vol-list", scratch.name) and volume.name in virsh("vol-list", scratch.name)


def test_the_job_streams_its_progress_as_server_sent_events(asgi_server, synced, celery_worker, member) -> None:
    """Through the real ASGI server with a token: the 202 names the SSE stream, which ends with the job."""
    pool, _scratch = synced
    headers = {"Authorization": f"Bearer {token_for(member)}"}
    with httpx.Client(base_url=asgi_server.url, headers=headers, timeout=60) as client:
        accepted = client.post(f"/api/pools/{pool.pk}/volumes/", json={
            "name": "sse.img", "capacity": "8M", "format": "raw", "provisioning": "off"})
        assert accepted.status_code == 202, accepted.text
        with client.stream("GET", accepted.json()["events"]) as events:
            assert events.headers["content-type"].startswith("text/event-stream")
            text = "".join(events.iter_text())
        assert "event: job" in text and text.rstrip().endswith("event: end\ndata:")
        job = client.get(accepted.json()["url"]).json()
        assert job["state"] == "succeeded" and job["result"]
        as_page_json = client.get(f"/jobs/{job['id']}/", headers={"Accept": "application/json"}).json()
        assert as_page_json["state"] == "succeeded"
