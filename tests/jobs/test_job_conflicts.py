"""Jobs that would collide on one volume or one pool are refused at launch, with the other job named."""

from __future__ import annotations

import pytest

from jobs.models import Job
from jobs.runner import JobConflict, launch
from pools.models import StoragePool
from pools.tasks import stop_pool_job
from tests.conftest import TEST_QUEUE
from volumes.tasks import delete_volume_job

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def pool(local_host):
    """A pool of a host whose queue no worker reads: the jobs these tests launch stay queued, even when the
    session's worker (celery_worker) runs beside them; the queue is emptied afterwards."""
    from jobs import progress
    from jobs.runner import TRANSFER_QUEUE_SUFFIX

    local_host.queue = f"{TEST_QUEUE}-nobody"
    local_host.save(update_fields=["queue"])
    yield StoragePool.objects.create(host=local_host, name="p", state="active")
    progress.client().delete(local_host.queue, f"{local_host.queue}{TRANSFER_QUEUE_SUFFIX}")


def running(pool: StoragePool, kind: str, volume_name: str = "") -> Job:
    return Job.objects.create(kind=kind, host=pool.host, pool=pool, pool_name=pool.name, volume_name=volume_name,
                              state=Job.State.RUNNING)


def start(task, pool: StoragePool, kind: str, volume_name: str = "") -> Job:
    # Nobody consumes the host's queue (the pool fixture): the job stays queued, which is all these tests need.
    return launch(task, kind=kind, user=None, host=pool.host, pool=pool, volume_name=volume_name)


def test_a_pool_job_waits_for_every_job_on_the_pool(pool):
    upload = running(pool, "upload", "disk.img")
    with pytest.raises(JobConflict, match=f"“disk.img” is busy with job #{upload.pk}"):
        start(stop_pool_job, pool, "pool-stop")
    upload.state = Job.State.SUCCEEDED
    upload.save()
    assert start(stop_pool_job, pool, "pool-stop").state == Job.State.QUEUED


def test_a_volume_job_waits_for_a_pool_job(pool):
    stop = running(pool, "pool-stop")
    with pytest.raises(JobConflict, match=f"Pool p is busy with job #{stop.pk}"):
        start(delete_volume_job, pool, "delete", "disk.img")


def test_volume_jobs_on_different_volumes_run_side_by_side(pool):
    running(pool, "wipe", "a.img")
    assert start(delete_volume_job, pool, "delete", "b.img").volume_name == "b.img"
    with pytest.raises(JobConflict, match="“a.img” is busy"):
        start(delete_volume_job, pool, "delete", "a.img")


def test_downloads_share_a_volume_but_a_delete_waits_for_them(pool):
    running(pool, "download", "a.img")
    assert start(delete_volume_job, pool, "download", "a.img").kind == "download"
    with pytest.raises(JobConflict, match="busy"):
        start(delete_volume_job, pool, "delete", "a.img")
    with pytest.raises(JobConflict, match="busy"):
        start(stop_pool_job, pool, "pool-stop")


def test_a_clone_keeps_its_target_pool_and_new_name_busy(pool, local_host):
    from volumes.tasks import clone_volume_job

    other = StoragePool.objects.create(host=local_host, name="q", state="active")
    clone = launch(clone_volume_job, kind="clone", user=None, host=local_host, pool=pool, volume_name="src.img",
                   target_pool=other, target_volume_name="copy.img")
    with pytest.raises(JobConflict, match=f"job #{clone.pk}, which writes “copy.img” in pool q"):
        start(stop_pool_job, other, "pool-stop")  # stopping the pool the clone writes into
    with pytest.raises(JobConflict, match=f"job #{clone.pk}"):
        start(delete_volume_job, other, "upload", "copy.img")  # another job on the name it creates
    assert start(delete_volume_job, other, "delete", "unrelated.img").state == Job.State.QUEUED
    # And a clone into a pool that is busy is refused before it starts.
    stop = running(other, "pool-stop")
    Job.objects.filter(pk=clone.pk).update(state=Job.State.SUCCEEDED)
    with pytest.raises(JobConflict, match=f"Pool q is busy with job #{stop.pk}"):
        launch(clone_volume_job, kind="clone", user=None, host=local_host, pool=pool, volume_name="src.img",
               target_pool=other, target_volume_name="copy2.img")


def test_uploads_go_to_the_transfer_queue_and_the_rest_to_the_job_queue(pool):
    from jobs.runner import queue_for
    from virtstorage.celery import app

    default = app.conf.task_default_queue
    assert queue_for("upload") == default + "-transfers"
    assert {queue_for(kind) for kind in ("create", "clone", "delete", "wipe", "pool-stop", "sync")} == {default}
