"""Defining a pool through the API (POST /api/pools/): the define page's form checks the body, the page's launch
(pools.lifecycle.start_define) starts the job, the answer is 202 with it; errors field by field. End to end on the
real libvirtd; virsh is the witness."""

from __future__ import annotations

import os
import uuid

import pytest

from hosts.models import Host
from jobs.models import Job
from pools.models import StoragePool
from tests.api.conftest import post
from tests.api.helpers import follow, succeeded
from tests.conftest import TEST_POOL_PREFIX, virsh, wait_for_job

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def new_pool(tmp_path_factory):
    name = f"{TEST_POOL_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    yield name, tmp_path_factory.mktemp("api-define") / name
    virsh("pool-destroy", name, check=False)
    virsh("pool-undefine", name, check=False)


def test_define_and_start_a_pool(local_host, celery_worker, admin_api, new_pool) -> None:
    name, path = new_pool
    accepted = post(admin_api, "/api/pools/", {"host": local_host.pk, "type": "dir", "name": name,
                                               "target_path": str(path), "start_now": True})
    job = succeeded(admin_api, accepted)
    pool = StoragePool.objects.get(host=local_host, name=name)
    assert job["kind"] == "pool-define" and job["pool"] == pool.pk and job["pool_name"] == name
    start = wait_for_job(Job.objects.get(kind="pool-start", pool=pool).pk, timeout=60)  # "start_now"
    assert start.state == Job.State.SUCCEEDED, start.error
    assert "running" in virsh("pool-info", name) and path.is_dir()
    assert admin_api.get(f"/api/pools/{pool.pk}/").json()["name"] == name


def test_pasted_xml_and_libvirts_refusal(local_host, celery_worker, admin_api, new_pool) -> None:
    name, path = new_pool
    bad = f"<pool type='dir'><name>{name}</name><colour>red</colour><target><path>{path}</path></target></pool>"
    job = follow(admin_api, post(admin_api, "/api/pools/", {"host": local_host.pk, "type": "xml", "xml": bad}))
    assert job["state"] == "failed" and "libvirt refused to define the pool" in job["error"]
    assert name not in virsh("pool-list", "--all", "--name").split()
    good = f"<pool type='dir'><name>{name}</name><target><path>{path}</path></target></pool>"
    succeeded(admin_api, post(admin_api, "/api/pools/", {"host": local_host.pk, "type": "xml", "xml": good}))
    assert name in virsh("pool-list", "--all", "--name").split()


def test_errors_come_field_by_field_and_only_admins_define(local_host, admin_api, api, new_pool) -> None:
    name, path = new_pool
    types = dict(local_host.pool_types, zfs={"supported": False})  # as a check of a host without ZFS records it
    Host.objects.filter(pk=local_host.pk).update(pool_types=types)
    body = {"host": local_host.pk, "type": "dir", "name": name, "target_path": str(path)}
    refused = post(api, "/api/pools/", body)  # an operator of every pool is no admin
    assert refused.status_code == 403 and refused.json()["code"] == "permission_denied"
    for changes, field, words in [({"host": 0}, "host", "id of a host"), ({"host": "x"}, "host", "id of a host"),
                                  ({"type": "nosuch"}, "type", "no form for pool type"),
                                  ({"type": "zfs"}, "type", "does not support zfs"),
                                  ({"name": "../evil"}, "name", "not allowed"),
                                  ({"target_path": "/etc/vms"}, "target_path", "system directory /etc"),
                                  ({"type": "xml", "xml": "not xml"}, "xml", "not well-formed")]:
        answer = post(admin_api, "/api/pools/", {**body, **changes})
        assert answer.status_code == 400, (changes, answer.content)
        errors = answer.json()["errors"]
        assert field in errors and words.lower() in errors[field][0]["message"].lower(), (changes, errors)
    Host.objects.filter(pk=local_host.pk).update(status=Host.Status.UNREACHABLE, last_error="no route to host")
    unreachable = post(admin_api, "/api/pools/", body)
    assert unreachable.status_code == 400
    assert "no route to host" in unreachable.json()["errors"]["non_field_errors"][0]["message"]
    Host.objects.filter(pk=local_host.pk).update(status=Host.Status.ONLINE)
    pending = Job.objects.create(kind="pool-define", host=local_host, pool_name=name, state=Job.State.RUNNING)
    busy = post(admin_api, "/api/pools/", body)
    assert busy.status_code == 409 and f"job #{pending.pk}" in busy.json()["message"]
    assert not Job.objects.exclude(pk=pending.pk).exists()
