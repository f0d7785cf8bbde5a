"""What the upload tests share: the app as a script's HTTP client sees it, and an upload from file to job's end."""

from __future__ import annotations

import secrets
from pathlib import Path

import httpx
import pytest
from django.test import Client

from tests.conftest import wait_for_job

MiB = 1024 * 1024
CHUNK = 4 * MiB


class Api:
    """A logged-in HTTP client of the app, as a script would use it (session cookie + CSRF header)."""

    def __init__(self, base_url: str, user) -> None:
        django_client = Client()
        django_client.force_login(user)
        token = secrets.token_hex(16)  # a CSRF secret of our own: the cookie and the header must match
        self.http = httpx.Client(base_url=base_url, timeout=120,
                                 cookies={"sessionid": django_client.cookies["sessionid"].value, "csrftoken": token},
                                 headers={"X-CSRFToken": token, "Accept": "application/json"})

    def create(self, **fields) -> httpx.Response:
        return self.http.post("/volumes/uploads/", json=fields)

    def send_file(self, upload: dict, path: Path, *, start: int = 0, stop: int | None = None) -> dict:
        """Chunks of the file from start to stop; all-zero chunks as holes, like upload.js."""
        size = path.stat().st_size
        stop = size if stop is None else stop
        state = upload
        with open(path, "rb") as source:
            for offset in range(start, stop, CHUNK):
                source.seek(offset)
                data = source.read(min(CHUNK, stop - offset))
                if data.count(0) == len(data):
                    r = self.http.put(upload["chunks_url"], params={"offset": offset, "hole": len(data)})
                else:
                    r = self.http.put(upload["chunks_url"], params={"offset": offset}, content=data)
                assert r.status_code == 200, r.text
                state = r.json()
        return state

    def complete(self, upload: dict) -> httpx.Response:
        return self.http.post(upload["complete_url"])


@pytest.fixture
def api(asgi_server, member) -> Api:
    return Api(asgi_server.url, member)


def upload_and_wait(api: Api, pool, path: Path, name: str, *, mode: str = "new", **fields):
    """Upload the file into the pool as volume name (create, its chunks, complete), then the job once ended."""
    created = api.create(pool=pool.pk, volume=name, mode=mode, size=path.stat().st_size, **fields)
    assert created.status_code == 201, created.text
    api.send_file(created.json(), path)
    started = api.complete(created.json())
    assert started.status_code == 202, started.text
    return wait_for_job(started.json()["job"])
