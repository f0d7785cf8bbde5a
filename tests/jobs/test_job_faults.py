"""Jobs under faults: libvirtd restarts, a worker process is killed, Redis is unreachable.

The restart test disturbs other test runs on the same libvirtd for a few seconds; it is the only one.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from hosts.models import Host
from inventory.sync import sync_host
from jobs.models import Job
from jobs.tasks import fail_unserved_jobs, reap_stale_jobs
from tests.conftest import virsh, wait_for, wait_for_job
from tests.volumes.test_volume_ops import job_from, run_op, vol_names, vol_sizes, volume_row

pytestmark = pytest.mark.django_db(transaction=True)


def _start_long_wipe(client, pool, scratch) -> Job:
    """A random wipe of a 32 MiB volume: libvirt has scrub write it at the speed scrub makes random bytes (~7 MB/s
    here), so it works for seconds whatever the storage. A zero wipe is the storage's speed: 2 GiB took ~4 s on
    this machine's disk and under 0.5 s on a tmpfs /tmp (Debian 13's default)."""
    scratch.create_volume("big.img", "32M", "raw", prealloc=True)
    sync_host(pool.host, pool_names=[pool.name])
    vol = volume_row(pool, "big.img")
    job = job_from(client.post(reverse("volumes:wipe", args=[vol.pk]), {"algorithm": "random", "confirm": "big.img"}))
    wait_for(lambda: "Wiping" in Job.objects.get(pk=job.pk).message, timeout=60, message="the wipe to start")
    time.sleep(0.5)  # the libvirt call is under way
    job.refresh_from_db()
    assert job.state == Job.State.RUNNING, (f"the wipe ended ({job.state}) before the fault it is for: scrub "
                                            "wrote 32 MiB of random bytes in under half a second (~5 s here)")
    return job


def _restart_libvirtd() -> None:
    subprocess.run(["pkill", "-x", "libvirtd"], check=False)
    wait_for(lambda: subprocess.run(["pgrep", "-x", "libvirtd"], capture_output=True).returncode != 0,
             timeout=60, interval=0.2, message="libvirtd to stop")
    subprocess.run(["libvirtd", "-d"], check=True, start_new_session=True, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    wait_for(lambda: subprocess.run(["virsh", "version"], capture_output=True).returncode == 0,
             timeout=60, interval=0.3, message="libvirtd to answer again")


@pytest.mark.serial
def test_libvirtd_restart_fails_the_job_cleanly_and_the_next_job_works(member_client, celery_worker, synced):
    pool, scratch = synced
    job = _start_long_wipe(member_client, pool, scratch)
    started = time.monotonic()
    _restart_libvirtd()
    job = wait_for_job(job.pk, timeout=90)
    assert job.state == Job.State.FAILED, job.result
    assert job.error and job.finished_at is not None
    assert time.monotonic() - started < 90
    # the same worker, without a restart of the app, runs the next job on a fresh connection
    wait_for(lambda: pool.name in virsh("pool-list", "--name"), timeout=30, message="the pool to be back")
    job = run_op(member_client, reverse("volumes:create", args=[pool.pk]),
                 {"name": "after-restart.img", "capacity": "8M", "format": "raw", "provisioning": "off"})
    assert job.state == Job.State.SUCCEEDED, job.error
    assert vol_sizes(scratch.name, "after-restart.img")[0] == 8 * 1024**2


def test_killed_worker_process_ends_the_job_failed_with_a_reason(member_client, celery_worker, synced):
    pool, scratch = synced
    job = _start_long_wipe(member_client, pool, scratch)
    job.refresh_from_db()
    pid = int(job.worker.rsplit(":", 1)[1])
    assert pid != celery_worker.proc.pid  # the pool process running the job, not the worker's master
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()

    def reaped():
        reap_stale_jobs()  # what beat runs every 15 s in production
        return Job.objects.get(pk=job.pk).state == Job.State.FAILED

    wait_for(reaped, timeout=60, interval=1, message="the reaper to fail the job")
    assert time.monotonic() - killed < 60
    job.refresh_from_db()
    assert "stopped responding" in job.error and str(pid) in job.error
    # the worker replaced the process: the next job runs
    wait_for(lambda: "big.img" in vol_names(scratch.name), message="libvirt to be done with the wipe")
    job = run_op(member_client, reverse("volumes:create", args=[pool.pk]),
                 {"name": "after-kill.img", "capacity": "8M", "format": "raw", "provisioning": "off"})
    assert job.state == Job.State.SUCCEEDED, job.error


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again: nothing listens there


def test_with_redis_unreachable_pages_render_and_operations_say_why(member_client, synced, settings):
    pool, scratch = synced
    dead = f"redis://127.0.0.1:{_dead_port()}/0"
    settings.REDIS_URL = dead
    settings.CELERY_BROKER_URL = dead
    vol = volume_row(pool, "raw-thin.img")
    for url in (reverse("pools:detail", args=[pool.pk]), reverse("volumes:detail", args=[vol.pk]),
                reverse("volumes:create", args=[pool.pk]), reverse("volumes:wipe", args=[vol.pk]),
                reverse("jobs:list")):
        assert member_client.get(url).status_code == 200, url
    response = member_client.post(reverse("volumes:create", args=[pool.pk]),
                                  {"name": "never.img", "capacity": "8M", "format": "raw", "provisioning": "off"})
    assert response.status_code == 400
    html = response.content.decode()
    assert "job queue (Redis) is not reachable" in html
    assert 'value="never.img"' in html  # the form keeps what was typed
    response = member_client.post(reverse("volumes:delete", args=[vol.pk]), {"confirm": "raw-thin.img"})
    assert response.status_code == 400 and "not reachable" in response.content.decode()
    assert not Job.objects.exists()
    assert "never.img" not in vol_names(scratch.name) and "raw-thin.img" in vol_names(scratch.name)


def test_a_job_that_no_worker_will_take_fails_with_the_reason(celery_worker, local_host, admin_user):
    """Queued on a queue no worker listens to (a host's queue name mistyped), or for a host removed meanwhile: after
    JOB_UNSERVED_SECONDS the job fails saying why, instead of showing "queued" for ever. A job on a queue a worker
    listens to waits as long as it must."""
    removed = Host.objects.create(name="gone", uri="qemu+ssh://root@gone.example/system")
    typo = Host.objects.create(name="far", uri="qemu+ssh://root@far.example/system", queue="no-such-queue")
    long_ago = timezone.now() - timedelta(seconds=settings.JOB_UNSERVED_SECONDS + 5)
    jobs = {name: Job.objects.create(kind="sync", host=host, created_by=admin_user, state=Job.State.QUEUED)
            for name, host in (("typo", typo), ("served", local_host), ("removed", removed))}
    just_now = Job.objects.create(kind="sync", host=typo, created_by=admin_user, state=Job.State.QUEUED)
    Job.objects.filter(pk__in=[job.pk for job in jobs.values()]).update(created_at=long_ago)
    removed.delete()
    assert fail_unserved_jobs() == 2
    for job in (*jobs.values(), just_now):
        job.refresh_from_db()
    assert jobs["typo"].state == Job.State.FAILED and jobs["typo"].finished_at is not None
    assert "No worker listens to queue no-such-queue" in jobs["typo"].error
    assert jobs["removed"].state == Job.State.FAILED and "Its host was removed" in jobs["removed"].error
    assert jobs["served"].state == just_now.state == Job.State.QUEUED  # a worker takes it; too young to judge
