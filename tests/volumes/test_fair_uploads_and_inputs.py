"""One user's idle uploads never hold the transfer workers another user needs; bad input gets a clear
error (never a 500, never libvirt's refusal in a job) and changes nothing."""

from __future__ import annotations

import os
import time

import pytest
from django.urls import reverse

from jobs.models import Job
from tests.conftest import _user, wait_for, wait_for_job
from tests.volumes.conftest import Api
from tests.volumes.test_volume_ops import vol_names
from volumes.models import Upload

pytestmark = pytest.mark.django_db(transaction=True)

MiB = 1024 * 1024


def test_idle_uploads_of_one_user_do_not_delay_another_users_upload(asgi_server, member, celery_worker, synced,
                                                                   tmp_path):
    """The test worker has 2 processes for jobs and transfers. Without a per-user limit, two idle streaming
    uploads of one user would hold both for UPLOAD_IDLE_SECONDS."""
    pool, scratch = synced
    idle = Api(asgi_server.url, member)
    opened = [idle.create(pool=pool.pk, volume=f"idle-{i}.img", mode="new", size=64 * MiB).json() for i in range(3)]
    try:
        assert [bool(u.get("job")) for u in opened] == [True, False, False]  # one streams, the rest wait
        wait_for(lambda: Job.objects.get(pk=opened[0]["job"]).state == Job.State.RUNNING, 30, message="a stream")
        other = Api(asgi_server.url, _user("otto", "member"))
        source = tmp_path / "other.img"
        source.write_bytes(os.urandom(2 * MiB))
        started = time.monotonic()
        upload = other.create(pool=pool.pk, volume="other.img", mode="new", size=source.stat().st_size).json()
        other.send_file(upload, source)
        job = wait_for_job(other.complete(upload).json()["job"], timeout=60)
        assert job.state == Job.State.SUCCEEDED, job.error
        assert time.monotonic() - started < 30
        # The waiting uploads of the first user are written at complete.
        late = tmp_path / "late.img"
        late.write_bytes(os.urandom(MiB))
        upload = idle.create(pool=pool.pk, volume="late.img", mode="new", size=MiB).json()
        assert upload["job"] is None and not Upload.objects.get(pk=upload["id"]).streaming
        idle.send_file(upload, late)
        job = wait_for_job(idle.complete(upload).json()["job"], timeout=60)
        assert job.state == Job.State.SUCCEEDED, job.error
        assert {"other.img", "late.img"} <= vol_names(scratch.name)
    finally:
        for upload in opened:
            idle.http.delete(upload["url"])  # the streaming job stops and gives its worker back
        wait_for(lambda: not Job.objects.filter(pk=opened[0]["job"], state__in=Job.ACTIVE_STATES).exists(), 30,
                 message="the idle stream to stop")


# -- input checked before libvirt and before a 500 -----------------------------------------------

def test_query_parameters_that_are_not_numbers_are_a_400(member_client, synced):
    pool, _ = synced
    upload_page = reverse("volumes:upload_new")
    for url in (f"{reverse('pools:card', args=[pool.pk])}?job=abc", f"{upload_page}?pool=abc",
                f"{upload_page}?volume=1e3", f"{upload_page}?pool=-4", upload_page):
        assert member_client.get(url).status_code == 400, url


def test_sizes_past_what_the_pool_can_hold_are_refused_with_the_numbers(member_client, asgi_server, member, synced):
    pool, scratch = synced
    api = Api(asgi_server.url, member)
    for size in (2**62, 2**63 - 1, pool.capacity * 5):
        r = api.create(pool=pool.pk, volume="huge.img", mode="new", size=size)
        assert r.status_code == 400 and "can ever hold" in r.text, r.text
    r = api.create(pool=pool.pk, volume="huge.img", mode="new", size=2**64)
    assert r.status_code == 400 and "too large" in r.text
    assert not Upload.objects.exists()
    for capacity in (str(2**63 - 1), "8EiB", f"{pool.capacity * 5}"):
        response = member_client.post(reverse("volumes:create", args=[pool.pk]),
                                      {"name": "huge.img", "capacity": capacity, "format": "raw",
                                       "provisioning": "off"})
        assert response.status_code == 400, capacity
        assert "can ever hold" in response.content.decode() or "too large" in response.content.decode()
    assert not Job.objects.exists() and "huge.img" not in vol_names(scratch.name)


def test_names_with_leading_or_trailing_spaces_are_refused_not_changed(member_client, asgi_server, member, synced):
    pool, _ = synced
    api = Api(asgi_server.url, member)
    for name in (" disk.img", "disk.img ", "disk.img\n", "\tdisk.img"):
        r = api.create(pool=pool.pk, volume=name, mode="new", size=MiB)
        assert r.status_code == 400 and "volume" in r.json()["errors"], (name, r.text)
        response = member_client.post(reverse("volumes:create", args=[pool.pk]),
                                      {"name": name, "capacity": "1M", "format": "raw", "provisioning": "off"})
        assert response.status_code == 400, name
    assert not Upload.objects.exists() and not Job.objects.exists()
