"""The web server's database connections: on PostgreSQL its requests take one from a pool (Django's "pool"
option, DB_POOL_MAX_SIZE) that outlives them, so a request costs no connect; on SQLite (or with
DB_POOL_MAX_SIZE=0) each request opens its connection and closes it at its end."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from django.conf import settings

from tests.conftest import database_connections, wait_for
from tests.volumes.conftest import Api

pytestmark = pytest.mark.django_db(transaction=True)


def _web_processes(server_pid: int) -> list[int]:
    """granian's worker processes (its main process only hands them the sockets)."""
    return [int(pid) for pid in Path(f"/proc/{server_pid}/task/{server_pid}/children").read_text().split()]


def _held(server_pid: int) -> set[str]:
    return {f"{pid}:{link}" for pid in _web_processes(server_pid) for link in database_connections(pid)}


def test_requests_reuse_a_pooled_connection_on_postgresql(asgi_server, member):
    api = Api(asgi_server.url, member)
    batches = []
    for _ in range(2):
        for _ in range(10):
            assert api.http.get("/jobs/").status_code == 200
        time.sleep(0.5)  # after the last answer, when the request's connection has gone back (or been closed)
        batches.append(_held(asgi_server.proc.pid))
    pool = settings.DATABASES["default"].get("OPTIONS", {}).get("pool")
    if not pool:  # SQLite, or PostgreSQL with DB_POOL_MAX_SIZE=0: a connection per request
        wait_for(lambda: not _held(asgi_server.proc.pid), timeout=10, message="the request's connection closed")
        return
    first, second = batches
    assert first and len(first) <= pool["max_size"], first  # connections kept between requests, within bound
    assert second == first, "ten more requests were served by the same connections, none opened anew"
