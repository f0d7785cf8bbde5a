"""Job progress over Redis pub/sub: the worker publishes, the SSE view relays.

Each message is the job's snapshot (a small JSON dict), so a browser that
connects late gets the whole state from the first event it sees.
"""

from __future__ import annotations

import json
from typing import Any

import redis
from django.conf import settings

from .models import Job


def key(*parts: object) -> str:
    """A Redis key or channel of this installation: settings.REDIS_KEY_PREFIX, then parts, joined by colons."""
    return ":".join([settings.REDIS_KEY_PREFIX, *map(str, parts)])


def channel(job_id: int) -> str:
    return key("job", job_id)


_clients: dict[str, redis.Redis] = {}


def client() -> redis.Redis:
    """A client for settings.REDIS_URL as it is now (read at call time, so an override takes effect)."""
    url = settings.REDIS_URL
    if url not in _clients:
        _clients[url] = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
    return _clients[url]


def snapshot(job: Job) -> dict[str, Any]:
    """Everything the progress partial shows, as JSON-safe values."""
    log = job.log.splitlines()
    return {
        "id": job.pk,
        "kind": job.get_kind_display(),
        "state": job.state,
        "state_label": job.get_state_display(),
        "active": job.is_active,
        "message": job.message,
        "error": job.error,
        "result": job.result,
        "done": job.progress_done,
        "total": job.progress_total,
        "percent": job.percent,
        "rate": job.rate,
        "eta": job.eta_seconds,
        "elapsed": job.elapsed.total_seconds() if job.elapsed else None,
        "cancellable": job.cancellable and job.is_active and not job.cancel_requested,
        "cancel_requested": job.cancel_requested,
        "uninterruptible": job.is_active and not job.cancellable,  # its kind has no safe point to stop at
        "url": job.get_absolute_url(),
        "result_url": result_url(job),
        "result_link": (job.params or {}).get("result_link", "it"),  # what the link says: "it" or "pool"
        "log_tail": log[-5:],
        "log_lines": len(log),  # the job page reloads its log when this grows (static/js/app.js)
    }


def result_url(job: Job) -> str:
    """Where a succeeded job's result is (a defined pool's page, a new volume's), when the job recorded it
    (JobContext.leads_to, a path of this site): the progress partial links the result there."""
    url = str((job.params or {}).get("result_url", "")) if job.state == Job.State.SUCCEEDED else ""
    return url if url.startswith("/") and not url.startswith("//") else ""


def publish(job: Job) -> None:
    """Tell anyone watching; a Redis hiccup never fails the job itself."""
    try:
        client().publish(channel(job.pk), json.dumps(snapshot(job)))
    except redis.RedisError:
        pass


def broker_available() -> bool:
    try:
        return bool(client().ping())
    except redis.RedisError:
        return False
