"""Each kind of change leaves its audit record: who, what, the target, the outcome and the client's address."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from audit.models import AuditRecord
from hosts.models import Host
from jobs.models import Job
from tests.conftest import LIBVIRT_URI, wait_for, wait_for_job
from volumes.models import Upload

pytestmark = pytest.mark.django_db(transaction=True)

ADDRESS = "198.51.100.7"


def _last(action: str, **fields) -> AuditRecord:
    found = AuditRecord.objects.filter(action=action, **fields).order_by("-at", "-id").first()
    assert found is not None, f"no {action} record {fields}: {list(AuditRecord.objects.values_list('action'))}"
    return found


def test_a_login_a_failed_login_and_a_logout(client, member):
    response = client.post(reverse("login"), {"username": "mia", "password": "wrong"}, REMOTE_ADDR=ADDRESS)
    assert response.status_code == 200
    failed = _last("login.failed")
    assert (failed.username, failed.user, failed.client_ip, failed.outcome) == ("mia", None, ADDRESS, "refused")
    assert "wrong" not in json.dumps(failed.detail) and failed.target == "user mia"
    client.post(reverse("login"), {"username": "nobody-here", "password": "x"}, REMOTE_ADDR=ADDRESS)
    assert _last("login.failed").username == "nobody-here"  # the name typed, whether or not it exists

    response = client.post(reverse("login"), {"username": "mia", "password": "correct-horse-battery"},
                           REMOTE_ADDR=ADDRESS)
    assert response.status_code == 302
    login = _last("login")
    assert (login.user, login.username, login.client_ip, login.outcome) == (member, "mia", ADDRESS, "ok")
    assert (login.target_type, login.target_id) == ("user", str(member.pk))
    client.post(reverse("logout"), REMOTE_ADDR=ADDRESS)
    assert _last("logout").user == member


def test_the_address_behind_a_proxy_is_the_one_the_proxy_added(client, member, settings):
    settings.BEHIND_PROXY = True
    client.post(reverse("login"), {"username": "mia", "password": "wrong"}, REMOTE_ADDR="127.0.0.1",
                HTTP_X_FORWARDED_FOR="10.9.9.9, 203.0.113.50")
    assert _last("login.failed").client_ip == "203.0.113.50"


def test_host_create_edit_and_delete(client, admin_user):
    client.force_login(admin_user)
    response = client.post(reverse("hosts:add"), {"name": "kvm-audit", "uri": LIBVIRT_URI, "enabled": "on"},
                           REMOTE_ADDR=ADDRESS)
    assert response.status_code == 302
    host = Host.objects.get(name="kvm-audit")
    created = _last("host.create")
    assert (created.user, created.target_type, created.target_id, created.target, created.client_ip) == (
        admin_user, "host", str(host.pk), "host kvm-audit", ADDRESS)
    assert created.detail == {"uri": LIBVIRT_URI}
    # The sync the new host gets is a job: launched, with the admin's address (its end, written by the worker,
    # may already be there too).
    sync = _last("host.sync", outcome="started")
    assert (sync.client_ip, sync.target_id) == (ADDRESS, str(host.pk))

    client.post(reverse("hosts:edit", args=[host.pk]), {"name": "kvm-renamed", "uri": LIBVIRT_URI},
                REMOTE_ADDR=ADDRESS)
    edited = _last("host.edit")
    assert edited.target == "host kvm-renamed" and edited.target_id == str(host.pk)
    assert edited.detail["name"] == {"from": "kvm-audit", "to": "kvm-renamed"}
    assert edited.detail["enabled"] == {"from": True, "to": False}

    client.post(reverse("hosts:delete", args=[host.pk]), {"confirm_name": "wrong"})
    assert not AuditRecord.objects.filter(action="host.delete").exists()  # nothing removed, nothing recorded
    client.post(reverse("hosts:delete", args=[host.pk]), {"confirm_name": "kvm-renamed"}, REMOTE_ADDR=ADDRESS)
    assert not Host.objects.filter(pk=host.pk).exists()
    deleted = _last("host.delete")
    assert (deleted.target_id, deleted.target, deleted.user, deleted.client_ip) == (
        str(host.pk), "host kvm-renamed", admin_user, ADDRESS)


def test_a_connection_test_is_recorded(client, admin_user, local_host):
    client.force_login(admin_user)
    client.post(reverse("hosts:test", args=[local_host.pk]))
    tested = _last("host.test")
    assert (tested.target_id, tested.outcome, tested.client_ip) == (str(local_host.pk), "started", "127.0.0.1")


def test_a_pool_policy_change(client, admin_user, synced):
    pool, _ = synced
    client.force_login(admin_user)
    response = client.post(reverse("pools:policy", args=[pool.pk]), {"max_overcommit": "1.5", "reserve": "1G"},
                           REMOTE_ADDR=ADDRESS)
    assert response.status_code == 302
    changed = _last("pool.policy")
    assert (changed.target_type, changed.target_id, changed.user, changed.client_ip) == (
        "pool", str(pool.pk), admin_user, ADDRESS)
    assert changed.target == f"pool {pool.name} on {pool.host.name}"
    assert changed.detail["max_overcommit"]["to"] == "1.5" and changed.detail["reserve"]["to"] == 1024**3


def test_a_volume_job_launched_and_finished(client, member, synced, celery_worker):
    pool, _ = synced
    client.force_login(member)
    response = client.post(reverse("volumes:create", args=[pool.pk]),
                           {"name": "a.img", "capacity": "1M", "format": "raw", "provisioning": "off"},
                           REMOTE_ADDR=ADDRESS)
    assert response.status_code == 302, response.content.decode()[:2000]
    job = Job.objects.get(kind="create", volume_name="a.img")
    launched = _last("volume.create", outcome="started")
    assert (launched.user, launched.client_ip, launched.target_type, launched.target_id) == (
        member, ADDRESS, "volume", f"{pool.pk}/a.img")
    assert launched.target == f"volume a.img in pool {pool.name} on {pool.host.name}"
    assert launched.detail["job"] == job.pk and launched.detail["params"]["capacity"] == 1024**2
    assert wait_for_job(job.pk).state == Job.State.SUCCEEDED
    ended = wait_for(lambda: AuditRecord.objects.filter(action="volume.create", outcome="ok").first(),
                     message="the job's end record")
    # Written by the worker: the same who and what, no address (no request there).
    assert (ended.user, ended.username, ended.client_ip, ended.target_id) == (member, "mia", None, f"{pool.pk}/a.img")
    assert ended.detail["job"] == job.pk and ended.at >= launched.at


def test_a_failed_job_records_its_error(client, admin_user, synced, celery_worker):
    pool, scratch = synced
    client.force_login(admin_user)
    volume = pool.volumes.get(name="raw-thin.img")
    scratch_file = scratch.path / "raw-thin.img"
    scratch_file.unlink()  # libvirt no longer has it: the resize fails in the worker
    response = client.post(reverse("volumes:resize", args=[volume.pk]), {"capacity": "128M"})
    assert response.status_code == 302, response.content.decode()[:2000]
    job = wait_for_job(Job.objects.get(kind="resize").pk)
    assert job.state == Job.State.FAILED
    ended = wait_for(lambda: AuditRecord.objects.filter(action="volume.resize", outcome="failed").first(),
                     message="the failed job's record")
    assert ended.detail["error"] == job.error and ended.target_id == f"{pool.pk}/raw-thin.img"


def test_an_upload_created_and_abandoned(client, member, synced, celery_worker):
    pool, _ = synced
    client.force_login(member)
    response = client.post(reverse("volumes:upload_create"),
                           {"pool": pool.pk, "volume": "up.img", "mode": "new", "size": 1024**2},
                           content_type="application/json", REMOTE_ADDR=ADDRESS)
    assert response.status_code == 201, response.content
    upload = Upload.objects.get(pk=response.json()["id"])
    try:
        created = _last("upload.create")
        assert (created.target_type, created.target_id, created.user, created.client_ip) == (
            "upload", str(upload.pk), member, ADDRESS)
        assert created.detail == {"size": 1024**2, "mode": "new"} and "up.img" in created.target
        started = _last("upload", outcome="started")  # streaming into a new volume: its job starts now
        assert started.target_id == f"{pool.pk}/up.img" and started.client_ip == ADDRESS
        wait_for(lambda: Job.objects.filter(pk=upload.job_id, state=Job.State.RUNNING).exists(),
                 message="the upload job to wait for chunks")  # abandoned while it streams
        assert client.delete(reverse("volumes:upload", args=[upload.pk]), REMOTE_ADDR=ADDRESS).status_code == 200
        abandoned = _last("upload.abandon")
        assert (abandoned.target_id, abandoned.user, abandoned.client_ip) == (str(upload.pk), member, ADDRESS)
        job = wait_for_job(upload.job_id)
        assert job.state == Job.State.CANCELLED, (job.state, job.error)
        ended = wait_for(lambda: AuditRecord.objects.filter(action="upload", outcome="cancelled").first(),
                         timeout=10, message=f"the upload job's end: {list(AuditRecord.objects.values_list())}")
        assert ended.detail["job"] == upload.job_id
    finally:
        upload.staging_path.unlink(missing_ok=True)
