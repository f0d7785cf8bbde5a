"""Following a job through the API, as a script does."""

from __future__ import annotations

import time

from django.test import Client

ACTIVE = ("queued", "running")


def follow(client: Client, accepted, timeout: float = 120) -> dict:
    """The 202's job, polled at its API url until it ends; its detail."""
    assert accepted.status_code == 202, accepted.content
    body = accepted.json()
    return follow_named(client, body, timeout)


def follow_named(client: Client, named: dict, timeout: float = 120) -> dict:
    """The job an answer names ({"job", "url", "events"}: a 202's body, or a part of a 201's), followed to its end."""
    assert named["url"] == f"/api/jobs/{named['job']}/" and named["events"] == f"/jobs/{named['job']}/events/"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(named["url"]).json()
        if job["state"] not in ACTIVE:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {named['job']} did not end in {timeout} s")


def succeeded(client: Client, accepted, timeout: float = 120) -> dict:
    job = follow(client, accepted, timeout)
    assert job["state"] == "succeeded", job["error"]
    return job
