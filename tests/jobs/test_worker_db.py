"""A worker process keeps its database connection from one job to the next (WORKER_DB_CONN_MAX_AGE), instead of
connecting for each job; with the setting at 0 it closes it after each job, as web requests do."""

from __future__ import annotations

import time

import pytest

from jobs.models import Job
from tests.conftest import TEST_QUEUE, CeleryWorker, database_connections, wait_for, wait_for_job
from tests.jobs.test_host_queues import _sync_job

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("max_age", ["300", "0"])
def test_a_worker_process_keeps_its_database_connection_between_jobs(member_client, local_host, tmp_path, max_age):
    queue = f"{TEST_QUEUE}-db-{max_age}"
    local_host.queue = queue
    local_host.save(update_fields=["queue"])
    with CeleryWorker.on_queue(queue, tmp_path / "worker.log", env={"WORKER_DB_CONN_MAX_AGE": max_age}).running():
        held = []
        for _ in range(2):
            job = wait_for_job(_sync_job(member_client, local_host))
            assert job.state == Job.State.SUCCEEDED, job.error
            pid = int(job.worker.rsplit(":", 1)[1])  # the pool process that ran it (concurrency 1: the same)
            if max_age == "0":
                wait_for(lambda pid=pid: not database_connections(pid), timeout=10, message="the connection closed")
            else:
                time.sleep(1)  # after the task's end, when Celery's Django fixup closes what is too old
                held.append((pid, database_connections(pid)))
        if max_age != "0":
            (first_pid, first), (second_pid, second) = held
            assert first_pid == second_pid and len(first) == 1, held
            assert second == first, "the second job used the first job's connection"
