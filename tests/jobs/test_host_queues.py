"""A host that names its own Celery queue: its jobs go there only. A worker that listens to the shared queue
never takes them; a worker started with --queues=<the host's queue> (beside that host, in production) runs them."""

from __future__ import annotations

import time

import pytest
from django.urls import reverse

from jobs.models import Job
from jobs.runner import TRANSFER_QUEUE_SUFFIX, queue_for
from tests.conftest import TEST_QUEUE, CeleryWorker, wait_for, wait_for_job

pytestmark = pytest.mark.django_db(transaction=True)


def test_queue_for_routes_by_host_and_kind(settings) -> None:
    class Near:
        queue = "kvm7"

    class Shared:
        queue = ""

    default = TEST_QUEUE
    assert queue_for("create", Near()) == "kvm7" and queue_for("upload", Near()) == f"kvm7{TRANSFER_QUEUE_SUFFIX}"
    assert queue_for("create", Shared()) == default and queue_for("create", None) == default
    assert queue_for("upload", Shared()) == f"{default}{TRANSFER_QUEUE_SUFFIX}"


def test_the_queue_is_validated_on_the_host_form(admin_client, local_host) -> None:
    url = reverse("hosts:edit", args=[local_host.pk])
    response = admin_client.post(url, {"name": local_host.name, "uri": local_host.uri, "enabled": "on",
                                       "queue": "kvm 7; rm -rf /"})
    assert response.status_code in (200, 400) and "Letters, digits, dot, dash and underscore only." in \
        response.content.decode()
    local_host.refresh_from_db()
    assert local_host.queue == ""


def test_a_hosts_jobs_run_only_on_a_worker_of_its_queue(member_client, celery_worker, local_host,
                                                         tmp_path) -> None:
    own = f"{TEST_QUEUE}-near"
    local_host.queue = own
    local_host.save(update_fields=["queue"])
    job = Job.objects.get(pk=_sync_job(member_client, local_host))
    time.sleep(5)  # the shared worker (celery_worker) is idle and listening: it must not take the job
    job.refresh_from_db()
    assert job.state == Job.State.QUEUED and job.worker == "", (job.state, job.worker)

    with CeleryWorker.on_queue(own, tmp_path / "near.log").running() as near:
        job = wait_for_job(job.pk)
        assert job.state == Job.State.SUCCEEDED, job.error
        assert _parent_of(job) == near.proc.pid, job.worker  # a process of the near worker ran it
        # and back on the shared queue once the host names none
        local_host.queue = ""
        local_host.save(update_fields=["queue"])
        shared = wait_for_job(_sync_job(member_client, local_host))
        assert shared.state == Job.State.SUCCEEDED and _parent_of(shared) == celery_worker.proc.pid, shared.worker


def _sync_job(client, host) -> int:
    before = set(Job.objects.values_list("pk", flat=True))
    response = client.post(reverse("hosts:sync", args=[host.pk]))
    assert response.status_code in (200, 302), response.status_code
    return wait_for(lambda: (set(Job.objects.filter(kind="sync").values_list("pk", flat=True)) - before), timeout=10,
                    message="the sync job").pop()


def _parent_of(job: Job) -> int:
    """The parent pid of the pool process that ran the job (Job.worker is "<host>:<pid>")."""
    pid = int(job.worker.rsplit(":", 1)[1])
    with open(f"/proc/{pid}/status") as status:
        return int(next(line for line in status if line.startswith("PPid:")).split()[1])
