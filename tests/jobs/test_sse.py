"""Live progress end to end: worker -> Redis pub/sub -> async SSE view on the real ASGI server."""

from __future__ import annotations

import re
import threading
import time

import httpx
import pytest
from django.utils import timezone

from jobs import progress
from jobs.models import Job
from tests.volumes.conftest import Api
from tests.volumes.test_upload_download import MiB, _random_file, _remove_staging_files  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)


def sse_events(response: httpx.Response):
    """(event, data, arrival time) for each server-sent event of a streaming response."""
    event, data = "message", []
    for line in response.iter_lines():
        if line == "":
            if data or event != "message":
                yield event, "\n".join(data), time.monotonic()
            event, data = "message", []
        elif line.startswith(":"):
            continue
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))


def percent(html: str) -> int | None:
    match = re.search(r'aria-valuenow="(\d+)"', html)
    return int(match[1]) if match else None


def test_progress_reaches_the_browser_within_half_a_second(asgi_server, member, local_host):
    api = Api(asgi_server.url, member)
    job = Job.objects.create(kind="upload", host=local_host, created_by=member, state=Job.State.RUNNING,
                             started_at=timezone.now(), progress_done=0, progress_total=1000)
    latencies = []
    with api.http.stream("GET", f"/jobs/{job.pk}/events/", headers={"Accept": "text/event-stream"}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = sse_events(r)
        first_event, first_html, _ = next(events)
        assert first_event == "job" and percent(first_html) == 0
        for done in (250, 500, 750):
            job.progress_done = done
            sent = time.monotonic()
            progress.publish(job)
            event, html, arrived = next(events)
            assert event == "job" and percent(html) == done // 10
            latencies.append(arrived - sent)
        job.state, job.result, job.finished_at = Job.State.SUCCEEDED, "all done", timezone.now()
        job.progress_done = 1000
        job.save()
        progress.publish(job)
        event, html, _ = next(events)
        assert event == "job" and 'data-state="succeeded"' in html and "all done" in html
        assert next(events)[0] == "end"  # the stream closes itself once the job is over
    assert max(latencies) < 0.5, latencies


def test_a_page_never_follows_another_installations_job_of_the_same_id(asgi_server, member, local_host, settings):
    """Two installations on one Redis (REDIS_KEY_PREFIX): each has a job of this id, and pub/sub channels are
    shared by every Redis database; the page shows its own job's progress only."""
    api = Api(asgi_server.url, member)
    job = Job.objects.create(kind="upload", host=local_host, created_by=member, state=Job.State.RUNNING,
                             started_at=timezone.now(), progress_done=0, progress_total=1000)
    own_prefix = settings.REDIS_KEY_PREFIX
    with api.http.stream("GET", f"/jobs/{job.pk}/events/", headers={"Accept": "text/event-stream"}) as r:
        events = sse_events(r)
        assert percent(next(events)[1]) == 0
        settings.REDIS_KEY_PREFIX = f"{own_prefix}-other"
        job.progress_done = 500
        progress.publish(job)  # the other installation's job with this id
        settings.REDIS_KEY_PREFIX = own_prefix
        job.progress_done = 750
        progress.publish(job)
        assert percent(next(events)[1]) == 75
    assert progress.channel(job.pk) == f"{own_prefix}:job:{job.pk}"


def test_sse_of_another_users_job_is_refused(asgi_server, member, admin_user, local_host):
    job = Job.objects.create(kind="upload", host=local_host, created_by=admin_user, state=Job.State.RUNNING)
    r = Api(asgi_server.url, member).http.get(f"/jobs/{job.pk}/events/")
    assert r.status_code == 404


def test_a_real_upload_streams_increasing_progress_and_a_final_state(asgi_server, member, synced, celery_worker,
                                                                     tmp_path):
    pool, _ = synced
    api = Api(asgi_server.url, member)
    src = _random_file(tmp_path / "w.img", 512 * MiB)
    upload = api.create(pool=pool.pk, volume="watched.img", mode="new", size=512 * MiB).json()
    job_id = upload["job"]  # a streaming upload's job runs from the start: watch it before sending

    sender = Api(asgi_server.url, member)  # logged in here: a thread's own database connection would outlive it

    def send() -> None:
        sender.send_file(upload, src)
        sender.complete(upload)

    seen: list[tuple[str, int | None]] = []
    sending = threading.Thread(target=send)
    with api.http.stream("GET", f"/jobs/{job_id}/events/") as r:
        sending.start()
        for event, html, _ in sse_events(r):
            if event == "end":
                break
            state = re.search(r'data-state="(\w+)"', html)[1]
            seen.append((state, percent(html)))
    values = [p for state, p in seen if state == "running" and p is not None]
    assert len(set(values)) >= 3, seen  # the bar moved several times while the job ran
    assert values == sorted(values), seen
    assert seen[-1] == ("succeeded", 100), seen
    # The polling fallback renders the same partial.
    sending.join()
    partial = api.http.get(f"/jobs/{job_id}/progress/").text
    assert 'data-state="succeeded"' in partial and percent(partial) == 100


def test_many_reports_are_throttled_before_redis(local_host, member):
    """A tight loop of reports publishes at most every 0.2 s, whatever the loop's speed."""
    from jobs.runner import PUBLISH_INTERVAL, JobContext

    job = Job.objects.create(kind="upload", host=local_host, created_by=member, state=Job.State.RUNNING,
                             started_at=timezone.now())
    received: list[bytes] = []
    pubsub = progress.client().pubsub()
    pubsub.subscribe(progress.channel(job.pk))
    stop = threading.Event()

    def listen() -> None:
        while not stop.is_set():
            message = pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
            if message:
                received.append(message["data"])

    listener = threading.Thread(target=listen)
    listener.start()
    ctx = JobContext(job)
    started = time.monotonic()
    reports = 0
    while time.monotonic() - started < 1.0:
        ctx.report(reports, 10**9)
        reports += 1
    time.sleep(0.3)
    stop.set()
    listener.join()
    pubsub.close()
    assert reports > 1000
    assert 1 <= len(received) <= 1.0 / PUBLISH_INTERVAL + 1, len(received)
