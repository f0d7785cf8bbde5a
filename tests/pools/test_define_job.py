"""Defining a pool is a job: the define page (and POST /api/pools/) only checks the form and launches it; the job
defines the pool in the real libvirtd, syncs it, links its result to the pool and, ticked "start now", launches
the start job. No request asks libvirt: a host whose libvirt is a socket of this test that counts connections
gets none from the page, and one from the job.

Witnesses: virsh pool-list/pool-info, the audit log, the listener's count.
"""

from __future__ import annotations

import html
import os
import time
import uuid

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditRecord
from hosts import status
from hosts.models import Host
from jobs.models import Job
from jobs.runner import JobConflict
from pools import lifecycle
from pools.models import StoragePool
from tests.conftest import TEST_POOL_PREFIX, virsh, wait_for_job
from tests.volumes.test_image_tools_safety import Listener
from virtstorage.virt.pools import PoolTypeSupport

pytestmark = pytest.mark.django_db(transaction=True)

POOL_PREFIX = f"{TEST_POOL_PREFIX}{os.getpid()}-"  # conftest's sweep removes those of a killed run


def _defined(name: str) -> bool:
    return name in virsh("pool-list", "--all", "--name").split()


def _state(name: str) -> str:
    out = virsh("pool-info", name)
    return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("State:"))


@pytest.fixture
def new_pool(tmp_path_factory):
    """A name and directory for a pool the test defines; forgotten afterwards."""
    name = f"{POOL_PREFIX}{uuid.uuid4().hex[:8]}"
    yield name, tmp_path_factory.mktemp("define") / name
    virsh("pool-destroy", name, check=False)
    virsh("pool-undefine", name, check=False)


def _define(client, host, name: str, path, **extra):
    return client.post(f"/pools/define/on/{host.pk}/?type=dir", {"type": "dir", "name": name,
                                                                  "target_path": str(path), "action": "define",
                                                                  **extra})


def test_define_is_a_job_whose_page_links_the_new_pool(admin_client, local_host, celery_worker, new_pool):
    name, path = new_pool
    response = _define(admin_client, local_host, name, path)
    assert response.status_code == 302
    job = Job.objects.get(kind="pool-define", pool_name=name)
    assert response["Location"] == job.get_absolute_url()
    job = wait_for_job(job.pk, timeout=60)
    assert job.state == Job.State.SUCCEEDED, job.error
    pool = StoragePool.objects.get(host=local_host, name=name)
    assert _defined(name) and _state(name) == "inactive" and not pool.is_active  # defined only
    assert job.pool_id == pool.pk and "Defined pool" in job.result
    page = html.unescape(admin_client.get(job.get_absolute_url()).content.decode())
    assert f'href="{pool.get_absolute_url()}" class="result-link">Open it</a>' in page  # the pool it made
    assert not Job.objects.filter(kind="pool-start").exists()  # not ticked: nothing started
    records = AuditRecord.objects.filter(action="pool.define")
    assert set(records.values_list("outcome", flat=True)) == {"started", "ok"}
    assert all(f"<name>{name}</name>" in record.detail["params"]["xml"] for record in records)  # with the XML
    assert records.get(outcome="ok").target_id == str(pool.pk)


def test_start_now_builds_and_starts_it_as_the_start_job(admin_client, local_host, celery_worker, new_pool):
    name, path = new_pool
    assert _define(admin_client, local_host, name, path, start_now="on").status_code == 302
    define = wait_for_job(Job.objects.get(kind="pool-define", pool_name=name).pk, timeout=60)
    assert define.state == Job.State.SUCCEEDED, define.error
    start = wait_for_job(Job.objects.get(kind="pool-start", pool_name=name).pk, timeout=60)
    assert start.state == Job.State.SUCCEEDED and start.params == {"build": True}, start.error
    assert f"job #{start.pk}" in define.result and start.created_by_id == define.created_by_id
    assert path.is_dir() and _state(name) == "running"  # built, then started
    assert StoragePool.objects.get(host=local_host, name=name).is_active


def test_libvirts_refusal_is_shown_on_the_job_page_and_audited(admin_client, local_host, celery_worker, new_pool):
    name, path = new_pool
    # Passes the app's checks; libvirt's schema has no <colour> in a pool.
    xml = f"<pool type='dir'><name>{name}</name><colour>red</colour><target><path>{path}</path></target></pool>"
    response = admin_client.post(f"/pools/define/on/{local_host.pk}/?type=xml",
                                 {"type": "xml", "xml": xml, "action": "define"})
    assert response.status_code == 302
    job = wait_for_job(Job.objects.get(kind="pool-define", pool_name=name).pk, timeout=60)
    assert job.state == Job.State.FAILED and job.error.startswith("libvirt refused to define the pool: ")
    assert job.error in html.unescape(admin_client.get(response["Location"]).content.decode())
    assert not _defined(name) and not StoragePool.objects.filter(name=name).exists()
    failed = AuditRecord.objects.get(action="pool.define", outcome="failed")
    assert failed.detail["error"] == job.error


def test_a_name_being_defined_is_refused_at_the_form_and_by_the_launch(admin_client, admin_user, local_host,
                                                                       celery_worker, new_pool):
    """Two defines of one name on a host never both run: the second is refused while the first is under way (no
    pool row yet to lock: the launch locks the host's), and once the pool is in the inventory."""
    name, path = new_pool
    pending = Job.objects.create(kind="pool-define", host=local_host, pool_name=name, state=Job.State.RUNNING,
                                 created_by=admin_user, params={"xml": "", "start_now": False})
    response = _define(admin_client, local_host, name, path)
    body = html.unescape(response.content.decode())
    assert response.status_code == 200 and f"is being defined on local by job #{pending.pk}" in body
    refused = AuditRecord.objects.get(action="pool.define", outcome="refused")
    assert refused.detail["error"].startswith(f"Pool {name} is being defined")
    assert Job.objects.filter(kind="pool-define", pool_name=name).count() == 1
    xml = f"<pool type='dir'><name>{name}</name><target><path>{path}</path></target></pool>"
    Job.objects.filter(pk=pending.pk).update(state=Job.State.SUCCEEDED)
    StoragePool.objects.create(host=local_host, name=name, type="dir")  # as its sync recorded it
    with pytest.raises(JobConflict, match=f"local already has a pool named {name}"):
        lifecycle.start_define(local_host, xml, False, user=admin_user)
    assert not _defined(name)
    # The same name on another host is no conflict (port 1 refuses: that job fails at once).
    other_host = Host.objects.create(name="other", uri="qemu+tcp://127.0.0.1:1/system")
    other = lifecycle.start_define(other_host, xml, False, user=admin_user)
    assert wait_for_job(other.pk, timeout=60).state == Job.State.FAILED


@pytest.fixture
def counting_host() -> Host:
    """A host whose libvirt is a TCP socket of this test: it counts the connections made to it and closes each."""
    listener = Listener()
    host = Host.objects.create(name="counted", uri=f"qemu+tcp://127.0.0.1:{listener.port}/system",
                               pool_types=Host.pool_types_json({"dir": PoolTypeSupport("dir", True)}),
                               pool_types_at=timezone.now())
    host.listener = listener
    yield host
    listener.close()


def test_the_define_page_makes_no_libvirt_connection(admin_client, counting_host, celery_worker, tmp_path):
    """The page answers at once and connects nowhere (the listener counts nothing); the job is what connects,
    and the page of the failed job says why."""
    host = counting_host
    assert not status.unavailable_reason(host)  # never checked: nothing to refuse it for
    url = reverse("pools:define", args=[host.pk]) + "?type=dir"
    data = {"type": "dir", "name": f"{POOL_PREFIX}far", "target_path": str(tmp_path / "far")}
    assert admin_client.get(url).status_code == 200
    assert b"pool-xml-preview" in admin_client.post(url, {**data, "action": "preview"}).content
    started = time.monotonic()
    response = admin_client.post(url, {**data, "action": "define"})
    assert response.status_code == 302 and time.monotonic() - started < 2.0  # nothing waited on
    assert host.listener.connections == 0  # no request asked libvirt
    job = wait_for_job(Job.objects.get(kind="pool-define", host=host).pk, timeout=60)
    assert host.listener.connections >= 1  # the job did (the witness sees connections)
    assert job.state == Job.State.FAILED and job.error
    assert job.error in html.unescape(admin_client.get(response["Location"]).content.decode())
