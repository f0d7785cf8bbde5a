"""Following a job through the API, as a script does."""

from __future__ import annotations

import time

from django.test import Client

ACTIVE = ("queued", "running")


def follow(client: Client, accepted, timeout: float = 120) -> dict:
    """The 202's job, polled at its API url until it ends; its detail."""
    assert accepted.status_code == 202, accepted.content
    body = accepted.json()
    assert body["url"] == f"/api/jobs/{body['job']}/" and body["events"] == f"/jobs/{body['job']}/events/"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(body["url"]).json()
        if job["state"] not in ACTIVE:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {body['job']} did not end in {timeout} s")


def succeeded(client: Client, accepted, timeout: float = 120) -> dict:
    job = follow(client, accepted, timeout)
    assert job["state"] == "succeeded", job["error"]
    return job
